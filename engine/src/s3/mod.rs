//! S3 semantics as engine operations, with no HTTP: the edge (`runtime-real`'s s3s
//! service) turns requests into these calls, and the simulator drives them directly.
//!
//! Every mutation is a Raft proposal made on the node that received the request (a
//! follower forwards it to the leader), and its commit is the linearization point: a
//! conditional PUT's condition and a completion's part list are checked at apply time.
//! Reads first wait for this replica to apply everything committed when they began
//! (ReadIndex), then read it, so a GET after a successful PUT sees it through any node.
//!
//! **The ack rule.** A PUT (part, copy) streams its body through the data path, which
//! seals the blob on its holders (all shards, or at least the floor); only then is the
//! metadata proposed, and only its commit answers 200. A body cut off, a digest that
//! does not match, or a refused commit leaves nothing visible: the written shards are
//! removed, or (when the commit's outcome is unknown) left for the orphan sweep, since
//! they may be referenced after all.

pub mod access;
pub mod api;
pub mod attributes;
mod blobs;
mod buckets;
mod cache;
pub mod checksum;
pub mod cors;
pub mod encryption;
pub mod error;
pub mod execute;
pub mod keys;
pub mod lifecycle;
pub mod list;
mod lock;
mod multipart;
mod objects;
pub mod policy;
mod prefetch;
pub mod rpc;
mod sealed_io;
mod settings;
pub mod sse;
pub mod tags;
pub mod types;
pub mod versions;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::data_path::{DataPath, ReadError, SourceError, WriteError};
use crate::env::{Clock, Env};
use crate::meta::store::MetaReader;
use crate::meta::{Applied, Command, CommandV1, DataLayout};
use crate::placement;
use crate::raft::node::{ProposeError, RaftHandle};

pub use api::{Reply, Request, Response};
pub use error::S3Error;
pub use execute::algorithm;
pub use list::{ListPage, ListParams};
pub use types::*;

/// Largest single PUT (and part), as S3: 5 GiB.
pub const PUT_BYTES_MAX: u64 = 5 << 30;
/// Largest part number.
pub const PART_NUMBER_MAX: u32 = 10_000;
/// Longest key, in bytes.
pub const KEY_BYTES_MAX: usize = 1024;
/// Keys one DeleteObjects may name.
pub const DELETE_KEYS_MAX: usize = 1000;
/// Pieces of a GET buffered between the data path and the connection.
pub(crate) const GET_WINDOW_PIECES: usize = 4;
/// Time allowed for a proposal (forwarding included) or a ReadIndex.
pub const META_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks S3's bucket naming rules (general-purpose buckets).
pub fn validate_bucket(name: &str) -> Result<(), S3Error> {
    let bad = |why: &str| Err(S3Error::InvalidBucketName(why.into()));
    if !(3..=63).contains(&name.len()) {
        return bad("names are 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return bad("names use lowercase letters, digits, dots and hyphens only");
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(name.as_bytes()[0]) || !alnum(name.as_bytes()[name.len() - 1]) {
        return bad("names begin and end with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return bad("dots may not be adjacent to dots or hyphens");
    }
    if name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok()) {
        return bad("names may not look like IP addresses");
    }
    if name.starts_with("xn--") || name.starts_with("sthree-") || name.ends_with("-s3alias") {
        return bad("that prefix or suffix is reserved");
    }
    Ok(())
}

/// Keys are 1 to 1024 bytes of UTF-8; anything else (slashes, dots, control
/// characters) is stored and returned exactly: keys are never file names.
pub fn validate_key(key: &str) -> Result<(), S3Error> {
    if key.is_empty() {
        return Err(S3Error::InvalidArgument("the key is empty".into()));
    }
    if key.len() > KEY_BYTES_MAX {
        return Err(S3Error::KeyTooLong);
    }
    Ok(())
}

/// S3's limit on user metadata: names and values together, at most 2 KB.
pub const USER_META_BYTES_MAX: usize = 2048;

pub fn validate_user_meta(meta: &BTreeMap<String, String>) -> Result<(), S3Error> {
    let bytes: usize = meta.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > USER_META_BYTES_MAX {
        return Err(S3Error::MetadataTooLarge);
    }
    Ok(())
}

/// Who this service is and how it answers.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The root access key: the owner of the buckets it creates.
    pub owner: String,
    /// Seals access-key secrets (`keys::seal_key` of the root secret).
    pub seal_key: [u8; 32],
    pub region: String,
    /// Blobs up to this size are stored as replicas (k = 1): see `placement`. The
    /// simulator shrinks it along with the chunk size.
    pub small_blob_bytes_max: u64,
    /// Smallest part other than the last a completion accepts (S3: 5 MiB; the
    /// simulator's small objects use less).
    pub part_size_min_bytes: u64,
    /// SSE-S3's master key, which wraps every object's data key (`s3::encryption`);
    /// without it, SSE-S3 is refused.
    pub master_key: Option<sse::Key>,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            owner: "hamster".into(),
            seal_key: keys::seal_key("hamster"),
            region: "us-east-1".into(),
            small_blob_bytes_max: placement::SMALL_BLOB_BYTES_MAX,
            part_size_min_bytes: crate::meta::PART_SIZE_MIN_BYTES,
            master_key: None,
        }
    }
}

