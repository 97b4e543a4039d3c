//! The Env seam: the only doors from node logic to the world.
//!
//! Node logic is `async` code generic over one [`Env`]. Each runtime supplies a clock, a
//! disk, a network and a seeded random source, plus a way to spawn tasks. The contracts
//! here are exactly what durability and liveness need and no more:
//! - a write is durable only after [`Disk::sync`] on that file;
//! - a create, rename or remove is durable only after [`Disk::sync_dir`] on its directory;
//! - a network call either returns the peer's answer or an error within its timeout; an
//!   error says nothing about whether the peer acted on the request.
//!
//! Futures are `Send` so the same code runs on a multi-threaded tokio runtime.

use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures::channel::{mpsc, oneshot};
use futures::future::{Either, select};
use futures::{SinkExt, StreamExt};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A node's identity inside a cluster. Stable across restarts.
pub type NodeId = u64;

/// Monotonic time and timers.
pub trait Clock: Send + Sync + 'static {
    /// Time since an arbitrary, fixed origin; never goes backwards.
    fn now(&self) -> Duration;
    /// Wall-clock milliseconds since the Unix epoch, for timestamps shown to users.
    fn wall_ms(&self) -> u64;
    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// A typed disk failure. Callers decide what each means; none of them is a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiskError {
    /// The file or directory does not exist.
    #[error("not found: {path}")]
    NotFound { path: String },
    /// The device reported an input/output error (EIO).
    #[error("I/O error on {path}")]
    Io { path: String },
    /// The device is full (ENOSPC).
    #[error("no space left on device writing {path}")]
    NoSpace { path: String },
    /// A read asked for bytes past the end of the file.
    #[error("short read on {path}: wanted {wanted} bytes at {offset}, file has {len}")]
    ShortRead {
        path: String,
        offset: u64,
        wanted: u64,
        len: u64,
    },
    /// The path is not one this disk accepts (absolute, `..`, empty component).
    #[error("invalid path {path:?}")]
    InvalidPath { path: String },
    /// Any other operating-system error, with its description.
    #[error("disk error on {path}: {message}")]
    Other { path: String, message: String },
}

/// A disk's size and free bytes (free: what an unprivileged writer may still use).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiskSpace {
    pub total_bytes: u64,
    pub free_bytes: u64,
}

/// What [`Disk::read_planned`] read: the file's length, its head, and each planned range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRead {
    pub len: u64,
    pub head: Vec<u8>,
    pub parts: Vec<Vec<u8>>,
}

