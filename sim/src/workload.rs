//! The workload: clients that store erasure-coded objects as shards on the nodes (one
//! shard per node, through Net and the shard store) and read them back, ranged and
//! whole. It records what it did and saw in the History; it judges nothing.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use engine::env::{Clock, Env, NodeId, Rng};
use engine::erasure::{self, CodecId, Geometry, ReedSolomon};
use engine::shard_store::rpc::{self as shard_rpc, CallError, RemoteError};
use engine::shard_store::{BLOCK_SIZE_BYTES_DEFAULT, ShardHeader, ShardId};
use runtime_sim::SimEnv;
use sha2::{Digest, Sha256};

use crate::model::{ObjectRead, ObjectRecord, ReadOutcome, ShardRead, ShardRecord, SharedHistory};
use crate::scenario::Params;

/// Small chunks so that modest objects still span several stripes.
pub const CHUNK_SIZE_BYTES: u32 = 4096;
/// Small blocks so that ranged reads cross block boundaries.
pub const BLOCK_SIZE_BYTES: u32 = 1024;
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

const _: () = assert!(BLOCK_SIZE_BYTES <= BLOCK_SIZE_BYTES_DEFAULT);

fn below(rng: &impl Rng, n: u64) -> u64 {
    assert!(n > 0);
    rng.next_u64() % n
}

/// Object lengths that hit the geometry's edges often: empty, stripe multiples and
/// their neighbours, single bytes, and a log-uniform spread up to the maximum.
fn object_len(rng: &impl Rng, k: u32, max: u64) -> u64 {
    let stripe = u64::from(k) * u64::from(CHUNK_SIZE_BYTES);
    let len = match below(rng, 10) {
        0 => 0,
        1 => 1,
        2 => stripe * (1 + below(rng, 3)),
        3 => (stripe * (1 + below(rng, 3)))
            .saturating_add(below(rng, 3))
            .saturating_sub(1),
        _ => {
            let bits = 1 + below(rng, 64 - max.max(2).leading_zeros() as u64);
            below(rng, 1 << bits)
        }
    };
    len.min(max)
}

pub struct Client {
    pub env: SimEnv,
    pub params: Params,
    pub history: SharedHistory,
    pub codec: Arc<ReedSolomon>,
}

