//! The simulator's own gate: regression seeds replay green, every scenario is
//! deterministic, seeds differ, faults are really injected, and the checkers have teeth.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use sim::scenario::{self, Scenario};
use sim::{Outcome, run_isolated};

fn scenarios() -> Vec<Scenario> {
    let all = scenario::load_all().expect("scenarios load");
    assert!(all.len() >= 6, "the scenario set is present");
    all
}

fn by_name(name: &str) -> Scenario {
    scenarios()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no scenario {name}"))
}

/// Seed `seed` of scenario `name`, run once for all the tests that ask for it (the
/// determinism check's first run of a seed is also the schedule tests' run of it).
fn shared(name: &str, seed: u64) -> Arc<Outcome> {
    type Run = Arc<OnceLock<Arc<Outcome>>>;
    static RUNS: OnceLock<Mutex<BTreeMap<(String, u64), Run>>> = OnceLock::new();
    let run = RUNS
        .get_or_init(Mutex::default)
        .lock()
        .expect("runs")
        .entry((name.to_string(), seed))
        .or_default()
        .clone();
    run.get_or_init(|| Arc::new(run_isolated(by_name(name).params(seed))))
        .clone()
}

/// The scenarios the tests below run from seed 0: their determinism check runs seed 0
/// too, and shares its first run with them.
const FROM_SEED_ZERO: [&str; 15] = [
    "baseline",
    "crash-restart",
    "partitions",
    "bitrot",
    "disk-faults",
    "raft-membership",
    "raft-crashes",
    "objects-crashed-receivers",
    "objects-floor",
    "objects-coordinator-loss",
    "objects-beyond-tolerance",
    "objects-repair-backfill",
    "objects-repair-emptied-node",
    "objects-repair-bitrot",
    "objects-repair-crash",
];

#[test]
fn regression_seeds_replay_green() {
    let seeds = scenario::load_seeds().expect("seeds load");
    assert!(!seeds.is_empty(), "seeds/ holds regression seeds");
    for (file, seed) in seeds {
        assert!(!seed.found.trim().is_empty(), "{file} says what it found");
        let outcome = shared(&seed.scenario, seed.seed);
        assert!(outcome.passed(), "{file}: {:?}", outcome.violations);
    }
}

/// Sealing an unsealed shard in place (`Repair::adopt`) runs under the durability
/// checker in every test run: the seed of `seeds/unsealed-shard-sealed-in-place.toml`
/// reaches it. A change of schedule that moves it away fails here; that file says how
/// another such seed was found.
#[test]
fn a_regression_seed_seals_an_unsealed_shard_in_place() {
    let seeds = scenario::load_seeds().expect("seeds load");
    let (_, seed) = seeds
        .iter()
        .find(|(file, _)| file == "unsealed-shard-sealed-in-place")
        .expect("the seed file");
    let outcome = shared(&seed.scenario, seed.seed);
    assert!(outcome.passed(), "{:?}", outcome.violations);
    let adopted = summary_count(&outcome.summary, "found_whole");
    assert!(adopted > 0, "no shard sealed in place: {}", outcome.summary);
}

/// Every scenario's seed runs twice with the same trace; the scenarios are split in two
/// tests (alternately, by name) so that the test threads share the work evenly.
fn scenarios_are_deterministic(half: usize) {
    for s in scenarios().into_iter().skip(half).step_by(2) {
        let seed = match FROM_SEED_ZERO.contains(&s.name.as_str()) {
            true => 0,
            false => 1000 + s.name.len() as u64,
        };
        let a = shared(&s.name, seed);
        let b = run_isolated(s.params(seed));
        assert!(a.passed(), "{} seed {seed}: {:?}", s.name, a.violations);
        assert_eq!(
            (a.trace_hash.as_str(), a.trace_events),
            (b.trace_hash.as_str(), b.trace_events),
            "{} seed {seed} is not deterministic",
            s.name
        );
        assert!(a.trace_events > 100, "the trace records the run");
    }
}

#[test]
fn every_other_scenario_is_deterministic() {
    scenarios_are_deterministic(0);
}

#[test]
fn the_remaining_scenarios_are_deterministic() {
    scenarios_are_deterministic(1);
}

#[test]
fn different_seeds_give_different_traces() {
    let hashes: std::collections::BTreeSet<String> = (0..4)
        .map(|seed| shared("baseline", seed).trace_hash.clone())
        .collect();
    assert_eq!(hashes.len(), 4);
}

/// Each fault class the scenarios declare is actually injected in some seed.
#[test]
fn declared_faults_are_injected() {
    let mut total = runtime_sim::FaultStats::default();
    let mut power_loss = runtime_sim::FaultStats::default();
    for name in ["crash-restart", "partitions", "bitrot", "disk-faults"] {
        for seed in 0..6 {
            let o = shared(name, seed);
            assert!(o.passed(), "{name} seed {seed}: {:?}", o.violations);
            total = total.plus(&o.stats);
            power_loss = power_loss.plus(&o.power_loss);
        }
    }
    let t = &total;
    for (what, n) in [
        ("crashes", t.crashes),
        ("restarts", t.restarts),
        ("partitions", t.partitions),
        ("clogs", t.clogs),
        ("messages dropped", t.messages_dropped),
        ("streams broken", t.streams_broken),
        ("bits flipped", t.bits_flipped),
        ("sectors zeroed", t.sectors_zeroed),
        ("EIO", t.eio_returned),
        ("no space", t.nospace_returned),
        (
            "writes torn by a crash",
            t.unsynced_writes_torn + power_loss.unsynced_writes_torn,
        ),
        (
            "writes dropped by a crash",
            t.unsynced_writes_dropped + power_loss.unsynced_writes_dropped,
        ),
        (
            "writes kept by a crash",
            t.unsynced_writes_applied + power_loss.unsynced_writes_applied,
        ),
        (
            "directory operations lost",
            t.dir_ops_lost + power_loss.dir_ops_lost,
        ),
    ] {
        assert!(n > 0, "{what} never injected: {t}");
    }
}

