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
use std::time::Duration;

use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use futures::future::{Either, select};
use protobuf::Message as _;
use raft::eraftpb::{ConfChangeV2, Entry, EntryType, Message, MessageType, Snapshot};
use raft::storage::MemStorage;
use raft::{RawNode, StateRole, Storage};
use sha2::{Digest, Sha256};

use crate::env::{Clock, Disk, Env, Net, NodeId, Rng};
use crate::meta::{self, Applied, Command, MetaState};
use crate::meta_store::{Item, Mark, MetaReader, MetaStore, StoreError};
use crate::raft::durable::{DurableLog, HardStateSlots, LogError, Slot};
use crate::raft::snapshot;

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
    /// Compact the log every this many applied entries.
    pub snapshot_every: u64,
    /// Entries kept behind the applied index at a compaction, so that a follower a
    /// little behind catches up from the log rather than by snapshot.
    pub log_tail_keep: u64,
    /// Keep [`RaftStatus::applied_chain`] (the simulator's checkers compare it). Each
    /// epoch hashes the whole state, so production nodes leave it off.
    pub applied_chain: bool,
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
            log_tail_keep: 1000,
            applied_chain: true,
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
    /// The local state machine could not be read.
    #[error(transparent)]
    Storage(#[from] StoreError),
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
    /// Snapshots from a leader installed by this incarnation of the driver.
    pub snapshots_installed: u64,
    /// Why the driver stopped, once it has (it no longer votes, acks or applies).
    pub stopped: Option<String>,
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
    Propose(Box<Command>, oneshot::Sender<Result<Applied, ProposeError>>),
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
    status: RaftStatus,
    /// Told why, once the driver stops.
    stop_waiters: Vec<oneshot::Sender<String>>,
}

/// The node's way into its Raft group: propose, read, and look. Cheap to clone.
#[derive(Clone)]
pub struct RaftHandle {
    tx: mpsc::Sender<Op>,
    shared: Arc<Mutex<Shared>>,
    store: Arc<MetaStore>,
    dir: Arc<str>,
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
        self.ask(|r| Op::Propose(Box::new(command), r)).await
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
    /// (Raft tolerates lost messages). Whether it was queued.
    pub fn step(&self, message: Message) -> bool {
        self.tx.clone().try_send(Op::Step(message)).is_ok()
    }

    /// Receives a snapshot from the leader: stages its streamed state on `disk` and steps
    /// the message into Raft. A stream cut off, or a full queue, drops it (the leader
    /// sends again).
    pub async fn receive_snapshot<D: Disk>(
        &self,
        disk: &D,
        nonce: u64,
        mut message: Message,
        body: crate::env::BodyStream,
    ) {
        let path = match snapshot::stage(disk, &self.dir, nonce, body).await {
            Ok(path) => path,
            Err(error) => {
                tracing::warn!(%error, from = message.from, "snapshot stream not staged");
                return;
            }
        };
        message.mut_snapshot().data = path.clone().into_bytes().into();
        if !self.step(message) {
            snapshot::remove(disk, &path).await;
        }
    }

    /// A consistent view of the local replica (possibly stale; see `read_index`).
    pub fn reader(&self) -> Result<MetaReader, ProposeError> {
        Ok(self.store.reader()?)
    }

