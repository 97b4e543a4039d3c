//! The values S3 operations take and give: object info, bodies, ranges, conditions,
//! copy sources, upload and part views.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};

use crate::data_path::{ByteSource, SourceError};
use crate::meta::access::VersionSettings;
use crate::meta::retention::VersionLock;
use crate::meta::{Checksum, ChecksumAlgorithm, ContentHeaders, ObjectData, PutCondition, Stored};
use crate::s3::S3Error;

/// A request's server-side encryption headers (`s3::encryption`).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SseArgs {
    /// x-amz-server-side-encryption (a write's): AES256 for SSE-S3.
    pub server: Option<String>,
    /// x-amz-server-side-encryption-customer-algorithm (or the copy source's).
    pub customer_algorithm: Option<String>,
    /// x-amz-server-side-encryption-customer-key: the customer's key, base64.
    pub customer_key: Option<String>,
    /// x-amz-server-side-encryption-customer-key-MD5, base64.
    pub customer_key_md5: Option<String>,
}

impl std::fmt::Debug for SseArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseArgs")
            .field("server", &self.server)
            .field("customer_algorithm", &self.customer_algorithm)
            .field("customer_key", &self.customer_key.as_ref().map(|_| ".."))
            .field("customer_key_md5", &self.customer_key_md5)
            .finish()
    }
}

/// What a client sees of an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    pub key: String,
    pub version: u64,
    /// S3's version id, where the version has one to show (none for S3's `null`
    /// version unless a request named it).
    pub version_id: Option<String>,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: u64,
    pub headers: ContentHeaders,
    pub user_meta: BTreeMap<String, String>,
    pub checksum: Option<Checksum>,
    /// Parts of a multipart object (0 for a simple one).
    pub parts: u32,
    /// Tags of the version (a GET sends the count; 0 where not read).
    pub tag_count: usize,
    /// The version's object lock, where read (GET and HEAD).
    pub lock: Option<VersionLock>,
    /// How the version is encrypted, where read (GET, HEAD, and what a write made).
    pub sse: Option<SseInfo>,
}

/// What S3's response headers say of an object's encryption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SseInfo {
    /// SSE-S3: `x-amz-server-side-encryption: AES256`.
    Managed,
    /// SSE-C: the algorithm (AES256) and the customer key's MD5 (base64).
    Customer { key_md5: String },
}

impl ObjectInfo {
    pub(crate) fn of(key: &str, s: &Stored) -> Self {
        Self {
            key: key.to_string(),
            version: s.version,
            version_id: (!s.null).then(|| s.version_id()),
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
            tag_count: 0,
            lock: None,
            sse: None,
        }
    }
}

/// What a write's request gives its new version besides its bytes: its ACL and tags,
/// and its object lock.
pub type Given = (VersionSettings, Option<VersionLock>);

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
    /// The new version's ACL and tags, committed with it.
    pub settings: VersionSettings,
    /// The new version's object lock, committed with it.
    pub lock: Option<VersionLock>,
    /// How the new version is to be encrypted.
    pub sse: SseArgs,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutOutput {
    pub etag: String,
    pub version: u64,
    /// S3's version id of the new version, where the bucket has versioning.
    pub version_id: Option<String>,
    pub checksum: Option<Checksum>,
    /// Shards the write could not seal (a degraded write; repair owes them).
    pub unsealed: u16,
    /// How the new version is encrypted.
    pub sse: Option<SseInfo>,
}

/// A Range header's one range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    pub(crate) first: Option<Bytes>,
    pub(crate) rx: mpsc::Receiver<Result<Bytes, S3Error>>,
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
pub(crate) struct Pieces(pub(crate) mpsc::Sender<Result<Bytes, S3Error>>);

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadInfo {
    pub upload_id: String,
    pub key: String,
    pub initiated_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartView {
    pub number: u32,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: u64,
    pub checksum: Option<Checksum>,
}

/// One page of ListParts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartsPage {
    pub parts: Vec<PartView>,
    pub truncated: bool,
    pub next_marker: u32,
    /// The page size used (max-parts, clamped to 1..=1000).
    pub max_parts: usize,
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
}

/// Where a copy's bytes come from.
pub struct CopySource {
    pub bucket: String,
    pub key: String,
    pub conditions: Conditions,
    /// UploadPartCopy's x-amz-copy-source-range.
    pub range: Option<RangeSpec>,
    /// `?versionId=` on x-amz-copy-source.
    pub version_id: Option<String>,
    /// An SSE-C source's key (x-amz-copy-source-server-side-encryption-customer-*).
    pub sse: SseArgs,
}

impl CopySource {
    /// The source's conditions (x-amz-copy-source-if-*) against `info`: every failing
    /// one is 412 here, If-None-Match included.
    pub fn check(&self, info: &ObjectInfo) -> Result<(), S3Error> {
        self.conditions.check(info).map_err(|e| match e {
            S3Error::NotModified => S3Error::PreconditionFailed,
            other => other,
        })
    }
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
