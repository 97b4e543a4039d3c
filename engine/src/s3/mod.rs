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

pub mod checksum;
pub mod error;
pub mod list;
pub mod rpc;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};

use crate::data_path::{ByteSource, DataPath, ReadError, SourceError, WriteError, WriteSpec};
use crate::env::{Env, Rng};
use crate::meta::{
    Applied, Checksum, ChecksumAlgorithm, Command, CommandV1, ContentHeaders, DataLayout,
    ObjectData, ObjectMeta, PartInfo, PutCondition, Stored, UploadHead,
};
use crate::meta_store::MetaReader;
use crate::placement;
use crate::raft::node::{ProposeError, RaftHandle};

pub use error::S3Error;
pub use list::{ListPage, ListParams};

use checksum::HashingSource;

/// Largest single PUT (and part), as S3: 5 GiB.
pub const PUT_BYTES_MAX: u64 = 5 << 30;
/// Largest part number.
pub const PART_NUMBER_MAX: u32 = 10_000;
/// Longest key, in bytes.
pub const KEY_BYTES_MAX: usize = 1024;
/// Keys one DeleteObjects may name.
pub const DELETE_KEYS_MAX: usize = 1000;
/// Pieces of a GET buffered between the data path and the connection.
const GET_WINDOW_PIECES: usize = 4;
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
    /// The owner every bucket belongs to (the root access key).
    pub owner: String,
    pub region: String,
    /// Blobs up to this size are stored as replicas (k = 1): see `placement`. The
    /// simulator shrinks it along with the chunk size.
    pub small_blob_bytes_max: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            owner: "hamster".into(),
            region: "us-east-1".into(),
            small_blob_bytes_max: placement::SMALL_BLOB_BYTES_MAX,
        }
    }
}

/// What a client sees of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub version: u64,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: u64,
    pub headers: ContentHeaders,
    pub user_meta: BTreeMap<String, String>,
    pub checksum: Option<Checksum>,
    /// Parts of a multipart object (0 for a simple one).
    pub parts: u32,
}

impl ObjectInfo {
    fn of(key: &str, s: &Stored) -> Self {
        Self {
            key: key.to_string(),
            version: s.version,
            size: s.meta.size,
            etag: s.meta.etag.clone(),
            last_modified_ms: s.meta.created_ms,
            headers: s.meta.headers.clone(),
            user_meta: s.meta.user_meta.clone(),
            checksum: s.meta.checksum.clone(),
            parts: match s.meta.data {
                ObjectData::Parts { count } => count,
                _ => 0,
            },
        }
    }
}

/// A body to store, and what the client said about it.
pub struct PutBody<S> {
    pub source: S,
    /// Content-Length (or x-amz-decoded-content-length).
    pub size: u64,
    /// Content-MD5, base64, when sent.
    pub content_md5: Option<String>,
    /// The checksum algorithm asked for, and its expected value when sent up front.
    pub checksum: Option<(ChecksumAlgorithm, Option<String>)>,
}

/// A PutObject.
pub struct PutObject<S> {
    pub bucket: String,
    pub key: String,
    pub headers: ContentHeaders,
    pub user_meta: BTreeMap<String, String>,
    pub condition: PutCondition,
    pub body: PutBody<S>,
}

/// A trailing checksum (aws-chunked with trailers) arrives after the body; the edge
/// hands it over through this.
pub trait Trailer {
    fn checksum(&self, alg: ChecksumAlgorithm) -> Option<String>;
}

/// No trailers.
pub struct NoTrailer;

impl Trailer for NoTrailer {
    fn checksum(&self, _: ChecksumAlgorithm) -> Option<String> {
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutput {
    pub etag: String,
    pub version: u64,
    pub checksum: Option<Checksum>,
    /// Shards the write could not seal (a degraded write; repair owes them).
    pub unsealed: u16,
}

/// A Range header's one range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `bytes=first-` or `bytes=first-last` (inclusive).
    From { first: u64, last: Option<u64> },
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl RangeSpec {
    /// The half-open byte range this selects of an object of `size` bytes.
    pub fn resolve(&self, size: u64) -> Result<(u64, u64), S3Error> {
        match *self {
            RangeSpec::From { first, last } => {
                if first >= size || last.is_some_and(|l| l < first) {
                    return Err(S3Error::InvalidRange { size });
                }
                Ok((first, last.map_or(size, |l| (l + 1).min(size))))
            }
            RangeSpec::Suffix(n) => {
                if n == 0 {
                    return Err(S3Error::InvalidRange { size });
                }
                Ok((size.saturating_sub(n), size))
            }
        }
    }
}

/// Conditional headers of GET and HEAD (and of a copy's source).
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since_ms: Option<u64>,
    pub if_unmodified_since_ms: Option<u64>,
}

fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|t| t == "*" || t == etag)
}

