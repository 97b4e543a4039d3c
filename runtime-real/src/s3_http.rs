//! The S3 HTTP edge: s3s's `S3` trait over the engine's S3 operations (`engine::s3`).
//! s3s parses requests, checks SigV4 (headers, presigned URLs, aws-chunked bodies with
//! their trailers) and writes responses; this module only translates between its DTOs
//! and the engine's types. Every operation the engine does not offer is left to s3s's
//! default, which answers `NotImplemented`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use engine::data_path::{ByteSource, SourceError};
use engine::meta::{Checksum, ChecksumAlgorithm, ContentHeaders, PutCondition};
use engine::s3::{self as es3, Conditions, ObjectInfo, S3Error as EngineError};
use futures::StreamExt;
use s3s::dto;
use s3s::{S3Request, S3Response, S3Result};

use crate::RealEnv;

/// The engine's S3 service behind s3s.
pub struct Edge {
    s3: Arc<es3::S3<RealEnv>>,
}

impl Edge {
    pub fn new(s3: Arc<es3::S3<RealEnv>>) -> Self {
        Self { s3 }
    }
}

/// An engine error as s3s sends it: the same code, status and message.
pub fn s3s_error(e: EngineError) -> s3s::S3Error {
    let code = s3s::S3ErrorCode::from_bytes(e.code().as_bytes())
        .unwrap_or_else(|| s3s::S3ErrorCode::Custom(e.code().into()));
    let mut err = s3s::S3Error::with_message(code, e.message());
    if let Ok(status) = http::StatusCode::from_u16(e.status()) {
        err.set_status_code(status);
    }
    if let EngineError::InvalidRange { size } = e
        && let Ok(v) = http::HeaderValue::from_str(&format!("bytes */{size}"))
    {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_RANGE, v);
        err.set_headers(headers);
    }
    err
}

fn ms_of(ts: &dto::Timestamp) -> u64 {
    let t = time::OffsetDateTime::from(ts.clone());
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn timestamp(ms: u64) -> dto::Timestamp {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .into()
}

fn etag(value: &str) -> dto::ETag {
    dto::ETag::Strong(value.to_string())
}

fn etag_text(c: &dto::ETagCondition) -> String {
    match c {
        dto::ETagCondition::Any => "*".into(),
        dto::ETagCondition::ETag(e) => e.value().to_string(),
    }
}

fn algorithm(a: &dto::ChecksumAlgorithm) -> S3Result<ChecksumAlgorithm> {
    Ok(match a.as_str().to_ascii_uppercase().as_str() {
        "CRC32" => ChecksumAlgorithm::Crc32,
        "CRC32C" => ChecksumAlgorithm::Crc32c,
        "CRC64NVME" => ChecksumAlgorithm::Crc64Nvme,
        "SHA1" => ChecksumAlgorithm::Sha1,
        "SHA256" => ChecksumAlgorithm::Sha256,
        other => {
            return Err(s3s_error(EngineError::InvalidArgument(format!(
                "unknown checksum algorithm {other}"
            ))));
        }
    })
}

fn algorithm_dto(a: ChecksumAlgorithm) -> dto::ChecksumAlgorithm {
    dto::ChecksumAlgorithm::from_static(match a {
        ChecksumAlgorithm::Crc32 => dto::ChecksumAlgorithm::CRC32,
        ChecksumAlgorithm::Crc32c => dto::ChecksumAlgorithm::CRC32C,
        ChecksumAlgorithm::Crc64Nvme => dto::ChecksumAlgorithm::CRC64NVME,
        ChecksumAlgorithm::Sha1 => dto::ChecksumAlgorithm::SHA1,
        ChecksumAlgorithm::Sha256 => dto::ChecksumAlgorithm::SHA256,
    })
}

/// The checksum a request asks for: an explicit value wins (its algorithm with it),
/// else the announced algorithm (value in a trailer, or none to check).
fn requested_checksum(
    alg: Option<&dto::ChecksumAlgorithm>,
    values: [Option<&String>; 5],
) -> S3Result<Option<(ChecksumAlgorithm, Option<String>)>> {
    let algs = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ];
    let given: Vec<(ChecksumAlgorithm, String)> = algs
        .into_iter()
        .zip(values)
        .filter_map(|(a, v)| v.map(|v| (a, v.clone())))
        .collect();
    if given.len() > 1 {
        return Err(s3s_error(EngineError::InvalidRequest(
            "Expecting a single x-amz-checksum- header. Multiple checksum types are not allowed."
                .into(),
        )));
    }
    if let Some((a, v)) = given.into_iter().next() {
        return Ok(Some((a, Some(v))));
    }
    Ok(alg.map(algorithm).transpose()?.map(|a| (a, None)))
}

