//! Bucket policy evaluation, ns per request (single thread): the 10-statement policy of
//! `scripts/bench-s3.py --only keys` (`policy_10`), evaluated for the requests that
//! bench makes (a GetObject and a PutObject by the admitted key, from 127.0.0.1) and for
//! an anonymous GetObject that no statement admits; and the time to parse it.
//!
//! Run: `cargo bench -p engine --bench policy` (HAMSTER_BENCH_SECONDS sets the time per
//! case, default 2).

// A benchmark measures wall time; the engine's determinism bans do not apply to it.
#![allow(clippy::disallowed_types)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use engine::s3::policy::{Context, Decision, Policy};

const BUCKET: &str = "hamster-bench";
const KEY: &str = "HKBENCH000000000000";

fn policy_10() -> String {
    let (arn, objects) = (
        format!("arn:aws:s3:::{BUCKET}"),
        format!("arn:aws:s3:::{BUCKET}/*"),
    );
    let prefix = &objects[..objects.len() - 1];
    format!(
        r#"{{"Version":"2012-10-17","Statement":[
  {{"Sid":"DenyOtherNetworks","Effect":"Deny","Principal":"*","Action":"s3:*",
    "Resource":["{arn}","{objects}"],
    "Condition":{{"NotIpAddress":{{"aws:SourceIp":["127.0.0.0/8","::1/128"]}}}}}},
  {{"Sid":"DenyDeletesOfLogs","Effect":"Deny","Principal":"*","Action":"s3:DeleteObject",
    "Resource":"{prefix}logs/*"}},
  {{"Sid":"PublicAssets","Effect":"Allow","Principal":"*","Action":"s3:GetObject",
    "Resource":"{prefix}public/*"}},
  {{"Sid":"ListPublic","Effect":"Allow","Principal":"*","Action":"s3:ListBucket",
    "Resource":"{arn}","Condition":{{"StringLike":{{"s3:prefix":"public/*"}}}}}},
  {{"Sid":"Auditor","Effect":"Allow","Principal":{{"AWS":["HKAUDITOR0000000000"]}},
    "Action":["s3:Get*","s3:List*"],"Resource":["{arn}","{objects}"]}},
  {{"Sid":"Uploader","Effect":"Allow","Principal":{{"AWS":"HKUPLOADER000000000"}},
    "Action":"s3:PutObject","Resource":"{prefix}incoming/*",
    "Condition":{{"StringEquals":{{"s3:x-amz-acl":"bucket-owner-full-control"}}}}}},
  {{"Sid":"NoPublicAcls","Effect":"Deny","Principal":"*","Action":"s3:PutObjectAcl",
    "Resource":"{objects}"}},
  {{"Sid":"BigListsOnly","Effect":"Deny","Principal":"*","Action":"s3:ListBucket",
    "Resource":"{arn}","Condition":{{"NumericGreaterThan":{{"s3:max-keys":"5000"}}}}}},
  {{"Sid":"NoHotlinks","Effect":"Deny","Principal":"*","Action":"s3:GetObject",
    "Resource":"{objects}",
    "Condition":{{"StringLike":{{"aws:Referer":["https://evil.example/*"]}}}}}},
  {{"Sid":"App","Effect":"Allow","Principal":{{"AWS":["{KEY}"]}},
    "Action":["s3:GetObject","s3:PutObject","s3:ListBucket"],
    "Resource":["{arn}","{objects}"]}}
]}}"#
    )
}

fn seconds() -> Duration {
    let s = std::env::var("HAMSTER_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok());
    Duration::from_secs_f64(s.unwrap_or(2.0))
}

/// ns per call of `f`, run repeatedly for the bench time.
fn measure(mut f: impl FnMut()) -> f64 {
    f(); // warm up
    let (start, limit) = (Instant::now(), seconds());
    let mut n = 0u64;
    while start.elapsed() < limit {
        for _ in 0..64 {
            f();
        }
        n += 64;
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    let text = policy_10();
    let policy = Policy::parse(&text, BUCKET).expect("the bench policy parses");
    let object = format!("arn:aws:s3:::{BUCKET}/bench/object-17");
    let cx = |principal: Option<&'static str>, action: &'static str| Context {
        principal,
        action,
        source_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        user_agent: Some("hamster-bench"),
        ..Context::default()
    };
    println!("policy evaluation, {} statements, ns per call", 10);
    println!("| case | decision | ns |");
    println!("|---|---|---|");
    let cases = [
        ("GetObject by the key", cx(Some(KEY), "s3:GetObject")),
        ("PutObject by the key", cx(Some(KEY), "s3:PutObject")),
        ("GetObject, anonymous", cx(None, "s3:GetObject")),
    ];
    for (name, mut c) in cases {
        c.resource = &object;
        let decision = policy.evaluate(&c);
        let expected = if c.principal.is_some() {
            Decision::Allow
        } else {
            Decision::Silent
        };
        assert_eq!(decision, expected, "{name}");
        let ns = measure(|| {
            black_box(policy.evaluate(black_box(&c)));
        });
        println!("| {name} | {decision:?} | {ns:.0} |");
    }
    let ns = measure(|| {
        black_box(Policy::parse(black_box(&text), BUCKET).ok());
    });
    println!("| parse | - | {ns:.0} |");
}
