//! Scenarios: declarative failure schedules read from `scenarios/*.toml`, and the
//! swarm-testing step that turns (scenario, seed) into concrete run parameters.
//!
//! A scenario gives ranges; each seed draws one value from each range and, for each
//! fault class, also decides whether that class is on at all (swarm testing: runs with
//! fewer kinds of faults reach deeper into each kind). Budgets bound the faults of the
//! safety phase, e.g. how many nodes may be down at once.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

/// An inclusive range in a scenario file, written `[lo, hi]` or as a single number.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Range {
    Fixed(f64),
    Span([f64; 2]),
}

impl Range {
    fn draw(&self, rng: &mut ChaCha8Rng) -> f64 {
        match *self {
            Range::Fixed(v) => v,
            Range::Span([lo, hi]) if hi > lo => rng.gen_range(lo..=hi),
            Range::Span([lo, _]) => lo,
        }
    }
}

impl Default for Range {
    fn default() -> Self {
        Range::Fixed(0.0)
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Node crashes per simulated second (across the cluster).
    #[serde(default)]
    pub crash_per_s: Range,
    /// Power losses per second: every node crashes at the same instant, mid-workload.
    #[serde(default)]
    pub power_loss_per_s: Range,
    /// How long a crashed node stays down, seconds.
    #[serde(default)]
    pub down_s: Range,
    /// Network partitions per second, and how long each lasts.
    #[serde(default)]
    pub partition_per_s: Range,
    #[serde(default)]
    pub partition_s: Range,
    /// Clogged links per second, and how long each lasts.
    #[serde(default)]
    pub clog_per_s: Range,
    #[serde(default)]
    pub clog_s: Range,
    /// Probability that one message or stream frame is lost.
    #[serde(default)]
    pub loss_rate: Range,
    /// Rot events (bit flip or zeroed sector in a sealed shard) per second.
    #[serde(default)]
    pub rot_per_s: Range,
    /// Rot events in Raft log segments per second (at most one victim per run; it
    /// restarts at once, so that it must read its damaged log).
    #[serde(default)]
    pub log_rot_per_s: Range,
    /// Probability that one disk read or write fails with EIO.
    #[serde(default)]
    pub eio_rate: Range,
    /// Disk capacity per node, bytes (0 = unlimited).
    #[serde(default)]
    pub disk_capacity_bytes: Range,
    /// Probability that a crashed node also gets a new, empty data disk: its shard
    /// directory is emptied while it is down (its Raft state is kept). Objects runs.
    #[serde(default)]
    pub wipe_per_crash: Range,
    /// Rot events that damage two shards of one blob at once (on two nodes) per second.
    #[serde(default)]
    pub rot_pair_per_s: Range,
    /// How long one fsync takes, milliseconds (a slow disk; default about 1.5 ms).
    /// Crashes then land inside syncs, so that appends still unsynced tear.
    #[serde(default)]
    pub sync_ms: Range,
    /// How far each node's clock rate may be from true time, parts per million: each
    /// node's rate is drawn from `1 ± drift` (`apply_clock_drift`).
    #[serde(default)]
    pub clock_drift_ppm: Range,
}

/// What the clients of a run do.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Store erasure-coded objects as shards on the nodes and read them back.
    #[default]
    Shards,
    /// Raft-replicated metadata: bucket and object commands, linearizable reads.
    Metadata,
    /// Full nodes serving S3: erasure-coded objects PUT, read and deleted through any
    /// node, under crashes of receivers, holders and coordinators.
    Objects,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(skip)]
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub workload: Workload,
    /// Cluster size range.
    pub nodes: [u64; 2],
    /// Parity shards per object (data shards fill the rest of at most `nodes`).
    pub parity: [u32; 2],
    /// Simulated seconds of workload (the safety phase).
    pub duration_s: f64,
    pub clients: u32,
    pub object_bytes_max: u64,
    /// At most this many nodes down at once.
    #[serde(default)]
    pub max_down: u64,
    #[serde(default)]
    pub faults: FaultSpec,
    /// Metadata runs only: a spare node joins (learner, then voter) and a voter leaves,
    /// in one joint-consensus change, while the workload runs.
    #[serde(default)]
    pub membership: bool,
    /// Objects runs: whether clients read during the safety phase. Without reads, only
    /// repair's own checks (presence, scrub) can find damage.
    #[serde(default = "yes")]
    pub reads: bool,
    /// Objects runs: a node is killed in the middle of repair's settle phase and
    /// restarted; repair must still converge.
    #[serde(default)]
    pub crash_during_repair: bool,
    /// Objects runs: an access key's rights change while clients use it
    /// (`access_workload`, judged by `access_checker`).
    #[serde(default)]
    pub access: bool,
    /// Objects runs: clients write, delete and read versions in a bucket with
    /// versioning (`version_workload`, judged by `version_checker`).
    #[serde(default)]
    pub versions: bool,
    /// Crashes aim at nodes in the middle of a Raft log append, and those appends
    /// tear (some sectors land): torn log tails in most crashes.
    #[serde(default)]
    pub tear_raft_log: bool,
}

