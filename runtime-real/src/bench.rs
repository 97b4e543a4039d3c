//! `hamster bench`: load against any S3 endpoint. For each object size it runs
//! concurrent PUTs, then GETs of what was written, then 1 MiB ranged GETs (objects
//! larger than the range), each phase for a fixed time, and prints ops/s, MB/s and
//! p50/p99 latency. A sample of reads is checked byte for byte: every object's bytes
//! are a shared random block stamped with the object's id, so any object can be
//! rebuilt and compared without keeping it.
//!
//! With `--metrics URL,...` (the nodes' metrics endpoints) each phase is followed by
//! its breakdown (`crate::breakdown`): per node, the mean time of every measured step.
//!
//! The client is minimal and self-contained: HTTP/1.1 keep-alive connections (hyper),
//! SigV4 header signing with `UNSIGNED-PAYLOAD`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::{Rng, RngCore, SeedableRng};

use crate::sigv4::{Signer, UNSIGNED};

/// One size's settings.
#[derive(Debug, Clone)]
pub struct SizeRun {
    pub size: u64,
    pub workers: usize,
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    pub bucket: String,
    pub runs: Vec<SizeRun>,
    pub seconds: f64,
    pub range_bytes: u64,
    /// Every this many reads is checked byte for byte.
    pub verify_every: u64,
    /// Nodes' metrics endpoints: after each phase, where its time went on each.
    pub metrics: Vec<String>,
    /// Offered load in operations per second over all workers; 0 for as fast as they go.
    pub rate: f64,
}

/// Parses `4KiB`, `1MiB`, `64MiB`, `1GiB`, or a plain byte count.
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = num.parse().with_context(|| format!("size {s:?}"))?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        other => bail!("unknown size unit {other:?}"),
    };
    Ok(n * mult)
}

/// The default workers for a size: many for small objects, few for large.
pub fn default_workers(size: u64) -> usize {
    match size {
        0..=65_536 => 16,
        65_537..=8_388_608 => 8,
        _ => 2,
    }
}

type Body = Full<Bytes>;

struct S3Client {
    http: Client<HttpConnector, Body>,
    endpoint: String,
    host: String,
    signer: Signer,
}

impl S3Client {
    fn new(o: &BenchOptions) -> anyhow::Result<Self> {
        let uri: http::Uri = o.endpoint.parse().context("endpoint")?;
        if uri.scheme_str() != Some("http") {
            bail!(
                "the bench speaks plain http (the endpoint {} is not)",
                o.endpoint
            );
        }
        let host = uri
            .authority()
            .ok_or_else(|| anyhow!("the endpoint has no host"))?
            .to_string();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .build(connector);
        Ok(Self {
            http,
            endpoint: o.endpoint.trim_end_matches('/').to_string(),
            host,
            signer: Signer {
                access_key: o.access_key.clone(),
                secret_key: o.secret_key.clone(),
                region: o.region.clone(),
            },
        })
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        query: &str,
        extra: &[(&str, String)],
        body: Bytes,
    ) -> anyhow::Result<(http::StatusCode, Bytes)> {
        let url = if query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{query}", self.endpoint)
        };
        let mut req = http::Request::builder().method(method).uri(url);
        for (k, v) in self
            .signer
            .sign(method, &self.host, path, query, extra, UNSIGNED)
        {
            req = req.header(k, v);
        }
        if method == "PUT" {
            // hyper leaves it out for an empty body; S3 requires it on every PUT.
            req = req.header(http::header::CONTENT_LENGTH, body.len());
        }
        let resp = self.http.request(req.body(Full::new(body))?).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }
}

/// The bytes of object `id` of a run: the shared block, stamped with the id.
fn object_bytes(block: &Bytes, id: u64) -> Bytes {
    let mut v = block.to_vec();
    let stamp = id.to_le_bytes();
    let n = stamp.len().min(v.len());
    v[..n].copy_from_slice(&stamp[..n]);
    Bytes::from(v)
}

