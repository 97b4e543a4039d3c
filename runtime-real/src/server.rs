//! `hamster server`: one node on the embedded default.
//!
//! The node is a one-member Raft group with storage profile 1+0: the same code path a
//! cluster uses, nothing special-cased. Data lives under `--data` (`./hamster-data`):
//! `raft/` (log, hard state, the redb state machine), `shards/` (one sealed file per
//! shard), `credentials.toml` (when the keys were generated here). S3 is served by
//! `crate::listener`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use engine::raft::node::RaftConfig;
use engine::s3::S3Config;
use tokio::net::TcpListener;

use crate::keys::Credentials;
use crate::listener::{S3Front, serve_s3};
use crate::{NetLimits, RealDisk, RealEnv, RealNet, Transport};

/// `hamster server`'s settings.
pub struct ServerOptions {
    pub data: PathBuf,
    pub s3: SocketAddr,
    pub credentials: Credentials,
    pub region: String,
    /// Base domains for virtual-host addressing (`bucket.<domain>`).
    pub domains: Vec<String>,
    /// HTTPS on the S3 port (`--tls-cert`, `--tls-key`).
    pub tls: Option<crate::listener::TlsFiles>,
    /// SSE-S3's master key (`--sse-master-key-file`).
    pub master_key: Option<engine::s3::sse::Key>,
    /// The operations endpoint (`--metrics`): /metrics, /health, /ready.
    pub metrics: Option<SocketAddr>,
    pub sweep: engine::sweep::SweepConfig,
    pub repair: engine::repair::RepairConfig,
    pub lifecycle: engine::lifecycle::LifecycleConfig,
}

/// The node id of a single server.
const SERVER_NODE: u64 = 1;

/// A future boxed in this crate. A node's futures are made and boxed here, behind
/// functions that are neither generic nor inlined, so that the node is compiled once, in
/// this crate: an `async fn` or a generic one is compiled again in every binary that
/// awaits it (optimised builds share no instances between crates). `hamster`'s own
/// compile went from 238 s to 73 s of the sim build.
pub type Boxed<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// What ends a server or node.
pub type Stop = Boxed<()>;

/// Runs a single-node server until `stop` resolves.
#[inline(never)]
pub fn run_server(options: ServerOptions, stop: Stop) -> Boxed<anyhow::Result<()>> {
    Box::pin(serve(options, stop))
}

async fn serve(options: ServerOptions, stop: Stop) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.data).with_context(|| {
        format!(
            "creating the data directory {} (--data)",
            options.data.display()
        )
    })?;
    let tls = options.tls.as_ref().map(|f| f.acceptor()).transpose()?;
    let disk = RealDisk::open(&options.data)?;
    // One member: nobody to call and nobody calls in.
    let net = RealNet::client(
        SERVER_NODE,
        BTreeMap::new(),
        NetLimits::default(),
        Transport::Plain,
    )
    .await?;
    let env = RealEnv::new(SERVER_NODE, disk, net);
    let raft = RaftConfig {
        applied_chain: false,
        ..RaftConfig::new(SERVER_NODE, vec![SERVER_NODE])
    };
    let config = engine::node::NodeConfig {
        sweep: options.sweep,
        repair: options.repair.clone(),
        lifecycle: options.lifecycle,
        ..engine::node::NodeConfig::new(
            raft,
            S3Config {
                owner: options.credentials.access_key.clone(),
                seal_key: engine::s3::keys::seal_key(&options.credentials.secret_key),
                region: options.region.clone(),
                master_key: options.master_key.clone(),
                ..Default::default()
            },
        )
    };
    let started = engine::node::start(env.clone(), config)
        .await
        .map_err(|e| anyhow::anyhow!("the metadata store was refused: {e}"))?;
    // Without its admin socket (a data path too long for a Unix socket, say) the server
    // still serves S3; only `hamster admin --data` cannot reach it.
    if let Err(error) = crate::admin_socket::serve_socket(
        &options.data,
        env.clone(),
        started.raft.clone(),
        started.repair.clone(),
        started.s3.clone(),
    ) {
        tracing::warn!(error = %format!("{error:#}"), "no admin socket; hamster admin --data cannot reach this server");
    }
    let (stop, failure) = stop_or_driver_failure(stop, started.raft.clone());
    let s3 = started.s3.clone();
    let metrics = crate::metrics::start(options.metrics, env, Arc::new(started)).await?;
    let listener = TcpListener::bind(options.s3).await.with_context(|| {
        format!(
            "listening for S3 on {} (is another process there? pick another address with --s3)",
            options.s3
        )
    })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(s3 = %format!("{scheme}://{}", listener.local_addr()?), data = %options.data.display(), "hamster server ready");
    let front = S3Front {
        credentials: options.credentials,
        region: options.region,
        domains: options.domains,
        tls,
        metrics,
    };
    serve_s3(listener, s3, &front, stop).await;
    failure.check()
}

/// Why a node stopped serving, if not because it was asked to.
#[derive(Clone, Default)]
pub(crate) struct Failure(Arc<std::sync::Mutex<Option<String>>>);

impl Failure {
    /// An error (the process exits non-zero, so its supervisor restarts it) when the
    /// Raft driver stopped.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        match self.0.lock().expect("failure").take() {
            Some(why) => Err(anyhow::anyhow!(
                "the Raft driver stopped ({why}); the node exits so that it is restarted"
            )),
            None => Ok(()),
        }
    }
}

/// `stop`, or the Raft driver stopping (recorded in the [`Failure`]).
pub(crate) fn stop_or_driver_failure(
    stop: impl std::future::Future<Output = ()>,
    raft: engine::raft::node::RaftHandle,
) -> (impl std::future::Future<Output = ()>, Failure) {
    let failure = Failure::default();
    let record = failure.clone();
    let watch = async move {
        tokio::select! {
            () = stop => {}
            why = raft.stopped() => {
                tracing::error!(%why, "raft driver stopped; shutting down");
                *record.0.lock().expect("failure") = Some(why);
            }
        }
    };
    (watch, failure)
}