fn yes() -> bool {
    true
}

/// Concrete parameters for one seed.
#[derive(Debug, Clone)]
pub struct Params {
    pub scenario: String,
    pub workload: Workload,
    pub membership: bool,
    pub seed: u64,
    pub nodes: u64,
    pub k: u32,
    pub m: u32,
    pub duration_s: f64,
    pub clients: u32,
    pub object_bytes_max: u64,
    pub max_down: u64,
    pub crash_per_s: f64,
    pub power_loss_per_s: f64,
    pub down_s: f64,
    pub partition_per_s: f64,
    pub partition_s: f64,
    pub clog_per_s: f64,
    pub clog_s: f64,
    pub loss_rate: f64,
    pub rot_per_s: f64,
    pub log_rot_per_s: f64,
    pub eio_rate: f64,
    pub disk_capacity_bytes: u64,
    pub wipe_per_crash: f64,
    pub rot_pair_per_s: f64,
    pub reads: bool,
    pub crash_during_repair: bool,
    pub access: bool,
    pub versions: bool,
    /// Disks acknowledge fsync without persisting. Not a scenario knob: no store can be
    /// durable on such disks, so it exists to prove the checkers notice.
    pub lying_sync: bool,
    /// Milliseconds per fsync (0: the disk's default).
    pub sync_ms: f64,
    pub tear_raft_log: bool,
    /// Nodes run without repair. Not a scenario knob: it exists to prove the checkers
    /// notice shards nobody healed.
    pub repair_off: bool,
    /// The deep scrub runs once at start and then only on request. Not a scenario knob:
    /// it lets a test show that repair heals a shard without a periodic scrub's help.
    pub scrub_on_request: bool,
    /// Each node's clock runs at `1 ± clock_drift_ppm / 10^6` of true time (0: true).
    pub clock_drift_ppm: u64,
}

impl Params {
    /// The same run on `nodes` nodes (for benchmarks of a fixed cluster size).
    pub fn with_nodes(mut self, nodes: u64) -> Self {
        assert!(u64::from(self.m) < nodes, "more nodes than parity shards");
        self.nodes = nodes;
        self.k = (nodes as u32 - self.m).clamp(1, 8);
        self
    }

    /// True when the seed drew no fault at all: then every store must succeed.
    pub fn fault_free(&self) -> bool {
        let rates = [
            self.crash_per_s,
            self.power_loss_per_s,
            self.partition_per_s,
            self.clog_per_s,
            self.loss_rate,
            self.rot_per_s,
            self.log_rot_per_s,
            self.eio_rate,
            self.rot_pair_per_s,
        ];
        rates.iter().all(|&r| r == 0.0) && self.disk_capacity_bytes == 0
    }
}

impl std::fmt::Display for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "scenario={} seed={} nodes={} profile={}+{} clients={} duration={}s \
             crash/s={:.3} power_loss/s={:.3} down={:.2}s partition/s={:.3} partition={:.2}s clog/s={:.3} \
             loss={:.4} rot/s={:.3} log_rot/s={:.3} eio={:.5} capacity={} wipe/crash={:.2} rot_pairs/s={:.3}",
            self.scenario,
            self.seed,
            self.nodes,
            self.k,
            self.m,
            self.clients,
            self.duration_s,
            self.crash_per_s,
            self.power_loss_per_s,
            self.down_s,
            self.partition_per_s,
            self.partition_s,
            self.clog_per_s,
            self.loss_rate,
            self.rot_per_s,
            self.log_rot_per_s,
            self.eio_rate,
            if self.disk_capacity_bytes == 0 {
                "unlimited".to_string()
            } else {
                self.disk_capacity_bytes.to_string()
            },
            self.wipe_per_crash,
            self.rot_pair_per_s,
        )?;
        if self.sync_ms > 0.0 {
            write!(f, " sync={:.1}ms", self.sync_ms)?;
        }
        if self.clock_drift_ppm > 0 {
            write!(f, " clock_drift=±{}ppm", self.clock_drift_ppm)?;
        }
        Ok(())
    }
}

