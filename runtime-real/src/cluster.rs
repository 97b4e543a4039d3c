//! Cluster commands: `hamster cluster init`, `hamster cluster run`, `hamster admin status`.
//!
//! `init` writes a directory holding the cluster CA, a certificate, key and TOML config
//! per node, and an admin certificate and config for the tools. Paths inside a config
//! are relative to the config file, so a node's files can be copied to its host as-is.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use engine::env::{Net, NodeId};
use engine::node::{ClientRequest, ClientResponse, StatusWire};
use engine::raft::node::RaftConfig;
use engine::wire::{self, Tag};
use serde::{Deserialize, Serialize};

use crate::tls::{ADMIN_ID, Authority, Tls};
use crate::{NetLimits, RealDisk, RealEnv, RealNet, Transport};

/// One member as the others reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAddr {
    pub id: NodeId,
    /// `host:port` that peers dial.
    pub rpc: String,
}

/// What every participant (node or tool) needs: the CA, its own certificate and key,
/// and the members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub members: Vec<MemberAddr>,
}

/// A node's config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    pub node_id: NodeId,
    /// Address to listen on for cluster RPC; by default this node's `rpc` in `members`.
    #[serde(default)]
    pub listen: Option<String>,
    pub data_dir: PathBuf,
    /// Voters the cluster was created with (every member listed at init).
    pub initial_voters: Vec<NodeId>,
    /// The S3 root keys every node accepts (written by init; HAMSTER_ACCESS_KEY and
    /// HAMSTER_SECRET_KEY override them).
    #[serde(default)]
    pub s3_credentials: Option<PathBuf>,
    #[serde(flatten)]
    pub credentials: Credentials,
}

/// The admin tools' config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminConfig {
    #[serde(flatten)]
    pub credentials: Credentials,
}

fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .ok_or_else(|| anyhow!("{addr} resolves to no address"))
}

impl Credentials {
    /// Makes the paths absolute against `base` (the config file's directory).
    fn rebase(&mut self, base: &Path) {
        for p in [&mut self.ca, &mut self.cert, &mut self.key] {
            *p = base.join(&*p);
        }
    }

    pub fn tls(&self) -> anyhow::Result<Tls> {
        Tls::load(&self.ca, &self.cert, &self.key)
    }

    pub fn peers(&self) -> anyhow::Result<BTreeMap<NodeId, SocketAddr>> {
        self.members
            .iter()
            .map(|m| Ok((m.id, resolve(&m.rpc)?)))
            .collect()
    }
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn base_dir(path: &Path) -> PathBuf {
    path.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

impl NodeConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let mut config: Self = read_toml(path)?;
        let base = base_dir(path);
        config.credentials.rebase(&base);
        config.data_dir = base.join(&config.data_dir);
        config.s3_credentials = config.s3_credentials.map(|p| base.join(p));
        if !config
            .credentials
            .members
            .iter()
            .any(|m| m.id == config.node_id)
        {
            bail!(
                "{}: node {} is not among the members",
                path.display(),
                config.node_id
            );
        }
        if config.node_id == ADMIN_ID {
            bail!("{}: node id 0 is reserved for tools", path.display());
        }
        Ok(config)
    }

    fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        match &self.listen {
            Some(l) => resolve(l),
            None => {
                let me = self
                    .credentials
                    .members
                    .iter()
                    .find(|m| m.id == self.node_id);
                resolve(&me.expect("checked at load").rpc)
            }
        }
    }
}

impl AdminConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let mut config: Self = read_toml(path)?;
        config.credentials.rebase(&base_dir(path));
        Ok(config)
    }
}

