//! Self-healing repair: every node watches the shards its layouts say it holds and
//! rebuilds what is missing, unsealed or rotted, without anyone reading the object.
//!
//! Three tasks per node:
//! - the **presence check** ([`presence`]) walks the data refs in pages, a few seconds
//!   per pass: a shard of this node that is unsealed in its layout or absent from the
//!   local listing is queued (no hashing). Shards the read path found corrupt, and the
//!   unsealed shards of a degraded write (reported at its commit), are queued as they
//!   come in;
//! - the **deep scrub** ([`scrub`]) hashes every local shard against the sha256 the
//!   layout replicates (not only the file's own footer), paced by
//!   `scrub_bytes_per_s`, resumable from a cursor on disk ([`cursor`]), a full pass
//!   every `scrub_period` (7 days by default) or at once on [`Repair::start_scrub`];
//! - the **worker** takes tasks riskiest first ([`queue`]) and rebuilds each from k
//!   verified survivors at `rebuild_bytes_per_s` (`DataPath::rebuild_shard`, which
//!   checks the replicated sha256 before sealing), then commits the placement through
//!   Raft with a guard (`CommandV1::RepairShard`: the layout it repaired is still
//!   current). A shard its write counted unsealed that its holder has whole (the seal's
//!   answer was lost) is hashed and sealed in place, not rebuilt (`Repair::adopt`).
//!   A blob with fewer than k good shards is marked lost
//!   (`CommandV1::MarkLost`); a lost blob that reads whole again is cleared. A rotted
//!   shard of a lost blob waits ([`queue::Parked`]) and is rebuilt once its blob reads
//!   again, whichever node clears the mark.
//!
//! A holder down for `takeover_after` has its shards rebuilt on spares ([`takeover`]).
//!
//! Invariants: a corrupt shard is never a rebuild source; nothing is sealed that does
//! not hash to the replicated sha256; a repair never changes a layout other than the
//! one it read (so it cannot resurrect a delete or clobber an overwrite); a shard lands
//! on the node its layout names, or on a spare that holds no other shard of the blob
//! (the state machine refuses any layout that puts two on one node). Every queue and
//! page is bounded.

pub mod cursor;
mod presence;
pub mod queue;
mod scrub;
mod takeover;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::data_path::{DataPath, RebuildError, shard_id};
use crate::env::{Clock, Env, NodeId};
use crate::meta::store::MetaReader;
use crate::meta::{Applied, Command, CommandV1, DataLayout, LostMark, ShardPlacement};
use crate::raft::node::RaftHandle;
use crate::shard_store::ShardError;
use queue::{Parked, Queue, Reason, Task};

/// A metadata read or commit of repair gives up after this long (and retries later).
const META_TIMEOUT: Duration = Duration::from_secs(10);
/// The worker looks for reports this often while its queue is empty.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Repair's knobs.
#[derive(Debug, Clone)]
pub struct RepairConfig {
    /// Pause between two presence passes.
    pub presence_interval: Duration,
    /// A full deep-scrub pass starts this long after the last one ended.
    pub scrub_period: Duration,
    /// Shard bytes the scrub hashes per second, at most.
    pub scrub_bytes_per_s: u64,
    /// Shard bytes rebuilds write per second, at most: foreground traffic keeps the rest.
    pub rebuild_bytes_per_s: u64,
    /// A holder unreachable this long has its shards rebuilt on spares ([`takeover`]).
    pub takeover_after: Duration,
    /// Directory of the scrub cursor on the node's disk.
    pub dir: String,
    /// False only in tests that prove the checkers notice unhealed shards: a node
    /// without repair loses durability with every fault.
    pub enabled: bool,
}

impl Default for RepairConfig {
    fn default() -> Self {
        Self {
            presence_interval: Duration::from_secs(5),
            scrub_period: Duration::from_secs(7 * 24 * 3600),
            scrub_bytes_per_s: 32 << 20,
            rebuild_bytes_per_s: 16 << 20,
            takeover_after: Duration::from_secs(600),
            dir: "repair".into(),
            enabled: true,
        }
    }
}

