//! The orphan sweep: removes shard files no committed object, part or upload refers
//! to (writes that never committed, overwritten and deleted objects, aborted uploads)
//! and shards whose placement repair moved to a spare.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::env::{Clock, Env, NodeId};
use crate::raft::node::RaftHandle;
use crate::shard_store::{ShardId, ShardStore};

/// How often the orphan sweep looks at this node's shards.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(300);
/// A shard seen unreferenced this long ago, and still unreferenced, is removed. It must
/// outlast any window between a blob's seal and its metadata commit: a proposal that
/// sits uncommitted longer (a leaderless stretch that long) could commit after its
/// shards were judged orphans. Not guarded beyond this margin.
pub const SWEEP_GRACE: Duration = Duration::from_secs(900);

/// The orphan sweep's timing.
#[derive(Debug, Clone, Copy)]
pub struct SweepConfig {
    pub interval: Duration,
    pub grace: Duration,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            interval: SWEEP_INTERVAL,
            grace: SWEEP_GRACE,
        }
    }
}

/// Whether the metadata places shard `id` on `node`: its blob is referenced and the
/// layout puts that shard index here (repair may have moved it to a spare). A ref whose
/// layout cannot be found counts as holding (never remove on doubt).
pub(crate) fn holds(
    sites: &crate::meta::store::Sites,
    id: &ShardId,
    node: NodeId,
) -> Result<bool, crate::meta::store::StoreError> {
    let Some(data_ref) = sites.data_ref(id.object)? else {
        return Ok(false);
    };
    let layout = crate::meta::repair::layout_at(sites, id.object, &data_ref)?;
    Ok(match layout {
        Some(layout) => {
            *id != crate::data_path::shard_id(id.object, id.index)
                || layout
                    .shards
                    .get(usize::from(id.index))
                    .is_some_and(|p| p.node == node)
        }
        None => true,
    })
}

/// Removes shards no object, part or upload refers to (writes that never committed,
/// overwritten and deleted objects), and shards whose placement repair moved to a spare. A shard is removed only when it was unreferenced
/// on a pass at least `grace` ago and still is, judged on a replica brought up to date
/// by ReadIndex: a write in flight (sealed, commit not yet applied) is never taken, and
/// a node cut off from its leader removes nothing.
pub async fn sweep_orphans<E: Env>(
    env: E,
    store: ShardStore<E::Disk>,
    raft: RaftHandle,
    config: SweepConfig,
) {
    let mut suspects: BTreeMap<ShardId, Duration> = BTreeMap::new();
    loop {
        env.clock().sleep(config.interval).await;
        let ids = match store.list().await {
            Ok(ids) => ids,
            Err(error) => {
                tracing::warn!(%error, "orphan sweep: listing failed");
                continue;
            }
        };
        let current =
            crate::env::timeout(env.clock(), crate::s3::META_TIMEOUT, raft.read_index()).await;
        let Ok(Ok(_)) = current else {
            continue; // no leader: judge nothing
        };
        let Ok(sites) = raft.reader().and_then(|r| Ok(r.sites()?)) else {
            continue;
        };
        let now = env.clock().now();
        let mut next = BTreeMap::new();
        for id in ids {
            match holds(&sites, &id, env.node_id()) {
                Ok(true) => {}
                Ok(false) => {
                    let since = suspects.get(&id).copied().unwrap_or(now);
                    if now.saturating_sub(since) >= config.grace {
                        match store.remove(&id).await {
                            Ok(()) | Err(crate::shard_store::ShardError::NotFound(_)) => {
                                tracing::info!(shard = %id.file_name(), "orphan shard removed");
                            }
                            Err(error) => {
                                tracing::warn!(%error, "orphan shard not removed");
                                next.insert(id, since);
                            }
                        }
                    } else {
                        next.insert(id, since);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "orphan sweep: metadata unreadable");
                    break;
                }
            }
        }
        suspects = next;
    }
}
