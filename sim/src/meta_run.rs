//! The phases of a metadata run: bootstrap a Raft group, make the bucket, run clients
//! under the fault schedule while observing the nodes, then heal and converge, power
//! off everything and converge again, reading every key back after each.

use std::sync::Arc;
use std::time::Duration;

use engine::env::{Clock, NodeId};
use engine::meta::{Command, CommandV1};
use engine::node::{ClientRequest, ClientResponse};
use engine::raft::node::RaftConfig;
use runtime_sim::{Cluster, NetConfig, SimClock, World};

use crate::linearizability::KeyOp;
use crate::meta_workload::{self, BUCKET, Handles, KEYS, MetaClient, SharedMeta};
use crate::model::SharedHistory;
use crate::scenario::Params;
use crate::{CLIENT_ID_BASE, Outcome, SHARD_DIR, UNLIMITED_DISK_BYTES, faults, meta_checker};

/// Time allowed for the group to converge after faults stop.
const CONVERGE_LIMIT: Duration = Duration::from_secs(60);

/// When the membership change starts, seconds into the workload.
const MEMBERSHIP_AT_S: f64 = 10.0;

/// Snapshot (and compact) often, so that catching up by snapshot happens in most runs.
const SNAPSHOT_EVERY: u64 = 25;
/// A short tail: a node down for a few seconds still needs a snapshot to catch up.
const LOG_TAIL_KEEP: u64 = 5;

/// Starts `voters` as a new group and `spares` as nodes that join later.
fn start_cluster(
    world: &World,
    params: &Params,
    voters: &[NodeId],
    spares: &[NodeId],
    handles: &Handles,
) -> Cluster {
    let capacity = match params.disk_capacity_bytes {
        0 => UNLIMITED_DISK_BYTES,
        c => c,
    };
    let mut cluster = Cluster::new(world.clone());
    for &node in voters.iter().chain(spares) {
        world.add_disk(node, capacity);
        crate::faults::apply_clock_drift(world, params, node);
        world.disk(node).set_lying_sync(params.lying_sync);
        world
            .disk(node)
            .set_sync_us((params.sync_ms * 1000.0) as u64);
        if params.tear_raft_log {
            world.disk(node).set_tear_under(crate::faults::RAFT_LOG_DIR);
        }
        let bootstrap = if voters.contains(&node) {
            voters.to_vec()
        } else {
            Vec::new()
        };
        let handles = handles.clone();
        cluster.add_node(node, move |env| {
            let handles = handles.clone();
            // Until this incarnation's Raft state loads, the node has no handle.
            handles.lock().expect("handles").remove(&node);
            let mut config = RaftConfig::new(node, bootstrap.clone());
            config.snapshot_every = SNAPSHOT_EVERY;
            config.log_tail_keep = LOG_TAIL_KEEP;
            // Metadata runs store no object data: repair would only add timers and
            // ReadIndex traffic to the Raft schedules these scenarios are tuned for.
            let node_config = engine::node::NodeConfig {
                repair: engine::repair::RepairConfig {
                    enabled: false,
                    ..Default::default()
                },
                shard_dir: SHARD_DIR.into(),
                ..engine::node::NodeConfig::new(config, Default::default())
            };
            engine::node::run(env, node_config, move |started| {
                handles
                    .lock()
                    .expect("handles")
                    .insert(node, started.raft.clone());
            })
        });
    }
    cluster
}

