//! Hamster's engine: all node logic, generic over the [`env::Env`] seam.
//!
//! Architecture Invariant: nothing in this crate touches the world directly. Time,
//! randomness, disk and network arrive through `env`, so the same code runs under the
//! deterministic simulator (`runtime-sim`) and under tokio (`runtime-real`). The tidy
//! test (`tests/tidy.rs`) fails the build when a forbidden API slips in.

pub mod data_path;
pub mod env;
pub mod erasure;
pub mod lifecycle;
pub mod meta;
pub mod metrics;
pub mod node;
pub mod placement;
pub mod raft;
pub mod repair;
pub mod s3;
pub mod shard_store;
pub mod sweep;
#[cfg(test)]
mod test_disk;
pub mod wire;
