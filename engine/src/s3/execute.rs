//! [`S3::execute`]: one typed request in, one response out. S3's request rules are
//! decided here, before the operation runs: how conditional PUT headers map to the
//! commit's condition, which checksum a body asks for, Content-Length, max-keys, part
//! numbers, continuation tokens, copy ranges, response header overrides, which parts of
//! a GET's answer a range leaves out.

use crate::data_path::ByteSource;
use crate::env::{Clock, Env};
use crate::meta::access::VersionSettings;
use crate::meta::versions::VersionRef;
use crate::meta::{ChecksumAlgorithm, ContentHeaders, PutCondition};
use crate::s3::access::{Authorized, Caller, Origin};
use crate::s3::api::{
    BodyArgs, BucketEntry, ChecksumArgs, Listing, Reply, Request, Response, SourceArgs,
};
use crate::s3::encryption;
use crate::s3::list::{self, ListPage, ListParams};
use crate::s3::tags;
use crate::s3::types::{
    CopySource, MetadataDirective, ObjectInfo, PutBody, PutObject, RangeSpec, Trailer,
};
use crate::s3::versions::{self, parse_opt};
use crate::s3::{S3, S3Error};

/// `x-amz-checksum-algorithm` by name.
pub fn algorithm(name: &str) -> Result<ChecksumAlgorithm, S3Error> {
    Ok(match name.to_ascii_uppercase().as_str() {
        "CRC32" => ChecksumAlgorithm::Crc32,
        "CRC32C" => ChecksumAlgorithm::Crc32c,
        "CRC64NVME" => ChecksumAlgorithm::Crc64Nvme,
        "SHA1" => ChecksumAlgorithm::Sha1,
        "SHA256" => ChecksumAlgorithm::Sha256,
        other => {
            return Err(S3Error::InvalidArgument(format!(
                "unknown checksum algorithm {other}"
            )));
        }
    })
}

/// The checksum a body asks for: an explicit value wins (its algorithm with it), else
/// the announced algorithm (value in a trailer, or none to check).
fn requested_checksum(
    c: &ChecksumArgs,
) -> Result<Option<(ChecksumAlgorithm, Option<String>)>, S3Error> {
    match c.given.as_slice() {
        [] => Ok(c
            .algorithm
            .as_deref()
            .map(algorithm)
            .transpose()?
            .map(|a| (a, None))),
        [(a, v)] => Ok(Some((*a, Some(v.clone())))),
        _ => Err(S3Error::InvalidRequest(
            "Expecting a single x-amz-checksum- header. Multiple checksum types are not allowed."
                .into(),
        )),
    }
}

fn body_size(len: Option<i64>) -> Result<u64, S3Error> {
    match len {
        Some(n) if n >= 0 => Ok(n as u64),
        Some(_) => Err(S3Error::InvalidArgument("negative Content-Length".into())),
        None => Err(S3Error::MissingContentLength),
    }
}

fn put_body<S>(source: S, b: &BodyArgs) -> Result<PutBody<S>, S3Error> {
    Ok(PutBody {
        source,
        size: body_size(b.size)?,
        content_md5: b.content_md5.clone(),
        checksum: requested_checksum(&b.checksum)?,
    })
}

/// A conditional PUT's headers as the commit's condition: If-None-Match takes only `*`.
fn put_condition(
    if_match: &Option<String>,
    if_none_match: &Option<String>,
) -> Result<PutCondition, S3Error> {
    match (if_none_match.as_deref(), if_match) {
        (Some("*"), _) => Ok(PutCondition::IfAbsent),
        (Some(_), _) => Err(S3Error::NotImplemented(
            "If-None-Match on PUT takes only *".into(),
        )),
        (None, Some(m)) => Ok(PutCondition::IfEtag(m.clone())),
        (None, None) => Ok(PutCondition::Always),
    }
}

fn list_params(
    prefix: Option<String>,
    delimiter: Option<String>,
    after: Option<String>,
    m: Option<i32>,
) -> Result<ListParams, S3Error> {
    Ok(ListParams {
        prefix: prefix.unwrap_or_default(),
        delimiter,
        after,
        max_keys: max_keys(m)?,
        markers: false,
    })
}

