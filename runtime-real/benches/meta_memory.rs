//! Memory per million objects in the metadata state machine: applies PutObject commands
//! (a 4+2 layout each, as a cluster writes them) to the redb store on a real file, in
//! batches as the Raft driver applies them, and reports the file's size on disk and the
//! process's resident memory before and after.
//!
//! Run: `cargo bench -p runtime-real --bench meta_memory` (HAMSTER_BENCH_OBJECTS sets
//! the count, default 1000000; HAMSTER_BENCH_DIR the directory, default target/).

use std::collections::BTreeMap;
use std::time::Instant;

use engine::erasure::CodecId;
use engine::meta::store::{Item, MetaStore};
use engine::meta::{
    Command, CommandV1, ContentHeaders, DataLayout, ObjectData, ObjectMeta, PutCondition,
    ShardPlacement,
};

/// Entries applied per commit (the driver applies what one Ready holds).
const BATCH: u64 = 1000;
/// Every this many entries a durable commit (the driver's compaction point).
const DURABLE_EVERY: u64 = 100_000;

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("a VmRSS line")
}

fn layout(i: u64) -> DataLayout {
    DataLayout {
        data_id: u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
        size: 3 << 20,
        codec: CodecId::ReedSolomonGf8,
        k: 4,
        m: 2,
        chunk_size_bytes: 1 << 20,
        shards: (0..6)
            .map(|s| ShardPlacement {
                node: 1 + (i + s) % 6,
                sha256: [(i as u8).wrapping_add(s as u8); 32],
                sealed: true,
            })
            .collect(),
    }
}

fn main() {
    let count: u64 = std::env::var("HAMSTER_BENCH_OBJECTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let base = std::env::var("HAMSTER_BENCH_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").to_string());
    let dir = tempfile::tempdir_in(&base).expect("bench dir");
    let path = dir.path().join("meta.redb");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("meta file");
    let store = MetaStore::open(redb::backends::FileBackend::new(file).expect("backend"))
        .expect("open the store");
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
                        data: ObjectData::Blob(layout(i)),
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