/// What a node's repair is doing, for `hamster admin repair status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairStatus {
    pub node: NodeId,
    pub scrub: cursor::ScrubCursor,
    /// Shards the current pass has still to check (as of its last listing).
    pub scrub_remaining_shards: u64,
    /// Scrub rate over the current pass, bytes per second.
    pub scrub_rate_bytes_per_s: u64,
    /// Queued tasks per margin (good shards minus k), riskiest first.
    pub queue_by_margin: Vec<(i32, u64)>,
    pub rebuilt_shards: u64,
    pub rebuilt_bytes: u64,
    /// Rebuilds that failed (target down, hash mismatch) and wait for the next pass.
    pub failures: u64,
    /// Tasks dropped from a full queue (found again by the next pass).
    pub deferred: u64,
    pub marked_lost: u64,
    pub cleared_lost: u64,
    /// Rebuilt shards placed on a spare because their holder was down too long.
    pub moved_shards: u64,
    /// Shards counted unsealed by their write, found whole on this node and sealed.
    pub adopted_shards: u64,
    /// Such shards found damaged instead (rebuilt from the others when that is possible;
    /// of a lost blob, hashed once and not again until the blob reads whole).
    pub unadoptable_shards: u64,
    /// Shard files in this node's directory at the last presence pass.
    pub shards_held: u64,
    /// Voters, and those that answered the last presence pass's ping (this node counts).
    pub members: u64,
    pub members_reachable: u64,
    /// Blobs marked lost in the whole store, as of the last complete presence pass.
    pub lost_blobs: u64,
}

#[derive(Default)]
struct Inner {
    queue: Queue,
    /// Rotted shards of lost blobs, waiting for their blob to read again.
    parked: Parked,
    /// Presence passes started since the node did.
    presence_passes: u64,
    liveness: takeover::Liveness,
    status: RepairStatus,
    scrub_requested: bool,
}

/// One node's repair service.
pub struct Repair<E: Env> {
    env: E,
    data: Arc<DataPath<E>>,
    raft: RaftHandle,
    config: RepairConfig,
    inner: Mutex<Inner>,
    /// When the node started (this service starts with it).
    started: std::time::Duration,
}

impl<E: Env> Repair<E> {
    /// Starts the presence check, the scrub and the worker.
    pub fn start(
        env: E,
        data: Arc<DataPath<E>>,
        raft: RaftHandle,
        config: RepairConfig,
    ) -> Arc<Self> {
        let repair = Arc::new(Self {
            env: env.clone(),
            data,
            raft,
            config,
            inner: Mutex::new(Inner::default()),
            started: env.clock().now(),
        });
        if !repair.config.enabled {
            return repair;
        }
        env.spawn(repair.clone().presence_loop());
        env.spawn(repair.clone().scrub_loop());
        env.spawn(repair.clone().worker_loop());
        repair
    }

    /// Starts a full scrub pass now (unless one is under way).
    pub fn start_scrub(&self) {
        self.inner.lock().expect("repair").scrub_requested = true;
    }

    /// Time since the node started.
    pub fn uptime(&self) -> std::time::Duration {
        self.env.clock().now().saturating_sub(self.started)
    }

    pub fn status(&self) -> RepairStatus {
        let inner = self.inner.lock().expect("repair");
        let mut status = inner.status.clone();
        status.node = self.env.node_id();
        status.queue_by_margin = inner.queue.by_margin();
        status.deferred = inner.queue.deferred;
        status
    }

    fn update(&self, f: impl FnOnce(&mut RepairStatus)) {
        f(&mut self.inner.lock().expect("repair").status);
    }

    fn enqueue(&self, margin: i32, task: Task) {
        self.inner.lock().expect("repair").queue.push(margin, task);
    }

