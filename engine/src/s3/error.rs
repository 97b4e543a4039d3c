//! S3 errors, mapped in one place: every variant names its S3 code, HTTP status and
//! message, with no wildcard arm, so a new variant cannot go out unmapped.

/// An S3 operation's failure, as the client will see it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3Error {
    /// The bucket does not exist.
    #[error("NoSuchBucket")]
    NoSuchBucket,
    /// A tag set breaks S3's rules (too many tags, a key twice, too long, bad characters).
    #[error("InvalidTag: {0}")]
    InvalidTag(String),
    /// GetBucketTagging of a bucket without tags.
    #[error("NoSuchTagSet")]
    NoSuchTagSet,
    /// GetBucketCors of a bucket without a CORS configuration.
    #[error("NoSuchCORSConfiguration")]
    NoSuchCorsConfiguration,
    /// GetBucketLifecycleConfiguration of a bucket without one.
    #[error("NoSuchLifecycleConfiguration")]
    NoSuchLifecycleConfiguration,
    /// GetBucketEncryption of a bucket without a default encryption.
    #[error("ServerSideEncryptionConfigurationNotFoundError")]
    NoEncryptionConfiguration,
    /// A preflight no rule of the bucket's CORS configuration allows.
    #[error("AccessForbidden")]
    CorsForbidden,
    /// An XML document that is well formed but not what the operation takes.
    #[error("MalformedXML: {0}")]
    MalformedXml(String),
    /// The key has no current version.
    #[error("NoSuchKey")]
    NoSuchKey,
    /// The version id names no version of the key.
    #[error("NoSuchVersion")]
    NoSuchVersion,
    /// The version asked for is a delete marker: `NoSuchKey` (404) when it is the
    /// current version of a key asked for without an id, `MethodNotAllowed` (405) when
    /// the request named it; either way with `x-amz-delete-marker: true`.
    #[error("delete marker {version_id}")]
    DeleteMarker { version_id: String, named: bool },
    /// The upload id names no upload in progress (for this bucket and key).
    #[error("NoSuchUpload")]
    NoSuchUpload,
    /// CreateBucket of a bucket that exists (there is one owner: it is yours).
    #[error("BucketAlreadyOwnedByYou")]
    BucketAlreadyOwnedByYou,
    /// CreateBucket of a bucket someone else owns.
    #[error("BucketAlreadyExists")]
    BucketAlreadyExists,
    /// The caller may not do this.
    #[error("AccessDenied")]
    AccessDenied,
    /// An admin request names an access key that does not exist.
    #[error("NoSuchAccessKey: {0}")]
    NoSuchAccessKey(String),
    /// DeleteBucket of a bucket that still holds objects.
    #[error("BucketNotEmpty")]
    BucketNotEmpty,
    /// The bucket name breaks S3's naming rules.
    #[error("InvalidBucketName: {0}")]
    InvalidBucketName(String),
    /// A key longer than 1024 bytes.
    #[error("KeyTooLongError")]
    KeyTooLong,
    /// Content-MD5 or an x-amz-checksum-* value does not match the body.
    #[error("BadDigest: {0}")]
    BadDigest(String),
    /// Content-MD5 or a checksum header is not valid base64 of the right length.
    #[error("InvalidDigest: {0}")]
    InvalidDigest(String),
    /// A request argument is malformed or out of range.
    #[error("InvalidArgument: {0}")]
    InvalidArgument(String),
    /// A request that is well formed but not allowed (copying onto itself unchanged).
    #[error("InvalidRequest: {0}")]
    InvalidRequest(String),
    /// The Range asks for bytes past the object's end.
    #[error("InvalidRange")]
    InvalidRange { size: u64 },
    /// If-Match / If-Unmodified-Since (or a conditional PUT) found its condition false.
    #[error("PreconditionFailed")]
    PreconditionFailed,
    /// If-None-Match / If-Modified-Since on GET or HEAD: the client's copy is current.
    #[error("NotModified")]
    NotModified,
    /// A part named in CompleteMultipartUpload is missing or has another ETag.
    #[error("InvalidPart: {0}")]
    InvalidPart(u32),
    /// The parts of CompleteMultipartUpload are not in ascending order.
    #[error("InvalidPartOrder")]
    InvalidPartOrder,
    /// GET or HEAD of a part number past the object's parts.
    #[error("InvalidPartNumber")]
    InvalidPartNumber,
    /// A part other than the last is smaller than 5 MiB.
    #[error("EntityTooSmall: {0}")]
    EntityTooSmall(u32),
    /// The body is larger than the operation allows.
    #[error("EntityTooLarge")]
    EntityTooLarge,
    /// The body ended before its Content-Length (or went on past it).
    #[error("IncompleteBody: {0}")]
    IncompleteBody(String),
    /// The body does not hash to its x-amz-content-sha256.
    #[error("XAmzContentSHA256Mismatch")]
    ContentSha256Mismatch,
    /// A signature (of the request or of a body chunk) does not match.
    #[error("SignatureDoesNotMatch: {0}")]
    SignatureDoesNotMatch(String),
    /// The user metadata headers exceed 2 KB.
    #[error("MetadataTooLarge")]
    MetadataTooLarge,
    /// Too few storage nodes to meet the write floor, or no leader: retry later.
    #[error("SlowDown: {0}")]
    SlowDown(String),
    /// An object's data could not be read (fewer than k shards): an honest failure.
    #[error("ServiceUnavailable: {0}")]
    ServiceUnavailable(String),
    /// The metadata commit did not answer in time: the operation may or may not have
    /// taken effect (S3 clients retry a 503; a retried PUT is idempotent).
    #[error("ServiceUnavailable: {0}")]
    OutcomeUnknown(String),
    /// Fewer than k shards of the object's data are good, and repair has recorded it
    /// lost: 410 Gone, which clients do not retry (503 they would retry forever). It
    /// clears by itself if enough holders come back.
    #[error("ObjectLost: {0}")]
    ObjectLost(String),
    /// Something failed inside the node (its metadata store, say).
    #[error("InternalError: {0}")]
    Internal(String),
    /// An operation Hamster does not support.
    #[error("NotImplemented: {0}")]
    NotImplemented(String),
    /// A body without a Content-Length.
    #[error("MissingContentLength")]
    MissingContentLength,
    /// A bucket policy that is not valid JSON or not a policy Hamster understands.
    #[error("MalformedPolicy: {0}")]
    MalformedPolicy(String),
    /// An ACL document (or grant header) that does not parse.
    #[error("MalformedACLError: {0}")]
    MalformedAcl(String),
    /// An ACL on a bucket whose object ownership is BucketOwnerEnforced.
    #[error("AccessControlListNotSupported")]
    AclNotSupported,
    #[error("NoSuchBucketPolicy")]
    NoSuchBucketPolicy,
    #[error("NoSuchPublicAccessBlockConfiguration")]
    NoSuchPublicAccessBlock,
    #[error("OwnershipControlsNotFoundError")]
    NoOwnershipControls,
    /// A version's object lock (retention, legal hold) keeps it: AccessDenied.
    #[error("AccessDenied (object lock)")]
    ObjectLocked,
    /// The bucket's state refuses the request (object lock and versioning).
    #[error("InvalidBucketState: {0}")]
    InvalidBucketState(String),
    /// GetObjectLockConfiguration of a bucket without object lock.
    #[error("ObjectLockConfigurationNotFoundError")]
    NoLockConfiguration,
    /// GetObjectRetention or GetObjectLegalHold of a version that has none.
    #[error("NoSuchObjectLockConfiguration")]
    NoSuchObjectLockConfiguration,
}