#[derive(Default)]
struct Phase {
    latencies_us: std::sync::Mutex<Vec<u64>>,
    bytes: AtomicU64,
    errors: AtomicU64,
    verified: AtomicU64,
    mismatches: AtomicU64,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, size: u64, workers: usize, phase: &Phase, wall: Duration) -> String {
    let mut l = phase.latencies_us.lock().expect("latencies").clone();
    l.sort_unstable();
    let secs = wall.as_secs_f64();
    format!(
        "{name:<7} {:>9} x{workers:<3} {:>9.1} ops/s {:>9.1} MB/s  p50 {:>8.2} ms  p99 {:>8.2} ms  ops {:>6}  errors {}  verified {} (mismatches {})",
        human(size),
        l.len() as f64 / secs,
        phase.bytes.load(Ordering::Relaxed) as f64 / secs / 1e6,
        percentile(&l, 0.5) as f64 / 1000.0,
        percentile(&l, 0.99) as f64 / 1000.0,
        l.len(),
        phase.errors.load(Ordering::Relaxed),
        phase.verified.load(Ordering::Relaxed),
        phase.mismatches.load(Ordering::Relaxed),
    )
}

fn human(size: u64) -> String {
    match size {
        s if s >= 1 << 30 && s.is_multiple_of(1 << 30) => format!("{}GiB", s >> 30),
        s if s >= 1 << 20 && s.is_multiple_of(1 << 20) => format!("{}MiB", s >> 20),
        s if s >= 1 << 10 && s.is_multiple_of(1 << 10) => format!("{}KiB", s >> 10),
        s => format!("{s}B"),
    }
}

/// What one size's run shares between its workers.
struct Ctx {
    client: Arc<S3Client>,
    bucket: String,
    prefix: String,
    block: Bytes,
    written: std::sync::Mutex<Vec<u64>>,
    next_id: AtomicU64,
    range_bytes: u64,
    verify_every: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Put,
    Get,
    Range,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Put => "PUT",
            Kind::Get => "GET",
            Kind::Range => "RANGE",
        }
    }
}

impl Ctx {
    fn path(&self, id: u64) -> String {
        format!("/{}/{}/{id:016x}", self.bucket, self.prefix)
    }

    fn pick(&self, seq: u64) -> Option<u64> {
        let written = self.written.lock().expect("written");
        if written.is_empty() {
            return None;
        }
        let i = rand::rngs::StdRng::seed_from_u64(seq).gen_range(0..written.len());
        Some(written[i])
    }

    /// One operation; the bytes it moved and, for a checked read, whether it matched.
    async fn op(&self, kind: Kind, worker: usize, seq: u64) -> anyhow::Result<(u64, Option<bool>)> {
        match kind {
            Kind::Put => {
                let id = (worker as u64) << 48 | self.next_id.fetch_add(1, Ordering::Relaxed);
                let body = object_bytes(&self.block, id);
                let len = body.len() as u64;
                let (status, answer) = self
                    .client
                    .send("PUT", &self.path(id), "", &[], body)
                    .await?;
                if !status.is_success() {
                    bail!(
                        "PUT answered {status}: {}",
                        String::from_utf8_lossy(&answer)
                    );
                }
                self.written.lock().expect("written").push(id);
                Ok((len, None))
            }
            Kind::Get | Kind::Range => {
                let id = self.pick(seq).ok_or_else(|| anyhow!("nothing written"))?;
                let size = self.block.len() as u64;
                let span = if kind == Kind::Range {
                    let len = self.range_bytes.min(size);
                    let lo =
                        rand::rngs::StdRng::seed_from_u64(seq ^ 0x5eed).gen_range(0..=size - len);
                    Some((lo, lo + len))
                } else {
                    None
                };
                let extra: Vec<(&str, String)> = span
                    .map(|(lo, hi)| ("range", format!("bytes={lo}-{}", hi - 1)))
                    .into_iter()
                    .collect();
                let (status, body) = self
                    .client
                    .send("GET", &self.path(id), "", &extra, Bytes::new())
                    .await?;
                if !status.is_success() {
                    bail!("GET answered {status}");
                }
                let checked = seq.is_multiple_of(self.verify_every).then(|| {
                    let whole = object_bytes(&self.block, id);
                    let (lo, hi) = span.unwrap_or((0, size));
                    body[..] == whole[lo as usize..hi as usize]
                });
                Ok((body.len() as u64, checked))
            }
        }
    }
}

