//! Proposals from any node: a follower forwards its proposal to the leader it knows of
//! (one hop; the leader answers with the result), so every node accepts mutations and
//! answers "no leader" only when none is known. Lives beside the Raft driver so that the
//! layers that propose (S3, repair) need nothing above them.

use std::time::Duration;

use crate::env::{Clock, Env, Net, NodeId};
use crate::meta::{Applied, Command};
use crate::raft::node::{ProposeError, RaftHandle};
use crate::wire::{self, Tag};

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
    let began = env.clock().now();
    let result = crate::env::timeout(env.clock(), timeout, attempt)
        .await
        .unwrap_or(Err(ProposeError::Timeout));
    if result.is_ok() {
        let took = env.clock().now().saturating_sub(began);
        raft.metrics().proposal_duration.observe(took.as_secs_f64());
    }
    result
}

async fn forward<E: Env>(
    env: &E,
    leader: NodeId,
    command: &Command,
    timeout: Duration,
) -> Result<Applied, ProposeError> {
    let request = wire::request(Tag::Propose, command);
    let answer = env
        .net()
        .call(leader, request, timeout)
        .await
        .map_err(|_| ProposeError::Timeout)?;
    wire::decode(&answer).unwrap_or(Err(ProposeError::Timeout))
}
