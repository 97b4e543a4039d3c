//! The data path: a blob goes erasure-coded to its holders, and comes back from any k
//! of them. The node that receives a request coordinates; object data moves only here,
//! never through the Raft log.
//!
//! **Write** ([`DataPath::write_blob`]). The body is read one stripe at a time (k
//! chunks), encoded into m parity chunks, and chunk i goes to shard i's holder: the
//! local shard store when that is this node, otherwise a streamed store call. Every
//! transfer has a window (`shard_rpc::TRANSFER_WINDOW_FRAMES_MAX` frames of
//! [`FRAME_BYTES`]) and the next stripe is read only when every live holder took this
//! one, so memory is one stripe, its parity and the windows, whatever the blob's size.
//! A holder that fails (refuses, breaks, makes no progress for [`PROGRESS_TIMEOUT`]) is
//! dropped and the write goes on without it while at least the floor
//! (`Profile::write_floor`: all shards without parity, else k + 1) is alive. The write
//! succeeds when the floor sealed; the layout marks the shards that did not
//! (`ShardPlacement::sealed`), which repair owes. The coordinator hashes every shard it
//! encodes, so each placement carries the sha256 its shard must have, sealed or not: a
//! holder that sealed other bytes is counted as not sealed, and repair checks a rebuilt
//! shard against that hash before sealing it ([`rebuild`]). Below the floor the write fails and
//! removes what was sealed; an unsealed shard is never visible anyway.
//!
//! **Read** ([`DataPath::read_blob`]). A byte range maps to the data-shard slices that
//! hold it (`Geometry::map_range`); those are read directly, verified block by block,
//! with no decoding. When one fails (holder down, shard corrupt or missing), that stripe
//! is rebuilt from any k verified chunks, data shards first, and the failed shard is
//! avoided for the rest of the read. A shard that fails its checksum is never used and
//! is reported ([`DataPath::take_reported`]). Fewer than k readable shards is an error,
//! never wrong bytes. The read side is in [`read`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::env::{BodySender, BodyStream, Clock, Env, NodeId, timeout};
use crate::erasure::{CodecId, Geometry, ReedSolomon};
use crate::meta::{DataLayout, ShardPlacement};
use crate::metrics::{Metrics, Stage};
use crate::placement::{CHUNK_SIZE_BYTES, Profile};
use crate::shard_store::rpc::{self as shard_rpc, CallError};
mod read;
mod rebuild;
pub use rebuild::RebuildError;

use crate::shard_store::{
    BLOCK_SIZE_BYTES_DEFAULT, SealedShard, ShardError, ShardHeader, ShardId, ShardStore,
    ShardWriter,
};

/// Size of the frames a shard transfer is cut into.
pub const FRAME_BYTES: usize = 256 * 1024;
/// A holder that takes no frame (or gives no answer) for this long is dropped.
pub const PROGRESS_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a holder may take to seal (fsync, rename, directory fsync) after the last frame.
pub const SEAL_TIMEOUT: Duration = Duration::from_secs(60);
/// The whole transfer of one shard, however large.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// One ranged read from a holder.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Removing a shard after a failed write.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Corrupt-shard reports kept for repair; older ones are dropped beyond this.
const REPORTED_MAX: usize = 1024;

/// The file of shard `index` of blob `data_id`.
pub fn shard_id(data_id: u128, index: u16) -> ShardId {
    ShardId {
        object: data_id,
        version: 1,
        part: 0,
        index,
    }
}

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The body ended before the length it announced.
    #[error("body ended after {got} of {expected} bytes")]
    Truncated { expected: u64, got: u64 },
    /// The body went on past the length it announced.
    #[error("body longer than its announced {expected} bytes")]
    TooLong { expected: u64 },
    /// The body failed underneath (connection cut, malformed framing, ...).
    #[error("body failed: {0}")]
    Failed(String),
    /// The body does not hash to the x-amz-content-sha256 it was signed with.
    #[error("body does not match its x-amz-content-sha256")]
    Sha256Mismatch,
    /// A chunk of a signed aws-chunked body carries a wrong signature.
    #[error("a chunk signature does not match")]
    ChunkSignature,
    /// The body breaks a limit of this service (a chunk too large, say).
    #[error("{0}")]
    OverLimit(String),
}