impl Scenario {
    pub fn parse(name: &str, text: &str) -> Result<Self, String> {
        let mut s: Scenario = toml::from_str(text).map_err(|e| format!("{name}: {e}"))?;
        s.name = name.to_string();
        let [lo, hi] = s.nodes;
        if lo < 1 || hi < lo || s.parity[0] > s.parity[1] || u64::from(s.parity[1]) >= lo {
            return Err(format!(
                "{name}: nodes must be >= 1 and exceed the parity count"
            ));
        }
        Ok(s)
    }

    /// Draws the concrete parameters of `seed` (swarm testing).
    pub fn params(&self, seed: u64) -> Params {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let f = &self.faults;
        // Each fault class is on for about two seeds in three.
        let on = |r: &Range, rng: &mut ChaCha8Rng| {
            let v = r.draw(rng);
            if rng.gen_bool(2.0 / 3.0) { v } else { 0.0 }
        };
        let nodes = rng.gen_range(self.nodes[0]..=self.nodes[1]);
        let m = rng.gen_range(self.parity[0]..=self.parity[1]);
        // k fills the cluster (at most 8 data shards): one shard per node. Objects runs
        // take the placement ladder's profile for the cluster size instead.
        let (k, m) = match self.workload {
            Workload::Objects => {
                let p = engine::placement::ladder(nodes as usize);
                (u32::from(p.k), u32::from(p.m))
            }
            _ => ((nodes as u32 - m).clamp(1, 8), m),
        };
        Params {
            scenario: self.name.clone(),
            workload: self.workload,
            membership: self.membership,
            seed,
            nodes,
            k,
            m,
            duration_s: self.duration_s,
            clients: self.clients,
            object_bytes_max: self.object_bytes_max,
            max_down: self.max_down,
            crash_per_s: on(&f.crash_per_s, &mut rng),
            power_loss_per_s: on(&f.power_loss_per_s, &mut rng),
            down_s: f.down_s.draw(&mut rng),
            partition_per_s: on(&f.partition_per_s, &mut rng),
            partition_s: f.partition_s.draw(&mut rng),
            clog_per_s: on(&f.clog_per_s, &mut rng),
            clog_s: f.clog_s.draw(&mut rng),
            loss_rate: on(&f.loss_rate, &mut rng),
            rot_per_s: on(&f.rot_per_s, &mut rng),
            log_rot_per_s: on(&f.log_rot_per_s, &mut rng),
            eio_rate: on(&f.eio_rate, &mut rng),
            disk_capacity_bytes: on(&f.disk_capacity_bytes, &mut rng) as u64,
            wipe_per_crash: on(&f.wipe_per_crash, &mut rng),
            rot_pair_per_s: on(&f.rot_pair_per_s, &mut rng),
            reads: self.reads,
            crash_during_repair: self.crash_during_repair,
            access: self.access,
            versions: self.versions,
            lying_sync: false,
            repair_off: false,
            scrub_on_request: false,
            // Drawn last, so the draws above are the same with or without it.
            sync_ms: f.sync_ms.draw(&mut rng),
            tear_raft_log: self.tear_raft_log,
            // Last too, for the same reason.
            clock_drift_ppm: on(&f.clock_drift_ppm, &mut rng) as u64,
        }
    }
}

/// The workspace's `scenarios/` directory.
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// The workspace's `seeds/` directory.
pub fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds")
}

/// The `.toml` files of `dir` as (file stem, text), sorted by name.
fn read_toml_dir(dir: &Path) -> Result<Vec<(String, String)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let stem = path
                .file_stem()
                .expect("file name")
                .to_string_lossy()
                .to_string();
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            out.push((stem, text));
        }
    }
    out.sort();
    Ok(out)
}

/// Every scenario, sorted by name.
pub fn load_all() -> Result<Vec<Scenario>, String> {
    read_toml_dir(&scenarios_dir())?
        .into_iter()
        .map(|(name, text)| Scenario::parse(&name, &text))
        .collect()
}

/// A regression seed from `seeds/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegressionSeed {
    pub scenario: String,
    pub seed: u64,
    /// What the seed found when it was added.
    pub found: String,
}

/// Every regression seed, as (file stem, seed), sorted by file.
pub fn load_seeds() -> Result<Vec<(String, RegressionSeed)>, String> {
    read_toml_dir(&seeds_dir())?
        .into_iter()
        .map(|(name, text)| {
            let seed = toml::from_str(&text).map_err(|e| format!("seeds/{name}.toml: {e}"))?;
            Ok((name, seed))
        })
        .collect()
}
