//! A node: its start-up ([`start`]: shards, Raft, data path, S3, repair, the orphan
//! sweep, the endpoint) and its one Net endpoint, which hands each request to its
//! service by the tag byte (`wire::Tag`). Only wiring lives here: the services are
//! `shard_store::rpc`, `raft` (messages, snapshots, forwarded proposals), `s3::rpc`,
//! and [`client`] (client and admin requests).

pub mod client;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use protobuf::Message as _;

use crate::data_path::DataPath;
use crate::env::{Clock, Env, Incoming, Net, NodeId, Rng};
use crate::lifecycle::{LifecycleConfig, run_lifecycle};
use crate::meta::Command;
use crate::raft::node::{ProposeError, RaftConfig, RaftHandle};
use crate::repair::{Repair, RepairConfig};
use crate::s3::{S3, S3Config};
use crate::shard_store::ShardStore;
use crate::shard_store::rpc as shard_rpc;
use crate::sweep::{SweepConfig, sweep_orphans};
use crate::wire::{self, Tag};

pub use client::{
    CLIENT_REQUEST_TIMEOUT, ClientRequest, ClientResponse, LOST_PAGE_MAX, LostEntry,
    MemberChangeWire, StatusWire, client_request,
};

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
    let Some((tag, payload)) = wire::split(request) else {
        return Bytes::new();
    };
    // Node id 0 is never a member: it is how tools call in, and they may only ask.
    if from == 0 && tag != Tag::Client {
        return Bytes::new();
    }
    let store = &services.store;
    match (tag, services.raft.as_ref()) {
        (Tag::Shard, _) => wire::encode(&shard_rpc::handle(env, store, payload, body).await),
        (Tag::S3, _) => match &services.s3 {
            Some(s3) => crate::s3::rpc::handle(s3, payload, body).await,
            None => Bytes::new(),
        },
        (Tag::Raft, Some(raft)) => {
            // A node speaks for itself only: the transport vouches for `from`.
            if let Ok(message) = raft::eraftpb::Message::parse_from_bytes(payload)
                && message.from == from
            {
                raft.step(message);
            }
            Bytes::new()
        }
        (Tag::RaftBatch, Some(raft)) => {
            // Every message or none: a batch that does not parse is dropped whole.
            let messages = crate::raft::outbox::decode_batch(payload).unwrap_or_default();
            for message in messages.into_iter().filter(|m| m.from == from) {
                raft.step(message);
            }
            Bytes::new()
        }
        (Tag::RaftSnapshot, Some(raft)) => {
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
        (Tag::Propose, Some(raft)) => {
            let began = env.clock().now();
            let result = match wire::decode::<Command>(payload) {
                // Forwarded once only: a second hop would answer with its own hint.
                Some(command) => raft.propose(command).await,
                None => Err(ProposeError::Stopped),
            };
            let stage = crate::metrics::Stage::ForwardedProposal;
            raft.metrics().stage(stage, began, env.clock().now());
            wire::encode(&result)
        }
        (Tag::Client, Some(raft)) => match wire::decode::<ClientRequest>(payload) {
            Some(request) => {
                let (repair, s3) = (services.repair.as_deref(), services.s3.as_deref());
                wire::encode(&client_request(env, raft, repair, s3, request).await)
            }
            None => Bytes::new(),
        },
        // Raft traffic to a node without Raft: no answer is an answer.
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
    pub lifecycle: LifecycleConfig,
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
            lifecycle: LifecycleConfig::default(),
            s3,
            chunk_size_bytes: crate::placement::CHUNK_SIZE_BYTES,
        }
    }
}

/// Starts a node: recovers its shards and Raft state, spawns the Raft driver, the
/// endpoint (shards, Raft, S3), the orphan sweep and the lifecycle task. Fails (without serving) when the
/// Raft state is corrupt: such a node must not vote.
pub async fn start<E: Env>(
    env: E,
    config: NodeConfig,
) -> Result<Started<E>, crate::raft::start::StartError> {
    let store = ShardStore::new(env.disk().clone(), config.shard_dir.clone())
        .with_metrics(config.raft.metrics.clone());
    if let Err(error) = store
        .recover(crate::shard_store::RecoveryCheck::Structure)
        .await
    {
        tracing::error!(node = env.node_id(), %error, "shard scan failed");
    }
    let (handle, driver) = crate::raft::start::start(env.clone(), config.raft).await?;
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
    env.spawn(run_lifecycle(env.clone(), handle.clone(), config.lifecycle));
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
