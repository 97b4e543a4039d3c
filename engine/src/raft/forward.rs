//! Proposals from any node: a follower forwards its proposal to the leader it knows of
//! (one hop; the leader answers with the result), so every node accepts mutations and
//! answers "no leader" only when none is known. Lives beside the Raft driver so that the
//! layers that propose (S3, repair) need nothing above them.

use std::time::Duration;

use crate::env::{Env, Net, NodeId};
use crate::meta::{Applied, Command};
use crate::raft::node::{ProposeError, RaftHandle};
use crate::shard_rpc::{decode as decode_wire, encode as encode_wire};

/// Network tag of a proposal forwarded from a follower to the leader.
pub const TAG_PROPOSE: u8 = 2;

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
    request.extend_from_slice(&encode_wire(command));
    let answer = env
        .net()
        .call(leader, request.into(), timeout)
        .await
        .map_err(|_| ProposeError::Timeout)?;
    decode_wire(&answer).unwrap_or(Err(ProposeError::Timeout))
}
