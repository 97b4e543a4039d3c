//! A node's network endpoint: one Net, several services, told apart by the first byte
//! of each request (`shard_rpc::TAG_SHARD`, `raft::node::TAG_RAFT`,
//! `raft::snapshot::TAG_RAFT_SNAPSHOT`, [`TAG_PROPOSE`], [`TAG_CLIENT`],
//! `s3::rpc::TAG_S3`).
//!
//! Also the node's start-up ([`start`]: shards, Raft, data path, repair, orphan sweep,
//! endpoint). Forwarded proposals are answered here; forwarding itself
//! ([`propose_anywhere`]) lives in `crate::raft::forward`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use protobuf::Message as _;

use crate::data_path::DataPath;
use crate::env::{Clock, Env, Incoming, Net, NodeId, Rng};
use crate::meta::{Applied, Command};
use crate::raft::node::{self as raft_node, ProposeError, RaftConfig, RaftHandle, TAG_RAFT};
use crate::raft::snapshot::TAG_RAFT_SNAPSHOT;
use crate::repair::{Repair, RepairConfig};
use crate::s3::rpc::TAG_S3;
use crate::s3::{S3, S3Config};
use crate::shard_rpc::{self, TAG_SHARD};
use crate::shard_store::{ShardId, ShardStore};

pub use crate::raft::forward::{TAG_PROPOSE, propose_anywhere};
/// Network tag of a client's metadata request (frontends, tools, the simulator).
pub const TAG_CLIENT: u8 = 3;

/// How long a node spends on one client request before answering "unknown".
pub const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A metadata request to any node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ClientRequest {
    /// Apply a command (forwarded to the leader if this node is not it).
    Propose(Box<Command>),
    /// Membership change, on the leader.
    ChangeMembers(Vec<MemberChangeWire>),
    /// A linearizable read of one object's current version (ReadIndex, then local).
    GetObject { bucket: String, key: String },
    /// The same read from this node's replica as it stands (possibly stale).
    ReadLocal { bucket: String, key: String },
    /// This node's view of the group.
    Status,
    /// This node's repair: scrub progress, queue, rebuilds, failures.
    RepairStatus,
    /// Start a full scrub pass on this node now.
    RepairStart,
    /// Lost objects (blobs with fewer than k good shards), after data id `after`.
    Lost { after: Option<u128>, limit: u32 },
}

/// One lost blob, as `hamster admin lost` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LostEntry {
    pub data_id: u128,
    pub bucket: String,
    pub key: String,
    /// Bytes of the blob (a whole object, or one part of a multipart object).
    pub size: u64,
    pub good: u16,
    pub needed: u16,
    pub since_ms: u64,
}

/// Lost entries per page, at most.
pub const LOST_PAGE_MAX: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MemberChangeWire {
    AddVoter(NodeId),
    AddLearner(NodeId),
    Remove(NodeId),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ClientResponse {
    Applied(Result<Applied, ProposeError>),
    /// (version, etag) of the object, if it exists.
    Object(Result<Option<(u64, String)>, ProposeError>),
    Status(StatusWire),
    Repair(Box<crate::repair::RepairStatus>),
    /// A page of lost blobs and the data id to go on from (`None`: the end).
    Lost(Vec<LostEntry>, Option<u128>),
    Failed(String),
}

/// [`raft_node::RaftStatus`] as it travels.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusWire {
    pub id: NodeId,
    pub leader: NodeId,
    pub term: u64,
    pub role: String,
    pub commit: u64,
    pub applied: u64,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
}

/// Every message of this endpoint is encoded like a shard message (bincode, with the
/// same size limit).
pub use crate::shard_rpc::{decode as decode_wire, encode as encode_wire};

