//! Reading a blob back ([`DataPath::read_blob`]): the data-shard slices a range needs,
//! read directly; a stripe with a failed slice is decoded from any k verified chunks,
//! as rebuild ([`super::rebuild`]) decodes every stripe. A shard never sealed, or one
//! that failed once, is not read again by the same read.

use bytes::Bytes;

use super::{DataPath, PieceSink, READ_TIMEOUT, ReadError, shard_id};
use crate::env::{Clock, Env, NodeId};
use crate::erasure::{Geometry, ShardSlice, reconstruct_owned};
use crate::meta::DataLayout;
use crate::metrics::Stage;
use crate::shard_store::rpc::{self as shard_rpc, CallError, RemoteError};
use crate::shard_store::{ShardError, ShardId};

enum Fetch {
    Corrupt(String),
    Unreachable(String),
}

impl<E: Env> DataPath<E> {
    /// Reads verified bytes of one shard, from this node's store or its holder.
    async fn fetch(
        &self,
        node: NodeId,
        id: ShardId,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, String> {
        let began = self.env.clock().now();
        let local = node == self.env.node_id();
        let result = if local {
            self.store
                .read_range(&id, offset, len)
                .await
                .map(Bytes::from)
                .map_err(|e| match e {
                    ShardError::Corrupt { .. } | ShardError::Truncated { .. } => {
                        Fetch::Corrupt(e.to_string())
                    }
                    ShardError::NotFound(_) => Fetch::Corrupt("missing".into()),
                    other => Fetch::Unreachable(other.to_string()),
                })
        } else {
            shard_rpc::read(&self.env, node, id, offset, len, READ_TIMEOUT)
                .await
                .map_err(|e| match e {
                    CallError::Remote(RemoteError::Corrupt(r)) => Fetch::Corrupt(r),
                    CallError::Remote(RemoteError::NotFound) => Fetch::Corrupt("missing".into()),
                    other => Fetch::Unreachable(other.to_string()),
                })
        };
        let stage = if local {
            Stage::FetchLocal
        } else {
            Stage::FetchRemote
        };
        self.store
            .metrics()
            .stage(stage, began, self.env.clock().now());
        result.map_err(|failure| match failure {
            Fetch::Corrupt(reason) => {
                self.report(node, id, reason.clone());
                reason
            }
            Fetch::Unreachable(reason) => reason,
        })
    }

    /// Streams bytes `[start, end)` of the blob to `out`, in order, in pieces.
    pub async fn read_blob(
        &self,
        layout: &DataLayout,
        start: u64,
        end: u64,
        out: &mut impl PieceSink,
    ) -> Result<(), ReadError> {
        assert!(start <= end && end <= layout.size, "range inside the blob");
        if start == end {
            return Ok(());
        }
        let geometry = Self::geometry(layout);
        // Shards known bad for this read: never sealed, or failed once.
        let mut bad: Vec<bool> = layout.shards.iter().map(|s| !s.sealed).collect();
        let stripe_size = geometry.stripe_size_bytes();
        let mut degraded = false;
        for stripe in start / stripe_size..=(end - 1) / stripe_size {
            let base = stripe * stripe_size;
            let lo = start.max(base);
            let hi = end.min(base + geometry.stripe_len(stripe));
            let slices = geometry.map_range(lo, hi);
            // The shard each slice is read from: its own, or for replicas the nearest.
            let sources: Vec<usize> = slices
                .iter()
                .map(|s| self.source(layout, &bad, s.shard_index as usize))
                .collect();
            let direct = if sources.iter().any(|&i| bad[i]) {
                None
            } else {
                let reads = slices.iter().zip(&sources).map(|(s, &i)| {
                    let id = shard_id(layout.data_id, i as u16);
                    self.fetch(layout.shards[i].node, id, s.shard_offset, s.len)
                });
                let results = futures::future::join_all(reads).await;
                let mut pieces = Vec::with_capacity(results.len());
                for (&i, r) in sources.iter().zip(results) {
                    match r {
                        Ok(bytes) => pieces.push(bytes),
                        Err(_) => bad[i] = true,
                    }
                }
                (pieces.len() == slices.len()).then_some(pieces)
            };
            let pieces = match direct {
                Some(pieces) => pieces,
                None => {
                    if !std::mem::replace(&mut degraded, true) {
                        self.store.metrics().degraded_reads.inc();
                    }
                    self.rebuild_slices(layout, &geometry, stripe, &slices, &mut bad)
                        .await?
                }
            };
            for piece in pieces {
                if !out.put(piece).await {
                    return Err(ReadError::ReaderGone);
                }
            }
        }
        Ok(())
    }

    /// With k = 1 every shard is a copy of the data at the same offsets (the codec's
    /// parity rows are all ones): read this node's copy when it has a usable one, no
    /// network hop, else `index`'s.
    fn source(&self, layout: &DataLayout, bad: &[bool], index: usize) -> usize {
        let here = self.env.node_id();
        let local = layout.shards.iter().position(|s| s.node == here);
        match local {
            Some(i) if layout.k == 1 && !bad[i] => i,
            _ => index,
        }
    }

    /// Rebuilds one stripe from any k verified chunks and cuts `slices` out of it.
    async fn rebuild_slices(
        &self,
        layout: &DataLayout,
        geometry: &Geometry,
        stripe: u64,
        slices: &[ShardSlice],
        bad: &mut [bool],
    ) -> Result<Vec<Bytes>, ReadError> {
        let offset = geometry.shard_offset(stripe);
        let chunks = self
            .decode_stripe(layout, geometry, stripe, bad)
            .await
            .map_err(|readable| ReadError::Unavailable {
                stripe,
                readable,
                need: usize::from(layout.k),
                shards: layout.shards.len(),
            })?;
        Ok(slices
            .iter()
            .map(|s| {
                let chunk = chunks[s.shard_index as usize]
                    .as_ref()
                    .expect("data chunks rebuilt");
                let at = (s.shard_offset - offset) as usize;
                Bytes::copy_from_slice(&chunk[at..at + s.len as usize])
            })
            .collect())
    }

    /// Every chunk of `stripe`, decoded from k chunks read with their block checksums
    /// (data shards first: with all of them no decode is needed). A shard that fails is
    /// marked in `bad` and never used; shards already marked are never read. Fewer than
    /// k readable: `Err` with the number that were.
    pub(super) async fn decode_stripe(
        &self,
        layout: &DataLayout,
        geometry: &Geometry,
        stripe: u64,
        bad: &mut [bool],
    ) -> Result<Vec<Option<Vec<u8>>>, usize> {
        let (k, total) = (usize::from(layout.k), layout.shards.len());
        let chunk_len = geometry.chunk_len(stripe);
        let offset = geometry.shard_offset(stripe);
        let mut chunks: Vec<Option<Vec<u8>>> = vec![None; total];
        loop {
            let have = chunks.iter().filter(|c| c.is_some()).count();
            if have == k {
                break;
            }
            let wanted: Vec<usize> = (0..total)
                .filter(|&i| !bad[i] && chunks[i].is_none())
                .take(k - have)
                .collect();
            if wanted.len() < k - have {
                return Err(have + wanted.len());
            }
            let reads = wanted.iter().map(|&i| {
                let id = shard_id(layout.data_id, i as u16);
                self.fetch(layout.shards[i].node, id, offset, chunk_len)
            });
            for (&i, result) in wanted.iter().zip(futures::future::join_all(reads).await) {
                match result {
                    Ok(bytes) => chunks[i] = Some(Vec::from(bytes)),
                    Err(_) => bad[i] = true,
                }
            }
        }
        let codec = self.codec(layout.k, layout.m);
        reconstruct_owned(&*codec, &mut chunks).expect("k verified chunks rebuild a stripe");
        Ok(chunks)
    }
}
