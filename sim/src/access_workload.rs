//! The access workload (scenarios with `access = true`): beside the object clients, an
//! admin makes one access key and keeps changing who may do what on the bucket, one
//! change at a time, each retried until it is answered: the key's rights (allow or deny
//! read or write) or the bucket policy (one of [`POLICIES`], or none). Two clients make
//! requests through random nodes, as that key or anonymously. `access_checker` judges
//! every answer against the rights and policy in force while it was in flight.
//!
//! The root writes the objects the GETs read first and nobody deletes them, so a GET
//! that a policy admits is never refused for a missing object (S3 answers that with
//! AccessDenied to a caller who may not list). Only anonymous callers, whom nothing ever
//! lets delete, name them in their DELETEs and DeleteObjects: every such delete is
//! refused, so each of them must still be there after the run ([`AccessClient::kept`]),
//! or a refusal deleted all the same.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::env::{Clock, Env, NodeId, Rng};
use engine::meta::keys::Perms;
use engine::s3::access::Caller;
use engine::s3::api::{AccessRequest, BodyArgs, GetArgs, PutArgs, Request, Response};
use engine::s3::keys::KeyRequest;
use engine::s3::rpc::{self, Answer, Call, CallOutcome};
use runtime_sim::SimEnv;

use crate::object_workload::{CALL_TIMEOUT, DownSet, up_node};

/// The access workload's own bucket (the object clients' listings judge theirs).
pub const BUCKET: &str = "access";

/// The keys the workload makes (fixed, so runs replay). The policies name only the
/// first: the second is just another principal to them, and its grants are its own.
pub const ACCESS_KEYS: [&str; 2] = ["HKSIMULATEDACCESSKEY", "HKSIMULATEDSECONDKEY"];
const SECRET_KEY: &str = "simulated-secret-key-0123456789";
/// Objects the requests touch: GETs read `access/r/N`, PUTs and DELETEs write
/// `access/w/N`.
const KEYS: u64 = 4;

/// The bucket policies the admin puts, by index; `access_checker` knows what each means.
pub const POLICIES: [&str; 3] = [
    // 0: anyone may GET.
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",
        "Action":"s3:GetObject","Resource":"arn:aws:s3:::access/*"}]}"#,
    // 1: the first key may never write, whatever it was granted; anyone may list.
    r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Deny","Principal":{"AWS":["HKSIMULATEDACCESSKEY"]},
         "Action":["s3:PutObject","s3:DeleteObject"],"Resource":"arn:aws:s3:::access/*"},
        {"Effect":"Allow","Principal":"*","Action":"s3:ListBucket",
         "Resource":"arn:aws:s3:::access"}]}"#,
    // 2: the first key may write and list (a grant by policy).
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Principal":{"AWS":"HKSIMULATEDACCESSKEY"},
        "Action":["s3:PutObject","s3:DeleteObject","s3:ListBucket"],
        "Resource":["arn:aws:s3:::access","arn:aws:s3:::access/*"]}]}"#,
];

/// One change of who may do what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Rights of key `ACCESS_KEYS[key]`: added (`allow`) or taken away.
    Grant {
        key: usize,
        perms: Perms,
        allow: bool,
    },
    /// The bucket policy: `POLICIES[i]`, or none.
    Policy(Option<usize>),
}

/// One change, as the admin made it.
#[derive(Debug, Clone)]
pub struct GrantRecord {
    pub change: Change,
    /// When the first attempt was sent and when one was answered (`None`: never
    /// answered before the workload ended, so it may take effect at any later time).
    pub invoke: u64,
    pub ret: Option<u64>,
}

/// What a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It ran (or failed after it was authorized: NoSuchKey, say).
    Allowed,
    Denied,
    /// No answer, or an error that says nothing about its authorization.
    Unknown,
}