fn max_keys(m: Option<i32>) -> Result<usize, S3Error> {
    match m {
        None => Ok(list::MAX_KEYS_LIMIT),
        Some(n) if n >= 0 => Ok((n as usize).min(list::MAX_KEYS_LIMIT)),
        Some(_) => Err(S3Error::InvalidArgument(
            "max-keys must not be negative".into(),
        )),
    }
}

/// ListObjectVersions' markers: the key to resume after, and the version of it. A
/// version-id marker needs a key marker.
fn version_markers(
    key_marker: Option<String>,
    version_id_marker: Option<String>,
) -> Result<(Option<String>, Option<VersionRef>), S3Error> {
    let key_marker = key_marker.filter(|k| !k.is_empty());
    let version = match version_id_marker.as_deref().filter(|v| !v.is_empty()) {
        None => None,
        Some(_) if key_marker.is_none() => {
            return Err(S3Error::InvalidArgument(
                "A version-id marker cannot be specified without a key marker.".into(),
            ));
        }
        Some(v) => Some(versions::parse(v)?),
    };
    Ok((key_marker, version))
}

fn range_and_part() -> S3Error {
    S3Error::InvalidRequest(
        "Cannot specify both Range header and partNumber query parameter".into(),
    )
}

fn part_number(n: i32) -> Result<u32, S3Error> {
    u32::try_from(n).map_err(|_| S3Error::InvalidArgument("bad part number".into()))
}

/// x-amz-copy-source-range: `bytes=first-last`, both given.
fn copy_range(r: Option<&str>) -> Result<Option<RangeSpec>, S3Error> {
    let Some(r) = r else { return Ok(None) };
    let bad =
        || S3Error::InvalidArgument("x-amz-copy-source-range must be bytes=first-last".into());
    let (first, last) = r
        .trim()
        .strip_prefix("bytes=")
        .and_then(|s| s.split_once('-'))
        .ok_or_else(bad)?;
    let first: u64 = first.trim().parse().map_err(|_| bad())?;
    let last: u64 = last.trim().parse().map_err(|_| bad())?;
    Ok(Some(RangeSpec::From {
        first,
        last: Some(last),
    }))
}

fn source(s: SourceArgs, range: Option<RangeSpec>) -> Result<CopySource, S3Error> {
    parse_opt(s.version_id.as_deref())?;
    Ok(CopySource {
        bucket: s.bucket,
        key: s.key,
        conditions: s.conditions,
        range,
        version_id: s.version_id,
        sse: s.sse,
    })
}

fn overridden(info: &mut ObjectInfo, o: ContentHeaders) {
    let h = &mut info.headers;
    let pairs = [
        (&mut h.content_type, o.content_type),
        (&mut h.content_encoding, o.content_encoding),
        (&mut h.content_disposition, o.content_disposition),
        (&mut h.content_language, o.content_language),
        (&mut h.cache_control, o.cache_control),
        (&mut h.expires, o.expires),
    ];
    for (stored, given) in pairs {
        if given.is_some() {
            *stored = given;
        }
    }
}

/// A listing page as answered (v1 sets `next_marker`, v2 the token).
fn listing(
    params: ListParams,
    page: ListPage,
    objects: Vec<ObjectInfo>,
    next_marker: Option<String>,
    next_continuation_token: Option<String>,
) -> Listing {
    Listing {
        prefix: params.prefix,
        max_keys: params.max_keys,
        objects,
        common_prefixes: page.common_prefixes,
        truncated: page.truncated,
        next_marker,
        next_continuation_token,
    }
}

