//! The versions workload (scenarios with `versions = true`): beside the object clients,
//! two clients use a bucket with versioning and object lock through random nodes. On a
//! few keys they PUT new versions (every body distinct; some locked: GOVERNANCE or
//! COMPLIANCE retention, or a legal hold), DELETE (a delete marker), delete one version
//! by its id (some bypassing governance), lock a version they know, and GET a version by
//! its id or the current one. After the run and the heal, the whole version listing is
//! read, and every listed version read back by its id. `version_checker` judges.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use engine::env::{Clock, Env, NodeId};
use engine::s3::api::{BodyArgs, GetArgs, LockArgs, LockRequest, PutArgs, Request, Response};
use engine::s3::rpc::{self, Answer, CallOutcome};
use runtime_sim::SimEnv;

use crate::object_workload::{CALL_TIMEOUT, DownSet, below, bucket_with_rules, sha, up_node};

/// The workload's bucket.
pub const BUCKET: &str = "versioned";
/// Keys the clients share: `v0`, `v1`, `v2`.
pub const KEYS: u64 = 3;
/// The key whose noncurrent versions (and lone delete markers) the bucket's lifecycle
/// rule expires, one `lifecycle_workload::DAY` after they stopped being current.
pub const EXPIRING_KEY: u64 = 2;

/// The bucket's lifecycle rule: noncurrent versions of [`EXPIRING_KEY`] go after a day,
/// a lone delete marker of it at once.
pub fn lifecycle_rules() -> Vec<engine::meta::lifecycle::LifecycleRule> {
    use engine::meta::lifecycle::{Expiration, Filter, LifecycleRule, NoncurrentExpiration};
    vec![LifecycleRule {
        id: Some("noncurrent".into()),
        enabled: true,
        filter: Filter {
            prefix: key_name(EXPIRING_KEY),
            ..Filter::default()
        },
        expiration: Some(Expiration {
            delete_markers: true,
            ..Expiration::default()
        }),
        noncurrent: Some(NoncurrentExpiration {
            days: 1,
            keep_newer: None,
        }),
        ..LifecycleRule::default()
    }]
}

/// An object lock a request gives a version. Retentions run a day past the request, far
/// beyond any run, so a locked version must outlive the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    None,
    /// A GOVERNANCE retention: a delete that bypasses governance may remove it.
    Governance,
    /// A COMPLIANCE retention: nothing removes it.
    Compliance,
    /// A legal hold: nothing removes it.
    Hold,
}

impl Lock {
    /// Whether a delete of the version (`bypass`ing governance or not) must be refused.
    pub fn keeps(self, bypass: bool) -> bool {
        match self {
            Lock::None => false,
            Lock::Governance => !bypass,
            Lock::Compliance | Lock::Hold => true,
        }
    }
}

/// One request and what it was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A PUT of a body hashing to `sha`, locked with `lock`; `id`: the version id its
    /// 200 gave.
    Put {
        sha: [u8; 32],
        id: Option<String>,
        lock: Lock,
    },
    /// A DELETE without a version id; `id`: the delete marker's, if answered.
    Delete { id: Option<String> },
    /// A delete of version `id`, bypassing governance retention or not.
    DeleteVersion { id: String, bypass: bool },
    /// PutObjectRetention (COMPLIANCE) or PutObjectLegalHold (ON) of version `id`.
    LockVersion { id: String, lock: Lock },
    /// A GET of version `id` (`None`: the current one).
    Get { id: Option<String>, got: Got },
}

/// What a GET returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// A body hashing to `sha`, of version `id`.
    Body { sha: [u8; 32], id: Option<String> },
    /// An S3 error code (NoSuchKey, NoSuchVersion, MethodNotAllowed).
    Missing(String),
    /// No answer, or one that says nothing (SlowDown, ServiceUnavailable).
    Unknown,
}