#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// GET, LIST, PUT, DELETE or DELETES (a DeleteObjects of one key).
    pub what: &'static str,
    /// Made as `ACCESS_KEYS[k]`, or anonymously (`None`).
    pub key: Option<usize>,
    pub node: NodeId,
    pub invoke: u64,
    pub ret: u64,
    pub decision: Decision,
}

/// What the access workload did, in order.
#[derive(Debug, Default)]
pub struct AccessHistory {
    /// The keys were made (requests run only then).
    pub created: bool,
    pub grants: Vec<GrantRecord>,
    pub requests: Vec<RequestRecord>,
}

pub type SharedAccess = Arc<Mutex<AccessHistory>>;

pub struct AccessClient {
    pub env: SimEnv,
    pub nodes: u64,
    pub down: DownSet,
    pub history: SharedAccess,
}

fn below(rng: &impl Rng, n: u64) -> u64 {
    rng.next_u64() % n.max(1)
}

/// How an answer bears on authorization: AccessDenied is a refusal (for a DeleteObjects,
/// a key answered AccessDenied); an error the authorization itself may give (no leader,
/// a ReadIndex that timed out, an internal error) says nothing; any other answer came
/// after the request was authorized.
pub fn decision(answer: &CallOutcome) -> Decision {
    match answer {
        CallOutcome::Answer(Answer::Ok {
            response: Response::Deleted { denied, .. },
            ..
        }) if !denied.is_empty() => Decision::Denied,
        CallOutcome::Answer(Answer::Ok { .. }) => Decision::Allowed,
        CallOutcome::Answer(Answer::Failed { code, .. }) => match code.as_str() {
            "AccessDenied" => Decision::Denied,
            "SlowDown" | "ServiceUnavailable" | "InternalError" => Decision::Unknown,
            _ => Decision::Allowed,
        },
        CallOutcome::Lost | CallOutcome::Unreachable => Decision::Unknown,
    }
}

impl AccessClient {
    fn now(&self) -> u64 {
        self.env.clock().now().as_nanos() as u64
    }

    fn node(&self) -> NodeId {
        up_node(self.env.rng(), self.nodes, &self.down)
    }

    /// A call retried through the nodes until one answers it definitely: admin
    /// requests (allow and deny are idempotent, so a retry of one that did land is
    /// harmless), and the root's PUTs (`put`: with an empty body) and policy changes.
    async fn answered(&self, call: &Call, put: bool, until: Duration) -> Option<Answer> {
        while self.env.clock().now() < until {
            let node = self.node();
            let answer = if put {
                let body = bytes::Bytes::new();
                rpc::put_as(&self.env, node, call, body, 512, CALL_TIMEOUT).await
            } else {
                rpc::call_as(&self.env, node, call, CALL_TIMEOUT).await
            };
            match answer {
                CallOutcome::Answer(a @ Answer::Ok { .. }) => return Some(a),
                CallOutcome::Answer(a @ Answer::Failed { .. }) if !a_is_transient(&a) => {
                    return Some(a);
                }
                _ => self.env.clock().sleep(Duration::from_millis(100)).await,
            }
        }
        None
    }

    async fn admin(&self, request: KeyRequest, until: Duration) -> Option<Answer> {
        self.answered(&Call::Keys(request), false, until).await
    }

    /// Whether a root request succeeded, retried until answered.
    async fn retried(&self, call: &Call, put: bool, until: Duration) -> bool {
        matches!(
            self.answered(call, put, until).await,
            Some(Answer::Ok { .. })
        )
    }