impl S3Error {
    /// True when the operation may have taken effect despite the error (every other
    /// error means it had none).
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::OutcomeUnknown(_))
    }

    /// The S3 error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoSuchBucket => "NoSuchBucket",
            Self::InvalidTag(_) => "InvalidTag",
            Self::NoSuchTagSet => "NoSuchTagSet",
            Self::NoSuchCorsConfiguration => "NoSuchCORSConfiguration",
            Self::NoSuchLifecycleConfiguration => "NoSuchLifecycleConfiguration",
            Self::NoEncryptionConfiguration => "ServerSideEncryptionConfigurationNotFoundError",
            Self::CorsForbidden => "AccessForbidden",
            Self::MalformedXml(_) => "MalformedXML",
            Self::NoSuchKey => "NoSuchKey",
            Self::NoSuchVersion => "NoSuchVersion",
            Self::DeleteMarker { named: false, .. } => "NoSuchKey",
            Self::DeleteMarker { named: true, .. } => "MethodNotAllowed",
            Self::NoSuchUpload => "NoSuchUpload",
            Self::BucketAlreadyOwnedByYou => "BucketAlreadyOwnedByYou",
            Self::BucketNotEmpty => "BucketNotEmpty",
            Self::BucketAlreadyExists => "BucketAlreadyExists",
            Self::AccessDenied => "AccessDenied",
            Self::NoSuchAccessKey(_) => "NoSuchAccessKey",
            Self::InvalidBucketName(_) => "InvalidBucketName",
            Self::KeyTooLong => "KeyTooLongError",
            Self::BadDigest(_) => "BadDigest",
            Self::InvalidDigest(_) => "InvalidDigest",
            Self::InvalidArgument(_) => "InvalidArgument",
            Self::InvalidRequest(_) => "InvalidRequest",
            Self::InvalidRange { .. } => "InvalidRange",
            Self::PreconditionFailed => "PreconditionFailed",
            Self::NotModified => "NotModified",
            Self::InvalidPart(_) => "InvalidPart",
            Self::InvalidPartOrder => "InvalidPartOrder",
            Self::InvalidPartNumber => "InvalidPartNumber",
            Self::EntityTooSmall(_) => "EntityTooSmall",
            Self::EntityTooLarge => "EntityTooLarge",
            Self::IncompleteBody(_) => "IncompleteBody",
            Self::ContentSha256Mismatch => "XAmzContentSHA256Mismatch",
            Self::SignatureDoesNotMatch(_) => "SignatureDoesNotMatch",
            Self::MetadataTooLarge => "MetadataTooLarge",
            Self::SlowDown(_) => "SlowDown",
            Self::ServiceUnavailable(_) | Self::OutcomeUnknown(_) => "ServiceUnavailable",
            Self::ObjectLost(_) => "ObjectLost",
            Self::Internal(_) => "InternalError",
            Self::NotImplemented(_) => "NotImplemented",
            Self::MissingContentLength => "MissingContentLength",
            Self::MalformedPolicy(_) => "MalformedPolicy",
            Self::MalformedAcl(_) => "MalformedACLError",
            Self::AclNotSupported => "AccessControlListNotSupported",
            Self::NoSuchBucketPolicy => "NoSuchBucketPolicy",
            Self::NoSuchPublicAccessBlock => "NoSuchPublicAccessBlockConfiguration",
            Self::NoOwnershipControls => "OwnershipControlsNotFoundError",
            Self::ObjectLocked => "AccessDenied",
            Self::InvalidBucketState(_) => "InvalidBucketState",
            Self::NoLockConfiguration => "ObjectLockConfigurationNotFoundError",
            Self::NoSuchObjectLockConfiguration => "NoSuchObjectLockConfiguration",
        }
    }

    /// The HTTP status S3 answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::NoSuchBucket
            | Self::NoSuchKey
            | Self::NoSuchVersion
            | Self::DeleteMarker { named: false, .. }
            | Self::NoSuchUpload
            | Self::NoSuchAccessKey(_)
            | Self::NoSuchBucketPolicy
            | Self::NoSuchPublicAccessBlock
            | Self::NoOwnershipControls
            | Self::NoSuchTagSet
            | Self::NoSuchCorsConfiguration
            | Self::NoSuchLifecycleConfiguration
            | Self::NoEncryptionConfiguration
            | Self::NoLockConfiguration
            | Self::NoSuchObjectLockConfiguration => 404,
            Self::BucketAlreadyOwnedByYou
            | Self::BucketNotEmpty
            | Self::BucketAlreadyExists
            | Self::InvalidBucketState(_) => 409,
            Self::AccessDenied | Self::CorsForbidden | Self::ObjectLocked => 403,
            Self::InvalidBucketName(_)
            | Self::KeyTooLong
            | Self::BadDigest(_)
            | Self::InvalidDigest(_)
            | Self::InvalidArgument(_)
            | Self::InvalidRequest(_)
            | Self::InvalidPart(_)
            | Self::InvalidPartOrder
            | Self::EntityTooSmall(_)
            | Self::EntityTooLarge
            | Self::IncompleteBody(_)
            | Self::ContentSha256Mismatch
            | Self::MetadataTooLarge
            | Self::MalformedPolicy(_)
            | Self::MalformedAcl(_)
            | Self::AclNotSupported
            | Self::InvalidTag(_)
            | Self::MalformedXml(_) => 400,
            Self::SignatureDoesNotMatch(_) => 403,
            Self::InvalidRange { .. } | Self::InvalidPartNumber => 416,
            Self::DeleteMarker { named: true, .. } => 405,
            Self::PreconditionFailed => 412,
            Self::NotModified => 304,
            Self::SlowDown(_) | Self::ServiceUnavailable(_) | Self::OutcomeUnknown(_) => 503,
            Self::ObjectLost(_) => 410,
            Self::Internal(_) => 500,
            Self::NotImplemented(_) => 501,
            Self::MissingContentLength => 411,
        }
    }

    /// The message for the error document.
    pub fn message(&self) -> String {
        match self {
            Self::NoSuchBucket => "The specified bucket does not exist.".into(),
            Self::NoSuchKey | Self::DeleteMarker { named: false, .. } => {
                "The specified key does not exist.".into()
            }
            Self::NoSuchVersion => {
                "The specified version does not exist.".into()
            }
            Self::DeleteMarker { named: true, .. } => {
                "The specified method is not allowed against this resource.".into()
            }
            Self::NoSuchUpload => "The specified multipart upload does not exist.".into(),
            Self::BucketAlreadyOwnedByYou => {
                "Your previous request to create the named bucket succeeded and you already own it."
                    .into()
            }
            Self::BucketNotEmpty => "The bucket you tried to delete is not empty.".into(),
            Self::BucketAlreadyExists => "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.".into(),
            Self::AccessDenied => "Access Denied".into(),
            Self::NoSuchAccessKey(id) => format!("The access key {id} does not exist."),
            Self::InvalidBucketName(why) => format!("The specified bucket is not valid: {why}."),
            Self::KeyTooLong => "Your key is too long (at most 1024 bytes).".into(),
            Self::BadDigest(what) => format!("The {what} you specified did not match the body."),
            Self::InvalidDigest(what) => format!("The {what} you specified is not valid."),
            Self::InvalidArgument(what)
            | Self::InvalidRequest(what)
            | Self::IncompleteBody(what)
            | Self::SignatureDoesNotMatch(what)
            | Self::SlowDown(what)
            | Self::ServiceUnavailable(what)
            | Self::OutcomeUnknown(what)
            | Self::ObjectLost(what)
            | Self::Internal(what)
            | Self::NotImplemented(what)
            | Self::MalformedPolicy(what)
            | Self::MalformedAcl(what)
            | Self::InvalidTag(what)
            | Self::InvalidBucketState(what)
            | Self::MalformedXml(what) => what.clone(),
            Self::ObjectLocked => "Access Denied because object protected by object lock.".into(),
            Self::NoLockConfiguration => {
                "Object Lock configuration does not exist for this bucket".into()
            }
            Self::NoSuchObjectLockConfiguration => {
                "The specified object does not have a ObjectLock configuration".into()
            }
            Self::NoSuchCorsConfiguration => "The CORS configuration does not exist".into(),
            Self::NoSuchLifecycleConfiguration => {
                "The lifecycle configuration does not exist".into()
            }
            Self::NoEncryptionConfiguration => {
                "The server side encryption configuration was not found".into()
            }
            Self::CorsForbidden => "CORSResponse: This CORS request is not allowed. This is usually because the evaluation of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.".into(),
            Self::NoSuchTagSet => "The TagSet does not exist".into(),
            Self::AclNotSupported => "The bucket does not allow ACLs".into(),
            Self::NoSuchBucketPolicy => "The bucket policy does not exist".into(),
            Self::NoSuchPublicAccessBlock => {
                "The public access block configuration was not found".into()
            }
            Self::NoOwnershipControls => "The bucket ownership controls were not found".into(),
            Self::InvalidRange { size } => {
                format!("The requested range is not satisfiable (the object has {size} bytes).")
            }
            Self::PreconditionFailed => {
                "At least one of the preconditions you specified did not hold.".into()
            }
            Self::NotModified => "Not Modified".into(),
            Self::InvalidPart(n) => format!(
                "Part {n} could not be found, or its ETag does not match the one specified."
            ),
            Self::InvalidPartOrder => "The list of parts was not in ascending order.".into(),
            Self::InvalidPartNumber => "The requested partnumber is not satisfiable".into(),
            Self::EntityTooSmall(n) => {
                format!("Part {n} is smaller than the minimum allowed size of 5 MiB.")
            }
            Self::EntityTooLarge => {
                "Your proposed upload exceeds the maximum allowed object size.".into()
            }
            Self::ContentSha256Mismatch => {
                "The provided 'x-amz-content-sha256' header does not match what was computed."
                    .into()
            }
            Self::MetadataTooLarge => {
                "Your metadata headers exceed the maximum allowed metadata size (2 KB).".into()
            }
            Self::MissingContentLength => "You must provide the Content-Length HTTP header.".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses() {
        let table = [
            (S3Error::NoSuchBucket, "NoSuchBucket", 404),
            (S3Error::KeyTooLong, "KeyTooLongError", 400),
            (S3Error::BadDigest("Content-MD5".into()), "BadDigest", 400),
            (S3Error::InvalidRange { size: 3 }, "InvalidRange", 416),
            (S3Error::PreconditionFailed, "PreconditionFailed", 412),
            (S3Error::NotModified, "NotModified", 304),
            (S3Error::BucketNotEmpty, "BucketNotEmpty", 409),
            (S3Error::BucketAlreadyExists, "BucketAlreadyExists", 409),
            (S3Error::AccessDenied, "AccessDenied", 403),
            (S3Error::NoSuchAccessKey("k".into()), "NoSuchAccessKey", 404),
            (S3Error::SlowDown("x".into()), "SlowDown", 503),
            (S3Error::Internal("x".into()), "InternalError", 500),
            (S3Error::ObjectLost("x".into()), "ObjectLost", 410),
            (S3Error::NotImplemented("x".into()), "NotImplemented", 501),
            (S3Error::MalformedPolicy("x".into()), "MalformedPolicy", 400),
            (
                S3Error::AclNotSupported,
                "AccessControlListNotSupported",
                400,
            ),
            (S3Error::NoSuchBucketPolicy, "NoSuchBucketPolicy", 404),
            (S3Error::InvalidTag("x".into()), "InvalidTag", 400),
            (S3Error::NoSuchTagSet, "NoSuchTagSet", 404),
            (
                S3Error::NoSuchCorsConfiguration,
                "NoSuchCORSConfiguration",
                404,
            ),
            (S3Error::CorsForbidden, "AccessForbidden", 403),
            (S3Error::MalformedXml("x".into()), "MalformedXML", 400),
            (S3Error::NoSuchVersion, "NoSuchVersion", 404),
            (S3Error::ObjectLocked, "AccessDenied", 403),
            (S3Error::InvalidPartNumber, "InvalidPartNumber", 416),
            (
                S3Error::InvalidBucketState("x".into()),
                "InvalidBucketState",
                409,
            ),
            (
                S3Error::NoLockConfiguration,
                "ObjectLockConfigurationNotFoundError",
                404,
            ),
            (
                S3Error::NoSuchObjectLockConfiguration,
                "NoSuchObjectLockConfiguration",
                404,
            ),
            (
                S3Error::DeleteMarker {
                    version_id: "v".into(),
                    named: false,
                },
                "NoSuchKey",
                404,
            ),
            (
                S3Error::DeleteMarker {
                    version_id: "v".into(),
                    named: true,
                },
                "MethodNotAllowed",
                405,
            ),
        ];
        for (e, code, status) in table {
            assert_eq!((e.code(), e.status()), (code, status), "{e:?}");
            assert!(!e.message().is_empty());
        }
    }
}
