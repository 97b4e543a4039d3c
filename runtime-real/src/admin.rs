//! Admin commands beyond `admin status`: `hamster admin repair status`, `admin repair
//! start` and `admin lost`, on a cluster (through its admin certificate, as `admin
//! status` does) or on `hamster server` (through its admin socket, `admin_socket`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use engine::node::{ClientRequest, ClientResponse, LOST_PAGE_MAX, LostEntry, StatusWire};
use engine::repair::RepairStatus;
use engine::s3::api::{KeyRequest, KeyResponse};
use tokio::net::UnixStream;

use crate::admin_socket::{ADMIN_SOCKET, read_frame, write_frame};
use crate::cluster::{ADMIN_TIMEOUT, AdminClient, AdminConfig};

/// Where the admin commands go.
pub enum Target {
    Cluster(AdminClient),
    /// A server's admin socket.
    Server(PathBuf),
}

impl Target {
    /// `--config admin.toml` (a cluster) or `--data DIR` (a `hamster server`).
    pub async fn open(config: Option<&Path>, data: Option<&Path>) -> anyhow::Result<Self> {
        match (config, data) {
            (Some(config), None) => {
                let config = AdminConfig::load(config)?;
                Ok(Target::Cluster(AdminClient::connect(&config).await?))
            }
            (None, Some(data)) => Ok(Target::Server(data.join(ADMIN_SOCKET))),
            _ => bail!(
                "give --config admin.toml (a cluster) or --data DIR (a hamster server), one of them"
            ),
        }
    }

    /// The member ids (a server is node 1).
    fn nodes(&self) -> Vec<u64> {
        match self {
            Target::Cluster(c) => c.members().iter().map(|m| m.id).collect(),
            Target::Server(_) => vec![1],
        }
    }

    async fn ask(&self, node: u64, request: &ClientRequest) -> anyhow::Result<ClientResponse> {
        match self {
            Target::Cluster(c) => c.request(node, request, ADMIN_TIMEOUT).await,
            Target::Server(path) => {
                let talk = async {
                    let mut stream = UnixStream::connect(path).await.with_context(|| {
                        format!(
                            "connecting to {} (is hamster server running with this --data?)",
                            path.display()
                        )
                    })?;
                    write_frame(&mut stream, &engine::wire::encode(request)).await?;
                    let answer = read_frame(&mut stream).await?;
                    engine::wire::decode(&answer)
                        .ok_or_else(|| anyhow!("the answer does not decode"))
                };
                tokio::time::timeout(ADMIN_TIMEOUT * 4, talk)
                    .await
                    .map_err(|_| anyhow!("no answer from {}", path.display()))?
            }
        }
    }

    /// Every node's address and status (or why it could not be had), in member order.
    pub async fn statuses(&self) -> Vec<(u64, String, anyhow::Result<StatusWire>)> {
        let members: Vec<(u64, String)> = match self {
            Target::Cluster(c) => c.members().iter().map(|m| (m.id, m.rpc.clone())).collect(),
            Target::Server(path) => vec![(1, path.display().to_string())],
        };
        let asks = members.into_iter().map(|(node, addr)| async move {
            let status = match self.ask(node, &ClientRequest::Status).await {
                Ok(ClientResponse::Status(s)) => Ok(s),
                Ok(other) => Err(anyhow!("unexpected answer {other:?}")),
                Err(e) => Err(e),
            };
            (node, addr, status)
        });
        futures::future::join_all(asks).await
    }

    /// Every node's repair status (or why it could not be had).
    pub async fn repair_statuses(&self) -> Vec<(u64, anyhow::Result<RepairStatus>)> {
        let asks = self.nodes().into_iter().map(|node| async move {
            let status = match self.ask(node, &ClientRequest::RepairStatus).await {
                Ok(ClientResponse::Repair(s)) => Ok(*s),
                Ok(ClientResponse::Failed(why)) => Err(anyhow!(why)),
                Ok(other) => Err(anyhow!("unexpected answer {other:?}")),
                Err(e) => Err(e),
            };
            (node, status)
        });
        futures::future::join_all(asks).await
    }