/// Runs `workers` workers doing `kind` for `seconds`. With a `rate`, each worker starts
/// its operations on a fixed schedule (rate / workers per second, staggered) and a
/// latency counts from the scheduled start, so time spent behind schedule is counted.
async fn phase(
    ctx: &Arc<Ctx>,
    kind: Kind,
    workers: usize,
    seconds: f64,
    rate: f64,
) -> (Phase, Duration) {
    let phase = Arc::new(Phase::default());
    let stop = Arc::new(AtomicBool::new(false));
    let seq = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (ctx, phase, stop, seq) = (ctx.clone(), phase.clone(), stop.clone(), seq.clone());
            let interval = (rate > 0.0).then(|| Duration::from_secs_f64(workers as f64 / rate));
            let mut due = started + interval.unwrap_or_default() * w as u32 / workers as u32;
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let t0 = match interval {
                        Some(interval) => {
                            tokio::time::sleep_until(due.into()).await;
                            due += interval;
                            due - interval
                        }
                        None => Instant::now(),
                    };
                    let n = seq.fetch_add(1, Ordering::Relaxed);
                    match ctx.op(kind, w, n).await {
                        Ok((bytes, checked)) => {
                            let us = t0.elapsed().as_micros() as u64;
                            phase.latencies_us.lock().expect("latencies").push(us);
                            phase.bytes.fetch_add(bytes, Ordering::Relaxed);
                            if let Some(ok) = checked {
                                phase.verified.fetch_add(1, Ordering::Relaxed);
                                if !ok {
                                    phase.mismatches.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        Err(error) => {
                            if phase.errors.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("bench: {} failed: {error:#}", kind.name());
                            }
                            // A failing endpoint is not to be spun on.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let wall = started.elapsed();
    let phase = Arc::try_unwrap(phase).unwrap_or_default();
    (phase, wall)
}

/// Runs the benchmark; prints each phase as it ends and returns the lines. Fails when
/// a checked read did not match what was written.
pub async fn run(o: BenchOptions) -> anyhow::Result<Vec<String>> {
    let client = Arc::new(S3Client::new(&o)?);
    let (status, body) = client
        .send("PUT", &format!("/{}", o.bucket), "", &[], Bytes::new())
        .await?;
    // A bucket someone else owns will do if this key was granted rights on it.
    let exists = ["BucketAlreadyOwnedByYou", "BucketAlreadyExists"]
        .iter()
        .any(|code| String::from_utf8_lossy(&body).contains(code));
    if !status.is_success() && !exists {
        bail!(
            "creating bucket {}: {status} {}",
            o.bucket,
            String::from_utf8_lossy(&body)
        );
    }
    let scraper = crate::breakdown::Scraper::new(&o.metrics);
    let mut lines = Vec::new();
    let mut mismatches = 0;
    for run in &o.runs {
        let mut block = vec![0u8; run.size as usize];
        rand::rngs::OsRng.fill_bytes(&mut block);
        let ctx = Arc::new(Ctx {
            client: client.clone(),
            bucket: o.bucket.clone(),
            prefix: format!("bench-{}", human(run.size)),
            block: Bytes::from(block),
            written: std::sync::Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            range_bytes: o.range_bytes,
            verify_every: o.verify_every.max(1),
        });
        let mut kinds = vec![Kind::Put, Kind::Get];
        if run.size > o.range_bytes {
            kinds.push(Kind::Range);
        }
        for kind in kinds {
            let before = match scraper.is_empty() {
                true => Vec::new(),
                false => scraper.scrape().await?,
            };
            let (p, wall) = phase(&ctx, kind, run.workers, o.seconds, o.rate).await;
            mismatches += p.mismatches.load(Ordering::Relaxed);
            let line = report(kind.name(), run.size, run.workers, &p, wall);
            println!("{line}");
            lines.push(line);
            if !scraper.is_empty() {
                let after = scraper.scrape().await?;
                let requests = p.latencies_us.lock().expect("latencies").len() as u64;
                for line in crate::breakdown::render(&before, &after, requests, &o.metrics) {
                    println!("{line}");
                    lines.push(line);
                }
            }
        }
    }
    if mismatches > 0 {
        bail!("{mismatches} checked reads did not match what was written");
    }
    Ok(lines)
}
