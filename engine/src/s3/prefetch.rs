//! A small object's bytes, read while its GET's ReadIndex is in flight.
//!
//! A GET waits for the ReadIndex (a round to the leader and its quorum) and only then
//! reads the bytes; for a small object the two take about as long. Blobs never change
//! once written (every write gets a fresh data id, and a shard is checked against its
//! block checksums on every read), so the bytes of the blob this replica's metadata
//! names can be fetched meanwhile. They are served only if the up-to-date metadata,
//! read after the ReadIndex, names the same blob and the same span; otherwise they are
//! dropped and the GET reads as it always does. What a GET answers is decided by the
//! up-to-date metadata alone.

use bytes::Bytes;
use futures::channel::mpsc;

use crate::data_path::PieceSink;
use crate::env::Env;
use crate::meta::store::MetaReader;
use crate::meta::{DataLayout, ObjectData, Stored};
use crate::placement::SMALL_BLOB_BYTES_MAX;
use crate::s3::S3;
use crate::s3::types::{ObjectBody, RangeSpec};

/// Bytes of one blob's span, fetched ahead.
pub(crate) struct Prefetched {
    data_id: u128,
    span: (u64, u64),
    pieces: Vec<Bytes>,
}

struct Collect(Vec<Bytes>);

impl PieceSink for Collect {
    async fn put(&mut self, piece: Bytes) -> bool {
        self.0.push(piece);
        true
    }
}

/// The object's one blob, when it is small (replicas): the only kind fetched ahead.
fn small_blob(stored: &Stored) -> Option<&DataLayout> {
    match &stored.meta.data {
        ObjectData::Blob(l) if l.k == 1 && l.size <= SMALL_BLOB_BYTES_MAX => Some(l),
        _ => None,
    }
}

impl Prefetched {
    /// The body to serve, if the up-to-date `stored` names this blob and `span`.
    pub(crate) fn body_for(self, stored: &Stored, span: (u64, u64)) -> Option<ObjectBody> {
        let layout = small_blob(stored)?;
        if layout.data_id != self.data_id || span != self.span {
            return None;
        }
        let (mut tx, rx) = mpsc::channel(self.pieces.len());
        for piece in self.pieces {
            tx.try_send(Ok(piece)).ok()?;
        }
        Some(ObjectBody { first: None, rx })
    }
}

impl<E: Env> S3<E> {
    /// Reads ahead what this replica's metadata says `bucket/key` holds, if it is a small
    /// object; `None` when it is not, or anything fails (the GET then reads normally).
    pub(crate) async fn prefetch(
        &self,
        bucket: &str,
        key: &str,
        range: Option<RangeSpec>,
    ) -> Option<Prefetched> {
        // A lone voter's ReadIndex is immediate: nothing to overlap, only work to add.
        if self.raft.status().voters.len() < 2 {
            return None;
        }
        let local: MetaReader = self.raft.reader().ok()?;
        let stored = self.resolve(&local, bucket, key, None).await.ok()?;
        let layout = small_blob(&stored)?;
        let span = match range {
            Some(spec) => spec.resolve(layout.size).ok()?,
            None => (0, layout.size),
        };
        let mut pieces = Collect(Vec::new());
        self.data
            .read_blob(layout, span.0, span.1, &mut pieces)
            .await
            .ok()?;
        Some(Prefetched {
            data_id: layout.data_id,
            span,
            pieces: pieces.0,
        })
    }
}
