//! The Raft driver: one engine task per node runs raft-rs's RawNode (tick, step, ready,
//! advance) and does its IO through the Env seam.
//!
//! Order of a ready (raft-rs's contract, "persist before send"):
//! 1. send `messages` (a leader's appends may go out before its own write);
//! 2. install a snapshot from the leader, if any (state machine, snapshot file, log reset);
//! 3. append `entries` to the durable log (one sync per batch) and save the hard state;
//! 4. only then send `persisted_messages` (votes, append responses);
//! 5. `advance_append`, send the light ready's messages;
//! 6. apply the committed entries of both readies, then `advance_apply`. Applying after
//!    step 5 matters: a conf change that removes this leader, applied earlier, would make
//!    raft-rs look up the leader's own (removed) progress while advancing.
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
use std::time::Duration;

use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use futures::future::{Either, select};
use protobuf::Message as _;
use raft::eraftpb::{ConfChangeV2, Entry, EntryType, Message, Snapshot};
use raft::storage::MemStorage;
use raft::{RawNode, StateRole, Storage};
use sha2::{Digest, Sha256};

use crate::env::{Clock, Env, Net, NodeId, Rng};
use crate::meta::{self, Applied, Command, MetaState};
use crate::raft::durable::{self, DurableLog, HardStateSlots, LogError, StoredSnapshot};

/// Operations queued for the driver; bounded, so a flood becomes backpressure.
pub const DRIVER_QUEUE_MAX: usize = 4096;
/// Ops handled between two readies (a batch shares one log sync).
const BATCH_OPS_MAX: usize = 256;
const RAFT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct RaftConfig {
    pub id: NodeId,
    /// The voters of a new cluster; empty for a node that joins an existing one.
    pub bootstrap_voters: Vec<NodeId>,
    /// Directory of the durable state on the node's disk.
    pub dir: String,
    pub tick: Duration,
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    /// Take a snapshot (and compact the log) every this many applied entries.
    pub snapshot_every: u64,
}

impl RaftConfig {
    pub fn new(id: NodeId, bootstrap_voters: Vec<NodeId>) -> Self {
        Self {
            id,
            bootstrap_voters,
            dir: "raft".into(),
            tick: Duration::from_millis(100),
            election_ticks: 10,
            heartbeat_ticks: 2,
            snapshot_every: 1000,
        }
    }
}

/// Why a proposal was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ProposeError {
    /// This node is not the leader; `leader_hint` is the leader it knows of (0: none).
    #[error("not the leader (leader hint {leader_hint})")]
    NotLeader { leader_hint: NodeId },
    /// The driver is gone (node shutting down or its log refused to load).
    #[error("raft driver stopped")]
    Stopped,
    /// No answer in time: the operation may or may not have been applied.
    #[error("timed out; outcome unknown")]
    Timeout,
}

/// What the driver publishes for readers and operators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftStatus {
    pub id: NodeId,
    pub leader: NodeId,
    pub term: u64,
    pub role: Role,
    pub commit: u64,
    pub applied: u64,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    /// A digest of the applied log: at every index divisible by [`CHAIN_EPOCH`] it
    /// restarts from the sha256 of the state machine, and every later entry (index,
    /// term, data) is chained into it. Two nodes at the same applied index have the same
    /// digest exactly when they applied the same entries since the last epoch. `None`
    /// until a node restored from a snapshot reaches its next epoch.
    pub applied_chain: Option<[u8; 32]>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Role {
    #[default]
    Follower,
    Candidate,
    Leader,
}

pub enum MemberChange {
    AddVoter(NodeId),
    AddLearner(NodeId),
    Remove(NodeId),
}

enum Op {
    Propose(Command, oneshot::Sender<Result<Applied, ProposeError>>),
    ConfChange(
        Vec<MemberChange>,
        oneshot::Sender<Result<Applied, ProposeError>>,
    ),
    ReadIndex(oneshot::Sender<Result<u64, ProposeError>>),
    Step(Message),
    SnapshotSent {
        to: NodeId,
        ok: bool,
    },
}

struct Shared {
    state: MetaState,
    status: RaftStatus,
}

/// The node's way into its Raft group: propose, read, and look. Cheap to clone.
#[derive(Clone)]
pub struct RaftHandle {
    tx: mpsc::Sender<Op>,
    shared: Arc<Mutex<Shared>>,
}

