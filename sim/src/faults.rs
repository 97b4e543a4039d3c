//! The fault schedule of the safety phase: crashes and restarts, whole-cluster power
//! losses, partitions, clogs, and rot of sealed shards, drawn at the seed's rates and kept inside its budget
//! (at most `max_down` nodes down at once). Rotted files (and the shard files of a node
//! whose data disk the schedule replaced) are written to the History so that checkers
//! can tell injected damage from damage the system caused.

use std::collections::BTreeMap;
use std::time::Duration;

use engine::env::{Clock, NodeId};
use runtime_sim::{Cluster, SimClock, TRUE_RATE_PPM, World};

use crate::model::SharedHistory;
use crate::scenario::Params;

const TICK: Duration = Duration::from_millis(50);

enum Pending {
    Restart(NodeId),
    HealNetwork,
}

/// Runs the schedule until `until`, then heals everything: network, disks, nodes.
/// `observe` is called each tick with the cluster, for checkers that sample the nodes
/// (and for a workload's supervisor, which may restart nodes).
/// Where a node's Raft log segments are (`RaftConfig::dir` + `/log/`).
pub const RAFT_LOG_DIR: &str = "raft/log/";

pub async fn run(
    cluster: &mut Cluster,
    params: &Params,
    history: &SharedHistory,
    until: Duration,
    observe: &mut dyn FnMut(&mut Cluster),
) {
    let world = cluster.world().clone();
    world.set_loss_rate(params.loss_rate);
    for node in cluster.nodes() {
        world.disk(node).set_eio_rate(params.eio_rate);
    }
    let mut pending: BTreeMap<(Duration, u64), Pending> = BTreeMap::new();
    let mut sequence = 0u64;
    let dt = TICK.as_secs_f64();
    let jitter = |base: f64| {
        Duration::from_secs_f64(base * (0.5 + world.random_below(1000) as f64 / 1000.0))
    };
    while SimClock.now() < until {
        SimClock.sleep(TICK).await;
        observe(cluster);
        let now = SimClock.now();
        while let Some(entry) = pending.first_entry() {
            if entry.key().0 > now {
                break;
            }
            match entry.remove() {
                Pending::Restart(node) => cluster.restart(node),
                Pending::HealNetwork => world.heal_network(),
            }
        }
        let victims = log_rot_victims(history);
        if world.chance(params.crash_per_s * dt) {
            // A node with a damaged log counts as down for the rest of the run.
            let down = cluster.nodes().count() as u64
                - cluster
                    .nodes()
                    .filter(|&n| cluster.is_up(n) && !victims.contains(&n))
                    .count() as u64;
            if down < params.max_down {
                let node = crash_target(cluster, &world, params.tear_raft_log).await;
                cluster.crash(node);
                if world.chance(params.wipe_per_crash) {
                    replace_shard_disk(&world, node, history);
                }
                sequence += 1;
                pending.insert(
                    (now + jitter(params.down_s), sequence),
                    Pending::Restart(node),
                );
            }
        }
        if world.chance(params.power_loss_per_s * dt) {
            // Every node that is up loses power at once; each comes back on its own.
            armed(cluster, &world, params.tear_raft_log).await;
            let up: Vec<NodeId> = cluster.nodes().filter(|&n| cluster.is_up(n)).collect();
            for node in up {
                cluster.crash(node);
                sequence += 1;
                pending.insert(
                    (now + jitter(params.down_s), sequence),
                    Pending::Restart(node),
                );
            }
        }
        if world.chance(params.partition_per_s * dt) && params.nodes > 1 {
            // A random proper, non-empty subset against the rest (clients included).
            let mask = 1 + world.random_below((1 << params.nodes) - 2);
            let (a, b): (Vec<NodeId>, Vec<NodeId>) =
                (1..=params.nodes).partition(|n| mask & (1 << (n - 1)) != 0);
            let mut b = b;
            b.extend(crate::client_ids(params));
            world.partition(&a, &b);
            sequence += 1;
            pending.insert(
                (now + jitter(params.partition_s), sequence),
                Pending::HealNetwork,
            );
        }
        if world.chance(params.clog_per_s * dt) {
            let from = 1 + world.random_below(params.nodes);
            let to = 1 + world.random_below(params.nodes);
            world.clog(from, to);
            sequence += 1;
            pending.insert(
                (now + jitter(params.clog_s), sequence),
                Pending::HealNetwork,
            );
        }
        if world.chance(params.rot_per_s * dt) {
            rot_one(&world, params, history);
        }
        if world.chance(params.rot_pair_per_s * dt) {
            rot_pair(&world, params, history);
        }
        if victims.is_empty() && world.chance(params.log_rot_per_s * dt) {
            let down = cluster.nodes().count() as u64
                - cluster.nodes().filter(|&n| cluster.is_up(n)).count() as u64;
            if down < params.max_down
                && let Some(node) = rot_log(cluster, &world, params, history)
            {
                cluster.crash(node);
                cluster.restart(node);
            }
        }
    }
    heal(cluster);
}