pub(crate) fn propose_error(e: ProposeError) -> S3Error {
    match e {
        ProposeError::NotLeader { .. } => {
            S3Error::SlowDown("no Raft leader is known; retry".into())
        }
        ProposeError::Timeout => S3Error::OutcomeUnknown(
            "the metadata commit did not answer in time; its outcome is unknown, retry".into(),
        ),
        // A proposal may have reached the log before the driver stopped.
        ProposeError::Stopped => {
            S3Error::OutcomeUnknown("this node stopped; the outcome is unknown".into())
        }
        ProposeError::Storage(e) => S3Error::Internal(e.to_string()),
    }
}

pub(crate) fn applied_error(a: Applied) -> S3Error {
    match a {
        Applied::NoSuchBucket => S3Error::NoSuchBucket,
        Applied::NoSuchKey => S3Error::NoSuchKey,
        Applied::NoSuchUpload => S3Error::NoSuchUpload,
        Applied::BucketExists => S3Error::BucketAlreadyOwnedByYou,
        Applied::NoSuchAccessKey => S3Error::NoSuchAccessKey(String::new()),
        Applied::KeyExists => S3Error::Internal("that access key id is taken".into()),
        Applied::BucketNotEmpty => S3Error::BucketNotEmpty,
        Applied::PreconditionFailed => S3Error::PreconditionFailed,
        Applied::InvalidPart(n) => S3Error::InvalidPart(n),
        Applied::InvalidPartOrder => S3Error::InvalidPartOrder,
        Applied::EntityTooSmall(n) => S3Error::EntityTooSmall(n),
        Applied::Stale => S3Error::Internal("the metadata refused the layout as stale".into()),
        Applied::Locked => S3Error::ObjectLocked,
        Applied::InvalidBucketState => S3Error::InvalidBucketState(
            "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed, or the bucket's versioning must be Enabled for it.".into(),
        ),
        Applied::Done
        | Applied::Version(_)
        | Applied::Versioned { .. }
        | Applied::Marker { .. }
        | Applied::Removed(_)
        | Applied::Outcomes(_)
        | Applied::Expired(_) => S3Error::Internal(format!("unexpected result {a:?}")),
    }
}

