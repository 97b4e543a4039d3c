//! The shared state of one run, the per-node Env, and node lifecycle on madsim.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use engine::env::{Env, NodeId, SeededRng};
use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::clock::NodeClock;
use crate::disk::{DiskState, SimDisk};
use crate::net::{NetConfig, NetState, SimNet};

macro_rules! fault_stats {
    ($($(#[doc = $doc:literal])* $field:ident),* $(,)?) => {
        /// Counts of faults that were actually injected (not merely scheduled).
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct FaultStats {
            $($(#[doc = $doc])* pub $field: u64,)*
        }

        impl FaultStats {
            /// The counts accrued since `earlier` was taken.
            pub fn minus(&self, earlier: &FaultStats) -> FaultStats {
                FaultStats { $($field: self.$field - earlier.$field,)* }
            }
            /// The sum of two sets of counts.
            pub fn plus(&self, other: &FaultStats) -> FaultStats {
                FaultStats { $($field: self.$field + other.$field,)* }
            }
        }

        impl std::fmt::Display for FaultStats {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut sep = "";
                $(
                    write!(f, "{sep}{}={}", stringify!($field), self.$field)?;
                    sep = " ";
                )*
                let _ = sep;
                Ok(())
            }
        }
    };
}

fault_stats! {
    crashes,
    restarts,
    partitions,
    clogs,
    messages_dropped,
    streams_broken,
    /// Unsynced writes a crash discarded.
    unsynced_writes_dropped,
    /// Unsynced writes a crash kept whole.
    unsynced_writes_applied,
    /// Unsynced writes a crash kept in part (a random subset of sectors).
    unsynced_writes_torn,
    /// Unsynced creates, renames and removes a crash discarded.
    dir_ops_lost,
    bits_flipped,
    sectors_zeroed,
    eio_returned,
    nospace_returned,
    /// fsyncs a lying disk acknowledged without persisting anything.
    syncs_lied,
}

pub(crate) struct WorldState {
    pub seed: u64,
    pub rng: ChaCha8Rng,
    pub trace: Sha256,
    pub trace_events: u64,
    pub disks: BTreeMap<NodeId, DiskState>,
    pub net: NetState,
    pub stats: FaultStats,
    pub incarnations: BTreeMap<NodeId, u64>,
    pub clocks: BTreeMap<NodeId, NodeClock>,
}

impl WorldState {
    /// Folds one event into the trace hash.
    pub fn trace(&mut self, event: std::fmt::Arguments<'_>) {
        let now = madsim::time::Instant::now();
        self.trace.update(format!("{now:?} {event}\n").as_bytes());
        self.trace_events += 1;
    }
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.gen_bool(p.min(1.0))
    }
}

/// One simulated run's shared state. Cheap to clone.
#[derive(Clone)]
pub struct World(pub(crate) Arc<Mutex<WorldState>>);

impl World {
    pub fn new(seed: u64, net: NetConfig) -> Self {
        Self(Arc::new(Mutex::new(WorldState {
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5151_0000_aaaa_0001),
            trace: Sha256::new(),
            trace_events: 0,
            disks: BTreeMap::new(),
            net: NetState::new(net),
            stats: FaultStats::default(),
            incarnations: BTreeMap::new(),
            clocks: BTreeMap::new(),
        })))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, WorldState> {
        self.0.lock().expect("world lock poisoned")
    }

    pub fn seed(&self) -> u64 {
        self.lock().seed
    }

    /// Adds an empty disk for `node` with room for `capacity_bytes`.
    pub fn add_disk(&self, node: NodeId, capacity_bytes: u64) {
        self.lock()
            .disks
            .insert(node, DiskState::new(capacity_bytes));
    }

    pub fn disk(&self, node: NodeId) -> SimDisk {
        SimDisk::new(self.clone(), node)
    }

    /// Records an event of the workload or the fault schedule in the trace.
    pub fn trace(&self, event: std::fmt::Arguments<'_>) {
        self.lock().trace(event);
    }

    /// The trace hash so far and the number of events in it.
    pub fn trace_hash(&self) -> (String, u64) {
        let w = self.lock();
        let digest = w.trace.clone().finalize();
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        (hex, w.trace_events)
    }

    pub fn stats(&self) -> FaultStats {
        self.lock().stats.clone()
    }

    /// A uniformly drawn number below `n` from the world's fault stream.
    pub fn random_below(&self, n: u64) -> u64 {
        assert!(n > 0);
        self.lock().rng.gen_range(0..n)
    }

    pub fn chance(&self, p: f64) -> bool {
        self.lock().chance(p)
    }

    /// Node `node`'s clock, shared by its incarnations: its rate can be set
    /// ([`NodeClock::set_rate_ppm`]) before or while the node runs.
    pub fn clock(&self, node: NodeId) -> NodeClock {
        self.lock().clocks.entry(node).or_default().clone()
    }

    /// Builds the Env of a new incarnation of `node` and connects it to the network.
    pub fn node_env(&self, node: NodeId) -> SimEnv {
        let clock = self.clock(node);
        let (seed, incarnation) = {
            let mut w = self.lock();
            let inc = w.incarnations.entry(node).or_insert(0);
            *inc += 1;
            let inc = *inc;
            w.trace(format_args!("node {node} up incarnation {inc}"));
            (w.seed, inc)
        };
        let net = SimNet::attach(self.clone(), node, incarnation);
        SimEnv(Arc::new(EnvInner {
            world: self.clone(),
            node,
            clock,
            disk: self.disk(node),
            net,
            rng: SeededRng::fork(seed, node << 32 | incarnation),
        }))
    }
}

/// madsim sleeps at least one millisecond, so shorter delays are rounded
/// stochastically: sleep 1 ms with probability `time / 1 ms`, else only yield to the
/// scheduler (which still picks the next task at random). The mean delay is `time`.
pub(crate) async fn pause(world: &World, time: Duration) {
    const TICK: Duration = Duration::from_millis(1);
    if time >= TICK {
        madsim::time::sleep(time).await;
    } else if world.random_below(TICK.as_nanos() as u64) < time.as_nanos() as u64 {
        madsim::time::sleep(TICK).await;
    } else {
        madsim::task::yield_now().await;
    }
}

pub struct EnvInner {
    world: World,
    node: NodeId,
    clock: NodeClock,
    disk: SimDisk,
    net: SimNet,
    rng: SeededRng,
}

/// The Env of one incarnation of one simulated node.
#[derive(Clone)]
pub struct SimEnv(Arc<EnvInner>);

impl SimEnv {
    /// The run this node belongs to (for tracing and the test harness; node logic
    /// sees only the Env traits).
    pub fn world(&self) -> &World {
        &self.0.world
    }
}

impl Env for SimEnv {
    type Clock = NodeClock;
    type Disk = SimDisk;
    type Net = SimNet;
    type Rng = SeededRng;
    fn node_id(&self) -> NodeId {
        self.0.node
    }
    fn clock(&self) -> &NodeClock {
        &self.0.clock
    }
    fn disk(&self) -> &SimDisk {
        &self.0.disk
    }
    fn net(&self) -> &SimNet {
        &self.0.net
    }
    fn rng(&self) -> &SeededRng {
        &self.0.rng
    }
    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // Spawned on the current madsim node, so the task dies when the node crashes.
        drop(madsim::task::spawn(task));
    }
}

/// The nodes of one run on madsim: start, crash, restart.
pub struct Cluster {
    world: World,
    nodes: BTreeMap<NodeId, madsim::runtime::NodeHandle>,
    down: std::collections::BTreeSet<NodeId>,
}

impl Cluster {
    pub fn new(world: World) -> Self {
        Self {
            world,
            nodes: BTreeMap::new(),
            down: Default::default(),
        }
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    /// Starts `node` running `main` on a fresh Env; a restart runs `main` again.
    pub fn add_node<F, Fut>(&mut self, node: NodeId, main: F)
    where
        F: Fn(SimEnv) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let world = self.world.clone();
        let handle = madsim::runtime::Handle::current()
            .create_node()
            .name(format!("n{node}"))
            .init(move || main(world.node_env(node)))
            .build();
        self.nodes.insert(node, handle);
    }

    pub fn is_up(&self, node: NodeId) -> bool {
        self.nodes.contains_key(&node) && !self.down.contains(&node)
    }

    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes.keys().copied()
    }

    /// Kills every task of `node`, cuts it off the network, and resolves its disk's
    /// unsynced state as a power loss would.
    pub fn crash(&mut self, node: NodeId) {
        let handle = &self.nodes[&node];
        crate::disk::kill(&mut self.world.lock(), node);
        madsim::runtime::Handle::current().kill(handle.id());
        let mut w = self.world.lock();
        w.net.detach(node);
        crate::disk::crash(&mut w, node);
        w.stats.crashes += 1;
        w.trace(format_args!("crash node {node}"));
        drop(w);
        self.down.insert(node);
    }

    /// Ends the run: kills every node so that madsim drops its tasks. A task parked on
    /// a channel it reaches through the World (its own accept queue, say) is a
    /// reference cycle that outlives the runtime otherwise, and each run would leak its
    /// whole World, disk images included. Traces nothing: call it after the hash.
    pub async fn shutdown(self) {
        let handle = madsim::runtime::Handle::current();
        for (node, h) in &self.nodes {
            if !self.down.contains(node) {
                handle.kill(h.id());
            }
        }
        // One more turn of the executor drops the killed tasks.
        madsim::time::sleep(Duration::from_millis(1)).await;
    }

    /// Restarts a crashed node over its disk.
    pub fn restart(&mut self, node: NodeId) {
        assert!(self.down.remove(&node), "restart of a node that is up");
        {
            let mut w = self.world.lock();
            w.stats.restarts += 1;
            w.trace(format_args!("restart node {node}"));
        }
        madsim::runtime::Handle::current().restart(self.nodes[&node].id());
    }
}