/// Whether a write was answered: `Acked` (200), `Refused` (had no effect), or
/// `Unknown` (it may have taken effect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Acked,
    Refused,
    Unknown,
}

#[derive(Debug, Clone)]
pub struct VersionOp {
    pub key: u64,
    pub node: NodeId,
    pub invoke: u64,
    pub ret: u64,
    pub op: Op,
    pub outcome: Outcome,
}

/// What the workload did, and the listing it read at the end.
#[derive(Debug, Default)]
pub struct VersionHistory {
    /// Versioning was enabled (the clients ran only then).
    pub enabled: bool,
    pub ops: Vec<VersionOp>,
    /// After the heal: every (key, version id, delete marker, latest) listed, and the
    /// body each listed version read back as (`None`: it did not read).
    pub listed: Option<Vec<(String, String, bool, bool)>>,
    pub read_back: Vec<(String, String, Result<[u8; 32], String>)>,
    /// Where the listed versions' blobs are, and whether repair marked each lost:
    /// (key, version id, layout, lost).
    pub layouts: Vec<(String, String, engine::meta::DataLayout, bool)>,
}

pub type SharedVersions = Arc<Mutex<VersionHistory>>;

pub struct VersionClient {
    pub env: SimEnv,
    pub nodes: u64,
    pub down: DownSet,
    pub history: SharedVersions,
    pub object_bytes_max: u64,
}

pub fn key_name(key: u64) -> String {
    format!("v{key}")
}

pub(crate) fn outcome(answer: &CallOutcome) -> Outcome {
    match answer {
        CallOutcome::Answer(Answer::Ok { .. }) => Outcome::Acked,
        CallOutcome::Answer(Answer::Failed { unknown: false, .. }) | CallOutcome::Unreachable => {
            Outcome::Refused
        }
        _ => Outcome::Unknown,
    }
}

impl VersionClient {
    fn now(&self) -> u64 {
        self.env.clock().now().as_nanos() as u64
    }

    fn node(&self) -> NodeId {
        up_node(self.env.rng(), self.nodes, &self.down)
    }

    async fn until_done(&self, request: &Request, until: Duration) -> Option<Response> {
        crate::object_workload::until_done(&self.env, (self.nodes, &self.down), request, until)
            .await
    }

    /// Makes the bucket, with object lock (and so versioning), enables versioning on it
    /// (which a locked bucket allows) and gives it its lifecycle rule.
    pub async fn enable(&self, until: Duration) -> bool {
        let cluster = (self.nodes, &self.down);
        let made =
            bucket_with_rules(&self.env, cluster, (BUCKET, true), lifecycle_rules(), until).await;
        let enable = Request::PutBucketVersioning {
            bucket: BUCKET.into(),
            status: "Enabled".into(),
        };
        let enabled = made && self.until_done(&enable, until).await.is_some();
        self.history.lock().expect("versions").enabled = enabled;
        enabled
    }

    /// Version ids of `key` some PUT was answered with.
    fn known_ids(&self, key: u64) -> Vec<String> {
        let h = self.history.lock().expect("versions");
        h.ops
            .iter()
            .filter(|o| o.key == key)
            .filter_map(|o| match &o.op {
                Op::Put { id: Some(id), .. } | Op::Delete { id: Some(id) } => Some(id.clone()),
                Op::LockVersion { .. } => None,
                _ => None,
            })
            .collect()
    }

    fn record(&self, key: u64, node: NodeId, invoke: u64, op: Op, outcome: Outcome) {
        let ret = self.now();
        let op = VersionOp {
            key,
            node,
            invoke,
            ret,
            op,
            outcome,
        };
        self.history.lock().expect("versions").ops.push(op);
    }