pub(crate) fn write_error(e: WriteError) -> S3Error {
    match e {
        WriteError::Body(SourceError::Truncated { expected, got }) => {
            S3Error::IncompleteBody(format!("the body ended after {got} of {expected} bytes"))
        }
        WriteError::Body(SourceError::TooLong { expected }) => S3Error::IncompleteBody(format!(
            "the body is longer than its announced {expected} bytes"
        )),
        WriteError::Body(SourceError::Failed(why)) => S3Error::IncompleteBody(why),
        WriteError::Body(SourceError::Sha256Mismatch) => S3Error::ContentSha256Mismatch,
        WriteError::Body(SourceError::ChunkSignature) => {
            S3Error::SignatureDoesNotMatch("a chunk signature does not match".into())
        }
        WriteError::Body(SourceError::OverLimit(why)) => S3Error::InvalidRequest(why),
        WriteError::BelowFloor { .. } => S3Error::SlowDown(e.to_string()),
    }
}

pub(crate) fn unsealed(layout: Option<&DataLayout>) -> u16 {
    layout.map_or(0, |l| (l.shards.len() - l.sealed_shards()) as u16)
}

pub(crate) fn read_error(e: ReadError) -> S3Error {
    match e {
        ReadError::Unavailable { .. } => S3Error::ServiceUnavailable(e.to_string()),
        ReadError::ReaderGone => S3Error::Internal(e.to_string()),
    }
}

/// The S3 service of one node.
pub struct S3<E: Env> {
    env: E,
    raft: RaftHandle,
    data: Arc<DataPath<E>>,
    config: S3Config,
    policies: cache::PolicyCache,
    buckets: cache::EpochCache<Arc<access::BucketAccess>>,
    keys: cache::EpochCache<cache::KnownKey>,
}

impl<E: Env> S3<E> {
    pub fn new(env: E, raft: RaftHandle, data: Arc<DataPath<E>>, config: S3Config) -> Self {
        Self {
            env,
            raft,
            data,
            config,
            policies: cache::PolicyCache::default(),
            buckets: cache::EpochCache::default(),
            keys: cache::EpochCache::default(),
        }
    }

    pub fn config(&self) -> &S3Config {
        &self.config
    }

    pub fn data(&self) -> &Arc<DataPath<E>> {
        &self.data
    }

    pub(crate) async fn propose(&self, command: CommandV1) -> Result<Applied, S3Error> {
        crate::raft::forward::propose_anywhere(
            &self.env,
            &self.raft,
            Command::V1(command),
            META_TIMEOUT,
        )
        .await
        .map_err(propose_error)
    }

    /// `view` (the one authorization took, if it took one), or a fresh [`Self::reader`].
    pub(crate) async fn view_or_reader(
        &self,
        view: Option<MetaReader>,
    ) -> Result<MetaReader, S3Error> {
        match view {
            Some(r) => Ok(r),
            None => self.reader().await,
        }
    }

    /// A consistent, up-to-date view: everything committed before the call is in it.
    pub(crate) async fn reader(&self) -> Result<MetaReader, S3Error> {
        let clock = self.env.clock();
        let began = clock.now();
        let index = crate::env::timeout(clock, META_TIMEOUT, self.raft.read_index()).await;
        let metrics = self.data.store().metrics();
        metrics.stage(crate::metrics::Stage::ReadIndex, began, clock.now());
        match index {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(propose_error(e)),
            Err(_) => return Err(propose_error(ProposeError::Timeout)),
        }
        self.raft.reader().map_err(propose_error)
    }

    pub(crate) fn now_ms(&self) -> u64 {
        crate::env::Clock::wall_ms(self.env.clock())
    }

    pub(crate) fn members(&self) -> Vec<crate::env::NodeId> {
        let status = self.raft.status();
        if status.voters.is_empty() {
            vec![self.env.node_id()]
        } else {
            status.voters
        }
    }

    pub(crate) async fn bucket_must_exist(
        &self,
        r: &MetaReader,
        bucket: &str,
    ) -> Result<(), S3Error> {
        validate_bucket(bucket).map_err(|_| S3Error::NoSuchBucket)?;
        match r
            .bucket(bucket)
            .map_err(|e| S3Error::Internal(e.to_string()))?
        {
            Some(_) => Ok(()),
            None => Err(S3Error::NoSuchBucket),
        }
    }

    // ---- buckets ----
}
