//! The deep scrub: every local shard hashed against the sha256 its layout replicates,
//! in shard-id order, paced by `scrub_bytes_per_s`, the cursor persisted after every
//! batch so a restarted node resumes where it was. A pass starts `scrub_period` after
//! the last one ended, at once on a node that never finished one, or on request.
//!
//! Shards no layout names (orphans, writes whose commit has not reached this replica)
//! and shards whose layout says unsealed are not the scrub's to judge: the orphan sweep
//! and the presence check take them. Everything else that fails (checksum, length,
//! another sha256, EIO) is queued as corrupt.

use std::sync::Arc;
use std::time::Duration;

use super::Repair;
use super::cursor::{self, ScrubCursor};
use super::queue::Reason;
use crate::data_path::shard_id;
use crate::env::{Clock, Env};
use crate::meta::store::MetaReader;
use crate::shard_store::{ShardError, ShardId};

/// Shards checked between two saves of the cursor.
pub const SCRUB_BATCH_SHARDS: usize = 64;
/// Unused scrub budget carried over, at most.
const PACE_CREDIT: Duration = Duration::from_secs(1);

impl<E: Env> Repair<E> {
    pub(super) async fn scrub_loop(self: Arc<Self>) {
        let disk = self.env.disk().clone();
        let dir = self.config.dir.clone();
        let mut cursor = cursor::load(&disk, &dir).await;
        self.update(|s| s.scrub = cursor.clone());
        // Pacing is over this process's life: (monotonic start, bytes since).
        let mut paced = (self.env.clock().now(), 0u64);
        let mut pending: std::collections::VecDeque<ShardId> = Default::default();
        loop {
            if !cursor.active && !self.scrub_due(&cursor).await {
                continue;
            }
            if !cursor.active {
                cursor = ScrubCursor {
                    active: true,
                    pass_started_ms: self.env.clock().wall_ms(),
                    last_full_pass_ms: cursor.last_full_pass_ms,
                    passes: cursor.passes,
                    ..ScrubCursor::default()
                };
                tracing::info!(node = self.env.node_id(), "scrub pass started");
            }
            // One listing serves a whole pass (shards written behind the cursor wait for
            // the next one); the directory is listed again only when it runs out.
            if pending.is_empty() {
                match self.unchecked(&cursor).await {
                    Some(ids) => pending = ids.into(),
                    None => {
                        self.env.clock().sleep(self.config.presence_interval).await;
                        continue;
                    }
                }
            }
            let remaining = &mut pending;
            if remaining.is_empty() {
                cursor.active = false;
                cursor.last_full_pass_ms = self.env.clock().wall_ms();
                cursor.passes += 1;
                tracing::info!(
                    node = self.env.node_id(),
                    shards = cursor.shards_checked,
                    bad = cursor.bad_found,
                    "scrub pass complete"
                );
            } else {
                let reader = self.raft.reader().ok();
                let batch = remaining.len().min(SCRUB_BATCH_SHARDS);
                for id in remaining.drain(..batch) {
                    let (bytes, bad) = match &reader {
                        Some(reader) => self.scrub_one(reader, &id).await,
                        None => (0, false),
                    };
                    cursor.after = Some(id);
                    cursor.shards_checked += 1;
                    cursor.bytes_checked += bytes;
                    cursor.bad_found += u64::from(bad);
                    paced.1 += bytes;
                    self.pace(&mut paced).await;
                }
            }
            if let Err(error) = cursor::save(&disk, &dir, &cursor).await {
                tracing::warn!(%error, "scrub cursor not saved; the pass resumes from an older one");
            }
            let left = remaining.len() as u64;
            let now_ms = self.env.clock().wall_ms();
            self.update(|s| {
                s.scrub = cursor.clone();
                s.scrub_remaining_shards = if cursor.active { left } else { 0 };
                let ms = now_ms.saturating_sub(cursor.pass_started_ms).max(1);
                s.scrub_rate_bytes_per_s = cursor.bytes_checked * 1000 / ms;
            });
        }
    }

    /// Whether a pass should start now; sleeps a while when not.
    async fn scrub_due(&self, cursor: &ScrubCursor) -> bool {
        let requested = std::mem::take(&mut self.inner.lock().expect("repair").scrub_requested);
        let period_ms = self.config.scrub_period.as_millis() as u64;
        let next_ms = cursor.last_full_pass_ms.saturating_add(period_ms);
        let now_ms = self.env.clock().wall_ms();
        if requested || cursor.passes == 0 || now_ms >= next_ms {
            return true;
        }
        let wait = Duration::from_millis(next_ms - now_ms).min(self.config.presence_interval);
        self.env.clock().sleep(wait).await;
        false
    }

    /// The local shards after the cursor, in id order.
    async fn unchecked(&self, cursor: &ScrubCursor) -> Option<Vec<ShardId>> {
        let mut ids = match self.data.store().list().await {
            Ok(ids) => ids,
            Err(error) => {
                tracing::warn!(%error, "scrub: the shard directory cannot be listed");
                return None;
            }
        };
        ids.sort_unstable();
        ids.retain(|id| cursor.after.is_none_or(|after| *id > after));
        Some(ids)
    }

    /// Hashes one local shard against its replicated sha256: (bytes read, found bad).
    async fn scrub_one(&self, reader: &MetaReader, id: &ShardId) -> (u64, bool) {
        let Ok(Some((_, layout))) = reader.layout_of(id.object) else {
            return (0, false);
        };
        let i = usize::from(id.index);
        match layout.shards.get(i) {
            Some(p) if p.node == self.env.node_id() && p.sealed => {}
            _ => return (0, false),
        }
        if *id != shard_id(layout.data_id, id.index) {
            return (0, false);
        }
        let (bytes, bad) = match self.data.store().verify(id).await {
            Ok((header, sha)) => (header.shard_len_bytes, sha != layout.shards[i].sha256),
            Err(ShardError::NotFound(_)) => return (0, false),
            Err(error) => {
                tracing::warn!(shard = %id.file_name(), %error, "scrub: shard unreadable");
                (0, true)
            }
        };
        if bad {
            tracing::warn!(shard = %id.file_name(), "scrub: shard does not match its replicated sha256");
            self.owe(&layout, id.index, Reason::Corrupt);
        }
        (bytes, bad)
    }

    /// Sleeps so that the bytes hashed since `paced.0` keep to the scrub's budget.
    async fn pace(&self, paced: &mut (Duration, u64)) {
        let rate = self.config.scrub_bytes_per_s;
        if rate == 0 {
            return;
        }
        let now = self.env.clock().now();
        let due = Duration::from_secs_f64(paced.1 as f64 / rate as f64);
        let elapsed = now.saturating_sub(paced.0);
        if elapsed > due + PACE_CREDIT {
            // Idle time (between passes, a slow disk) is not saved up for a burst: at
            // most PACE_CREDIT of budget carries over.
            *paced = (now.saturating_sub(PACE_CREDIT), 0);
        } else if due > elapsed + Duration::from_millis(1) {
            self.env.clock().sleep(due - elapsed).await;
        }
    }
}