    /// Requests until `until`, one at a time.
    pub async fn work(self: Arc<Self>, id: u64, until: Duration) {
        let mut n = 0u64;
        while self.env.clock().now() < until {
            n += 1;
            let key = below(self.env.rng(), KEYS);
            let ids = self.known_ids(key);
            let pick = below(self.env.rng(), 100);
            let named = (!ids.is_empty())
                .then(|| ids[below(self.env.rng(), ids.len() as u64) as usize].clone());
            match (pick, named) {
                (0..40, _) | (_, None) => self.put(key, id, n).await,
                (40..55, _) => self.get(key, None).await,
                (55..72, Some(v)) => self.get(key, Some(v)).await,
                (72..80, _) => self.delete(key, None).await,
                (80..85, Some(v)) => self.lock(key, v).await,
                (_, Some(v)) => self.delete(key, Some(v)).await,
            }
            let pause = 10 + below(self.env.rng(), 200);
            self.env.clock().sleep(Duration::from_millis(pause)).await;
        }
    }

    /// A retention's date: a day past now.
    fn a_day_on(&self) -> Option<i64> {
        Some(self.env.clock().wall_ms() as i64 + 24 * 3600 * 1000)
    }

    async fn put(&self, key: u64, client: u64, n: u64) {
        let size = 1 + below(self.env.rng(), self.object_bytes_max.max(2) / 2);
        let mut body = format!("{client}/{n}/").into_bytes();
        body.resize(size.max(body.len() as u64) as usize, b'a' + (n % 26) as u8);
        let lock = match below(self.env.rng(), 10) {
            0 => Lock::Governance,
            1 => Lock::Compliance,
            2 => Lock::Hold,
            _ => Lock::None,
        };
        let mode = match lock {
            Lock::Governance => Some("GOVERNANCE".to_string()),
            Lock::Compliance => Some("COMPLIANCE".to_string()),
            _ => None,
        };
        let request = Request::PutObject(Box::new(PutArgs {
            bucket: BUCKET.into(),
            key: key_name(key),
            body: BodyArgs {
                size: Some(body.len() as i64),
                ..BodyArgs::default()
            },
            lock: LockArgs {
                retain_until_ms: mode.as_ref().and_then(|_| self.a_day_on()),
                mode,
                legal_hold: (lock == Lock::Hold).then(|| "ON".to_string()),
            },
            ..PutArgs::default()
        }));
        let (node, invoke, sha) = (self.node(), self.now(), sha(&body));
        let frame = 512 + below(self.env.rng(), 4096) as usize;
        let answer = rpc::put(
            &self.env,
            node,
            &request,
            Bytes::from(body),
            frame,
            CALL_TIMEOUT,
        )
        .await;
        let id = match &answer {
            CallOutcome::Answer(Answer::Ok {
                response: Response::Put(out),
                ..
            }) => out.version_id.clone(),
            _ => None,
        };
        let op = Op::Put { sha, id, lock };
        self.record(key, node, invoke, op, outcome(&answer));
    }

    /// Locks version `id` for good: a COMPLIANCE retention or a legal hold.
    async fn lock(&self, key: u64, id: String) {
        let (lock, request) = match below(self.env.rng(), 2) {
            0 => (
                Lock::Compliance,
                LockRequest::PutRetention {
                    key: key_name(key),
                    version_id: Some(id.clone()),
                    mode: Some("COMPLIANCE".into()),
                    retain_until_ms: self.a_day_on(),
                    bypass_governance: false,
                },
            ),
            _ => (
                Lock::Hold,
                LockRequest::PutLegalHold {
                    key: key_name(key),
                    version_id: Some(id.clone()),
                    status: Some("ON".into()),
                },
            ),
        };
        let request = Request::ObjectLock {
            bucket: BUCKET.into(),
            request,
        };
        let (node, invoke) = (self.node(), self.now());
        let answer = rpc::call(&self.env, node, &request, CALL_TIMEOUT).await;
        let op = Op::LockVersion { id, lock };
        self.record(key, node, invoke, op, outcome(&answer));
    }

