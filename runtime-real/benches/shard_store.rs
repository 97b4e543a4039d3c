//! Shard store on the real disk: sealed-write and verified-read MB/s for 64 MiB shards.
//!
//! A write is the whole store protocol: temporary file, 1 MiB writes, crc table and
//! footer, fdatasync, rename, directory fsync. Reads are verified ranged reads of 1 MiB
//! and a full verify (every block crc and the sha256); "cold" reads follow
//! posix_fadvise(DONTNEED) on the file, so they come from the device, not the page cache.
//!
//! Run: `cargo bench -p runtime-real --bench shard_store` (HAMSTER_BENCH_DIR picks the
//! directory, default target/; HAMSTER_BENCH_SHARDS the count, default 4).

use std::os::fd::AsRawFd;
use std::time::Instant;

use engine::env::SeededRng;
use engine::erasure::CodecId;
use engine::shard_store::{BLOCK_SIZE_BYTES_DEFAULT, ShardHeader, ShardId, ShardStore};
use runtime_real::RealDisk;

const SHARD_BYTES: u64 = 64 << 20;
const PIECE_BYTES: usize = 1 << 20;

fn evict(path: &std::path::Path) {
    let file = std::fs::File::open(path).expect("shard file");
    // SAFETY: a valid open file descriptor; the call only drops clean cached pages.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise");
}

fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

async fn run() {
    let base = std::env::var("HAMSTER_BENCH_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").to_string());
    let count: u64 = std::env::var("HAMSTER_BENCH_SHARDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let dir = tempfile::tempdir_in(&base).expect("bench dir");
    let disk = RealDisk::open(dir.path()).unwrap();
    let store = ShardStore::new(disk, "shards");
    let rng = SeededRng::new(1);
    let piece: Vec<u8> = (0..PIECE_BYTES).map(|i| (i * 7 + i / 4096) as u8).collect();
    let (mut write_s, mut cold_read_s, mut warm_read_s, mut verify_s) = (0.0, 0.0, 0.0, 0.0);
    for n in 0..count {
        let header = ShardHeader {
            id: ShardId {
                object: u128::from(n),
                version: 1,
                part: 0,
                index: 0,
            },
            codec: CodecId::ReedSolomonGf8,
            k: 4,
            m: 2,
            block_size_bytes: BLOCK_SIZE_BYTES_DEFAULT,
            chunk_size_bytes: 1 << 20,
            object_len_bytes: SHARD_BYTES * 4,
            shard_len_bytes: SHARD_BYTES,
        };
        let t = Instant::now();
        let mut w = store.create(header, &rng).await.unwrap();
        for _ in 0..SHARD_BYTES / PIECE_BYTES as u64 {
            w.write(&piece).await.unwrap();
        }
        let sealed = w.seal().await.unwrap();
        write_s += t.elapsed().as_secs_f64();

        let path = dir.path().join(store.path_of(&sealed.id));
        for cold in [true, false] {
            if cold {
                evict(&path);
            }
            let t = Instant::now();
            for off in (0..SHARD_BYTES).step_by(PIECE_BYTES) {
                let got = store
                    .read_range(&sealed.id, off, PIECE_BYTES as u64)
                    .await
                    .unwrap();
                assert_eq!(got.len(), PIECE_BYTES);
            }
            let s = t.elapsed().as_secs_f64();
            if cold {
                cold_read_s += s
            } else {
                warm_read_s += s
            }
        }
        evict(&path);
        let t = Instant::now();
        assert_eq!(store.verify(&sealed.id).await.unwrap().1, sealed.sha256);
        verify_s += t.elapsed().as_secs_f64();
    }
    let total = SHARD_BYTES * count;
    println!(
        "shard store, {count} x {} MiB shards in {}",
        SHARD_BYTES >> 20,
        dir.path().display()
    );
    println!(
        "sealed write (fdatasync + rename + dir fsync): {:>8.0} MB/s",
        mb_per_s(total, write_s)
    );
    println!(
        "verified 1 MiB ranged reads, cold:             {:>8.0} MB/s",
        mb_per_s(total, cold_read_s)
    );
    println!(
        "verified 1 MiB ranged reads, page cache:       {:>8.0} MB/s",
        mb_per_s(total, warm_read_s)
    );
    println!(
        "full verify (crc + sha256), cold:              {:>8.0} MB/s",
        mb_per_s(total, verify_s)
    );
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}