impl Client {
    fn pick_nodes(&self, count: usize) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = (1..=self.params.nodes).collect();
        for i in (1..nodes.len()).rev() {
            nodes.swap(i, below(self.env.rng(), i as u64 + 1) as usize);
        }
        nodes.truncate(count);
        nodes
    }

    /// Stores one new object, one shard per distinct node; records each shard's ack.
    pub async fn store_object(&self) {
        let (k, m) = (self.params.k, self.params.m);
        let len = object_len(self.env.rng(), k, self.params.object_bytes_max);
        let mut data = vec![0u8; len as usize];
        self.env.rng().fill(&mut data);
        let object =
            u128::from(self.env.rng().next_u64()) << 64 | u128::from(self.env.rng().next_u64());
        let geometry = Geometry::new(k, m, CHUNK_SIZE_BYTES, len);
        let bodies = erasure::encode_object(self.codec.as_ref(), &geometry, &data)
            .expect("encoding a valid geometry");
        let nodes = self.pick_nodes((k + m) as usize);
        let frame_bytes = 512 + below(self.env.rng(), 4096) as usize;
        let stores =
            bodies
                .iter()
                .zip(&nodes)
                .enumerate()
                .map(|(i, (body, &node))| {
                    let header = ShardHeader {
                        id: ShardId {
                            object,
                            version: 1,
                            part: 0,
                            index: i as u16,
                        },
                        codec: CodecId::ReedSolomonGf8,
                        k: k as u16,
                        m: m as u16,
                        block_size_bytes: BLOCK_SIZE_BYTES,
                        chunk_size_bytes: CHUNK_SIZE_BYTES,
                        object_len_bytes: len,
                        shard_len_bytes: geometry.shard_len(),
                    };
                    let body = Bytes::from(body.clone());
                    let env = &self.env;
                    async move {
                        shard_rpc::store(env, node, header, body, frame_bytes, CALL_TIMEOUT).await
                    }
                });
        let results = futures::future::join_all(stores).await;
        let mut acks = String::new();
        let shards = results
            .into_iter()
            .zip(bodies)
            .zip(&nodes)
            .enumerate()
            .map(|(i, ((result, body), &node))| {
                let expected: [u8; 32] = Sha256::digest(&body).into();
                let acked = matches!(&result, Ok(sealed) if sealed.sha256 == expected);
                acks.push(if acked { '1' } else { '0' });
                ShardRecord {
                    id: ShardId {
                        object,
                        version: 1,
                        part: 0,
                        index: i as u16,
                    },
                    node,
                    body: Arc::new(body),
                    acked,
                }
            })
            .collect();
        self.env.world_trace(format_args!(
            "store {object:032x} len={len} nodes={nodes:?} acks={acks}"
        ));
        let mut h = self.history.lock().expect("history");
        h.objects.push(ObjectRecord {
            object,
            data: Arc::new(data),
            geometry,
            shards,
        });
    }

    /// Picks an object index with at least one acknowledged shard.
    fn pick_object(&self) -> Option<usize> {
        let h = self.history.lock().expect("history");
        if h.objects.is_empty() {
            return None;
        }
        let start = below(self.env.rng(), h.objects.len() as u64) as usize;
        (0..h.objects.len())
            .map(|i| (start + i) % h.objects.len())
            .find(|&i| h.objects[i].shards.iter().any(|s| s.acked))
    }

    /// Reads a random range of a random acknowledged shard.
    pub async fn read_range(&self) {
        let Some(object_index) = self.pick_object() else {
            return;
        };
        let (shard, id, node, shard_len) = {
            let h = self.history.lock().expect("history");
            let o = &h.objects[object_index];
            let acked: Vec<usize> = (0..o.shards.len()).filter(|&i| o.shards[i].acked).collect();
            let s = acked[below(self.env.rng(), acked.len() as u64) as usize];
            (s, o.shards[s].id, o.shards[s].node, o.geometry.shard_len())
        };
        let offset = below(self.env.rng(), shard_len + 1);
        let len = below(self.env.rng(), shard_len - offset + 1);
        let outcome = self.read_shard(node, id, offset, len).await;
        self.record_read(object_index, shard, offset, len, outcome, false);
    }

    pub async fn read_shard(
        &self,
        node: NodeId,
        id: ShardId,
        offset: u64,
        len: u64,
    ) -> ReadOutcome {
        let result = shard_rpc::read(&self.env, node, id, offset, len, CALL_TIMEOUT).await;
        let outcome = match result {
            Ok(bytes) => ReadOutcome::Bytes(Sha256::digest(&bytes).into()),
            Err(CallError::Remote(RemoteError::NotFound)) => ReadOutcome::NotFound,
            Err(CallError::Remote(RemoteError::Corrupt(_))) => ReadOutcome::Corrupt,
            Err(_) => ReadOutcome::Unavailable,
        };
        self.env.world_trace(format_args!(
            "read {id:?}@{node} {offset}+{len} -> {outcome:?}"
        ));
        outcome
    }

    pub fn record_read(
        &self,
        object_index: usize,
        shard: usize,
        offset: u64,
        len: u64,
        outcome: ReadOutcome,
        after_heal: bool,
    ) {
        self.history
            .lock()
            .expect("history")
            .shard_reads
            .push(ShardRead {
                object_index,
                shard,
                offset,
                len,
                outcome,
                after_heal,
            });
    }

    /// Reads a whole object back from any k acknowledged shards and decodes it.
    pub async fn read_object(&self) {
        let Some(object_index) = self.pick_object() else {
            return;
        };
        let (geometry, candidates) = {
            let h = self.history.lock().expect("history");
            let o = &h.objects[object_index];
            let c: Vec<(usize, ShardId, NodeId)> = o
                .shards
                .iter()
                .enumerate()
                .filter(|(_, s)| s.acked)
                .map(|(i, s)| (i, s.id, s.node))
                .collect();
            (o.geometry, c)
        };
        let mut shards: Vec<Option<Vec<u8>>> = vec![None; (geometry.k + geometry.m) as usize];
        let mut have = 0;
        for (index, id, node) in candidates {
            if have == geometry.k {
                break;
            }
            let read =
                shard_rpc::read(&self.env, node, id, 0, geometry.shard_len(), CALL_TIMEOUT).await;
            if let Ok(bytes) = read {
                shards[index] = Some(Vec::from(bytes));
                have += 1;
            }
        }
        let decoded = if have == geometry.k {
            let bytes = erasure::decode_object(self.codec.as_ref(), &geometry, &shards)
                .expect("k verified shards decode");
            Some(Sha256::digest(&bytes).into())
        } else {
            None
        };
        self.env.world_trace(format_args!(
            "get object#{object_index} -> {}",
            decoded.is_some()
        ));
        self.history
            .lock()
            .expect("history")
            .object_reads
            .push(ObjectRead {
                object_index,
                decoded,
            });
    }

    /// The client loop of the safety phase.
    pub async fn run(self, until: Duration) {
        while self.env.clock().now() < until {
            match below(self.env.rng(), 10) {
                0..=4 => self.store_object().await,
                5..=7 => self.read_range().await,
                _ => self.read_object().await,
            }
            let pause = Duration::from_millis(10 + below(self.env.rng(), 90));
            self.env.clock().sleep(pause).await;
        }
    }
}

/// Lets the workload add its own events to the world's trace.
pub trait WorldTrace {
    fn world_trace(&self, event: std::fmt::Arguments<'_>);
}

impl WorldTrace for SimEnv {
    fn world_trace(&self, event: std::fmt::Arguments<'_>) {
        self.world().trace(event);
    }
}
