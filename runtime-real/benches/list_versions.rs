//! ListObjectVersions over a million versions: applies PutObject commands (a 4+2 layout
//! each) to a bucket with versioning, on the redb store on a real file, so that every
//! key has several versions (the older ones noncurrent, in the versions table); then
//! pages through the whole listing 1,000 entries a page, as a client does with its
//! markers, and reports pages per second and the process's resident memory before,
//! during (peak) and after the paging.
//!
//! Run: `cargo bench -p runtime-real --bench list_versions` (HAMSTER_BENCH_KEYS and
//! HAMSTER_BENCH_VERSIONS set keys and versions per key, default 100000 x 10;
//! HAMSTER_BENCH_DIR the directory, default target/).

mod common;

use common::{layout, open_store, rss_kib};

use std::collections::BTreeMap;
use std::time::Instant;

use engine::meta::access::{Setting, Versioning};
use engine::meta::store::Item;
use engine::meta::versions::VERSIONING;
use engine::meta::{Command, CommandV1, ContentHeaders, ObjectData, ObjectMeta, PutCondition};
use engine::s3::list::ListParams;
use engine::s3::versions::versions_page;

/// Entries applied per commit (the driver applies what one Ready holds).
const BATCH: u64 = 1000;
/// Entries a page.
const PAGE: usize = 1000;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn put(i: u64, key: String) -> Command {
    let layout = layout(i, 1 << 20);
    Command::V1(CommandV1::PutObject {
        bucket: "logs".into(),
        key,
        meta: ObjectMeta {
            size: 1 << 20,
            etag: format!("{:032x}", u128::from(i) * 0x1234_5678_9abc_def1),
            created_ms: 1_764_000_000_000 + i,
            headers: ContentHeaders::default(),
            user_meta: BTreeMap::new(),
            checksum: None,
            data: ObjectData::Blob(layout),
        },
        condition: PutCondition::Always,
    })
}

fn main() {
    let keys = env_or("HAMSTER_BENCH_KEYS", 100_000);
    let per_key = env_or("HAMSTER_BENCH_VERSIONS", 10);
    let (_dir, path, store) = open_store();
    let mut mark = store.mark().expect("mark");
    let setup = [
        Command::V1(CommandV1::CreateBucket {
            name: "logs".into(),
            owner: "bench".into(),
            created_ms: 1,
        }),
        Command::V1(CommandV1::PutSetting {
            bucket: "logs".into(),
            name: VERSIONING.into(),
            setting: Setting::Versioning(Versioning::Enabled),
        }),
    ];
    let items: Vec<Item> = setup
        .into_iter()
        .enumerate()
        .map(|(i, c)| Item {
            index: 1 + i as u64,
            command: Some(c),
        })
        .collect();
    mark.index = 2;
    store.apply(&items, &mark, true).expect("setup");
    let total = keys * per_key;
    let start = Instant::now();
    let mut next = 0;
    while next < total {
        let end = (next + BATCH).min(total);
        // Round by round: every key gets its next version, so older ones go noncurrent.
        let items: Vec<Item> = (next..end)
            .map(|i| Item {
                index: 3 + i,
                command: Some(put(i, format!("app/{:06}.log", i % keys))),
            })
            .collect();
        mark.index = 2 + end;
        store.apply(&items, &mark, end == total).expect("apply");
        next = end;
    }
    let applied = start.elapsed().as_secs_f64();
    println!(
        "versions: {keys} keys x {per_key} = {total} versions applied in {applied:.1} s; \
         {:.0} MiB on disk",
        std::fs::metadata(&path).expect("file").len() as f64 / f64::from(1 << 20)
    );

    let reader = store.reader().expect("reader");
    let rss_before = rss_kib("VmRSS:");
    let mut params = ListParams {
        max_keys: PAGE,
        markers: true,
        ..ListParams::default()
    };
    let mut marker = None;
    let (mut pages, mut entries, mut rss_peak) = (0u64, 0u64, rss_before);
    let start = Instant::now();
    loop {
        let page = versions_page(&reader, "logs", params.clone(), marker).expect("a page");
        pages += 1;
        entries += page.entries.len() as u64;
        if pages.is_multiple_of(50) {
            rss_peak = rss_peak.max(rss_kib("VmRSS:"));
        }
        if !page.truncated {
            break;
        }
        params.after = page.next_key_marker;
        marker = page
            .next_version_id_marker
            .as_deref()
            .and_then(engine::meta::versions::VersionRef::parse);
    }
    let secs = start.elapsed().as_secs_f64();
    let rss_after = rss_kib("VmRSS:");
    assert_eq!(entries, total, "the listing shows every version once");
    println!(
        "paging: {pages} pages of {PAGE} in {secs:.1} s: {:.0} pages/s ({:.0} versions/s)",
        pages as f64 / secs,
        entries as f64 / secs
    );
    println!(
        "resident: {:.1} MiB before the paging, {:.1} MiB after, peak sampled {:.1} MiB",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        rss_peak as f64 / 1024.0
    );
}
