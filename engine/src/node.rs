//! A node's network endpoint: one Net, several services, told apart by the first byte
//! of each request (`shard_rpc::TAG_SHARD`, `raft::node::TAG_RAFT`, [`TAG_PROPOSE`]).
//!
//! Also the node's main for the metadata plane, and [`propose_anywhere`]: a proposal
//! made on a follower is forwarded to the leader it knows of, so any node accepts
//! mutations (answering "no leader" only when none is known).

use std::time::Duration;

use bytes::Bytes;
use protobuf::Message as _;

use crate::env::{Env, Incoming, Net, NodeId};
use crate::meta::{Applied, Command};
use crate::raft::node::{self as raft_node, ProposeError, RaftConfig, RaftHandle, TAG_RAFT};
use crate::shard_rpc::{self, TAG_SHARD};
use crate::shard_store::ShardStore;

/// Network tag of a proposal forwarded from a follower to the leader.
pub const TAG_PROPOSE: u8 = 2;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ shard_rpc::MESSAGE_BYTES_MAX }>()
}

/// Serves every service of this node until its network shuts down.
pub async fn serve<E: Env>(env: E, store: ShardStore<E::Disk>, raft: Option<RaftHandle>) {
    while let Some(incoming) = env.net().accept().await {
        let (task_env, task_store, task_raft) = (env.clone(), store.clone(), raft.clone());
        env.spawn(async move {
            let Incoming {
                request,
                body,
                reply,
                ..
            } = incoming;
            let answer = dispatch(&task_env, &task_store, task_raft.as_ref(), &request, body).await;
            // The caller may have gone away; that is its business.
            let _ = reply.send(answer);
        });
    }
}

async fn dispatch<E: Env>(
    env: &E,
    store: &ShardStore<E::Disk>,
    raft: Option<&RaftHandle>,
    request: &[u8],
    body: Option<crate::env::BodyStream>,
) -> Bytes {
    let Some((&tag, payload)) = request.split_first() else {
        return Bytes::new();
    };
    match (tag, raft) {
        (TAG_SHARD, _) => shard_rpc::encode(&shard_rpc::handle(env, store, payload, body).await),
        (TAG_RAFT, Some(raft)) => {
            if let Ok(message) = raft::eraftpb::Message::parse_from_bytes(payload) {
                raft.step(message);
            }
            Bytes::new()
        }
        (TAG_PROPOSE, Some(raft)) => {
            let result = match bincode::serde::decode_from_slice::<Command, _>(payload, config()) {
                // Forwarded once only: a second hop would answer with its own hint.
                Ok((command, _)) => raft.propose(command).await,
                Err(_) => Err(ProposeError::Stopped),
            };
            Bytes::from(bincode::serde::encode_to_vec(&result, config()).expect("results encode"))
        }
        // Unknown tags, or Raft traffic to a node without Raft: no answer is an answer.
        _ => Bytes::new(),
    }
}

/// Proposes `command` here, or on the leader this node knows of; `timeout` bounds the
/// whole attempt (after which the outcome is unknown).
pub async fn propose_anywhere<E: Env>(
    env: &E,
    raft: &RaftHandle,
    command: Command,
    timeout: Duration,
) -> Result<Applied, ProposeError> {
    let attempt = async {
        match raft.propose(command.clone()).await {
            Err(ProposeError::NotLeader { leader_hint })
                if leader_hint != 0 && leader_hint != env.node_id() =>
            {
                forward(env, leader_hint, &command, timeout).await
            }
            other => other,
        }
    };
    crate::env::timeout(env.clock(), timeout, attempt)
        .await
        .unwrap_or(Err(ProposeError::Timeout))
}

async fn forward<E: Env>(
    env: &E,
    leader: NodeId,
    command: &Command,
    timeout: Duration,
) -> Result<Applied, ProposeError> {
    let mut request = vec![TAG_PROPOSE];
    request.extend_from_slice(
        &bincode::serde::encode_to_vec(command, config()).expect("commands encode"),
    );
    let answer = env
        .net()
        .call(leader, request.into(), timeout)
        .await
        .map_err(|_| ProposeError::Timeout)?;
    bincode::serde::decode_from_slice(&answer, config())
        .map(|(result, _)| result)
        .unwrap_or(Err(ProposeError::Timeout))
}

/// A metadata node's main: recover shards and Raft state, run the Raft driver, serve.
/// Returns (without serving) if the Raft state is corrupt: such a node must not vote.
pub async fn run<E: Env>(
    env: E,
    shard_dir: &str,
    config: RaftConfig,
    on_start: impl FnOnce(RaftHandle),
) {
    let store = ShardStore::new(env.disk().clone(), shard_dir);
    if let Err(error) = store
        .recover(crate::shard_store::RecoveryCheck::Structure)
        .await
    {
        tracing::error!(node = env.node_id(), %error, "shard scan failed");
    }
    let (handle, driver) = match raft_node::start(env.clone(), config).await {
        Ok(started) => started,
        Err(error) => {
            tracing::error!(node = env.node_id(), %error, "raft state refused; not serving");
            return;
        }
    };
    env.spawn(driver);
    on_start(handle.clone());
    serve(env, store, Some(handle)).await;
}