/// Options of `hamster cluster init`.
pub struct InitOptions {
    pub nodes: usize,
    pub out: PathBuf,
    /// One host per node; 127.0.0.1 for all when empty.
    pub hosts: Vec<String>,
    /// First RPC port (node i listens on base + i - 1); 0 picks free ports now.
    pub base_port: u16,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn write_public(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// `hamster cluster init`: returns the paths of the node configs, then the admin config.
pub fn init(opts: &InitOptions) -> anyhow::Result<(Vec<PathBuf>, PathBuf)> {
    if opts.nodes == 0 || opts.nodes > 1000 {
        bail!("--nodes must be between 1 and 1000");
    }
    if !opts.hosts.is_empty() && opts.hosts.len() != opts.nodes {
        bail!(
            "--hosts lists {} hosts for {} nodes",
            opts.hosts.len(),
            opts.nodes
        );
    }
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    if opts.out.join("ca.pem").exists() {
        bail!(
            "{} already holds a cluster (ca.pem); refusing to overwrite it",
            opts.out.display()
        );
    }
    let mut members = Vec::new();
    for i in 1..=opts.nodes {
        let host = opts
            .hosts
            .get(i - 1)
            .cloned()
            .unwrap_or_else(|| "127.0.0.1".into());
        let port = if opts.base_port == 0 {
            free_port()?
        } else {
            opts.base_port
                .checked_add((i - 1) as u16)
                .ok_or_else(|| anyhow!("ports run past 65535"))?
        };
        let rpc = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}") // a bare IPv6 address
        } else {
            format!("{host}:{port}")
        };
        members.push(MemberAddr {
            id: i as NodeId,
            rpc,
        });
    }
    let ca = Authority::new("hamster cluster CA")?;
    write_public(&opts.out.join("ca.pem"), &ca.cert_pem())?;
    crate::keys::write_private(&opts.out.join("ca.key"), &ca.key_pem())?;
    let credentials = |name: &str| Credentials {
        ca: "ca.pem".into(),
        cert: format!("{name}.pem").into(),
        key: format!("{name}.key").into(),
        members: members.clone(),
    };
    let voters: Vec<NodeId> = members.iter().map(|m| m.id).collect();
    // One S3 key pair for the whole cluster, so that any node accepts the same client.
    crate::keys::credentials(&opts.out, None, None)?;
    let mut configs = Vec::new();
    for m in &members {
        let name = format!("node{}", m.id);
        let issued = ca.issue(m.id)?;
        write_public(&opts.out.join(format!("{name}.pem")), &issued.cert_pem)?;
        crate::keys::write_private(&opts.out.join(format!("{name}.key")), &issued.key_pem)?;
        let config = NodeConfig {
            node_id: m.id,
            listen: None,
            data_dir: format!("{name}-data").into(),
            initial_voters: voters.clone(),
            s3_credentials: Some("credentials.toml".into()),
            credentials: credentials(&name),
        };
        let path = opts.out.join(format!("{name}.toml"));
        write_public(&path, &toml::to_string_pretty(&config)?)?;
        configs.push(path);
    }
    let issued = ca.issue(ADMIN_ID)?;
    write_public(&opts.out.join("admin.pem"), &issued.cert_pem)?;
    crate::keys::write_private(&opts.out.join("admin.key"), &issued.key_pem)?;
    let admin = AdminConfig {
        credentials: credentials("admin"),
    };
    let admin_path = opts.out.join("admin.toml");
    write_public(&admin_path, &toml::to_string_pretty(&admin)?)?;
    Ok((configs, admin_path))
}

/// The S3 side of `hamster cluster run --s3`.
pub struct S3Listen {
    pub addr: SocketAddr,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub region: String,
    pub domains: Vec<String>,
    pub tls: Option<crate::listener::TlsFiles>,
    /// SSE-S3's master key (`--sse-master-key-file`); the same on every node.
    pub master_key: Option<engine::s3::sse::Key>,
}

/// The settings of a node's background tasks: repair's budgets, the lifecycle's day.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    pub repair: engine::repair::RepairConfig,
    pub lifecycle: engine::lifecycle::LifecycleConfig,
}

/// `hamster cluster run`: runs a node (and its S3 endpoint when asked) until its Raft
/// state is refused (an error) or `stop` resolves.
#[inline(never)]
pub fn run(
    config: NodeConfig,
    s3: Option<S3Listen>,
    tasks: Tasks,
    metrics: Option<SocketAddr>,
    stop: crate::server::Stop,
) -> crate::server::Boxed<anyhow::Result<()>> {
    Box::pin(run_node(config, s3, tasks, metrics, stop))
}

