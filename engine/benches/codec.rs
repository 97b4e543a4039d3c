//! Codec throughput, GB/s of object data per core (single thread), 1 MiB chunks:
//! encode, and rebuild of two lost data chunks, for 4+2 and 8+3. Our codec
//! (reed-solomon-erasure 6 with simd-accel, through engine::erasure) side by side with
//! the pure-Rust reed-solomon-erasure build and reed-solomon-simd, in one run.
//!
//! Run: `cargo bench -p engine --bench codec` (HAMSTER_BENCH_SECONDS sets the time per
//! case, default 2).

// A benchmark measures wall time; the engine's determinism bans do not apply to it.
#![allow(clippy::disallowed_types)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use engine::erasure::{Codec, ReedSolomon};

const CHUNK: usize = 1 << 20;

/// One codec's bench: (k, m) -> (encode GB/s, rebuild-2 GB/s).
type Bench = fn(usize, usize) -> (f64, f64);

fn seconds() -> Duration {
    let s = std::env::var("HAMSTER_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok());
    Duration::from_secs_f64(s.unwrap_or(2.0))
}

/// Runs `f` repeatedly for the bench time; GB/s of `bytes` per call.
fn measure(bytes: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm up
    let (start, limit) = (Instant::now(), seconds());
    let mut n = 0u64;
    while start.elapsed() < limit {
        f();
        n += 1;
    }
    (bytes as f64 * n as f64) / start.elapsed().as_secs_f64() / 1e9
}

fn chunks(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|c| (0..CHUNK).map(|i| (i * 131 + c * 7) as u8).collect())
        .collect()
}

fn ours(k: usize, m: usize) -> (f64, f64) {
    let codec = ReedSolomon::new(k as u32, m as u32).unwrap();
    let data = chunks(k);
    let mut parity = vec![vec![0u8; CHUNK]; m];
    let encode = measure(k * CHUNK, || {
        let d: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let mut p: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
        codec.encode(&d, &mut p).unwrap();
        black_box(&p);
    });
    let mut full: Vec<Vec<u8>> = data.iter().chain(&parity).cloned().collect();
    let present: Vec<bool> = (0..k + m).map(|i| i >= 2).collect();
    let rebuild = measure(k * CHUNK, || {
        let mut views: Vec<&mut [u8]> = full.iter_mut().map(Vec::as_mut_slice).collect();
        codec.reconstruct(&mut views, &present).unwrap();
        black_box(&views);
    });
    (encode, rebuild)
}

fn pure(k: usize, m: usize) -> (f64, f64) {
    let codec = rse_pure::galois_8::ReedSolomon::new(k, m).unwrap();
    let data = chunks(k);
    let mut parity = vec![vec![0u8; CHUNK]; m];
    let encode = measure(k * CHUNK, || {
        codec.encode_sep(&data, &mut parity).unwrap();
        black_box(&parity);
    });
    let mut full: Vec<Vec<u8>> = data.iter().chain(&parity).cloned().collect();
    let rebuild = measure(k * CHUNK, || {
        let mut views: Vec<(&mut [u8], bool)> = full
            .iter_mut()
            .enumerate()
            .map(|(i, b)| (b.as_mut_slice(), i >= 2))
            .collect();
        codec.reconstruct(&mut views).unwrap();
        black_box(&views);
    });
    (encode, rebuild)
}

fn simd(k: usize, m: usize) -> (f64, f64) {
    let data = chunks(k);
    let mut encoder = reed_solomon_simd::ReedSolomonEncoder::new(k, m, CHUNK).unwrap();
    let mut recovery: Vec<Vec<u8>> = Vec::new();
    let encode = measure(k * CHUNK, || {
        for d in &data {
            encoder.add_original_shard(d).unwrap();
        }
        let result = encoder.encode().unwrap();
        recovery = result.recovery_iter().map(<[u8]>::to_vec).collect();
        black_box(&recovery);
    });
    let mut decoder = reed_solomon_simd::ReedSolomonDecoder::new(k, m, CHUNK).unwrap();
    let rebuild = measure(k * CHUNK, || {
        for (i, d) in data.iter().enumerate().skip(2) {
            decoder.add_original_shard(i, d).unwrap();
        }
        for (i, r) in recovery.iter().enumerate() {
            decoder.add_recovery_shard(i, r).unwrap();
        }
        let result = decoder.decode().unwrap();
        black_box(result.restored_original_iter().count());
    });
    (encode, rebuild)
}

fn main() {
    println!(
        "codec throughput, GB/s of data per core, {} KiB chunks",
        CHUNK / 1024
    );
    println!(
        "{:<44} {:>8} {:>10}",
        "codec / profile", "encode", "rebuild-2"
    );
    for (k, m) in [(4, 2), (8, 3)] {
        let rows: [(&str, Bench); 3] = [
            ("reed-solomon-erasure 6 simd-accel (ours)", ours),
            ("reed-solomon-erasure 5 pure Rust", pure),
            ("reed-solomon-simd 3", simd),
        ];
        for (name, f) in rows {
            let (e, r) = f(k, m);
            println!("{:<44} {:>8.2} {:>10.2}", format!("{name} {k}+{m}"), e, r);
        }
    }
}
