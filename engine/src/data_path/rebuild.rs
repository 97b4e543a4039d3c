//! Rebuilding one shard of a blob from k verified survivors, onto a chosen node.
//!
//! Invariants (repair's safety rests on them):
//! - only chunks that passed their block checksums are fed into the decode: a survivor
//!   that fails is marked bad for the rest of the rebuild, reported, and never used;
//! - the rebuilt bytes must hash to the sha256 the layout replicates for that shard
//!   before the shard is sealed; otherwise the temporary is dropped and nothing is
//!   written (`RebuildError::HashMismatch`);
//! - fewer than k readable survivors for any stripe fails with the count that was
//!   found (`RebuildError::TooFewShards`), which repair records as a lost blob;
//! - memory is one stripe's chunks; the pace is at most `bytes_per_s` of shard bytes
//!   written, so repair traffic keeps to its own budget.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::DataPath;
use crate::env::{Clock, Env, NodeId};
use crate::erasure::CodecId;
use crate::meta::DataLayout;
use crate::shard_store::{BLOCK_SIZE_BYTES_DEFAULT, SealedShard, ShardHeader};

/// Why a shard could not be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RebuildError {
    /// Fewer than k shards of some stripe could be read and verified.
    #[error("{good} of {shards} shards readable, {need} needed")]
    TooFewShards {
        good: usize,
        need: usize,
        shards: usize,
    },
    /// The decoded shard does not hash to its replicated sha256: nothing was written.
    #[error("rebuilt shard {index} does not hash to its replicated sha256")]
    HashMismatch { index: u16 },
    /// The target node could not take the shard.
    #[error("target {node} did not take the shard: {why}")]
    Target { node: NodeId, why: String },
}

impl<E: Env> DataPath<E> {
    /// Rebuilds shard `index` of `layout` from the other shards and stores it, sealed,
    /// on `target` (this node's store or a remote holder's). Returns what was sealed.
    pub async fn rebuild_shard(
        &self,
        layout: &DataLayout,
        index: u16,
        target: NodeId,
        bytes_per_s: u64,
    ) -> Result<SealedShard, RebuildError> {
        let i = usize::from(index);
        assert!(i < layout.shards.len(), "shard index inside the layout");
        let geometry = Self::geometry(layout);
        let header = ShardHeader {
            id: super::shard_id(layout.data_id, index),
            codec: CodecId::ReedSolomonGf8,
            k: layout.k,
            m: layout.m,
            block_size_bytes: BLOCK_SIZE_BYTES_DEFAULT,
            chunk_size_bytes: layout.chunk_size_bytes,
            object_len_bytes: layout.size,
            shard_len_bytes: geometry.shard_len(),
        };
        let target_failed = |why: String| RebuildError::Target { node: target, why };
        // The shard being rebuilt is never a source, nor is one never sealed.
        let mut bad: Vec<bool> = layout.shards.iter().map(|s| !s.sealed).collect();
        bad[i] = true;
        // The first stripe is decoded before the target is opened: a blob without k
        // good shards costs its holders no file at all.
        let first = self.rebuild_chunk(layout, 0, i, &mut bad).await?;
        let Some(mut sink) = self.open_sink(target, header).await else {
            return Err(target_failed("could not create the shard".into()));
        };
        let mut hash = Sha256::new();
        let mut written = 0u64;
        let started = self.env.clock().now();
        let mut first = Some(first);
        for stripe in 0..geometry.stripe_count() {
            let chunk = match first.take() {
                Some(chunk) => Ok(chunk),
                None => self.rebuild_chunk(layout, stripe, i, &mut bad).await,
            };
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    sink.abort().await;
                    return Err(e);
                }
            };
            hash.update(&chunk);
            if let Err(why) = sink.send(&self.env, &chunk).await {
                sink.abort().await;
                return Err(target_failed(why));
            }
            written += chunk.len() as u64;
            self.pace(started, written, bytes_per_s).await;
        }
        let sha256: [u8; 32] = hash.finalize().into();
        if sha256 != layout.shards[i].sha256 {
            sink.abort().await;
            return Err(RebuildError::HashMismatch { index });
        }
        let sealed = sink
            .seal(&self.env, self.store().metrics())
            .await
            .map_err(target_failed)?;
        if sealed.sha256 != sha256 {
            return Err(target_failed("sealed other bytes than were sent".into()));
        }
        Ok(sealed)
    }

    /// Chunk `i` of `stripe`, decoded from any k verified chunks of the others.
    async fn rebuild_chunk(
        &self,
        layout: &DataLayout,
        stripe: u64,
        i: usize,
        bad: &mut [bool],
    ) -> Result<Vec<u8>, RebuildError> {
        let geometry = Self::geometry(layout);
        let mut chunks = self
            .decode_stripe(layout, &geometry, stripe, bad)
            .await
            .map_err(|good| RebuildError::TooFewShards {
                good,
                need: usize::from(layout.k),
                shards: layout.shards.len(),
            })?;
        Ok(chunks[i].take().expect("every chunk decoded"))
    }

    /// Sleeps so that `written` bytes since `started` stay within `bytes_per_s`.
    async fn pace(&self, started: Duration, written: u64, bytes_per_s: u64) {
        if bytes_per_s == 0 {
            return;
        }
        let due = Duration::from_secs_f64(written as f64 / bytes_per_s as f64);
        let elapsed = self.env.clock().now().saturating_sub(started);
        if due > elapsed {
            self.env.clock().sleep(due - elapsed).await;
        }
    }
}
