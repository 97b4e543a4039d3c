//! What the metadata benches share: a store on a real file, a 4+2 layout per object,
//! and the process's resident memory.

use engine::erasure::CodecId;
use engine::meta::store::MetaStore;
use engine::meta::{DataLayout, ShardPlacement};

/// A kB figure of /proc/self/status (`VmRSS:`, `VmHWM:`).
pub fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("a VmRSS line")
}

/// Object `i`'s layout: 4+2 on six nodes, `size` bytes.
pub fn layout(i: u64, size: u64) -> DataLayout {
    DataLayout {
        data_id: u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
        size,
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

/// A new store on a real file in HAMSTER_BENCH_DIR (default target/): the directory
/// (removed when dropped), the file's path and the store.
pub fn open_store() -> (tempfile::TempDir, std::path::PathBuf, MetaStore) {
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
    (dir, path, store)
}