impl RaftHandle {
    async fn ask<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, ProposeError>>) -> Op,
    ) -> Result<T, ProposeError> {
        let (reply, answer) = oneshot::channel();
        let mut tx = self.tx.clone();
        futures::SinkExt::send(&mut tx, op(reply))
            .await
            .map_err(|_| ProposeError::Stopped)?;
        answer.await.unwrap_or(Err(ProposeError::Stopped))
    }

    /// Proposes a command; answers once it is committed and applied here.
    pub async fn propose(&self, command: Command) -> Result<Applied, ProposeError> {
        self.ask(|r| Op::Propose(command, r)).await
    }

    /// Adds or removes members in one ConfChangeV2. More than one change goes through a
    /// joint configuration, which raft-rs leaves automatically once it is committed.
    pub async fn change_members(
        &self,
        changes: Vec<MemberChange>,
    ) -> Result<Applied, ProposeError> {
        self.ask(|r| Op::ConfChange(changes, r)).await
    }

    /// Waits until this replica has applied everything committed when the call began
    /// (ReadIndex); a read of the local state after it is linearizable.
    pub async fn read_index(&self) -> Result<u64, ProposeError> {
        self.ask(Op::ReadIndex).await
    }

    /// Hands a Raft message from a peer to the driver; dropped when the queue is full
    /// (Raft tolerates lost messages).
    pub fn step(&self, message: Message) {
        let _ = self.tx.clone().try_send(Op::Step(message));
    }

    /// Reads the local replica (possibly stale; see `read_index`).
    pub fn read<T>(&self, f: impl FnOnce(&MetaState) -> T) -> T {
        f(&self.shared.lock().expect("raft shared state").state)
    }

    pub fn status(&self) -> RaftStatus {
        self.shared
            .lock()
            .expect("raft shared state")
            .status
            .clone()
    }
}

/// Index (and term) of the snapshot every member of a new group starts from.
pub const BOOTSTRAP_INDEX: u64 = 1;

/// Entries between two restarts of the applied-log digest from the state.
pub const CHAIN_EPOCH: u64 = 1024;

/// Network tag of a Raft message (see `crate::node`).
pub const TAG_RAFT: u8 = 1;

struct Driver<E: Env> {
    env: E,
    config: RaftConfig,
    raw: RawNode<Store>,
    log: DurableLog<E::Disk>,
    hard: HardStateSlots<E::Disk>,
    shared: Arc<Mutex<Shared>>,
    tx: mpsc::Sender<Op>,
    waiters: BTreeMap<u64, oneshot::Sender<Result<Applied, ProposeError>>>,
    reads: BTreeMap<u64, oneshot::Sender<Result<u64, ProposeError>>>,
    /// ReadIndex answers waiting for the apply index to catch up: (index, id).
    pending_reads: Vec<(u64, u64)>,
    last_snapshot: u64,
    observed: (u64, StateRole, u64),
    chain: Option<[u8; 32]>,
    /// A conf change was applied in this ready: see `hand_over_if_removed`.
    check_removed: bool,
}

/// raft-rs's MemStorage for the log tail, plus the latest full snapshot for followers.
#[derive(Clone)]
struct Store {
    mem: MemStorage,
    snapshot: Arc<Mutex<Snapshot>>,
    /// Set when Raft asked for a snapshot the stored one cannot serve (too old, or from
    /// before the recipient joined): the driver takes a fresh one.
    wanted: Arc<std::sync::atomic::AtomicBool>,
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
        let snap = self.snapshot.lock().expect("snapshot lock");
        if idx == snap.get_metadata().index {
            return Ok(snap.get_metadata().term);
        }
        drop(snap);
        self.mem.term(idx)
    }
    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }
    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let snap = self.snapshot.lock().expect("snapshot lock").clone();
        let conf = snap.get_metadata().get_conf_state();
        let lists = [
            &conf.voters,
            &conf.learners,
            &conf.voters_outgoing,
            &conf.learners_next,
        ];
        let knows_recipient = lists.iter().any(|ids| ids.contains(&to));
        if snap.get_metadata().index < request_index || !knows_recipient {
            // A recipient rejects a snapshot whose configuration does not include it.
            self.wanted
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let unavailable = raft::StorageError::SnapshotTemporarilyUnavailable;
            return Err(raft::Error::Store(unavailable));
        }
        Ok(snap)
    }
}

