//! The lifecycle workload (scenarios with `versions = true`): beside the versions
//! clients, one client writes to a bucket whose lifecycle rules expire, after one
//! (shortened, [`DAY`]) day, the current versions of keys under `exp/` and of keys
//! tagged `expire=yes`; keys under `keep/`, and those tagged otherwise, match no rule.
//! Every key is written once (its body names it), then read now and then. After the run
//! and the heal, the bucket is listed and every key read once more.
//! `lifecycle_checker` judges.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use engine::env::{Clock, Env, NodeId};
use engine::meta::access::Tag;
use engine::meta::lifecycle::{Expiration, Filter, LifecycleRule};
use engine::s3::api::{BodyArgs, GetArgs, PutArgs, Request, Response};
use engine::s3::rpc::{self, Answer, CallOutcome};
use runtime_sim::SimEnv;

use crate::object_workload::{CALL_TIMEOUT, DownSet, below, bucket_with_rules, sha, up_node};
use crate::version_workload::{Outcome, outcome};

/// The workload's bucket.
pub const BUCKET: &str = "expiring";
/// A lifecycle "day" on the simulated nodes: rules of one day act within two of them.
pub const DAY: Duration = Duration::from_secs(2);
/// The tag that makes a key expire.
pub const EXPIRE_TAG: (&str, &str) = ("expire", "yes");

/// What a key is, by its name: `exp/N` and `keep/N`, or `tag/N` tagged
/// `expire=yes` (`tag/N/y`) or `expire=no` (`tag/N/n`).
pub fn expires(key: &str) -> bool {
    key.starts_with("exp/") || key.ends_with("/y")
}

/// The rules the bucket is given.
pub fn rules() -> Vec<LifecycleRule> {
    let one_day = || {
        Some(Expiration {
            days: Some(1),
            ..Expiration::default()
        })
    };
    let (key, value) = EXPIRE_TAG;
    vec![
        LifecycleRule {
            id: Some("exp".into()),
            enabled: true,
            filter: Filter {
                prefix: "exp/".into(),
                ..Filter::default()
            },
            expiration: one_day(),
            ..LifecycleRule::default()
        },
        LifecycleRule {
            id: Some("tagged".into()),
            enabled: true,
            filter: Filter {
                tags: vec![Tag {
                    key: key.into(),
                    value: value.into(),
                }],
                ..Filter::default()
            },
            expiration: one_day(),
            ..LifecycleRule::default()
        },
    ]
}

/// What a request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LcOp {
    /// A PUT of a body hashing to `sha`.
    Put { sha: [u8; 32] },
    /// A GET: the body's sha, or `None` for NoSuchKey; unknown answers are not kept.
    Get { got: Option<[u8; 32]> },
}

#[derive(Debug, Clone)]
pub struct LcRecord {
    pub key: String,
    pub node: NodeId,
    /// Simulated time, ns.
    pub invoke: u64,
    pub ret: u64,
    pub op: LcOp,
    pub outcome: Outcome,
}

/// What the workload did, and the bucket at the end.
#[derive(Debug, Default)]
pub struct LcHistory {
    /// The bucket and its rules were made (the client ran only then).
    pub configured: bool,
    pub ops: Vec<LcRecord>,
    /// After the heal: the keys listed, and when the listing began (ns).
    pub listed: Option<(Vec<String>, u64)>,
    /// Where the listed keys' blobs are.
    pub layouts: Vec<engine::meta::DataLayout>,
}

pub type SharedLifecycle = Arc<Mutex<LcHistory>>;

pub struct LifecycleClient {
    pub env: SimEnv,
    pub nodes: u64,
    pub down: DownSet,
    pub history: SharedLifecycle,
}

impl LifecycleClient {
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

    /// Makes the bucket and gives it the rules.
    pub async fn configure(&self, until: Duration) -> bool {
        let cluster = (self.nodes, &self.down);
        let configured =
            bucket_with_rules(&self.env, cluster, (BUCKET, false), rules(), until).await;
        self.history.lock().expect("lifecycle").configured = configured;
        configured
    }

    fn record(&self, key: String, node: NodeId, invoke: u64, op: LcOp, outcome: Outcome) {
        let ret = self.now();
        self.history.lock().expect("lifecycle").ops.push(LcRecord {
            key,
            node,
            invoke,
            ret,
            op,
            outcome,
        });
    }