/// Node-local storage. Paths are relative, `/`-separated, below the disk's root.
///
/// `write_at` creates the file (and its parent directories) when missing. The created
/// name, like a rename or a remove, is durable only after `sync_dir` of its directory.
pub trait Disk: Clone + Send + Sync + 'static {
    fn write_at(
        &self,
        path: &str,
        offset: u64,
        data: &[u8],
    ) -> impl Future<Output = Result<(), DiskError>> + Send;
    /// Reads exactly `len` bytes at `offset`, or fails with `ShortRead`.
    fn read_at(
        &self,
        path: &str,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = Result<Vec<u8>, DiskError>> + Send;
    /// Makes the file's data durable (fdatasync).
    fn sync(&self, path: &str) -> impl Future<Output = Result<(), DiskError>> + Send;
    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &str, to: &str) -> impl Future<Output = Result<(), DiskError>> + Send;
    /// Makes the directory's entries (creates, renames, removes) durable.
    fn sync_dir(&self, dir: &str) -> impl Future<Output = Result<(), DiskError>> + Send;
    fn remove(&self, path: &str) -> impl Future<Output = Result<(), DiskError>> + Send;
    /// File names (not paths) directly inside `dir`, sorted; empty when `dir` is missing.
    fn list(&self, dir: &str) -> impl Future<Output = Result<Vec<String>, DiskError>> + Send;
    fn len(&self, path: &str) -> impl Future<Output = Result<u64, DiskError>> + Send;
    /// Writes `data` at `offset` of `path` and makes the file's data durable: `write_at`
    /// then `sync` (the default), or both in one trip to the disk's I/O thread.
    fn write_synced(
        &self,
        path: &str,
        offset: u64,
        data: &[u8],
    ) -> impl Future<Output = Result<(), DiskError>> + Send {
        async move {
            self.write_at(path, offset, data).await?;
            self.sync(path).await
        }
    }
    /// Writes `data` at `offset` of `tmp`, makes it durable (`sync`), renames it to `to`
    /// and makes `dir`'s entries durable (`sync_dir`), in that order: a sealed write's
    /// last steps. The default is those four calls; a disk that can makes them one trip
    /// to its I/O thread. On an error the steps after it are not taken.
    fn write_sealed(
        &self,
        tmp: &str,
        offset: u64,
        data: Vec<u8>,
        to: &str,
        dir: &str,
    ) -> impl Future<Output = Result<(), DiskError>> + Send {
        async move {
            self.write_at(tmp, offset, &data).await?;
            self.sync(tmp).await?;
            self.rename(tmp, to).await?;
            self.sync_dir(dir).await
        }
    }
    /// Reads a file's first `head` bytes (fewer when it is shorter), then the ranges
    /// `plan` names from its length and that head, each like `read_at`. The default is
    /// `len`, then `read_at` per range; a disk that can does it all in one open of the
    /// file and one trip to its I/O thread.
    fn read_planned<P>(
        &self,
        path: &str,
        head: u64,
        plan: P,
    ) -> impl Future<Output = Result<PlannedRead, DiskError>> + Send
    where
        P: FnOnce(u64, &[u8]) -> Vec<(u64, u64)> + Send + 'static,
    {
        async move {
            let len = self.len(path).await?;
            let head = self.read_at(path, 0, head.min(len)).await?;
            let mut parts = Vec::new();
            for (offset, n) in plan(len, &head) {
                parts.push(self.read_at(path, offset, n).await?);
            }
            Ok(PlannedRead { len, head, parts })
        }
    }
    /// The size of the file system (or device) under the disk's root, and what is free.
    fn space(&self) -> impl Future<Output = Result<DiskSpace, DiskError>> + Send;

    /// The file behind a redb database.
    type Backend: redb::StorageBackend;
    /// Opens `path` as a redb storage backend, creating it (and making its name
    /// durable) when missing. The backend's `sync_data` is the file's fdatasync.
    fn storage_backend(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Self::Backend, DiskError>> + Send;
    /// Runs synchronous I/O (redb's transactions) where it does not stall other tasks.
    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = T> + Send;
}

/// A network failure. None of them says whether the peer acted on the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// No answer within the call's timeout.
    #[error("call to node {to} timed out")]
    Timeout { to: NodeId },
    /// The peer is unknown or refused the connection.
    #[error("node {to} is unreachable")]
    Unreachable { to: NodeId },
    /// The connection broke mid-call or mid-stream.
    #[error("connection broken")]
    Broken,
}

/// One frame of a streamed request body.
#[derive(Debug)]
pub enum Frame {
    Data(Bytes),
    /// The sender finished the body. A stream that closes without it was cut off.
    End,
}

/// The sending half of a streamed body; bounded, so a slow receiver slows the sender.
pub struct BodySender(mpsc::Sender<Frame>);

/// The receiving half of a streamed body.
pub struct BodyStream(mpsc::Receiver<Frame>);

/// A bounded body channel holding at most `frames` frames in flight.
pub fn body_channel(frames: usize) -> (BodySender, BodyStream) {
    let (tx, rx) = mpsc::channel(frames);
    (BodySender(tx), BodyStream(rx))
}

impl BodySender {
    /// Sends one frame; waits while the channel is full. Fails when the receiver is gone.
    pub async fn send(&mut self, data: Bytes) -> Result<(), NetError> {
        self.0
            .send(Frame::Data(data))
            .await
            .map_err(|_| NetError::Broken)
    }
    /// Marks the body complete. Dropping the sender without it breaks the stream.
    pub async fn finish(mut self) -> Result<(), NetError> {
        self.0.send(Frame::End).await.map_err(|_| NetError::Broken)
    }
    /// Passes a raw frame along (transports use this to forward a stream).
    pub async fn send_frame(&mut self, frame: Frame) -> Result<(), NetError> {
        self.0.send(frame).await.map_err(|_| NetError::Broken)
    }
}

