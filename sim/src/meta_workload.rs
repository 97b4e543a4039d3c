//! The metadata workload: clients send bucket/object commands and linearizable reads
//! to random nodes (followers forward to the leader), over a few hot keys so that
//! operations race. It records invocations and results; the observer records what each
//! node says of itself (leader claims per term, applied-log hash chains). Checkers in
//! `meta_checker` judge both.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::env::{Clock, Env, Net, NodeId, Rng};
use engine::meta::{Applied, Command, CommandV1, ObjectMeta, PutCondition};
use engine::node::{ClientRequest, ClientResponse};
use engine::raft::node::{ProposeError, RaftHandle, Role};
use engine::wire::{self, Tag};
use runtime_sim::{Cluster, SimClock, SimEnv};

use crate::linearizability::{KeyOp, KeyResult};

pub const BUCKET: &str = "sim";
pub const KEYS: usize = 6;
/// Longer than the node's own request timeout, so the node answers first.
const CALL_TIMEOUT: Duration = Duration::from_secs(7);

#[derive(Debug, Clone)]
pub struct MetaRecord {
    pub key: String,
    pub op: KeyOp,
    pub result: KeyResult,
    pub invoke: u64,
    pub ret: Option<u64>,
}

#[derive(Default)]
pub struct MetaHistory {
    pub ops: Vec<MetaRecord>,
    /// Answers that can only mean lost state (e.g. the bucket vanished).
    pub impossible: Vec<String>,
    /// term -> nodes seen claiming leadership in it.
    pub leader_claims: BTreeMap<u64, BTreeSet<NodeId>>,
    /// applied index -> distinct applied-log chains seen at it, with a node for each.
    pub chains: BTreeMap<u64, BTreeMap<[u8; 32], NodeId>>,
    /// node -> (snapshots installed by its earlier incarnations, by the current one).
    pub snapshots: BTreeMap<NodeId, (u64, u64)>,
}

impl MetaHistory {
    /// Snapshots installed by every node over the run (as far as observed).
    pub fn snapshots_installed(&self) -> u64 {
        self.snapshots
            .values()
            .map(|(before, now)| before + now)
            .sum()
    }
}

pub type SharedMeta = Arc<Mutex<MetaHistory>>;
pub type Handles = Arc<Mutex<BTreeMap<NodeId, RaftHandle>>>;

fn object_meta(etag: String) -> ObjectMeta {
    ObjectMeta::without_data(0, etag)
}

fn below(rng: &impl Rng, n: u64) -> u64 {
    rng.next_u64() % n
}

/// Sends one client request to `node`; `None` if no answer came.
pub async fn request(env: &SimEnv, node: NodeId, req: &ClientRequest) -> Option<ClientResponse> {
    let bytes = wire::request(Tag::Client, req);
    let answer = env.net().call(node, bytes, CALL_TIMEOUT).await.ok()?;
    wire::decode(&answer)
}

pub struct MetaClient {
    pub env: SimEnv,
    pub id: u64,
    pub nodes: u64,
    pub history: SharedMeta,
}

impl MetaClient {
    fn now(&self) -> u64 {
        self.env.clock().now().as_nanos() as u64
    }

    /// One random operation on one random key through one random node.
    pub async fn one(&self, seq: u64) {
        let rng = self.env.rng();
        let key = format!("k{}", below(rng, KEYS as u64));
        let node = 1 + below(rng, self.nodes);
        let value = format!("c{}.{seq}", self.id);
        let op = match below(rng, 20) {
            0..=7 => KeyOp::Put(value),
            8..=10 => KeyOp::PutIfAbsent(value),
            11..=13 => KeyOp::Delete,
            _ => KeyOp::Get,
        };
        self.run(node, key, op).await;
    }

