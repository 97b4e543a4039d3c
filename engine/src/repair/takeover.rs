//! Takeover: a shard whose holder has been unreachable for `takeover_after` is rebuilt on
//! a spare, a member that holds no other shard of the blob (distinctness is an
//! invariant, never a preference), and the layout moves there through the same guarded
//! `RepairShard`. Without a spare (a 4+2 blob on six nodes) the shard waits for its
//! holder to come back, or to be replaced with an empty disk.
//!
//! Liveness comes from a ping of every other voter on each presence pass; a node is
//! "long down" once it has failed every ping for `takeover_after`. Of a blob's holders
//! only its guardian (the lowest shard index on a node that answers) queues the
//! takeover, so the members do not race each other for it (the guard would settle such
//! a race anyway). The old holder's file, once it is back, names a placement that moved:
//! the orphan sweep removes it after its grace.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::Repair;
use crate::env::{Clock, Env, NodeId};
use crate::meta::DataLayout;

/// A liveness ping gives up after this long.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Since when each other member has failed every ping (absent: it answered last time).
#[derive(Debug, Default)]
pub(super) struct Liveness {
    down_since: BTreeMap<NodeId, Duration>,
}

impl<E: Env> Repair<E> {
    /// The voters other than this node.
    fn peers(&self) -> Vec<NodeId> {
        let me = self.env.node_id();
        self.raft
            .status()
            .voters
            .into_iter()
            .filter(|&n| n != me)
            .collect()
    }

    /// Pings every other voter and records who answers.
    pub(super) async fn probe_peers(&self) {
        let peers = self.peers();
        let pings = peers
            .iter()
            .map(|&n| crate::shard_store::rpc::ping(&self.env, n, PING_TIMEOUT));
        let answers = futures::future::join_all(pings).await;
        let now = self.env.clock().now();
        let mut inner = self.inner.lock().expect("repair");
        for (node, up) in peers.into_iter().zip(answers) {
            if up {
                inner.liveness.down_since.remove(&node);
            } else {
                inner.liveness.down_since.entry(node).or_insert(now);
            }
        }
    }

    /// Nodes that failed the last ping (`down`) and those down for `takeover_after`.
    pub(super) fn down_nodes(&self) -> (BTreeSet<NodeId>, BTreeSet<NodeId>) {
        let now = self.env.clock().now();
        let inner = self.inner.lock().expect("repair");
        let down = inner.liveness.down_since.keys().copied().collect();
        let long = inner
            .liveness
            .down_since
            .iter()
            .filter(|(_, since)| now.saturating_sub(**since) >= self.config.takeover_after)
            .map(|(n, _)| *n)
            .collect();
        (down, long)
    }

    /// Whether this node is the guardian of `layout`: it holds the lowest-index shard
    /// among the holders that answer.
    pub(super) fn guards(&self, layout: &DataLayout, down: &BTreeSet<NodeId>) -> bool {
        layout
            .shards
            .iter()
            .map(|s| s.node)
            .find(|n| !down.contains(n))
            == Some(self.env.node_id())
    }

    /// Where shard `index` of `layout` is to be rebuilt: its holder, unless that one
    /// has been down for `takeover_after`; then a spare (a voter up and holding no
    /// shard of the blob, chosen by rendezvous on the data id), or none.
    pub(super) fn target(&self, layout: &DataLayout, index: u16) -> Option<NodeId> {
        let holder = layout.shards[usize::from(index)].node;
        let (down, long) = self.down_nodes();
        if !long.contains(&holder) {
            return Some(holder);
        }
        let mut members = self.peers();
        members.push(self.env.node_id());
        let spares: Vec<NodeId> = members
            .into_iter()
            .filter(|n| !down.contains(n) && layout.shards.iter().all(|s| s.node != *n))
            .collect();
        let spare = crate::placement::place(&spares, layout.data_id, 1)?[0];
        tracing::info!(
            data_id = layout.data_id,
            index,
            holder,
            spare,
            "holder down too long; rebuilding its shard on a spare"
        );
        Some(spare)
    }
}