    /// Reads the local replica (possibly stale; see `read_index`) in one consistent view.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&MetaReader) -> Result<T, StoreError>,
    ) -> Result<T, ProposeError> {
        Ok(f(&self.store.reader()?)?)
    }

    /// Resolves, with the reason, once the driver has stopped (its disk could not
    /// persist Raft state, or its log lost acknowledged entries); pending while it runs.
    /// Signalled, not polled: no timer, so it adds no events to a simulated run.
    pub async fn stopped(&self) -> String {
        let rx = {
            let mut shared = self.shared.lock().expect("raft shared state");
            if let Some(why) = &shared.status.stopped {
                return why.clone();
            }
            let (tx, rx) = oneshot::channel();
            shared.stop_waiters.push(tx);
            rx
        };
        match rx.await {
            Ok(why) => why,
            // The driver was dropped without stopping (its node was killed).
            Err(_) => std::future::pending().await,
        }
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
    /// What the hard-state slots hold now.
    slot: Slot,
    store: Arc<MetaStore>,
    shared: Arc<Mutex<Shared>>,
    tx: mpsc::Sender<Op>,
    waiters: BTreeMap<u64, oneshot::Sender<Result<Applied, ProposeError>>>,
    reads: BTreeMap<u64, oneshot::Sender<Result<u64, ProposeError>>>,
    /// ReadIndex answers waiting for the apply index to catch up: (index, id).
    pending_reads: Vec<(u64, u64)>,
    /// Where the log was last compacted to.
    last_compaction: u64,
    /// Staged snapshot files stepped into Raft since the last ready; whatever the ready
    /// did not install is removed after it.
    staged: Vec<String>,
    snapshots_installed: u64,
    observed: (u64, StateRole, u64),
    chain: Option<[u8; 32]>,
    /// A conf change was applied in this ready: see `hand_over_if_removed`.
    check_removed: bool,
}

