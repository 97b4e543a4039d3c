//! `impl s3s::S3 for Edge`: one translation per operation, input to engine request,
//! engine response to output.

use engine::s3::api::{
    BodyArgs, CopyArgs, CreateUploadArgs, GetArgs, PartArgs, PartCopyArgs, PutArgs, Request,
    Response, SourceArgs,
};
use engine::s3::{self as es3};
use s3s::dto;
use s3s::{S3Request, S3Response, S3Result};

use super::access::{acl_input, ownership};
use super::attributes::{parts_count, span_of};
use super::convert::*;
use super::encryption::{sse_args, sse_headers};
use super::lock::{lock_args, lock_headers};
use super::{Edge, body_size, header_inputs, put_output, unexpected};

#[async_trait::async_trait]
impl s3s::S3 for Edge {
    async fn list_buckets(
        &self,
        req: S3Request<dto::ListBucketsInput>,
    ) -> S3Result<S3Response<dto::ListBucketsOutput>> {
        let who = asker!(req);
        let Response::Buckets(list) = self.respond(who, Request::ListBuckets).await? else {
            return Err(s3s_error(es3::S3Error::Internal("bad answer".into())));
        };
        let buckets = list
            .into_iter()
            .map(|b| dto::Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(b.created_ms)),
                bucket_region: Some(self.s3.config().region.clone()),
            })
            .collect();
        // The owner is the caller: the root, or the key (named as it was made).
        let owner = match self.caller(&req.credentials) {
            es3::access::Caller::Key(id) => dto::Owner {
                display_name: self.s3.key_name(&id).or_else(|| Some(id.clone())),
                id: Some(id),
            },
            _ => self.owner(),
        };
        Ok(S3Response::new(dto::ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner),
            ..Default::default()
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<dto::CreateBucketInput>,
    ) -> S3Result<S3Response<dto::CreateBucketOutput>> {
        let who = asker!(req);
        let i = req.input;
        let bucket = i.bucket;
        let headers = grant_headers!(i);
        let request = Request::CreateBucket {
            bucket: bucket.clone(),
            acl: acl_input(i.acl.as_ref().map(|a| a.as_str()), None, headers)?,
            ownership: i.object_ownership.as_ref().map(ownership).transpose()?,
            object_lock: i.object_lock_enabled_for_bucket.unwrap_or(false),
        };
        self.respond(who, request).await?;
        Ok(S3Response::new(dto::CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<dto::HeadBucketInput>,
    ) -> S3Result<S3Response<dto::HeadBucketOutput>> {
        let who = asker!(req);
        let bucket = req.input.bucket;
        self.respond(who, Request::HeadBucket { bucket }).await?;
        Ok(S3Response::new(dto::HeadBucketOutput {
            bucket_region: Some(self.s3.config().region.clone()),
            ..Default::default()
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<dto::DeleteBucketInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketOutput>> {
        let who = asker!(req);
        let bucket = req.input.bucket;
        self.respond(who, Request::DeleteBucket { bucket }).await?;
        Ok(S3Response::new(dto::DeleteBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<dto::GetBucketLocationInput>,
    ) -> S3Result<S3Response<dto::GetBucketLocationOutput>> {
        let who = asker!(req);
        let bucket = req.input.bucket;
        match self
            .respond(who, Request::GetBucketLocation { bucket })
            .await?
        {
            Response::Location(c) => Ok(S3Response::new(dto::GetBucketLocationOutput {
                location_constraint: c.map(dto::BucketLocationConstraint::from),
            })),
            other => Err(unexpected(other)),
        }
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<dto::GetBucketVersioningInput>,
    ) -> S3Result<S3Response<dto::GetBucketVersioningOutput>> {
        self.bucket_versioning(req).await
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<dto::PutBucketVersioningInput>,
    ) -> S3Result<S3Response<dto::PutBucketVersioningOutput>> {
        self.set_bucket_versioning(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<dto::PutObjectInput>,
    ) -> S3Result<S3Response<dto::PutObjectOutput>> {
        let who = asker!(req);
        let trailers = req.trailing_headers.clone();
        let raw = req.headers;
        let i = req.input;
        let args = PutArgs {
            headers: content_headers(
                header_inputs(
                    i.content_type,
                    i.content_encoding,
                    i.content_disposition,
                    i.content_language,
                    i.cache_control,
                    i.expires,
                ),
                &raw,
            ),
            user_meta: user_meta(i.metadata),
            if_match: i.if_match.as_ref().map(etag_text),
            if_none_match: i.if_none_match.as_ref().map(etag_text),
            lock: lock_args(
                i.object_lock_mode.as_ref(),
                i.object_lock_retain_until_date.as_ref(),
                i.object_lock_legal_hold_status.as_ref(),
            ),
            tagging: i.tagging,
            acl: acl_input(
                i.acl.as_ref().map(|a| a.as_str()),
                None,
                grant_headers!(i, no_write),
            )?,
            body: BodyArgs {
                size: body_size(i.content_length, &raw),
                content_md5: i.content_md5,
                checksum: checksum_args(
                    i.checksum_algorithm.as_ref(),
                    [
                        i.checksum_crc32.as_ref(),
                        i.checksum_crc32c.as_ref(),
                        i.checksum_crc64nvme.as_ref(),
                        i.checksum_sha1.as_ref(),
                        i.checksum_sha256.as_ref(),
                    ],
                ),
            },
            sse: sse_args(
                i.server_side_encryption.as_ref(),
                i.sse_customer_algorithm,
                i.sse_customer_key,
                i.sse_customer_key_md5,
            ),
            bucket: i.bucket,
            key: i.key,
        };
        let size = body_size(i.content_length, &raw);
        let request = Request::PutObject(Box::new(args));
        let out = put_output(self.run_with_body(who, request, i.body, trailers).await?)?;
        let c = checksum_fields(out.checksum.as_ref());
        let sse = sse_headers(out.sse.as_ref());
        Ok(S3Response::new(dto::PutObjectOutput {
            server_side_encryption: sse.server,
            sse_customer_algorithm: sse.algorithm,
            sse_customer_key_md5: sse.key_md5,
            e_tag: Some(etag(&out.etag)),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_crc64nvme: c.crc64nvme,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            checksum_type: c.kind,
            size,
            version_id: out.version_id,
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<dto::GetObjectInput>,
    ) -> S3Result<S3Response<dto::GetObjectOutput>> {
        let who = asker!(req);
        let i = req.input;
        let args = GetArgs {
            range: range(i.range),
            conditions: conditions(
                i.if_match.as_ref(),
                i.if_none_match.as_ref(),
                i.if_modified_since.as_ref(),
                i.if_unmodified_since.as_ref(),
            ),
            part_number: i.part_number,
            version_id: i.version_id,
            overrides: engine::meta::ContentHeaders {
                content_type: i.response_content_type,
                content_encoding: i.response_content_encoding,
                content_disposition: i.response_content_disposition,
                content_language: i.response_content_language,
                cache_control: i.response_cache_control,
                expires: i.response_expires.map(|t| http_date(&t)),
            },
            sse: sse_args(
                None,
                i.sse_customer_algorithm,
                i.sse_customer_key,
                i.sse_customer_key_md5,
            ),
            bucket: i.bucket,
            key: i.key,
        };
        let part_number = args.part_number;
        let reply = self.run(who, Request::GetObject(Box::new(args))).await?;
        let (Response::Object { info, range }, Some(body)) = (reply.response, reply.body) else {
            return Err(s3s_error(es3::S3Error::Internal(
                "a GET without a body".into(),
            )));
        };
        let (content_length, content_range) = span_of(range, info.size);
        let lock = lock_headers(info.lock.as_ref());
        let c = checksum_fields(info.checksum.as_ref());
        let sse = sse_headers(info.sse.as_ref());
        let h = &info.headers;
        let output = dto::GetObjectOutput {
            server_side_encryption: sse.server,
            sse_customer_algorithm: sse.algorithm,
            sse_customer_key_md5: sse.key_md5,
            accept_ranges: Some("bytes".into()),
            content_length: Some(content_length as i64),
            content_range,
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
            tag_count: (info.tag_count > 0).then_some(info.tag_count as i32),
            parts_count: parts_count(part_number, &info),
            version_id: info.version_id.clone(),
            body: Some(stream_of(body)),
            object_lock_mode: lock.0,
            object_lock_retain_until_date: lock.1,
            object_lock_legal_hold_status: lock.2,
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    async fn head_object(
        &self,
        req: S3Request<dto::HeadObjectInput>,
    ) -> S3Result<S3Response<dto::HeadObjectOutput>> {
        let who = asker!(req);
        let i = req.input;
        let request = Request::HeadObject {
            conditions: conditions(
                i.if_match.as_ref(),
                i.if_none_match.as_ref(),
                i.if_modified_since.as_ref(),
                i.if_unmodified_since.as_ref(),
            ),
            bucket: i.bucket,
            key: i.key,
            version_id: i.version_id,
            part_number: i.part_number,
            sse: sse_args(
                None,
                i.sse_customer_algorithm,
                i.sse_customer_key,
                i.sse_customer_key_md5,
            ),
        };
        let Response::Head { info, range } = self.respond(who, request).await? else {
            return Err(s3s_error(es3::S3Error::Internal("bad answer".into())));
        };
        let lock = lock_headers(info.lock.as_ref());
        let c = checksum_fields(info.checksum.as_ref());
        let sse = sse_headers(info.sse.as_ref());
        let h = &info.headers;
        let (content_length, content_range) = span_of(range, info.size);
        let output = dto::HeadObjectOutput {
            server_side_encryption: sse.server,
            sse_customer_algorithm: sse.algorithm,
            sse_customer_key_md5: sse.key_md5,
            accept_ranges: Some("bytes".into()),
            content_length: Some(content_length as i64),
            content_range,
            parts_count: parts_count(i.part_number, &info),
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
            object_lock_mode: lock.0,
            object_lock_retain_until_date: lock.1,
            object_lock_legal_hold_status: lock.2,
            version_id: info.version_id.clone(),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<dto::GetObjectAttributesInput>,
    ) -> S3Result<S3Response<dto::GetObjectAttributesOutput>> {
        self.attributes(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<dto::DeleteObjectInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectOutput>> {
        self.delete_one(req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<dto::DeleteObjectsInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectsOutput>> {
        self.delete_many(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<dto::ListObjectsInput>,
    ) -> S3Result<S3Response<dto::ListObjectsOutput>> {
        let who = asker!(req);
        let i = req.input;
        let request = Request::ListObjects {
            bucket: i.bucket.clone(),
            prefix: i.prefix.clone(),
            delimiter: i.delimiter.clone(),
            marker: i.marker.clone(),
            max_keys: i.max_keys,
        };
        let Response::Listing(page) = self.respond(who, request).await? else {
            return Err(s3s_error(es3::S3Error::Internal("bad answer".into())));
        };
        let names = Names::of(i.encoding_type.as_ref());
        Ok(S3Response::new(dto::ListObjectsOutput {
            name: Some(i.bucket),
            prefix: Some(names.name(&page.prefix)),
            marker: names.opt(i.marker),
            max_keys: Some(page.max_keys as i32),
            is_truncated: Some(page.truncated),
            contents: Some(page.objects.iter().map(|o| object_dto(o, &names)).collect()),
            common_prefixes: prefixes_dto(page.common_prefixes, &names),
            delimiter: names.opt(i.delimiter),
            next_marker: names.opt(page.next_marker),
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<dto::ListObjectVersionsInput>,
    ) -> S3Result<S3Response<dto::ListObjectVersionsOutput>> {
        let who = asker!(req);
        Ok(S3Response::new(self.list_versions(who, req.input).await?))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<dto::ListObjectsV2Input>,
    ) -> S3Result<S3Response<dto::ListObjectsV2Output>> {
        let who = asker!(req);
        let i = req.input;
        let request = Request::ListObjectsV2 {
            bucket: i.bucket.clone(),
            prefix: i.prefix.clone(),
            delimiter: i.delimiter.clone(),
            continuation_token: i.continuation_token.clone(),
            start_after: i.start_after.clone(),
            max_keys: i.max_keys,
        };
        let Response::Listing(page) = self.respond(who, request).await? else {
            return Err(s3s_error(es3::S3Error::Internal("bad answer".into())));
        };
        let names = Names::of(i.encoding_type.as_ref());
        let fetch_owner = i.fetch_owner.unwrap_or(false);
        let contents: Vec<dto::Object> = page
            .objects
            .iter()
            .map(|info| dto::Object {
                owner: fetch_owner.then(|| self.owner()),
                ..object_dto(info, &names)
            })
            .collect();
        let key_count = (contents.len() + page.common_prefixes.len()) as i32;
        Ok(S3Response::new(dto::ListObjectsV2Output {
            name: Some(i.bucket),
            prefix: Some(names.name(&page.prefix)),
            max_keys: Some(page.max_keys as i32),
            key_count: Some(key_count),
            continuation_token: i.continuation_token,
            is_truncated: Some(page.truncated),
            next_continuation_token: page.next_continuation_token,
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
        let who = asker!(req);
        let raw = req.headers;
        let i = req.input;
        let mut source = source_args(
            &i.copy_source,
            conditions(
                i.copy_source_if_match.as_ref(),
                i.copy_source_if_none_match.as_ref(),
                i.copy_source_if_modified_since.as_ref(),
                i.copy_source_if_unmodified_since.as_ref(),
            ),
        )?;
        source.sse = sse_args(
            None,
            i.copy_source_sse_customer_algorithm,
            i.copy_source_sse_customer_key,
            i.copy_source_sse_customer_key_md5,
        );
        let args = CopyArgs {
            source,
            metadata_directive: i.metadata_directive.map(|d| d.as_str().to_string()),
            headers: content_headers(
                header_inputs(
                    i.content_type,
                    i.content_encoding,
                    i.content_disposition,
                    i.content_language,
                    i.cache_control,
                    i.expires,
                ),
                &raw,
            ),
            user_meta: user_meta(i.metadata),
            acl: acl_input(
                i.acl.as_ref().map(|a| a.as_str()),
                None,
                grant_headers!(i, no_write),
            )?,
            tagging_directive: i.tagging_directive.map(|d| d.as_str().to_string()),
            lock: lock_args(
                i.object_lock_mode.as_ref(),
                i.object_lock_retain_until_date.as_ref(),
                i.object_lock_legal_hold_status.as_ref(),
            ),
            tagging: i.tagging,
            sse: sse_args(
                i.server_side_encryption.as_ref(),
                i.sse_customer_algorithm,
                i.sse_customer_key,
                i.sse_customer_key_md5,
            ),
            bucket: i.bucket,
            key: i.key,
        };
        let out = put_output(
            self.respond(who, Request::CopyObject(Box::new(args)))
                .await?,
        )?;
        let c = checksum_fields(out.checksum.as_ref());
        let sse = sse_headers(out.sse.as_ref());
        Ok(S3Response::new(dto::CopyObjectOutput {
            server_side_encryption: sse.server,
            sse_customer_algorithm: sse.algorithm,
            sse_customer_key_md5: sse.key_md5,
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
            version_id: out.version_id,
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<dto::CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CreateMultipartUploadOutput>> {
        let who = asker!(req);
        let raw = req.headers;
        let i = req.input;
        let args = CreateUploadArgs {
            bucket: i.bucket.clone(),
            key: i.key.clone(),
            headers: content_headers(
                header_inputs(
                    i.content_type,
                    i.content_encoding,
                    i.content_disposition,
                    i.content_language,
                    i.cache_control,
                    i.expires,
                ),
                &raw,
            ),
            user_meta: user_meta(i.metadata),
            checksum_algorithm: i
                .checksum_algorithm
                .as_ref()
                .map(|a| a.as_str().to_string()),
            lock: lock_args(
                i.object_lock_mode.as_ref(),
                i.object_lock_retain_until_date.as_ref(),
                i.object_lock_legal_hold_status.as_ref(),
            ),
            tagging: i.tagging,
            acl: acl_input(
                i.acl.as_ref().map(|a| a.as_str()),
                None,
                grant_headers!(i, no_write),
            )?,
            sse: sse_args(
                i.server_side_encryption.as_ref(),
                i.sse_customer_algorithm,
                i.sse_customer_key,
                i.sse_customer_key_md5,
            ),
        };
        let request = Request::CreateMultipartUpload(Box::new(args));
        let Response::Upload(id, sse) = self.respond(who, request).await? else {
            return Err(s3s_error(es3::S3Error::Internal("bad answer".into())));
        };
        let sse = sse_headers(sse.as_ref());
        Ok(S3Response::new(dto::CreateMultipartUploadOutput {
            server_side_encryption: sse.server,
            sse_customer_algorithm: sse.algorithm,
            sse_customer_key_md5: sse.key_md5,
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
        let who = asker!(req);
        let trailers = req.trailing_headers.clone();
        let i = req.input;
        let args = PartArgs {
            bucket: i.bucket,
            key: i.key,
            upload_id: i.upload_id,
            part_number: i.part_number,
            body: BodyArgs {
                size: body_size(i.content_length, &req.headers),
                content_md5: i.content_md5,
                checksum: checksum_args(
                    i.checksum_algorithm.as_ref(),
                    [
                        i.checksum_crc32.as_ref(),
                        i.checksum_crc32c.as_ref(),
                        i.checksum_crc64nvme.as_ref(),
                        i.checksum_sha1.as_ref(),
                        i.checksum_sha256.as_ref(),
                    ],
                ),
            },
            sse: sse_args(
                None,
                i.sse_customer_algorithm,
                i.sse_customer_key,
                i.sse_customer_key_md5,
            ),
        };
        let request = Request::UploadPart(Box::new(args));
        let out = put_output(self.run_with_body(who, request, i.body, trailers).await?)?;
        let c = checksum_fields(out.checksum.as_ref());
        let sse = sse_headers(out.sse.as_ref());
        Ok(S3Response::new(dto::UploadPartOutput {
            server_side_encryption: sse.server,
            sse_customer_algorithm: sse.algorithm,
            sse_customer_key_md5: sse.key_md5,
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
        let who = asker!(req);
        let i = req.input;
        let mut source: SourceArgs = source_args(
            &i.copy_source,
            conditions(
                i.copy_source_if_match.as_ref(),
                i.copy_source_if_none_match.as_ref(),
                i.copy_source_if_modified_since.as_ref(),
                i.copy_source_if_unmodified_since.as_ref(),
            ),
        )?;
        source.sse = sse_args(
            None,
            i.copy_source_sse_customer_algorithm,
            i.copy_source_sse_customer_key,
            i.copy_source_sse_customer_key_md5,
        );
        let args = PartCopyArgs {
            source,
            source_range: i.copy_source_range,
            bucket: i.bucket,
            key: i.key,
            upload_id: i.upload_id,
            part_number: i.part_number,
            sse: sse_args(
                None,
                i.sse_customer_algorithm,
                i.sse_customer_key,
                i.sse_customer_key_md5,
            ),
        };
        let out = put_output(
            self.respond(who, Request::UploadPartCopy(Box::new(args)))
                .await?,
        )?;
        let c = checksum_fields(out.checksum.as_ref());
        let sse = sse_headers(out.sse.as_ref());
        Ok(S3Response::new(dto::UploadPartCopyOutput {
            server_side_encryption: sse.server,
            sse_customer_algorithm: sse.algorithm,
            sse_customer_key_md5: sse.key_md5,
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
        let who = asker!(req);
        let i = req.input;
        let parts = i
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.part_number, p.e_tag.map(|t| t.value().to_string())))
            .collect();
        let request = Request::CompleteMultipartUpload {
            bucket: i.bucket.clone(),
            key: i.key.clone(),
            upload_id: i.upload_id,
            parts,
        };
        let out = put_output(self.respond(who, request).await?)?;
        let c = checksum_fields(out.checksum.as_ref());
        Ok(S3Response::new(dto::CompleteMultipartUploadOutput {
            location: Some(format!("/{}/{}", i.bucket, i.key)),
            bucket: Some(i.bucket),
            key: Some(i.key),
            e_tag: Some(etag(&out.etag)),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_crc64nvme: c.crc64nvme,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            checksum_type: c.kind,
            version_id: out.version_id,
            server_side_encryption: sse_headers(out.sse.as_ref()).server,
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<dto::AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::AbortMultipartUploadOutput>> {
        let who = asker!(req);
        let i = req.input;
        self.respond(
            who,
            Request::AbortMultipartUpload {
                bucket: i.bucket,
                key: i.key,
                upload_id: i.upload_id,
            },
        )
        .await?;
        Ok(S3Response::with_status(
            dto::AbortMultipartUploadOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn list_parts(
        &self,
        req: S3Request<dto::ListPartsInput>,
    ) -> S3Result<S3Response<dto::ListPartsOutput>> {
        let who = asker!(req);
        let i = req.input;
        let request = Request::ListParts {
            bucket: i.bucket.clone(),
            key: i.key.clone(),
            upload_id: i.upload_id.clone(),
            part_number_marker: i.part_number_marker,
            max_parts: i.max_parts,
        };
        let Response::Parts(page) = self.respond(who, request).await? else {
            return Err(s3s_error(es3::S3Error::Internal("bad answer".into())));
        };
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
            max_parts: Some(page.max_parts as i32),
            is_truncated: Some(page.truncated),
            parts: Some(parts),
            owner: Some(self.owner()),
            checksum_algorithm: page.checksum_algorithm.map(algorithm_dto),
            storage_class: Some(dto::StorageClass::from_static(dto::StorageClass::STANDARD)),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<dto::ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<dto::ListMultipartUploadsOutput>> {
        let who = asker!(req);
        let i = req.input;
        let request = Request::ListMultipartUploads {
            bucket: i.bucket.clone(),
            prefix: i.prefix.clone(),
            delimiter: i.delimiter.clone(),
            key_marker: i.key_marker.clone(),
            upload_id_marker: i.upload_id_marker.clone(),
            max_uploads: i.max_uploads,
        };
        let Response::Uploads(page) = self.respond(who, request).await? else {
            return Err(s3s_error(es3::S3Error::Internal("bad answer".into())));
        };
        let owner = self.owner();
        let uploads = page
            .uploads
            .into_iter()
            .map(|u| dto::MultipartUpload {
                key: Some(u.key),
                upload_id: Some(u.upload_id),
                initiated: Some(timestamp(u.initiated_ms)),
                owner: Some(owner.clone()),
                initiator: Some(dto::Initiator {
                    display_name: owner.display_name.clone(),
                    id: owner.id.clone(),
                }),
                storage_class: Some(dto::StorageClass::from_static(dto::StorageClass::STANDARD)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(dto::ListMultipartUploadsOutput {
            bucket: Some(i.bucket),
            prefix: Some(page.prefix),
            key_marker: i.key_marker,
            upload_id_marker: i.upload_id_marker,
            next_key_marker: page.next_key_marker,
            next_upload_id_marker: page.next_upload_id_marker,
            max_uploads: Some(page.max_uploads as i32),
            is_truncated: Some(page.truncated),
            uploads: Some(uploads),
            common_prefixes: (!page.common_prefixes.is_empty()).then(|| {
                page.common_prefixes
                    .into_iter()
                    .map(|p| dto::CommonPrefix { prefix: Some(p) })
                    .collect()
            }),
            delimiter: i.delimiter,
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }

    // Access settings: translated in `s3_http::access`.

    async fn get_bucket_policy(
        &self,
        req: S3Request<dto::GetBucketPolicyInput>,
    ) -> S3Result<S3Response<dto::GetBucketPolicyOutput>> {
        self.bucket_policy(req).await
    }

    async fn put_bucket_policy(
        &self,
        req: S3Request<dto::PutBucketPolicyInput>,
    ) -> S3Result<S3Response<dto::PutBucketPolicyOutput>> {
        self.set_bucket_policy(req).await
    }

    async fn delete_bucket_policy(
        &self,
        req: S3Request<dto::DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketPolicyOutput>> {
        self.drop_bucket_policy(req).await
    }

    async fn get_bucket_policy_status(
        &self,
        req: S3Request<dto::GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<dto::GetBucketPolicyStatusOutput>> {
        self.bucket_policy_status(req).await
    }

    async fn get_bucket_acl(
        &self,
        req: S3Request<dto::GetBucketAclInput>,
    ) -> S3Result<S3Response<dto::GetBucketAclOutput>> {
        self.bucket_acl(req).await
    }

    async fn put_bucket_acl(
        &self,
        req: S3Request<dto::PutBucketAclInput>,
    ) -> S3Result<S3Response<dto::PutBucketAclOutput>> {
        self.set_bucket_acl(req).await
    }

    async fn get_object_acl(
        &self,
        req: S3Request<dto::GetObjectAclInput>,
    ) -> S3Result<S3Response<dto::GetObjectAclOutput>> {
        self.object_acl(req).await
    }

    async fn put_object_acl(
        &self,
        req: S3Request<dto::PutObjectAclInput>,
    ) -> S3Result<S3Response<dto::PutObjectAclOutput>> {
        self.set_object_acl(req).await
    }

    async fn get_public_access_block(
        &self,
        req: S3Request<dto::GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<dto::GetPublicAccessBlockOutput>> {
        self.public_access_block(req).await
    }

    async fn put_public_access_block(
        &self,
        req: S3Request<dto::PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<dto::PutPublicAccessBlockOutput>> {
        self.set_public_access_block(req).await
    }

    async fn delete_public_access_block(
        &self,
        req: S3Request<dto::DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<dto::DeletePublicAccessBlockOutput>> {
        self.drop_public_access_block(req).await
    }

    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<dto::GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<dto::GetBucketOwnershipControlsOutput>> {
        self.ownership_controls(req).await
    }

    async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<dto::PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<dto::PutBucketOwnershipControlsOutput>> {
        self.set_ownership_controls(req).await
    }

    async fn delete_bucket_ownership_controls(
        &self,
        req: S3Request<dto::DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketOwnershipControlsOutput>> {
        self.drop_ownership_controls(req).await
    }

    async fn get_bucket_cors(
        &self,
        req: S3Request<dto::GetBucketCorsInput>,
    ) -> S3Result<S3Response<dto::GetBucketCorsOutput>> {
        self.bucket_cors(req).await
    }

    async fn put_bucket_cors(
        &self,
        req: S3Request<dto::PutBucketCorsInput>,
    ) -> S3Result<S3Response<dto::PutBucketCorsOutput>> {
        self.set_bucket_cors(req).await
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<dto::DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketCorsOutput>> {
        self.drop_bucket_cors(req).await
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<dto::GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<dto::GetBucketLifecycleConfigurationOutput>> {
        self.bucket_lifecycle(req).await
    }

    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<dto::PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<dto::PutBucketLifecycleConfigurationOutput>> {
        self.set_bucket_lifecycle(req).await
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<dto::DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketLifecycleOutput>> {
        self.drop_bucket_lifecycle(req).await
    }

    async fn get_bucket_encryption(
        &self,
        req: S3Request<dto::GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<dto::GetBucketEncryptionOutput>> {
        self.bucket_encryption(req).await
    }

    async fn put_bucket_encryption(
        &self,
        req: S3Request<dto::PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<dto::PutBucketEncryptionOutput>> {
        self.set_bucket_encryption(req).await
    }

    async fn delete_bucket_encryption(
        &self,
        req: S3Request<dto::DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketEncryptionOutput>> {
        self.drop_bucket_encryption(req).await
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<dto::GetObjectTaggingInput>,
    ) -> S3Result<S3Response<dto::GetObjectTaggingOutput>> {
        self.object_tagging(req).await
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<dto::PutObjectTaggingInput>,
    ) -> S3Result<S3Response<dto::PutObjectTaggingOutput>> {
        self.set_object_tagging(req).await
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<dto::DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectTaggingOutput>> {
        self.drop_object_tagging(req).await
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<dto::GetBucketTaggingInput>,
    ) -> S3Result<S3Response<dto::GetBucketTaggingOutput>> {
        self.bucket_tagging(req).await
    }

    async fn put_bucket_tagging(
        &self,
        req: S3Request<dto::PutBucketTaggingInput>,
    ) -> S3Result<S3Response<dto::PutBucketTaggingOutput>> {
        self.set_bucket_tagging(req).await
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<dto::DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketTaggingOutput>> {
        self.drop_bucket_tagging(req).await
    }

    async fn get_object_lock_configuration(
        &self,
        req: S3Request<dto::GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<dto::GetObjectLockConfigurationOutput>> {
        self.lock_configuration(req).await
    }

    async fn put_object_lock_configuration(
        &self,
        req: S3Request<dto::PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<dto::PutObjectLockConfigurationOutput>> {
        self.set_lock_configuration(req).await
    }

    async fn get_object_retention(
        &self,
        req: S3Request<dto::GetObjectRetentionInput>,
    ) -> S3Result<S3Response<dto::GetObjectRetentionOutput>> {
        self.retention(req).await
    }

    async fn put_object_retention(
        &self,
        req: S3Request<dto::PutObjectRetentionInput>,
    ) -> S3Result<S3Response<dto::PutObjectRetentionOutput>> {
        self.set_retention(req).await
    }

    async fn get_object_legal_hold(
        &self,
        req: S3Request<dto::GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<dto::GetObjectLegalHoldOutput>> {
        self.legal_hold(req).await
    }

    async fn put_object_legal_hold(
        &self,
        req: S3Request<dto::PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<dto::PutObjectLegalHoldOutput>> {
        self.set_legal_hold(req).await
    }
}