/// A request body, read in pieces.
pub trait ByteSource: Send {
    /// The next piece; `Ok(None)` at the end.
    fn next_bytes(&mut self) -> impl Future<Output = Result<Option<Bytes>, SourceError>> + Send;
}

impl ByteSource for BodyStream {
    async fn next_bytes(&mut self) -> Result<Option<Bytes>, SourceError> {
        self.next()
            .await
            .map_err(|_| SourceError::Failed("stream cut off".into()))
    }
}

/// Where a read's pieces go, in order.
pub trait PieceSink: Send {
    /// Hands over one piece; false when whoever consumes the pieces went away.
    fn put(&mut self, piece: Bytes) -> impl Future<Output = bool> + Send;
}

impl PieceSink for BodySender {
    async fn put(&mut self, piece: Bytes) -> bool {
        self.send(piece).await.is_ok()
    }
}

/// Bytes in memory, as a source (tests, tools, the simulator's clients).
pub struct BytesSource(pub Option<Bytes>);

impl ByteSource for BytesSource {
    async fn next_bytes(&mut self) -> Result<Option<Bytes>, SourceError> {
        Ok(self.0.take())
    }
}

/// Reads exactly `n` bytes of `source` into `buf` (replacing its content), keeping what
/// comes beyond them in `pending`.
async fn read_exact(
    source: &mut impl ByteSource,
    pending: &mut Bytes,
    buf: &mut Vec<u8>,
    n: usize,
    (done, expected): (u64, u64),
) -> Result<(), SourceError> {
    buf.clear();
    while buf.len() < n {
        if pending.is_empty() {
            match source.next_bytes().await? {
                Some(b) => *pending = b,
                None => {
                    let got = done + buf.len() as u64;
                    return Err(SourceError::Truncated { expected, got });
                }
            }
        }
        let take = (n - buf.len()).min(pending.len());
        buf.extend_from_slice(&pending.split_to(take));
    }
    Ok(())
}

/// Why a blob could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Body(#[from] SourceError),
    /// Too few holders sealed their shard (or stayed alive): nothing was kept.
    #[error("only {stored} of {shards} shards could be stored; {floor} are needed")]
    BelowFloor {
        /// Shards sealed, or holders still taking the stream when it stopped.
        stored: usize,
        floor: usize,
        shards: usize,
    },
}

/// Why a blob could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Fewer than k shards of a stripe could be read and verified.
    #[error("stripe {stripe}: {readable} of {shards} shards readable, {need} needed")]
    Unavailable {
        stripe: u64,
        readable: usize,
        need: usize,
        shards: usize,
    },
    /// Whoever consumes the bytes went away.
    #[error("reader gone")]
    ReaderGone,
}

/// A shard that failed its checksum (or went missing) on a read: repair's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardReport {
    pub node: NodeId,
    pub id: ShardId,
    pub reason: String,
}

/// What a blob to be written looks like.
#[derive(Debug, Clone)]
pub struct WriteSpec {
    pub data_id: u128,
    pub size: u64,
    pub profile: Profile,
    /// Shard i goes to `holders[i]`; as many as the profile has shards.
    pub holders: Vec<NodeId>,
}

/// One shard being written.
enum Sink<E: Env> {
    Local(Box<ShardWriter<E::Disk>>),
    Remote {
        tx: BodySender,
        answer: futures::channel::oneshot::Receiver<Result<SealedShard, CallError>>,
    },
}

