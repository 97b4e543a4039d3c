//! A node's operations endpoint (`--metrics ADDR`, off unless given): Prometheus text at
//! `GET /metrics`, liveness at `GET /health` (200 while the process serves) and
//! readiness at `GET /ready` (200 only while the node knows a Raft leader and reaches at
//! least the write floor of members; 503 with the reason otherwise).
//!
//! Three sources make up `/metrics`: the engine's event counters (`engine::metrics`),
//! the S3 edge's request counters ([`S3Metrics`], counted by the listener), and values
//! read at scrape time from the node's Raft and repair status ([`Scraped`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use engine::node::Started;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

use crate::RealEnv;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub operation: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
}

/// The S3 edge's counters; the listener counts every request, refused ones included.
#[derive(Debug)]
pub struct S3Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<OperationLabels, Histogram>,
    pub received_bytes: Counter,
    pub sent_bytes: Counter,
}

impl Default for S3Metrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(engine::metrics::latency_buckets())
            }),
            received_bytes: Counter::default(),
            sent_bytes: Counter::default(),
        }
    }
}

impl S3Metrics {
    fn register(&self, registry: &mut Registry) {
        let s3 = registry.sub_registry_with_prefix("s3");
        s3.register(
            "requests",
            "S3 requests by operation and HTTP status",
            self.requests.clone(),
        );
        s3.register_with_unit(
            "request_duration",
            "S3 requests from head received to last body byte sent, by operation",
            Unit::Seconds,
            self.duration.clone(),
        );
        s3.register_with_unit(
            "received",
            "S3 request body bytes received",
            Unit::Bytes,
            self.received_bytes.clone(),
        );
        s3.register_with_unit(
            "sent",
            "S3 response body bytes sent",
            Unit::Bytes,
            self.sent_bytes.clone(),
        );
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MarginLabels {
    pub margin: i32,
}

/// Values read from the node's status when scraped.
#[derive(Debug, Default)]
struct Scraped {
    term: Gauge,
    commit_index: Gauge,
    applied_index: Gauge,
    is_leader: Gauge,
    has_leader: Gauge,
    leader_changes: Counter,
    members: Gauge,
    members_reachable: Gauge,
    ready: Gauge,
    uptime: Gauge,
    shards_held: Gauge,
    disk_total: Gauge,
    disk_free: Gauge,
    repair_queue: Family<MarginLabels, Gauge>,
    scrub_progress: Gauge<f64, AtomicU64>,
    scrub_checked_bytes: Gauge,
    scrub_passes: Counter,
    rebuilt_shards: Counter,
    rebuilt_bytes: Counter,
    repair_failures: Counter,
    lost_blobs: Gauge,
}

/// Sets a counter that mirrors a monotonic value kept elsewhere.
fn mirror(counter: &Counter, value: u64) {
    counter.inc_by(value.saturating_sub(counter.get()));
}

fn gauge(g: &Gauge, value: u64) {
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
}

impl Scraped {
    fn register(&self, registry: &mut Registry) {
        let raft = registry.sub_registry_with_prefix("raft");
        raft.register("term", "Current Raft term", self.term.clone());
        raft.register(
            "commit_index",
            "Raft commit index",
            self.commit_index.clone(),
        );
        raft.register(
            "applied_index",
            "Raft index applied to this node's state machine",
            self.applied_index.clone(),
        );
        raft.register("is_leader", "1 on the Raft leader", self.is_leader.clone());
        raft.register(
            "has_leader",
            "1 while a leader is known",
            self.has_leader.clone(),
        );
        raft.register(
            "leader_changes",
            "Leaders seen (a new leader or a new term) since start-up",
            self.leader_changes.clone(),
        );
        let node = registry.sub_registry_with_prefix("node");
        node.register("members", "Voting members", self.members.clone());
        node.register(
            "members_reachable",
            "Members that answered the last liveness ping (this node included)",
            self.members_reachable.clone(),
        );
        node.register("ready", "1 while /ready answers 200", self.ready.clone());
        node.register_with_unit(
            "uptime",
            "Time since start-up",
            Unit::Seconds,
            self.uptime.clone(),
        );
        node.register(
            "shards_held",
            "Shard files on this node",
            self.shards_held.clone(),
        );
        node.register_with_unit(
            "disk_total",
            "Size of the data directory's file system",
            Unit::Bytes,
            self.disk_total.clone(),
        );
        node.register_with_unit(
            "disk_free",
            "Free bytes on the data directory's file system",
            Unit::Bytes,
            self.disk_free.clone(),
        );
        let repair = registry.sub_registry_with_prefix("repair");
        repair.register(
            "queue",
            "Queued repair tasks by margin (good shards minus k; lower is riskier)",
            self.repair_queue.clone(),
        );
        repair.register(
            "scrub_progress_ratio",
            "Share of the current deep-scrub pass done",
            self.scrub_progress.clone(),
        );
        repair.register_with_unit(
            "scrub_checked",
            "Bytes the current deep-scrub pass has checked",
            Unit::Bytes,
            self.scrub_checked_bytes.clone(),
        );
        repair.register(
            "scrub_passes",
            "Full deep-scrub passes completed",
            self.scrub_passes.clone(),
        );
        repair.register(
            "rebuilt_shards",
            "Shards rebuilt",
            self.rebuilt_shards.clone(),
        );
        repair.register_with_unit(
            "rebuilt",
            "Shard bytes rebuilt",
            Unit::Bytes,
            self.rebuilt_bytes.clone(),
        );
        repair.register(
            "failures",
            "Rebuilds that failed",
            self.repair_failures.clone(),
        );
        repair.register(
            "lost_objects",
            "Blobs with fewer than k good shards (as of the last presence pass)",
            self.lost_blobs.clone(),
        );
    }

    async fn refresh(&self, env: &RealEnv, node: &Started<RealEnv>) {
        let status = engine::node::client::status(env, &node.raft, Some(&node.repair)).await;
        let raft = node.raft.status();
        let repair = node.repair.status();
        gauge(&self.term, raft.term);
        gauge(&self.commit_index, raft.commit);
        gauge(&self.applied_index, raft.applied);
        gauge(&self.is_leader, u64::from(raft.leader == raft.id));
        gauge(&self.has_leader, u64::from(raft.leader != 0));
        mirror(&self.leader_changes, raft.leader_changes);
        gauge(&self.members, raft.voters.len() as u64);
        gauge(&self.members_reachable, status.members_reachable);
        gauge(&self.ready, u64::from(status.ready));
        gauge(&self.uptime, status.uptime_s);
        gauge(&self.shards_held, status.shards_held);
        if let Some(disk) = status.disk {
            gauge(&self.disk_total, disk.total_bytes);
            gauge(&self.disk_free, disk.free_bytes);
        }
        self.repair_queue.clear();
        for (margin, count) in &repair.queue_by_margin {
            gauge(
                &self
                    .repair_queue
                    .get_or_create(&MarginLabels { margin: *margin }),
                *count,
            );
        }
        let scrub = &repair.scrub;
        let total = scrub.shards_checked + repair.scrub_remaining_shards;
        let progress = match (scrub.active, total) {
            (false, _) | (true, 0) => 0.0,
            (true, t) => scrub.shards_checked as f64 / t as f64,
        };
        self.scrub_progress.set(progress);
        gauge(&self.scrub_checked_bytes, scrub.bytes_checked);
        mirror(&self.scrub_passes, scrub.passes);
        mirror(&self.rebuilt_shards, repair.rebuilt_shards);
        mirror(&self.rebuilt_bytes, repair.rebuilt_bytes);
        mirror(&self.repair_failures, repair.failures);
        gauge(&self.lost_blobs, repair.lost_blobs);
    }
}

/// Everything `/metrics` shows for one node.
pub struct NodeMetrics {
    registry: Registry,
    scraped: Scraped,
    pub s3: Arc<S3Metrics>,
}

impl NodeMetrics {
    /// The registry over `node`'s engine counters, the S3 counters and the scraped values.
    pub fn new(node: &Started<RealEnv>) -> Self {
        let mut registry = Registry::with_prefix("hamster");
        node.raft.metrics().register(&mut registry);
        let s3 = Arc::new(S3Metrics::default());
        s3.register(&mut registry);
        let scraped = Scraped::default();
        scraped.register(&mut registry);
        Self {
            registry,
            scraped,
            s3,
        }
    }

    /// The Prometheus text exposition, values as of now.
    pub async fn scrape(&self, env: &RealEnv, node: &Started<RealEnv>) -> String {
        self.scraped.refresh(env, node).await;
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String does not fail");
        text
    }
}

/// What the operations endpoint reads from.
pub struct Ops {
    pub env: RealEnv,
    pub node: Arc<Started<RealEnv>>,
    pub metrics: Arc<NodeMetrics>,
}

fn reply(status: u16, content_type: &str, body: String) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

async fn answer(
    ops: &Ops,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return reply(405, TEXT, "only GET and HEAD are served here\n".into());
    }
    match req.uri().path() {
        "/metrics" => reply(
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ops.metrics.scrape(&ops.env, &ops.node).await,
        ),
        "/health" => reply(200, TEXT, "ok\n".into()),
        "/ready" => {
            let s = engine::node::client::status(&ops.env, &ops.node.raft, Some(&ops.node.repair))
                .await;
            if s.ready {
                reply(
                    200,
                    TEXT,
                    format!(
                        "ready: leader {}, {} of {} members reachable\n",
                        s.leader,
                        s.members_reachable,
                        s.voters.len()
                    ),
                )
            } else if s.leader == 0 {
                reply(503, TEXT, "not ready: no Raft leader is known; check that a majority of members run and reach each other\n".into())
            } else {
                reply(
                    503,
                    TEXT,
                    format!(
                        "not ready: only {} of {} members reachable, below the write floor; start the missing members or check the network\n",
                        s.members_reachable,
                        s.voters.len()
                    ),
                )
            }
        }
        _ => reply(
            404,
            TEXT,
            "not found: try /metrics, /health or /ready\n".into(),
        ),
    }
}

/// A scraper has this long to send a request head.
const HEAD_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Binds `addr` for the operations endpoint (an error names the address).
async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening for metrics on {addr} (is another process there? pick another address with --metrics)"))
}

/// Serves the operations endpoint on `listener` for as long as the task lives.
async fn serve(listener: tokio::net::TcpListener, ops: Arc<Ops>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(error) => {
                tracing::warn!(%error, "metrics endpoint: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let ops = ops.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let ops = ops.clone();
                async move { Ok::<_, Infallible>(answer(&ops, req).await) }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEAD_READ_TIMEOUT);
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// Builds the node's metrics and, when `addr` is given, serves the operations endpoint
/// there (for as long as the process runs). Returns the S3 counters for the listener.
pub async fn start(
    addr: Option<SocketAddr>,
    env: RealEnv,
    node: Arc<Started<RealEnv>>,
) -> anyhow::Result<Arc<S3Metrics>> {
    let metrics = Arc::new(NodeMetrics::new(&node));
    let s3 = metrics.s3.clone();
    if let Some(addr) = addr {
        let listener = bind(addr).await?;
        tracing::info!(metrics = %listener.local_addr()?, "metrics, /health and /ready served");
        tokio::spawn(serve(listener, Arc::new(Ops { env, node, metrics })));
    }
    Ok(s3)
}
