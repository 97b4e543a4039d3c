//! The node's way into its Raft group ([`RaftHandle`]): propose, ReadIndex, step
//! messages, receive snapshots, read the applied state, look at the status. Every call
//! is an operation queued to the driver (`raft::node`); answers come back on oneshots.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use raft::eraftpb::Message;

use crate::env::{Disk, NodeId};
use crate::meta::store::{MetaReader, MetaStore, StoreError};
use crate::meta::{Applied, Command};
use crate::metrics::Metrics;
use crate::raft::snapshot;

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
    /// Compact the log every this many applied entries. A compaction makes the state
    /// machine's commit durable on the driver's path (a stall of a few to tens of ms),
    /// so it is rare: at 1000 it came 1.5 times a second at 1,500 proposals/s and took
    /// the p99 of a proposal from ~10 ms to 30-110 ms.
    pub snapshot_every: u64,
    /// Entries kept behind the applied index at a compaction, so that a follower a
    /// little behind catches up from the log rather than by snapshot.
    pub log_tail_keep: u64,
    /// Keep [`RaftStatus::applied_chain`] (the simulator's checkers compare it). Each
    /// epoch hashes the whole state, so production nodes leave it off.
    pub applied_chain: bool,
    /// The node's counters (proposal latency is observed here).
    pub metrics: Arc<Metrics>,
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
            snapshot_every: 10_000,
            log_tail_keep: 1000,
            applied_chain: true,
            metrics: Arc::default(),
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
    /// Times a leader became known in a term (or a different one), since start-up.
    pub leader_changes: u64,
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

pub(super) enum Op {
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

pub(super) struct Shared {
    pub(super) status: RaftStatus,
    /// This node leads a configuration whose one voter is itself, has committed an entry
    /// of its term and applied everything committed (as of the last ready). Then every
    /// acknowledged write is in the local state, and a read needs no round (see
    /// [`RaftHandle::read_index`]). Set or cleared after every ready, and cleared when
    /// the driver stops. A flag one ready old is still true: no other node can lead
    /// until a configuration with another voter is applied here (a learner does not
    /// campaign; the joint configuration that adds a voter keeps this node's vote
    /// necessary), and applying it ends with the next publish.
    pub(super) sole_leader: bool,
    /// Told why, once the driver stops.
    pub(super) stop_waiters: Vec<oneshot::Sender<String>>,
}

/// The node's way into its Raft group: propose, read, and look. Cheap to clone.
#[derive(Clone)]
pub struct RaftHandle {
    pub(super) tx: mpsc::Sender<Op>,
    pub(super) shared: Arc<Mutex<Shared>>,
    pub(super) store: Arc<MetaStore>,
    pub(super) dir: Arc<str>,
    pub(super) metrics: Arc<Metrics>,
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
    ///
    /// A lone voter that leads answers at once, from its applied state
    /// ([`Shared::sole_leader`]): what it acknowledged, it applied first.
    pub async fn read_index(&self) -> Result<u64, ProposeError> {
        if let Some(applied) = self.sole_leader_applied() {
            return Ok(applied);
        }
        self.ask(Op::ReadIndex).await
    }

    fn sole_leader_applied(&self) -> Option<u64> {
        let shared = self.shared.lock().expect("raft shared state");
        shared.sole_leader.then_some(shared.status.applied)
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

    /// The node's counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn status(&self) -> RaftStatus {
        self.shared
            .lock()
            .expect("raft shared state")
            .status
            .clone()
    }
}