impl<E: Env> S3<E> {
    /// Runs one request. `body` is the PUT's or part's bytes (required for those, and
    /// ignored otherwise); `trailer` gives a trailing checksum once the body ended.
    pub async fn execute<S: ByteSource, T: Trailer>(
        &self,
        caller: &Caller,
        origin: &Origin,
        request: Request,
        body: Option<S>,
        trailer: &T,
    ) -> Result<Reply, S3Error> {
        let clock = self.env.clock();
        let (operation, began) = (request.operation(), clock.now());
        let authorized = match !origin.secure && encryption::gives_customer_key(&request) {
            true => Err(encryption::insecure_customer_key()),
            false => self.authorize(caller, origin, &request).await,
        };
        let reply = match authorized {
            Ok(done) => {
                self.execute_request(caller, request, body, trailer, done)
                    .await
            }
            Err(e) => Err(e),
        };
        let took = clock.now().saturating_sub(began);
        self.data
            .store()
            .metrics()
            .engine_request_duration
            .get_or_create(&crate::metrics::OperationLabels { operation })
            .observe(took.as_secs_f64());
        reply
    }

    async fn execute_request<S: ByteSource, T: Trailer>(
        &self,
        caller: &Caller,
        request: Request,
        body: Option<S>,
        trailer: &T,
        authorized: Authorized,
    ) -> Result<Reply, S3Error> {
        let Authorized { view, denied } = authorized;
        let needs_body = || S3Error::InvalidRequest("this request needs a body".into());
        Ok(match request {
            Request::ListBuckets => Response::Buckets(
                self.list_buckets(caller)
                    .await?
                    .into_iter()
                    .map(|(name, created_ms)| BucketEntry { name, created_ms })
                    .collect(),
            )
            .into(),
            Request::CreateBucket {
                bucket,
                acl,
                ownership,
                object_lock,
            } => {
                self.create_bucket(caller, &bucket, acl.as_ref(), ownership, object_lock)
                    .await?;
                Response::Done.into()
            }
            Request::HeadBucket { bucket } => {
                self.head_bucket(&bucket).await?;
                Response::Done.into()
            }
            Request::DeleteBucket { bucket } => {
                self.delete_bucket(&bucket).await?;
                Response::Done.into()
            }
            Request::GetBucketLocation { bucket } => {
                self.head_bucket(&bucket).await?;
                let region = &self.config.region;
                Response::Location((region != "us-east-1").then(|| region.clone())).into()
            }
            Request::GetBucketVersioning { bucket } => {
                Response::Versioning(self.get_versioning(&bucket).await?).into()
            }
            Request::PutBucketVersioning { bucket, status } => {
                self.put_versioning(&bucket, &status).await?;
                Response::Done.into()
            }
            Request::PutObject(a) => {
                let source = body.ok_or_else(needs_body)?;
                let settings = VersionSettings {
                    tags: a.tagging.as_deref().map(tags::parse_header).transpose()?,
                    acl: self
                        .acl_for_write(caller, &a.bucket, a.acl.as_ref())
                        .await?,
                };
                let lock = self.lock_for_write(&a.bucket, &a.lock).await?;
                let put = PutObject {
                    lock,
                    condition: put_condition(&a.if_match, &a.if_none_match)?,
                    body: put_body(source, &a.body)?,
                    bucket: a.bucket,
                    key: a.key,
                    headers: a.headers,
                    user_meta: a.user_meta,
                    settings,
                    sse: a.sse,
                };
                Response::Put(self.put_object(put, trailer).await?).into()
            }
            Request::GetObject(a) => {
                let version = a.version_id.as_deref();
                let (range, view) = match a.part_number {
                    None => (a.range, view),
                    Some(_) if a.range.is_some() => return Err(range_and_part()),
                    Some(n) => {
                        let r = self.view_or_reader(view).await?;
                        let target = (a.bucket.as_str(), a.key.as_str());
                        (self.part_range(&r, target, version, n).await?, Some(r))
                    }
                };
                let out = self
                    .get_object(
                        &a.bucket,
                        &a.key,
                        range,
                        &a.conditions,
                        (version, &a.sse),
                        view,
                    )
                    .await?;
                let mut info = out.info;
                overridden(&mut info, a.overrides);
                if out.range.is_some() {
                    // A checksum describes the whole object: not sent with a range.
                    info.checksum = None;
                }
                Reply {
                    response: Response::Object {
                        info,
                        range: out.range,
                    },
                    body: Some(out.body),
                }
            }
            Request::HeadObject {
                bucket,
                key,
                conditions,
                version_id,
                part_number,
                sse,
            } => {
                let version = version_id.as_deref();
                let (span, view) = match part_number {
                    None => (None, view),
                    Some(n) => {
                        let r = self.view_or_reader(view).await?;
                        let target = (bucket.as_str(), key.as_str());
                        (self.part_range(&r, target, version, n).await?, Some(r))
                    }
                };
                let info = self
                    .head_object(&bucket, &key, &conditions, (version, &sse), view)
                    .await?;
                let range = span.map(|s| s.resolve(info.size)).transpose()?;
                Response::Head { info, range }.into()
            }
            Request::GetObjectAttributes {
                bucket,
                key,
                version_id,
                attributes,
                max_parts,
                part_number_marker,
                sse,
            } => {
                let target = (bucket.as_str(), key.as_str());
                let page = (max_parts, part_number_marker);
                let version = (version_id.as_deref(), &sse);
                Response::Attributes(
                    self.object_attributes(target, version, attributes, page)
                        .await?,
                )
                .into()
            }
            Request::DeleteObject {
                bucket,
                key,
                version_id,
                bypass_governance,
            } => {
                let removed = self
                    .delete_object(&bucket, &key, version_id.as_deref(), bypass_governance)
                    .await?;
                Response::Removed(removed).into()
            }
            Request::DeleteObjects {
                bucket,
                keys,
                quiet,
                version_ids,
                bypass_governance,
            } => {
                if !version_ids.is_empty() && version_ids.len() != keys.len() {
                    return Err(S3Error::Internal("a version id per key, or none".into()));
                }
                let mut ids = version_ids.into_iter();
                let keys = keys
                    .into_iter()
                    .map(|k| (k, ids.next().flatten()))
                    .collect();
                let mut denied = denied;
                let (deleted, locked): (Vec<_>, Vec<_>) = self
                    .delete_objects(&bucket, keys, &denied, bypass_governance)
                    .await?
                    .into_iter()
                    .partition(|r| !r.locked);
                denied.extend(locked.into_iter().map(|r| r.key));
                Response::Deleted {
                    deleted: if quiet { Vec::new() } else { deleted },
                    denied,
                }
                .into()
            }
            Request::ListObjects {
                bucket,
                prefix,
                delimiter,
                marker,
                max_keys: m,
            } => {
                let after = marker.filter(|m| !m.is_empty());
                let params = list_params(prefix, delimiter.clone(), after, m)?;
                let (page, objects) = self.list_objects(&bucket, &params).await?;
                let next_marker = (page.truncated && delimiter.is_some())
                    .then(|| page.last.clone())
                    .flatten();
                Response::Listing(listing(params, page, objects, next_marker, None)).into()
            }
            Request::ListObjectsV2 {
                bucket,
                prefix,
                delimiter,
                continuation_token,
                start_after,
                max_keys: m,
            } => {
                let after = match &continuation_token {
                    Some(t) => Some(list::key_of_token(t)?),
                    None => start_after.filter(|s| !s.is_empty()),
                };
                let params = list_params(prefix, delimiter, after, m)?;
                let (page, objects) = self.list_objects(&bucket, &params).await?;
                let token = page
                    .truncated
                    .then(|| page.last.as_deref().map(list::token_of))
                    .flatten();
                Response::Listing(listing(params, page, objects, None, token)).into()
            }
            Request::CopyObject(a) => {
                let copy_tags = match a.tagging_directive.as_deref() {
                    None => true,
                    Some(d) if d.eq_ignore_ascii_case("COPY") => true,
                    Some(d) if d.eq_ignore_ascii_case("REPLACE") => false,
                    Some(d) => {
                        return Err(S3Error::InvalidArgument(format!(
                            "Unknown tagging directive {d}"
                        )));
                    }
                };
                let settings = VersionSettings {
                    tags: match copy_tags {
                        true => None,
                        false => a.tagging.as_deref().map(tags::parse_header).transpose()?,
                    },
                    acl: self
                        .acl_for_write(caller, &a.bucket, a.acl.as_ref())
                        .await?,
                };
                let replace = a
                    .metadata_directive
                    .as_deref()
                    .is_some_and(|d| d.eq_ignore_ascii_case("REPLACE"));
                let directive = if replace {
                    MetadataDirective::Replace {
                        headers: a.headers,
                        user_meta: a.user_meta,
                    }
                } else {
                    MetadataDirective::Copy
                };
                let src = source(a.source, None)?;
                let lock = self.lock_for_write(&a.bucket, &a.lock).await?;
                let target = (a.bucket.as_str(), a.key.as_str());
                let out = self
                    .copy_object(
                        &src,
                        target,
                        directive,
                        (settings, lock),
                        (copy_tags, &a.sse),
                    )
                    .await?;
                Response::Put(out).into()
            }
            Request::CreateMultipartUpload(a) => {
                let alg = a.checksum_algorithm.as_deref().map(algorithm).transpose()?;
                let settings = VersionSettings {
                    tags: a.tagging.as_deref().map(tags::parse_header).transpose()?,
                    acl: self
                        .acl_for_write(caller, &a.bucket, a.acl.as_ref())
                        .await?,
                };
                let lock = self.lock_for_write(&a.bucket, &a.lock).await?;
                let (id, sse) = self
                    .create_upload(
                        &a.bucket,
                        &a.key,
                        a.headers,
                        a.user_meta,
                        alg,
                        (settings, lock),
                        &a.sse,
                    )
                    .await?;
                Response::Upload(id, sse).into()
            }
            Request::UploadPart(a) => {
                let source = body.ok_or_else(needs_body)?;
                let part = part_number(a.part_number)?;
                let body = put_body(source, &a.body)?;
                let out = self
                    .upload_part(
                        &a.bucket,
                        &a.key,
                        &a.upload_id,
                        part,
                        (body, &a.sse),
                        trailer,
                    )
                    .await?;
                Response::Put(out).into()
            }
            Request::UploadPartCopy(a) => {
                let range = copy_range(a.source_range.as_deref())?;
                let part = part_number(a.part_number)?;
                let src = source(a.source, range)?;
                let out = self
                    .upload_part_copy(&src, &a.bucket, &a.key, &a.upload_id, (part, &a.sse))
                    .await?;
                Response::Put(out).into()
            }
            Request::CompleteMultipartUpload {
                bucket,
                key,
                upload_id,
                parts,
            } => {
                let parts = parts
                    .into_iter()
                    .map(
                        |(n, etag)| match (n.and_then(|n| u32::try_from(n).ok()), etag) {
                            (Some(n), Some(e)) => Ok((n, e)),
                            _ => Err(S3Error::InvalidArgument(
                                "every part needs a PartNumber and an ETag".into(),
                            )),
                        },
                    )
                    .collect::<Result<Vec<_>, _>>()?;
                let out = self
                    .complete_upload(&bucket, &key, &upload_id, parts)
                    .await?;
                Response::Put(out).into()
            }
            Request::AbortMultipartUpload {
                bucket,
                key,
                upload_id,
            } => {
                self.abort_upload(&bucket, &key, &upload_id).await?;
                Response::Done.into()
            }
            Request::ListParts {
                bucket,
                key,
                upload_id,
                part_number_marker,
                max_parts,
            } => {
                let after = match part_number_marker {
                    Some(m) => u32::try_from(m)
                        .map_err(|_| S3Error::InvalidArgument("bad part-number-marker".into()))?,
                    None => 0,
                };
                let max = max_parts.map_or(1000, |m| m.max(0) as usize);
                let page = self
                    .list_parts(&bucket, &key, &upload_id, after, max)
                    .await?;
                Response::Parts(page).into()
            }
            Request::ListMultipartUploads {
                bucket,
                prefix,
                delimiter,
                key_marker,
                upload_id_marker,
                max_uploads,
            } => {
                let prefix = prefix.unwrap_or_default();
                let after = key_marker
                    .filter(|k| !k.is_empty())
                    .map(|k| (k, upload_id_marker.filter(|u| !u.is_empty())));
                let max = max_uploads
                    .map_or(1000, |m| m.max(0) as usize)
                    .clamp(1, 1000);
                let names = (prefix.as_str(), delimiter.as_deref());
                Response::Uploads(self.list_uploads(&bucket, names, after, max).await?).into()
            }
            Request::Layout {
                bucket,
                key,
                version_id,
            } => {
                let version = version_id.as_deref();
                let (blobs, encryption) = self.layouts(&bucket, &key, version).await?;
                Response::Layout { blobs, encryption }.into()
            }
            Request::ListObjectVersions {
                bucket,
                prefix,
                delimiter,
                key_marker,
                version_id_marker,
                max_keys: m,
            } => {
                let (after, version) = version_markers(key_marker, version_id_marker)?;
                let params = list_params(prefix, delimiter, after, m)?;
                Response::Versions(self.list_versions(&bucket, params, version).await?).into()
            }
            Request::Access { bucket, request } => {
                self.access_request(&bucket, request).await?.into()
            }
            Request::Tagging { bucket, request } => {
                self.tag_request(&bucket, request).await?.into()
            }
            Request::ObjectLock { bucket, request } => {
                self.object_lock(&bucket, request).await?.into()
            }
            Request::Preflight {
                bucket,
                origin,
                method,
                headers,
            } => Response::Cors(self.preflight(&bucket, &origin, &method, &headers).await?).into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::api::OPERATIONS;

    #[test]
    fn put_conditions_are_decided_here() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(put_condition(&None, &None).unwrap(), PutCondition::Always);
        assert_eq!(
            put_condition(&None, &s("*")).unwrap(),
            PutCondition::IfAbsent
        );
        assert_eq!(
            put_condition(&s("abc"), &None).unwrap(),
            PutCondition::IfEtag("abc".into())
        );
        assert_eq!(
            put_condition(&None, &s("abc")).unwrap_err().code(),
            "NotImplemented"
        );
    }

    #[test]
    fn copy_ranges_and_numbers_are_checked() {
        assert_eq!(
            copy_range(Some("bytes=5-9")).unwrap(),
            Some(RangeSpec::From {
                first: 5,
                last: Some(9)
            })
        );
        for bad in ["bytes=5-", "bytes=-5", "5-9", "bytes=a-b"] {
            assert_eq!(copy_range(Some(bad)).unwrap_err().code(), "InvalidArgument");
        }
        assert!(part_number(-1).is_err());
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            version_markers(s("k"), s("null")).unwrap(),
            (s("k"), Some(VersionRef::Null))
        );
        assert_eq!(version_markers(s(""), None).unwrap(), (None, None));
        for (key, version) in [(None, s("null")), (s(""), s("null")), (s("k"), s("v1"))] {
            let refused = version_markers(key, version).unwrap_err();
            assert_eq!(refused.code(), "InvalidArgument");
        }
        assert_eq!(max_keys(Some(5000)).unwrap(), list::MAX_KEYS_LIMIT);
        assert!(max_keys(Some(-1)).is_err());
        assert_eq!(body_size(None).unwrap_err().code(), "MissingContentLength");
    }

    #[test]
    fn one_checksum_header_at_most() {
        let two = ChecksumArgs {
            algorithm: None,
            given: vec![
                (ChecksumAlgorithm::Crc32, "a".into()),
                (ChecksumAlgorithm::Sha1, "b".into()),
            ],
        };
        assert_eq!(
            requested_checksum(&two).unwrap_err().code(),
            "InvalidRequest"
        );
        let announced = ChecksumArgs {
            algorithm: Some("crc32c".into()),
            given: vec![],
        };
        assert_eq!(
            requested_checksum(&announced).unwrap(),
            Some((ChecksumAlgorithm::Crc32c, None))
        );
    }

    #[test]
    fn every_operation_has_its_name_listed() {
        let samples = [
            Request::ListBuckets,
            Request::PutObject(Box::default()),
            Request::GetObject(Box::default()),
            Request::CopyObject(Box::default()),
            Request::CreateMultipartUpload(Box::default()),
            Request::UploadPart(Box::default()),
            Request::UploadPartCopy(Box::default()),
        ];
        for r in &samples {
            assert!(OPERATIONS.contains(&r.operation()), "{}", r.operation());
        }
        let mut sorted = OPERATIONS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), OPERATIONS.len());
    }
}
