//! The Raft driver: one engine task per node runs raft-rs's RawNode (tick, step, ready,
//! advance) and does its IO through the Env seam.
//!
//! Order of a ready (raft-rs's contract, "persist before send"):
//! 1. send `messages` (a leader's appends may go out before its own write);
//! 2. install a snapshot from the leader, if any (state machine, then log reset);
//! 3. append `entries` to the durable log (one sync per batch) and save the hard state;
//! 4. only then send `persisted_messages` (votes, append responses);
//! 5. `advance_append`, send the light ready's messages;
//! 6. apply the committed entries of both readies, then `advance_apply`. Applying after
//!    step 5 matters: a conf change that removes this leader, applied earlier, would make
//!    raft-rs look up the leader's own (removed) progress while advancing.
//!
//! The state machine is [`MetaStore`] (redb): each batch of committed entries is applied
//! in one transaction that also records the applied mark (index, term, configuration).
//! Those commits skip the sync, except the one before a log compaction; a restart
//! resumes from the last durable mark and replays the log after it. A snapshot for a
//! lagging or new member is the store itself, streamed (`crate::raft::snapshot`).
//!
//! Determinism: raft-rs draws election timeouts from rand's thread-local RNG whenever it
//! resets (a term or role change). After every RawNode call the driver checks whether
//! (term, role, leader) changed and, if so, overwrites the timeout from the node's seeded
//! Rng, so no thread-local randomness reaches a decision.
//!
//! Proposals carry a random 64-bit id in the entry context; the node that proposed it
//! answers its caller when it applies that entry. A proposal whose leader is lost stays
//! unanswered until the caller's timeout: its outcome is then unknown (it may still
//! commit).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use futures::future::{Either, select};
use protobuf::Message as _;
use raft::eraftpb::{ConfChangeV2, Entry, EntryType, Message, MessageType, Snapshot};
use raft::storage::MemStorage;
use raft::{RawNode, ReadOnlyOption, StateRole, Storage};
use sha2::{Digest, Sha256};

use crate::env::{Clock, Disk, Env, Rng};
use crate::meta::store::{Item, Mark, MetaStore, StoreError};
use crate::meta::{self, Applied, Command};
use crate::raft::durable::{DurableLog, HardStateSlots, LogError, Slot};
pub use crate::raft::handle::{
    MemberChange, ProposeError, RaftConfig, RaftHandle, RaftStatus, Role,
};
pub(super) use crate::raft::handle::{Op, Shared};
use crate::raft::lease::Lease;
use crate::raft::outbox::Outbox;
use crate::raft::snapshot;

/// Operations queued for the driver; bounded, so a flood becomes backpressure.
pub const DRIVER_QUEUE_MAX: usize = 4096;
/// Ops handled between two readies (a batch shares one log sync).
const BATCH_OPS_MAX: usize = 256;

/// Index (and term) of the snapshot every member of a new group starts from.
pub const BOOTSTRAP_INDEX: u64 = 1;

/// Entries between two restarts of the applied-log digest from the state.
pub const CHAIN_EPOCH: u64 = 1024;

