//! The objects workload: S3 clients PUT, GET (whole and ranged), conditionally re-PUT
//! and DELETE erasure-coded objects through random nodes, over the nodes' S3 endpoint
//! (`engine::s3::rpc`), so that each operation runs inside the node that received it
//! and dies with it: a crashed coordinator mid-PUT is a real schedule. It records what
//! it did and saw; `object_checker` judges.
//!
//! Every key is written with one body only (a conditional re-PUT sends the same bytes),
//! so any bytes a GET returns have exactly one right value.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use engine::env::{Clock, Env, NodeId, Rng};
use engine::s3::RangeSpec;
use engine::s3::api::{BodyArgs, GetArgs, PutArgs, Request, Response};
use engine::s3::rpc::{self, Answer, CallOutcome};
use engine::s3::types::SseArgs;
use runtime_sim::SimEnv;
use sha2::{Digest, Sha256};

pub const BUCKET: &str = "objects";
/// A client's patience, as an S3 SDK's read timeout: longer than a live node takes to
/// give up on a dead holder and to commit, shorter than the worst case of both, so
/// that some PUTs end unknown while the node carries on (as real clients see them).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub(crate) fn below(rng: &impl Rng, n: u64) -> u64 {
    rng.next_u64() % n.max(1)
}

/// What became of one PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    Acked,
    /// A conditional PUT found the key present.
    PreconditionFailed,
    /// A definite refusal: the write had no effect (below the floor, no leader, ...).
    Refused {
        code: String,
        message: String,
    },
    /// No answer, or an answer that says the outcome is unknown.
    Unknown,
}

#[derive(Debug, Clone)]
pub struct PutRecord {
    pub node: NodeId,
    pub if_absent: bool,
    pub invoke: u64,
    pub ret: u64,
    pub outcome: PutOutcome,
    /// Acknowledged with fewer than all shards sealed.
    pub degraded: bool,
    /// The ETag an acknowledged write answered with.
    pub etag: Option<String>,
}

/// How a key's one body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Put,
    /// Completed from parts (some maybe copied from other keys with UploadPartCopy), the
    /// first of `first_part` bytes.
    Multipart {
        first_part: u64,
    },
    /// A CopyObject of key `source` (whose one body it then has).
    Copy {
        source: usize,
    },
}