impl Conditions {
    /// RFC 7232's order: If-Match, then If-Unmodified-Since (412); If-None-Match, then
    /// If-Modified-Since (304). Dates compare at the second, as HTTP dates have it.
    pub fn check(&self, info: &ObjectInfo) -> Result<(), S3Error> {
        let modified_s = info.last_modified_ms / 1000;
        if let Some(m) = &self.if_match {
            if !etag_matches(m, &info.etag) {
                return Err(S3Error::PreconditionFailed);
            }
        } else if let Some(t) = self.if_unmodified_since_ms
            && modified_s > t / 1000
        {
            return Err(S3Error::PreconditionFailed);
        }
        if let Some(n) = &self.if_none_match {
            if etag_matches(n, &info.etag) {
                return Err(S3Error::NotModified);
            }
        } else if let Some(t) = self.if_modified_since_ms
            && modified_s <= t / 1000
        {
            return Err(S3Error::NotModified);
        }
        Ok(())
    }
}

/// A GET's bytes, in pieces, with errors in band (a read can fail midway).
pub struct ObjectBody {
    first: Option<Bytes>,
    rx: mpsc::Receiver<Result<Bytes, S3Error>>,
}

impl ObjectBody {
    pub async fn next(&mut self) -> Option<Result<Bytes, S3Error>> {
        if let Some(first) = self.first.take() {
            return Some(Ok(first));
        }
        self.rx.next().await
    }

    /// Everything, in memory (tests and small reads).
    pub async fn collect(mut self) -> Result<Vec<u8>, S3Error> {
        let mut out = Vec::new();
        while let Some(piece) = self.next().await {
            out.extend_from_slice(&piece?);
        }
        Ok(out)
    }
}

impl ByteSource for ObjectBody {
    async fn next_bytes(&mut self) -> Result<Option<Bytes>, SourceError> {
        match self.next().await {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => Err(SourceError::Failed(e.to_string())),
        }
    }
}

/// The pieces of a GET as they leave the data path.
struct Pieces(mpsc::Sender<Result<Bytes, S3Error>>);

impl crate::data_path::PieceSink for Pieces {
    async fn put(&mut self, piece: Bytes) -> bool {
        self.0.send(Ok(piece)).await.is_ok()
    }
}

pub struct GetOutput {
    pub info: ObjectInfo,
    /// The half-open range served, when the request had a Range.
    pub range: Option<(u64, u64)>,
    pub body: ObjectBody,
}

/// A DeleteObjects result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    pub keys: Vec<String>,
}

pub struct UploadInfo {
    pub upload_id: String,
    pub key: String,
    pub initiated_ms: u64,
}

pub struct PartView {
    pub number: u32,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: u64,
    pub checksum: Option<Checksum>,
}

/// One page of ListParts.
pub struct PartsPage {
    pub parts: Vec<PartView>,
    pub truncated: bool,
    pub next_marker: u32,
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
}

/// Where a copy's bytes come from.
pub struct CopySource {
    pub bucket: String,
    pub key: String,
    pub conditions: Conditions,
    /// UploadPartCopy's x-amz-copy-source-range.
    pub range: Option<RangeSpec>,
}

/// CopyObject's metadata directive.
pub enum MetadataDirective {
    /// Keep the source's headers and user metadata.
    Copy,
    /// Use these instead.
    Replace {
        headers: ContentHeaders,
        user_meta: BTreeMap<String, String>,
    },
}

