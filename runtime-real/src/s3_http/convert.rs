//! Translation between s3s's DTOs and the engine's S3 types: errors, timestamps,
//! ETags, conditions, checksums, headers, bodies, listing entries.

use std::collections::BTreeMap;

use bytes::Bytes;
use engine::data_path::{ByteSource, SourceError};
use engine::meta::{Checksum, ChecksumAlgorithm, ContentHeaders};
use engine::s3::{self as es3, Conditions, ObjectInfo, S3Error as EngineError};
use futures::StreamExt;
use s3s::dto;

use crate::RealEnv;

/// An engine error as s3s sends it: the same code, status and message.
pub fn s3s_error(e: EngineError) -> s3s::S3Error {
    let code = s3s::S3ErrorCode::from_bytes(e.code().as_bytes())
        .unwrap_or_else(|| s3s::S3ErrorCode::Custom(e.code().into()));
    let mut err = s3s::S3Error::with_message(code, e.message());
    if let Ok(status) = http::StatusCode::from_u16(e.status()) {
        err.set_status_code(status);
    }
    let mut headers = http::HeaderMap::new();
    match &e {
        EngineError::InvalidRange { size } => {
            if let Ok(v) = http::HeaderValue::from_str(&format!("bytes */{size}")) {
                headers.insert(http::header::CONTENT_RANGE, v);
            }
        }
        EngineError::DeleteMarker { version_id, .. } => {
            headers.insert(
                "x-amz-delete-marker",
                http::HeaderValue::from_static("true"),
            );
            if let Ok(v) = http::HeaderValue::from_str(version_id) {
                headers.insert("x-amz-version-id", v);
            }
        }
        _ => {}
    }
    if !headers.is_empty() {
        err.set_headers(headers);
    }
    err
}

pub(super) fn ms_of(ts: &dto::Timestamp) -> u64 {
    let t = time::OffsetDateTime::from(ts.clone());
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

pub(super) fn timestamp(ms: u64) -> dto::Timestamp {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .into()
}

pub(super) fn etag(value: &str) -> dto::ETag {
    dto::ETag::Strong(value.to_string())
}

pub(super) fn etag_text(c: &dto::ETagCondition) -> String {
    match c {
        dto::ETagCondition::Any => "*".into(),
        dto::ETagCondition::ETag(e) => e.value().to_string(),
    }
}

pub(super) fn algorithm_dto(a: ChecksumAlgorithm) -> dto::ChecksumAlgorithm {
    dto::ChecksumAlgorithm::from_static(match a {
        ChecksumAlgorithm::Crc32 => dto::ChecksumAlgorithm::CRC32,
        ChecksumAlgorithm::Crc32c => dto::ChecksumAlgorithm::CRC32C,
        ChecksumAlgorithm::Crc64Nvme => dto::ChecksumAlgorithm::CRC64NVME,
        ChecksumAlgorithm::Sha1 => dto::ChecksumAlgorithm::SHA1,
        ChecksumAlgorithm::Sha256 => dto::ChecksumAlgorithm::SHA256,
    })
}

/// Checksum fields of an output, filled from the engine's checksum.
#[derive(Default)]
pub(super) struct ChecksumFields {
    pub(super) crc32: Option<String>,
    pub(super) crc32c: Option<String>,
    pub(super) crc64nvme: Option<String>,
    pub(super) sha1: Option<String>,
    pub(super) sha256: Option<String>,
    pub(super) kind: Option<dto::ChecksumType>,
}

pub(super) fn checksum_fields(c: Option<&Checksum>) -> ChecksumFields {
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

pub(super) fn user_meta(m: Option<dto::Metadata>) -> BTreeMap<String, String> {
    m.map(|m| {
        m.into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect()
    })
    .unwrap_or_default()
}

pub(super) fn metadata_dto(m: &BTreeMap<String, String>) -> Option<dto::Metadata> {
    if m.is_empty() {
        return None;
    }
    Some(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

pub(super) struct HeaderInputs {
    pub(super) content_type: Option<String>,
    pub(super) content_encoding: Option<String>,
    pub(super) content_disposition: Option<String>,
    pub(super) content_language: Option<String>,
    pub(super) cache_control: Option<String>,
    pub(super) expires: Option<dto::Timestamp>,
}

pub(super) fn content_headers(h: HeaderInputs, raw: &http::HeaderMap) -> ContentHeaders {
    // Expires is kept as the client wrote it (S3 returns it verbatim).
    let expires = raw
        .get(http::header::EXPIRES)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .or_else(|| h.expires.as_ref().map(http_date));
    ContentHeaders {
        content_type: h.content_type,
        content_encoding: h.content_encoding,
        content_disposition: h.content_disposition,
        content_language: h.content_language,
        cache_control: h.cache_control,
        expires,
    }
}

pub(super) fn expires_dto(h: &ContentHeaders) -> Option<dto::Timestamp> {
    h.expires
        .as_deref()
        .and_then(|e| dto::Timestamp::parse(dto::TimestampFormat::HttpDate, e).ok())
}

/// A request body as a byte source. Errors that s3s's body decoders raise (a payload
/// hash or chunk signature that does not match, malformed framing) are told apart.
pub(super) struct BlobSource(pub(super) Option<dto::StreamingBlob>);

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
                } else if let Some(limit) = over_limit(&*e) {
                    SourceError::OverLimit(limit)
                } else {
                    SourceError::Failed(text)
                })
            }
        }
    }
}

