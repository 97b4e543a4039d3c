//! `cargo run -p sim -- --seed N [--scenario NAME]`: replay one failure schedule.
//!
//! Other modes: `--check-determinism` (the seed twice, in fresh threads, hashes must
//! match), `--fuzz --time SECONDS [--jobs J]` (random seeds until the time is up, the
//! wall clock shared equally by every scenario, seeds per scenario printed at the end;
//! each scenario's first seed is run twice as a determinism check; a failure prints the
//! exact replay command), `--bench --time SECONDS`
//! (seeds per minute per scenario), `--list` (the scenarios).

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sim::scenario::{self, Scenario};
use sim::{Outcome, run_isolated};

#[derive(Default)]
struct Args {
    seed: Option<u64>,
    scenario: Option<String>,
    check_determinism: bool,
    fuzz: bool,
    bench: bool,
    list: bool,
    time_s: Option<u64>,
    jobs: Option<usize>,
    nodes: Option<u64>,
}

const USAGE: &str = "usage: sim --seed N [--scenario NAME] [--check-determinism]
       sim --fuzz --time SECONDS [--jobs J] [--scenario NAME]
       sim --bench --time SECONDS [--scenario NAME] [--nodes N]
       sim --list";

fn number<T: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    let value = value.ok_or(format!("{flag} needs a value"))?;
    value.parse().map_err(|e| format!("{flag} {value:?}: {e}"))
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--seed" => args.seed = Some(number(&flag, it.next())?),
            "--scenario" => args.scenario = Some(it.next().ok_or("--scenario needs a value")?),
            "--time" => args.time_s = Some(number(&flag, it.next())?),
            "--jobs" => args.jobs = Some(number(&flag, it.next())?),
            "--nodes" => args.nodes = Some(number(&flag, it.next())?),
            "--check-determinism" => args.check_determinism = true,
            "--fuzz" => args.fuzz = true,
            "--bench" => args.bench = true,
            "--list" => args.list = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    // Engine warnings (corrupt shards at start-up, failed scans) go to stderr; RUST_LOG
    // widens or narrows them.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let scenarios = match scenario::load_all() {
        Ok(s) if !s.is_empty() => s,
        Ok(_) => {
            eprintln!(
                "error: no scenarios in {}",
                scenario::scenarios_dir().display()
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let chosen: Vec<Scenario> = match &args.scenario {
        None => scenarios.clone(),
        Some(name) => match scenarios.iter().find(|s| &s.name == name) {
            Some(s) => vec![s.clone()],
            None => {
                let names: Vec<_> = scenarios.iter().map(|s| s.name.as_str()).collect();
                eprintln!("error: no scenario {name:?}; have {}", names.join(", "));
                return ExitCode::from(2);
            }
        },
    };
    if args.list {
        for s in &scenarios {
            println!("{:<20} {}", s.name, s.description);
        }
        return ExitCode::SUCCESS;
    }
    let ok = if args.fuzz {
        fuzz(&chosen, args.time_s.unwrap_or(60), args.jobs.unwrap_or(2))
    } else if args.bench {
        bench(&chosen, args.time_s.unwrap_or(60), args.nodes)
    } else if let Some(seed) = args.seed {
        let s = pick(&chosen, seed);
        replay(s, seed, args.check_determinism)
    } else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The scenario a seed runs when none is named: derived from the seed.
fn pick(scenarios: &[Scenario], seed: u64) -> &Scenario {
    let mixed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
    &scenarios[(mixed % scenarios.len() as u64) as usize]
}

fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn replay_command(o: &Outcome) -> String {
    format!(
        "cargo run -p sim -- --seed {} --scenario {}",
        o.params.seed, o.params.scenario
    )
}

fn report_failure(o: &Outcome) {
    println!(
        "FAIL seed={} scenario={} commit={}",
        o.params.seed,
        o.params.scenario,
        commit()
    );
    println!("  params: {}", o.params);
    for v in o.violations.iter().take(20) {
        println!("  violation: {v}");
    }
    if o.violations.len() > 20 {
        println!("  ... and {} more", o.violations.len() - 20);
    }
    println!("  replay: {}", replay_command(o));
}

/// Why two runs of one seed differ, if they do.
fn nondeterminism(first: &Outcome, second: &Outcome) -> Option<String> {
    (second.trace_hash != first.trace_hash || second.trace_events != first.trace_events).then(
        || {
            format!(
                "NONDETERMINISTIC: the first run hashed {} ({} events), the second {} ({} events); replay: {} --check-determinism",
                first.trace_hash,
                first.trace_events,
                second.trace_hash,
                second.trace_events,
                replay_command(first)
            )
        },
    )
}

fn replay(s: &Scenario, seed: u64, check_determinism: bool) -> bool {
    let params = s.params(seed);
    println!("params: {params}");
    let start = Instant::now();
    let first = run_isolated(params.clone());
    println!(
        "trace: {} ({} events)",
        first.trace_hash, first.trace_events
    );
    println!(
        "verdict: {} [wall {:.2}s]",
        first.verdict_line(),
        start.elapsed().as_secs_f64()
    );
    if !first.passed() {
        report_failure(&first);
        return false;
    }
    if check_determinism {
        if let Some(why) = nondeterminism(&first, &run_isolated(params)) {
            println!("{why}");
            return false;
        }
        println!("determinism: same trace hash twice");
    }
    true
}

/// A fuzz seed that runs longer than this in wall time is reported as a failure: a
/// hang or a runaway must not eat CI's time.
const SEED_WALL_MAX: Duration = Duration::from_secs(300);
/// Resident memory of the fuzz process beyond which the seeds in flight are reported.
const FUZZ_RSS_BYTES_MAX: u64 = 8 << 30;

/// Resident set size of this process, from /proc (0 where there is none).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Per fuzz worker: the seed it runs, its scenario, and since when.
type InFlight = std::sync::Mutex<Vec<Option<(u64, String, Instant)>>>;

/// Reports the seeds in flight and ends the process when one runs away (see
/// [`SEED_WALL_MAX`], [`FUZZ_RSS_BYTES_MAX`]); the run itself cannot be stopped.
fn watch(in_flight: &InFlight, done: &std::sync::atomic::AtomicBool) {
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(500));
        let rss = rss_bytes();
        let running = in_flight.lock().unwrap().clone();
        let slow = running
            .iter()
            .flatten()
            .any(|(_, _, start)| start.elapsed() > SEED_WALL_MAX);
        if !slow && rss <= FUZZ_RSS_BYTES_MAX {
            continue;
        }
        println!(
            "fuzz: a seed ran away (resident {} MiB, wall limit {SEED_WALL_MAX:?}); in flight:",
            rss >> 20
        );
        for (seed, scenario, start) in running.into_iter().flatten() {
            println!(
                "FAIL seed={seed} scenario={scenario} commit={} running {:.0}s",
                commit(),
                start.elapsed().as_secs_f64()
            );
            println!("  replay: cargo run -p sim -- --seed {seed} --scenario {scenario}");
        }
        std::process::exit(1);
    }
}