fn propose_error(e: ProposeError) -> S3Error {
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

fn applied_error(a: Applied) -> S3Error {
    match a {
        Applied::NoSuchBucket => S3Error::NoSuchBucket,
        Applied::NoSuchKey => S3Error::NoSuchKey,
        Applied::NoSuchUpload => S3Error::NoSuchUpload,
        Applied::BucketExists => S3Error::BucketAlreadyOwnedByYou,
        Applied::BucketNotEmpty => S3Error::BucketNotEmpty,
        Applied::PreconditionFailed => S3Error::PreconditionFailed,
        Applied::InvalidPart(n) => S3Error::InvalidPart(n),
        Applied::InvalidPartOrder => S3Error::InvalidPartOrder,
        Applied::EntityTooSmall(n) => S3Error::EntityTooSmall(n),
        Applied::Stale => S3Error::Internal("the metadata refused the layout as stale".into()),
        Applied::Done | Applied::Version(_) => {
            S3Error::Internal(format!("unexpected result {a:?}"))
        }
    }
}

fn write_error(e: WriteError) -> S3Error {
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

fn unsealed(layout: Option<&DataLayout>) -> u16 {
    layout.map_or(0, |l| (l.shards.len() - l.sealed_shards()) as u16)
}

fn read_error(e: ReadError) -> S3Error {
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
}

impl<E: Env> S3<E> {
    pub fn new(env: E, raft: RaftHandle, data: Arc<DataPath<E>>, config: S3Config) -> Self {
        Self {
            env,
            raft,
            data,
            config,
        }
    }

    pub fn config(&self) -> &S3Config {
        &self.config
    }

    pub fn data(&self) -> &Arc<DataPath<E>> {
        &self.data
    }

    async fn propose(&self, command: CommandV1) -> Result<Applied, S3Error> {
        crate::raft::forward::propose_anywhere(
            &self.env,
            &self.raft,
            Command::V1(command),
            META_TIMEOUT,
        )
        .await
        .map_err(propose_error)
    }

    /// A consistent, up-to-date view: everything committed before the call is in it.
    async fn reader(&self) -> Result<MetaReader, S3Error> {
        let index = crate::env::timeout(self.env.clock(), META_TIMEOUT, self.raft.read_index());
        match index.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(propose_error(e)),
            Err(_) => return Err(propose_error(ProposeError::Timeout)),
        }
        self.raft.reader().map_err(propose_error)
    }

    fn now_ms(&self) -> u64 {
        crate::env::Clock::wall_ms(self.env.clock())
    }

    fn members(&self) -> Vec<crate::env::NodeId> {
        let status = self.raft.status();
        if status.voters.is_empty() {
            vec![self.env.node_id()]
        } else {
            status.voters
        }
    }

    async fn bucket_must_exist(&self, r: &MetaReader, bucket: &str) -> Result<(), S3Error> {
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

    pub async fn list_buckets(&self) -> Result<Vec<(String, u64)>, S3Error> {
        let r = self.reader().await?;
        Ok(r.buckets()
            .map_err(|e| S3Error::Internal(e.to_string()))?
            .into_iter()
            .map(|(name, b)| (name, b.created_ms))
            .collect())
    }

    pub async fn create_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        validate_bucket(bucket)?;
        let command = CommandV1::CreateBucket {
            name: bucket.into(),
            owner: self.config.owner.clone(),
            created_ms: self.now_ms(),
        };
        match self.propose(command).await? {
            Applied::Done => Ok(()),
            other => Err(applied_error(other)),
        }
    }

    pub async fn head_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        let r = self.reader().await?;
        self.bucket_must_exist(&r, bucket).await
    }

    pub async fn delete_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        validate_bucket(bucket).map_err(|_| S3Error::NoSuchBucket)?;
        match self
            .propose(CommandV1::DeleteBucket {
                name: bucket.into(),
            })
            .await?
        {
            Applied::Done => Ok(()),
            other => Err(applied_error(other)),
        }
    }

    // ---- writing blobs ----

    /// Streams a body into a new blob and checks its digests; on any failure nothing
    /// stays. `None` for an empty body (no shards).
    async fn store_body<S: ByteSource, T: Trailer>(
        &self,
        body: PutBody<S>,
        trailer: &T,
    ) -> Result<(Option<DataLayout>, checksum::Digests), S3Error> {
        if body.size > PUT_BYTES_MAX {
            return Err(S3Error::EntityTooLarge);
        }
        let expected_md5 = body
            .content_md5
            .as_deref()
            .map(checksum::decode_content_md5)
            .transpose()?;
        let algorithm = body.checksum.as_ref().map(|(a, _)| *a);
        if let Some((alg, Some(value))) = &body.checksum {
            checksum::decode_digest(*alg, value)?;
        }
        let mut source = HashingSource::new(body.source, algorithm);
        let layout = if body.size == 0 {
            match source.next_bytes().await {
                Ok(None) => None,
                Ok(Some(b)) if b.is_empty() => None,
                Ok(Some(_)) => {
                    return Err(write_error(WriteError::Body(SourceError::TooLong {
                        expected: 0,
                    })));
                }
                Err(e) => return Err(write_error(WriteError::Body(e))),
            }
        } else {
            let data_id =
                u128::from(self.env.rng().next_u64()) << 64 | u128::from(self.env.rng().next_u64());
            let members = self.members();
            let profile =
                placement::profile_for(members.len(), body.size, self.config.small_blob_bytes_max);
            let holders = placement::place(&members, data_id, profile.shards())
                .expect("the ladder never asks for more shards than members");
            let spec = WriteSpec {
                data_id,
                size: body.size,
                profile,
                holders,
            };
            Some(
                self.data
                    .write_blob(&mut source, &spec)
                    .await
                    .map_err(write_error)?,
            )
        };
        let digests = source.finish();
        let verdict = self.check_digests(&digests, expected_md5, &body.checksum, trailer);
        if let Err(e) = verdict {
            if let Some(layout) = &layout {
                self.data.remove_blob(layout).await;
            }
            return Err(e);
        }
        Ok((layout, digests))
    }

    fn check_digests<T: Trailer>(
        &self,
        digests: &checksum::Digests,
        md5: Option<[u8; 16]>,
        asked: &Option<(ChecksumAlgorithm, Option<String>)>,
        trailer: &T,
    ) -> Result<(), S3Error> {
        if md5.is_some_and(|m| m != digests.md5) {
            return Err(S3Error::BadDigest("Content-MD5".into()));
        }
        if let Some((alg, upfront)) = asked {
            let expected = upfront.clone().or_else(|| trailer.checksum(*alg));
            let got = digests.checksum.as_ref().map(|c| c.value.as_str());
            if let Some(expected) = expected
                && Some(expected.trim()) != got
            {
                let name = checksum::algorithm_name(*alg);
                return Err(S3Error::BadDigest(format!("x-amz-checksum-{name}")));
            }
        }
        Ok(())
    }

    /// Proposes an object version for a stored blob; when the commit refuses, the blob
    /// goes (its outcome is known). A timeout leaves it to the sweep.
    async fn commit_object(
        &self,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
        condition: PutCondition,
        layout: Option<&DataLayout>,
    ) -> Result<u64, S3Error> {
        let command = CommandV1::PutObject {
            bucket: bucket.into(),
            key: key.into(),
            meta,
            condition,
        };
        match self.propose(command).await {
            Ok(Applied::Version(v)) => {
                if let Some(layout) = layout {
                    self.data.report_unsealed(layout);
                }
                Ok(v)
            }
            Ok(other) => {
                if let Some(layout) = layout {
                    self.data.remove_blob(layout).await;
                }
                Err(applied_error(other))
            }
            Err(e) => {
                // Refused before it was proposed: the blob can go now. When the outcome
                // is unknown it stays; the orphan sweep judges it once the log settles.
                if let Some(layout) = layout.filter(|_| !e.outcome_unknown()) {
                    self.data.remove_blob(layout).await;
                }
                Err(e)
            }
        }
    }

    // ---- objects ----

    pub async fn put_object<S: ByteSource, T: Trailer>(
        &self,
        put: PutObject<S>,
        trailer: &T,
    ) -> Result<PutOutput, S3Error> {
        validate_key(&put.key)?;
        validate_user_meta(&put.user_meta)?;
        {
            let r = self.reader().await?;
            self.bucket_must_exist(&r, &put.bucket).await?;
        }
        let (layout, digests) = self.store_body(put.body, trailer).await?;
        let etag = checksum::hex(&digests.md5);
        let meta = ObjectMeta {
            size: digests.len,
            etag: etag.clone(),
            created_ms: self.now_ms(),
            headers: put.headers,
            user_meta: put.user_meta,
            checksum: digests.checksum.clone(),
            data: match &layout {
                Some(l) => ObjectData::Blob(l.clone()),
                None => ObjectData::Empty,
            },
        };
        let version = self
            .commit_object(&put.bucket, &put.key, meta, put.condition, layout.as_ref())
            .await?;
        Ok(PutOutput {
            etag,
            version,
            checksum: digests.checksum,
            unsealed: unsealed(layout.as_ref()),
        })
    }

    async fn current(&self, r: &MetaReader, bucket: &str, key: &str) -> Result<Stored, S3Error> {
        self.bucket_must_exist(r, bucket).await?;
        validate_key(key).map_err(|_| S3Error::NoSuchKey)?;
        r.object(bucket, key)
            .map_err(|e| S3Error::Internal(e.to_string()))?
            .ok_or(S3Error::NoSuchKey)
    }

    pub async fn head_object(
        &self,
        bucket: &str,
        key: &str,
        conditions: &Conditions,
    ) -> Result<ObjectInfo, S3Error> {
        let r = self.reader().await?;
        let stored = self.current(&r, bucket, key).await?;
        let info = ObjectInfo::of(key, &stored);
        conditions.check(&info)?;
        self.must_not_be_lost(&r, &stored)?;
        Ok(info)
    }

    /// `ObjectLost` when repair recorded a blob of `stored` as lost.
    fn must_not_be_lost(&self, r: &MetaReader, stored: &Stored) -> Result<(), S3Error> {
        for (_, layout) in self.blobs(r, stored)? {
            let lost = r
                .data_ref(layout.data_id)
                .map_err(|e| S3Error::Internal(e.to_string()))?
                .and_then(|d| d.lost);
            if let Some(mark) = lost {
                return Err(S3Error::ObjectLost(format!(
                    "only {} of the {} shards this object needs are readable; it stays lost \
                     unless the nodes holding the others come back (hamster admin lost)",
                    mark.good, mark.needed
                )));
            }
        }
        Ok(())
    }

    /// The blobs of `stored` with the object offset each starts at.
    fn blobs(&self, r: &MetaReader, stored: &Stored) -> Result<Vec<(u64, DataLayout)>, S3Error> {
        Ok(match &stored.meta.data {
            ObjectData::Empty => Vec::new(),
            ObjectData::Blob(l) => vec![(0, l.clone())],
            ObjectData::Parts { .. } => r
                .object_parts(stored.version)
                .map_err(|e| S3Error::Internal(e.to_string()))?
                .into_iter()
                .filter_map(|p| p.info.data.map(|l| (p.offset, l)))
                .collect(),
        })
    }

    /// Starts streaming bytes `[start, end)` of `stored`; waits for the first piece, so
    /// that an object that cannot be read fails before any byte goes out.
    async fn open_body(
        &self,
        r: &MetaReader,
        stored: &Stored,
        (start, end): (u64, u64),
    ) -> Result<ObjectBody, S3Error> {
        let blobs = self.blobs(r, stored)?;
        let (tx, mut rx) = mpsc::channel(GET_WINDOW_PIECES);
        let data = self.data.clone();
        self.env.spawn(async move {
            let mut sink = Pieces(tx);
            for (offset, layout) in blobs {
                let (lo, hi) = (start.max(offset), end.min(offset + layout.size));
                if lo >= hi {
                    continue;
                }
                if let Err(e) = data
                    .read_blob(&layout, lo - offset, hi - offset, &mut sink)
                    .await
                {
                    let _ = sink.0.send(Err(read_error(e))).await;
                    return;
                }
            }
        });
        let first = if start < end {
            match rx.next().await {
                Some(Ok(piece)) => Some(piece),
                Some(Err(e)) => return Err(e),
                None => return Err(S3Error::Internal("object read ended early".into())),
            }
        } else {
            None
        };
        Ok(ObjectBody { first, rx })
    }

    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        range: Option<RangeSpec>,
        conditions: &Conditions,
    ) -> Result<GetOutput, S3Error> {
        let r = self.reader().await?;
        let stored = self.current(&r, bucket, key).await?;
        let info = ObjectInfo::of(key, &stored);
        conditions.check(&info)?;
        let (span, range) = match range {
            Some(spec) => {
                let span = spec.resolve(info.size)?;
                (span, Some(span))
            }
            None => ((0, info.size), None),
        };
        // Refused before any byte: a lost part later in a multipart object would
        // otherwise fail the body after a 200 went out.
        self.must_not_be_lost(&r, &stored)?;
        let body = match self.open_body(&r, &stored, span).await {
            Ok(body) => body,
            Err(e @ S3Error::ServiceUnavailable(_)) => {
                self.must_not_be_lost(&r, &stored)?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        Ok(GetOutput { info, range, body })
    }

    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), S3Error> {
        validate_key(key)?;
        let command = CommandV1::DeleteObject {
            bucket: bucket.into(),
            key: key.into(),
        };
        // Deleting a key that is not there succeeds, as in S3.
        match self.propose(command).await? {
            Applied::Done | Applied::NoSuchKey => Ok(()),
            other => Err(applied_error(other)),
        }
    }

    pub async fn delete_objects(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Deleted, S3Error> {
        if keys.len() > DELETE_KEYS_MAX {
            return Err(S3Error::InvalidArgument(format!(
                "at most {DELETE_KEYS_MAX} keys per request"
            )));
        }
        for key in &keys {
            validate_key(key)?;
        }
        let command = CommandV1::DeleteObjects {
            bucket: bucket.into(),
            keys: keys.clone(),
        };
        match self.propose(command).await? {
            Applied::Done => Ok(Deleted { keys }),
            other => Err(applied_error(other)),
        }
    }

    pub async fn list_objects(
        &self,
        bucket: &str,
        params: &ListParams,
    ) -> Result<(ListPage, Vec<ObjectInfo>), S3Error> {
        let r = self.reader().await?;
        self.bucket_must_exist(&r, bucket).await?;
        let page = list::list(&r, bucket, params).map_err(|e| S3Error::Internal(e.to_string()))?;
        let infos = page
            .objects
            .iter()
            .map(|(k, s)| ObjectInfo::of(k, s))
            .collect();
        Ok((page, infos))
    }

    /// CopyObject: the source's bytes become a new blob (a real copy: every blob has
    /// one owner), committed under the destination key.
    pub async fn copy_object(
        &self,
        source: &CopySource,
        bucket: &str,
        key: &str,
        directive: MetadataDirective,
        condition: PutCondition,
    ) -> Result<PutOutput, S3Error> {
        validate_key(key)?;
        let r = self.reader().await?;
        self.bucket_must_exist(&r, bucket).await?;
        let stored = self.current(&r, &source.bucket, &source.key).await?;
        let info = ObjectInfo::of(&source.key, &stored);
        source.conditions.check(&info).map_err(|e| match e {
            S3Error::NotModified => S3Error::PreconditionFailed,
            other => other,
        })?;
        if source.bucket == bucket
            && source.key == key
            && matches!(directive, MetadataDirective::Copy)
        {
            return Err(S3Error::InvalidRequest(
                "This copy request is illegal because it is trying to copy an object to itself \
                 without changing the object's metadata."
                    .into(),
            ));
        }
        let (headers, user_meta) = match directive {
            MetadataDirective::Copy => (info.headers.clone(), info.user_meta.clone()),
            MetadataDirective::Replace { headers, user_meta } => {
                validate_user_meta(&user_meta)?;
                (headers, user_meta)
            }
        };
        let algorithm = info.checksum.as_ref().map(|c| c.algorithm);
        let body = self.open_body(&r, &stored, (0, info.size)).await?;
        drop(r);
        let put = PutBody {
            source: body,
            size: info.size,
            content_md5: None,
            checksum: algorithm.map(|a| (a, None)),
        };
        let (layout, digests) = self.store_body(put, &NoTrailer).await?;
        let etag = checksum::hex(&digests.md5);
        let meta = ObjectMeta {
            size: digests.len,
            etag: etag.clone(),
            created_ms: self.now_ms(),
            headers,
            user_meta,
            checksum: digests.checksum.clone(),
            data: match &layout {
                Some(l) => ObjectData::Blob(l.clone()),
                None => ObjectData::Empty,
            },
        };
        let version = self
            .commit_object(bucket, key, meta, condition, layout.as_ref())
            .await?;
        Ok(PutOutput {
            etag,
            version,
            checksum: digests.checksum,
            unsealed: unsealed(layout.as_ref()),
        })
    }

    // ---- multipart ----

    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        headers: ContentHeaders,
        user_meta: BTreeMap<String, String>,
        checksum_algorithm: Option<ChecksumAlgorithm>,
    ) -> Result<String, S3Error> {
        validate_key(key)?;
        validate_user_meta(&user_meta)?;
        let mut raw = [0u8; 16];
        self.env.rng().fill(&mut raw);
        let upload_id = checksum::hex(&raw);
        let head = UploadHead {
            bucket: bucket.into(),
            key: key.into(),
            created_ms: self.now_ms(),
            headers,
            user_meta,
            checksum_algorithm,
        };
        let command = CommandV1::CreateUpload {
            upload_id: upload_id.clone(),
            head,
        };
        match self.propose(command).await? {
            Applied::Done => Ok(upload_id),
            other => Err(applied_error(other)),
        }
    }

    /// The upload `id`, if it is in progress for this bucket and key.
    async fn upload_of(
        &self,
        r: &MetaReader,
        bucket: &str,
        key: &str,
        id: &str,
    ) -> Result<UploadHead, S3Error> {
        self.bucket_must_exist(r, bucket).await?;
        match r.upload(id).map_err(|e| S3Error::Internal(e.to_string()))? {
            Some(head) if head.bucket == bucket && head.key == key => Ok(head),
            _ => Err(S3Error::NoSuchUpload),
        }
    }

    fn part_number(part: u32) -> Result<(), S3Error> {
        if (1..=PART_NUMBER_MAX).contains(&part) {
            Ok(())
        } else {
            Err(S3Error::InvalidArgument(format!(
                "part numbers are 1 to {PART_NUMBER_MAX}"
            )))
        }
    }

    async fn commit_part(&self, upload_id: &str, part: u32, info: PartInfo) -> Result<(), S3Error> {
        let layout = info.data.clone();
        let command = CommandV1::PutPart {
            upload_id: upload_id.into(),
            part,
            info,
        };
        match self.propose(command).await {
            Ok(Applied::Done) => {
                if let Some(layout) = &layout {
                    self.data.report_unsealed(layout);
                }
                Ok(())
            }
            Ok(other) => {
                if let Some(layout) = &layout {
                    self.data.remove_blob(layout).await;
                }
                Err(applied_error(other))
            }
            Err(e) => Err(e),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part<S: ByteSource, T: Trailer>(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part: u32,
        body: PutBody<S>,
        trailer: &T,
    ) -> Result<PutOutput, S3Error> {
        Self::part_number(part)?;
        let head = {
            let r = self.reader().await?;
            self.upload_of(&r, bucket, key, upload_id).await?
        };
        let mut body = body;
        if body.checksum.is_none() {
            body.checksum = head.checksum_algorithm.map(|a| (a, None));
        }
        let (layout, digests) = self.store_body(body, trailer).await?;
        let etag = checksum::hex(&digests.md5);
        let info = PartInfo {
            size: digests.len,
            etag: etag.clone(),
            checksum: digests.checksum.clone(),
            created_ms: self.now_ms(),
            data: layout,
        };
        self.commit_part(upload_id, part, info).await?;
        Ok(PutOutput {
            etag,
            version: 0,
            checksum: digests.checksum,
            unsealed: 0,
        })
    }

    pub async fn upload_part_copy(
        &self,
        source: &CopySource,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part: u32,
    ) -> Result<PutOutput, S3Error> {
        Self::part_number(part)?;
        let r = self.reader().await?;
        let head = self.upload_of(&r, bucket, key, upload_id).await?;
        let stored = self.current(&r, &source.bucket, &source.key).await?;
        let info = ObjectInfo::of(&source.key, &stored);
        source.conditions.check(&info).map_err(|e| match e {
            S3Error::NotModified => S3Error::PreconditionFailed,
            other => other,
        })?;
        let span = match source.range {
            Some(spec) => spec.resolve(info.size).map_err(|_| {
                S3Error::InvalidArgument("x-amz-copy-source-range is out of the source".into())
            })?,
            None => (0, info.size),
        };
        let body = self.open_body(&r, &stored, span).await?;
        drop(r);
        let put = PutBody {
            source: body,
            size: span.1 - span.0,
            content_md5: None,
            checksum: head.checksum_algorithm.map(|a| (a, None)),
        };
        let (layout, digests) = self.store_body(put, &NoTrailer).await?;
        let etag = checksum::hex(&digests.md5);
        let part_info = PartInfo {
            size: digests.len,
            etag: etag.clone(),
            checksum: digests.checksum.clone(),
            created_ms: self.now_ms(),
            data: layout,
        };
        self.commit_part(upload_id, part, part_info).await?;
        Ok(PutOutput {
            etag,
            version: 0,
            checksum: digests.checksum,
            unsealed: 0,
        })
    }

    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<(u32, String)>,
    ) -> Result<PutOutput, S3Error> {
        let r = self.reader().await?;
        let head = self.upload_of(&r, bucket, key, upload_id).await?;
        if parts.is_empty() {
            return Err(S3Error::InvalidRequest(
                "You must specify at least one part.".into(),
            ));
        }
        let parts: Vec<(u32, String)> = parts
            .into_iter()
            .map(|(n, e)| (n, e.trim().trim_matches('"').to_string()))
            .collect();
        let mut chosen = Vec::with_capacity(parts.len());
        for (number, etag) in &parts {
            let found = r
                .parts(upload_id, number.saturating_sub(1), 1)
                .map_err(|e| S3Error::Internal(e.to_string()))?
                .into_iter()
                .find(|(n, _)| n == number);
            match found {
                Some((_, info)) if &info.etag == etag => chosen.push(info),
                _ => return Err(S3Error::InvalidPart(*number)),
            }
        }
        drop(r);
        let etags: Vec<&str> = chosen.iter().map(|p| p.etag.as_str()).collect();
        let etag = checksum::multipart_etag(&etags);
        let sums: Vec<(Option<&Checksum>, u64)> = chosen
            .iter()
            .map(|p| (p.checksum.as_ref(), p.size))
            .collect();
        let object_checksum = head
            .checksum_algorithm
            .and_then(|alg| checksum::multipart_checksum(alg, &sums));
        let meta = ObjectMeta {
            size: 0, // apply sums the parts
            etag: etag.clone(),
            created_ms: self.now_ms(),
            headers: head.headers,
            user_meta: head.user_meta,
            checksum: object_checksum.clone(),
            data: ObjectData::Parts {
                count: parts.len() as u32,
            },
        };
        let command = CommandV1::CompleteUpload {
            upload_id: upload_id.into(),
            parts,
            meta,
        };
        match self.propose(command).await? {
            Applied::Version(version) => Ok(PutOutput {
                etag,
                version,
                checksum: object_checksum,
                unsealed: 0,
            }),
            other => Err(applied_error(other)),
        }
    }

    pub async fn abort_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), S3Error> {
        {
            let r = self.reader().await?;
            self.upload_of(&r, bucket, key, upload_id).await?;
        }
        match self
            .propose(CommandV1::AbortUpload {
                upload_id: upload_id.into(),
            })
            .await?
        {
            Applied::Done => Ok(()),
            other => Err(applied_error(other)),
        }
    }

    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> Result<PartsPage, S3Error> {
        let r = self.reader().await?;
        let head = self.upload_of(&r, bucket, key, upload_id).await?;
        let max = max.clamp(1, 1000);
        let mut rows = r
            .parts(upload_id, after, max + 1)
            .map_err(|e| S3Error::Internal(e.to_string()))?;
        let truncated = rows.len() > max;
        rows.truncate(max);
        let next_marker = rows.last().map_or(after, |(n, _)| *n);
        Ok(PartsPage {
            parts: rows
                .into_iter()
                .map(|(number, p)| PartView {
                    number,
                    size: p.size,
                    etag: p.etag,
                    last_modified_ms: p.created_ms,
                    checksum: p.checksum,
                })
                .collect(),
            truncated,
            next_marker,
            checksum_algorithm: head.checksum_algorithm,
        })
    }

    /// Uploads in progress in `bucket` under `prefix`, in (key, initiation) order,
    /// after the (key, upload id) marker; and whether there are more.
    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(String, Option<String>)>,
        max: usize,
    ) -> Result<(Vec<UploadInfo>, bool), S3Error> {
        let r = self.reader().await?;
        self.bucket_must_exist(&r, bucket).await?;
        let mut uploads: Vec<UploadInfo> = r
            .uploads()
            .map_err(|e| S3Error::Internal(e.to_string()))?
            .into_iter()
            .filter(|(_, h)| h.bucket == bucket && h.key.starts_with(prefix))
            .map(|(id, h)| UploadInfo {
                upload_id: id,
                key: h.key,
                initiated_ms: h.created_ms,
            })
            .collect();
        uploads.sort_by(|a, b| {
            (&a.key, a.initiated_ms, &a.upload_id).cmp(&(&b.key, b.initiated_ms, &b.upload_id))
        });
        if let Some((key, id)) = after {
            // After the marker upload in this order; a key alone skips that key's uploads.
            let at = id.and_then(|id| {
                uploads
                    .iter()
                    .position(|u| u.key == key && u.upload_id == id)
            });
            uploads = match at {
                Some(i) => uploads.split_off(i + 1),
                None => uploads.into_iter().filter(|u| u.key > key).collect(),
            };
        }
        let max = max.clamp(1, 1000);
        let truncated = uploads.len() > max;
        uploads.truncate(max);
        Ok((uploads, truncated))
    }
}