/// Aims a crash at the worst moment: three times in four, waits (up to one tick,
/// polling each millisecond) for a node whose disk holds unsynced state and returns it.
async fn armed(cluster: &Cluster, world: &runtime_sim::World, log: bool) -> Option<NodeId> {
    if world.random_below(4) >= 3 {
        return None;
    }
    let up: Vec<NodeId> = cluster.nodes().filter(|&n| cluster.is_up(n)).collect();
    for _ in 0..TICK.as_millis() {
        let busy: Vec<NodeId> = up
            .iter()
            .copied()
            .filter(|&n| {
                let disk = world.disk(n);
                if log {
                    disk.has_unsynced_under(RAFT_LOG_DIR)
                } else {
                    disk.has_unsynced()
                }
            })
            .collect();
        if !busy.is_empty() {
            return Some(busy[world.random_below(busy.len() as u64) as usize]);
        }
        SimClock.sleep(Duration::from_millis(1)).await;
    }
    None
}

/// A node to crash: an armed target if one turns up, otherwise any node that is up.
async fn crash_target(cluster: &Cluster, world: &runtime_sim::World, log: bool) -> NodeId {
    if let Some(node) = armed(cluster, world, log).await {
        return node;
    }
    let up: Vec<NodeId> = cluster.nodes().filter(|&n| cluster.is_up(n)).collect();
    up[world.random_below(up.len() as u64) as usize]
}

/// Flips a bit in, or zeroes a sector of, one sealed shard file on one node.
fn rot_one(world: &runtime_sim::World, params: &Params, history: &SharedHistory) {
    let node = 1 + world.random_below(params.nodes);
    let disk = world.disk(node);
    let sealed: Vec<String> = disk
        .live_names()
        .into_iter()
        .filter(|n| n.ends_with(".shard"))
        .collect();
    if sealed.is_empty() {
        return;
    }
    let path = &sealed[world.random_below(sealed.len() as u64) as usize];
    let rotted = if world.chance(0.5) {
        disk.flip_bit(path, world.random_below(u64::MAX))
    } else {
        disk.zero_sector(path, world.random_below(u64::MAX))
    };
    if rotted {
        history
            .lock()
            .expect("history")
            .rotted
            .insert((node, path.clone()));
    }
}

/// Gives a crashed node a new, empty shard disk (its Raft state stays): every shard
/// file it had counts as destroyed by the schedule, like a rotted one.
fn replace_shard_disk(world: &runtime_sim::World, node: NodeId, history: &SharedHistory) {
    let removed = world.disk(node).replace_dir(crate::SHARD_DIR);
    let mut h = history.lock().expect("history");
    for path in removed.into_iter().filter(|p| p.ends_with(".shard")) {
        h.rotted.insert((node, path));
    }
}