/// Answers one client or admin request (the node endpoint and `hamster server`'s admin
/// socket both come here).
pub async fn client_request<E: Env>(
    env: &E,
    raft: &RaftHandle,
    repair: Option<&Repair<E>>,
    request: ClientRequest,
) -> ClientResponse {
    match request {
        ClientRequest::RepairStatus => match repair {
            Some(r) => ClientResponse::Repair(Box::new(r.status())),
            None => ClientResponse::Failed("this node runs no repair".into()),
        },
        ClientRequest::RepairStart => match repair {
            Some(r) => {
                r.start_scrub();
                ClientResponse::Applied(Ok(Applied::Done))
            }
            None => ClientResponse::Failed("this node runs no repair".into()),
        },
        ClientRequest::Lost { after, limit } => {
            let read = async {
                raft.read_index().await?;
                lost_page(raft, after, limit.min(LOST_PAGE_MAX))
            };
            match crate::env::timeout(env.clock(), CLIENT_REQUEST_TIMEOUT, read).await {
                Ok(Ok((page, next))) => ClientResponse::Lost(page, next),
                Ok(Err(e)) => ClientResponse::Failed(e.to_string()),
                Err(_) => ClientResponse::Failed("no answer from the leader in time".into()),
            }
        }
        ClientRequest::Propose(command) => ClientResponse::Applied(
            propose_anywhere(env, raft, *command, CLIENT_REQUEST_TIMEOUT).await,
        ),
        ClientRequest::ChangeMembers(changes) => {
            let changes = changes
                .into_iter()
                .map(|c| match c {
                    MemberChangeWire::AddVoter(n) => raft_node::MemberChange::AddVoter(n),
                    MemberChangeWire::AddLearner(n) => raft_node::MemberChange::AddLearner(n),
                    MemberChangeWire::Remove(n) => raft_node::MemberChange::Remove(n),
                })
                .collect();
            let attempt = raft.change_members(changes);
            let result = crate::env::timeout(env.clock(), CLIENT_REQUEST_TIMEOUT, attempt).await;
            ClientResponse::Applied(result.unwrap_or(Err(ProposeError::Timeout)))
        }
        ClientRequest::GetObject { bucket, key } => {
            let read = async {
                raft.read_index().await?;
                local_object(raft, &bucket, &key)
            };
            let result = crate::env::timeout(env.clock(), CLIENT_REQUEST_TIMEOUT, read).await;
            ClientResponse::Object(result.unwrap_or(Err(ProposeError::Timeout)))
        }
        ClientRequest::ReadLocal { bucket, key } => {
            ClientResponse::Object(local_object(raft, &bucket, &key))
        }
        ClientRequest::Status => {
            let s = raft.status();
            ClientResponse::Status(StatusWire {
                id: s.id,
                leader: s.leader,
                term: s.term,
                role: format!("{:?}", s.role),
                commit: s.commit,
                applied: s.applied,
                voters: s.voters,
                learners: s.learners,
            })
        }
    }
}

/// Walks the data refs after `after` for lost blobs: up to `limit` of them, and where
/// to go on from. Reads at most `LOST_SCAN_REFS` refs per call, so one call is bounded
/// however large the index.
fn lost_page(
    raft: &RaftHandle,
    after: Option<u128>,
    limit: u32,
) -> Result<(Vec<LostEntry>, Option<u128>), ProposeError> {
    const LOST_SCAN_REFS: usize = 100_000;
    raft.read(|r| {
        let refs = r.data_refs_after(after, LOST_SCAN_REFS)?;
        let mut out = Vec::new();
        let mut next = None;
        for (data_id, data_ref) in &refs {
            next = Some(*data_id);
            let Some(mark) = &data_ref.lost else { continue };
            let size = crate::meta::repair::layout_at(r, *data_id, data_ref)?.map_or(0, |l| l.size);
            out.push(LostEntry {
                data_id: *data_id,
                bucket: data_ref.bucket.clone(),
                key: data_ref.key.clone(),
                size,
                good: mark.good,
                needed: mark.needed,
                since_ms: mark.since_ms,
            });
            if out.len() as u32 == limit {
                break;
            }
        }
        let done = refs.len() < LOST_SCAN_REFS && out.len() < limit as usize;
        Ok((out, if done { None } else { next }))
    })
}

