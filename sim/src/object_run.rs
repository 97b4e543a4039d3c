//! The phases of an objects run: start a cluster of full nodes (Raft, shard store, data
//! path, S3, repair), make the bucket, run S3 clients under the fault schedule, heal,
//! give repair its time (optionally killing a node in the middle of it), ask the
//! cluster where each object's shards are and which are lost, read every object back,
//! give the orphan sweep its grace, then power off everything and judge every object
//! from the disks: healed whole, or lost for a reason the fault log gives.

use std::sync::Arc;
use std::time::Duration;

use engine::env::{Clock, NodeId};
use engine::lifecycle::LifecycleConfig;
use engine::meta::encryption::ObjectEncryption;
use engine::node::NodeConfig;
use engine::raft::node::RaftConfig;
use engine::repair::RepairConfig;
use engine::s3::S3Config;
use engine::s3::api::{Request, Response};
use engine::s3::rpc::{self, Answer, CallOutcome};
use engine::sweep::SweepConfig;
use runtime_sim::{Cluster, NetConfig, SimClock, World};

use crate::access_workload::{AccessClient, Decision, SharedAccess};
use crate::lifecycle_workload::{LcOp, LifecycleClient, SharedLifecycle};
use crate::model::SharedHistory;
use crate::object_checker::{self, Layouts, LostKeys, Tally};
use crate::object_workload::{
    BUCKET, CALL_TIMEOUT, DownSet, GetOutcome, ObjectClient, SharedObjects,
};
use crate::scenario::Params;
use crate::sealed_checker::{self, Sealed};
use crate::version_workload::{Lock, Op, SharedVersions, VersionClient};
use crate::{CLIENT_ID_BASE, Outcome, SHARD_DIR, UNLIMITED_DISK_BYTES, checker, faults};

/// Small chunks, so that objects of a few KiB span several stripes.
pub const CHUNK_SIZE_BYTES: u32 = 1024;
/// Blobs up to this size are replicas (k = 1), as the production threshold does for
/// blobs up to 128 KiB (it scales with the chunk size).
pub const SMALL_BLOB_BYTES_MAX: u64 = 2048;
/// Entries between log compactions in the objects runs.
const OBJECT_SNAPSHOT_EVERY: u64 = 1000;
/// The sweep's grace must outlast the longest seal-to-commit window of a live PUT
/// (`SEAL_TIMEOUT` + the commit's timeout); the sweep runs often so that runs see it.
const SWEEP: SweepConfig = SweepConfig {
    interval: Duration::from_secs(5),
    grace: Duration::from_secs(75),
};
const _: () = assert!(
    SWEEP.grace.as_secs()
        > engine::data_path::SEAL_TIMEOUT.as_secs() + engine::s3::META_TIMEOUT.as_secs()
);
/// Repair on simulated nodes: quick passes, a scrub every 30 s, and budgets small
/// enough that pacing is exercised.
fn repair_config() -> RepairConfig {
    RepairConfig {
        presence_interval: Duration::from_secs(2),
        scrub_period: REPAIR_SCRUB_PERIOD,
        scrub_bytes_per_s: 1 << 20,
        rebuild_bytes_per_s: 1 << 20,
        // Shorter than the longest downs of the scenarios, so takeovers happen.
        takeover_after: Duration::from_secs(5),
        dir: "repair".into(),
        enabled: true,
    }
}
const REPAIR_SCRUB_PERIOD: Duration = Duration::from_secs(30);
/// Repair's time after the nodes quiesced: two scrub periods (a pass that started just
/// before the last rot, then one that sees it), presence passes, rebuilds and commits,
/// and a node restarted in the middle. After it, nothing is excused.
const REPAIR_SETTLE: Duration = Duration::from_secs(120);
const _: () = assert!(REPAIR_SETTLE.as_secs() > 3 * REPAIR_SCRUB_PERIOD.as_secs());
/// How long after heal a layout query may retry while the group settles.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);
/// How long reading every object back after heal may take.
const READ_BACK_LIMIT: Duration = Duration::from_secs(240);
/// After the clients stop, operations may still run inside the nodes (a coordinator
/// whose client gave up still seals and commits); each is bounded by the data path's
/// and the commit's timeouts, so after this long every one has ended.
const QUIESCE: Duration = Duration::from_secs(120);
const _: () = assert!(
    QUIESCE.as_secs()
        > engine::data_path::PROGRESS_TIMEOUT.as_secs()
            + engine::data_path::SEAL_TIMEOUT.as_secs()
            + 2 * engine::s3::META_TIMEOUT.as_secs()
);