    /// Makes the bucket (as the root) and the key, then changes the key's rights on the
    /// bucket until `until`.
    pub async fn administer(self: Arc<Self>, until: Duration) {
        let bucket = Request::CreateBucket {
            object_lock: false,
            bucket: BUCKET.into(),
            acl: None,
            ownership: None,
        };
        loop {
            if self.env.clock().now() >= until {
                return;
            }
            match rpc::call(&self.env, self.node(), &bucket, CALL_TIMEOUT).await {
                CallOutcome::Answer(Answer::Ok { .. }) => break,
                CallOutcome::Answer(Answer::Failed { code, .. })
                    if code == "BucketAlreadyOwnedByYou" =>
                {
                    break;
                }
                _ => self.env.clock().sleep(Duration::from_millis(100)).await,
            }
        }
        for n in 0..KEYS {
            let put = Request::PutObject(Box::new(PutArgs {
                bucket: BUCKET.into(),
                key: format!("access/r/{n}"),
                body: BodyArgs {
                    size: Some(0),
                    ..BodyArgs::default()
                },
                ..PutArgs::default()
            }));
            let call = Call::S3 {
                caller: Caller::Root,
                request: put,
            };
            if !self.retried(&call, true, until).await {
                return;
            }
        }
        for (i, id) in ACCESS_KEYS.iter().enumerate() {
            let create = KeyRequest::Create {
                name: format!("sim{i}"),
                create_bucket: false,
                access_key: (*id).into(),
                secret_key: SECRET_KEY.into(),
            };
            let made = match self.admin(create, until).await {
                Some(Answer::Ok { .. }) => true,
                // A retry of a create that had landed finds the id taken: made all the same.
                Some(Answer::Failed { code, .. }) => code == "InternalError",
                None => false,
            };
            if !made {
                return;
            }
        }
        self.history.lock().expect("access").created = true;
        while self.env.clock().now() < until {
            let change = match below(self.env.rng(), 3) {
                0 => Change::Policy(
                    Some(below(self.env.rng(), POLICIES.len() as u64 + 1) as usize)
                        .filter(|i| *i < POLICIES.len()),
                ),
                _ => Change::Grant {
                    key: below(self.env.rng(), ACCESS_KEYS.len() as u64) as usize,
                    perms: if below(self.env.rng(), 2) == 0 {
                        Perms::READ
                    } else {
                        Perms::WRITE
                    },
                    allow: below(self.env.rng(), 2) == 0,
                },
            };
            let invoke = self.now();
            let answered = match change {
                Change::Grant { key, perms, allow } => {
                    let request = KeyRequest::Grant {
                        key: ACCESS_KEYS[key].into(),
                        bucket: BUCKET.into(),
                        perms,
                        allow,
                    };
                    matches!(self.admin(request, until).await, Some(Answer::Ok { .. }))
                }
                Change::Policy(policy) => {
                    let request = match policy {
                        Some(i) => AccessRequest::PutBucketPolicy(POLICIES[i].into()),
                        None => AccessRequest::DeleteBucketPolicy,
                    };
                    let call = Call::S3 {
                        caller: Caller::Root,
                        request: Request::Access {
                            bucket: BUCKET.into(),
                            request,
                        },
                    };
                    self.retried(&call, false, until).await
                }
            };
            let ret = answered.then(|| self.now());
            self.history
                .lock()
                .expect("access")
                .grants
                .push(GrantRecord {
                    change,
                    invoke,
                    ret,
                });
            if ret.is_none() {
                // Unanswered or refused: it may still land; change nothing more.
                return;
            }
            let pause = 200 + below(self.env.rng(), 1500);
            self.env.clock().sleep(Duration::from_millis(pause)).await;
        }
    }