pub(super) struct Driver<E: Env> {
    pub(super) env: E,
    pub(super) config: RaftConfig,
    pub(super) raw: RawNode<Store>,
    pub(super) log: DurableLog<E::Disk>,
    pub(super) hard: HardStateSlots<E::Disk>,
    /// What the hard-state slots hold now.
    pub(super) slot: Slot,
    pub(super) store: Arc<MetaStore>,
    pub(super) shared: Arc<Mutex<Shared>>,
    pub(super) tx: mpsc::Sender<Op>,
    /// Messages to peers, in order per peer (snapshots go on their own).
    pub(super) outbox: Outbox<E>,
    pub(super) waiters: BTreeMap<u64, oneshot::Sender<Result<Applied, ProposeError>>>,
    /// ReadIndex requests by the id of the one raft-rs read that answers them all.
    pub(super) reads: BTreeMap<u64, Vec<oneshot::Sender<Result<u64, ProposeError>>>>,
    /// ReadIndex requests received in this batch of ops, not yet asked of raft-rs.
    pub(super) batched_reads: Vec<oneshot::Sender<Result<u64, ProposeError>>>,
    /// ReadIndex answers waiting for the apply index to catch up: (index, id).
    pub(super) pending_reads: Vec<(u64, u64)>,
    /// Where the log was last compacted to.
    pub(super) last_compaction: u64,
    /// Staged snapshot files stepped into Raft since the last ready; whatever the ready
    /// did not install is removed after it.
    pub(super) staged: Vec<String>,
    pub(super) snapshots_installed: u64,
    pub(super) observed: (u64, StateRole, u64),
    pub(super) chain: Option<[u8; 32]>,
    /// A conf change was applied in this ready: see `hand_over_if_removed`.
    pub(super) check_removed: bool,
    /// The leader's read lease, and the restarted node's refusal to vote ([`Lease`]).
    pub(super) lease: Lease,
}

/// raft-rs's MemStorage for the log tail; snapshots come from the state machine.
#[derive(Clone)]
pub(super) struct Store {
    pub(super) mem: MemStorage,
    pub(super) meta: Arc<MetaStore>,
}

impl Storage for Store {
    fn initial_state(&self) -> raft::Result<raft::RaftState> {
        self.mem.initial_state()
    }
    fn entries(
        &self,
        low: u64,
        high: u64,
        max: impl Into<Option<u64>>,
        ctx: raft::GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.mem.entries(low, high, max, ctx)
    }
    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.mem.term(idx)
    }
    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }
    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }
    /// The metadata of the state as applied now; its data is streamed when the message
    /// is sent (`snapshot::send`).
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let unavailable = raft::Error::Store(raft::StorageError::SnapshotTemporarilyUnavailable);
        let Ok(mark) = self.meta.mark() else {
            return Err(unavailable);
        };
        let conf = &mark.conf;
        let lists = [
            &conf.voters,
            &conf.learners,
            &conf.voters_outgoing,
            &conf.learners_next,
        ];
        // A recipient rejects a snapshot whose configuration does not include it (the
        // conf change that adds it is applied but its batch not yet committed).
        if mark.index < request_index || !lists.iter().any(|ids| ids.contains(&to)) {
            return Err(unavailable);
        }
        Ok(snapshot::metadata(&mark))
    }
}

