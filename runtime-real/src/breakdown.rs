//! Where a phase's time went: `hamster bench --metrics URL,...` scrapes each node's
//! `/metrics` before and after every phase and prints, per node, the mean time and the
//! count per request of every measured step (the deltas of the nodes' histograms:
//! S3 requests at the edge and in the engine, ReadIndex, blob writes, shard seals and
//! slice reads, Raft proposals).

use std::collections::BTreeMap;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The histograms whose steps are shown, and the short name each gets.
const HISTOGRAMS: [(&str, &str); 4] = [
    ("hamster_s3_request_duration_seconds", "s3"),
    ("hamster_engine_request_duration_seconds", "engine"),
    ("hamster_stage_duration_seconds", ""),
    ("hamster_raft_proposal_duration_seconds", "proposal"),
];

/// One scrape: `name{labels}` to value.
pub type Samples = BTreeMap<String, f64>;

/// The nodes' metrics endpoints.
pub struct Scraper {
    http: Client<HttpConnector, Full<Bytes>>,
    urls: Vec<String>,
}

impl Scraper {
    /// `urls`: `http://host:port` of each node's `--metrics` (with or without `/metrics`).
    pub fn new(urls: &[String]) -> Self {
        let urls = urls
            .iter()
            .map(|u| {
                let u = u.trim_end_matches('/');
                if u.ends_with("/metrics") {
                    u.to_string()
                } else {
                    format!("{u}/metrics")
                }
            })
            .collect();
        Self {
            http: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            urls,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// Every node's samples, in the order of the URLs.
    pub async fn scrape(&self) -> anyhow::Result<Vec<Samples>> {
        let mut out = Vec::with_capacity(self.urls.len());
        for url in &self.urls {
            let req = http::Request::get(url).body(Full::new(Bytes::new()))?;
            let resp = self
                .http
                .request(req)
                .await
                .with_context(|| format!("scraping {url}"))?;
            let text = resp.into_body().collect().await?.to_bytes();
            out.push(parse(&String::from_utf8_lossy(&text)));
        }
        Ok(out)
    }
}

/// The samples of a Prometheus text exposition.
pub fn parse(text: &str) -> Samples {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The label values of `key` (`name{a="x",b="y"}` gives `x y`).
fn label_values(key: &str) -> String {
    let Some((_, labels)) = key.split_once('{') else {
        return String::new();
    };
    labels
        .trim_end_matches('}')
        .split(',')
        .filter_map(|kv| kv.split_once('=').map(|(_, v)| v.trim_matches('"')))
        .filter(|v| !v.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// One line per node: `step mean-ms xcount-per-request` for every step that moved.
pub fn render(
    before: &[Samples],
    after: &[Samples],
    requests: u64,
    urls: &[String],
) -> Vec<String> {
    let requests = requests.max(1) as f64;
    let mut lines = Vec::new();
    for (i, (b, a)) in before.iter().zip(after).enumerate() {
        let mut steps = Vec::new();
        for (family, short) in HISTOGRAMS {
            let count_prefix = format!("{family}_count");
            for (key, count) in a.range(count_prefix.clone()..) {
                if !key.starts_with(&count_prefix) {
                    break;
                }
                let calls = count - b.get(key).copied().unwrap_or(0.0);
                if calls <= 0.0 {
                    continue;
                }
                let sum_key = key.replacen("_count", "_sum", 1);
                let sum = a.get(&sum_key).copied().unwrap_or(0.0)
                    - b.get(&sum_key).copied().unwrap_or(0.0);
                let name = format!("{short} {}", label_values(key)).trim().to_string();
                steps.push(format!(
                    "{name} {:.2} ms x{:.2}",
                    sum / calls * 1000.0,
                    calls / requests
                ));
            }
        }
        if !steps.is_empty() {
            let url = urls.get(i).map_or("?", String::as_str);
            lines.push(format!("  {url}: {}", steps.join(" | ")));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_become_mean_times_per_request() {
        let before = parse(
            "hamster_stage_duration_seconds_sum{stage=\"SealLocal\"} 1.0\n\
             hamster_stage_duration_seconds_count{stage=\"SealLocal\"} 10\n",
        );
        let after = parse(
            "# HELP x\n\
             hamster_stage_duration_seconds_sum{stage=\"SealLocal\"} 1.5\n\
             hamster_stage_duration_seconds_count{stage=\"SealLocal\"} 110\n\
             hamster_s3_request_duration_seconds_sum{operation=\"PutObject\"} 2.0\n\
             hamster_s3_request_duration_seconds_count{operation=\"PutObject\"} 100\n\
             hamster_raft_proposal_duration_seconds_sum 0.3\n\
             hamster_raft_proposal_duration_seconds_count 100\n",
        );
        let lines = render(&[before], &[after], 100, &["n1".into()]);
        assert_eq!(
            lines,
            vec![
                "  n1: s3 PutObject 20.00 ms x1.00 | SealLocal 5.00 ms x1.00 | proposal 3.00 ms x1.00"
            ]
        );
    }
}