/// Creates the workload's bucket, retrying until some leader takes it.
async fn create_bucket(setup: &MetaClient, nodes: u64) -> bool {
    let create = ClientRequest::Propose(Box::new(Command::V1(CommandV1::CreateBucket {
        name: BUCKET.into(),
        owner: "sim".into(),
        created_ms: 0,
    })));
    for attempt in 0..100u64 {
        let node = 1 + attempt % nodes;
        if let Some(ClientResponse::Applied(Ok(_))) =
            meta_workload::request(&setup.env, node, &create).await
        {
            return true;
        }
        SimClock.sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Moves membership under load: the spare joins as a learner, then one change makes it
/// a voter and removes node 1 (a joint configuration). Returns the expected voters.
/// Every node is asked in turn, the spare too: when the change took but its answer was
/// lost, a lone voter it removed can never answer the retry.
async fn change_membership(
    setup: &MetaClient,
    voters: &[NodeId],
    spare: NodeId,
) -> Result<Vec<NodeId>, String> {
    use engine::node::MemberChangeWire as C;
    let steps = [
        vec![C::AddLearner(spare)],
        vec![C::AddVoter(spare), C::Remove(voters[0])],
    ];
    let asked: Vec<NodeId> = voters.iter().copied().chain([spare]).collect();
    for changes in steps {
        let mut done = false;
        for attempt in 0..200u64 {
            let node = asked[(attempt as usize) % asked.len()];
            let req = ClientRequest::ChangeMembers(changes.clone());
            if let Some(ClientResponse::Applied(Ok(_))) =
                meta_workload::request(&setup.env, node, &req).await
            {
                done = true;
                break;
            }
            SimClock.sleep(Duration::from_millis(100)).await;
        }
        if !done {
            return Err(format!("membership change {changes:?} never took"));
        }
        SimClock.sleep(Duration::from_secs(2)).await;
    }
    Ok(voters[1..].iter().copied().chain([spare]).collect())
}

pub async fn simulate(params: Params) -> Outcome {
    let world = World::new(params.seed, NetConfig::default());
    let nodes: Vec<NodeId> = (1..=params.nodes).collect();
    let spares: Vec<NodeId> = if params.membership {
        vec![params.nodes + 1]
    } else {
        Vec::new()
    };
    let handles: Handles = Arc::default();
    let mut cluster = start_cluster(&world, &params, &nodes, &spares, &handles);
    world.trace(format_args!("params {params}"));
    let history: SharedMeta = Arc::default();
    let client = |id: u64| MetaClient {
        env: world.node_env(CLIENT_ID_BASE + id),
        id,
        nodes: params.nodes + spares.len() as u64,
        history: history.clone(),
    };
    let mut violations = Vec::new();
    let setup = client(u64::from(params.clients));
    if !create_bucket(&setup, params.nodes).await {
        violations
            .push("no leader accepted the first command within 20 s of a fault-free start".into());
    }

    let until = SimClock.now() + Duration::from_secs_f64(params.duration_s);
    let tasks: Vec<_> = (0..u64::from(params.clients))
        .map(|c| madsim::task::spawn(client(c).work(until)))
        .collect();
    let membership = spares.first().map(|&spare| {
        let (setup, voters) = (client(u64::from(params.clients) + 1), nodes.clone());
        madsim::task::spawn(async move {
            SimClock
                .sleep(Duration::from_secs_f64(MEMBERSHIP_AT_S))
                .await;
            change_membership(&setup, &voters, spare).await
        })
    });
    let fault_log = SharedHistory::default();
    let mut observe = |c: &mut Cluster| meta_workload::observe(c, &handles, &history);
    faults::run(&mut cluster, &params, &fault_log, until, &mut observe).await;
    let victims = faults::log_rot_victims(&fault_log);
    // The group after the membership change, if there was one.
    let members: Vec<NodeId> = match membership {
        Some(task) => match task.await.expect("membership task") {
            Ok(voters) => voters,
            Err(e) => {
                violations.push(e);
                nodes.clone()
            }
        },
        None => nodes.clone(),
    };
    for t in tasks {
        t.await.expect("client task");
    }
    let safety_stats = world.stats();

    for phase in ["heal", "power loss"] {
        if phase == "power loss" {
            for &n in nodes.iter().chain(&spares) {
                cluster.crash(n);
            }
            for &n in nodes.iter().chain(&spares) {
                cluster.restart(n);
            }
        }
        // A node whose log was damaged may refuse to start; every other node must serve.
        SimClock.sleep(Duration::from_secs(1)).await;
        // A node serves when its Raft state loaded and its driver has not stopped.
        let (serving, stopped): (Vec<NodeId>, Vec<(NodeId, String)>) = {
            let h = handles.lock().expect("handles");
            let stopped: Vec<(NodeId, String)> = members
                .iter()
                .filter_map(|n| Some((*n, h.get(n)?.status().stopped?)))
                .collect();
            let serving = members
                .iter()
                .copied()
                .filter(|n| h.contains_key(n) && !stopped.iter().any(|(s, _)| s == n))
                .collect();
            (serving, stopped)
        };
        for &n in members.iter().filter(|n| !serving.contains(n)) {
            if !victims.contains(&n) {
                let why = stopped
                    .iter()
                    .find(|(s, _)| *s == n)
                    .map_or("refused to start".to_string(), |(_, e)| {
                        format!("stopped ({e})")
                    });
                violations.push(format!(
                    "node {n} {why} after {phase} without damage to its log"
                ));
            }
        }
        if serving.is_empty()
            || !meta_workload::converge(&cluster, &handles, &history, &serving, CONVERGE_LIMIT)
                .await
        {
            let states: Vec<String> = {
                let h = handles.lock().expect("handles");
                serving
                    .iter()
                    .map(|n| {
                        let s = h[n].status();
                        format!(
                            "n{n}: {:?} term {} leader {} commit {} applied {} voters {:?}",
                            s.role, s.term, s.leader, s.commit, s.applied, s.voters
                        )
                    })
                    .collect()
            };
            violations.push(format!(
                "the group did not converge within {CONVERGE_LIMIT:?} after {phase}: {states:?}"
            ));
            continue;
        }
        let mut expected = members.clone();
        expected.sort();
        for n in &serving {
            let mut voters = handles.lock().expect("handles")[n].status().voters;
            voters.sort();
            if voters != expected {
                violations.push(format!(
                    "after {phase} node {n} sees voters {voters:?}, expected {expected:?}"
                ));
            }
        }
        for key in 0..KEYS {
            let node = serving[world.random_below(serving.len() as u64) as usize];
            setup.run(node, format!("k{key}"), KeyOp::Get).await;
        }
    }
    let power_loss = world.stats().minus(&safety_stats);
    let (trace_hash, trace_events) = world.trace_hash();
    let simulated = SimClock.now();
    cluster.shutdown().await;
    let h = history.lock().expect("history");
    let (found, notes) = meta_checker::check(&h);
    violations.extend(found);
    let summary = format!(
        "ops={} unknown={} max_term={} max_applied={} snapshots_installed={} \
         log_rot_victims={victims:?}{}",
        h.ops.len(),
        h.ops.iter().filter(|o| o.ret.is_none()).count(),
        h.leader_claims.keys().next_back().copied().unwrap_or(0),
        h.chains.keys().next_back().copied().unwrap_or(0),
        h.snapshots_installed(),
        if notes.is_empty() {
            String::new()
        } else {
            format!(" notes={notes:?}")
        }
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