/// Checksum fields of an output, filled from the engine's checksum.
#[derive(Default)]
struct ChecksumFields {
    crc32: Option<String>,
    crc32c: Option<String>,
    crc64nvme: Option<String>,
    sha1: Option<String>,
    sha256: Option<String>,
    kind: Option<dto::ChecksumType>,
}

fn checksum_fields(c: Option<&Checksum>) -> ChecksumFields {
    let mut f = ChecksumFields::default();
    let Some(c) = c else {
        return f;
    };
    let value = match c.parts {
        Some(n) => format!("{}-{n}", c.value),
        None => c.value.clone(),
    };
    match c.algorithm {
        ChecksumAlgorithm::Crc32 => f.crc32 = Some(value),
        ChecksumAlgorithm::Crc32c => f.crc32c = Some(value),
        ChecksumAlgorithm::Crc64Nvme => f.crc64nvme = Some(value),
        ChecksumAlgorithm::Sha1 => f.sha1 = Some(value),
        ChecksumAlgorithm::Sha256 => f.sha256 = Some(value),
    }
    f.kind = Some(dto::ChecksumType::from_static(match c.parts {
        Some(_) => dto::ChecksumType::COMPOSITE,
        None => dto::ChecksumType::FULL_OBJECT,
    }));
    f
}

fn user_meta(m: Option<dto::Metadata>) -> BTreeMap<String, String> {
    m.map(|m| {
        m.into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect()
    })
    .unwrap_or_default()
}

