//! The history of one run: what the workload did and saw, and what the fault schedule
//! did. The workload and the fault schedule write it; the checkers only read it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use engine::env::NodeId;
use engine::erasure::Geometry;
use engine::shard_store::ShardId;

/// One attempted object store: its bytes and what became of each shard.
pub struct ObjectRecord {
    pub object: u128,
    pub data: Arc<Vec<u8>>,
    pub geometry: Geometry,
    pub shards: Vec<ShardRecord>,
}

pub struct ShardRecord {
    pub id: ShardId,
    pub node: NodeId,
    pub body: Arc<Vec<u8>>,
    /// Set when the holder acknowledged the store (sealed); else the outcome is unknown.
    pub acked: bool,
}

/// What a read returned, as seen by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    Bytes([u8; 32]),
    NotFound,
    Corrupt,
    /// Network failure, disk error at the holder, timeout: says nothing about the shard.
    Unavailable,
}

/// One read of a byte range of one acknowledged shard.
pub struct ShardRead {
    pub object_index: usize,
    pub shard: usize,
    pub offset: u64,
    pub len: u64,
    pub outcome: ReadOutcome,
    /// Made in the liveness phase, after every fault was healed.
    pub after_heal: bool,
}

/// One whole-object read decoded from any k acknowledged shards.
pub struct ObjectRead {
    pub object_index: usize,
    /// sha256 of the decoded bytes; `None` when fewer than k shards could be read.
    pub decoded: Option<[u8; 32]>,
}

#[derive(Default)]
pub struct History {
    pub objects: Vec<ObjectRecord>,
    pub shard_reads: Vec<ShardRead>,
    pub object_reads: Vec<ObjectRead>,
    /// Files the fault schedule rotted: (node, path).
    pub rotted: BTreeSet<(NodeId, String)>,
}

pub type SharedHistory = Arc<Mutex<History>>;

impl History {
    pub fn is_rotted(&self, record: &ShardRecord) -> bool {
        self.rotted.contains(&(
            record.node,
            format!("{}/{}", crate::SHARD_DIR, record.id.file_name()),
        ))
    }
}
