//! One typed S3 API: every operation a front end serves is a [`Request`], answered by
//! `S3::execute` (`s3::execute`) with a [`Response`] (and, for a GET, the object's
//! bytes). The HTTP edge translates s3s's types to these and back; the simulator's clients send the same
//! requests over the node RPC (`s3::rpc`). S3's rules live here, not in a front end:
//! how conditional PUT headers map to a condition, continuation tokens, max-keys,
//! part numbers, copy ranges, which checksum a request asks for.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::access::{Acl, CorsRule, Grant, Ownership, PublicAccessBlock, Tag};
use crate::meta::encryption::{BucketEncryption, ObjectEncryption};
use crate::meta::keys::Perms;
use crate::meta::lifecycle::LifecycleRule;
use crate::meta::retention::{LockConfig, Retention};
use crate::meta::{ChecksumAlgorithm, ContentHeaders, DataLayout};
use crate::s3::attributes::ObjectAttributes;
use crate::s3::cors::CorsAnswer;
use crate::s3::types::{
    Conditions, ObjectBody, ObjectInfo, PartsPage, PutOutput, RangeSpec, SseArgs, SseInfo,
    UploadInfo,
};
use crate::s3::versions::{Removal, VersionsPage};

/// An S3 request. A PutObject's and an UploadPart's body travel beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    ListBuckets,
    CreateBucket {
        bucket: String,
        /// x-amz-acl or x-amz-grant-*.
        acl: Option<AclInput>,
        /// x-amz-object-ownership.
        ownership: Option<Ownership>,
        /// x-amz-bucket-object-lock-enabled: versioning Enabled and object lock on.
        object_lock: bool,
    },
    HeadBucket {
        bucket: String,
    },
    DeleteBucket {
        bucket: String,
    },
    GetBucketLocation {
        bucket: String,
    },
    GetBucketVersioning {
        bucket: String,
    },
    /// `Enabled` or `Suspended`.
    PutBucketVersioning {
        bucket: String,
        status: String,
    },
    PutObject(Box<PutArgs>),
    GetObject(Box<GetArgs>),
    HeadObject {
        bucket: String,
        key: String,
        conditions: Conditions,
        version_id: Option<String>,
        /// `partNumber`: the head of one part (`s3::attributes`).
        part_number: Option<i32>,
        /// SSE-C: the key the object was written with.
        sse: SseArgs,
    },
    /// GetObjectAttributes (`s3::attributes`).
    GetObjectAttributes {
        bucket: String,
        key: String,
        version_id: Option<String>,
        /// x-amz-object-attributes: ETag, Checksum, ObjectParts, StorageClass, ObjectSize.
        attributes: Vec<String>,
        max_parts: Option<i32>,
        part_number_marker: Option<i32>,
        /// SSE-C: the key the object was written with.
        sse: SseArgs,
    },
    DeleteObject {
        bucket: String,
        key: String,
        version_id: Option<String>,
        /// x-amz-bypass-governance-retention.
        bypass_governance: bool,
    },
    DeleteObjects {
        bucket: String,
        keys: Vec<String>,
        quiet: bool,
        /// Each key's version id, if the request gave one (empty: none did).
        version_ids: Vec<Option<String>>,
        /// x-amz-bypass-governance-retention.
        bypass_governance: bool,
    },
    ListObjects {
        bucket: String,
        prefix: Option<String>,
        delimiter: Option<String>,
        marker: Option<String>,
        max_keys: Option<i32>,
    },
    ListObjectsV2 {
        bucket: String,
        prefix: Option<String>,
        delimiter: Option<String>,
        continuation_token: Option<String>,
        start_after: Option<String>,
        max_keys: Option<i32>,
    },
    CopyObject(Box<CopyArgs>),
    CreateMultipartUpload(Box<CreateUploadArgs>),
    UploadPart(Box<PartArgs>),
    UploadPartCopy(Box<PartCopyArgs>),
    CompleteMultipartUpload {
        bucket: String,
        key: String,
        upload_id: String,
        /// (PartNumber, ETag) as the client sent them; both are required.
        parts: Vec<(Option<i32>, Option<String>)>,
    },
    AbortMultipartUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    ListParts {
        bucket: String,
        key: String,
        upload_id: String,
        part_number_marker: Option<i32>,
        max_parts: Option<i32>,
    },
    ListMultipartUploads {
        bucket: String,
        prefix: Option<String>,
        delimiter: Option<String>,
        key_marker: Option<String>,
        upload_id_marker: Option<String>,
        max_uploads: Option<i32>,
    },
    /// Not S3: where an object's shards are, and whether repair recorded them lost (the
    /// simulator's durability checker; served to cluster members only).
    Layout {
        bucket: String,
        key: String,
        /// A version other than the current one.
        version_id: Option<String>,
    },
    /// ListObjectVersions: each key's versions, newest first, after (`key_marker`,
    /// `version_id_marker`); a version-id marker needs a key marker.
    ListObjectVersions {
        bucket: String,
        prefix: Option<String>,
        delimiter: Option<String>,
        key_marker: Option<String>,
        version_id_marker: Option<String>,
        max_keys: Option<i32>,
    },
    /// A bucket's (or one of its objects') access settings (`s3::settings`).
    Access {
        bucket: String,
        request: AccessRequest,
    },
    /// A bucket's (or one of its objects') tags (`s3::tags`).
    Tagging {
        bucket: String,
        request: TagRequest,
    },
    /// A bucket's object lock configuration, or a version's retention or legal hold
    /// (`s3::lock`).
    ObjectLock {
        bucket: String,
        request: LockRequest,
    },
    /// A browser's CORS preflight (`OPTIONS`) of a `method` request from `origin`
    /// naming `headers` (`Access-Control-Request-Headers`): anyone may ask (`s3::cors`).
    Preflight {
        bucket: String,
        origin: String,
        method: String,
        headers: Vec<String>,
    },
}