/// Trailing headers of an aws-chunked body, read after the body ended.
pub(super) struct Trailers(pub(super) Option<s3s::TrailingHeaders>);

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

pub(super) fn conditions(
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

pub(super) fn range(r: Option<dto::Range>) -> Option<es3::RangeSpec> {
    r.map(|r| match r {
        dto::Range::Int { first, last } => es3::RangeSpec::From { first, last },
        dto::Range::Suffix { length } => es3::RangeSpec::Suffix(length),
    })
}

/// `encoding-type=url`: listed names percent-encoded (all but unreserved characters
/// and `/`), so that any key survives XML.
pub(super) fn url_encode(s: &str) -> String {
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
pub(super) struct Names(pub(super) bool);

impl Names {
    pub(super) fn of(encoding: Option<&dto::EncodingType>) -> Self {
        Self(encoding.is_some_and(|e| e.as_str().eq_ignore_ascii_case("url")))
    }
    pub(super) fn name(&self, s: &str) -> String {
        if self.0 { url_encode(s) } else { s.to_string() }
    }
    pub(super) fn opt(&self, s: Option<String>) -> Option<String> {
        s.map(|s| self.name(&s))
    }
}

pub(super) fn object_dto(info: &ObjectInfo, names: &Names) -> dto::Object {
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

pub(super) fn prefixes_dto(prefixes: Vec<String>, names: &Names) -> Option<Vec<dto::CommonPrefix>> {
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

pub(super) fn owner(s3: &es3::S3<RealEnv>) -> dto::Owner {
    dto::Owner {
        display_name: Some(s3.config().owner.clone()),
        id: Some(s3.config().owner.clone()),
    }
}

pub(super) fn stream_of(body: es3::ObjectBody) -> dto::StreamingBlob {
    let stream = futures::stream::unfold(body, |mut body| async move {
        let piece = body.next().await?;
        Some((
            piece.map_err(|e| std::io::Error::other(e.to_string())),
            body,
        ))
    });
    dto::StreamingBlob::wrap(stream)
}

/// The checksum headers of a body as the engine takes them (it decides which counts).
pub(super) fn checksum_args(
    algorithm: Option<&dto::ChecksumAlgorithm>,
    values: [Option<&String>; 5],
) -> es3::api::ChecksumArgs {
    let algs = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ];
    es3::api::ChecksumArgs {
        algorithm: algorithm.map(|a| a.as_str().to_string()),
        given: algs
            .into_iter()
            .zip(values)
            .filter_map(|(a, v)| v.map(|v| (a, v.clone())))
            .collect(),
    }
}

/// A copy source as the engine takes it; access points and outposts are not served.
pub(super) fn source_args(
    src: &dto::CopySource,
    conditions: Conditions,
) -> Result<es3::api::SourceArgs, s3s::S3Error> {
    match src {
        dto::CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => Ok(es3::api::SourceArgs {
            bucket: bucket.to_string(),
            key: key.to_string(),
            conditions,
            version_id: version_id.as_deref().map(str::to_string),
            sse: Default::default(),
        }),
        _ => Err(s3s_error(EngineError::NotImplemented(
            "copy sources other than bucket/key".into(),
        ))),
    }
}

/// A timestamp as an HTTP date.
pub(super) fn http_date(t: &dto::Timestamp) -> String {
    let mut out = Vec::new();
    let _ = t.format(dto::TimestampFormat::HttpDate, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The marker of a limit this listener enforces, inside an error's text (it reaches
/// the S3 handler through s3s's own stream errors, as text).
pub(crate) const LIMIT_MARKER: &str = "hamster-limit: ";

/// The limit an error from a request body reports, if it is one of ours.
pub(crate) fn over_limit(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let text = e.to_string();
    let at = text.find(LIMIT_MARKER)?;
    Some(text[at + LIMIT_MARKER.len()..].to_string())
}