    /// Requests until `until`, one at a time: a new key, or a read of a known one.
    pub async fn work(self: Arc<Self>, until: Duration) {
        let mut n = 0u64;
        while self.env.clock().now() < until {
            let written: Vec<String> = {
                let h = self.history.lock().expect("lifecycle");
                let puts = h.ops.iter().filter(|o| matches!(o.op, LcOp::Put { .. }));
                puts.map(|o| o.key.clone()).collect()
            };
            if written.is_empty() || below(self.env.rng(), 2) == 0 {
                n += 1;
                let key = match below(self.env.rng(), 4) {
                    0 => format!("exp/{n}"),
                    1 => format!("keep/{n}"),
                    2 => format!("tag/{n}/y"),
                    _ => format!("tag/{n}/n"),
                };
                self.put(key).await;
            } else {
                let key = written[below(self.env.rng(), written.len() as u64) as usize].clone();
                self.get(key).await;
            }
            let pause = 20 + below(self.env.rng(), 300);
            self.env.clock().sleep(Duration::from_millis(pause)).await;
        }
    }

    async fn put(&self, key: String) {
        let body = format!("body of {key}").into_bytes();
        let tagging = key
            .starts_with("tag/")
            .then(|| format!("expire={}", if expires(&key) { "yes" } else { "no" }));
        let request = Request::PutObject(Box::new(PutArgs {
            bucket: BUCKET.into(),
            key: key.clone(),
            body: BodyArgs {
                size: Some(body.len() as i64),
                ..BodyArgs::default()
            },
            tagging,
            ..PutArgs::default()
        }));
        let (node, invoke, sha) = (self.node(), self.now(), sha(&body));
        let answer = rpc::put(
            &self.env,
            node,
            &request,
            Bytes::from(body),
            4096,
            CALL_TIMEOUT,
        )
        .await;
        self.record(key, node, invoke, LcOp::Put { sha }, outcome(&answer));
    }

    async fn get(&self, key: String) {
        let request = Request::GetObject(Box::new(GetArgs {
            bucket: BUCKET.into(),
            key: key.clone(),
            ..GetArgs::default()
        }));
        let (node, invoke) = (self.node(), self.now());
        let got = match rpc::call(&self.env, node, &request, CALL_TIMEOUT).await {
            CallOutcome::Answer(Answer::Ok {
                response: Response::Object { .. },
                data,
            }) => Some(sha(&data)),
            CallOutcome::Answer(Answer::Failed { code, .. }) if code == "NoSuchKey" => None,
            _ => return,
        };
        self.record(key, node, invoke, LcOp::Get { got }, Outcome::Acked);
    }

    /// After the heal: lists the bucket, finds where the listed keys' blobs are, then reads
    /// every key written once more.
    pub async fn read_all(&self, until: Duration) {
        let began = self.now();
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let request = Request::ListObjectsV2 {
                bucket: BUCKET.into(),
                prefix: None,
                delimiter: None,
                continuation_token: token.take(),
                start_after: None,
                max_keys: Some(1000),
            };
            let Some(Response::Listing(page)) = self.until_done(&request, until).await else {
                return;
            };
            keys.extend(page.objects.into_iter().map(|o| o.key));
            match page.next_continuation_token {
                Some(t) if page.truncated => token = Some(t),
                _ => break,
            }
        }
        let mut layouts = Vec::new();
        for key in &keys {
            let layout = Request::Layout {
                bucket: BUCKET.into(),
                key: key.clone(),
                version_id: None,
            };
            if let Some(Response::Layout { blobs, .. }) = self.until_done(&layout, until).await {
                layouts.extend(blobs.into_iter().map(|(l, _)| l));
            }
        }
        {
            let mut h = self.history.lock().expect("lifecycle");
            h.listed = Some((keys, began));
            h.layouts = layouts;
        }
        let written: Vec<String> = {
            let h = self.history.lock().expect("lifecycle");
            let puts = h.ops.iter().filter(|o| matches!(o.op, LcOp::Put { .. }));
            puts.map(|o| o.key.clone()).collect()
        };
        for key in written {
            self.get(key).await;
        }
    }
}
