//! The objects workload's other S3 operations, sent as the engine's own requests (the
//! ones the HTTP edge makes): multipart uploads (parts through different coordinators,
//! retried and overwritten parts, parts copied from other keys, completions sent out of
//! order first, aborts), CopyObject, DeleteObjects, paginated ListObjectsV2 with prefix
//! and delimiter, and conditional GETs. Each key still has exactly one body: a
//! multipart key's is its parts' concatenation, a copy's its source's.

use std::sync::Arc;

use bytes::Bytes;
use engine::env::{Env, NodeId, Rng};
use engine::s3::api::{
    BodyArgs, CopyArgs, CreateUploadArgs, PartArgs, PartCopyArgs, Request, Response, SourceArgs,
};
use engine::s3::rpc::{self, Answer, CallOutcome};

use crate::object_workload::{
    BUCKET, CALL_TIMEOUT, DeleteRecord, GetCondition, KeyKind, ListRecord, ObjectClient,
    PutOutcome, sealed, tag_header,
};

/// Smallest part but the last in the simulator (`S3Config::part_size_min_bytes`).
pub const PART_SIZE_MIN_BYTES: u64 = 1024;
/// Pages one listing may take before it gives up.
const LIST_PAGES_MAX: usize = 64;

/// The ETag of an acknowledged write.
fn etag_of(answer: CallOutcome) -> Option<String> {
    match answer {
        CallOutcome::Answer(Answer::Ok {
            response: Response::Put(out),
            ..
        }) => Some(out.etag),
        _ => None,
    }
}

fn below(rng: &impl Rng, n: u64) -> u64 {
    rng.next_u64() % n.max(1)
}

/// Part boundaries of a body of `len` bytes: every part at least the minimum but the
/// last, which is too when `len` is; one part for a short body.
fn part_spans(rng: &impl Rng, len: u64) -> Vec<(u64, u64)> {
    let mut spans = Vec::new();
    let mut at = 0;
    let wanted = 1 + below(rng, 3);
    while (spans.len() as u64) + 1 < wanted && len - at >= 3 * PART_SIZE_MIN_BYTES {
        let size = PART_SIZE_MIN_BYTES + below(rng, PART_SIZE_MIN_BYTES);
        spans.push((at, at + size));
        at += size;
    }
    spans.push((at, len));
    spans
}

impl ObjectClient {
    async fn call(&self, node: NodeId, request: &Request) -> CallOutcome {
        rpc::call(&self.env, node, request, CALL_TIMEOUT).await
    }

    fn count(&self, op: &'static str) {
        self.history.lock().expect("history").count(op);
    }