impl<E: Env> Driver<E> {
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        let mut next_tick = self.env.clock().now() + self.config.tick;
        loop {
            let wait = next_tick.saturating_sub(self.env.clock().now());
            let event = {
                let sleep = std::pin::pin!(self.env.clock().sleep(wait));
                match select(sleep, rx.next()).await {
                    Either::Left(_) => None,
                    Either::Right((None, _)) => return,
                    Either::Right((Some(op), _)) => Some(op),
                }
            };
            let mut handled = match event {
                None => {
                    self.raw.tick();
                    next_tick += self.config.tick;
                    Ok(())
                }
                Some(op) => self.handle(op),
            };
            for _ in 1..BATCH_OPS_MAX {
                match rx.try_recv() {
                    Ok(op) if handled.is_ok() => handled = self.handle(op),
                    _ => break,
                }
            }
            self.ask_batched_reads();
            self.fix_election_timeout();
            if let Err(error) = handled.and(self.on_ready().await) {
                // A log that lost acknowledged entries, or a disk that cannot persist
                // Raft state, must not vote or ack: stop.
                tracing::error!(node = self.config.id, %error, "raft driver stopping");
                let mut shared = self.shared.lock().expect("shared");
                shared.status.stopped = Some(error.to_string());
                shared.sole_leader = false;
                for waiter in shared.stop_waiters.drain(..) {
                    let _ = waiter.send(error.to_string());
                }
                return;
            }
        }
    }

    /// Overwrites raft-rs's thread_rng election timeout after every reset.
    pub(super) fn fix_election_timeout(&mut self) {
        let r = &self.raw.raft;
        let now = (r.term, r.state, r.leader_id);
        if now == self.observed {
            return;
        }
        self.observed = now;
        let (lo, hi) = (self.config.election_ticks, 2 * self.config.election_ticks);
        let t = lo + (self.env.rng().next_u64() % (hi - lo) as u64) as usize;
        self.raw.raft.set_randomized_election_timeout(t);
    }

    fn not_leader(&self) -> ProposeError {
        ProposeError::NotLeader {
            leader_hint: self.raw.raft.leader_id,
        }
    }

    fn handle(&mut self, op: Op) -> Result<(), LogError> {
        match op {
            Op::Step(m) => {
                self.check_heartbeat(&m)?;
                if self.lease.refuses_vote(&m, self.env.clock().now()) {
                    return Ok(());
                }
                if m.get_msg_type() == MessageType::MsgSnapshot {
                    self.staged
                        .push(String::from_utf8_lossy(&m.get_snapshot().data).into_owned());
                }
                // A follower's ReadIndex: answered from the lease, or by a round.
                let read = m.get_msg_type() == MessageType::MsgReadIndex;
                let leased = read && self.choose_read_option();
                // Messages from removed or unknown peers are refused by raft; fine.
                let _ = self.raw.step(m);
                if read {
                    self.raw.raft.read_only.option = ReadOnlyOption::Safe;
                    self.count_read(leased);
                    self.renew_lease();
                }
            }
            Op::Propose(command, reply) => {
                if self.raw.raft.state != StateRole::Leader {
                    let _ = reply.send(Err(self.not_leader()));
                    return Ok(());
                }
                let id = self.env.rng().next_u64();
                match self
                    .raw
                    .propose(id.to_le_bytes().to_vec(), meta::encode_command(&command))
                {
                    Ok(()) => {
                        self.waiters.insert(id, reply);
                    }
                    Err(_) => {
                        let _ = reply.send(Err(self.not_leader()));
                    }
                }
            }
            Op::ConfChange(changes, reply) => {
                if self.raw.raft.state != StateRole::Leader {
                    let _ = reply.send(Err(self.not_leader()));
                    return Ok(());
                }
                let mut cc = ConfChangeV2::default();
                for change in changes {
                    use raft::eraftpb::ConfChangeType as T;
                    let (kind, node) = match change {
                        MemberChange::AddVoter(n) => (T::AddNode, n),
                        MemberChange::AddLearner(n) => (T::AddLearnerNode, n),
                        MemberChange::Remove(n) => (T::RemoveNode, n),
                    };
                    let mut single = raft::eraftpb::ConfChangeSingle::default();
                    single.set_change_type(kind);
                    single.node_id = node;
                    cc.mut_changes().push(single);
                }
                let id = self.env.rng().next_u64();
                match self.raw.propose_conf_change(id.to_le_bytes().to_vec(), cc) {
                    Ok(()) => {
                        self.waiters.insert(id, reply);
                    }
                    Err(_) => {
                        let _ = reply.send(Err(self.not_leader()));
                    }
                }
            }
            // Asked of raft-rs once per batch (`ask_batched_reads`).
            Op::ReadIndex(reply) => self.batched_reads.push(reply),
            Op::SnapshotSent { to, ok } => {
                let status = if ok {
                    raft::SnapshotStatus::Finish
                } else {
                    raft::SnapshotStatus::Failure
                };
                self.raw.report_snapshot(to, status);
            }
        }
        Ok(())
    }

    /// A leader's heartbeat carries min(its commit, what this node acknowledged). One
    /// beyond this log's end means the log lost entries this node had acknowledged: a
    /// rotted last record that recovery could not tell from a torn write. raft-rs
    /// panics on it; the node refuses to go on instead (rebuild it from a snapshot).
    fn check_heartbeat(&self, m: &Message) -> Result<(), LogError> {
        let last = self.raw.raft.raft_log.last_index();
        if m.get_msg_type() == MessageType::MsgHeartbeat
            && m.term >= self.raw.raft.term
            && m.commit > last
        {
            return Err(LogError::Corrupt {
                file: format!("{}/log", self.config.dir),
                offset: 0,
                reason: format!(
                    "leader {} says this node acknowledged up to {}, the log ends at {last}",
                    m.from, m.commit
                ),
            });
        }
        Ok(())
    }

    fn send(&self, messages: Vec<Message>) {
        for m in messages {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                let (to, env) = (m.to, self.env.clone());
                let (store, mut tx) = (self.store.clone(), self.tx.clone());
                self.env.spawn(async move {
                    let ok = snapshot::send(&env, store, m).await;
                    let _ = tx.try_send(Op::SnapshotSent { to, ok });
                });
                continue;
            }
            self.outbox.send(&m);
        }
    }

    async fn on_ready(&mut self) -> Result<(), LogError> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();
        self.send(ready.take_messages());
        if !ready.snapshot().is_empty() {
            self.install_snapshot(ready.snapshot().clone()).await?;
        }
        // Applied after `advance_append` (below): applying a conf change that removes this
        // leader before it would make raft-rs look up the leader's own, removed progress.
        let committed = ready.take_committed_entries();
        // The slot is saved after every append and before any acknowledgement, so its
        // mark covers everything this node acknowledges (see `durable`).
        let mut save = false;
        if let (Some(first), Some(last)) = (ready.entries().first(), ready.entries().last()) {
            let (first, last) = (first.index, last.index);
            if first <= self.slot.log_durable_to {
                // This overwrites the log's suffix: lower the mark first, so that a
                // crash after the append cannot claim the replaced tail as durable.
                self.slot.log_durable_to = first - 1;
                self.hard.save(&self.slot).await?;
            }
            self.log.append(ready.entries()).await?;
            self.raw
                .mut_store()
                .mem
                .wl()
                .append(ready.entries())
                .expect("contiguous append");
            self.slot.log_durable_to = last;
            save = true;
        }
        if let Some(hs) = ready.hs() {
            self.slot.hs = hs.clone();
            self.raw.mut_store().mem.wl().set_hardstate(hs.clone());
            save = true;
        }
        if save {
            self.hard.save(&self.slot).await?;
        }
        for rs in ready.take_read_states() {
            self.on_read_state(rs);
        }
        self.send(ready.take_persisted_messages());
        let mut light = self.raw.advance_append(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().mem.wl().mut_hard_state().commit = commit;
        }
        self.send(light.take_messages());
        self.apply(committed).await?;
        self.apply(light.take_committed_entries()).await?;
        self.raw.advance_apply();
        // Reads whose index is already applied are answered now, not at the next apply.
        self.answer_reads(self.raw.raft.raft_log.applied);
        if std::mem::take(&mut self.check_removed) {
            self.hand_over_if_removed();
        }
        for path in std::mem::take(&mut self.staged) {
            snapshot::remove(self.env.disk(), &path).await;
        }
        self.fix_election_timeout();
        self.publish();
        Ok(())
    }

    /// One raft-rs ReadIndex for every read request of the batch just handled: each of
    /// them arrived before this call, so the index it returns (the commit index when the
    /// leader takes the read) covers every write acknowledged before any of them began.
    /// One heartbeat round then serves them all instead of one round each.
    fn ask_batched_reads(&mut self) {
        if self.batched_reads.is_empty() {
            return;
        }
        let id = self.env.rng().next_u64();
        self.reads
            .insert(id, std::mem::take(&mut self.batched_reads));
        self.read_index(id);
    }

    /// Asks raft-rs for a read index under `id`: from the lease when it holds (then a
    /// round goes out only when the lease needs renewing), else by a heartbeat round.
    fn read_index(&mut self, id: u64) {
        let leased = self.choose_read_option();
        self.raw.read_index(id.to_le_bytes().to_vec());
        self.raw.raft.read_only.option = ReadOnlyOption::Safe;
        if self.raw.raft.state == StateRole::Leader && !leased {
            let (now, term) = (self.env.clock().now(), self.raw.raft.term);
            self.lease.sent(id, now, term);
        }
        self.count_read(leased);
        self.renew_lease();
    }

    /// Counts a leader's read: answered from the lease, or by a round of its own.
    fn count_read(&self, leased: bool) {
        if self.raw.raft.state != StateRole::Leader {
            return;
        }
        if leased {
            self.config.metrics.lease_reads.inc();
        } else {
            self.config.metrics.read_rounds.inc();
        }
    }

    /// A leader sends a heartbeat round nobody waits on when its lease is due for one:
    /// reads forwarded by followers are answered to them, not here, so their rounds
    /// cannot extend it.
    fn renew_lease(&mut self) {
        let (now, term) = (self.env.clock().now(), self.raw.raft.term);
        if self.raw.raft.state != StateRole::Leader || !self.lease.renew_due(now, term) {
            return;
        }
        let id = self.env.rng().next_u64();
        self.raw.read_index(id.to_le_bytes().to_vec());
        self.lease.sent(id, now, term);
        self.config.metrics.read_rounds.inc();
    }

    /// Sets raft-rs's read option for the next read: lease-based while this leader's
    /// lease holds (and no configuration change or transfer is under way), else Safe.
    /// Whether the lease is used; callers set Safe again after the read.
    fn choose_read_option(&mut self) -> bool {
        let r = &self.raw.raft;
        let leased = r.state == StateRole::Leader
            && r.lead_transferee.is_none()
            && !r.has_pending_conf()
            && self.lease.holds(self.env.clock().now(), r.term);
        self.raw.raft.read_only.option = if leased {
            ReadOnlyOption::LeaseBased
        } else {
            ReadOnlyOption::Safe
        };
        leased
    }

    fn on_read_state(&mut self, rs: raft::ReadState) {
        let Ok(id) = <[u8; 8]>::try_from(&rs.request_ctx[..]) else {
            return;
        };
        let id = u64::from_le_bytes(id);
        self.lease.answered(id);
        self.pending_reads.push((rs.index, id));
    }

    fn answer_reads(&mut self, applied: u64) {
        let (ready, waiting): (Vec<_>, Vec<_>) = self
            .pending_reads
            .drain(..)
            .partition(|(i, _)| *i <= applied);
        self.pending_reads = waiting;
        for (index, id) in ready {
            for reply in self.reads.remove(&id).into_iter().flatten() {
                let _ = reply.send(Ok(index));
            }
        }
    }

    async fn install_snapshot(&mut self, snap: Snapshot) -> Result<(), LogError> {
        let md = snap.get_metadata();
        let mark = Mark {
            index: md.index,
            term: md.term,
            conf: md.get_conf_state().clone(),
        };
        // The data is the staged file `receive_snapshot` wrote.
        let path = String::from_utf8_lossy(&snap.data).into_owned();
        // The store first: if the log reset below is lost in a crash, the restart still
        // resumes from the snapshot's mark, and `start` finishes the reset.
        snapshot::install(self.env.disk(), &self.store, &path, &mark).await?;
        // The log is replaced by the snapshot: its mark starts at the snapshot's index.
        self.slot.log_durable_to = mark.index;
        self.hard.save(&self.slot).await?;
        self.log.reset().await?;
        self.raw
            .mut_store()
            .mem
            .wl()
            .apply_snapshot(snapshot::metadata(&mark))
            .expect("newer snapshot");
        self.last_compaction = mark.index;
        self.chain = None;
        self.snapshots_installed += 1;
        Ok(())
    }

    /// Applies committed entries: in chunks that end at chain epochs (the epoch digest
    /// hashes the state right after its entry), one store commit per chunk. Commits are
    /// not durable (the log holds the entries) except the one before a compaction: the
    /// log may drop only what the store holds durably.
    async fn apply(&mut self, mut entries: Vec<Entry>) -> Result<(), LogError> {
        let Some(last) = entries.last().map(|e| e.index) else {
            return Ok(());
        };
        self.record_commit_of_conf_change(&entries).await?;
        let compact = last >= self.last_compaction + self.config.snapshot_every;
        while !entries.is_empty() {
            let cut = entries
                .iter()
                .position(|e| e.index.is_multiple_of(CHAIN_EPOCH))
                .map_or(entries.len(), |p| p + 1);
            let rest = entries.split_off(cut);
            self.apply_chunk(entries, compact && rest.is_empty())
                .await?;
            entries = rest;
        }
        self.answer_reads(last);
        if compact {
            self.compact(last).await?;
        }
        Ok(())
    }

    /// After a restart raft-rs refuses to campaign while a committed conf change is
    /// unapplied, but it knows of commits only from the saved hard state, and a commit
    /// learnt from this node's own append (`LightReady`) is not in it. So the slot
    /// records a conf change as committed before it is applied. Otherwise a node
    /// restarting from an older mark campaigns in the configuration before the change:
    /// a replaced lone voter elects itself alone and commits entries the new voters
    /// never see.
    async fn record_commit_of_conf_change(&mut self, entries: &[Entry]) -> Result<(), LogError> {
        let conf_change = entries.iter().rev().find(|e| {
            matches!(
                e.get_entry_type(),
                EntryType::EntryConfChangeV2 | EntryType::EntryConfChange
            )
        });
        match conf_change {
            Some(entry) if entry.index > self.slot.hs.commit => {
                self.slot.hs.commit = entry.index;
                Ok(self.hard.save(&self.slot).await?)
            }
            _ => Ok(()),
        }
    }

    async fn apply_chunk(&mut self, entries: Vec<Entry>, durable: bool) -> Result<(), LogError> {
        let mut items = Vec::with_capacity(entries.len());
        for entry in &entries {
            items.push(Item {
                index: entry.index,
                command: self.command_of(entry),
            });
        }
        let last = entries.last().expect("chunks are not empty");
        let mark = Mark {
            index: last.index,
            term: last.term,
            conf: self.raw.raft.prs().conf().to_conf_state(),
        };
        let store = self.store.clone();
        let results = self
            .env
            .disk()
            .blocking(move || store.apply(&items, &mark, durable))
            .await?;
        for (entry, result) in entries.iter().zip(results) {
            let id = <[u8; 8]>::try_from(&entry.context[..])
                .ok()
                .map(u64::from_le_bytes);
            if let Some(reply) = id.and_then(|id| self.waiters.remove(&id)) {
                let _ = reply.send(Ok(result));
            }
            self.advance_chain(entry)?;
        }
        Ok(())
    }

    fn advance_chain(&mut self, entry: &Entry) -> Result<(), StoreError> {
        if !self.config.applied_chain {
            return Ok(());
        }
        if entry.index.is_multiple_of(CHAIN_EPOCH) {
            let state = meta::encode_state(&self.store.reader()?.export()?);
            self.chain = Some(Sha256::digest(state).into());
        } else if let Some(chain) = self.chain {
            let mut h = Sha256::new();
            h.update(chain);
            h.update(entry.index.to_le_bytes());
            h.update(entry.term.to_le_bytes());
            h.update(&entry.data);
            self.chain = Some(h.finalize().into());
        }
        Ok(())
    }

    /// The command an entry carries for the state machine; configuration changes are
    /// applied to Raft here and carry none.
    fn command_of(&mut self, entry: &Entry) -> Option<Command> {
        match entry.get_entry_type() {
            EntryType::EntryNormal if entry.data.is_empty() => None, // a new leader's no-op
            EntryType::EntryNormal => {
                let command = meta::decode_command(&entry.data);
                if command.is_none() {
                    // Every replica skips it alike; it came from a newer or broken proposer.
                    tracing::error!(index = entry.index, "undecodable command skipped");
                }
                command
            }
            EntryType::EntryConfChangeV2 | EntryType::EntryConfChange => {
                let applied = if entry.get_entry_type() == EntryType::EntryConfChangeV2 {
                    ConfChangeV2::parse_from_bytes(&entry.data)
                        .ok()
                        .map(|cc| self.raw.apply_conf_change(&cc))
                } else {
                    raft::eraftpb::ConfChange::parse_from_bytes(&entry.data)
                        .ok()
                        .map(|cc| self.raw.apply_conf_change(&cc))
                };
                match applied {
                    Some(Ok(cs)) => {
                        self.raw.mut_store().mem.wl().set_conf_state(cs);
                        // Not here: raft-rs forbids role changes inside a ready.
                        self.check_removed = true;
                        self.lease.conf_changed();
                    }
                    Some(Err(error)) => tracing::warn!(%error, "conf change refused"),
                    None => tracing::error!(index = entry.index, "undecodable conf change skipped"),
                }
                None
            }
        }
    }

    /// raft-rs keeps a leader that removed itself leading and heartbeating forever (its
    /// `post_conf_change` leaves this as a TODO), which stalls the new configuration; and
    /// such a leader panics in `maybe_commit` on the next response it processes. So it
    /// steps down at once, in the same term (a removed node must not raise the group's
    /// term), after telling the most caught-up voter, if fully caught up, to campaign now.
    fn hand_over_if_removed(&mut self) {
        let r = &self.raw.raft;
        if r.state != StateRole::Leader || r.prs().conf().voters().contains(self.config.id) {
            return;
        }
        let last = r.raft_log.last_index();
        let best = r
            .prs()
            .iter()
            .filter(|(id, _)| **id != self.config.id && r.prs().conf().voters().contains(**id))
            .max_by_key(|(id, p)| (p.matched, std::cmp::Reverse(**id)))
            .map(|(id, p)| (*id, p.matched));
        if let Some((next, matched)) = best
            && matched == last
        {
            self.raw.raft.send_timeout_now(next);
        }
        let term = self.raw.raft.term;
        self.raw.raft.become_follower(term, raft::INVALID_ID);
    }

    /// Drops the log up to `log_tail_keep` entries before `index`: the store has just
    /// committed the state at `index` durably.
    async fn compact(&mut self, index: u64) -> Result<(), LogError> {
        let upto = index.saturating_sub(self.config.log_tail_keep);
        self.last_compaction = index;
        if upto <= self.raw.store().mem.first_index().expect("first index") {
            return Ok(());
        }
        self.raw
            .mut_store()
            .mem
            .wl()
            .compact(upto)
            .expect("compact below applied");
        self.log.compact(upto).await?;
        Ok(())
    }

    pub(super) fn publish(&mut self) {
        let r = &self.raw.raft;
        let conf = r.prs().conf().to_conf_state();
        // A lone voter that leads, with an entry of its term committed and everything
        // committed applied (see `Shared::sole_leader`).
        let log = &r.raft_log;
        let sole_leader = r.state == StateRole::Leader
            && conf.voters == [self.config.id]
            && conf.voters_outgoing.is_empty()
            && log.applied == log.committed
            && log.term(log.committed) == Ok(r.term);
        let status = RaftStatus {
            id: self.config.id,
            leader: r.leader_id,
            term: r.term,
            role: match r.state {
                StateRole::Leader => Role::Leader,
                StateRole::Candidate | StateRole::PreCandidate => Role::Candidate,
                StateRole::Follower => Role::Follower,
            },
            commit: r.raft_log.committed,
            applied: r.raft_log.applied,
            voters: conf.voters.clone(),
            learners: conf.learners.clone(),
            snapshots_installed: self.snapshots_installed,
            leader_changes: 0,
            stopped: None,
            applied_chain: self.chain,
        };
        let mut shared = self.shared.lock().expect("shared");
        let before = &shared.status;
        let changed =
            status.leader != 0 && (status.leader, status.term) != (before.leader, before.term);
        let status = RaftStatus {
            leader_changes: before.leader_changes + u64::from(changed),
            ..status
        };
        shared.status = status;
        shared.sole_leader = sole_leader;
    }
}