/// (version, etag) of an object in the local replica.
fn local_object(
    raft: &RaftHandle,
    bucket: &str,
    key: &str,
) -> Result<Option<(u64, String)>, ProposeError> {
    raft.read(|r| Ok(r.object(bucket, key)?.map(|o| (o.version, o.meta.etag))))
}

/// What a node's endpoint serves: shards always; Raft and S3 on a full node.
pub struct Services<E: Env> {
    pub store: ShardStore<E::Disk>,
    pub raft: Option<RaftHandle>,
    pub s3: Option<Arc<S3<E>>>,
    pub repair: Option<Arc<Repair<E>>>,
}

impl<E: Env> Clone for Services<E> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            raft: self.raft.clone(),
            s3: self.s3.clone(),
            repair: self.repair.clone(),
        }
    }
}

/// Pause between start-up scans that failed on a disk error.
const RECOVERY_RETRY: Duration = Duration::from_millis(100);

/// A shard holder's main: scan the shard directory (removing what a crash left
/// unsealed, reporting corrupt files), then serve shard calls until shut down.
pub async fn run_holder<E: Env>(env: E, dir: &str) {
    let store = ShardStore::new(env.disk().clone(), dir);
    tracing::debug!(node = env.node_id(), "start-up scan");
    loop {
        match store
            .recover(crate::shard_store::RecoveryCheck::Structure)
            .await
        {
            Ok(report) => {
                tracing::info!(
                    node = env.node_id(),
                    sealed = report.sealed.len(),
                    removed = report.removed_temporaries.len(),
                    corrupt = report.corrupt.len(),
                    "start-up scan done"
                );
                for (file, error) in &report.corrupt {
                    tracing::warn!(node = env.node_id(), %file, %error, "corrupt shard at start-up");
                }
                break;
            }
            Err(error) => {
                tracing::warn!(node = env.node_id(), %error, "start-up scan failed; retrying");
                env.clock().sleep(RECOVERY_RETRY).await;
            }
        }
    }
    let services = Services {
        store,
        raft: None,
        s3: None,
        repair: None,
    };
    serve(env, services).await;
}

/// Serves every service of this node until its network shuts down.
pub async fn serve<E: Env>(env: E, services: Services<E>) {
    while let Some(incoming) = env.net().accept().await {
        let (task_env, services) = (env.clone(), services.clone());
        env.spawn(async move {
            let Incoming {
                from,
                request,
                body,
                reply,
            } = incoming;
            let answer = dispatch(&task_env, &services, from, &request, body).await;
            // The caller may have gone away; that is its business.
            let _ = reply.send(answer);
        });
    }
}

