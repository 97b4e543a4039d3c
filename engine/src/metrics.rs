//! A node's event counters, in Prometheus types (`prometheus-client`): the events only
//! the engine sees (shard reads and writes, checksum failures, disk errors, degraded and
//! refused writes, degraded reads, proposal latency). The front end registers them
//! with [`Metrics::register`] beside what it reads at scrape time (Raft status, repair
//! status) and what it counts itself (S3 requests).
//!
//! Counters are written, never read, by node logic: they do not steer anything, so a
//! simulated run stays deterministic.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::env::DiskError;

/// What a disk error was, as a label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum DiskErrorKind {
    Io,
    NoSpace,
    NotFound,
    ShortRead,
    InvalidPath,
    Other,
}

impl DiskErrorKind {
    pub fn of(e: &DiskError) -> Self {
        match e {
            DiskError::Io { .. } => Self::Io,
            DiskError::NoSpace { .. } => Self::NoSpace,
            DiskError::NotFound { .. } => Self::NotFound,
            DiskError::ShortRead { .. } => Self::ShortRead,
            DiskError::InvalidPath { .. } => Self::InvalidPath,
            DiskError::Other { .. } => Self::Other,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DiskErrorLabels {
    pub kind: DiskErrorKind,
}

/// A step of a request whose time is measured (`hamster_stage_duration_seconds`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Stage {
    /// The ReadIndex before a consistent read (a round to the leader, then the local
    /// apply catching up to it).
    ReadIndex,
    /// A blob stored: the body streamed, encoded and sent, every shard sealed.
    WriteBlob,
    /// One shard sealed on this node (data fdatasync, rename, directory fsync), for
    /// this node's own write or another's.
    SealLocal,
    /// One shard sealed on another node: from the last frame sent to its answer.
    SealRemote,
    /// One shard slice read from this node's disk, or from another node.
    FetchLocal,
    FetchRemote,
    /// A proposal another node forwarded here (the leader), to its commit and apply.
    ForwardedProposal,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub stage: Stage,
}

/// What the lifecycle task expired (`hamster_lifecycle_expired_total`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Expiry {
    /// A current version (deleted, or hidden under a delete marker).
    Current,
    Noncurrent,
    DeleteMarker,
    /// An upload in progress, aborted.
    Upload,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExpiryLabels {
    pub kind: Expiry,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
}

/// Latency buckets in seconds: 100 µs to ~26 s, doubling.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 19)
}

/// One node's engine counters. Cheap to share (`Arc`); each counter is atomic.
#[derive(Debug)]
pub struct Metrics {
    pub shard_reads: Counter,
    pub shard_read_bytes: Counter,
    pub shard_writes: Counter,
    pub shard_write_bytes: Counter,
    /// Reads and verifies that found a shard whose checksums disagree with its bytes.
    pub shard_verify_failures: Counter,
    pub disk_errors: Family<DiskErrorLabels, Counter>,
    /// Writes acknowledged with fewer than k+m sealed shards.
    pub degraded_writes: Counter,
    /// Writes refused because fewer than the floor of shards could be sealed.
    pub write_floor_refusals: Counter,
    /// Reads that had to decode from parity (a data shard was unusable).
    pub degraded_reads: Counter,
    /// From a proposal to its commit and local apply, seen by the proposer.
    pub proposal_duration: Histogram,
    /// ReadIndex requests this leader answered from its lease, without a round.
    pub lease_reads: Counter,
    /// Heartbeat rounds this leader sent for reads (its own batches and lease renewals).
    pub read_rounds: Counter,
    /// Steps of requests (see [`Stage`]).
    pub stage_duration: Family<StageLabels, Histogram>,
    /// A typed S3 request in the engine, by operation (a GET until its bytes are open).
    pub engine_request_duration: Family<OperationLabels, Histogram>,
    /// Lifecycle passes this node made as leader, and what they expired.
    pub lifecycle_passes: Counter,
    pub lifecycle_expired: Family<ExpiryLabels, Counter>,
}

fn latency_family<L: Clone + std::hash::Hash + Eq>() -> Family<L, Histogram> {
    Family::new_with_constructor(|| Histogram::new(latency_buckets()))
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            shard_reads: Counter::default(),
            shard_read_bytes: Counter::default(),
            shard_writes: Counter::default(),
            shard_write_bytes: Counter::default(),
            shard_verify_failures: Counter::default(),
            disk_errors: Family::default(),
            degraded_writes: Counter::default(),
            write_floor_refusals: Counter::default(),
            degraded_reads: Counter::default(),
            proposal_duration: Histogram::new(latency_buckets()),
            lease_reads: Counter::default(),
            read_rounds: Counter::default(),
            stage_duration: latency_family(),
            engine_request_duration: latency_family(),
            lifecycle_passes: Counter::default(),
            lifecycle_expired: Family::default(),
        }
    }
}