/// The `x-amz-tagging` a PUT or an upload of key `index` gives its body: 0 to 3 tags,
/// by the key's index.
pub fn tag_header(index: usize) -> Option<String> {
    let n = index % 4;
    (n > 0).then(|| {
        (0..n)
            .map(|i| format!("t{i}=v{index}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

/// The encryption a write of key `index` asks for: SSE-S3 for odd keys, none for even
/// ones, so that sealed and plain bodies are written, copied, repaired and read alike.
pub fn sealed(index: usize) -> SseArgs {
    SseArgs {
        server: (index % 2 == 1).then(|| "AES256".to_string()),
        ..SseArgs::default()
    }
}

/// The tags key `index`'s body has: its own write's, or a copy's source's.
pub fn expected_tags(keys: &[KeyRecord], index: usize) -> usize {
    match keys[index].kind {
        KeyKind::Copy { source } => expected_tags(keys, source),
        _ => index % 4,
    }
}

/// A write's outcome, whether it was degraded, and its ETag.
fn write_outcome(node: NodeId, answer: &CallOutcome) -> (PutOutcome, bool, Option<String>) {
    match answer {
        CallOutcome::Answer(Answer::Ok {
            response: Response::Put(out),
            ..
        }) => (PutOutcome::Acked, out.unsealed > 0, Some(out.etag.clone())),
        CallOutcome::Answer(Answer::Failed { code, .. }) if code == "PreconditionFailed" => {
            (PutOutcome::PreconditionFailed, false, None)
        }
        CallOutcome::Answer(Answer::Failed {
            code,
            message,
            unknown: false,
            ..
        }) => (
            PutOutcome::Refused {
                code: code.clone(),
                message: message.clone(),
            },
            false,
            None,
        ),
        CallOutcome::Unreachable => (
            PutOutcome::Refused {
                code: "unreachable".into(),
                message: format!("node {node} refused the connection"),
            },
            false,
            None,
        ),
        _ => (PutOutcome::Unknown, false, None),
    }
}

#[derive(Debug, Clone)]
pub struct DeleteRecord {
    pub invoke: u64,
    pub ret: u64,
    /// False when no answer came (it may or may not have happened).
    pub acked: bool,
}

pub struct KeyRecord {
    pub key: String,
    pub data: Arc<Vec<u8>>,
    /// How the key's one body is written (PUT, multipart, copy of another key).
    pub kind: KeyKind,
    pub puts: Vec<PutRecord>,
    pub delete: Option<DeleteRecord>,
}

/// What one GET returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetOutcome {
    /// sha256 of the bytes returned.
    Data([u8; 32]),
    NoSuchKey,
    /// An honest failure: 503 (below k readable shards, no leader, ...).
    Unavailable(String),
    /// Any other error: never expected.
    Error {
        code: String,
        message: String,
    },
    Lost,
    /// 410 ObjectLost: repair recorded fewer than k good shards.
    ObjectLost,
    /// 304: If-None-Match matched.
    NotModified,
    /// 412: If-Match did not match.
    PreconditionFailed,
}

/// What a GET asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    Whole,
    /// An inclusive byte range.
    Range(u64, u64),
    /// `partNumber=1`.
    FirstPart,
}

/// A GET's condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetCondition {
    /// If-None-Match with the ETag of the key's acknowledged write: never the bytes.
    IfNoneMatchCurrent(String),
    /// If-Match with an ETag no write produced: never the bytes.
    IfMatchOther(String),
}

#[derive(Debug, Clone)]
pub struct GetRecord {
    pub key: usize,
    /// Inclusive byte range, if ranged.
    pub range: Option<(u64, u64)>,
    pub node: NodeId,
    pub invoke: u64,
    pub ret: u64,
    pub outcome: GetOutcome,
    /// The tag count the GET answered with (with its bytes).
    pub tags: usize,
    /// Nodes down when the GET was sent (to count reads around crashed holders).
    pub down: BTreeSet<NodeId>,
    /// Made after every fault healed.
    pub after_heal: bool,
    pub condition: Option<GetCondition>,
    /// Asked for `partNumber=1` (`range`: the span the answer served).
    pub first_part: bool,
}

/// One paginated ListObjectsV2, page by page.
#[derive(Debug, Clone)]
pub struct ListRecord {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub invoke: u64,
    pub ret: u64,
    /// Each page's keys and common prefixes, in the order received.
    pub pages: Vec<(Vec<String>, Vec<String>)>,
    /// Every page came and the last said it was the last.
    pub complete: bool,
}

#[derive(Default)]
pub struct ObjectHistory {
    pub keys: Vec<KeyRecord>,
    pub gets: Vec<GetRecord>,
    /// PUTs whose coordinator never answered (crashed or cut off mid-operation).
    pub coordinator_lost: u64,
    pub lists: Vec<ListRecord>,
    /// Completions sent with their parts out of order, and what they got.
    pub misordered: Vec<(usize, PutOutcome)>,
    /// Operations performed, by kind (the verdict line shows them).
    pub ops: std::collections::BTreeMap<&'static str, u64>,
}

impl ObjectHistory {
    pub fn count(&mut self, op: &'static str) {
        *self.ops.entry(op).or_default() += 1;
    }
}

pub type SharedObjects = Arc<Mutex<ObjectHistory>>;
/// The nodes the fault schedule has down, as last observed.
pub type DownSet = Arc<Mutex<BTreeSet<NodeId>>>;

/// A random node of `1..=nodes` that `down` does not list (any node when all are).
/// `request` through random up nodes until one answers it with a 200 (or `until`).
pub async fn until_done(
    env: &SimEnv,
    (nodes, down): (u64, &DownSet),
    request: &Request,
    until: Duration,
) -> Option<Response> {
    while env.clock().now() < until {
        let node = up_node(env.rng(), nodes, down);
        if let CallOutcome::Answer(Answer::Ok { response, .. }) =
            rpc::call(env, node, request, CALL_TIMEOUT).await
        {
            return Some(response);
        }
        env.clock().sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Makes `bucket` (with object lock or not), or finds it made by an earlier try whose
/// answer was lost; then gives it `rules`, a lifecycle configuration. Whether all that
/// was done by `until`.
pub async fn bucket_with_rules(
    env: &SimEnv,
    cluster: (u64, &DownSet),
    (bucket, object_lock): (&str, bool),
    rules: Vec<engine::meta::lifecycle::LifecycleRule>,
    until: Duration,
) -> bool {
    let create = Request::CreateBucket {
        object_lock,
        bucket: bucket.into(),
        acl: None,
        ownership: None,
    };
    let head = Request::HeadBucket {
        bucket: bucket.into(),
    };
    let rules = Request::Access {
        bucket: bucket.into(),
        request: engine::s3::api::AccessRequest::PutBucketLifecycleConfiguration(rules),
    };
    let made = until_done(env, cluster, &create, until).await.is_some()
        || until_done(env, cluster, &head, until).await.is_some();
    made && until_done(env, cluster, &rules, until).await.is_some()
}

pub fn up_node(rng: &impl Rng, nodes: u64, down: &DownSet) -> NodeId {
    let up: Vec<NodeId> = {
        let down = down.lock().expect("down");
        (1..=nodes).filter(|n| !down.contains(n)).collect()
    };
    if up.is_empty() {
        1 + below(rng, nodes)
    } else {
        up[below(rng, up.len() as u64) as usize]
    }
}

/// Object sizes that hit the geometry's edges: empty, tiny, around the small-blob
/// threshold, whole stripes and their neighbours, and a spread up to `max`.
fn object_len(rng: &impl Rng, chunk: u64, small_max: u64, max: u64) -> u64 {
    let len = match below(rng, 10) {
        0 => below(rng, 2),
        1 => small_max + below(rng, 3),
        2 => small_max.saturating_sub(below(rng, 2)),
        3 | 4 => {
            let stripes = 1 + below(rng, 4);
            (chunk * 4 * stripes + below(rng, 3)).saturating_sub(1)
        }
        _ => below(rng, max + 1),
    };
    len.min(max)
}

pub struct ObjectClient {
    pub env: SimEnv,
    pub id: u64,
    /// How many clients run (their key prefixes are `c0/` ...).
    pub clients: u64,
    pub nodes: u64,
    pub history: SharedObjects,
    pub down: DownSet,
    pub chunk_size_bytes: u64,
    pub small_blob_bytes_max: u64,
    pub object_bytes_max: u64,
    /// Whether this client reads during the safety phase.
    pub reads: bool,
}

impl ObjectClient {
    pub fn now(&self) -> u64 {
        self.env.clock().now().as_nanos() as u64
    }

    /// The node to send an operation to: as a load balancer with health checks would,
    /// nine times in ten one that is up (it may still crash mid-operation), otherwise
    /// any node (a client with a stale address).
    pub fn node(&self) -> NodeId {
        let up: Vec<NodeId> = {
            let down = self.down.lock().expect("down");
            (1..=self.nodes).filter(|n| !down.contains(n)).collect()
        };
        if up.is_empty() || below(self.env.rng(), 10) == 0 {
            1 + below(self.env.rng(), self.nodes)
        } else {
            up[below(self.env.rng(), up.len() as u64) as usize]
        }
    }

    /// Creates the bucket, retrying through the nodes until one takes it.
    pub async fn create_bucket(&self) -> bool {
        let request = Request::CreateBucket {
            object_lock: false,
            bucket: BUCKET.into(),
            acl: None,
            ownership: None,
        };
        for attempt in 0..100u64 {
            let node = 1 + attempt % self.nodes;
            match rpc::call(&self.env, node, &request, CALL_TIMEOUT).await {
                CallOutcome::Answer(Answer::Ok { .. }) => return true,
                CallOutcome::Answer(Answer::Failed { code, .. })
                    if code == "BucketAlreadyOwnedByYou" =>
                {
                    return true;
                }
                _ => self.env.clock().sleep(Duration::from_millis(200)).await,
            }
        }
        false
    }

    /// PUTs key `index` (its one body, sealed with SSE-S3 for odd keys) through `node`;
    /// records the outcome.
    pub async fn put(&self, index: usize, node: NodeId, if_absent: bool) -> PutOutcome {
        let (key, data) = {
            let h = self.history.lock().expect("history");
            (h.keys[index].key.clone(), h.keys[index].data.clone())
        };
        let request = Request::PutObject(Box::new(PutArgs {
            bucket: BUCKET.into(),
            key: key.clone(),
            if_none_match: if_absent.then(|| "*".to_string()),
            tagging: tag_header(index),
            body: BodyArgs {
                size: Some(data.len() as i64),
                ..BodyArgs::default()
            },
            sse: sealed(index),
            ..PutArgs::default()
        }));
        let frame = 512 + below(self.env.rng(), 8192) as usize;
        let invoke = self.now();
        let answer = rpc::put(
            &self.env,
            node,
            &request,
            Bytes::from(data.as_ref().clone()),
            frame,
            CALL_TIMEOUT,
        )
        .await;
        self.env.world().trace(format_args!(
            "s3 put {key} ({} bytes, if_absent={if_absent}) via {node}",
            data.len()
        ));
        self.record_write(index, node, if_absent, invoke, answer)
    }

    /// Records the answer to a write of key `index` (PUT, completion, copy).
    pub fn record_write(
        &self,
        index: usize,
        node: NodeId,
        if_absent: bool,
        invoke: u64,
        answer: CallOutcome,
    ) -> PutOutcome {
        let ret = self.now();
        let (outcome, degraded, etag) = write_outcome(node, &answer);
        self.env
            .world()
            .trace(format_args!("  -> {outcome:?} (key {index})"));
        let mut h = self.history.lock().expect("history");
        if matches!(answer, CallOutcome::Lost) {
            h.coordinator_lost += 1;
        }
        h.keys[index].puts.push(PutRecord {
            node,
            if_absent,
            invoke,
            ret,
            outcome: outcome.clone(),
            degraded,
            etag,
        });
        outcome
    }

    /// GETs key `index` (ranged when `range` is given) through `node`; records it.
    pub async fn get(
        &self,
        index: usize,
        range: Option<(u64, u64)>,
        node: NodeId,
        condition: Option<GetCondition>,
    ) {
        let record = self.fetch(index, range, node, condition).await;
        self.history.lock().expect("history").gets.push(record);
    }

    /// GETs key `index` through `node` without recording it.
    pub async fn fetch(
        &self,
        index: usize,
        range: Option<(u64, u64)>,
        node: NodeId,
        condition: Option<GetCondition>,
    ) -> GetRecord {
        let span = range.map_or(Span::Whole, |(first, last)| Span::Range(first, last));
        self.read(index, span, node, condition).await
    }

    /// GETs key `index` through `node` by `partNumber=1` (a multipart object's first
    /// part, a simple object whole); records it with the span the answer served.
    pub async fn get_first_part(&self, index: usize, node: NodeId) {
        let record = self.read(index, Span::FirstPart, node, None).await;
        self.history.lock().expect("history").gets.push(record);
    }

    async fn read(
        &self,
        index: usize,
        span: Span,
        node: NodeId,
        condition: Option<GetCondition>,
    ) -> GetRecord {
        let mut range = match span {
            Span::Range(first, last) => Some((first, last)),
            Span::Whole | Span::FirstPart => None,
        };
        let key = self.history.lock().expect("history").keys[index]
            .key
            .clone();
        let mut args = GetArgs {
            bucket: BUCKET.into(),
            key: key.clone(),
            range: range.map(|(first, last)| RangeSpec::From {
                first,
                last: Some(last),
            }),
            part_number: (span == Span::FirstPart).then_some(1),
            ..GetArgs::default()
        };
        match &condition {
            Some(GetCondition::IfNoneMatchCurrent(e)) => {
                args.conditions.if_none_match = Some(e.clone())
            }
            Some(GetCondition::IfMatchOther(e)) => args.conditions.if_match = Some(e.clone()),
            None => {}
        }
        let request = Request::GetObject(Box::new(args));
        let down = self.down.lock().expect("down").clone();
        let invoke = self.now();
        let answer = rpc::call(&self.env, node, &request, CALL_TIMEOUT).await;
        let ret = self.now();
        let mut tags = 0;
        let outcome = match answer {
            CallOutcome::Answer(Answer::Ok {
                response:
                    Response::Object {
                        info,
                        range: served,
                    },
                data,
            }) => {
                tags = info.tag_count;
                if span == Span::FirstPart {
                    // The part's bytes, as the range of the whole they are.
                    range = served.map(|(lo, hi)| (lo, hi - 1));
                }
                GetOutcome::Data(sha(&data))
            }
            CallOutcome::Answer(Answer::Failed { code, .. }) if code == "NoSuchKey" => {
                GetOutcome::NoSuchKey
            }
            CallOutcome::Answer(Answer::Failed { code, .. }) if code == "ObjectLost" => {
                GetOutcome::ObjectLost
            }
            CallOutcome::Answer(Answer::Failed { code, .. }) if code == "NotModified" => {
                GetOutcome::NotModified
            }
            CallOutcome::Answer(Answer::Failed { code, .. }) if code == "PreconditionFailed" => {
                GetOutcome::PreconditionFailed
            }
            CallOutcome::Answer(Answer::Failed {
                status: 503,
                message,
                ..
            }) => GetOutcome::Unavailable(message),
            CallOutcome::Answer(Answer::Failed { code, message, .. }) => {
                GetOutcome::Error { code, message }
            }
            CallOutcome::Answer(other) => GetOutcome::Error {
                code: "unexpected answer".into(),
                message: format!("{other:?}"),
            },
            CallOutcome::Lost | CallOutcome::Unreachable => GetOutcome::Lost,
        };
        self.env.world().trace(format_args!(
            "s3 get {key} {range:?} via {node} -> {outcome:?}"
        ));
        GetRecord {
            key: index,
            range,
            node,
            invoke,
            ret,
            outcome,
            tags,
            down,
            after_heal: false,
            condition,
            first_part: span == Span::FirstPart,
        }
    }

    pub async fn delete(&self, index: usize) {
        let key = self.history.lock().expect("history").keys[index]
            .key
            .clone();
        let node = self.node();
        let request = Request::DeleteObject {
            bypass_governance: false,
            bucket: BUCKET.into(),
            key: key.clone(),
            version_id: None,
        };
        let invoke = self.now();
        let answer = rpc::call(&self.env, node, &request, CALL_TIMEOUT).await;
        let ret = self.now();
        let acked = matches!(answer, CallOutcome::Answer(Answer::Ok { .. }));
        let refused = matches!(
            answer,
            CallOutcome::Answer(Answer::Failed { unknown: false, .. }) | CallOutcome::Unreachable
        );
        self.env
            .world()
            .trace(format_args!("s3 delete {key} via {node} -> {answer:?}"));
        if !refused {
            self.history.lock().expect("history").keys[index].delete =
                Some(DeleteRecord { invoke, ret, acked });
        }
    }

    /// Fresh random bytes of a random length.
    pub fn random_body(&self) -> Vec<u8> {
        let len = object_len(
            self.env.rng(),
            self.chunk_size_bytes,
            self.small_blob_bytes_max,
            self.object_bytes_max,
        );
        let mut data = vec![0u8; len as usize];
        self.env.rng().fill(&mut data);
        data
    }

    /// A new key `c<client>/<dir>o<seq>` whose one body is `data`; returns its index.
    pub fn add_key(&self, dir: &str, seq: u64, data: Arc<Vec<u8>>, kind: KeyKind) -> usize {
        let mut h = self.history.lock().expect("history");
        h.keys.push(KeyRecord {
            key: format!("c{}/{dir}o{seq}", self.id),
            data,
            kind,
            puts: Vec::new(),
            delete: None,
        });
        h.keys.len() - 1
    }

    /// A new key with fresh random bytes; returns its index.
    fn new_key(&self, seq: u64) -> usize {
        let data = Arc::new(self.random_body());
        self.add_key("", seq, data, KeyKind::Put)
    }

    /// A random range inside an object of `len` bytes (`len` > 0): single bytes, chunk
    /// edges, suffixes, anything.
    fn range(&self, len: u64) -> (u64, u64) {
        let rng = self.env.rng();
        let first = match below(rng, 3) {
            0 => (below(rng, len / self.chunk_size_bytes + 1) * self.chunk_size_bytes).min(len - 1),
            _ => below(rng, len),
        };
        let last = match below(rng, 3) {
            0 => first,
            1 => len - 1,
            _ => first + below(rng, len - first),
        };
        (first, last)
    }

    /// One random operation: mostly PUTs and GETs, and every other S3 operation.
    async fn one(&self, seq: u64, mine: &mut Vec<usize>) {
        let roll = below(self.env.rng(), 40);
        let known = self.history.lock().expect("history").keys.len();
        // Without reads, the rolls that would read write a new key instead.
        let reads = self.reads && known > 0;
        if roll < 16 || (!reads && roll < 30) {
            let index = self.new_key(seq);
            mine.push(index);
            self.put(index, self.node(), false).await;
        } else if roll < 28 {
            let index = below(self.env.rng(), known as u64) as usize;
            let len = self.history.lock().expect("history").keys[index].data.len() as u64;
            match below(self.env.rng(), 6) {
                0 => self.get_first_part(index, self.node()).await,
                pick => {
                    let range = (len > 0 && pick % 2 == 0).then(|| self.range(len));
                    self.get(index, range, self.node(), None).await;
                }
            }
        } else if roll < 30 {
            self.conditional_get(known).await;
        } else if roll < 33 {
            self.multipart(seq, mine).await;
        } else if roll < 35 && known > 0 {
            self.copy(seq, known, mine).await;
        } else if roll < 37 {
            self.list().await;
        } else if !mine.is_empty() {
            let pick = below(self.env.rng(), mine.len() as u64) as usize;
            let index = mine[pick];
            if roll < 38 {
                self.put(index, self.node(), true).await;
            } else if roll < 39 {
                // A deleted key is never written again.
                mine.swap_remove(pick);
                self.delete(index).await;
            } else {
                self.delete_many(mine).await;
            }
        }
    }

    pub async fn work(self, until: Duration) {
        let mut mine = Vec::new();
        let mut seq = 0;
        while self.env.clock().now() < until {
            self.one(seq, &mut mine).await;
            seq += 1;
            let pause = Duration::from_millis(below(self.env.rng(), 100));
            self.env.clock().sleep(pause).await;
        }
    }
}