/// Nodes whose main ended while they were up.
pub(crate) type Ended = Arc<std::sync::Mutex<std::collections::BTreeSet<NodeId>>>;

pub(crate) fn start_cluster(world: &World, params: &Params, ended: &Ended) -> Cluster {
    let capacity = match params.disk_capacity_bytes {
        0 => UNLIMITED_DISK_BYTES,
        c => c,
    };
    let voters: Vec<NodeId> = (1..=params.nodes).collect();
    let repair_off = params.repair_off;
    let scrub_period = if params.scrub_on_request {
        Duration::from_secs(365 * 24 * 3600)
    } else {
        REPAIR_SCRUB_PERIOD
    };
    let mut cluster = Cluster::new(world.clone());
    let lifecycle = if params.versions {
        LifecycleConfig::with_day(crate::lifecycle_workload::DAY)
    } else {
        LifecycleConfig::default()
    };
    for &node in &voters {
        world.add_disk(node, capacity);
        crate::faults::apply_clock_drift(world, params, node);
        world
            .disk(node)
            .set_sync_us((params.sync_ms * 1000.0) as u64);
        // Lying syncs only under the shard directory: Raft on a lying disk cannot be
        // safe (raft-rs rightly panics on the state it finds), and the shards are what
        // the durability checker is to catch losing.
        if params.lying_sync {
            world.disk(node).set_lying_sync_under(SHARD_DIR);
        }
        let voters = voters.clone();
        let ended = ended.clone();
        cluster.add_node(node, move |env| {
            let ended = ended.clone();
            let config = NodeConfig {
                shard_dir: SHARD_DIR.into(),
                sweep: SWEEP,
                lifecycle,
                repair: RepairConfig {
                    enabled: !repair_off,
                    scrub_period,
                    ..repair_config()
                },
                chunk_size_bytes: CHUNK_SIZE_BYTES,
                ..NodeConfig::new(
                    RaftConfig {
                        // Compact as often as before production's interval grew, so
                        // compaction and catch-up by snapshot keep happening here.
                        snapshot_every: OBJECT_SNAPSHOT_EVERY,
                        ..RaftConfig::new(node, voters.clone())
                    },
                    S3Config {
                        small_blob_bytes_max: SMALL_BLOB_BYTES_MAX,
                        part_size_min_bytes: crate::object_ops::PART_SIZE_MIN_BYTES,
                        master_key: Some(engine::s3::sse::Key(sealed_checker::MASTER_KEY)),
                        ..S3Config::default()
                    },
                )
            };
            async move {
                engine::node::run(env, config, |_| {}).await;
                ended.lock().expect("ended").insert(node);
            }
        });
    }
    cluster
}

/// The supervisor's part (systemd's `Restart=on-failure`): a node whose main ended
/// (its Raft driver stopped, or its start-up refused its state after a disk error) is
/// started again.
fn supervise(cluster: &mut Cluster, ended: &Ended) {
    let ended: Vec<NodeId> = std::mem::take(&mut *ended.lock().expect("ended"))
        .into_iter()
        .filter(|&n| cluster.is_up(n))
        .collect();
    for node in ended {
        cluster
            .world()
            .trace(format_args!("supervisor restarts node {node}"));
        cluster.crash(node);
        cluster.restart(node);
    }
}