impl BodyStream {
    /// The next chunk; `Ok(None)` at a clean end; `Err(Broken)` if cut off.
    pub async fn next(&mut self) -> Result<Option<Bytes>, NetError> {
        match self.0.next().await {
            Some(Frame::Data(b)) => Ok(Some(b)),
            Some(Frame::End) => Ok(None),
            None => Err(NetError::Broken),
        }
    }
    /// The next raw frame, `None` when the channel closed (transports forward these).
    pub async fn next_frame(&mut self) -> Option<Frame> {
        self.0.next().await
    }
}

/// An incoming call handed to node logic by [`Net::accept`].
pub struct Incoming {
    pub from: NodeId,
    pub request: Bytes,
    /// Present for streamed calls.
    pub body: Option<BodyStream>,
    /// Where the answer goes; dropping it unanswered looks like a broken connection.
    pub reply: oneshot::Sender<Bytes>,
}

/// Message RPC between nodes. Each call carries its own timeout.
pub trait Net: Send + Sync + 'static {
    /// Sends `request` to `to` and waits for the answer.
    fn call(
        &self,
        to: NodeId,
        request: Bytes,
        timeout: Duration,
    ) -> impl Future<Output = Result<Bytes, NetError>> + Send;
    /// Like `call`, followed by a streamed body; the answer comes after the body.
    fn call_streamed(
        &self,
        to: NodeId,
        request: Bytes,
        body: BodyStream,
        timeout: Duration,
    ) -> impl Future<Output = Result<Bytes, NetError>> + Send;
    /// The next incoming call; `None` once the node's network is shut down.
    fn accept(&self) -> impl Future<Output = Option<Incoming>> + Send;
}

/// A source of randomness. Under simulation it is forked from the run seed.
pub trait Rng: Send + Sync + 'static {
    fn next_u64(&self) -> u64;
    fn fill(&self, dest: &mut [u8]);
}

/// A ChaCha-based [`Rng`]; the simulator forks one per node from the run seed.
pub struct SeededRng(Mutex<ChaCha8Rng>);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        Self(Mutex::new(ChaCha8Rng::seed_from_u64(seed)))
    }
    /// From a full 256-bit seed: a production node's, drawn from the OS, since this
    /// stream also makes SSE data keys and salts, which 64 bits of seed would not
    /// make secret.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(Mutex::new(ChaCha8Rng::from_seed(seed)))
    }
    /// A child whose stream depends only on this seed and `stream` (e.g. node id and
    /// incarnation), not on how much the parent was used.
    pub fn fork(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Self(Mutex::new(rng))
    }
}

impl Rng for SeededRng {
    fn next_u64(&self) -> u64 {
        self.0.lock().expect("rng lock poisoned").next_u64()
    }
    fn fill(&self, dest: &mut [u8]) {
        self.0.lock().expect("rng lock poisoned").fill_bytes(dest)
    }
}

/// Everything a node may use to reach the world.
pub trait Env: Clone + Send + Sync + 'static {
    type Clock: Clock;
    type Disk: Disk;
    type Net: Net;
    type Rng: Rng;
    fn node_id(&self) -> NodeId;
    fn clock(&self) -> &Self::Clock;
    fn disk(&self) -> &Self::Disk;
    fn net(&self) -> &Self::Net;
    fn rng(&self) -> &Self::Rng;
    /// Runs `task` in the background, on this node (it dies with the node).
    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static;
}

/// The time limit passed without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out")]
pub struct Elapsed;

/// Runs `future` for at most `limit` of `clock`'s time.
pub async fn timeout<C: Clock, F: Future>(
    clock: &C,
    limit: Duration,
    future: F,
) -> Result<F::Output, Elapsed> {
    let future = pin!(future);
    let sleep = pin!(clock.sleep(limit));
    match select(future, sleep).await {
        Either::Left((output, _)) => Ok(output),
        Either::Right(((), _)) => Err(Elapsed),
    }
}
