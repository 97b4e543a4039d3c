//! The deterministic simulator: one seed, one scenario, one run, one verdict.
//!
//! A run has phases: (1) safety: clients store and read while the fault schedule
//! crashes, partitions, clogs and rots; (2) heal: every fault stops and every node
//! restarts; (3) liveness: every acknowledged shard must read back through the nodes;
//! (4) power loss: all nodes crash at once and the durable disk images are checked
//! directly; (5) recovery: nodes restart and must clean up. The verdict is the
//! checkers' violations; the trace hash covers every event of the run.

pub mod access_checker;
pub mod access_workload;
pub mod api_checker;
pub mod checker;
pub mod context;
pub mod faults;
pub mod lifecycle_checker;
pub mod lifecycle_workload;
pub mod linearizability;
pub mod meta_checker;
pub mod meta_run;
pub mod meta_workload;
pub mod model;
pub mod object_checker;
pub mod object_ops;
pub mod object_run;
pub mod object_workload;
pub mod scenario;
pub mod sealed_checker;
pub mod version_checker;
pub mod version_workload;
pub mod workload;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::env::{Clock, NodeId};
use engine::erasure::ReedSolomon;
use runtime_sim::{Cluster, FaultStats, NetConfig, SimClock, World};

use crate::model::{History, ReadOutcome, SharedHistory};
use crate::scenario::Params;
use crate::workload::Client;

/// Where nodes keep their shards.
pub const SHARD_DIR: &str = "shards";
/// Client node ids start here, far from the cluster's.
pub(crate) const CLIENT_ID_BASE: NodeId = 1000;
pub(crate) const UNLIMITED_DISK_BYTES: u64 = u64::MAX / 4;
/// Simulated time allowed after the safety phase for nodes to come back.
const SETTLE: Duration = Duration::from_secs(2);

pub fn client_ids(params: &Params) -> impl Iterator<Item = NodeId> {
    (0..u64::from(params.clients)).map(|c| CLIENT_ID_BASE + c)
}

/// What one run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub params: Params,
    pub trace_hash: String,
    pub trace_events: u64,
    pub violations: Vec<String>,
    /// Faults of the safety phase (the final power loss is counted separately).
    pub stats: FaultStats,
    /// What the final power loss did to unsynced state.
    pub power_loss: FaultStats,
    /// What the workload did, in a few counts.
    pub summary: String,
    pub simulated: Duration,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
    pub fn verdict_line(&self) -> String {
        format!(
            "{} {} simulated={:.1}s | faults: {} | final power loss: \
             unsynced_writes(dropped={} applied={} torn={}) dir_ops_lost={}",
            if self.passed() { "PASS" } else { "FAIL" },
            self.summary,
            self.simulated.as_secs_f64(),
            self.stats,
            self.power_loss.unsynced_writes_dropped,
            self.power_loss.unsynced_writes_applied,
            self.power_loss.unsynced_writes_torn,
            self.power_loss.dir_ops_lost,
        )
    }
}

/// Runs one seed on a fresh madsim runtime on the current thread. Call it from a
/// fresh thread (see [`run_isolated`]): madsim seeds per-thread state once.
pub fn run(params: Params) -> Outcome {
    let mut rt =
        madsim::runtime::Runtime::with_seed_and_config(params.seed, madsim::Config::default());
    rt.set_time_limit(Duration::from_secs_f64(params.duration_s) + Duration::from_secs(600));
    rt.block_on(simulate(params))
}

/// Runs one seed on a fresh thread; a panic becomes a violation, not a crash.
pub fn run_isolated(params: Params) -> Outcome {
    let p = params.clone();
    let joined = std::thread::Builder::new()
        .name(format!("seed-{}", params.seed))
        .stack_size(64 << 20)
        .spawn(move || run(p))
        .expect("spawn a simulation thread")
        .join();
    joined.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        Outcome {
            params,
            trace_hash: "-".into(),
            trace_events: 0,
            violations: vec![format!("panic: {message}")],
            stats: FaultStats::default(),
            power_loss: FaultStats::default(),
            summary: String::new(),
            simulated: Duration::ZERO,
        }
    })
}

