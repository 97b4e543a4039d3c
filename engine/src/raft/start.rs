//! Start-up and recovery of a node's Raft state: the hard-state slots, the state
//! machine and its applied mark (a new cluster's bootstrap state at index 1), the log
//! tail after the mark (a log the mark covers entirely is reset: a snapshot install was
//! cut short); then the checks that refuse a state that lost what it promised
//! (a log gap after the mark, committed or durable entries gone), and the driver.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc;
use raft::eraftpb::Entry;
use raft::storage::MemStorage;
use raft::{RawNode, StateRole, Storage};
use sha2::{Digest, Sha256};

use crate::env::{Clock, Disk, Env};
use crate::meta::store::{Mark, MetaStore, StoreError};
use crate::meta::{self, MetaState};
use crate::raft::durable::{DurableLog, HardStateSlots, LogError, Slot};
use crate::raft::lease::Lease;
use crate::raft::node::{
    BOOTSTRAP_INDEX, DRIVER_QUEUE_MAX, Driver, RaftConfig, RaftHandle, RaftStatus, Shared, Store,
};
use crate::raft::outbox::Outbox;
use crate::raft::snapshot;

/// Why a node's Raft state was refused at start-up: such a node must not vote or serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The log or hard state is damaged, or the disk failed.
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Disk(#[from] crate::env::DiskError),
    /// The log's first entry is not the one after the state machine's mark.
    #[error("the raft log starts at {first}, after the state machine's index {applied}")]
    LogGap { first: u64, applied: u64 },
    /// Entries known committed are gone (a damaged log truncated as a torn tail).
    #[error("the raft log ends at {last}, below the recorded commit index {commit}")]
    CommittedLost { last: u64, commit: u64 },
    /// Entries the log had made durable (and perhaps acknowledged) are gone.
    #[error("the raft log ends at {last}, below the index {durable} it had made durable")]
    DurableLost { last: u64, durable: u64 },
    /// raft-rs refused the recovered state.
    #[error("{0}")]
    Refused(String),
}

/// Starts the driver for `config` on `env`; returns the handle and the driver future
/// (the caller spawns it). Fails when the durable state is corrupt.
pub async fn start<E: Env>(
    env: E,
    config: RaftConfig,
) -> Result<(RaftHandle, impl std::future::Future<Output = ()> + Send), StartError> {
    let disk = env.disk().clone();
    let dir = config.dir.clone();
    let metrics = config.metrics.clone();
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
    let (mut log, entries) = DurableLog::open(disk, &dir).await?;
    let mem = MemStorage::new();
    let applied = mark.index;
    if entries.last().is_some_and(|e| e.index < applied) {
        // A snapshot was installed but the crash came before the log reset that follows
        // it: every entry is covered by the mark. Finish the reset now, or the next
        // append (at the mark + 1) would land after them, a gap on the next replay.
        log.reset().await?;
    }
    if applied > 0 {
        // The state machine already holds everything up to the mark: raft-rs sees it as
        // a snapshot (metadata only; one with data is exported when a follower needs it).
        let installed = mem.wl().apply_snapshot(snapshot::metadata(&mark));
        installed.expect("fresh storage takes a snapshot");
    }
    let tail: Vec<Entry> = entries.into_iter().filter(|e| e.index > applied).collect();
    if let Some(first) = tail.first().filter(|e| e.index != applied + 1) {
        return Err(StartError::LogGap {
            first: first.index,
            applied,
        });
    }
    mem.wl().append(&tail).expect("contiguous tail");
    let last = mem.last_index().expect("last index").max(applied);
    if hs.commit > last {
        // Entries this node knew to be committed are gone (a damaged log truncated as a
        // torn tail): serving would let it vote and ack as if it still had them.
        return Err(StartError::CommittedLost {
            last,
            commit: hs.commit,
        });
    }
    if slot.log_durable_to > last {
        // Rot in the last records looks like a torn write, but these were durable, and
        // acknowledged perhaps: the log lost what it promised (see `durable`).
        return Err(StartError::DurableLost {
            last,
            durable: slot.log_durable_to,
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
    let mut raw = RawNode::new(&raft_config, raft_store, &logger)
        .map_err(|e| StartError::Refused(format!("raft refused the recovered state: {e}")))?;
    // The only voter needs nobody's vote: lead at once rather than after an election
    // timeout (a single `hamster server` would otherwise wait a second or two).
    let conf = raw.raft.prs().conf().to_conf_state();
    if conf.voters == [config.id] && conf.voters_outgoing.is_empty() {
        raw.campaign()
            .map_err(|e| StartError::Refused(format!("raft refused to campaign: {e}")))?;
    }
    let (tx, rx) = mpsc::channel(DRIVER_QUEUE_MAX);
    let shared = Arc::new(Mutex::new(Shared {
        stop_waiters: Vec::new(),
        sole_leader: false,
        status: RaftStatus {
            id: config.id,
            ..Default::default()
        },
    }));
    // A member of a fresh group starts from the known empty state; a node restored
    // from any other state does not know the digest until its next epoch.
    let chain = (applied == BOOTSTRAP_INDEX && config.applied_chain)
        .then(|| Sha256::digest(meta::encode_state(&MetaState::default())).into());
    let lease = Lease::new(config.tick, config.election_ticks, env.clock().now());
    let mut driver = Driver {
        outbox: Outbox::new(env.clone()),
        lease,
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
        batched_reads: Vec::new(),
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
        metrics,
    };
    Ok((handle, driver.run(rx)))
}