impl Metrics {
    /// Adds every counter to `registry` (names get the registry's prefix).
    pub fn register(&self, registry: &mut Registry) {
        let shard = registry.sub_registry_with_prefix("shard");
        shard.register(
            "reads",
            "Shard ranged reads served",
            self.shard_reads.clone(),
        );
        shard.register_with_unit(
            "read",
            "Shard bytes read",
            Unit::Bytes,
            self.shard_read_bytes.clone(),
        );
        shard.register("writes", "Shards sealed", self.shard_writes.clone());
        shard.register_with_unit(
            "written",
            "Shard bytes sealed",
            Unit::Bytes,
            self.shard_write_bytes.clone(),
        );
        shard.register(
            "verify_failures",
            "Shard reads or verifies that found a checksum mismatch",
            self.shard_verify_failures.clone(),
        );
        shard.register(
            "disk_errors",
            "Disk errors under shard operations, by kind",
            self.disk_errors.clone(),
        );
        let data = registry.sub_registry_with_prefix("data_path");
        data.register(
            "degraded_writes",
            "Writes acknowledged with fewer than k+m sealed shards",
            self.degraded_writes.clone(),
        );
        data.register(
            "floor_refusals",
            "Writes refused (503 SlowDown) below the write floor of k+1 sealed shards",
            self.write_floor_refusals.clone(),
        );
        data.register(
            "degraded_reads",
            "Reads decoded from parity because a data shard was unusable",
            self.degraded_reads.clone(),
        );
        let raft = registry.sub_registry_with_prefix("raft");
        raft.register_with_unit(
            "proposal_duration",
            "Time from a proposal to its commit and apply on the proposing node",
            Unit::Seconds,
            self.proposal_duration.clone(),
        );
        raft.register(
            "lease_reads",
            "ReadIndex requests this leader answered from its lease, without a round",
            self.lease_reads.clone(),
        );
        raft.register(
            "read_rounds",
            "Heartbeat rounds this leader sent for reads, lease renewals included",
            self.read_rounds.clone(),
        );
        registry.register_with_unit(
            "stage_duration",
            "Steps of requests: ReadIndex, blob writes, shard seals and slice reads",
            Unit::Seconds,
            self.stage_duration.clone(),
        );
        registry.register_with_unit(
            "engine_request_duration",
            "S3 requests inside the engine, by operation",
            Unit::Seconds,
            self.engine_request_duration.clone(),
        );
        let lifecycle = registry.sub_registry_with_prefix("lifecycle");
        lifecycle.register(
            "passes",
            "Lifecycle passes over the buckets with rules, made by this node as leader",
            self.lifecycle_passes.clone(),
        );
        lifecycle.register(
            "expired",
            "Versions, delete markers and uploads the lifecycle task expired, by kind",
            self.lifecycle_expired.clone(),
        );
    }

    /// Counts `n` expiries of `kind`.
    pub fn expired(&self, kind: Expiry, n: u32) {
        self.lifecycle_expired
            .get_or_create(&ExpiryLabels { kind })
            .inc_by(u64::from(n));
    }

    /// Records that `stage` took from `began` to `now` (clock readings).
    pub fn stage(&self, stage: Stage, began: std::time::Duration, now: std::time::Duration) {
        self.stage_duration
            .get_or_create(&StageLabels { stage })
            .observe(now.saturating_sub(began).as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_names_follow_prometheus_conventions() {
        let metrics = Metrics::default();
        metrics.shard_reads.inc();
        let no_space = DiskError::NoSpace { path: "x".into() };
        let kind = DiskErrorKind::of(&no_space);
        metrics
            .disk_errors
            .get_or_create(&DiskErrorLabels { kind })
            .inc();
        metrics.shard_verify_failures.inc();
        metrics.proposal_duration.observe(0.003);
        metrics.expired(Expiry::Noncurrent, 2);
        let mut registry = Registry::with_prefix("hamster");
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "hamster_shard_reads_total 1",
            "hamster_shard_read_bytes_total 0",
            "hamster_shard_verify_failures_total 1",
            "hamster_shard_disk_errors_total{kind=\"NoSpace\"} 1",
            "hamster_data_path_floor_refusals_total 0",
            "hamster_raft_proposal_duration_seconds_count 1",
            "hamster_lifecycle_expired_total{kind=\"Noncurrent\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