/// Asks the cluster (any node that answers) where key `index`'s data is.
/// Where an object lives: its blobs (each with whether it is lost) and how they are
/// sealed.
type Located = (
    Vec<(engine::meta::DataLayout, bool)>,
    Option<ObjectEncryption>,
);

async fn layout_of(client: &ObjectClient, key: &str) -> Result<Option<Located>, String> {
    let request = Request::Layout {
        bucket: BUCKET.into(),
        key: key.into(),
        version_id: None,
    };
    let deadline = SimClock.now() + SETTLE_LIMIT;
    let mut last = String::new();
    let mut node = 1;
    while SimClock.now() < deadline {
        match rpc::call(&client.env, node, &request, CALL_TIMEOUT).await {
            CallOutcome::Answer(Answer::Ok {
                response: Response::Layout { blobs, encryption },
                ..
            }) => return Ok(Some((blobs, encryption))),
            CallOutcome::Answer(Answer::Failed { code, .. }) if code == "NoSuchKey" => {
                return Ok(None);
            }
            other => last = format!("{other:?}"),
        }
        node = 1 + node % client.nodes;
        SimClock.sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "no node told where {key} is within {SETTLE_LIMIT:?}: {last}"
    ))
}

/// The final read of every key through random nodes, each retried a few times while
/// the group settles (503 or no answer); only the last attempt is recorded, as an
/// after-heal read. Fails when the whole read-back takes too long: the cluster is not
/// serving.
async fn read_back(client: &ObjectClient, keys: usize) -> Result<(), String> {
    const ATTEMPTS: usize = 4;
    let deadline = SimClock.now() + READ_BACK_LIMIT;
    for index in 0..keys {
        for attempt in 1..=ATTEMPTS {
            let node = 1 + client.env.world().random_below(client.nodes);
            let mut record = client.fetch(index, None, node, None).await;
            let settling = matches!(
                record.outcome,
                GetOutcome::Unavailable(_) | GetOutcome::Lost
            );
            if SimClock.now() > deadline {
                return Err(format!(
                    "reading {keys} objects back after heal took over {READ_BACK_LIMIT:?} \
                     (at object {index}: {:?})",
                    record.outcome
                ));
            }
            if settling && attempt < ATTEMPTS {
                SimClock.sleep(Duration::from_millis(500)).await;
                continue;
            }
            record.after_heal = true;
            client.history.lock().expect("history").gets.push(record);
            break;
        }
    }
    Ok(())
}

/// Kills a random node some seconds into repair's settle phase (mid-scrub or
/// mid-rebuild) and restarts it a few seconds later.
async fn crash_during_repair(cluster: &mut Cluster) {
    let world = cluster.world().clone();
    SimClock
        .sleep(Duration::from_millis(world.random_below(15_000)))
        .await;
    let node = 1 + world.random_below(cluster.nodes().count() as u64);
    world.trace(format_args!("node {node} killed during repair"));
    cluster.crash(node);
    SimClock.sleep(Duration::from_secs(5)).await;
    cluster.restart(node);
}