/// The tags of a bucket or of one of its objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TagRequest {
    GetObject {
        key: String,
        version_id: Option<String>,
    },
    PutObject {
        key: String,
        version_id: Option<String>,
        tags: Vec<Tag>,
    },
    DeleteObject {
        key: String,
        version_id: Option<String>,
    },
    GetBucket,
    PutBucket(Vec<Tag>),
    DeleteBucket,
}

impl TagRequest {
    /// The operation's S3 name.
    pub fn operation(&self) -> &'static str {
        match self {
            TagRequest::GetObject { .. } => "GetObjectTagging",
            TagRequest::PutObject { .. } => "PutObjectTagging",
            TagRequest::DeleteObject { .. } => "DeleteObjectTagging",
            TagRequest::GetBucket => "GetBucketTagging",
            TagRequest::PutBucket(_) => "PutBucketTagging",
            TagRequest::DeleteBucket => "DeleteBucketTagging",
        }
    }
}

/// Object lock requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockRequest {
    GetConfiguration,
    PutConfiguration {
        /// ObjectLockEnabled: only `Enabled` is valid.
        enabled: Option<String>,
        /// The rule's DefaultRetention, if the configuration has a rule.
        default: Option<DefaultRetentionArgs>,
    },
    GetRetention {
        key: String,
        version_id: Option<String>,
    },
    /// A retention with neither mode nor date removes it.
    PutRetention {
        key: String,
        version_id: Option<String>,
        mode: Option<String>,
        retain_until_ms: Option<i64>,
        bypass_governance: bool,
    },
    GetLegalHold {
        key: String,
        version_id: Option<String>,
    },
    /// `ON` or `OFF`.
    PutLegalHold {
        key: String,
        version_id: Option<String>,
        status: Option<String>,
    },
}

impl LockRequest {
    /// The operation's S3 name.
    pub fn operation(&self) -> &'static str {
        match self {
            LockRequest::GetConfiguration => "GetObjectLockConfiguration",
            LockRequest::PutConfiguration { .. } => "PutObjectLockConfiguration",
            LockRequest::GetRetention { .. } => "GetObjectRetention",
            LockRequest::PutRetention { .. } => "PutObjectRetention",
            LockRequest::GetLegalHold { .. } => "GetObjectLegalHold",
            LockRequest::PutLegalHold { .. } => "PutObjectLegalHold",
        }
    }
}