impl<E: Env> Sink<E> {
    async fn send(&mut self, env: &E, chunk: &[u8]) -> Result<(), String> {
        match self {
            Sink::Local(writer) => writer.write(chunk).await.map_err(|e| e.to_string()),
            Sink::Remote { tx, .. } => {
                for frame in chunk.chunks(FRAME_BYTES) {
                    let sent = timeout(
                        env.clock(),
                        PROGRESS_TIMEOUT,
                        tx.send(frame.to_vec().into()),
                    );
                    match sent.await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Err(e.to_string()),
                        Err(_) => return Err("no progress".into()),
                    }
                }
                Ok(())
            }
        }
    }

    async fn seal(self, env: &E, metrics: &Metrics) -> Result<SealedShard, String> {
        let began = env.clock().now();
        let (sealed, stage) = match self {
            Sink::Local(writer) => (
                writer.seal().await.map_err(|e| e.to_string()),
                Stage::SealLocal,
            ),
            Sink::Remote { tx, answer } => {
                let finished = async {
                    tx.finish().await.map_err(|e| e.to_string())?;
                    match answer.await {
                        Ok(result) => result.map_err(|e| e.to_string()),
                        Err(_) => Err("holder answer lost".to_string()),
                    }
                };
                let sealed = timeout(env.clock(), SEAL_TIMEOUT, finished)
                    .await
                    .unwrap_or(Err("no answer after the last frame".into()));
                (sealed, Stage::SealRemote)
            }
        };
        metrics.stage(stage, began, env.clock().now());
        sealed
    }

    /// Gives the shard up: a local temporary is removed; a remote stream is dropped
    /// unfinished, which makes its holder remove its temporary.
    async fn abort(self) {
        if let Sink::Local(writer) = self {
            let _ = writer.abort().await;
        }
    }
}

/// The data path of one node.
pub struct DataPath<E: Env> {
    env: E,
    store: ShardStore<E::Disk>,
    chunk_size_bytes: u32,
    codecs: Mutex<BTreeMap<(u16, u16), Arc<ReedSolomon>>>,
    reported: Mutex<Vec<ShardReport>>,
}

impl<E: Env> DataPath<E> {
    pub fn new(env: E, store: ShardStore<E::Disk>) -> Self {
        Self {
            env,
            store,
            chunk_size_bytes: CHUNK_SIZE_BYTES,
            codecs: Mutex::new(BTreeMap::new()),
            reported: Mutex::new(Vec::new()),
        }
    }

    /// Blobs written from now on use chunks of this size (the layout records it).
    pub fn with_chunk_size(mut self, chunk_size_bytes: u32) -> Self {
        assert!(chunk_size_bytes > 0, "chunk size");
        self.chunk_size_bytes = chunk_size_bytes;
        self
    }

    pub fn env(&self) -> &E {
        &self.env
    }

    /// This node's shard store.
    pub fn store(&self) -> &ShardStore<E::Disk> {
        &self.store
    }

    fn codec(&self, k: u16, m: u16) -> Arc<ReedSolomon> {
        let mut codecs = self.codecs.lock().expect("codec cache");
        codecs
            .entry((k, m))
            .or_insert_with(|| {
                Arc::new(ReedSolomon::new(u32::from(k), u32::from(m)).expect("valid profile"))
            })
            .clone()
    }

    /// Whether reports are waiting for [`DataPath::take_reported`].
    pub fn has_reported(&self) -> bool {
        !self.reported.lock().expect("reports").is_empty()
    }

    /// Corrupt or missing shards found by reads since the last call.
    pub fn take_reported(&self) -> Vec<ShardReport> {
        std::mem::take(&mut *self.reported.lock().expect("reports"))
    }

    /// Reports the shards a committed degraded write could not seal, so that repair
    /// owes them from the moment of the commit.
    pub fn report_unsealed(&self, layout: &DataLayout) {
        for (i, placement) in layout.shards.iter().enumerate() {
            if !placement.sealed {
                let id = shard_id(layout.data_id, i as u16);
                self.report(placement.node, id, "not sealed by its write".into());
            }
        }
    }

    fn report(&self, node: NodeId, id: ShardId, reason: String) {
        tracing::warn!(node, shard = %id.file_name(), %reason, "shard unusable; reported for repair");
        let mut reported = self.reported.lock().expect("reports");
        if reported.len() == REPORTED_MAX {
            reported.remove(0);
        }
        reported.push(ShardReport { node, id, reason });
    }