/// The checkers have teeth: on disks that acknowledge fsync without persisting, the
/// final power loss destroys acknowledged shards, and the run must fail.
#[test]
fn checkers_catch_lost_durability() {
    let mut params = by_name("baseline").params(3);
    params.lying_sync = true;
    let outcome = run_isolated(params);
    assert!(outcome.stats.syncs_lied > 0);
    assert!(!outcome.passed(), "a lying disk went unnoticed");
    assert!(
        outcome
            .violations
            .iter()
            .any(|v| v.contains("lost from node") || v.contains("unreadable without rot")),
        "{:?}",
        &outcome.violations[..outcome.violations.len().min(3)]
    );
}

/// Snapshots are really streamed and installed: a member that joins catches up by
/// snapshot in every run of raft-membership, and one that was down while the log was
/// compacted past it does so in some seed of raft-crashes (how often depends on how many
/// entries commit while it is down, so the search goes on until one does, up to 40).
#[test]
fn lagging_members_catch_up_by_snapshot() {
    let installed = |name: &str, seed: u64| {
        let o = shared(name, seed);
        assert!(o.passed(), "{name} seed {seed}: {:?}", o.violations);
        summary_count(&o.summary, "snapshots_installed")
    };
    for seed in 0..4 {
        assert!(
            installed("raft-membership", seed) > 0,
            "raft-membership seed {seed}: the joining learner installed no snapshot"
        );
    }
    assert!(
        (0..40).any(|seed| installed("raft-crashes", seed) > 0),
        "raft-crashes: no snapshot was installed in seeds 0..40"
    );
}

/// A count from a verdict's summary (`name=N`).
fn summary_count(summary: &str, name: &str) -> u64 {
    summary
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {summary:?}"))
}

/// The schedules of the release notes happen in the objects scenarios: degraded writes
/// at the floor, refusals below it, coordinators lost mid-PUT, reads around crashed
/// holders, and objects lost beyond tolerance (reported, not served wrong).
#[test]
fn objects_schedules_happen() {
    let mut totals = std::collections::BTreeMap::new();
    for name in [
        "objects-crashed-receivers",
        "objects-floor",
        "objects-coordinator-loss",
        "objects-beyond-tolerance",
    ] {
        for seed in 0..4 {
            let o = shared(name, seed);
            assert!(o.passed(), "{name} seed {seed}: {:?}", o.violations);
            for what in [
                "degraded",
                "below_floor",
                "coordinator_lost",
                "degraded_reads",
                "beyond_tolerance",
            ] {
                *totals.entry(what).or_insert(0) += summary_count(&o.summary, what);
            }
        }
    }
    for (what, n) in &totals {
        assert!(*n > 0, "{what} never happened: {totals:?}");
    }
}

/// Repair's schedules happen: degraded writes backfilled, rotted and wiped shards
/// healed, shards of long-down holders moved to spares, blobs beyond tolerance marked
/// lost.
#[test]
fn repair_schedules_happen() {
    let mut totals = std::collections::BTreeMap::new();
    for name in [
        "objects-repair-backfill",
        "objects-repair-emptied-node",
        "objects-repair-bitrot",
        "objects-repair-crash",
    ] {
        for seed in 0..3 {
            let o = shared(name, seed);
            assert!(o.passed(), "{name} seed {seed}: {:?}", o.violations);
            for what in ["degraded", "healed_shards", "lost", "rebuilt", "moved"] {
                *totals.entry(what).or_insert(0) += summary_count(&o.summary, what);
            }
        }
    }
    for (what, n) in &totals {
        assert!(*n > 0, "{what} never happened: {totals:?}");
    }
}

/// The repair checkers have teeth: with repair switched off, degraded writes stay
/// unsealed and rotted shards stay rotted, and the checkers say so (they no longer
/// excuse a shard a fault damaged once repair has had its time). Every seed that
/// damaged something is judged; the first seeds must include one that did.
#[test]
fn repair_checkers_catch_missing_repair() {
    for name in ["objects-repair-backfill", "objects-repair-bitrot"] {
        let mut judged = 0;
        for seed in 1..=4 {
            let mut params = by_name(name).params(seed);
            params.repair_off = true;
            let outcome = run_isolated(params);
            let damage = summary_count(&outcome.summary, "degraded")
                + summary_count(&outcome.summary, "rotted_files");
            if damage == 0 {
                continue;
            }
            judged += 1;
            assert!(
                outcome
                    .violations
                    .iter()
                    .any(|v| v.contains("repair did not heal")),
                "{name} seed {seed}: {:?} {}",
                outcome.violations,
                outcome.summary
            );
        }
        assert!(judged > 0, "{name}: no seed of 1-4 damaged anything");
    }
}

/// The objects checkers have teeth: on disks that acknowledge fsync without
/// persisting, the final power loss takes sealed shards of committed objects.
#[test]
fn objects_checkers_catch_lost_shards() {
    let mut params = by_name("objects-baseline").params(2);
    params.lying_sync = true;
    let outcome = run_isolated(params);
    assert!(outcome.stats.syncs_lied > 0);
    assert!(
        outcome
            .violations
            .iter()
            .any(|v| v.contains("is missing from node")),
        "{:?}",
        &outcome.violations[..outcome.violations.len().min(3)]
    );
}
