//! `hamster`: the production daemon and its tools.
//!
//! `hamster server` (one node on the embedded default), `hamster version`, the cluster
//! commands (`cluster init`, `cluster run`) and the admin commands (`admin status`,
//! `admin repair status|start`, `admin lost`, `admin key ...`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use runtime_real::admin;
use runtime_real::cluster::{self, InitOptions, NodeConfig};

/// mimalloc rather than the C library's allocator: musl's (the static release) slows to
/// a crawl under many threads, and glibc's holds on to freed memory.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "hamster",
    about = "Hamster: an erasure-coded, S3-compatible object store"
)]
struct Cli {
    /// Log lines as text (coloured only on a terminal) or as JSON objects, one a line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node with the S3 API: data in ./hamster-data, S3 on 127.0.0.1:9000.
    Server {
        /// Directory of the node's data (created if missing).
        #[arg(long, default_value = "hamster-data")]
        data: PathBuf,
        /// Address the S3 API listens on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        s3: std::net::SocketAddr,
        #[command(flatten)]
        s3_args: S3Args,
        #[command(flatten)]
        ops: OpsArgs,
        /// Seconds between orphan sweeps (tests shorten it).
        #[arg(long, hide = true, default_value_t = engine::sweep::SWEEP_INTERVAL.as_secs())]
        sweep_interval_s: u64,
        /// Seconds a shard must stay unreferenced before the sweep removes it.
        #[arg(long, hide = true, default_value_t = engine::sweep::SWEEP_GRACE.as_secs())]
        sweep_grace_s: u64,
        #[command(flatten)]
        repair: RepairArgs,
    },
    /// Load an S3 endpoint: concurrent PUT, GET and ranged GET per object size.
    Bench {
        #[arg(long, default_value = "http://127.0.0.1:9000")]
        endpoint: String,
        #[arg(long, env = "HAMSTER_ACCESS_KEY", hide_env_values = true)]
        access_key: String,
        #[arg(long, env = "HAMSTER_SECRET_KEY", hide_env_values = true)]
        secret_key: String,
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// Bucket to write into (created if missing).
        #[arg(long, default_value = "hamster-bench")]
        bucket: String,
        /// Object sizes, comma-separated (4KiB, 1MiB, 64MiB, ...).
        #[arg(long, value_delimiter = ',', default_value = "4KiB,1MiB,64MiB")]
        sizes: Vec<String>,
        /// Workers per size, comma-separated in the order of --sizes (default: 16 for
        /// small objects, 8 for medium, 2 for large).
        #[arg(long, value_delimiter = ',')]
        workers: Vec<usize>,
        /// Seconds per phase (PUT, GET, ranged GET) and size.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Length of each ranged GET.
        #[arg(long, default_value = "1MiB")]
        range: String,
        /// Check every Nth read byte for byte.
        #[arg(long, default_value_t = 10)]
        verify_every: u64,
        /// The nodes' metrics endpoints (their --metrics), comma-separated: after each
        /// phase, print per node the mean time of every measured step.
        #[arg(long, value_delimiter = ',')]
        metrics: Vec<String>,
        /// Offered load in operations per second over all workers (each worker keeps a
        /// fixed schedule; latency counts from the scheduled start). Default: as fast
        /// as the workers go.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
    },
    /// Print version, git commit and build date.
    Version,
    /// Create and run cluster nodes.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Inspect a running cluster.
    #[command(subcommand)]
    Admin(AdminCommand),
}

// Parsed once per process: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum ClusterCommand {
    /// Write a new cluster's CA, node certificates and keys, and one config per node
    /// (plus admin.toml for the admin commands).
    Init {
        /// Number of nodes.
        #[arg(long)]
        nodes: usize,
        /// Directory to write into (created; refused if it already holds a cluster).
        #[arg(long)]
        out: PathBuf,
        /// Comma-separated host per node, in node order (default: 127.0.0.1 for all).
        #[arg(long, value_delimiter = ',')]
        hosts: Vec<String>,
        /// RPC port of node 1; node i uses base + i - 1. 0 picks free ports now.
        #[arg(long, default_value_t = 7001)]
        base_port: u16,
    },
    /// Run one node from its config file, with the S3 API when --s3 is given.
    Run {
        #[arg(long)]
        config: PathBuf,
        /// Address this node's S3 API listens on (the release notes spell it -s3).
        #[arg(long, alias = "s3-addr")]
        s3: Option<std::net::SocketAddr>,
        #[command(flatten)]
        s3_args: S3Args,
        #[command(flatten)]
        ops: OpsArgs,
        #[command(flatten)]
        repair: RepairArgs,
    },
}