/// Fuzz time per scenario so far (finished runs, plus a provisional charge for runs in
/// flight) and seeds run: the next run goes to the scenario with the least time, so
/// every scenario gets an equal share of the wall clock however slow its runs are.
/// Each scenario's first seed runs twice, and its two trace hashes must match: a
/// determinism check at a new seed every run, inside the fuzz's time.
struct Shares {
    spent: Vec<Duration>,
    seeds: Vec<u64>,
    checked: Vec<bool>,
}

impl Shares {
    fn new(scenarios: usize) -> Self {
        Self {
            spent: vec![Duration::ZERO; scenarios],
            seeds: vec![0; scenarios],
            checked: vec![false; scenarios],
        }
    }

    /// The scenario to run next, what it was charged up front, and whether this run is
    /// its determinism check (to run twice).
    fn take(&mut self) -> (usize, Duration, bool) {
        let (i, _) = self
            .spent
            .iter()
            .enumerate()
            .min_by_key(|(i, d)| (**d, *i))
            .expect("at least one scenario");
        // Charged now with this scenario's mean so far, so that a second worker does
        // not pick it too before the run ends.
        let mean = self.mean(i);
        self.spent[i] += mean;
        let twice = !std::mem::replace(&mut self.checked[i], true);
        (i, mean, twice)
    }

