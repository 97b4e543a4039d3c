//! Memory per million objects in the metadata state machine: applies PutObject commands
//! (a 4+2 layout each, as a cluster writes them) to the redb store on a real file, in
//! batches as the Raft driver applies them, and reports the file's size on disk and the
//! process's resident memory before and after.
//!
//! Run: `cargo bench -p runtime-real --bench meta_memory` (HAMSTER_BENCH_OBJECTS sets
//! the count, default 1000000; HAMSTER_BENCH_DIR the directory, default target/).

mod common;

use common::{layout, open_store, rss_kib};

use std::collections::BTreeMap;
use std::time::Instant;

use engine::meta::store::Item;
use engine::meta::{Command, CommandV1, ContentHeaders, ObjectData, ObjectMeta, PutCondition};

/// Entries applied per commit (the driver applies what one Ready holds).
const BATCH: u64 = 1000;
/// Every this many entries a durable commit (the driver's compaction point).
const DURABLE_EVERY: u64 = 100_000;

fn main() {
    let count: u64 = std::env::var("HAMSTER_BENCH_OBJECTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let (_dir, path, store) = open_store();
    let rss_before = rss_kib("VmRSS:");
    let mut mark = store.mark().expect("mark");
    let bucket = Command::V1(CommandV1::CreateBucket {
        name: "photos".into(),
        owner: "bench".into(),
        created_ms: 1,
    });
    mark.index = 1;
    store
        .apply(
            &[Item {
                index: 1,
                command: Some(bucket),
            }],
            &mark,
            true,
        )
        .expect("bucket");
    let start = Instant::now();
    let mut next = 0;
    while next < count {
        let end = (next + BATCH).min(count);
        let items: Vec<Item> = (next..end)
            .map(|i| Item {
                index: 2 + i,
                command: Some(Command::V1(CommandV1::PutObject {
                    bucket: "photos".into(),
                    key: format!(
                        "camera/2026/{:02}/{:02}/IMG_{i:08}.jpg",
                        i % 12 + 1,
                        i % 28 + 1
                    ),
                    meta: ObjectMeta {
                        size: 3 << 20,
                        etag: format!("{:032x}", u128::from(i) * 0x1234_5678_9abc_def1),
                        created_ms: 1_764_000_000_000 + i,
                        headers: ContentHeaders {
                            content_type: Some("image/jpeg".into()),
                            ..ContentHeaders::default()
                        },
                        user_meta: BTreeMap::new(),
                        checksum: None,
                        data: ObjectData::Blob(layout(i, 3 << 20)),
                    },
                    condition: PutCondition::Always,
                })),
            })
            .collect();
        mark.index = 1 + end;
        let durable = end.is_multiple_of(DURABLE_EVERY) || end == count;
        store.apply(&items, &mark, durable).expect("apply");
        next = end;
    }
    let secs = start.elapsed().as_secs_f64();
    let rss_after = rss_kib("VmRSS:");
    let hwm = rss_kib("VmHWM:");
    let on_disk = std::fs::metadata(&path).expect("meta file").len();
    let per_million = |bytes: f64| bytes * 1e6 / count as f64 / f64::from(1 << 20);
    println!("objects: {count} PutObject commands (4+2 layout, ~40-byte keys), batches of {BATCH}");
    println!(
        "apply: {:.1} s, {:.0} commands/s",
        secs,
        count as f64 / secs
    );
    println!(
        "on disk: {:.1} MiB ({:.1} MiB per million objects, {:.0} bytes each)",
        on_disk as f64 / f64::from(1 << 20),
        per_million(on_disk as f64),
        on_disk as f64 / count as f64
    );
    println!(
        "resident: {:.1} MiB before, {:.1} MiB after (+{:.1} MiB), peak {:.1} MiB",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        (rss_after.saturating_sub(rss_before)) as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
}