/// The S3 API's flags, the same for `server` and `cluster run`.
#[derive(Args)]
struct S3Args {
    /// Root access key (default: $HAMSTER_ACCESS_KEY, else the stored one: the data
    /// directory's for `server`, generated there if missing; the cluster's for `run`).
    #[arg(long, env = "HAMSTER_ACCESS_KEY", hide_env_values = true)]
    access_key: Option<String>,
    /// Root secret key (default: $HAMSTER_SECRET_KEY, else the stored one).
    #[arg(long, env = "HAMSTER_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// Region the node reports (and signatures name).
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Base domain for virtual-host-style requests (bucket.DOMAIN); repeatable.
    /// localhost is always one.
    #[arg(long)]
    domain: Vec<String>,
    /// Serve S3 over HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The length of a "day" in lifecycle rules, in seconds (S3's: 86400). Shorten it
    /// to see rules act in seconds; the leader's setting is the one that acts.
    #[arg(long, env = "HAMSTER_LIFECYCLE_DAY_SECONDS", default_value_t = 86400.0,
          value_parser = positive_seconds)]
    lifecycle_day_seconds: f64,
    /// SSE-S3's master key: a file whose text is 32 random bytes in base64 (make one
    /// with `head -c 32 /dev/urandom | base64`). Every node of a cluster needs the
    /// same one. Keep it off the data disks. Without a master key SSE-S3 is refused;
    /// SSE-C needs none.
    #[arg(long, env = "HAMSTER_SSE_MASTER_KEY_FILE")]
    sse_master_key_file: Option<PathBuf>,
    /// The master key itself, base64 (the file is safer: a command line is visible to
    /// every user of the machine).
    #[arg(
        long,
        env = "HAMSTER_SSE_MASTER_KEY",
        hide_env_values = true,
        conflicts_with = "sse_master_key_file"
    )]
    sse_master_key: Option<String>,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.001 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds of at least 0.001"
        )),
    }
}

impl S3Args {
    fn master_key(&self) -> anyhow::Result<Option<engine::s3::sse::Key>> {
        let key = runtime_real::keys::master_key(
            self.sse_master_key_file.as_deref(),
            self.sse_master_key.as_deref(),
        )?;
        match &key {
            Some(_) => tracing::info!("SSE-S3 is on: a master key was given"),
            None => tracing::info!("SSE-S3 is off: no master key (--sse-master-key-file)"),
        }
        Ok(key)
    }

    fn lifecycle(&self) -> engine::lifecycle::LifecycleConfig {
        engine::lifecycle::LifecycleConfig::with_day(std::time::Duration::from_secs_f64(
            self.lifecycle_day_seconds,
        ))
    }

    fn tls(&self) -> Option<runtime_real::listener::TlsFiles> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(runtime_real::listener::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        }
    }
}

/// The operations endpoint.
#[derive(Args)]
struct OpsArgs {
    /// Serve Prometheus metrics (/metrics), liveness (/health) and readiness (/ready)
    /// on this address, e.g. 127.0.0.1:9100. Off unless given.
    #[arg(long)]
    metrics: Option<std::net::SocketAddr>,
}

/// Repair's budgets and period (every node repairs; these only pace it).
#[derive(Args)]
struct RepairArgs {
    /// Hours between the starts of two full deep-scrub passes (`admin repair start`
    /// starts one at once).
    #[arg(long, default_value_t = 168.0)]
    scrub_period_hours: f64,
    /// Shard bytes the deep scrub hashes per second, at most.
    #[arg(long, default_value_t = 32 << 20)]
    scrub_bytes_per_s: u64,
    /// Shard bytes rebuilds write per second, at most (foreground traffic keeps the rest).
    #[arg(long, default_value_t = 16 << 20)]
    rebuild_bytes_per_s: u64,
    /// Seconds a node may be unreachable before its shards are rebuilt on spares
    /// (members that hold no shard of the object; none exist for a 4+2 object on six).
    #[arg(long, default_value_t = 600)]
    takeover_after_s: u64,
}

