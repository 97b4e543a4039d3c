//! The presence check: metadata against the local listing, no hashing. A pass walks the
//! data refs of the local replica in pages of [`PRESENCE_PAGE_REFS`] and queues every shard of this node that is
//! unsealed in its layout or absent from the shard directory, and, where this node is a
//! blob's guardian, the shards of holders down too long (`takeover`). Lost blobs this node
//! holds a shard of are read back whole (at most [`LOST_PROBES_PER_PASS`] a pass); one
//! that reads again is cleared. A read that fails tries every reachable shard, so it
//! reports this node's rotted one (found again after a restart). An unsealed shard of a
//! lost blob that is in the listing is still queued: its holder may have sealed it whole
//! while its write stopped waiting (`Repair::adopt`). The rotted shards of a
//! lost blob, and its unsealed shards found damaged, wait in [`super::queue::Parked`]
//! (not hashed again pass after pass) and are queued again by the first pass that sees
//! the blob not lost.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;

use super::Repair;
use crate::data_path::{PieceSink, shard_id};
use crate::env::{Clock, Env};
use crate::meta::{Applied, CommandV1, DataLayout};
use crate::repair::queue::Reason;
use crate::shard_store::ShardId;

/// Data refs read per page.
pub const PRESENCE_PAGE_REFS: usize = 512;
/// Lost blobs read back per pass, at most.
pub const LOST_PROBES_PER_PASS: usize = 16;

/// A read whose bytes nobody wants: only whether it succeeds.
struct Discard;

impl PieceSink for Discard {
    async fn put(&mut self, _piece: Bytes) -> bool {
        true
    }
}

impl<E: Env> Repair<E> {
    pub(super) async fn presence_loop(self: Arc<Self>) {
        loop {
            self.env.clock().sleep(self.config.presence_interval).await;
            self.presence_pass().await;
        }
    }

    async fn presence_pass(&self) {
        let me = self.env.node_id();
        let local: BTreeSet<ShardId> = match self.data.store().list().await {
            Ok(ids) => ids.into_iter().collect(),
            Err(error) => {
                tracing::warn!(%error, "presence check: the shard directory cannot be listed");
                return;
            }
        };
        self.probe_peers().await;
        let (down, long_down) = self.down_nodes();
        let members = self.raft.status().voters.len().max(1);
        self.update(|s| {
            s.shards_held = local.len() as u64;
            s.members = members as u64;
            s.members_reachable = members.saturating_sub(down.len()) as u64;
        });
        let pass = {
            let mut inner = self.inner.lock().expect("repair");
            inner.presence_passes += 1;
            inner.presence_passes
        };
        let mut seen_lost = BTreeSet::new();
        let mut after = None;
        let (mut probes, mut lost_blobs) = (0, 0);
        loop {
            // The local replica: a shard it wrongly calls missing is checked against
            // an up-to-date one before anything is rebuilt (`Repair::repair_one`).
            let Ok(reader) = self.raft.reader() else {
                return;
            };
            self.take_reports(&reader);
            let page = match reader.data_refs_after(after, PRESENCE_PAGE_REFS) {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, "presence check: metadata unreadable");
                    return;
                }
            };
            let Ok(sites) = reader.sites() else {
                return;
            };
            let mut lost = Vec::new();
            for (data_id, data_ref) in &page {
                let Ok(Some(layout)) = crate::meta::repair::layout_at(&sites, *data_id, data_ref)
                else {
                    continue;
                };
                // A lost blob is not rebuilt pass after pass: it is read back (below),
                // and repaired as usual once it reads again.
                let is_lost = data_ref.lost.is_some();
                lost_blobs += u64::from(is_lost);
                self.unpark(&layout, is_lost, &mut seen_lost);
                // A takeover needs a spare: a member outside the layout.
                let guardian = !long_down.is_empty()
                    && layout.shards.len() < members
                    && self.guards(&layout, &down);
                let mut mine = false;
                for (i, placement) in layout.shards.iter().enumerate() {
                    if guardian && !is_lost && long_down.contains(&placement.node) {
                        self.owe(&layout, i as u16, Reason::Missing);
                    }
                    if placement.node != me {
                        continue;
                    }
                    mine = true;
                    let file = shard_id(*data_id, i as u16);
                    // A lost blob is not rebuilt, but an unsealed shard of it that is
                    // here may be whole, and sealing it may make the blob whole again.
                    // One found damaged waits parked until the blob reads again.
                    let present = local.contains(&file);
                    let adoptable =
                        !placement.sealed && present && !self.is_parked(*data_id, i as u16);
                    if (!is_lost && (!placement.sealed || !present)) || adoptable {
                        self.owe(&layout, i as u16, Reason::Missing);
                    }
                }
                if mine && data_ref.lost.is_some() && probes < LOST_PROBES_PER_PASS {
                    probes += 1;
                    lost.push(layout);
                }
            }
            drop((sites, reader));
            for layout in lost {
                self.probe_lost(&layout).await;
            }
            match page.last() {
                Some((last, _)) if page.len() == PRESENCE_PAGE_REFS => after = Some(*last),
                _ => {
                    self.update(|s| s.lost_blobs = lost_blobs);
                    let mut inner = self.inner.lock().expect("repair");
                    inner.parked.forget_unseen(pass, &seen_lost);
                    return;
                }
            }
        }
    }

    /// Queues again the parked rotted shards of a blob that is no longer lost; notes a
    /// lost one that has some.
    fn unpark(&self, layout: &DataLayout, is_lost: bool, seen_lost: &mut BTreeSet<u128>) {
        let mut inner = self.inner.lock().expect("repair");
        if is_lost {
            if inner.parked.holds(layout.data_id) {
                seen_lost.insert(layout.data_id);
            }
            return;
        }
        let tasks = inner.parked.take(layout.data_id);
        drop(inner);
        for task in tasks {
            let still_there = layout
                .shards
                .get(usize::from(task.index))
                .is_some_and(|p| p.node == task.node);
            if still_there {
                tracing::info!(
                    data_id = layout.data_id,
                    index = task.index,
                    "lost blob reads again: its rotted shard is queued for rebuild"
                );
                self.owe(layout, task.index, Reason::Corrupt);
            }
        }
    }

    fn is_parked(&self, data_id: u128, index: u16) -> bool {
        self.inner
            .lock()
            .expect("repair")
            .parked
            .holds_shard(data_id, index)
    }

    /// Reads a lost blob back whole; clears its mark if that works.
    async fn probe_lost(&self, layout: &DataLayout) {
        if self
            .data
            .read_blob(layout, 0, layout.size, &mut Discard)
            .await
            .is_err()
        {
            return;
        }
        let command = CommandV1::ClearLost {
            data_id: layout.data_id,
        };
        if self.propose(command).await == Some(Applied::Done) {
            tracing::info!(data_id = layout.data_id, "lost blob readable again");
            self.update(|s| s.cleared_lost += 1);
        }
    }
}