    async fn get(&self, key: u64, id: Option<String>) {
        let request = Request::GetObject(Box::new(GetArgs {
            bucket: BUCKET.into(),
            key: key_name(key),
            version_id: id.clone(),
            ..GetArgs::default()
        }));
        let (node, invoke) = (self.node(), self.now());
        let answer = rpc::call(&self.env, node, &request, CALL_TIMEOUT).await;
        let got = match answer {
            CallOutcome::Answer(Answer::Ok {
                response: Response::Object { info, .. },
                data,
            }) => Got::Body {
                sha: sha(&data),
                id: info.version_id,
            },
            CallOutcome::Answer(Answer::Failed { code, .. })
                if matches!(
                    code.as_str(),
                    "NoSuchKey" | "NoSuchVersion" | "MethodNotAllowed"
                ) =>
            {
                Got::Missing(code)
            }
            _ => Got::Unknown,
        };
        self.record(key, node, invoke, Op::Get { id, got }, Outcome::Acked);
    }

    async fn delete(&self, key: u64, id: Option<String>) {
        let bypass = id.is_some() && below(self.env.rng(), 2) == 0;
        let request = Request::DeleteObject {
            bypass_governance: bypass,
            bucket: BUCKET.into(),
            key: key_name(key),
            version_id: id.clone(),
        };
        let (node, invoke) = (self.node(), self.now());
        let answer = rpc::call(&self.env, node, &request, CALL_TIMEOUT).await;
        let op = match (&answer, id) {
            (_, Some(id)) => Op::DeleteVersion { id, bypass },
            (
                CallOutcome::Answer(Answer::Ok {
                    response: Response::Removed(r),
                    ..
                }),
                None,
            ) => Op::Delete {
                id: r.marker_version_id.clone(),
            },
            (_, None) => Op::Delete { id: None },
        };
        self.record(key, node, invoke, op, outcome(&answer));
    }

    /// After the heal: the whole listing, and every listed version read by its id.
    pub async fn read_all(&self, until: Duration) {
        let mut listed = Vec::new();
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let request = Request::ListObjectVersions {
                bucket: BUCKET.into(),
                prefix: None,
                delimiter: None,
                key_marker: key_marker.clone(),
                version_id_marker: version_marker.clone(),
                max_keys: Some(7),
            };
            let Some(Response::Versions(page)) = self.until_done(&request, until).await else {
                return;
            };
            listed.extend(
                page.entries
                    .iter()
                    .map(|e| (e.info.key.clone(), e.version_id.clone(), e.marker, e.latest)),
            );
            if !page.truncated {
                break;
            }
            (key_marker, version_marker) = (page.next_key_marker, page.next_version_id_marker);
        }
        let (mut read_back, mut layouts) = (Vec::new(), Vec::new());
        for (key, id, marker, _) in &listed {
            if *marker {
                continue;
            }
            let request = Request::GetObject(Box::new(GetArgs {
                bucket: BUCKET.into(),
                key: key.clone(),
                version_id: Some(id.clone()),
                ..GetArgs::default()
            }));
            let got = match rpc::call(&self.env, self.node(), &request, CALL_TIMEOUT).await {
                CallOutcome::Answer(Answer::Ok { data, .. }) => Ok(sha(&data)),
                CallOutcome::Answer(Answer::Failed { code, message, .. }) => {
                    Err(format!("{code}: {message}"))
                }
                other => Err(format!("{other:?}")),
            };
            read_back.push((key.clone(), id.clone(), got));
            let layout = Request::Layout {
                bucket: BUCKET.into(),
                key: key.clone(),
                version_id: Some(id.clone()),
            };
            if let Some(Response::Layout { blobs, .. }) = self.until_done(&layout, until).await {
                let named = blobs
                    .into_iter()
                    .map(|(l, lost)| (key.clone(), id.clone(), l, lost));
                layouts.extend(named);
            }
        }
        let mut h = self.history.lock().expect("versions");
        h.listed = Some(listed);
        h.read_back = read_back;
        h.layouts = layouts;
    }
}