pub async fn simulate(params: Params) -> Outcome {
    // Crashes here are process deaths: callers see their connections reset, as the
    // real suites' kill -9 does (the other scenarios model silent hosts).
    let net = NetConfig {
        crash_resets_calls: true,
        ..NetConfig::default()
    };
    let world = World::new(params.seed, net);
    let ended: Ended = Arc::default();
    let mut cluster = start_cluster(&world, &params, &ended);
    world.trace(format_args!("params {params}"));
    let history: SharedObjects = Arc::default();
    let down: DownSet = Arc::default();
    let client = |id: u64| ObjectClient {
        env: world.node_env(CLIENT_ID_BASE + id),
        id,
        clients: u64::from(params.clients),
        nodes: params.nodes,
        history: history.clone(),
        down: down.clone(),
        chunk_size_bytes: u64::from(CHUNK_SIZE_BYTES),
        small_blob_bytes_max: SMALL_BLOB_BYTES_MAX,
        object_bytes_max: params.object_bytes_max,
        reads: params.reads,
    };
    let mut violations = Vec::new();
    let setup = client(u64::from(params.clients));
    if !setup.create_bucket().await {
        violations.push("no node created the bucket within 20 s of a fault-free start".into());
    }

    let until = SimClock.now() + Duration::from_secs_f64(params.duration_s);
    let mut tasks: Vec<_> = (0..u64::from(params.clients))
        .map(|c| madsim::task::spawn(client(c).work(until)))
        .collect();
    let access: SharedAccess = Arc::default();
    let admin = params.access.then(|| {
        Arc::new(AccessClient {
            env: world.node_env(CLIENT_ID_BASE + u64::from(params.clients) + 1),
            nodes: params.nodes,
            down: down.clone(),
            history: access.clone(),
        })
    });
    let versions: SharedVersions = Arc::default();
    let versioner = params.versions.then(|| {
        Arc::new(VersionClient {
            env: world.node_env(CLIENT_ID_BASE + u64::from(params.clients) + 2),
            nodes: params.nodes,
            down: down.clone(),
            history: versions.clone(),
            object_bytes_max: params.object_bytes_max,
        })
    });
    if let Some(v) = &versioner
        && v.enable(SimClock.now() + SETTLE_LIMIT).await
    {
        tasks.push(madsim::task::spawn(v.clone().work(0, until)));
        tasks.push(madsim::task::spawn(v.clone().work(1, until)));
    }
    let lifecycle: SharedLifecycle = Arc::default();
    let expirer = params.versions.then(|| {
        Arc::new(LifecycleClient {
            env: world.node_env(CLIENT_ID_BASE + u64::from(params.clients) + 3),
            nodes: params.nodes,
            down: down.clone(),
            history: lifecycle.clone(),
        })
    });
    if let Some(l) = &expirer
        && l.configure(SimClock.now() + SETTLE_LIMIT).await
    {
        tasks.push(madsim::task::spawn(l.clone().work(until)));
    }
    if let Some(admin) = &admin {
        tasks.push(madsim::task::spawn(admin.clone().administer(until)));
        tasks.push(madsim::task::spawn(admin.clone().request(until)));
        tasks.push(madsim::task::spawn(admin.clone().request(until)));
    }
    let fault_log = SharedHistory::default();
    let mut observe = |c: &mut Cluster| {
        supervise(c, &ended);
        *down.lock().expect("down") = c.nodes().filter(|&n| !c.is_up(n)).collect();
    };
    faults::run(&mut cluster, &params, &fault_log, until, &mut observe).await;
    for t in tasks {
        t.await.expect("client task");
    }
    down.lock().expect("down").clear();
    let safety_stats = world.stats();
    // Multipart order, copies and listings are judged on the history alone.
    violations.extend(crate::api_checker::check(&history.lock().expect("history")));
    {
        let a = access.lock().expect("access");
        violations.extend(crate::access_checker::check(&a));
        if params.access {
            let mut h = history.lock().expect("history");
            let count = |d| a.requests.iter().filter(|r| r.decision == d).count() as u64;
            h.ops.insert("access_changes", a.grants.len() as u64);
            h.ops.insert("access_allowed", count(Decision::Allowed));
            h.ops.insert("access_denied", count(Decision::Denied));
            h.ops.insert("access_unknown", count(Decision::Unknown));
        }
    }
    supervise(&mut cluster, &ended);

    // Heal: once every operation inside the nodes has ended and repair had its time,
    // the cluster says where each object lives and which are lost, and every object
    // that is not lost reads back.
    SimClock.sleep(QUIESCE).await;
    if params.crash_during_repair {
        crash_during_repair(&mut cluster).await;
    }
    SimClock.sleep(REPAIR_SETTLE).await;
    supervise(&mut cluster, &ended);
    let keys = history.lock().expect("history").keys.len();
    let mut layouts = Layouts::new();
    let mut lost = LostKeys::new();
    let mut sealed = Sealed::new();
    for index in 0..keys {
        let key = history.lock().expect("history").keys[index].key.clone();
        match layout_of(&setup, &key).await {
            Ok(l) => {
                if l.as_ref()
                    .is_some_and(|(blobs, _)| blobs.iter().any(|b| b.1))
                {
                    lost.insert(index);
                }
                if let Some((_, Some(record))) = &l {
                    sealed.insert(index, record.clone());
                }
                layouts.insert(index, l.map(|(b, _)| b.into_iter().map(|b| b.0).collect()));
            }
            Err(e) => {
                violations.push(e);
                break;
            }
        }
    }
    // Judged before any read-back: what repair healed it found by itself.
    {
        let h = history.lock().expect("history");
        let faults_now = fault_log.lock().expect("faults");
        let early = object_checker::check_durability(
            &world,
            params.nodes,
            (&h, &layouts, &lost, &sealed),
            &faults_now,
            &mut Tally::default(),
        );
        violations.extend(
            early
                .into_iter()
                .map(|v| format!("before any read-back: {v}")),
        );
    }
    if let Err(e) = read_back(&setup, keys).await {
        violations.push(e);
    }
    if let Some(admin) = &admin {
        violations.extend(admin.kept(SimClock.now() + SETTLE_LIMIT).await);
    }
    // Uploads left in progress (their completion or abort lost to a fault) are aborted
    // as a lifecycle rule would; their parts are then orphans for the sweep.
    match setup.abort_leftovers().await {
        Ok(n) => history
            .lock()
            .expect("history")
            .ops
            .insert("leftover_aborts", n),
        Err(e) => {
            violations.push(e);
            None
        }
    };
    // The sweep's grace passes (twice its interval to spare), then no orphan is left.
    SimClock.sleep(SWEEP.grace + SWEEP.interval * 2).await;
    let mut referenced = layouts.clone();
    if let Some(v) = &versioner {
        // Read after the sweep: it must have left every version's shards alone.
        v.read_all(SimClock.now() + SETTLE_LIMIT).await;
        let h = versions.lock().expect("versions");
        violations.extend(crate::version_checker::check(&h));
        let base = referenced.len();
        for (i, (_, _, l, _)) in h.layouts.iter().enumerate() {
            referenced.insert(base + i, Some(vec![l.clone()]));
        }
        let mut o = history.lock().expect("history");
        let count = |f: fn(&Op) -> bool| h.ops.iter().filter(|x| f(&x.op)).count() as u64;
        o.ops
            .insert("version_puts", count(|op| matches!(op, Op::Put { .. })));
        o.ops.insert(
            "version_deletes",
            count(|op| matches!(op, Op::Delete { .. } | Op::DeleteVersion { .. })),
        );
        o.ops.insert(
            "version_locks",
            count(|op| match op {
                Op::Put { lock, .. } => *lock != Lock::None,
                Op::LockVersion { .. } => true,
                _ => false,
            }),
        );
        // Deletes of a version by id that were refused (by its lock, or unreachable).
        let refused = h.ops.iter().filter(|x| {
            x.outcome == crate::version_workload::Outcome::Refused
                && matches!(x.op, Op::DeleteVersion { .. })
        });
        o.ops
            .insert("version_deletes_refused", refused.count() as u64);
        o.ops
            .insert("version_gets", count(|op| matches!(op, Op::Get { .. })));
        o.ops.insert(
            "versions_listed",
            h.listed.as_ref().map_or(0, |l| l.len() as u64),
        );
    }
    if let Some(l) = &expirer {
        // Read after the sweep: the expired keys' shards are orphans, the others' not.
        l.read_all(SimClock.now() + SETTLE_LIMIT).await;
        let h = lifecycle.lock().expect("lifecycle");
        violations.extend(crate::lifecycle_checker::check(&h));
        let base = referenced.len();
        for (i, layout) in h.layouts.iter().enumerate() {
            referenced.insert(base + i, Some(vec![layout.clone()]));
        }
        let count = |f: fn(&LcOp) -> bool| h.ops.iter().filter(|x| f(&x.op)).count() as u64;
        let mut o = history.lock().expect("history");
        o.ops
            .insert("lifecycle_puts", count(|op| matches!(op, LcOp::Put { .. })));
        o.ops.insert(
            "lifecycle_misses",
            count(|op| matches!(op, LcOp::Get { got: None })),
        );
    }
    violations.extend(object_checker::check_orphans(
        &world,
        params.nodes,
        &referenced,
    ));

    // What repair says it did (a lower bound: counters start over when a node does).
    let (mut rebuilt, mut moved, mut cleared, mut adopted) = (0, 0, 0, 0);
    for node in 1..=params.nodes {
        let asked = crate::meta_workload::request(
            &setup.env,
            node,
            &engine::node::ClientRequest::RepairStatus,
        );
        if let Some(engine::node::ClientResponse::Repair(s)) = asked.await {
            rebuilt += s.rebuilt_shards;
            moved += s.moved_shards;
            cleared += s.cleared_lost;
            adopted += s.adopted_shards;
        }
    }
    // Power loss: judge the durable images directly.
    let before_power_loss = world.stats();
    for node in 1..=params.nodes {
        cluster.crash(node);
    }
    let mut tally = Tally::default();
    let faults_seen = std::mem::take(&mut *fault_log.lock().expect("faults"));
    {
        let h = history.lock().expect("history");
        violations.extend(object_checker::check_history(&h, &lost));
        violations.extend(object_checker::check_layouts(&h, &layouts));
        violations.extend(sealed_checker::check_sealed(&h, &layouts, &sealed));
        violations.extend(object_checker::check_durability(
            &world,
            params.nodes,
            (&h, &layouts, &lost, &sealed),
            &faults_seen,
            &mut tally,
        ));
        tally.degraded_reads = object_checker::degraded_reads(&h, &layouts);
        let v = versions.lock().expect("versions");
        violations.extend(object_checker::check_version_shards(
            &world,
            &v.layouts,
            &faults_seen,
        ));
    }
    let rotted = faults_seen.rotted.len();
    let power_loss = world.stats().minus(&before_power_loss);
    for node in 1..=params.nodes {
        cluster.restart(node);
    }
    SimClock.sleep(Duration::from_secs(2)).await;
    violations.extend(checker::check_recovered(&world, params.nodes));

    let (trace_hash, trace_events) = world.trace_hash();
    let simulated = SimClock.now();
    cluster.shutdown().await;
    let h = history.lock().expect("history");
    let puts: Vec<_> = h.keys.iter().flat_map(|k| &k.puts).collect();
    let count = |f: &dyn Fn(&crate::object_workload::PutOutcome) -> bool| {
        puts.iter().filter(|p| f(&p.outcome)).count()
    };
    use crate::object_workload::PutOutcome as P;
    let refused_floor = puts
        .iter()
        .filter(
            |p| matches!(&p.outcome, P::Refused { message, .. } if message.contains("are needed")),
        )
        .count();
    let ops = h
        .ops
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    let summary = format!(
        "puts={} acked={} degraded={} refused={} below_floor={refused_floor} unknown={} \
         coordinator_lost={} gets={} ok={} degraded_reads={} unavailable={} \
         beyond_tolerance={} lost={} healed_shards={} rebuilt={rebuilt} moved={moved} \
         lost_cleared={cleared} found_whole={adopted} \
         rotted_files={rotted} {ops}",
        puts.len(),
        count(&|o| *o == P::Acked),
        tally.degraded_writes,
        count(&|o| matches!(o, P::Refused { .. })),
        count(&|o| *o == P::Unknown),
        h.coordinator_lost,
        h.gets.len(),
        h.gets
            .iter()
            .filter(|g| matches!(g.outcome, GetOutcome::Data(_)))
            .count(),
        tally.degraded_reads,
        h.gets
            .iter()
            .filter(|g| matches!(g.outcome, GetOutcome::Unavailable(_)))
            .count(),
        tally.beyond_tolerance,
        lost.len(),
        tally.healed_shards,
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