    /// Starts a full scrub pass on every node; the nodes that took it.
    pub async fn repair_start(&self) -> Vec<(u64, anyhow::Result<()>)> {
        let asks = self.nodes().into_iter().map(|node| async move {
            let done = match self.ask(node, &ClientRequest::RepairStart).await {
                Ok(ClientResponse::Applied(Ok(_))) => Ok(()),
                Ok(ClientResponse::Failed(why)) => Err(anyhow!(why)),
                Ok(other) => Err(anyhow!("unexpected answer {other:?}")),
                Err(e) => Err(e),
            };
            (node, done)
        });
        futures::future::join_all(asks).await
    }

    /// A key admin request, answered by the first node that can (each forwards its
    /// commands to the leader).
    pub async fn keys(&self, request: &KeyRequest) -> anyhow::Result<KeyResponse> {
        let mut last = anyhow!("no member answered");
        for node in self.nodes() {
            match self.ask(node, &ClientRequest::Keys(request.clone())).await {
                Ok(ClientResponse::Keys(Ok(answer))) => return Ok(answer),
                Ok(ClientResponse::Keys(Err((code, message)))) => {
                    let retry = code == "SlowDown" || code == "ServiceUnavailable";
                    last = anyhow!("{code}: {message}");
                    if !retry {
                        return Err(last);
                    }
                }
                Ok(ClientResponse::Failed(why)) => last = anyhow!("node {node}: {why}"),
                Ok(other) => last = anyhow!("node {node}: unexpected answer {other:?}"),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Every lost blob, from the first node that answers.
    pub async fn lost(&self) -> anyhow::Result<Vec<LostEntry>> {
        let mut last = anyhow!("no member answered");
        for node in self.nodes() {
            match self.lost_from(node).await {
                Ok(all) => return Ok(all),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn lost_from(&self, node: u64) -> anyhow::Result<Vec<LostEntry>> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let request = ClientRequest::Lost {
                after,
                limit: LOST_PAGE_MAX,
            };
            match self.ask(node, &request).await? {
                ClientResponse::Lost(page, next) => {
                    all.extend(page);
                    match next {
                        Some(next) => after = Some(next),
                        None => return Ok(all),
                    }
                }
                ClientResponse::Failed(why) => bail!("node {node}: {why}"),
                other => bail!("node {node}: unexpected answer {other:?}"),
            }
        }
    }
}

/// Bytes as a person reads them.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub(crate) fn ago(ms: u64) -> String {
    if ms == 0 {
        return "never".into();
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!(
        "{} ago",
        human_duration(Duration::from_millis(now.saturating_sub(ms)))
    )
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// `hamster admin status` as text: the leader and membership, then a table of nodes
/// (as `garage status` shows them).
pub fn render_status(statuses: &[(u64, String, anyhow::Result<StatusWire>)]) -> String {
    let up: Vec<&StatusWire> = statuses
        .iter()
        .filter_map(|(_, _, s)| s.as_ref().ok())
        .collect();
    let top_term = up.iter().map(|s| s.term).max().unwrap_or(0);
    // The leader is the one that says so in the highest term seen.
    let leader = up
        .iter()
        .find(|s| s.term == top_term && s.role == "Leader")
        .map(|s| s.id);
    let view = leader
        .and_then(|l| up.iter().find(|s| s.id == l))
        .or_else(|| up.iter().max_by_key(|s| (s.term, s.commit)));
    let mut out = String::new();
    let w = &mut out;
    match leader {
        Some(l) => writeln!(w, "leader: node {l}, term {top_term}"),
        None => writeln!(w, "leader: none known (highest term seen {top_term})"),
    }
    .expect("write to string");
    if let Some(v) = view {
        let list = |ids: &[u64]| match ids {
            [] => "-".to_string(),
            ids => ids.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
        };
        writeln!(
            w,
            "voters: {}  learners: {}",
            list(&v.voters),
            list(&v.learners)
        )
        .expect("write to string");
    }
    let row = |w: &mut String, cells: [&str; 12]| {
        writeln!(
            w,
            "{:<5} {:<22} {:<5} {:<9} {:>5} {:>8} {:>8} {:>8} {:>10} {:>17} {:<8} {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            cells[6],
            cells[7],
            cells[8],
            cells[9],
            cells[10],
            cells[11]
        )
        .expect("write to string");
    };
    row(
        w,
        [
            "NODE", "ADDRESS", "UP", "ROLE", "TERM", "COMMIT", "APPLIED", "SHARDS", "USED", "FREE",
            "VERSION", "UPTIME",
        ],
    );
    for (node, addr, status) in statuses {
        let s = match status {
            Ok(s) => s,
            Err(e) => {
                writeln!(w, "{node:<5} {addr:<22} {:<5} {e:#}", "no").expect("write to string");
                continue;
            }
        };
        let (used, free) = match s.disk {
            Some(d) if d.total_bytes > 0 => {
                let used = d.total_bytes.saturating_sub(d.free_bytes);
                let pct = d.free_bytes as f64 * 100.0 / d.total_bytes as f64;
                (
                    human_bytes(used),
                    format!("{} ({pct:.0}%)", human_bytes(d.free_bytes)),
                )
            }
            _ => ("?".into(), "?".into()),
        };
        row(
            w,
            [
                &node.to_string(),
                addr,
                "yes",
                &s.role,
                &s.term.to_string(),
                &s.commit.to_string(),
                &s.applied.to_string(),
                &s.shards_held.to_string(),
                &used,
                &free,
                &s.version,
                &human_duration(Duration::from_secs(s.uptime_s)),
            ],
        );
    }
    out
}

/// `hamster admin repair status` as text: one block per node.
pub fn render_repair(statuses: &[(u64, anyhow::Result<RepairStatus>)]) -> String {
    let mut out = String::new();
    for (node, status) in statuses {
        let s = match status {
            Ok(s) => s,
            Err(e) => {
                writeln!(out, "node {node}: unreachable: {e:#}").expect("string");
                continue;
            }
        };
        let c = &s.scrub;
        let scrub = if c.active {
            let total = c.shards_checked + s.scrub_remaining_shards;
            let pct = if total == 0 {
                100.0
            } else {
                c.shards_checked as f64 * 100.0 / total as f64
            };
            let eta = match (s.scrub_rate_bytes_per_s, c.shards_checked) {
                (0, _) | (_, 0) => "unknown".to_string(),
                (rate, n) => {
                    let left = s.scrub_remaining_shards * (c.bytes_checked / n);
                    human_duration(Duration::from_secs(left / rate))
                }
            };
            format!(
                "pass {pct:.1}% done: {} shards, {} checked, {}/s, ETA {eta}",
                c.shards_checked,
                human_bytes(c.bytes_checked),
                human_bytes(s.scrub_rate_bytes_per_s)
            )
        } else {
            format!(
                "idle (the last pass checked {} shards, {})",
                c.shards_checked,
                human_bytes(c.bytes_checked)
            )
        };
        writeln!(out, "node {node}: scrub {scrub}").expect("string");
        writeln!(
            out,
            "  last full pass: {} ({} passes); bad shards found this pass: {}",
            ago(c.last_full_pass_ms),
            c.passes,
            c.bad_found
        )
        .expect("string");
        let queue = if s.queue_by_margin.is_empty() {
            "empty".to_string()
        } else {
            s.queue_by_margin
                .iter()
                .map(|(m, n)| format!("margin {m}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(out, "  queue: {queue}").expect("string");
        writeln!(
            out,
            "  rebuilt: {} shards, {} ({} onto spares); unsealed found whole: {} (damaged: {}); failures: {}; deferred: {}; marked lost: {}; cleared: {}",
            s.rebuilt_shards,
            human_bytes(s.rebuilt_bytes),
            s.moved_shards,
            s.adopted_shards,
            s.unadoptable_shards,
            s.failures,
            s.deferred,
            s.marked_lost,
            s.cleared_lost
        )
        .expect("string");
    }
    out
}

/// `hamster admin lost` as a table.
pub fn render_lost(entries: &[LostEntry]) -> String {
    let mut out = String::new();
    if entries.is_empty() {
        writeln!(out, "no lost objects").expect("string");
        return out;
    }
    writeln!(
        out,
        "{:<24}{:<40}{:>12}{:>8}  SINCE",
        "BUCKET", "KEY", "SIZE", "GOOD"
    )
    .expect("string");
    for e in entries {
        writeln!(
            out,
            "{:<24}{:<40}{:>12}{:>8}  {}",
            e.bucket,
            e.key,
            e.size,
            format!("{}/{}", e.good, e.needed),
            ago(e.since_ms)
        )
        .expect("string");
    }
    out
}