    /// A multipart upload of a new key: parts through random nodes, some overwritten
    /// with other bytes first or retried, one maybe copied from another key's bytes;
    /// sometimes a completion with two parts swapped first (it must be refused), and
    /// sometimes an abort instead of the completion.
    pub async fn multipart(&self, seq: u64, mine: &mut Vec<usize>) {
        let source = self.copy_source_for_part();
        let mut data = self.random_body();
        let mut spans = part_spans(self.env.rng(), data.len() as u64);
        if let Some((_, bytes)) = &source {
            // The source's bytes become one more part, after parts of full size.
            if data.len() < PART_SIZE_MIN_BYTES as usize {
                let mut pad = vec![0u8; PART_SIZE_MIN_BYTES as usize - data.len()];
                self.env.rng().fill(&mut pad);
                data.extend_from_slice(&pad);
                spans = part_spans(self.env.rng(), data.len() as u64);
            }
            let at = data.len() as u64;
            data.extend_from_slice(bytes);
            spans.push((at, data.len() as u64));
        }
        let data = Arc::new(data);
        let first_part = spans.first().map_or(0, |(lo, hi)| hi - lo);
        let kind = KeyKind::Multipart { first_part };
        let index = self.add_key("m/", seq, data.clone(), kind);
        let key = self.history.lock().expect("history").keys[index]
            .key
            .clone();
        let create = Request::CreateMultipartUpload(Box::new(CreateUploadArgs {
            bucket: BUCKET.into(),
            key: key.clone(),
            tagging: tag_header(index),
            sse: sealed(index),
            ..CreateUploadArgs::default()
        }));
        let upload_id = match self.call(self.node(), &create).await {
            CallOutcome::Answer(Answer::Ok {
                response: Response::Upload(id, _),
                ..
            }) => id,
            _ => return self.count("upload_create_failed"),
        };
        self.count("uploads");
        let mut parts = Vec::new();
        for (i, &(lo, hi)) in spans.iter().enumerate() {
            let number = i as i32 + 1;
            let bytes = Bytes::copy_from_slice(&data[lo as usize..hi as usize]);
            // The source's bytes are the body's tail: the last part may be a copy of them.
            let copy_from = source
                .as_ref()
                .filter(|(_, b)| i + 1 == spans.len() && b.len() as u64 == hi - lo);
            let etag = match copy_from {
                Some((src, _)) => match self.part_copy(&key, &upload_id, number, *src).await {
                    Some(etag) => Some(etag),
                    None => self.upload_part(&key, &upload_id, number, bytes).await,
                },
                None => self.upload_part(&key, &upload_id, number, bytes).await,
            };
            match etag {
                Some(etag) => parts.push((Some(number), Some(etag))),
                None => return self.abort(&key, &upload_id).await,
            }
        }
        if parts.len() >= 2 && below(self.env.rng(), 4) == 0 {
            let mut swapped = parts.clone();
            swapped.swap(0, 1);
            self.count("misordered_completes");
            let outcome = self.complete(index, &key, &upload_id, swapped, false).await;
            self.history
                .lock()
                .expect("history")
                .misordered
                .push((index, outcome));
        }
        if below(self.env.rng(), 6) == 0 {
            return self.abort(&key, &upload_id).await;
        }
        if self.complete(index, &key, &upload_id, parts, true).await == PutOutcome::Acked {
            self.count("multipart_completes");
            mine.push(index);
        }
    }

    /// An acknowledged key's bytes to copy a part from (at most 4 KiB of it, whole).
    fn copy_source_for_part(&self) -> Option<(usize, Vec<u8>)> {
        if below(self.env.rng(), 3) != 0 {
            return None;
        }
        let h = self.history.lock().expect("history");
        let known = h.keys.len() as u64;
        let index = below(self.env.rng(), known) as usize;
        let k = h.keys.get(index)?;
        let acked = k.puts.iter().any(|p| p.outcome == PutOutcome::Acked);
        (acked && !k.data.is_empty() && k.data.len() <= 4096).then(|| (index, k.data.to_vec()))
    }