    fn geometry(layout: &DataLayout) -> Geometry {
        Geometry::new(
            u32::from(layout.k),
            u32::from(layout.m),
            layout.chunk_size_bytes,
            layout.size,
        )
    }

    async fn open_sink(&self, holder: NodeId, header: ShardHeader) -> Option<Sink<E>> {
        if holder == self.env.node_id() {
            match self.store.create(header, self.env.rng()).await {
                Ok(writer) => Some(Sink::Local(Box::new(writer))),
                Err(error) => {
                    tracing::warn!(%error, "local shard could not be created");
                    None
                }
            }
        } else {
            let (tx, answer) = shard_rpc::open_store(&self.env, holder, header, TRANSFER_TIMEOUT);
            Some(Sink::Remote { tx, answer })
        }
    }

    /// Writes `spec.size` bytes of `source` as a blob; see the module docs for the rule.
    pub async fn write_blob(
        &self,
        source: &mut impl ByteSource,
        spec: &WriteSpec,
    ) -> Result<DataLayout, WriteError> {
        let began = self.env.clock().now();
        let written = self.write_stripes(source, spec).await;
        let metrics = self.store.metrics();
        metrics.stage(Stage::WriteBlob, began, self.env.clock().now());
        match &written {
            Ok(layout) if layout.sealed_shards() < layout.shards.len() => {
                metrics.degraded_writes.inc();
            }
            Err(WriteError::BelowFloor { .. }) => {
                metrics.write_floor_refusals.inc();
            }
            _ => {}
        }
        written
    }

    async fn write_stripes(
        &self,
        source: &mut impl ByteSource,
        spec: &WriteSpec,
    ) -> Result<DataLayout, WriteError> {
        let Profile { k, m } = spec.profile;
        assert_eq!(
            spec.holders.len(),
            spec.profile.shards(),
            "a holder per shard"
        );
        assert!(spec.size > 0, "an empty blob has no shards");
        let chunk = self.chunk_size_bytes;
        let geometry = Geometry::new(u32::from(k), u32::from(m), chunk, spec.size);
        let floor = spec.profile.write_floor();
        let shards = spec.profile.shards();
        let mut sinks: Vec<Option<Sink<E>>> = Vec::with_capacity(shards);
        for (i, &holder) in spec.holders.iter().enumerate() {
            let header = ShardHeader {
                id: shard_id(spec.data_id, i as u16),
                codec: CodecId::ReedSolomonGf8,
                k,
                m,
                block_size_bytes: BLOCK_SIZE_BYTES_DEFAULT,
                chunk_size_bytes: chunk,
                object_len_bytes: spec.size,
                shard_len_bytes: geometry.shard_len(),
            };
            sinks.push(self.open_sink(holder, header).await);
        }
        let mut hashes = vec![Sha256::new(); shards];
        let streamed = self
            .stream_stripes(source, spec, &geometry, &mut sinks, &mut hashes)
            .await;
        if let Err(e) = streamed {
            abort_all(sinks).await;
            return Err(e);
        }
        // Seal every live shard at once; the slowest fsync sets the pace.
        let env = &self.env;
        let seals = sinks.into_iter().map(|sink| async move {
            match sink {
                Some(sink) => Some(sink.seal(env, self.store.metrics()).await),
                None => None,
            }
        });
        let results = futures::future::join_all(seals).await;
        let mut placements = Vec::with_capacity(shards);
        for (i, (result, hash)) in results.into_iter().zip(hashes).enumerate() {
            let node = spec.holders[i];
            let sha256: [u8; 32] = hash.finalize().into();
            let sealed = match result {
                Some(Ok(sealed)) if sealed.sha256 == sha256 => Some(sealed),
                Some(Ok(_)) => {
                    tracing::warn!(node, shard = i, "holder sealed other bytes than were sent");
                    None
                }
                Some(Err(error)) => {
                    tracing::warn!(node, shard = i, %error, "shard not sealed");
                    None
                }
                None => None,
            };
            placements.push(ShardPlacement {
                node,
                sha256,
                sealed: sealed.is_some(),
            });
        }
        let layout = DataLayout {
            data_id: spec.data_id,
            size: spec.size,
            codec: CodecId::ReedSolomonGf8,
            k,
            m,
            chunk_size_bytes: chunk,
            shards: placements,
        };
        let sealed = layout.sealed_shards();
        if sealed < floor {
            self.remove_blob(&layout).await;
            return Err(WriteError::BelowFloor {
                stored: sealed,
                floor,
                shards,
            });
        }
        Ok(layout)
    }