    fn park(&self, task: Task) {
        let mut inner = self.inner.lock().expect("repair");
        let pass = inner.presence_passes;
        if !inner.parked.park(task, pass) {
            inner.queue.deferred += 1;
        }
    }

    /// A view of the metadata that includes everything committed before the call (after
    /// a ReadIndex; `None` without a leader).
    async fn current(&self) -> Option<MetaReader> {
        let index = crate::env::timeout(self.env.clock(), META_TIMEOUT, self.raft.read_index());
        match index.await {
            Ok(Ok(_)) => self.raft.reader().ok(),
            _ => None,
        }
    }

    async fn propose(&self, command: CommandV1) -> Option<Applied> {
        let proposed = crate::raft::forward::propose_anywhere(
            &self.env,
            &self.raft,
            Command::V1(command),
            META_TIMEOUT,
        );
        match proposed.await {
            Ok(applied) => Some(applied),
            Err(error) => {
                tracing::warn!(%error, "repair: commit failed; retried on the next pass");
                None
            }
        }
    }

    /// Takes the reports of the read path and of degraded commits into the queue.
    fn take_reports(&self, reader: &MetaReader) {
        for report in self.data.take_reported() {
            let Ok(Some((_, layout))) = reader.layout_of(report.id.object) else {
                continue;
            };
            let index = report.id.index;
            let Some(placement) = layout.shards.get(usize::from(index)) else {
                continue;
            };
            if placement.node != report.node {
                continue;
            }
            let reason = if placement.sealed {
                Reason::Corrupt
            } else {
                Reason::Missing
            };
            self.owe(&layout, index, reason);
        }
    }

    /// Queues shard `index` of `layout` at its margin.
    fn owe(&self, layout: &DataLayout, index: u16, reason: Reason) {
        let placement = &layout.shards[usize::from(index)];
        let good = layout.sealed_shards() as i32 - i32::from(placement.sealed);
        let task = Task {
            data_id: layout.data_id,
            index,
            node: placement.node,
            reason,
        };
        self.enqueue(good - i32::from(layout.k), task);
    }

    async fn worker_loop(self: Arc<Self>) {
        loop {
            let task = self.inner.lock().expect("repair").queue.pop();
            match task {
                Some((_, task)) => self.repair_one(task).await,
                None => {
                    self.env.clock().sleep(IDLE_POLL).await;
                    // The local replica will do: a report's layout is applied here (a
                    // degraded commit) or was read here (a failed read), and the task
                    // is checked against an up-to-date replica before any rebuild.
                    if self.data.has_reported()
                        && let Ok(reader) = self.raft.reader()
                    {
                        self.take_reports(&reader);
                    }
                }
            }
        }
    }