    fn mean(&self, i: usize) -> Duration {
        match self.seeds[i] {
            0 => Duration::from_secs(1),
            n => self.spent[i] / n as u32,
        }
    }

    fn done(&mut self, i: usize, charged: Duration, took: Duration) {
        self.spent[i] = self.spent[i].saturating_sub(charged) + took;
        self.seeds[i] += 1;
    }
}

fn fuzz(scenarios: &[Scenario], time_s: u64, jobs: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(time_s);
    let base = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let next = std::sync::atomic::AtomicU64::new(0);
    let failed = std::sync::Mutex::new(Vec::<Outcome>::new());
    let passed = std::sync::atomic::AtomicU64::new(0);
    let shares = std::sync::Mutex::new(Shares::new(scenarios.len()));
    let jobs = jobs.max(1);
    let in_flight: InFlight = std::sync::Mutex::new(vec![None; jobs]);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| watch(&in_flight, &done));
        let workers: Vec<_> = (0..jobs)
            .map(|job| {
                let (next, failed, passed, in_flight, shares) =
                    (&next, &failed, &passed, &in_flight, &shares);
                scope.spawn(move || {
                    while Instant::now() < deadline && failed.lock().unwrap().is_empty() {
                        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let seed = base.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> 1;
                        let (i, charged, twice) = shares.lock().unwrap().take();
                        let s = &scenarios[i];
                        let started = Instant::now();
                        in_flight.lock().unwrap()[job] = Some((seed, s.name.clone(), started));
                        let mut outcome = run_isolated(s.params(seed));
                        if twice && outcome.passed() {
                            let second = run_isolated(s.params(seed));
                            if let Some(why) = nondeterminism(&outcome, &second) {
                                outcome.violations.push(why);
                            }
                        }
                        in_flight.lock().unwrap()[job] = None;
                        shares.lock().unwrap().done(i, charged, started.elapsed());
                        if outcome.passed() {
                            passed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        } else {
                            failed.lock().unwrap().push(outcome);
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("fuzz worker");
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let failed = failed.into_inner().unwrap();
    let passed = passed.into_inner();
    let shares = shares.into_inner().unwrap();
    println!(
        "fuzz ran {} seeds in {time_s}s; per scenario (seeds, wall seconds):",
        passed + failed.len() as u64
    );
    for (i, s) in scenarios.iter().enumerate() {
        println!(
            "  {:<30} {:>5} {:>7.1}",
            s.name,
            shares.seeds[i],
            shares.spent[i].as_secs_f64()
        );
    }
    // Alone on its line, so CI can read the count.
    println!("fuzz: {passed} passed, {} failed", failed.len());
    for o in &failed {
        report_failure(o);
    }
    failed.is_empty()
}

fn bench(scenarios: &[Scenario], time_s: u64, nodes: Option<u64>) -> bool {
    let per = Duration::from_secs(time_s) / scenarios.len() as u32;
    println!(
        "{:<20} {:>6} {:>12} {:>16}",
        "scenario", "seeds", "seeds/min", "sim-s per wall-s"
    );
    let mut ok = true;
    for s in scenarios {
        let start = Instant::now();
        let (mut seeds, mut simulated) = (0u64, Duration::ZERO);
        while start.elapsed() < per || seeds == 0 {
            let params = s.params(seeds);
            let params = match nodes {
                Some(n) => params.with_nodes(n),
                None => params,
            };
            let outcome = run_isolated(params);
            ok &= outcome.passed();
            if !outcome.passed() {
                report_failure(&outcome);
            }
            simulated += outcome.simulated;
            seeds += 1;
        }
        let wall = start.elapsed().as_secs_f64();
        println!(
            "{:<20} {:>6} {:>12.1} {:>16.1}",
            s.name,
            seeds,
            seeds as f64 * 60.0 / wall,
            simulated.as_secs_f64() / wall
        );
    }
    ok
}