/// A lock configuration's DefaultRetention as the request gave it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetentionArgs {
    pub mode: Option<String>,
    pub days: Option<i32>,
    pub years: Option<i32>,
}

/// The x-amz-object-lock-* headers of a write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockArgs {
    pub mode: Option<String>,
    pub retain_until_ms: Option<i64>,
    /// `ON` or `OFF`.
    pub legal_hold: Option<String>,
}

/// The access settings of a bucket and its objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessRequest {
    GetBucketPolicy,
    /// The policy's JSON.
    PutBucketPolicy(String),
    DeleteBucketPolicy,
    GetBucketPolicyStatus,
    GetBucketAcl,
    PutBucketAcl(AclInput),
    GetObjectAcl {
        key: String,
        version_id: Option<String>,
    },
    PutObjectAcl {
        key: String,
        version_id: Option<String>,
        acl: AclInput,
    },
    GetPublicAccessBlock,
    PutPublicAccessBlock(PublicAccessBlock),
    DeletePublicAccessBlock,
    GetBucketOwnershipControls,
    PutBucketOwnershipControls(Ownership),
    DeleteBucketOwnershipControls,
    GetBucketCors,
    PutBucketCors(Vec<CorsRule>),
    DeleteBucketCors,
    GetBucketLifecycleConfiguration,
    /// The rules, in order (`s3::lifecycle` checks them).
    PutBucketLifecycleConfiguration(Vec<LifecycleRule>),
    DeleteBucketLifecycle,
    GetBucketEncryption,
    /// The default's algorithm (only AES256 is served) and BucketKeyEnabled.
    PutBucketEncryption {
        algorithm: String,
        bucket_key_enabled: bool,
    },
    DeleteBucketEncryption,
}

impl AccessRequest {
    /// The operation's S3 name.
    pub fn operation(&self) -> &'static str {
        use AccessRequest as A;
        match self {
            A::GetBucketPolicy => "GetBucketPolicy",
            A::PutBucketPolicy(_) => "PutBucketPolicy",
            A::DeleteBucketPolicy => "DeleteBucketPolicy",
            A::GetBucketPolicyStatus => "GetBucketPolicyStatus",
            A::GetBucketAcl => "GetBucketAcl",
            A::PutBucketAcl(_) => "PutBucketAcl",
            A::GetObjectAcl { .. } => "GetObjectAcl",
            A::PutObjectAcl { .. } => "PutObjectAcl",
            A::GetPublicAccessBlock => "GetPublicAccessBlock",
            A::PutPublicAccessBlock(_) => "PutPublicAccessBlock",
            A::DeletePublicAccessBlock => "DeletePublicAccessBlock",
            A::GetBucketOwnershipControls => "GetBucketOwnershipControls",
            A::PutBucketOwnershipControls(_) => "PutBucketOwnershipControls",
            A::DeleteBucketOwnershipControls => "DeleteBucketOwnershipControls",
            A::GetBucketCors => "GetBucketCors",
            A::PutBucketCors(_) => "PutBucketCors",
            A::DeleteBucketCors => "DeleteBucketCors",
            A::GetBucketLifecycleConfiguration => "GetBucketLifecycleConfiguration",
            A::PutBucketLifecycleConfiguration(_) => "PutBucketLifecycleConfiguration",
            A::DeleteBucketLifecycle => "DeleteBucketLifecycle",
            A::GetBucketEncryption => "GetBucketEncryption",
            A::PutBucketEncryption { .. } => "PutBucketEncryption",
            A::DeleteBucketEncryption => "DeleteBucketEncryption",
        }
    }
}

/// An ACL as a request gives it: a canned ACL's name (`x-amz-acl`), or grants (an
/// AccessControlPolicy document, or `x-amz-grant-*` headers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AclInput {
    Canned(String),
    Grants {
        /// The owner the document names (it must be the real one).
        owner: Option<String>,
        grants: Vec<Grant>,
    },
}

/// The checksum headers of a body: the announced algorithm (`x-amz-checksum-algorithm`
/// or `x-amz-sdk-checksum-algorithm`) and any `x-amz-checksum-*` values given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksumArgs {
    pub algorithm: Option<String>,
    pub given: Vec<(ChecksumAlgorithm, String)>,
}