    /// Rebuilds one shard if its layout still owes it, and commits the result.
    async fn repair_one(&self, task: Task) {
        let Some(reader) = self.current().await else {
            self.update(|s| s.failures += 1);
            return;
        };
        let Ok(Some((data_ref, layout))) = reader.layout_of(task.data_id) else {
            return; // deleted or overwritten: nothing is owed
        };
        drop(reader);
        let i = usize::from(task.index);
        let expected = layout.shards[i].clone();
        if expected.node != task.node {
            return; // already moved by another repair
        }
        let Some(target) = self.target(&layout, task.index) else {
            return; // its holder is down and no spare exists: it waits for the holder
        };
        let mut unadoptable = false;
        if !expected.sealed && target == expected.node {
            match self.adopt(&layout, task.index).await {
                Some(true) => return,
                Some(false) => unadoptable = true,
                None => {}
            }
        }
        if task.reason == Reason::Missing
            && expected.sealed
            && target == expected.node
            && self.present(&layout, i).await
        {
            return;
        }
        let rebuilt = self
            .data
            .rebuild_shard(&layout, task.index, target, self.config.rebuild_bytes_per_s)
            .await;
        match rebuilt {
            Ok(sealed) => {
                let placement = ShardPlacement {
                    node: target,
                    sha256: sealed.sha256,
                    sealed: true,
                };
                let command = CommandV1::RepairShard {
                    data_id: task.data_id,
                    index: task.index,
                    expected,
                    placement,
                };
                if self.propose(command).await == Some(Applied::Done) {
                    tracing::info!(shard = %shard_id(task.data_id, task.index).file_name(),
                        node = target, "shard rebuilt");
                    let moved = target != task.node;
                    self.update(|s| {
                        s.rebuilt_shards += 1;
                        s.rebuilt_bytes += sealed.len_bytes;
                        s.moved_shards += u64::from(moved);
                    });
                }
            }
            Err(RebuildError::TooFewShards { good, need, .. }) => {
                // A missing shard is found again by the presence pass; a rotted one
                // only by the next scrub, unless it waits here. A damaged unsealed one
                // waits here too, so that the presence pass does not hash it again
                // every few seconds while its blob stays lost.
                if task.reason == Reason::Corrupt || unadoptable {
                    self.park(task);
                }
                if data_ref.lost.is_none() {
                    self.mark_lost(&layout, good, need).await;
                }
            }
            Err(error) => {
                tracing::warn!(%error, data_id = task.data_id, "repair failed; retried later");
                self.update(|s| s.failures += 1);
            }
        }
    }

    /// Seals in the layout a shard its write counted as unsealed but that this node holds
    /// whole (the holder sealed it; its answer was lost): the file must hash to the
    /// replicated sha256, and is synced first. No rebuild is needed, and for a blob with
    /// fewer than k shards besides this one it is the only way back. `Some(true)` if
    /// proposed, `Some(false)` if the file is damaged (a checksum, its length or its
    /// sha256 is wrong), `None` if it is not here or the disk failed.
    async fn adopt(&self, layout: &DataLayout, index: u16) -> Option<bool> {
        let expected = &layout.shards[usize::from(index)];
        if expected.node != self.env.node_id() {
            return None;
        }
        let id = shard_id(layout.data_id, index);
        match self.data.store().verify_durable(&id).await {
            Ok((_, sha256)) if sha256 == expected.sha256 => {}
            Ok(_) | Err(ShardError::Corrupt { .. } | ShardError::Truncated { .. }) => {
                tracing::warn!(shard = %id.file_name(), "unsealed shard found damaged");
                self.update(|s| s.unadoptable_shards += 1);
                return Some(false);
            }
            Err(_) => return None,
        }
        let command = CommandV1::RepairShard {
            data_id: layout.data_id,
            index,
            expected: expected.clone(),
            placement: ShardPlacement {
                sealed: true,
                ..expected.clone()
            },
        };
        if self.propose(command).await == Some(Applied::Done) {
            tracing::info!(shard = %id.file_name(), "unsealed shard found whole: sealed");
            self.update(|s| s.adopted_shards += 1);
        }
        Some(true)
    }

    /// Whether the holder of shard `i` has it sealed under its name (no hashing).
    async fn present(&self, layout: &DataLayout, i: usize) -> bool {
        let id = shard_id(layout.data_id, i as u16);
        let node = layout.shards[i].node;
        if node == self.env.node_id() {
            self.data.store().header(&id).await.is_ok()
        } else {
            false
        }
    }

    async fn mark_lost(&self, layout: &DataLayout, good: usize, need: usize) {
        let mark = LostMark {
            good: good as u16,
            needed: need as u16,
            since_ms: self.env.clock().wall_ms(),
        };
        tracing::error!(
            data_id = layout.data_id,
            good,
            need,
            "blob LOST: fewer than k shards readable; see hamster admin lost"
        );
        let command = CommandV1::MarkLost {
            data_id: layout.data_id,
            shards: layout.shards.clone(),
            mark,
        };
        if self.propose(command).await == Some(Applied::Done) {
            self.update(|s| s.marked_lost += 1);
        }
    }
}