fn metadata_dto(m: &BTreeMap<String, String>) -> Option<dto::Metadata> {
    if m.is_empty() {
        return None;
    }
    Some(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

struct HeaderInputs {
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<dto::Timestamp>,
}

fn content_headers(h: HeaderInputs, raw: &http::HeaderMap) -> ContentHeaders {
    // Expires is kept as the client wrote it (S3 returns it verbatim).
    let expires = raw
        .get(http::header::EXPIRES)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .or_else(|| {
            h.expires.map(|t| {
                let mut out = Vec::new();
                let _ = t.format(dto::TimestampFormat::HttpDate, &mut out);
                String::from_utf8_lossy(&out).into_owned()
            })
        });
    ContentHeaders {
        content_type: h.content_type,
        content_encoding: h.content_encoding,
        content_disposition: h.content_disposition,
        content_language: h.content_language,
        cache_control: h.cache_control,
        expires,
    }
}

fn expires_dto(h: &ContentHeaders) -> Option<dto::Timestamp> {
    h.expires
        .as_deref()
        .and_then(|e| dto::Timestamp::parse(dto::TimestampFormat::HttpDate, e).ok())
}

/// A request body as a byte source. Errors that s3s's body decoders raise (a payload
/// hash or chunk signature that does not match, malformed framing) are told apart.
struct BlobSource(Option<dto::StreamingBlob>);

impl ByteSource for BlobSource {
    async fn next_bytes(&mut self) -> Result<Option<Bytes>, SourceError> {
        let Some(blob) = self.0.as_mut() else {
            return Ok(None);
        };
        match blob.next().await {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => {
                let text = e.to_string();
                Err(if text.contains("Sha256Mismatch") {
                    SourceError::Sha256Mismatch
                } else if text.contains("SignatureMismatch") {
                    SourceError::ChunkSignature
                } else if let Some(limit) = crate::server::over_limit(&*e) {
                    SourceError::OverLimit(limit)
                } else {
                    SourceError::Failed(text)
                })
            }
        }
    }
}

/// Trailing headers of an aws-chunked body, read after the body ended.
struct Trailers(Option<s3s::TrailingHeaders>);

impl es3::Trailer for Trailers {
    fn checksum(&self, alg: ChecksumAlgorithm) -> Option<String> {
        let name = format!("x-amz-checksum-{}", es3::checksum::algorithm_name(alg));
        self.0.as_ref()?.read(|h| {
            h.get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        })?
    }
}

fn body_size(len: Option<i64>) -> S3Result<u64> {
    match len {
        Some(n) if n >= 0 => Ok(n as u64),
        Some(_) => Err(s3s_error(EngineError::InvalidArgument(
            "negative Content-Length".into(),
        ))),
        None => Err(s3s::s3_error!(
            MissingContentLength,
            "You must provide the Content-Length HTTP header."
        )),
    }
}

fn conditions(
    if_match: Option<&dto::ETagCondition>,
    if_none_match: Option<&dto::ETagCondition>,
    modified_since: Option<&dto::Timestamp>,
    unmodified_since: Option<&dto::Timestamp>,
) -> Conditions {
    Conditions {
        if_match: if_match.map(etag_text),
        if_none_match: if_none_match.map(etag_text),
        if_modified_since_ms: modified_since.map(ms_of),
        if_unmodified_since_ms: unmodified_since.map(ms_of),
    }
}

fn range(r: Option<dto::Range>) -> Option<es3::RangeSpec> {
    r.map(|r| match r {
        dto::Range::Int { first, last } => es3::RangeSpec::From { first, last },
        dto::Range::Suffix { length } => es3::RangeSpec::Suffix(length),
    })
}

fn copy_source(
    src: &dto::CopySource,
    conditions: Conditions,
    range: Option<es3::RangeSpec>,
) -> S3Result<es3::CopySource> {
    match src {
        dto::CopySource::Bucket { bucket, key, .. } => Ok(es3::CopySource {
            bucket: bucket.to_string(),
            key: key.to_string(),
            conditions,
            range,
        }),
        _ => Err(s3s_error(EngineError::NotImplemented(
            "copy sources other than bucket/key".into(),
        ))),
    }
}

fn copy_range(r: Option<&String>) -> S3Result<Option<es3::RangeSpec>> {
    let Some(r) = r else {
        return Ok(None);
    };
    match dto::Range::parse(r) {
        Ok(dto::Range::Int {
            first,
            last: Some(last),
        }) => Ok(Some(es3::RangeSpec::From {
            first,
            last: Some(last),
        })),
        _ => Err(s3s_error(EngineError::InvalidArgument(
            "x-amz-copy-source-range must be bytes=first-last".into(),
        ))),
    }
}

/// Continuation tokens are the key to resume after, hex-encoded (opaque to clients,
/// safe in any XML).
fn token_of(key: &str) -> String {
    es3::checksum::hex(key.as_bytes())
}

fn key_of(token: &str) -> S3Result<String> {
    let bad = || {
        s3s_error(EngineError::InvalidArgument(
            "The continuation token is not valid.".into(),
        ))
    };
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes.ok_or_else(bad)?).map_err(|_| bad())
}

fn max_keys(m: Option<i32>) -> S3Result<usize> {
    match m {
        None => Ok(es3::list::MAX_KEYS_LIMIT),
        Some(n) if n >= 0 => Ok((n as usize).min(es3::list::MAX_KEYS_LIMIT)),
        Some(_) => Err(s3s_error(EngineError::InvalidArgument(
            "max-keys must not be negative".into(),
        ))),
    }
}

/// `encoding-type=url`: listed names percent-encoded (all but unreserved characters
/// and `/`), so that any key survives XML.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Names in a listing, as the request's encoding type has them.
struct Names(bool);

impl Names {
    fn of(encoding: Option<&dto::EncodingType>) -> Self {
        Self(encoding.is_some_and(|e| e.as_str().eq_ignore_ascii_case("url")))
    }
    fn name(&self, s: &str) -> String {
        if self.0 { url_encode(s) } else { s.to_string() }
    }
    fn opt(&self, s: Option<String>) -> Option<String> {
        s.map(|s| self.name(&s))
    }
}

fn object_dto(info: &ObjectInfo, names: &Names) -> dto::Object {
    dto::Object {
        key: Some(names.name(&info.key)),
        size: Some(info.size as i64),
        e_tag: Some(etag(&info.etag)),
        last_modified: Some(timestamp(info.last_modified_ms)),
        storage_class: Some(dto::ObjectStorageClass::from_static(
            dto::ObjectStorageClass::STANDARD,
        )),
        checksum_algorithm: info
            .checksum
            .as_ref()
            .map(|c| vec![algorithm_dto(c.algorithm)]),
        ..Default::default()
    }
}

fn prefixes_dto(prefixes: Vec<String>, names: &Names) -> Option<Vec<dto::CommonPrefix>> {
    if prefixes.is_empty() {
        return None;
    }
    Some(
        prefixes
            .into_iter()
            .map(|p| dto::CommonPrefix {
                prefix: Some(names.name(&p)),
            })
            .collect(),
    )
}

fn owner(s3: &es3::S3<RealEnv>) -> dto::Owner {
    dto::Owner {
        display_name: Some(s3.config().owner.clone()),
        id: Some(s3.config().owner.clone()),
    }
}

fn stream_of(body: es3::ObjectBody) -> dto::StreamingBlob {
    let stream = futures::stream::unfold(body, |mut body| async move {
        let piece = body.next().await?;
        Some((
            piece.map_err(|e| std::io::Error::other(e.to_string())),
            body,
        ))
    });
    dto::StreamingBlob::wrap(stream)
}

fn e<T>(r: Result<T, EngineError>) -> S3Result<T> {
    r.map_err(s3s_error)
}

#[async_trait::async_trait]
impl s3s::S3 for Edge {
    async fn list_buckets(
        &self,
        _req: S3Request<dto::ListBucketsInput>,
    ) -> S3Result<S3Response<dto::ListBucketsOutput>> {
        let buckets = e(self.s3.list_buckets().await)?
            .into_iter()
            .map(|(name, created)| dto::Bucket {
                name: Some(name),
                creation_date: Some(timestamp(created)),
                bucket_region: Some(self.s3.config().region.clone()),
            })
            .collect();
        Ok(S3Response::new(dto::ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner(&self.s3)),
            ..Default::default()
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<dto::CreateBucketInput>,
    ) -> S3Result<S3Response<dto::CreateBucketOutput>> {
        let bucket = &req.input.bucket;
        e(self.s3.create_bucket(bucket).await)?;
        Ok(S3Response::new(dto::CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<dto::HeadBucketInput>,
    ) -> S3Result<S3Response<dto::HeadBucketOutput>> {
        e(self.s3.head_bucket(&req.input.bucket).await)?;
        Ok(S3Response::new(dto::HeadBucketOutput {
            bucket_region: Some(self.s3.config().region.clone()),
            ..Default::default()
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<dto::DeleteBucketInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketOutput>> {
        e(self.s3.delete_bucket(&req.input.bucket).await)?;
        Ok(S3Response::new(dto::DeleteBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<dto::GetBucketLocationInput>,
    ) -> S3Result<S3Response<dto::GetBucketLocationOutput>> {
        e(self.s3.head_bucket(&req.input.bucket).await)?;
        // us-east-1 is the empty constraint, as S3 answers it.
        let region = &self.s3.config().region;
        let location_constraint =
            (region != "us-east-1").then(|| dto::BucketLocationConstraint::from(region.clone()));
        Ok(S3Response::new(dto::GetBucketLocationOutput {
            location_constraint,
        }))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<dto::GetBucketVersioningInput>,
    ) -> S3Result<S3Response<dto::GetBucketVersioningOutput>> {
        // Buckets are unversioned (one current version per key): no status, as S3
        // answers for a bucket that never had versioning.
        e(self.s3.head_bucket(&req.input.bucket).await)?;
        Ok(S3Response::new(dto::GetBucketVersioningOutput::default()))
    }

    async fn put_object(
        &self,
        req: S3Request<dto::PutObjectInput>,
    ) -> S3Result<S3Response<dto::PutObjectOutput>> {
        let trailers = Trailers(req.trailing_headers.clone());
        let raw = req.headers;
        let i = req.input;
        let size = body_size(i.content_length)?;
        let checksum = requested_checksum(
            i.checksum_algorithm.as_ref(),
            [
                i.checksum_crc32.as_ref(),
                i.checksum_crc32c.as_ref(),
                i.checksum_crc64nvme.as_ref(),
                i.checksum_sha1.as_ref(),
                i.checksum_sha256.as_ref(),
            ],
        )?;
        let condition = match (&i.if_none_match, &i.if_match) {
            (Some(dto::ETagCondition::Any), _) => PutCondition::IfAbsent,
            (Some(_), _) => {
                return Err(s3s_error(EngineError::NotImplemented(
                    "If-None-Match on PUT takes only *".into(),
                )));
            }
            (None, Some(m)) => PutCondition::IfEtag(etag_text(m)),
            (None, None) => PutCondition::Always,
        };
        let headers = content_headers(
            HeaderInputs {
                content_type: i.content_type,
                content_encoding: i.content_encoding,
                content_disposition: i.content_disposition,
                content_language: i.content_language,
                cache_control: i.cache_control,
                expires: i.expires,
            },
            &raw,
        );
        let put = es3::PutObject {
            bucket: i.bucket,
            key: i.key,
            headers,
            user_meta: user_meta(i.metadata),
            condition,
            body: es3::PutBody {
                source: BlobSource(i.body),
                size,
                content_md5: i.content_md5,
                checksum,
            },
        };
        let out = e(self.s3.put_object(put, &trailers).await)?;
        let c = checksum_fields(out.checksum.as_ref());
        Ok(S3Response::new(dto::PutObjectOutput {
            e_tag: Some(etag(&out.etag)),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_crc64nvme: c.crc64nvme,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            checksum_type: c.kind,
            size: Some(size as i64),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<dto::GetObjectInput>,
    ) -> S3Result<S3Response<dto::GetObjectOutput>> {
        let i = req.input;
        if i.part_number.is_some() {
            return Err(s3s_error(EngineError::NotImplemented(
                "GET by part number".into(),
            )));
        }
        let cond = conditions(
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
            i.if_unmodified_since.as_ref(),
        );
        let out = e(self
            .s3
            .get_object(&i.bucket, &i.key, range(i.range), &cond)
            .await)?;
        let info = &out.info;
        let (content_length, content_range) = match out.range {
            Some((lo, hi)) => (
                hi - lo,
                Some(format!("bytes {lo}-{}/{}", hi - 1, info.size)),
            ),
            None => (info.size, None),
        };
        let c = checksum_fields(info.checksum.as_ref());
        let whole = out.range.is_none();
        let h = &info.headers;
        let output = dto::GetObjectOutput {
            accept_ranges: Some("bytes".into()),
            content_length: Some(content_length as i64),
            content_range,
            e_tag: Some(etag(&info.etag)),
            last_modified: Some(timestamp(info.last_modified_ms)),
            metadata: metadata_dto(&info.user_meta),
            content_type: i.response_content_type.or_else(|| h.content_type.clone()),
            content_encoding: i
                .response_content_encoding
                .or_else(|| h.content_encoding.clone()),
            content_disposition: i
                .response_content_disposition
                .or_else(|| h.content_disposition.clone()),
            content_language: i
                .response_content_language
                .or_else(|| h.content_language.clone()),
            cache_control: i.response_cache_control.or_else(|| h.cache_control.clone()),
            expires: i.response_expires.or_else(|| expires_dto(h)),
            // A checksum describes the whole object: not sent with a range.
            checksum_crc32: c.crc32.filter(|_| whole),
            checksum_crc32c: c.crc32c.filter(|_| whole),
            checksum_crc64nvme: c.crc64nvme.filter(|_| whole),
            checksum_sha1: c.sha1.filter(|_| whole),
            checksum_sha256: c.sha256.filter(|_| whole),
            checksum_type: c.kind.filter(|_| whole),
            body: Some(stream_of(out.body)),
            ..Default::default()
        };
        let status = if out.range.is_some() {
            http::StatusCode::PARTIAL_CONTENT
        } else {
            http::StatusCode::OK
        };
        Ok(S3Response::with_status(output, status))
    }

    async fn head_object(
        &self,
        req: S3Request<dto::HeadObjectInput>,
    ) -> S3Result<S3Response<dto::HeadObjectOutput>> {
        let i = req.input;
        let cond = conditions(
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
            i.if_unmodified_since.as_ref(),
        );
        let info = e(self.s3.head_object(&i.bucket, &i.key, &cond).await)?;
        let c = checksum_fields(info.checksum.as_ref());
        let h = &info.headers;
        Ok(S3Response::new(dto::HeadObjectOutput {
            accept_ranges: Some("bytes".into()),
            content_length: Some(info.size as i64),
            e_tag: Some(etag(&info.etag)),
            last_modified: Some(timestamp(info.last_modified_ms)),
            metadata: metadata_dto(&info.user_meta),
            content_type: h.content_type.clone(),
            content_encoding: h.content_encoding.clone(),
            content_disposition: h.content_disposition.clone(),
            content_language: h.content_language.clone(),
            cache_control: h.cache_control.clone(),
            expires: expires_dto(h),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_crc64nvme: c.crc64nvme,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            checksum_type: c.kind,
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<dto::DeleteObjectInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectOutput>> {
        e(self
            .s3
            .delete_object(&req.input.bucket, &req.input.key)
            .await)?;
        Ok(S3Response::with_status(
            dto::DeleteObjectOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn delete_objects(
        &self,
        req: S3Request<dto::DeleteObjectsInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectsOutput>> {
        let i = req.input;
        let quiet = i.delete.quiet.unwrap_or(false);
        let keys: Vec<String> = i.delete.objects.into_iter().map(|o| o.key).collect();
        let deleted = e(self.s3.delete_objects(&i.bucket, keys).await)?;
        let deleted = (!quiet).then(|| {
            deleted
                .keys
                .into_iter()
                .map(|k| dto::DeletedObject {
                    key: Some(k),
                    ..Default::default()
                })
                .collect()
        });
        Ok(S3Response::new(dto::DeleteObjectsOutput {
            deleted,
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<dto::ListObjectsInput>,
    ) -> S3Result<S3Response<dto::ListObjectsOutput>> {
        let i = req.input;
        let params = es3::ListParams {
            prefix: i.prefix.clone().unwrap_or_default(),
            delimiter: i.delimiter.clone(),
            after: i.marker.clone().filter(|m| !m.is_empty()),
            max_keys: max_keys(i.max_keys)?,
        };
        let (page, infos) = e(self.s3.list_objects(&i.bucket, &params).await)?;
        let names = Names::of(i.encoding_type.as_ref());
        let next_marker = (page.truncated && i.delimiter.is_some())
            .then(|| page.last.clone())
            .flatten();
        Ok(S3Response::new(dto::ListObjectsOutput {
            name: Some(i.bucket),
            prefix: Some(names.name(&params.prefix)),
            marker: names.opt(i.marker),
            max_keys: Some(params.max_keys as i32),
            is_truncated: Some(page.truncated),
            contents: Some(infos.iter().map(|o| object_dto(o, &names)).collect()),
            common_prefixes: prefixes_dto(page.common_prefixes, &names),
            delimiter: names.opt(i.delimiter),
            next_marker: names.opt(next_marker),
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<dto::ListObjectsV2Input>,
    ) -> S3Result<S3Response<dto::ListObjectsV2Output>> {
        let i = req.input;
        let after = match &i.continuation_token {
            Some(t) => Some(key_of(t)?),
            None => i.start_after.clone().filter(|s| !s.is_empty()),
        };
        let params = es3::ListParams {
            prefix: i.prefix.clone().unwrap_or_default(),
            delimiter: i.delimiter.clone(),
            after,
            max_keys: max_keys(i.max_keys)?,
        };
        let (page, infos) = e(self.s3.list_objects(&i.bucket, &params).await)?;
        let names = Names::of(i.encoding_type.as_ref());
        let fetch_owner = i.fetch_owner.unwrap_or(false);
        let contents: Vec<dto::Object> = infos
            .iter()
            .map(|info| dto::Object {
                owner: fetch_owner.then(|| owner(&self.s3)),
                ..object_dto(info, &names)
            })
            .collect();
        let key_count = (contents.len() + page.common_prefixes.len()) as i32;
        let next_continuation_token = page
            .truncated
            .then(|| page.last.as_deref().map(token_of))
            .flatten();
        Ok(S3Response::new(dto::ListObjectsV2Output {
            name: Some(i.bucket),
            prefix: Some(names.name(&params.prefix)),
            max_keys: Some(params.max_keys as i32),
            key_count: Some(key_count),
            continuation_token: i.continuation_token,
            is_truncated: Some(page.truncated),
            next_continuation_token,
            contents: Some(contents),
            common_prefixes: prefixes_dto(page.common_prefixes, &names),
            delimiter: names.opt(i.delimiter),
            encoding_type: i.encoding_type,
            start_after: names.opt(i.start_after),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<dto::CopyObjectInput>,
    ) -> S3Result<S3Response<dto::CopyObjectOutput>> {
        let raw = req.headers;
        let i = req.input;
        let source = copy_source(
            &i.copy_source,
            conditions(
                i.copy_source_if_match.as_ref(),
                i.copy_source_if_none_match.as_ref(),
                i.copy_source_if_modified_since.as_ref(),
                i.copy_source_if_unmodified_since.as_ref(),
            ),
            None,
        )?;
        let replace = i.metadata_directive.as_ref().is_some_and(|d| {
            d.as_str()
                .eq_ignore_ascii_case(dto::MetadataDirective::REPLACE)
        });
        let directive = if replace {
            es3::MetadataDirective::Replace {
                headers: content_headers(
                    HeaderInputs {
                        content_type: i.content_type,
                        content_encoding: i.content_encoding,
                        content_disposition: i.content_disposition,
                        content_language: i.content_language,
                        cache_control: i.cache_control,
                        expires: i.expires,
                    },
                    &raw,
                ),
                user_meta: user_meta(i.metadata),
            }
        } else {
            es3::MetadataDirective::Copy
        };
        let out = e(self
            .s3
            .copy_object(&source, &i.bucket, &i.key, directive, PutCondition::Always)
            .await)?;
        let c = checksum_fields(out.checksum.as_ref());
        Ok(S3Response::new(dto::CopyObjectOutput {
            copy_object_result: Some(dto::CopyObjectResult {
                e_tag: Some(etag(&out.etag)),
                last_modified: Some(timestamp(crate::wall_ms())),
                checksum_crc32: c.crc32,
                checksum_crc32c: c.crc32c,
                checksum_crc64nvme: c.crc64nvme,
                checksum_sha1: c.sha1,
                checksum_sha256: c.sha256,
                checksum_type: c.kind,
            }),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<dto::CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CreateMultipartUploadOutput>> {
        let raw = req.headers;
        let i = req.input;
        let alg = i.checksum_algorithm.as_ref().map(algorithm).transpose()?;
        let headers = content_headers(
            HeaderInputs {
                content_type: i.content_type,
                content_encoding: i.content_encoding,
                content_disposition: i.content_disposition,
                content_language: i.content_language,
                cache_control: i.cache_control,
                expires: i.expires,
            },
            &raw,
        );
        let id = e(self
            .s3
            .create_upload(&i.bucket, &i.key, headers, user_meta(i.metadata), alg)
            .await)?;
        Ok(S3Response::new(dto::CreateMultipartUploadOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(id),
            checksum_algorithm: i.checksum_algorithm,
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<dto::UploadPartInput>,
    ) -> S3Result<S3Response<dto::UploadPartOutput>> {
        let trailers = Trailers(req.trailing_headers.clone());
        let i = req.input;
        let size = body_size(i.content_length)?;
        let checksum = requested_checksum(
            i.checksum_algorithm.as_ref(),
            [
                i.checksum_crc32.as_ref(),
                i.checksum_crc32c.as_ref(),
                i.checksum_crc64nvme.as_ref(),
                i.checksum_sha1.as_ref(),
                i.checksum_sha256.as_ref(),
            ],
        )?;
        let part = u32::try_from(i.part_number)
            .map_err(|_| s3s_error(EngineError::InvalidArgument("bad part number".into())))?;
        let body = es3::PutBody {
            source: BlobSource(i.body),
            size,
            content_md5: i.content_md5,
            checksum,
        };
        let out = e(self
            .s3
            .upload_part(&i.bucket, &i.key, &i.upload_id, part, body, &trailers)
            .await)?;
        let c = checksum_fields(out.checksum.as_ref());
        Ok(S3Response::new(dto::UploadPartOutput {
            e_tag: Some(etag(&out.etag)),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_crc64nvme: c.crc64nvme,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<dto::UploadPartCopyInput>,
    ) -> S3Result<S3Response<dto::UploadPartCopyOutput>> {
        let i = req.input;
        let source = copy_source(
            &i.copy_source,
            conditions(
                i.copy_source_if_match.as_ref(),
                i.copy_source_if_none_match.as_ref(),
                i.copy_source_if_modified_since.as_ref(),
                i.copy_source_if_unmodified_since.as_ref(),
            ),
            copy_range(i.copy_source_range.as_ref())?,
        )?;
        let part = u32::try_from(i.part_number)
            .map_err(|_| s3s_error(EngineError::InvalidArgument("bad part number".into())))?;
        let out = e(self
            .s3
            .upload_part_copy(&source, &i.bucket, &i.key, &i.upload_id, part)
            .await)?;
        let c = checksum_fields(out.checksum.as_ref());
        Ok(S3Response::new(dto::UploadPartCopyOutput {
            copy_part_result: Some(dto::CopyPartResult {
                e_tag: Some(etag(&out.etag)),
                last_modified: Some(timestamp(crate::wall_ms())),
                checksum_crc32: c.crc32,
                checksum_crc32c: c.crc32c,
                checksum_crc64nvme: c.crc64nvme,
                checksum_sha1: c.sha1,
                checksum_sha256: c.sha256,
            }),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<dto::CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CompleteMultipartUploadOutput>> {
        let i = req.input;
        let parts = i
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let n = p.part_number.and_then(|n| u32::try_from(n).ok());
                match (n, p.e_tag) {
                    (Some(n), Some(t)) => Ok((n, t.value().to_string())),
                    _ => Err(s3s_error(EngineError::InvalidArgument(
                        "every part needs a PartNumber and an ETag".into(),
                    ))),
                }
            })
            .collect::<S3Result<Vec<_>>>()?;
        let out = e(self
            .s3
            .complete_upload(&i.bucket, &i.key, &i.upload_id, parts)
            .await)?;
        let c = checksum_fields(out.checksum.as_ref());
        Ok(S3Response::new(dto::CompleteMultipartUploadOutput {
            bucket: Some(i.bucket.clone()),
            key: Some(i.key.clone()),
            location: Some(format!("/{}/{}", i.bucket, i.key)),
            e_tag: Some(etag(&out.etag)),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_crc64nvme: c.crc64nvme,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            checksum_type: c.kind,
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<dto::AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::AbortMultipartUploadOutput>> {
        let i = req.input;
        e(self.s3.abort_upload(&i.bucket, &i.key, &i.upload_id).await)?;
        Ok(S3Response::with_status(
            dto::AbortMultipartUploadOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn list_parts(
        &self,
        req: S3Request<dto::ListPartsInput>,
    ) -> S3Result<S3Response<dto::ListPartsOutput>> {
        let i = req.input;
        let after = match i.part_number_marker {
            Some(m) => u32::try_from(m).map_err(|_| {
                s3s_error(EngineError::InvalidArgument(
                    "bad part-number-marker".into(),
                ))
            })?,
            None => 0,
        };
        let max = i.max_parts.map_or(1000, |m| m.max(0) as usize);
        let page = e(self
            .s3
            .list_parts(&i.bucket, &i.key, &i.upload_id, after, max)
            .await)?;
        let parts = page
            .parts
            .into_iter()
            .map(|p| {
                let c = checksum_fields(p.checksum.as_ref());
                dto::Part {
                    part_number: Some(p.number as i32),
                    size: Some(p.size as i64),
                    e_tag: Some(etag(&p.etag)),
                    last_modified: Some(timestamp(p.last_modified_ms)),
                    checksum_crc32: c.crc32,
                    checksum_crc32c: c.crc32c,
                    checksum_crc64nvme: c.crc64nvme,
                    checksum_sha1: c.sha1,
                    checksum_sha256: c.sha256,
                }
            })
            .collect();
        Ok(S3Response::new(dto::ListPartsOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(i.upload_id),
            part_number_marker: i.part_number_marker,
            next_part_number_marker: Some(page.next_marker as i32),
            max_parts: Some(max.clamp(1, 1000) as i32),
            is_truncated: Some(page.truncated),
            parts: Some(parts),
            owner: Some(owner(&self.s3)),
            checksum_algorithm: page.checksum_algorithm.map(algorithm_dto),
            storage_class: Some(dto::StorageClass::from_static(dto::StorageClass::STANDARD)),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<dto::ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<dto::ListMultipartUploadsOutput>> {
        let i = req.input;
        let prefix = i.prefix.clone().unwrap_or_default();
        let after = i
            .key_marker
            .clone()
            .filter(|k| !k.is_empty())
            .map(|k| (k, i.upload_id_marker.clone().filter(|u| !u.is_empty())));
        let max = i.max_uploads.map_or(1000, |m| m.max(0) as usize);
        let (uploads, truncated) = e(self.s3.list_uploads(&i.bucket, &prefix, after, max).await)?;
        let next_key_marker = uploads.last().map(|u| u.key.clone());
        let next_upload_id_marker = uploads.last().map(|u| u.upload_id.clone());
        let uploads = uploads
            .into_iter()
            .map(|u| dto::MultipartUpload {
                key: Some(u.key),
                upload_id: Some(u.upload_id),
                initiated: Some(timestamp(u.initiated_ms)),
                owner: Some(owner(&self.s3)),
                initiator: Some(dto::Initiator {
                    display_name: Some(self.s3.config().owner.clone()),
                    id: Some(self.s3.config().owner.clone()),
                }),
                storage_class: Some(dto::StorageClass::from_static(dto::StorageClass::STANDARD)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(dto::ListMultipartUploadsOutput {
            bucket: Some(i.bucket),
            prefix: Some(prefix),
            key_marker: i.key_marker,
            upload_id_marker: i.upload_id_marker,
            next_key_marker: if truncated { next_key_marker } else { None },
            next_upload_id_marker: if truncated {
                next_upload_id_marker
            } else {
                None
            },
            max_uploads: Some(max.clamp(1, 1000) as i32),
            is_truncated: Some(truncated),
            uploads: Some(uploads),
            delimiter: i.delimiter,
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }
}