async fn dispatch<E: Env>(
    env: &E,
    services: &Services<E>,
    from: NodeId,
    request: &[u8],
    body: Option<crate::env::BodyStream>,
) -> Bytes {
    let Some((&tag, payload)) = request.split_first() else {
        return Bytes::new();
    };
    // Node id 0 is never a member: it is how tools call in, and they may only ask.
    if from == 0 && tag != TAG_CLIENT {
        return Bytes::new();
    }
    let store = &services.store;
    match (tag, services.raft.as_ref()) {
        (TAG_SHARD, _) => shard_rpc::encode(&shard_rpc::handle(env, store, payload, body).await),
        (TAG_S3, _) => match &services.s3 {
            Some(s3) => crate::s3::rpc::handle(s3, payload, body).await,
            None => Bytes::new(),
        },
        (TAG_RAFT, Some(raft)) => {
            // A node speaks for itself only: the transport vouches for `from`.
            if let Ok(message) = raft::eraftpb::Message::parse_from_bytes(payload)
                && message.from == from
            {
                raft.step(message);
            }
            Bytes::new()
        }
        (TAG_RAFT_SNAPSHOT, Some(raft)) => {
            if let (Ok(message), Some(body)) =
                (raft::eraftpb::Message::parse_from_bytes(payload), body)
                && message.from == from
            {
                let nonce = env.rng().next_u64();
                raft.receive_snapshot(env.disk(), nonce, message, body)
                    .await;
            }
            Bytes::new()
        }
        (TAG_PROPOSE, Some(raft)) => {
            let result = match decode_wire::<Command>(payload) {
                // Forwarded once only: a second hop would answer with its own hint.
                Some(command) => raft.propose(command).await,
                None => Err(ProposeError::Stopped),
            };
            encode_wire(&result)
        }
        (TAG_CLIENT, Some(raft)) => match decode_wire::<ClientRequest>(payload) {
            Some(request) => {
                let repair = services.repair.as_deref();
                encode_wire(&client_request(env, raft, repair, request).await)
            }
            None => Bytes::new(),
        },
        // Unknown tags, or Raft traffic to a node without Raft: no answer is an answer.
        _ => Bytes::new(),
    }
}

/// What a started node offers its front ends.
pub struct Started<E: Env> {
    pub raft: RaftHandle,
    pub data: Arc<DataPath<E>>,
    pub s3: Arc<S3<E>>,
    pub repair: Arc<Repair<E>>,
}

/// Everything a full node is started with.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Directory of the shard files on the node's disk.
    pub shard_dir: String,
    pub raft: RaftConfig,
    pub sweep: SweepConfig,
    pub repair: RepairConfig,
    pub s3: S3Config,
    /// Chunk size of the blobs this node writes (the simulator shrinks it).
    pub chunk_size_bytes: u32,
}

impl NodeConfig {
    pub fn new(raft: RaftConfig, s3: S3Config) -> Self {
        Self {
            shard_dir: "shards".into(),
            raft,
            sweep: SweepConfig::default(),
            repair: RepairConfig::default(),
            s3,
            chunk_size_bytes: crate::placement::CHUNK_SIZE_BYTES,
        }
    }
}

/// How often the orphan sweep looks at this node's shards.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(300);
/// A shard seen unreferenced this long ago, and still unreferenced, is removed. It must
/// outlast any window between a blob's seal and its metadata commit: a proposal that
/// sits uncommitted longer (a leaderless stretch that long) could commit after its
/// shards were judged orphans. Not guarded beyond this margin.
pub const SWEEP_GRACE: Duration = Duration::from_secs(900);

/// The orphan sweep's timing.
#[derive(Debug, Clone, Copy)]
pub struct SweepConfig {
    pub interval: Duration,
    pub grace: Duration,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            interval: SWEEP_INTERVAL,
            grace: SWEEP_GRACE,
        }
    }
}

/// Starts a node: recovers its shards and Raft state, spawns the Raft driver, the
/// endpoint (shards, Raft, S3) and the orphan sweep. Fails (without serving) when the
/// Raft state is corrupt: such a node must not vote.
pub async fn start<E: Env>(
    env: E,
    config: NodeConfig,
) -> Result<Started<E>, crate::raft::durable::LogError> {
    let store = ShardStore::new(env.disk().clone(), config.shard_dir.clone());
    if let Err(error) = store
        .recover(crate::shard_store::RecoveryCheck::Structure)
        .await
    {
        tracing::error!(node = env.node_id(), %error, "shard scan failed");
    }
    let (handle, driver) = raft_node::start(env.clone(), config.raft).await?;
    env.spawn(driver);
    let data = Arc::new(
        DataPath::new(env.clone(), store.clone()).with_chunk_size(config.chunk_size_bytes),
    );
    let s3 = Arc::new(S3::new(
        env.clone(),
        handle.clone(),
        data.clone(),
        config.s3,
    ));
    env.spawn(sweep_orphans(
        env.clone(),
        store.clone(),
        handle.clone(),
        config.sweep,
    ));
    let repair = Repair::start(env.clone(), data.clone(), handle.clone(), config.repair);
    let services = Services {
        store,
        raft: Some(handle.clone()),
        s3: Some(s3.clone()),
        repair: Some(repair.clone()),
    };
    env.spawn(serve(env.clone(), services));
    Ok(Started {
        raft: handle,
        data,
        s3,
        repair,
    })
}