    /// Requests as one of the keys or anonymously until `until`.
    pub async fn request(self: Arc<Self>, until: Duration) {
        while self.env.clock().now() < until {
            if !self.history.lock().expect("access").created {
                self.env.clock().sleep(Duration::from_millis(100)).await;
                continue;
            }
            let n = below(self.env.rng(), KEYS);
            let (read, write) = (format!("access/r/{n}"), format!("access/w/{n}"));
            // Each key and anonymous callers alike.
            let pick = below(self.env.rng(), ACCESS_KEYS.len() as u64 + 1) as usize;
            let key = (pick < ACCESS_KEYS.len()).then_some(pick);
            // Anonymous deletes, always refused, name an object that must stay.
            let kept = key.is_none().then(|| read.clone());
            let (what, request) = match below(self.env.rng(), 5) {
                0 => (
                    "GET",
                    Request::GetObject(Box::new(GetArgs {
                        bucket: BUCKET.into(),
                        key: read,
                        ..GetArgs::default()
                    })),
                ),
                1 => (
                    "LIST",
                    Request::ListObjectsV2 {
                        bucket: BUCKET.into(),
                        prefix: Some("access/".into()),
                        delimiter: None,
                        continuation_token: None,
                        start_after: None,
                        max_keys: Some(10),
                    },
                ),
                2 => (
                    "DELETE",
                    Request::DeleteObject {
                        bypass_governance: false,
                        bucket: BUCKET.into(),
                        key: kept.unwrap_or(write),
                        version_id: None,
                    },
                ),
                // Decided per key: a refusal is an AccessDenied entry in a 200.
                3 => (
                    "DELETES",
                    Request::DeleteObjects {
                        bypass_governance: false,
                        bucket: BUCKET.into(),
                        keys: [Some(write), kept].into_iter().flatten().collect(),
                        quiet: false,
                        version_ids: Vec::new(),
                    },
                ),
                _ => (
                    "PUT",
                    Request::PutObject(Box::new(PutArgs {
                        bucket: BUCKET.into(),
                        key: write,
                        body: BodyArgs {
                            size: Some(0),
                            ..BodyArgs::default()
                        },
                        ..PutArgs::default()
                    })),
                ),
            };
            let node = self.node();
            let caller = match key {
                Some(k) => Caller::Key(ACCESS_KEYS[k].into()),
                None => Caller::Anonymous,
            };
            let call = Call::S3 { caller, request };
            let invoke = self.now();
            let answer = if what == "PUT" {
                rpc::put_as(
                    &self.env,
                    node,
                    &call,
                    bytes::Bytes::new(),
                    512,
                    CALL_TIMEOUT,
                )
                .await
            } else {
                rpc::call_as(&self.env, node, &call, CALL_TIMEOUT).await
            };
            let record = RequestRecord {
                what,
                key,
                node,
                invoke,
                ret: self.now(),
                decision: decision(&answer),
            };
            self.history.lock().expect("access").requests.push(record);
            let pause = 20 + below(self.env.rng(), 200);
            self.env.clock().sleep(Duration::from_millis(pause)).await;
        }
    }

    /// After the run (the cluster healed): the objects only refused deletes named are
    /// all still there, asked of the root through any node. Violations, if not.
    pub async fn kept(&self, until: Duration) -> Vec<String> {
        if !self.history.lock().expect("access").created {
            return Vec::new();
        }
        let mut violations = Vec::new();
        for n in 0..KEYS {
            let key = format!("access/r/{n}");
            let head = Call::S3 {
                caller: Caller::Root,
                request: Request::HeadObject {
                    part_number: None,
                    bucket: BUCKET.into(),
                    key: key.clone(),
                    conditions: Default::default(),
                    version_id: None,
                    sse: Default::default(),
                },
            };
            match self.answered(&head, false, until).await {
                Some(Answer::Ok { .. }) => {}
                Some(Answer::Failed { code, .. }) => violations.push(format!(
                    "access: {key}, which only refused deletes named, is gone ({code})"
                )),
                None => violations.push(format!("access: HEAD {key} was never answered")),
            }
        }
        violations
    }
}

/// An admin refusal worth retrying: no leader, an unknown outcome, a node stopping.
fn a_is_transient(a: &Answer) -> bool {
    match a {
        Answer::Failed { code, unknown, .. } => {
            *unknown || code == "SlowDown" || code == "ServiceUnavailable"
        }
        Answer::Ok { .. } => false,
    }
}