    pub async fn run(&self, node: NodeId, key: String, op: KeyOp) {
        let bucket = BUCKET.to_string();
        let req = match &op {
            KeyOp::Put(v) | KeyOp::PutIfAbsent(v) => {
                ClientRequest::Propose(Box::new(Command::V1(CommandV1::PutObject {
                    bucket,
                    key: key.clone(),
                    meta: object_meta(v.clone()),
                    condition: if matches!(op, KeyOp::PutIfAbsent(_)) {
                        PutCondition::IfAbsent
                    } else {
                        PutCondition::Always
                    },
                })))
            }
            KeyOp::Delete => {
                ClientRequest::Propose(Box::new(Command::V1(CommandV1::DeleteObject {
                    bucket,
                    key: key.clone(),
                })))
            }
            KeyOp::Get => ClientRequest::GetObject {
                bucket,
                key: key.clone(),
            },
        };
        let invoke = self.now();
        let answer = request(&self.env, node, &req).await;
        let ret = self.now();
        let result = match answer {
            Some(ClientResponse::Applied(Ok(applied))) => match applied {
                Applied::Version(_) => Some(KeyResult::Written),
                Applied::PreconditionFailed => Some(KeyResult::PreconditionFailed),
                Applied::Done => Some(KeyResult::Deleted),
                Applied::NoSuchKey => Some(KeyResult::NoSuchKey),
                other => {
                    let what = format!("{op:?} on {key} via node {node} answered {other:?}");
                    self.history.lock().expect("history").impossible.push(what);
                    None
                }
            },
            // Refused before it was proposed: it had no effect.
            Some(ClientResponse::Applied(Err(ProposeError::NotLeader { .. }))) => None,
            Some(ClientResponse::Object(Ok(found))) => {
                Some(KeyResult::Read(found.map(|(_, etag)| etag)))
            }
            // A failed read had no effect.
            Some(ClientResponse::Object(Err(_))) => None,
            _ if op == KeyOp::Get => None,
            _ => Some(KeyResult::Unknown),
        };
        self.env
            .world()
            .trace(format_args!("meta {op:?} {key} via {node} -> {result:?}"));
        if let Some(result) = result {
            let ret = (result != KeyResult::Unknown).then_some(ret);
            let record = MetaRecord {
                key,
                op,
                result,
                invoke,
                ret,
            };
            self.history.lock().expect("history").ops.push(record);
        }
    }

    pub async fn work(self, until: Duration) {
        let mut seq = 0;
        while self.env.clock().now() < until {
            self.one(seq).await;
            seq += 1;
            let pause = Duration::from_millis(5 + below(self.env.rng(), 60));
            self.env.clock().sleep(pause).await;
        }
    }
}

/// Records what every live node says of itself (called each fault tick).
pub fn observe(cluster: &Cluster, handles: &Handles, history: &SharedMeta) {
    let handles = handles.lock().expect("handles");
    let mut h = history.lock().expect("history");
    for (&node, handle) in handles.iter() {
        if !cluster.is_up(node) {
            continue;
        }
        let s = handle.status();
        let (before, now) = h.snapshots.entry(node).or_default();
        if s.snapshots_installed < *now {
            // A new incarnation counts from zero again.
            *before += *now;
        }
        *now = s.snapshots_installed;
        if s.role == Role::Leader {
            h.leader_claims.entry(s.term).or_default().insert(node);
        }
        if let Some(chain) = s.applied_chain {
            h.chains
                .entry(s.applied)
                .or_default()
                .entry(chain)
                .or_insert(node);
        }
    }
}

/// Waits (up to `limit`) until every node has applied the same log and one leader
/// leads them all; returns whether it happened.
pub async fn converge(
    cluster: &Cluster,
    handles: &Handles,
    history: &SharedMeta,
    nodes: &[NodeId],
    limit: Duration,
) -> bool {
    let deadline = SimClock.now() + limit;
    while SimClock.now() < deadline {
        SimClock.sleep(Duration::from_millis(100)).await;
        observe(cluster, handles, history);
        let statuses: Vec<_> = {
            let handles = handles.lock().expect("handles");
            nodes
                .iter()
                .filter_map(|n| handles.get(n).map(RaftHandle::status))
                .collect()
        };
        if statuses.len() != nodes.len() {
            continue;
        }
        let leader = statuses[0].leader;
        let chains: BTreeSet<[u8; 32]> = statuses.iter().filter_map(|s| s.applied_chain).collect();
        let same = chains.len() <= 1
            && statuses
                .iter()
                .all(|s| s.leader == leader && s.leader != 0 && s.applied == statuses[0].applied);
        if same && statuses.iter().any(|s| s.role == Role::Leader) {
            return true;
        }
    }
    false
}