/// Rots two shards of one blob, on two nodes: picks a shard file on a random node,
/// then another shard of the same blob elsewhere.
fn rot_pair(world: &runtime_sim::World, params: &Params, history: &SharedHistory) {
    let node = 1 + world.random_below(params.nodes);
    let names = world.disk(node).live_names();
    let shards: Vec<&String> = names.iter().filter(|n| n.ends_with(".shard")).collect();
    if shards.is_empty() {
        return;
    }
    let first = shards[world.random_below(shards.len() as u64) as usize];
    // File names are "<dir>/<data id>.<version>.<part>.<index>.shard": same blob, same
    // prefix up to the index.
    let blob = &first[..first.len() - "0000.shard".len()];
    let others: Vec<(NodeId, String)> = (1..=params.nodes)
        .filter(|&n| n != node)
        .flat_map(|n| {
            world
                .disk(n)
                .live_names()
                .into_iter()
                .filter(|p| p.starts_with(blob) && p.ends_with(".shard"))
                .map(move |p| (n, p))
        })
        .collect();
    if others.is_empty() {
        return;
    }
    let second = &others[world.random_below(others.len() as u64) as usize];
    for (n, path) in [(node, first.clone()), second.clone()] {
        let disk = world.disk(n);
        let rotted = if world.chance(0.5) {
            disk.flip_bit(&path, world.random_below(u64::MAX))
        } else {
            disk.zero_sector(&path, world.random_below(u64::MAX))
        };
        if rotted {
            history.lock().expect("history").rotted.insert((n, path));
        }
    }
}

/// Where Raft keeps its log segments on a node's disk.
/// Aimed log rot lands in this many bits at the end of the newest segment.
const TAIL_ROT_BITS: u64 = 64 * 8;

/// Nodes whose Raft log the schedule damaged.
/// Sets node `node`'s clock rate from the seed: `1 ± params.clock_drift_ppm` of true
/// time, drawn from a stream of its own (the other draws of the run do not move), and
/// traced. Nothing when the run has no drift.
pub fn apply_clock_drift(world: &World, params: &Params, node: NodeId) {
    use rand::{Rng as _, SeedableRng as _};
    let drift = params.clock_drift_ppm.min(TRUE_RATE_PPM - 1);
    if drift == 0 {
        return;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(params.seed ^ (0xc10c_d81f << 8) ^ node);
    let ppm = TRUE_RATE_PPM - drift + rng.gen_range(0..=2 * drift);
    world.clock(node).set_rate_ppm(ppm);
    world.trace(format_args!("node {node} clock rate {ppm} ppm"));
}

pub fn log_rot_victims(history: &SharedHistory) -> std::collections::BTreeSet<NodeId> {
    let h = history.lock().expect("history");
    h.rotted
        .iter()
        .filter(|(_, p)| p.starts_with(RAFT_LOG_DIR))
        .map(|(n, _)| *n)
        .collect()
}

/// Flips one bit in one Raft log segment of one node that is up; returns the node.
fn rot_log(
    cluster: &Cluster,
    world: &runtime_sim::World,
    params: &Params,
    history: &SharedHistory,
) -> Option<NodeId> {
    let node = 1 + world.random_below(params.nodes);
    if !cluster.is_up(node) {
        return None;
    }
    let disk = world.disk(node);
    let segments: Vec<String> = disk
        .live_names()
        .into_iter()
        .filter(|n| n.starts_with(RAFT_LOG_DIR) && n.ends_with(".seg"))
        .collect();
    if segments.is_empty() {
        return None;
    }
    // Half the time the newest segment's last record, which recovery cannot tell from
    // a write torn by a crash; otherwise anywhere.
    let (path, bit) = if world.random_below(2) == 0 {
        let path = segments.last().expect("not empty");
        let bits = disk.live_len(path).unwrap_or(0) * 8;
        let back = world.random_below(bits.clamp(1, TAIL_ROT_BITS));
        (path, bits.saturating_sub(1 + back))
    } else {
        let path = &segments[world.random_below(segments.len() as u64) as usize];
        (path, world.random_below(u64::MAX))
    };
    if !disk.flip_bit(path, bit) {
        return None;
    }
    history
        .lock()
        .expect("history")
        .rotted
        .insert((node, path.clone()));
    Some(node)
}

/// The end of the safety phase: every fault stops and every node comes back.
pub fn heal(cluster: &mut Cluster) {
    let world = cluster.world().clone();
    world.heal_network();
    world.set_loss_rate(0.0);
    let nodes: Vec<NodeId> = cluster.nodes().collect();
    for node in nodes {
        world.disk(node).set_eio_rate(0.0);
        if !cluster.is_up(node) {
            cluster.restart(node);
        }
    }
}