/// A node's main: [`start`], then run until the node dies or its Raft driver stops.
/// Returns (without serving) if the Raft state is corrupt.
pub async fn run<E: Env>(env: E, config: NodeConfig, on_start: impl FnOnce(&Started<E>)) {
    match start(env.clone(), config).await {
        Ok(started) => {
            on_start(&started);
            // A stopped driver no longer votes or commits: the node ends, so that its
            // supervisor restarts it and the start-up checks judge its state again.
            let why = started.raft.stopped().await;
            tracing::error!(node = env.node_id(), %why, "raft driver stopped; the node ends");
        }
        Err(error) => {
            tracing::error!(node = env.node_id(), %error, "raft state refused; not serving");
        }
    }
}

/// Whether the metadata places shard `id` on `node`: its blob is referenced and the
/// layout puts that shard index here (repair may have moved it to a spare). A ref whose
/// layout cannot be found counts as holding (never remove on doubt).
fn holds(
    reader: &crate::meta_store::MetaReader,
    id: &ShardId,
    node: NodeId,
) -> Result<bool, crate::meta_store::StoreError> {
    if !reader.has_data_ref(id.object)? {
        return Ok(false);
    }
    Ok(match reader.layout_of(id.object)? {
        Some((_, layout)) => {
            *id != crate::data_path::shard_id(id.object, id.index)
                || layout
                    .shards
                    .get(usize::from(id.index))
                    .is_some_and(|p| p.node == node)
        }
        None => true,
    })
}

/// Removes shards no object, part or upload refers to (writes that never committed,
/// overwritten and deleted objects), and shards whose placement repair moved to a spare. A shard is removed only when it was unreferenced
/// on a pass at least `grace` ago and still is, judged on a replica brought up to date
/// by ReadIndex: a write in flight (sealed, commit not yet applied) is never taken, and
/// a node cut off from its leader removes nothing.
async fn sweep_orphans<E: Env>(
    env: E,
    store: ShardStore<E::Disk>,
    raft: RaftHandle,
    config: SweepConfig,
) {
    let mut suspects: BTreeMap<ShardId, Duration> = BTreeMap::new();
    loop {
        env.clock().sleep(config.interval).await;
        let ids = match store.list().await {
            Ok(ids) => ids,
            Err(error) => {
                tracing::warn!(%error, "orphan sweep: listing failed");
                continue;
            }
        };
        let current =
            crate::env::timeout(env.clock(), crate::s3::META_TIMEOUT, raft.read_index()).await;
        let Ok(Ok(_)) = current else {
            continue; // no leader: judge nothing
        };
        let Ok(reader) = raft.reader() else {
            continue;
        };
        let now = env.clock().now();
        let mut next = BTreeMap::new();
        for id in ids {
            match holds(&reader, &id, env.node_id()) {
                Ok(true) => {}
                Ok(false) => {
                    let since = suspects.get(&id).copied().unwrap_or(now);
                    if now.saturating_sub(since) >= config.grace {
                        match store.remove(&id).await {
                            Ok(()) | Err(crate::shard_store::ShardError::NotFound(_)) => {
                                tracing::info!(shard = %id.file_name(), "orphan shard removed");
                            }
                            Err(error) => {
                                tracing::warn!(%error, "orphan shard not removed");
                                next.insert(id, since);
                            }
                        }
                    } else {
                        next.insert(id, since);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "orphan sweep: metadata unreadable");
                    break;
                }
            }
        }
        suspects = next;
    }
}