impl RepairArgs {
    fn config(&self) -> engine::repair::RepairConfig {
        engine::repair::RepairConfig {
            scrub_period: std::time::Duration::from_secs_f64(
                self.scrub_period_hours.max(0.0) * 3600.0,
            ),
            scrub_bytes_per_s: self.scrub_bytes_per_s,
            rebuild_bytes_per_s: self.rebuild_bytes_per_s,
            takeover_after: std::time::Duration::from_secs(self.takeover_after_s),
            ..Default::default()
        }
    }
}

/// Which store an admin command talks to.
#[derive(Args)]
struct AdminTarget {
    /// A cluster: the admin config written by `cluster init` (admin.toml).
    #[arg(long, conflicts_with = "data")]
    config: Option<PathBuf>,
    /// A `hamster server`: its data directory (the admin socket is in it).
    #[arg(long)]
    data: Option<PathBuf>,
}

impl AdminTarget {
    async fn open(&self) -> anyhow::Result<admin::Target> {
        admin::Target::open(self.config.as_deref(), self.data.as_deref()).await
    }
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Leader and members; per node: role, term, commit and applied index, shards,
    /// disk used and free, version and uptime (and which members answer).
    Status {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Repair: scrub progress, queue, rebuilds per node; or start a full pass.
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Objects with fewer than k good shards: bucket, key, size, good/needed shards.
    Lost {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Access keys and their rights on buckets (through any node's S3 endpoint).
    #[command(subcommand)]
    Key(runtime_real::key_cli::KeyCommand),
}

#[derive(Subcommand)]
enum RepairCommand {
    /// Per node: the scrub pass (% done, shards and bytes checked, rate, ETA, last full
    /// pass), the queue by margin, rebuilt shards and bytes, failures.
    Status {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Start a full deep-scrub pass on every node now.
    Start {
        #[command(flatten)]
        target: AdminTarget,
    },
}

fn version_line() -> String {
    format!(
        "hamster {} (commit {}, built {})",
        env!("CARGO_PKG_VERSION"),
        env!("HAMSTER_GIT_COMMIT"),
        env!("HAMSTER_BUILD_DATE")
    )
}

/// Logs go to stderr: text, coloured only when stderr is a terminal (and NO_COLOR is
/// unset), or JSON objects for log collectors.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // s3s logs every refused signature as an error; the S3 answer says it already.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,s3s::ops=off,s3s::service=off")
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(colour).init();
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn stop_on_signal() -> runtime_real::server::Stop {
    Box::pin(async {
        stop_signal().await;
        tracing::info!("stopping on signal");
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn execute(command: Command, log_format: LogFormat) -> anyhow::Result<()> {
    match command {
        Command::Server {
            data,
            s3,
            s3_args,
            ops,
            sweep_interval_s,
            sweep_grace_s,
            repair,
        } => {
            init_logging(log_format);
            tracing::info!("{}", version_line());
            let tls = s3_args.tls();
            let lifecycle = s3_args.lifecycle();
            let master_key = s3_args.master_key()?;
            let S3Args {
                access_key,
                secret_key,
                region,
                domain,
                ..
            } = s3_args;
            let (credentials, source) =
                runtime_real::keys::credentials(&data, access_key, secret_key)?;
            match &source {
                runtime_real::keys::KeySource::Generated(path) => {
                    println!(
                        "Generated the root credentials (stored in {}):",
                        path.display()
                    );
                    println!("  access key: {}", credentials.access_key);
                    println!("  secret key: {}", credentials.secret_key);
                }
                runtime_real::keys::KeySource::Stored(path) => {
                    tracing::info!(file = %path.display(), access_key = %credentials.access_key, "using stored credentials");
                }
                runtime_real::keys::KeySource::Given => {
                    tracing::info!(access_key = %credentials.access_key, "using the given credentials");
                }
            }
            let options = runtime_real::server::ServerOptions {
                data,
                s3,
                credentials,
                region,
                domains: domain,
                tls,
                master_key,
                metrics: ops.metrics,
                sweep: engine::sweep::SweepConfig {
                    interval: std::time::Duration::from_secs(sweep_interval_s.max(1)),
                    grace: std::time::Duration::from_secs(sweep_grace_s),
                },
                repair: repair.config(),
                lifecycle,
            };
            runtime().block_on(async {
                runtime_real::server::run_server(options, stop_on_signal()).await
            })?;
        }
        Command::Bench {
            endpoint,
            access_key,
            secret_key,
            region,
            bucket,
            sizes,
            workers,
            seconds,
            range,
            verify_every,
            metrics,
            rate,
        } => {
            use runtime_real::bench;
            let mut runs = Vec::new();
            for (i, s) in sizes.iter().enumerate() {
                let size = bench::parse_size(s)?;
                let workers = workers
                    .get(i)
                    .copied()
                    .unwrap_or(bench::default_workers(size));
                runs.push(bench::SizeRun { size, workers });
            }
            let options = bench::BenchOptions {
                endpoint,
                access_key,
                secret_key,
                region,
                bucket,
                runs,
                seconds,
                range_bytes: bench::parse_size(&range)?,
                verify_every,
                metrics,
                rate,
            };
            runtime().block_on(bench::run(options))?;
        }
        Command::Version => println!("{}", version_line()),
        Command::Cluster(ClusterCommand::Init {
            nodes,
            out,
            hosts,
            base_port,
        }) => {
            let (configs, admin) = cluster::init(&InitOptions {
                nodes,
                out: out.clone(),
                hosts,
                base_port,
            })?;
            println!("wrote a {nodes}-node cluster to {}", out.display());
            println!(
                "S3 keys for every node: {}",
                out.join("credentials.toml").display()
            );
            for (i, c) in configs.iter().enumerate() {
                println!(
                    "  hamster cluster run --config {} --s3 127.0.0.1:{}",
                    c.display(),
                    9001 + i
                );
            }
            println!("  hamster admin status --config {}", admin.display());
        }
        Command::Cluster(ClusterCommand::Run {
            config,
            s3,
            s3_args,
            ops,
            repair,
        }) => {
            init_logging(log_format);
            tracing::info!("{}", version_line());
            let tls = s3_args.tls();
            let lifecycle = s3_args.lifecycle();
            let master_key = s3_args.master_key()?;
            let S3Args {
                access_key,
                secret_key,
                region,
                domain,
                ..
            } = s3_args;
            let config = NodeConfig::load(&config)?;
            let s3 = s3.map(|addr| cluster::S3Listen {
                addr,
                access_key,
                secret_key,
                region,
                domains: domain,
                tls,
                master_key,
            });
            let tasks = cluster::Tasks {
                repair: repair.config(),
                lifecycle,
            };
            runtime().block_on(cluster::run(
                config,
                s3,
                tasks,
                ops.metrics,
                stop_on_signal(),
            ))?;
        }
        Command::Admin(AdminCommand::Status { target }) => {
            let statuses =
                runtime().block_on(async { anyhow::Ok(target.open().await?.statuses().await) })?;
            print!("{}", admin::render_status(&statuses));
            if statuses.iter().all(|(_, _, s)| s.is_err()) {
                anyhow::bail!("no member answered (each row above says why)");
            }
        }
        Command::Admin(AdminCommand::Repair(RepairCommand::Status { target })) => {
            let statuses = runtime()
                .block_on(async { anyhow::Ok(target.open().await?.repair_statuses().await) })?;
            print!("{}", admin::render_repair(&statuses));
            if statuses.iter().all(|(_, s)| s.is_err()) {
                anyhow::bail!("no node answered");
            }
        }
        Command::Admin(AdminCommand::Repair(RepairCommand::Start { target })) => {
            let started = runtime()
                .block_on(async { anyhow::Ok(target.open().await?.repair_start().await) })?;
            for (node, result) in &started {
                match result {
                    Ok(()) => println!("node {node}: full scrub pass started"),
                    Err(e) => println!("node {node}: not started: {e:#}"),
                }
            }
            if started.iter().all(|(_, r)| r.is_err()) {
                anyhow::bail!("no node answered");
            }
        }
        Command::Admin(AdminCommand::Lost { target }) => {
            let lost = runtime().block_on(async { target.open().await?.lost().await })?;
            print!("{}", admin::render_lost(&lost));
        }
        Command::Admin(AdminCommand::Key(command)) => {
            print!("{}", runtime().block_on(command.run())?);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli.command, cli.log_format) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hamster: {error:#}");
            ExitCode::FAILURE
        }
    }
}
