//! Multipart uploads: create, upload a part (or copy one), complete, abort, list parts
//! and uploads. A completion's part list is checked again at apply time, so a part
//! overwritten meanwhile fails it rather than slipping in.

use std::collections::BTreeMap;

use crate::data_path::ByteSource;
use crate::env::{Env, Rng};
use crate::meta::store::MetaReader;
use crate::meta::{
    Applied, Checksum, ChecksumAlgorithm, CommandV1, ContentHeaders, ObjectData, ObjectMeta,
    PartInfo, UploadHead,
};
use crate::s3::api::UploadsPage;
use crate::s3::encryption;
use crate::s3::settings::upload_rows;
use crate::s3::types::{
    CopySource, Given, NoTrailer, PartView, PartsPage, PutBody, PutOutput, SseArgs, SseInfo,
    Trailer, UploadInfo,
};
use crate::s3::{
    PART_NUMBER_MAX, S3, S3Error, applied_error, checksum, validate_key, validate_user_meta,
};

impl<E: Env> S3<E> {
    /// Creates an upload whose object gets `given` (ACL and tags, lock) and the
    /// encryption `sse` asks for (or the bucket's default); answers its id and how its
    /// parts are encrypted.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        headers: ContentHeaders,
        user_meta: BTreeMap<String, String>,
        checksum_algorithm: Option<ChecksumAlgorithm>,
        given: Given,
        sse: &SseArgs,
    ) -> Result<(String, Option<SseInfo>), S3Error> {
        validate_key(key)?;
        validate_user_meta(&user_meta)?;
        let sealing = {
            let r = self.reader().await?;
            self.bucket_must_exist(&r, bucket).await?;
            self.write_sealing(&r, bucket, sse)?
        };
        let mut raw = [0u8; 16];
        self.env.rng().fill(&mut raw);
        let upload_id = checksum::hex(&raw);
        let head = UploadHead {
            bucket: bucket.into(),
            key: key.into(),
            created_ms: self.now_ms(),
            headers,
            user_meta,
            checksum_algorithm,
        };
        let record = sealing.map(|s| s.record);
        let info = record.as_ref().map(encryption::info);
        let settings = upload_rows(&upload_id, given, record);
        let command = match settings.is_empty() {
            true => CommandV1::CreateUpload {
                upload_id: upload_id.clone(),
                head,
            },
            false => CommandV1::CreateUploadWith {
                upload_id: upload_id.clone(),
                head,
                settings,
            },
        };
        match self.propose(command).await? {
            Applied::Done => Ok((upload_id, info)),
            other => Err(applied_error(other)),
        }
    }

    /// The upload `id`, if it is in progress for this bucket and key.
    async fn upload_of(
        &self,
        r: &MetaReader,
        bucket: &str,
        key: &str,
        id: &str,
    ) -> Result<UploadHead, S3Error> {
        self.bucket_must_exist(r, bucket).await?;
        match r.upload(id).map_err(|e| S3Error::Internal(e.to_string()))? {
            Some(head) if head.bucket == bucket && head.key == key => Ok(head),
            _ => Err(S3Error::NoSuchUpload),
        }
    }

    fn part_number(part: u32) -> Result<(), S3Error> {
        if (1..=PART_NUMBER_MAX).contains(&part) {
            Ok(())
        } else {
            Err(S3Error::InvalidArgument(format!(
                "part numbers are 1 to {PART_NUMBER_MAX}"
            )))
        }
    }

    async fn commit_part(&self, upload_id: &str, part: u32, info: PartInfo) -> Result<(), S3Error> {
        let layout = info.data.clone();
        let command = CommandV1::PutPart {
            upload_id: upload_id.into(),
            part,
            info,
        };
        match self.propose(command).await {
            Ok(Applied::Done) => {
                if let Some(layout) = &layout {
                    self.data.report_unsealed(layout);
                }
                Ok(())
            }
            Ok(other) => {
                if let Some(layout) = &layout {
                    self.data.remove_blob(layout).await;
                }
                Err(applied_error(other))
            }
            Err(e) => Err(e),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part<S: ByteSource, T: Trailer>(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part: u32,
        (body, sse): (PutBody<S>, &SseArgs),
        trailer: &T,
    ) -> Result<PutOutput, S3Error> {
        Self::part_number(part)?;
        // As for a PUT, the local replica first: the part's commit checks the upload
        // again, so a stale view only costs the write of a part that is then refused.
        // The upload's encryption was committed with it, so that view has it too.
        let of = |r: &MetaReader| self.upload_encryption(r, bucket, upload_id);
        let local = match self.raft.reader() {
            Ok(r) => match self.upload_of(&r, bucket, key, upload_id).await {
                Ok(head) => Some((head, of(&r)?)),
                Err(_) => None,
            },
            Err(_) => None,
        };
        let (head, record) = match local {
            Some(found) => found,
            None => {
                let r = self.reader().await?;
                (self.upload_of(&r, bucket, key, upload_id).await?, of(&r)?)
            }
        };
        let data_key = self.opening_key(record.as_ref(), sse)?;
        let mut body = body;
        if body.checksum.is_none() {
            body.checksum = head.checksum_algorithm.map(|a| (a, None));
        }
        let (layout, digests) = self.store_body(body, trailer, data_key.as_ref()).await?;
        let etag = checksum::hex(&digests.md5);
        let info = PartInfo {
            size: digests.len,
            etag: etag.clone(),
            checksum: digests.checksum.clone(),
            created_ms: self.now_ms(),
            data: layout,
        };
        self.commit_part(upload_id, part, info).await?;
        Ok(PutOutput {
            etag,
            version: 0,
            version_id: None,
            checksum: digests.checksum,
            unsealed: 0,
            sse: record.as_ref().map(encryption::info),
        })
    }

    pub async fn upload_part_copy(
        &self,
        source: &CopySource,
        bucket: &str,
        key: &str,
        upload_id: &str,
        (part, sse): (u32, &SseArgs),
    ) -> Result<PutOutput, S3Error> {
        Self::part_number(part)?;
        let r = self.reader().await?;
        let head = self.upload_of(&r, bucket, key, upload_id).await?;
        let record = self.upload_encryption(&r, bucket, upload_id)?;
        let data_key = self.opening_key(record.as_ref(), sse)?;
        let (stored, info) = self.copy_source(&r, source).await?;
        let source_record = self.version_encryption(&r, &source.bucket, stored.version)?;
        let source_key = self.opening_key(source_record.as_ref(), &source.sse)?;
        let span = match source.range {
            Some(spec) => spec.resolve(info.size).map_err(|_| {
                S3Error::InvalidArgument("x-amz-copy-source-range is out of the source".into())
            })?,
            None => (0, info.size),
        };
        let body = self
            .open_body(&r, &stored, span, source_key.as_ref())
            .await?;
        drop(r);
        let put = PutBody {
            source: body,
            size: span.1 - span.0,
            content_md5: None,
            checksum: head.checksum_algorithm.map(|a| (a, None)),
        };
        let (layout, digests) = self.store_body(put, &NoTrailer, data_key.as_ref()).await?;
        let etag = checksum::hex(&digests.md5);
        let part_info = PartInfo {
            size: digests.len,
            etag: etag.clone(),
            checksum: digests.checksum.clone(),
            created_ms: self.now_ms(),
            data: layout,
        };
        self.commit_part(upload_id, part, part_info).await?;
        Ok(PutOutput {
            etag,
            version: 0,
            version_id: None,
            checksum: digests.checksum,
            unsealed: 0,
            sse: record.as_ref().map(encryption::info),
        })
    }

    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<(u32, String)>,
    ) -> Result<PutOutput, S3Error> {
        let r = self.reader().await?;
        let head = self.upload_of(&r, bucket, key, upload_id).await?;
        let sse = self
            .upload_encryption(&r, bucket, upload_id)?
            .as_ref()
            .map(encryption::info);
        if parts.is_empty() {
            return Err(S3Error::InvalidRequest(
                "You must specify at least one part.".into(),
            ));
        }
        let parts: Vec<(u32, String)> = parts
            .into_iter()
            .map(|(n, e)| (n, e.trim().trim_matches('"').to_string()))
            .collect();
        let mut chosen = Vec::with_capacity(parts.len());
        for (number, etag) in &parts {
            let found = r
                .parts(upload_id, number.saturating_sub(1), 1)
                .map_err(|e| S3Error::Internal(e.to_string()))?
                .into_iter()
                .find(|(n, _)| n == number);
            match found {
                Some((_, info)) if &info.etag == etag => chosen.push(info),
                _ => return Err(S3Error::InvalidPart(*number)),
            }
        }
        drop(r);
        let etags: Vec<&str> = chosen.iter().map(|p| p.etag.as_str()).collect();
        let etag = checksum::multipart_etag(&etags);
        let sums: Vec<(Option<&Checksum>, u64)> = chosen
            .iter()
            .map(|p| (p.checksum.as_ref(), p.size))
            .collect();
        let object_checksum = head
            .checksum_algorithm
            .and_then(|alg| checksum::multipart_checksum(alg, &sums));
        let meta = ObjectMeta {
            size: 0, // apply sums the parts
            etag: etag.clone(),
            created_ms: self.now_ms(),
            headers: head.headers,
            user_meta: head.user_meta,
            checksum: object_checksum.clone(),
            data: ObjectData::Parts {
                count: parts.len() as u32,
            },
        };
        let command = CommandV1::CompleteUpload {
            upload_id: upload_id.into(),
            parts,
            meta,
            part_size_min: self.config.part_size_min_bytes,
        };
        match self.propose(command).await? {
            applied @ (Applied::Version(_) | Applied::Versioned { .. }) => {
                let (version, version_id) = super::blobs::written(&applied);
                Ok(PutOutput {
                    etag,
                    version,
                    version_id,
                    checksum: object_checksum,
                    unsealed: 0,
                    sse,
                })
            }
            other => Err(applied_error(other)),
        }
    }

    pub async fn abort_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), S3Error> {
        {
            let r = self.reader().await?;
            self.upload_of(&r, bucket, key, upload_id).await?;
        }
        match self
            .propose(CommandV1::AbortUpload {
                upload_id: upload_id.into(),
            })
            .await?
        {
            Applied::Done => Ok(()),
            other => Err(applied_error(other)),
        }
    }

    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> Result<PartsPage, S3Error> {
        let r = self.reader().await?;
        let head = self.upload_of(&r, bucket, key, upload_id).await?;
        let max = max.clamp(1, 1000);
        let mut rows = r
            .parts(upload_id, after, max + 1)
            .map_err(|e| S3Error::Internal(e.to_string()))?;
        let truncated = rows.len() > max;
        rows.truncate(max);
        let next_marker = rows.last().map_or(after, |(n, _)| *n);
        Ok(PartsPage {
            parts: rows
                .into_iter()
                .map(|(number, p)| PartView {
                    number,
                    size: p.size,
                    etag: p.etag,
                    last_modified_ms: p.created_ms,
                    checksum: p.checksum,
                })
                .collect(),
            truncated,
            next_marker,
            max_parts: max,
            checksum_algorithm: head.checksum_algorithm,
        })
    }

    /// Uploads in progress in `bucket` under `prefix`, in (key, initiation) order,
    /// after the (key, upload id) marker; and whether there are more.
    /// One page of ListMultipartUploads: uploads in (key, initiation) order after the
    /// marker; with a delimiter, the keys that have it after the prefix are rolled up
    /// into common prefixes (each one entry of the page, as in S3).
    pub async fn list_uploads(
        &self,
        bucket: &str,
        (prefix, delimiter): (&str, Option<&str>),
        after: Option<(String, Option<String>)>,
        max: usize,
    ) -> Result<UploadsPage, S3Error> {
        let r = self.reader().await?;
        self.bucket_must_exist(&r, bucket).await?;
        let mut uploads: Vec<UploadInfo> = r
            .uploads()
            .map_err(|e| S3Error::Internal(e.to_string()))?
            .into_iter()
            .filter(|(_, h)| h.bucket == bucket && h.key.starts_with(prefix))
            .map(|(id, h)| UploadInfo {
                upload_id: id,
                key: h.key,
                initiated_ms: h.created_ms,
            })
            .collect();
        uploads.sort_by(|a, b| {
            (&a.key, a.initiated_ms, &a.upload_id).cmp(&(&b.key, b.initiated_ms, &b.upload_id))
        });
        let delimiter = delimiter.filter(|d| !d.is_empty());
        if let Some((key, id)) = after {
            // After the marker upload in this order; a key alone skips that key's uploads,
            // and a common prefix (a key marker that ends with the delimiter) all of its.
            let at = id.and_then(|id| {
                uploads
                    .iter()
                    .position(|u| u.key == key && u.upload_id == id)
            });
            let rolled = delimiter.is_some_and(|d| key.ends_with(d));
            uploads = match at {
                Some(i) => uploads.split_off(i + 1),
                None => uploads
                    .into_iter()
                    .filter(|u| u.key > key && !(rolled && u.key.starts_with(&key)))
                    .collect(),
            };
        }
        let max = max.clamp(1, 1000);
        let mut page = UploadsPage {
            prefix: prefix.to_string(),
            max_uploads: max,
            uploads: Vec::new(),
            common_prefixes: Vec::new(),
            truncated: false,
            next_key_marker: None,
            next_upload_id_marker: None,
        };
        for u in uploads {
            let common = delimiter.and_then(|d| {
                let rest = &u.key[prefix.len()..];
                rest.find(d)
                    .map(|at| u.key[..prefix.len() + at + d.len()].to_string())
            });
            if common.is_some() && page.common_prefixes.last() == common.as_ref() {
                continue;
            }
            if page.uploads.len() + page.common_prefixes.len() == max {
                page.truncated = true;
                break;
            }
            match common {
                Some(p) => {
                    (page.next_key_marker, page.next_upload_id_marker) = (Some(p.clone()), None);
                    page.common_prefixes.push(p);
                }
                None => {
                    page.next_key_marker = Some(u.key.clone());
                    page.next_upload_id_marker = Some(u.upload_id.clone());
                    page.uploads.push(u);
                }
            }
        }
        if !page.truncated {
            (page.next_key_marker, page.next_upload_id_marker) = (None, None);
        }
        Ok(page)
    }
}