/// A body's size and digests as the client announced them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyArgs {
    /// Content-Length (or x-amz-decoded-content-length); required.
    pub size: Option<i64>,
    pub content_md5: Option<String>,
    pub checksum: ChecksumArgs,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutArgs {
    pub bucket: String,
    pub key: String,
    pub headers: ContentHeaders,
    pub user_meta: BTreeMap<String, String>,
    /// If-Match: write only over this ETag.
    pub if_match: Option<String>,
    /// If-None-Match: `*` writes only if the key is absent.
    pub if_none_match: Option<String>,
    pub body: BodyArgs,
    /// x-amz-acl or x-amz-grant-*.
    pub acl: Option<AclInput>,
    /// x-amz-tagging: the new version's tags, URL-encoded.
    pub tagging: Option<String>,
    pub lock: LockArgs,
    pub sse: SseArgs,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetArgs {
    pub bucket: String,
    pub key: String,
    pub range: Option<RangeSpec>,
    pub conditions: Conditions,
    pub part_number: Option<i32>,
    /// response-content-type and the like: these replace the stored headers.
    pub overrides: ContentHeaders,
    pub version_id: Option<String>,
    /// SSE-C: the key the object was written with.
    pub sse: SseArgs,
}

/// A copy's source as named by x-amz-copy-source and its conditions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceArgs {
    pub bucket: String,
    pub key: String,
    pub conditions: Conditions,
    /// `?versionId=` on x-amz-copy-source.
    pub version_id: Option<String>,
    /// x-amz-copy-source-server-side-encryption-customer-*: an SSE-C source's key.
    pub sse: SseArgs,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyArgs {
    pub source: SourceArgs,
    pub bucket: String,
    pub key: String,
    /// x-amz-metadata-directive: COPY (the default) or REPLACE.
    pub metadata_directive: Option<String>,
    /// The headers and metadata to use with REPLACE.
    pub headers: ContentHeaders,
    pub user_meta: BTreeMap<String, String>,
    /// x-amz-acl or x-amz-grant-*.
    pub acl: Option<AclInput>,
    /// x-amz-tagging-directive: COPY (the default: the source's tags) or REPLACE.
    pub tagging_directive: Option<String>,
    /// x-amz-tagging: the tags to use with REPLACE.
    pub tagging: Option<String>,
    pub lock: LockArgs,
    /// How the copy is encrypted.
    pub sse: SseArgs,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUploadArgs {
    pub bucket: String,
    pub key: String,
    pub headers: ContentHeaders,
    pub user_meta: BTreeMap<String, String>,
    pub checksum_algorithm: Option<String>,
    /// x-amz-acl or x-amz-grant-*.
    pub acl: Option<AclInput>,
    /// x-amz-tagging: the completed object's tags, URL-encoded.
    pub tagging: Option<String>,
    pub lock: LockArgs,
    /// How the completed object is encrypted (every part alike).
    pub sse: SseArgs,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartArgs {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub part_number: i32,
    pub body: BodyArgs,
    /// SSE-C: the upload's key, again.
    pub sse: SseArgs,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartCopyArgs {
    pub source: SourceArgs,
    /// x-amz-copy-source-range: `bytes=first-last`.
    pub source_range: Option<String>,
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub part_number: i32,
    /// SSE-C: the upload's key, again.
    pub sse: SseArgs,
}

/// A bucket as ListBuckets shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEntry {
    pub name: String,
    pub created_ms: u64,
}

/// One page of ListObjects (v1 or v2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub prefix: String,
    pub max_keys: usize,
    pub objects: Vec<ObjectInfo>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// v1: where the next page starts (sent with a delimiter, as S3 does); versions:
    /// the next key marker (sent whenever the page is truncated).
    pub next_marker: Option<String>,
    /// v2: the token of the next page.
    pub next_continuation_token: Option<String>,
}

/// One page of ListMultipartUploads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadsPage {
    pub prefix: String,
    pub max_uploads: usize,
    pub uploads: Vec<UploadInfo>,
    /// With a delimiter: the keys rolled up, each once.
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Done,
    Buckets(Vec<BucketEntry>),
    /// GetBucketLocation: `None` for us-east-1, as S3 answers it.
    Location(Option<String>),
    /// GetBucketVersioning: `None` for a bucket that never had versioning.
    Versioning(Option<String>),
    /// DeleteObject: what it removed or wrote.
    Removed(Removal),
    /// ListObjectVersions.
    Versions(VersionsPage),
    /// PutObject, CopyObject, UploadPart, UploadPartCopy, CompleteMultipartUpload.
    Put(PutOutput),
    /// A GET's head (the bytes come beside it); `range` is the half-open span served.
    Object {
        info: ObjectInfo,
        range: Option<(u64, u64)>,
    },
    /// A HEAD's answer; `range`: the half-open span of the part asked for.
    Head {
        info: ObjectInfo,
        range: Option<(u64, u64)>,
    },
    /// GetObjectAttributes.
    Attributes(ObjectAttributes),
    /// A DeleteObjects: the keys deleted (none when the request was quiet), and those
    /// the caller may not delete (each answered AccessDenied, as S3 does, while the
    /// others are deleted).
    Deleted {
        deleted: Vec<Removal>,
        denied: Vec<String>,
    },
    Listing(Listing),
    /// CreateMultipartUpload: the upload's id, and how its parts are encrypted.
    Upload(String, Option<SseInfo>),
    Parts(PartsPage),
    Uploads(UploadsPage),
    /// Layout: each blob and whether repair marked it lost, and how the bytes are
    /// encrypted.
    Layout {
        blobs: Vec<(DataLayout, bool)>,
        encryption: Option<ObjectEncryption>,
    },
    /// An admin request about keys (`crate::s3::keys`), over the node RPC.
    Keys(KeyResponse),
    /// GetBucketPolicy: the JSON as it was put.
    Policy(String),
    /// GetBucketPolicyStatus: whether the policy makes the bucket public.
    PolicyStatus(bool),
    /// GetBucketAcl, GetObjectAcl.
    Acl(Acl),
    PublicAccessBlock(PublicAccessBlock),
    Ownership(Ownership),
    /// GetObjectTagging, GetBucketTagging: the tag set, in the order it was put.
    Tags(Vec<Tag>),
    /// GetBucketCors: the rules, in order.
    CorsRules(Vec<CorsRule>),
    /// A preflight's answer: what the matching rule allows.
    Cors(CorsAnswer),
    /// GetBucketLifecycleConfiguration: the rules, in order.
    Lifecycle(Vec<LifecycleRule>),
    /// GetBucketEncryption: the default is SSE-S3 (AES256); its BucketKeyEnabled.
    Encryption(BucketEncryption),
    /// GetObjectLockConfiguration.
    LockConfig(LockConfig),
    /// GetObjectRetention.
    Retention(Retention),
    /// GetObjectLegalHold: ON or not.
    LegalHold(bool),
}

/// An answer: the response, and a GET's bytes.
pub struct Reply {
    pub response: Response,
    pub body: Option<ObjectBody>,
}

impl From<Response> for Reply {
    fn from(response: Response) -> Self {
        Self {
            response,
            body: None,
        }
    }
}

/// The name of every operation [`Request`] expresses, as S3 names it.
pub const OPERATIONS: &[&str] = &[
    "ListBuckets",
    "CreateBucket",
    "HeadBucket",
    "DeleteBucket",
    "GetBucketLocation",
    "GetBucketVersioning",
    "PutBucketVersioning",
    "PutObject",
    "GetObject",
    "HeadObject",
    "GetObjectAttributes",
    "DeleteObject",
    "DeleteObjects",
    "ListObjects",
    "ListObjectsV2",
    "ListObjectVersions",
    "CopyObject",
    "CreateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "ListParts",
    "ListMultipartUploads",
    "Layout",
    "GetBucketPolicy",
    "PutBucketPolicy",
    "DeleteBucketPolicy",
    "GetBucketPolicyStatus",
    "GetBucketAcl",
    "PutBucketAcl",
    "GetObjectAcl",
    "PutObjectAcl",
    "GetPublicAccessBlock",
    "PutPublicAccessBlock",
    "DeletePublicAccessBlock",
    "GetBucketOwnershipControls",
    "PutBucketOwnershipControls",
    "DeleteBucketOwnershipControls",
    "GetObjectTagging",
    "PutObjectTagging",
    "DeleteObjectTagging",
    "GetBucketTagging",
    "PutBucketTagging",
    "DeleteBucketTagging",
    "GetBucketCors",
    "PutBucketCors",
    "DeleteBucketCors",
    "GetBucketLifecycleConfiguration",
    "PutBucketLifecycleConfiguration",
    "DeleteBucketLifecycle",
    "GetBucketEncryption",
    "PutBucketEncryption",
    "DeleteBucketEncryption",
    "GetObjectLockConfiguration",
    "PutObjectLockConfiguration",
    "GetObjectRetention",
    "PutObjectRetention",
    "GetObjectLegalHold",
    "PutObjectLegalHold",
    "Preflight",
];

impl Request {
    /// The operation's S3 name (one of [`OPERATIONS`]).
    pub fn operation(&self) -> &'static str {
        match self {
            Request::ListBuckets => "ListBuckets",
            Request::CreateBucket { .. } => "CreateBucket",
            Request::HeadBucket { .. } => "HeadBucket",
            Request::DeleteBucket { .. } => "DeleteBucket",
            Request::GetBucketLocation { .. } => "GetBucketLocation",
            Request::GetBucketVersioning { .. } => "GetBucketVersioning",
            Request::PutBucketVersioning { .. } => "PutBucketVersioning",
            Request::PutObject(_) => "PutObject",
            Request::GetObject(_) => "GetObject",
            Request::HeadObject { .. } => "HeadObject",
            Request::GetObjectAttributes { .. } => "GetObjectAttributes",
            Request::DeleteObject { .. } => "DeleteObject",
            Request::DeleteObjects { .. } => "DeleteObjects",
            Request::ListObjects { .. } => "ListObjects",
            Request::ListObjectsV2 { .. } => "ListObjectsV2",
            Request::CopyObject(_) => "CopyObject",
            Request::CreateMultipartUpload(_) => "CreateMultipartUpload",
            Request::UploadPart(_) => "UploadPart",
            Request::UploadPartCopy(_) => "UploadPartCopy",
            Request::CompleteMultipartUpload { .. } => "CompleteMultipartUpload",
            Request::AbortMultipartUpload { .. } => "AbortMultipartUpload",
            Request::ListParts { .. } => "ListParts",
            Request::ListMultipartUploads { .. } => "ListMultipartUploads",
            Request::Layout { .. } => "Layout",
            Request::ListObjectVersions { .. } => "ListObjectVersions",
            Request::Access { request, .. } => request.operation(),
            Request::Tagging { request, .. } => request.operation(),
            Request::ObjectLock { request, .. } => request.operation(),
            Request::Preflight { .. } => "Preflight",
        }
    }

    /// Whether a body travels with this request.
    pub fn has_body(&self) -> bool {
        matches!(self, Request::PutObject(_) | Request::UploadPart(_))
    }
}

/// The principal of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Caller {
    /// The root key (or a cluster member on the node RPC).
    Root,
    /// An access key, by id.
    Key(String),
    /// An unsigned request.
    Anonymous,
}

/// Where a request came from, as policy conditions see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub source_ip: Option<core::net::IpAddr>,
    /// Over TLS.
    pub secure: bool,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
}

/// An admin request about keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyRequest {
    /// A new key. The front end draws `access_key` and `secret_key` from the operating
    /// system's randomness; the secret is answered once and stored only sealed.
    Create {
        name: String,
        create_bucket: bool,
        access_key: String,
        secret_key: String,
    },
    List,
    Info {
        key: String,
    },
    Delete {
        key: String,
    },
    /// Adds rights (`allow`) or takes them away.
    Grant {
        key: String,
        bucket: String,
        perms: Perms,
        allow: bool,
    },
}

/// A key as the admin API shows it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub access_key: String,
    pub name: String,
    pub create_bucket: bool,
    pub created_ms: u64,
    pub grants: BTreeMap<String, Perms>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyResponse {
    Created {
        access_key: String,
        secret_key: String,
    },
    Keys(Vec<KeyInfo>),
    Info(KeyInfo),
    Done,
}
