//! Metadata replication with Raft (tikv/raft-rs, sans-IO), driven on the Env seam.

pub mod durable;
pub mod forward;
pub mod handle;
pub mod lease;
pub mod node;
pub mod outbox;
pub mod snapshot;
pub mod start;