async fn simulate(params: Params) -> Outcome {
    match params.workload {
        scenario::Workload::Shards => simulate_shards(params).await,
        scenario::Workload::Metadata => meta_run::simulate(params).await,
        scenario::Workload::Objects => object_run::simulate(params).await,
    }
}

async fn simulate_shards(params: Params) -> Outcome {
    let world = World::new(params.seed, NetConfig::default());
    let capacity = match params.disk_capacity_bytes {
        0 => UNLIMITED_DISK_BYTES,
        c => c,
    };
    let mut cluster = Cluster::new(world.clone());
    for node in 1..=params.nodes {
        world.add_disk(node, capacity);
        world.disk(node).set_lying_sync(params.lying_sync);
        world
            .disk(node)
            .set_sync_us((params.sync_ms * 1000.0) as u64);
        cluster.add_node(node, |env| engine::node::run_holder(env, SHARD_DIR));
    }
    world.trace(format_args!("params {params}"));
    let history: SharedHistory = Arc::new(Mutex::new(History::default()));
    let codec =
        Arc::new(ReedSolomon::new(params.k, params.m).expect("scenario profiles are valid"));
    let until = Duration::from_secs_f64(params.duration_s);

    // (1) Safety phase, then (2) heal.
    let clients: Vec<_> = client_ids(&params)
        .map(|id| {
            let client = Client {
                env: world.node_env(id),
                params: params.clone(),
                history: history.clone(),
                codec: codec.clone(),
            };
            madsim::task::spawn(client.run(until))
        })
        .collect();
    faults::run(&mut cluster, &params, &history, until, &mut |_| {}).await;
    for c in clients {
        c.await.expect("client task");
    }
    SimClock.sleep(SETTLE).await;

    // (3) Liveness: every acknowledged shard reads back in full through its holder.
    let probe = Client {
        env: world.node_env(CLIENT_ID_BASE - 1),
        params: params.clone(),
        history: history.clone(),
        codec: codec.clone(),
    };
    let targets: Vec<_> = {
        let h = history.lock().expect("history");
        h.objects
            .iter()
            .enumerate()
            .flat_map(|(o, rec)| {
                rec.shards
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.acked)
                    .map(move |(i, s)| (o, i, s.id, s.node, rec.geometry.shard_len()))
            })
            .collect()
    };
    for (o, i, id, node, len) in targets {
        let mut outcome = ReadOutcome::Unavailable;
        for _ in 0..3 {
            outcome = probe.read_shard(node, id, 0, len).await;
            if outcome != ReadOutcome::Unavailable {
                break;
            }
        }
        probe.record_read(o, i, 0, len, outcome, true);
    }

    // (4) Power loss: everything crashes at once; judge the durable images.
    let safety_stats = world.stats();
    for node in 1..=params.nodes {
        cluster.crash(node);
    }
    let mut violations = {
        let h = history.lock().expect("history");
        let mut v = checker::check_reads(&h);
        v.extend(checker::check_durability(&world, params.nodes, &h, &codec));
        v.extend(checker::check_sealed_files(&world, params.nodes, &h));
        if params.fault_free() {
            v.extend(checker::check_all_acked(&h));
        }
        v
    };
    let power_loss = world.stats().minus(&safety_stats);

    // (5) Recovery: restart and let the start-up scans finish.
    for node in 1..=params.nodes {
        cluster.restart(node);
    }
    SimClock.sleep(SETTLE).await;
    violations.extend(checker::check_recovered(&world, params.nodes));

    let (trace_hash, trace_events) = world.trace_hash();
    let simulated = SimClock.now();
    cluster.shutdown().await;
    let h = history.lock().expect("history");
    let acked = h
        .objects
        .iter()
        .flat_map(|o| &o.shards)
        .filter(|s| s.acked)
        .count();
    let summary = format!(
        "objects={} acked_shards={acked} shard_reads={} object_reads={}",
        h.objects.len(),
        h.shard_reads.len(),
        h.object_reads.len()
    );
    Outcome {
        trace_hash,
        trace_events,
        violations,
        stats: safety_stats,
        power_loss,
        summary,
        simulated,
        params,
    }
}