async fn run_node(
    config: NodeConfig,
    s3: Option<S3Listen>,
    tasks: Tasks,
    metrics: Option<SocketAddr>,
    stop: crate::server::Stop,
) -> anyhow::Result<()> {
    let s3_tls = match &s3 {
        Some(S3Listen {
            tls: Some(files), ..
        }) => Some(files.acceptor()?),
        _ => None,
    };
    let tls = Arc::new(config.credentials.tls()?);
    let peers = config.credentials.peers()?;
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "creating the data directory {} (data_dir in the node config)",
            config.data_dir.display()
        )
    })?;
    let disk = RealDisk::open(&config.data_dir)?;
    let listen = config.listen_addr()?;
    let net = RealNet::bind_with(
        config.node_id,
        listen,
        peers,
        NetLimits::default(),
        Transport::Tls(tls),
    )
    .await
    .with_context(|| format!("listening on {listen}"))?;
    tracing::info!(node = config.node_id, %listen, data = %config.data_dir.display(), "node starting");
    let env = RealEnv::new(config.node_id, disk, net);
    let raft = RaftConfig {
        applied_chain: false,
        ..RaftConfig::new(config.node_id, config.initial_voters.clone())
    };
    let id = config.node_id;
    let keys = match &s3 {
        Some(listen) => Some(cluster_keys(&config, listen)?),
        None => None,
    };
    let mut node = engine::node::NodeConfig::new(
        raft,
        engine::s3::S3Config {
            owner: keys
                .as_ref()
                .map_or_else(|| "hamster".into(), |k| k.access_key.clone()),
            seal_key: keys.as_ref().map_or_else(
                || engine::s3::keys::seal_key("hamster"),
                |k| engine::s3::keys::seal_key(&k.secret_key),
            ),
            region: s3
                .as_ref()
                .map_or_else(|| "us-east-1".into(), |l| l.region.clone()),
            master_key: s3.as_ref().and_then(|l| l.master_key.clone()),
            ..Default::default()
        },
    );
    node.repair = tasks.repair;
    node.lifecycle = tasks.lifecycle;
    let started = engine::node::start(env.clone(), node)
        .await
        .map_err(|e| anyhow!("node {id}: its raft state was refused: {e}"))?;
    let (stop, failure) = crate::server::stop_or_driver_failure(stop, started.raft.clone());
    let s3_engine = started.s3.clone();
    let s3_metrics = crate::metrics::start(metrics, env, Arc::new(started)).await?;
    tracing::info!(node = id, "raft started; serving");
    match (s3, keys) {
        (Some(listen), Some(keys)) => {
            let listener = tokio::net::TcpListener::bind(listen.addr)
                .await
                .with_context(|| format!("listening for S3 on {} (is another process there? pick another address with --s3)", listen.addr))?;
            let scheme = if s3_tls.is_some() { "https" } else { "http" };
            tracing::info!(node = id, s3 = %format!("{scheme}://{}", listener.local_addr()?), "S3 endpoint ready");
            let front = crate::listener::S3Front {
                credentials: keys,
                region: listen.region,
                domains: listen.domains,
                tls: s3_tls,
                metrics: s3_metrics,
            };
            crate::listener::serve_s3(listener, s3_engine, &front, stop).await;
        }
        _ => stop.await,
    }
    failure.check()
}

/// The S3 keys of a cluster node: the flags or environment, else the file `cluster
/// init` wrote.
fn cluster_keys(
    config: &NodeConfig,
    listen: &S3Listen,
) -> anyhow::Result<crate::keys::Credentials> {
    match (
        &listen.access_key,
        &listen.secret_key,
        &config.s3_credentials,
    ) {
        (Some(_), Some(_), _) | (None, None, None) => {
            let dir = config.data_dir.clone();
            Ok(crate::keys::credentials(
                &dir,
                listen.access_key.clone(),
                listen.secret_key.clone(),
            )?
            .0)
        }
        (None, None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
        }
        _ => bail!("give both the access key and the secret key, or neither"),
    }
}

/// A tool's connection to the cluster, as the admin identity.
pub struct AdminClient {
    net: RealNet,
    members: Vec<MemberAddr>,
}

/// Per-call timeout of admin requests.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(3);

impl AdminClient {
    pub async fn connect(config: &AdminConfig) -> anyhow::Result<Self> {
        let tls = Arc::new(config.credentials.tls()?);
        let net = RealNet::client(
            ADMIN_ID,
            config.credentials.peers()?,
            NetLimits::default(),
            Transport::Tls(tls),
        )
        .await?;
        Ok(Self {
            net,
            members: config.credentials.members.clone(),
        })
    }

    pub fn members(&self) -> &[MemberAddr] {
        &self.members
    }

    /// One client request to node `to`.
    pub async fn request(
        &self,
        to: NodeId,
        request: &ClientRequest,
        timeout: Duration,
    ) -> anyhow::Result<ClientResponse> {
        let bytes = wire::request(Tag::Client, request);
        let answer = self
            .net
            .call(to, bytes, timeout)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        wire::decode(&answer).ok_or_else(|| anyhow!("answer does not decode"))
    }

    pub async fn status(&self, to: NodeId) -> anyhow::Result<StatusWire> {
        match self
            .request(to, &ClientRequest::Status, ADMIN_TIMEOUT)
            .await?
        {
            ClientResponse::Status(s) => Ok(s),
            other => Err(anyhow!("unexpected answer {other:?}")),
        }
    }

    /// Every member's status (or why it could not be had), in member order.
    pub async fn statuses(&self) -> Vec<(MemberAddr, anyhow::Result<StatusWire>)> {
        let asks = self.members.iter().map(|m| async move {
            let status = self.status(m.id).await;
            (m.clone(), status)
        });
        futures::future::join_all(asks).await
    }
}