fn to_raft_snapshot(s: &StoredSnapshot) -> Snapshot {
    let mut snap = Snapshot {
        data: s.data.clone().into(),
        ..Default::default()
    };
    let meta = snap.mut_metadata();
    meta.index = s.index;
    meta.term = s.term;
    meta.set_conf_state(s.conf_state.clone());
    snap
}

/// Starts the driver for `config` on `env`; returns the handle and the driver future
/// (the caller spawns it). Fails when the durable state is corrupt.
pub async fn start<E: Env>(
    env: E,
    config: RaftConfig,
) -> Result<(RaftHandle, impl std::future::Future<Output = ()> + Send), LogError> {
    let disk = env.disk().clone();
    let dir = config.dir.clone();
    let (hard, mut hs) = HardStateSlots::open(disk.clone(), &dir).await?;
    let mut snapshot = durable::load_snapshot(&disk, &dir).await?;
    if snapshot.is_none() && !config.bootstrap_voters.is_empty() {
        // A new cluster: every bootstrap member starts from the same snapshot at index 1
        // holding the first configuration. The log then starts at 2, so a node that joins
        // later cannot replay it from the start against an empty configuration: it has to
        // catch up by snapshot (raft-rs's storage docs recommend exactly this).
        let conf = raft::eraftpb::ConfState {
            voters: config.bootstrap_voters.clone(),
            ..Default::default()
        };
        let initial = StoredSnapshot {
            index: BOOTSTRAP_INDEX,
            term: BOOTSTRAP_INDEX,
            conf_state: conf,
            data: meta::encode_state(&MetaState::default()),
        };
        durable::save_snapshot(&disk, &dir, &initial).await?;
        snapshot = Some(initial);
    }
    let (log, entries) = DurableLog::open(disk, &dir).await?;
    let mem = MemStorage::new();
    let mut state = MetaState::default();
    let mut applied = 0;
    let raft_snapshot = match &snapshot {
        Some(s) => {
            state = meta::decode_state(&s.data).ok_or_else(|| LogError::Corrupt {
                file: format!("{dir}/snapshot"),
                offset: 0,
                reason: "state machine does not decode".into(),
            })?;
            applied = s.index;
            let snap = to_raft_snapshot(s);
            let installed = mem.wl().apply_snapshot(snap.clone());
            installed.expect("fresh storage takes a snapshot");
            snap
        }
        None => Snapshot::default(),
    };
    let tail: Vec<Entry> = entries.into_iter().filter(|e| e.index > applied).collect();
    if let Some(first) = tail.first().filter(|e| e.index != applied + 1) {
        let reason = format!(
            "log starts at {} after a snapshot at {applied}",
            first.index
        );
        return Err(LogError::Corrupt {
            file: format!("{dir}/log"),
            offset: 0,
            reason,
        });
    }
    mem.wl().append(&tail).expect("contiguous tail");
    let last = mem.last_index().expect("last index").max(applied);
    if hs.commit > last {
        // Entries this node knew to be committed are gone (a damaged log truncated as a
        // torn tail): serving would let it vote and ack as if it still had them.
        let reason = format!(
            "log ends at {last}, below the recorded commit index {}",
            hs.commit
        );
        return Err(LogError::Corrupt {
            file: format!("{dir}/log"),
            offset: 0,
            reason,
        });
    }
    hs.commit = hs.commit.max(applied);
    mem.wl().set_hardstate(hs);
    let raft_config = raft::Config {
        id: config.id,
        election_tick: config.election_ticks,
        heartbeat_tick: config.heartbeat_ticks,
        applied,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        check_quorum: true,
        pre_vote: true,
        ..Default::default()
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let store = Store {
        mem,
        snapshot: Arc::new(Mutex::new(raft_snapshot)),
        wanted: Arc::default(),
    };
    let raw = RawNode::new(&raft_config, store, &logger).map_err(|e| LogError::Corrupt {
        file: dir.clone(),
        offset: 0,
        reason: format!("raft refused the recovered state: {e}"),
    })?;
    let (tx, rx) = mpsc::channel(DRIVER_QUEUE_MAX);
    let shared = Arc::new(Mutex::new(Shared {
        state,
        status: RaftStatus {
            id: config.id,
            ..Default::default()
        },
    }));
    let mut driver = Driver {
        env,
        config,
        raw,
        log,
        hard,
        shared: shared.clone(),
        tx: tx.clone(),
        waiters: BTreeMap::new(),
        reads: BTreeMap::new(),
        pending_reads: Vec::new(),
        last_snapshot: applied,
        observed: (u64::MAX, StateRole::Follower, u64::MAX),
        check_removed: false,
        // A member of a fresh group starts from the known empty state; a node restored
        // from any other snapshot does not know the digest until its next epoch.
        chain: (applied == BOOTSTRAP_INDEX)
            .then(|| Sha256::digest(meta::encode_state(&MetaState::default())).into()),
    };
    driver.fix_election_timeout();
    driver.publish();
    Ok((RaftHandle { tx, shared }, driver.run(rx)))
}

impl<E: Env> Driver<E> {
    async fn run(mut self, mut rx: mpsc::Receiver<Op>) {
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
            match event {
                None => {
                    self.raw.tick();
                    next_tick += self.config.tick;
                }
                Some(op) => self.handle(op),
            }
            for _ in 1..BATCH_OPS_MAX {
                match rx.try_recv() {
                    Ok(op) => self.handle(op),
                    Err(_) => break,
                }
            }
            self.fix_election_timeout();
            if let Err(error) = self.on_ready().await {
                // A disk that cannot persist Raft state must not vote or ack: stop.
                tracing::error!(node = self.config.id, %error, "raft driver stopping");
                return;
            }
        }
    }

    /// Overwrites raft-rs's thread_rng election timeout after every reset.
    fn fix_election_timeout(&mut self) {
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

    fn handle(&mut self, op: Op) {
        match op {
            Op::Step(m) => {
                // Messages from removed or unknown peers are refused by raft; fine.
                let _ = self.raw.step(m);
            }
            Op::Propose(command, reply) => {
                if self.raw.raft.state != StateRole::Leader {
                    let _ = reply.send(Err(self.not_leader()));
                    return;
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
                    return;
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
            Op::ReadIndex(reply) => {
                let id = self.env.rng().next_u64();
                self.reads.insert(id, reply);
                self.raw.read_index(id.to_le_bytes().to_vec());
            }
            Op::SnapshotSent { to, ok } => {
                let status = if ok {
                    raft::SnapshotStatus::Finish
                } else {
                    raft::SnapshotStatus::Failure
                };
                self.raw.report_snapshot(to, status);
            }
        }
    }

    fn send(&self, messages: Vec<Message>) {
        for m in messages {
            let to = m.to;
            let is_snapshot = m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot;
            let mut bytes = vec![TAG_RAFT];
            bytes.extend_from_slice(&m.write_to_bytes().expect("raft messages encode"));
            let env = self.env.clone();
            let mut tx = self.tx.clone();
            self.env.spawn(async move {
                let sent = env.net().call(to, bytes.into(), RAFT_MESSAGE_TIMEOUT).await;
                if is_snapshot {
                    let _ = tx.try_send(Op::SnapshotSent {
                        to,
                        ok: sent.is_ok(),
                    });
                }
            });
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
        if !ready.entries().is_empty() {
            self.log.append(ready.entries()).await?;
            self.raw
                .mut_store()
                .mem
                .wl()
                .append(ready.entries())
                .expect("contiguous append");
        }
        if let Some(hs) = ready.hs() {
            self.hard.save(hs).await?;
            self.raw.mut_store().mem.wl().set_hardstate(hs.clone());
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
        let wanted = self
            .raw
            .store()
            .wanted
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        let applied = self.raw.raft.raft_log.applied;
        if wanted && applied > self.last_snapshot {
            let term = self
                .raw
                .raft
                .raft_log
                .term(applied)
                .expect("term of an applied entry");
            self.snapshot(applied, term).await?;
        }
        self.fix_election_timeout();
        self.publish();
        Ok(())
    }

    fn on_read_state(&mut self, rs: raft::ReadState) {
        let Ok(id) = <[u8; 8]>::try_from(&rs.request_ctx[..]) else {
            return;
        };
        self.pending_reads.push((rs.index, u64::from_le_bytes(id)));
    }

    fn answer_reads(&mut self, applied: u64) {
        let (ready, waiting): (Vec<_>, Vec<_>) = self
            .pending_reads
            .drain(..)
            .partition(|(i, _)| *i <= applied);
        self.pending_reads = waiting;
        for (index, id) in ready {
            if let Some(reply) = self.reads.remove(&id) {
                let _ = reply.send(Ok(index));
            }
        }
    }

    async fn install_snapshot(&mut self, snap: Snapshot) -> Result<(), LogError> {
        let meta_ = snap.get_metadata();
        let stored = StoredSnapshot {
            index: meta_.index,
            term: meta_.term,
            conf_state: meta_.get_conf_state().clone(),
            data: snap.data.to_vec(),
        };
        let Some(state) = meta::decode_state(&stored.data) else {
            return Err(LogError::Corrupt {
                file: "snapshot from leader".into(),
                offset: 0,
                reason: "does not decode".into(),
            });
        };
        durable::save_snapshot(self.env.disk(), &self.config.dir, &stored).await?;
        self.log.reset().await?;
        self.raw
            .mut_store()
            .mem
            .wl()
            .apply_snapshot(snap.clone())
            .expect("newer snapshot");
        *self.raw.mut_store().snapshot.lock().expect("snapshot lock") = snap;
        self.shared.lock().expect("shared").state = state;
        self.last_snapshot = stored.index;
        self.chain = None;
        Ok(())
    }

    async fn apply(&mut self, entries: Vec<Entry>) -> Result<(), LogError> {
        let Some(last) = entries.last().map(|e| (e.index, e.term)) else {
            return Ok(());
        };
        for entry in entries {
            self.apply_one(&entry);
            self.advance_chain(&entry);
        }
        self.answer_reads(last.0);
        if last.0 >= self.last_snapshot + self.config.snapshot_every {
            self.snapshot(last.0, last.1).await?;
        }
        Ok(())
    }

    fn advance_chain(&mut self, entry: &Entry) {
        if entry.index.is_multiple_of(CHAIN_EPOCH) {
            let state = meta::encode_state(&self.shared.lock().expect("shared").state);
            self.chain = Some(Sha256::digest(state).into());
        } else if let Some(chain) = self.chain {
            let mut h = Sha256::new();
            h.update(chain);
            h.update(entry.index.to_le_bytes());
            h.update(entry.term.to_le_bytes());
            h.update(&entry.data);
            self.chain = Some(h.finalize().into());
        }
    }

    fn apply_one(&mut self, entry: &Entry) {
        let id = <[u8; 8]>::try_from(&entry.context[..])
            .ok()
            .map(u64::from_le_bytes);
        let result = match entry.get_entry_type() {
            EntryType::EntryNormal if entry.data.is_empty() => return, // a new leader's no-op
            EntryType::EntryNormal => match meta::decode_command(&entry.data) {
                Some(command) => self
                    .shared
                    .lock()
                    .expect("shared")
                    .state
                    .apply(entry.index, &command),
                None => {
                    // Every replica skips it alike; it came from a newer or broken proposer.
                    tracing::error!(index = entry.index, "undecodable command skipped");
                    return;
                }
            },
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
                    }
                    Some(Err(error)) => tracing::warn!(%error, "conf change refused"),
                    None => tracing::error!(index = entry.index, "undecodable conf change skipped"),
                }
                Applied::Done
            }
        };
        if let Some(reply) = id.and_then(|id| self.waiters.remove(&id)) {
            let _ = reply.send(Ok(result));
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

    /// Saves a snapshot at the applied index and compacts the log behind it.
    async fn snapshot(&mut self, index: u64, term: u64) -> Result<(), LogError> {
        let data = meta::encode_state(&self.shared.lock().expect("shared").state);
        let conf_state = self.raw.raft.prs().conf().to_conf_state();
        let stored = StoredSnapshot {
            index,
            term,
            conf_state,
            data,
        };
        durable::save_snapshot(self.env.disk(), &self.config.dir, &stored).await?;
        *self.raw.mut_store().snapshot.lock().expect("snapshot lock") = to_raft_snapshot(&stored);
        self.raw
            .mut_store()
            .mem
            .wl()
            .compact(index)
            .expect("compact below applied");
        self.log.compact(index).await?;
        self.last_snapshot = index;
        Ok(())
    }

    fn publish(&mut self) {
        let r = &self.raw.raft;
        let conf = r.prs().conf().to_conf_state();
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
            applied_chain: self.chain,
        };
        self.shared.lock().expect("shared").status = status;
    }
}