/// raft-rs's MemStorage for the log tail; snapshots come from the state machine.
#[derive(Clone)]
struct Store {
    mem: MemStorage,
    meta: Arc<MetaStore>,
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

/// Starts the driver for `config` on `env`; returns the handle and the driver future
/// (the caller spawns it). Fails when the durable state is corrupt.
pub async fn start<E: Env>(
    env: E,
    config: RaftConfig,
) -> Result<(RaftHandle, impl std::future::Future<Output = ()> + Send), LogError> {
    let disk = env.disk().clone();
    let dir = config.dir.clone();
    let (hard, slot) = HardStateSlots::open(disk.clone(), &dir).await?;
    let mut hs = slot.hs.clone();
    let backend = disk.storage_backend(&format!("{dir}/state.redb")).await?;
    let store = Arc::new(disk.blocking(move || MetaStore::open(backend)).await?);
    snapshot::clear_staged(&disk, &dir).await?;
    let mut mark = store.mark()?;
    if mark.index == 0 && !config.bootstrap_voters.is_empty() {
        // A new cluster: every bootstrap member starts from the same state at index 1
        // holding the first configuration. The log then starts at 2, so a node that joins
        // later cannot replay it from the start against an empty configuration: it has to
        // catch up by snapshot (raft-rs's storage docs recommend exactly this).
        mark = Mark {
            index: BOOTSTRAP_INDEX,
            term: BOOTSTRAP_INDEX,
            conf: raft::eraftpb::ConfState {
                voters: config.bootstrap_voters.clone(),
                ..Default::default()
            },
        };
        let (s, m) = (store.clone(), mark.clone());
        disk.blocking(move || {
            s.begin_install()?;
            s.finish_install(&m)
        })
        .await?;
    }
    let (log, entries) = DurableLog::open(disk, &dir).await?;
    let mem = MemStorage::new();
    let applied = mark.index;
    if applied > 0 {
        // The state machine already holds everything up to the mark: raft-rs sees it as
        // a snapshot (metadata only; one with data is exported when a follower needs it).
        let installed = mem.wl().apply_snapshot(snapshot::metadata(&mark));
        installed.expect("fresh storage takes a snapshot");
    }
    let tail: Vec<Entry> = entries.into_iter().filter(|e| e.index > applied).collect();
    if let Some(first) = tail.first().filter(|e| e.index != applied + 1) {
        let reason = format!(
            "log starts at {} after the state machine's index {applied}",
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
    if slot.log_durable_to > last {
        // Rot in the last records looks like a torn write, but these were durable, and
        // acknowledged perhaps: the log lost what it promised (see `durable`).
        let reason = format!(
            "log ends at {last}, below the index {} it had made durable",
            slot.log_durable_to
        );
        return Err(LogError::Corrupt {
            file: format!("{dir}/log"),
            offset: 0,
            reason,
        });
    }
    hs.commit = hs.commit.max(applied);
    mem.wl().set_hardstate(hs.clone());
    let slot = Slot {
        hs,
        log_durable_to: last,
    };
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
    let raft_store = Store {
        mem,
        meta: store.clone(),
    };
    let mut raw =
        RawNode::new(&raft_config, raft_store, &logger).map_err(|e| LogError::Corrupt {
            file: dir.clone(),
            offset: 0,
            reason: format!("raft refused the recovered state: {e}"),
        })?;
    // The only voter needs nobody's vote: lead at once rather than after an election
    // timeout (a single `hamster server` would otherwise wait a second or two).
    let conf = raw.raft.prs().conf().to_conf_state();
    if conf.voters == [config.id] && conf.voters_outgoing.is_empty() {
        raw.campaign().map_err(|e| LogError::Corrupt {
            file: dir.clone(),
            offset: 0,
            reason: format!("raft refused to campaign: {e}"),
        })?;
    }
    let (tx, rx) = mpsc::channel(DRIVER_QUEUE_MAX);
    let shared = Arc::new(Mutex::new(Shared {
        stop_waiters: Vec::new(),
        status: RaftStatus {
            id: config.id,
            ..Default::default()
        },
    }));
    // A member of a fresh group starts from the known empty state; a node restored
    // from any other state does not know the digest until its next epoch.
    let chain = (applied == BOOTSTRAP_INDEX && config.applied_chain)
        .then(|| Sha256::digest(meta::encode_state(&MetaState::default())).into());
    let mut driver = Driver {
        env,
        config,
        raw,
        log,
        hard,
        slot,
        store: store.clone(),
        shared: shared.clone(),
        tx: tx.clone(),
        waiters: BTreeMap::new(),
        reads: BTreeMap::new(),
        pending_reads: Vec::new(),
        last_compaction: applied,
        staged: Vec::new(),
        snapshots_installed: 0,
        observed: (u64::MAX, StateRole::Follower, u64::MAX),
        check_removed: false,
        chain,
    };
    driver.fix_election_timeout();
    driver.publish();
    let handle = RaftHandle {
        tx,
        shared,
        store,
        dir: dir.into(),
    };
    Ok((handle, driver.run(rx)))
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
            self.fix_election_timeout();
            if let Err(error) = handled.and(self.on_ready().await) {
                // A log that lost acknowledged entries, or a disk that cannot persist
                // Raft state, must not vote or ack: stop.
                tracing::error!(node = self.config.id, %error, "raft driver stopping");
                let mut shared = self.shared.lock().expect("shared");
                shared.status.stopped = Some(error.to_string());
                for waiter in shared.stop_waiters.drain(..) {
                    let _ = waiter.send(error.to_string());
                }
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

    fn handle(&mut self, op: Op) -> Result<(), LogError> {
        match op {
            Op::Step(m) => {
                self.check_heartbeat(&m)?;
                if m.get_msg_type() == MessageType::MsgSnapshot {
                    self.staged
                        .push(String::from_utf8_lossy(&m.get_snapshot().data).into_owned());
                }
                // Messages from removed or unknown peers are refused by raft; fine.
                let _ = self.raw.step(m);
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
            let to = m.to;
            let env = self.env.clone();
            if m.get_msg_type() == MessageType::MsgSnapshot {
                let (store, mut tx) = (self.store.clone(), self.tx.clone());
                self.env.spawn(async move {
                    let ok = snapshot::send(&env, store, m).await;
                    let _ = tx.try_send(Op::SnapshotSent { to, ok });
                });
                continue;
            }
            let mut bytes = vec![TAG_RAFT];
            bytes.extend_from_slice(&m.write_to_bytes().expect("raft messages encode"));
            self.env.spawn(async move {
                let _ = env.net().call(to, bytes.into(), RAFT_MESSAGE_TIMEOUT).await;
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
        let md = snap.get_metadata();
        let mark = Mark {
            index: md.index,
            term: md.term,
            conf: md.get_conf_state().clone(),
        };
        // The data is the staged file `receive_snapshot` wrote.
        let path = String::from_utf8_lossy(&snap.data).into_owned();
        // The store first: if the log reset below is lost in a crash, the restart still
        // resumes from the snapshot's mark and skips the older entries.
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
            snapshots_installed: self.snapshots_installed,
            stopped: None,
            applied_chain: self.chain,
        };
        self.shared.lock().expect("shared").status = status;
    }
}