    /// Reads, encodes and sends every stripe; drops holders that fail.
    async fn stream_stripes(
        &self,
        source: &mut impl ByteSource,
        spec: &WriteSpec,
        geometry: &Geometry,
        sinks: &mut [Option<Sink<E>>],
        hashes: &mut [Sha256],
    ) -> Result<(), WriteError> {
        let Profile { k, m } = spec.profile;
        let floor = spec.profile.write_floor();
        let codec = self.codec(k, m);
        let (mut pending, mut stripe_buf) = (Bytes::new(), Vec::new());
        let mut done = 0u64;
        for stripe in 0..geometry.stripe_count() {
            let live = sinks.iter().filter(|s| s.is_some()).count();
            if live < floor {
                return Err(WriteError::BelowFloor {
                    stored: live,
                    floor,
                    shards: spec.profile.shards(),
                });
            }
            let len = geometry.stripe_len(stripe) as usize;
            read_exact(
                source,
                &mut pending,
                &mut stripe_buf,
                len,
                (done, spec.size),
            )
            .await?;
            done += len as u64;
            let chunks = crate::erasure::encode_stripe(&*codec, geometry, stripe, &stripe_buf)
                .expect("a stripe of the geometry encodes");
            for (hash, chunk) in hashes.iter_mut().zip(&chunks) {
                hash.update(chunk);
            }
            let env = &self.env;
            let sends = sinks
                .iter_mut()
                .zip(&chunks)
                .map(|(slot, chunk)| async move {
                    if let Some(sink) = slot
                        && let Err(error) = sink.send(env, chunk).await
                    {
                        return Some(error);
                    }
                    None
                });
            let failures = futures::future::join_all(sends).await;
            for (i, failure) in failures.into_iter().enumerate() {
                if let Some(error) = failure {
                    tracing::warn!(node = spec.holders[i], shard = i, %error, "holder dropped");
                    if let Some(sink) = sinks[i].take() {
                        sink.abort().await;
                    }
                }
            }
        }
        if pending.is_empty() {
            while let Some(more) = source.next_bytes().await? {
                if !more.is_empty() {
                    pending = more;
                    break;
                }
            }
        }
        if !pending.is_empty() {
            return Err(SourceError::TooLong {
                expected: spec.size,
            }
            .into());
        }
        let live = sinks.iter().filter(|s| s.is_some()).count();
        if live < floor {
            return Err(WriteError::BelowFloor {
                stored: live,
                floor,
                shards: spec.profile.shards(),
            });
        }
        Ok(())
    }

    /// Removes every sealed shard of `layout` (best effort: what stays is an orphan,
    /// which the holders' sweep removes).
    pub async fn remove_blob(&self, layout: &DataLayout) {
        let removals = layout.shards.iter().enumerate().map(|(i, placement)| {
            let id = shard_id(layout.data_id, i as u16);
            async move {
                let result = if placement.node == self.env.node_id() {
                    match self.store.remove(&id).await {
                        Ok(()) | Err(ShardError::NotFound(_)) => Ok(()),
                        Err(e) => Err(e.to_string()),
                    }
                } else {
                    shard_rpc::remove(&self.env, placement.node, id, REMOVE_TIMEOUT)
                        .await
                        .map_err(|e| e.to_string())
                };
                if let Err(error) = result {
                    tracing::warn!(node = placement.node, %error, "shard not removed; left to the sweep");
                }
            }
        });
        futures::future::join_all(removals).await;
    }
}

async fn abort_all<E: Env>(sinks: Vec<Option<Sink<E>>>) {
    for sink in sinks.into_iter().flatten() {
        sink.abort().await;
    }
}
