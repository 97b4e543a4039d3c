//! The lifecycle task: every node runs it, the leader acts. Each pass walks the buckets
//! that have lifecycle rules, asks `meta::lifecycle::due` of the leader's replica what
//! their rules make due (current and noncurrent versions, lone delete markers, uploads
//! in progress) and commits it through Raft as `Expire` commands, which apply judges
//! again (`meta::lifecycle`), so a pass on a replica a little behind never expires
//! what its rule no longer covers. Progress is in `hamster_lifecycle_*`.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

use crate::env::{Clock, Env};
use crate::meta::lifecycle::{self, At, Due};
use crate::meta::store::{MetaReader, StoreError};
use crate::meta::{Applied, Command, CommandV1, UploadHead};
use crate::metrics::Expiry;
use crate::raft::handle::Role;
use crate::raft::node::RaftHandle;
use crate::s3::META_TIMEOUT;

/// S3's day.
pub const DAY: Duration = Duration::from_secs(24 * 3600);
/// Keys read from the replica at a time.
const PAGE: usize = 1000;
/// Keys (or uploads) one `Expire` names at most.
const BATCH: usize = 100;

/// The lifecycle task's timing: the length of a "day" (shortened so tests run in
/// seconds), and how often a pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifecycleConfig {
    pub day: Duration,
    pub interval: Duration,
}

impl LifecycleConfig {
    /// A pass 24 times a "day" of length `day`, at most hourly and at most four times
    /// a second.
    pub fn with_day(day: Duration) -> Self {
        let interval = (day / 24).clamp(Duration::from_millis(250), Duration::from_secs(3600));
        Self { day, interval }
    }
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self::with_day(DAY)
    }
}

/// Why a pass stopped early: the replica could not be read, or this node no longer
/// leads or its proposal failed. The next pass tries again.
struct Stop(String);

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop(e.to_string())
    }
}

/// Runs lifecycle passes on this node while it leads.
pub async fn run_lifecycle<E: Env>(env: E, raft: RaftHandle, config: LifecycleConfig) {
    loop {
        env.clock().sleep(config.interval).await;
        if raft.status().role != Role::Leader {
            continue;
        }
        let at = At {
            now_ms: env.clock().wall_ms(),
            day_ms: u64::try_from(config.day.as_millis()).unwrap_or(u64::MAX),
        };
        let pass = Pass {
            clock: env.clock(),
            raft: &raft,
            at,
        };
        match pass.run().await {
            Ok(()) => {
                raft.metrics().lifecycle_passes.inc();
            }
            Err(Stop(error)) => tracing::warn!(%error, "lifecycle pass stopped"),
        }
    }
}

/// One pass: what it needs.
struct Pass<'a, C> {
    clock: &'a C,
    raft: &'a RaftHandle,
    at: At,
}

impl<C: Clock> Pass<'_, C> {
    /// Every bucket with rules.
    async fn run(&self) -> Result<(), Stop> {
        let (buckets, mut uploads) = {
            let reader = self.read()?;
            let mut uploads: BTreeMap<String, Vec<(String, UploadHead)>> = BTreeMap::new();
            for (id, head) in reader.uploads()? {
                uploads
                    .entry(head.bucket.clone())
                    .or_default()
                    .push((id, head));
            }
            (reader.buckets()?, uploads)
        };
        for (bucket, _) in buckets {
            let uploads = uploads.remove(&bucket).unwrap_or_default();
            self.bucket(&bucket, &uploads).await?;
        }
        Ok(())
    }

    fn read(&self) -> Result<MetaReader, Stop> {
        self.raft.reader().map_err(|e| Stop(e.to_string()))
    }

    /// Expires what `bucket`'s rules make due at `at`, a page of keys at a time (each page
    /// read in a fresh view, so a long pass holds no old state).
    async fn bucket(&self, bucket: &str, uploads: &[(String, UploadHead)]) -> Result<(), Stop> {
        let at = self.at;
        let Some(rules) = lifecycle::config(&self.read()?, bucket)? else {
            return Ok(());
        };
        if !rules.iter().any(|r| r.enabled) {
            return Ok(());
        }
        let mut after: Option<String> = None;
        let mut batch = Vec::new();
        loop {
            let found: Vec<(String, Due)> = {
                let reader = self.read()?;
                let from = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                let page = reader.objects_from(bucket, from, PAGE)?;
                after = page.last().map(|(k, _)| k.clone());
                let mut found = Vec::new();
                for (key, _) in &page {
                    let due = lifecycle::due(&reader, (bucket, key), &rules, at)?;
                    if !due.is_empty() {
                        found.push((key.clone(), due));
                    }
                }
                if page.len() < PAGE {
                    after = None;
                }
                found
            };
            for (key, due) in found {
                batch.push((key, due.versions()));
                if batch.len() == BATCH {
                    self.expire(bucket, std::mem::take(&mut batch), Vec::new())
                        .await?;
                }
            }
            if after.is_none() {
                break;
            }
        }
        if !batch.is_empty() {
            self.expire(bucket, batch, Vec::new()).await?;
        }
        let uploads: Vec<String> = uploads
            .iter()
            .filter(|(_, head)| lifecycle::upload_due(&rules, head, at))
            .map(|(id, _)| id.clone())
            .collect();
        for chunk in uploads.chunks(BATCH) {
            self.expire(bucket, Vec::new(), chunk.to_vec()).await?;
        }
        Ok(())
    }

    /// Proposes one `Expire`; a proposal that does not commit in time (this node lost
    /// its leadership, say) ends the pass.
    async fn expire(
        &self,
        bucket: &str,
        keys: Vec<(String, Vec<u64>)>,
        uploads: Vec<String>,
    ) -> Result<(), Stop> {
        let command = CommandV1::Expire {
            bucket: bucket.into(),
            keys,
            uploads,
            at: self.at,
        };
        let proposed = self.raft.propose(Command::V1(command));
        let Ok(applied) = crate::env::timeout(self.clock, META_TIMEOUT, proposed).await else {
            return Err(Stop("the proposal did not commit in time".into()));
        };
        match applied {
            Ok(Applied::Expired(done)) => {
                let metrics = self.raft.metrics();
                metrics.expired(Expiry::Current, done.current);
                metrics.expired(Expiry::Noncurrent, done.noncurrent);
                metrics.expired(Expiry::DeleteMarker, done.markers);
                metrics.expired(Expiry::Upload, done.uploads);
                if done != lifecycle::Expired::default() {
                    tracing::info!(bucket, ?done, "lifecycle expired");
                }
                Ok(())
            }
            Ok(other) => Err(Stop(format!("unexpected {other:?}"))),
            Err(e) => Err(Stop(e.to_string())),
        }
    }
}