    /// Uploads one part (maybe first with other bytes, which this upload overwrites),
    /// retrying through other nodes; its ETag once one attempt was acknowledged.
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        bytes: Bytes,
    ) -> Option<String> {
        if below(self.env.rng(), 4) == 0 {
            let mut other = bytes.to_vec();
            self.env.rng().fill(&mut other);
            self.count("parts_overwritten");
            self.send_part(key, upload_id, number, Bytes::from(other))
                .await;
        }
        for _ in 0..3 {
            if let Some(etag) = self.send_part(key, upload_id, number, bytes.clone()).await {
                return Some(etag);
            }
            self.count("parts_retried");
        }
        None
    }

    async fn send_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        bytes: Bytes,
    ) -> Option<String> {
        let request = Request::UploadPart(Box::new(PartArgs {
            bucket: BUCKET.into(),
            key: key.into(),
            upload_id: upload_id.into(),
            part_number: number,
            body: BodyArgs {
                size: Some(bytes.len() as i64),
                ..BodyArgs::default()
            },
            sse: Default::default(),
        }));
        let frame = 512 + below(self.env.rng(), 4096) as usize;
        let answer = rpc::put(&self.env, self.node(), &request, bytes, frame, CALL_TIMEOUT).await;
        self.count("parts");
        etag_of(answer)
    }

    /// UploadPartCopy of key `source`'s whole body (as a byte range).
    async fn part_copy(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        source: usize,
    ) -> Option<String> {
        let (src_key, len) = {
            let h = self.history.lock().expect("history");
            (h.keys[source].key.clone(), h.keys[source].data.len())
        };
        let request = Request::UploadPartCopy(Box::new(PartCopyArgs {
            source: SourceArgs {
                bucket: BUCKET.into(),
                key: src_key,
                ..SourceArgs::default()
            },
            source_range: Some(format!("bytes=0-{}", len - 1)),
            bucket: BUCKET.into(),
            key: key.into(),
            upload_id: upload_id.into(),
            sse: Default::default(),
            part_number: number,
        }));
        self.count("part_copies");
        etag_of(self.call(self.node(), &request).await)
    }

    /// Sends a completion; recorded as a write of key `index` when `record`.
    async fn complete(
        &self,
        index: usize,
        key: &str,
        upload_id: &str,
        parts: Vec<(Option<i32>, Option<String>)>,
        record: bool,
    ) -> PutOutcome {
        let request = Request::CompleteMultipartUpload {
            bucket: BUCKET.into(),
            key: key.into(),
            upload_id: upload_id.into(),
            parts,
        };
        let node = self.node();
        let invoke = self.now();
        let answer = self.call(node, &request).await;
        self.env.world().trace(format_args!(
            "s3 complete {key} via {node} (record={record})"
        ));
        if record {
            self.record_write(index, node, false, invoke, answer)
        } else {
            match answer {
                CallOutcome::Answer(Answer::Ok { .. }) => PutOutcome::Acked,
                CallOutcome::Answer(Answer::Failed { code, message, .. }) => {
                    PutOutcome::Refused { code, message }
                }
                _ => PutOutcome::Unknown,
            }
        }
    }

    async fn abort(&self, key: &str, upload_id: &str) {
        let request = Request::AbortMultipartUpload {
            bucket: BUCKET.into(),
            key: key.into(),
            upload_id: upload_id.into(),
        };
        self.call(self.node(), &request).await;
        self.count("aborts");
    }

    /// CopyObject of a random known key to a new key (which then has its bytes).
    pub async fn copy(&self, seq: u64, known: usize, mine: &mut Vec<usize>) {
        let source = below(self.env.rng(), known as u64) as usize;
        let (src_key, data) = {
            let h = self.history.lock().expect("history");
            (h.keys[source].key.clone(), h.keys[source].data.clone())
        };
        let index = self.add_key("k/", seq, data, KeyKind::Copy { source });
        let key = self.history.lock().expect("history").keys[index]
            .key
            .clone();
        let request = Request::CopyObject(Box::new(CopyArgs {
            source: SourceArgs {
                bucket: BUCKET.into(),
                key: src_key,
                ..SourceArgs::default()
            },
            bucket: BUCKET.into(),
            key,
            sse: sealed(index),
            ..CopyArgs::default()
        }));
        let node = self.node();
        let invoke = self.now();
        let answer = self.call(node, &request).await;
        self.count("copies");
        if self.record_write(index, node, false, invoke, answer) == PutOutcome::Acked {
            mine.push(index);
        }
    }

    /// DeleteObjects of up to three of this client's keys.
    pub async fn delete_many(&self, mine: &mut Vec<usize>) {
        let n = (1 + below(self.env.rng(), 3) as usize).min(mine.len());
        let mut picked = Vec::new();
        for _ in 0..n {
            let at = below(self.env.rng(), mine.len() as u64) as usize;
            picked.push(mine.swap_remove(at));
        }
        let keys: Vec<String> = {
            let h = self.history.lock().expect("history");
            picked.iter().map(|&i| h.keys[i].key.clone()).collect()
        };
        let request = Request::DeleteObjects {
            bypass_governance: false,
            bucket: BUCKET.into(),
            keys: keys.clone(),
            quiet: false,
            version_ids: Vec::new(),
        };
        let node = self.node();
        let invoke = self.now();
        let answer = self.call(node, &request).await;
        let ret = self.now();
        self.count("delete_objects");
        let (deleted, refused) = match &answer {
            CallOutcome::Answer(Answer::Ok {
                response: Response::Deleted { deleted, .. },
                ..
            }) => (deleted.clone(), false),
            CallOutcome::Answer(Answer::Failed { unknown: false, .. })
            | CallOutcome::Unreachable => (Vec::new(), true),
            _ => (Vec::new(), false),
        };
        self.env.world().trace(format_args!(
            "s3 delete-objects {keys:?} via {node} -> {answer:?}"
        ));
        if refused {
            return;
        }
        let mut h = self.history.lock().expect("history");
        for (i, key) in picked.into_iter().zip(keys) {
            let acked = deleted.iter().any(|r| r.key == key);
            h.keys[i].delete = Some(DeleteRecord { invoke, ret, acked });
        }
    }

    /// A paginated ListObjectsV2: a client's prefix or none, maybe a delimiter, small
    /// pages; every page through a random node.
    pub async fn list(&self) {
        let prefix = match below(self.env.rng(), 3) {
            0 => String::new(),
            _ => format!("c{}/", below(self.env.rng(), self.clients)),
        };
        let delimiter = (below(self.env.rng(), 2) == 0).then(|| "/".to_string());
        let max_keys = 1 + below(self.env.rng(), 6) as i32;
        let mut record = ListRecord {
            prefix: prefix.clone(),
            delimiter: delimiter.clone(),
            invoke: self.now(),
            ret: 0,
            pages: Vec::new(),
            complete: false,
        };
        let mut token = None;
        for _ in 0..LIST_PAGES_MAX {
            let request = Request::ListObjectsV2 {
                bucket: BUCKET.into(),
                prefix: Some(prefix.clone()),
                delimiter: delimiter.clone(),
                continuation_token: token.take(),
                start_after: None,
                max_keys: Some(max_keys),
            };
            let CallOutcome::Answer(Answer::Ok {
                response: Response::Listing(page),
                ..
            }) = self.call(self.node(), &request).await
            else {
                break;
            };
            record.pages.push((
                page.objects.iter().map(|o| o.key.clone()).collect(),
                page.common_prefixes.clone(),
            ));
            match page.next_continuation_token {
                Some(t) if page.truncated => token = Some(t),
                _ => {
                    record.complete = !page.truncated;
                    break;
                }
            }
        }
        record.ret = self.now();
        let mut h = self.history.lock().expect("history");
        *h.ops.entry("list_pages").or_default() += record.pages.len() as u64;
        h.count("listings");
        h.lists.push(record);
    }

    /// A GET with If-None-Match of the key's own ETag (never the bytes: 304) or with
    /// If-Match of an ETag nothing has (never the bytes: 412).
    pub async fn conditional_get(&self, known: usize) {
        let index = below(self.env.rng(), known as u64) as usize;
        let etag = {
            let h = self.history.lock().expect("history");
            h.keys[index].puts.iter().find_map(|p| p.etag.clone())
        };
        let condition = match etag {
            Some(e) if below(self.env.rng(), 2) == 0 => GetCondition::IfNoneMatchCurrent(e),
            _ => GetCondition::IfMatchOther("0123456789abcdef0123456789abcdef".into()),
        };
        self.count("conditional_gets");
        self.get(index, None, self.node(), Some(condition)).await;
    }

    /// After heal: aborts every upload still in progress (as a lifecycle rule would), so
    /// that their parts are orphans the sweep must then remove.
    pub async fn abort_leftovers(&self) -> Result<u64, String> {
        let mut aborted = 0;
        for _ in 0..20 {
            let request = Request::ListMultipartUploads {
                delimiter: None,
                bucket: BUCKET.into(),
                prefix: None,
                key_marker: None,
                upload_id_marker: None,
                max_uploads: Some(1000),
            };
            let uploads = match self
                .call(1 + below(self.env.rng(), self.nodes), &request)
                .await
            {
                CallOutcome::Answer(Answer::Ok {
                    response: Response::Uploads(page),
                    ..
                }) => page.uploads,
                other => {
                    self.env
                        .world()
                        .trace(format_args!("list uploads after heal -> {other:?}"));
                    continue;
                }
            };
            if uploads.is_empty() {
                return Ok(aborted);
            }
            for u in uploads {
                let request = Request::AbortMultipartUpload {
                    bucket: BUCKET.into(),
                    key: u.key,
                    upload_id: u.upload_id,
                };
                if let CallOutcome::Answer(Answer::Ok { .. }) = self
                    .call(1 + below(self.env.rng(), self.nodes), &request)
                    .await
                {
                    aborted += 1;
                }
            }
        }
        Err("uploads still in progress after 20 rounds of aborting them after heal".into())
    }
}
