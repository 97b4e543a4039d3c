//! Server-side encryption at the edge: the SSE headers of a request as the engine's
//! [`SseArgs`], what a response says of an object's encryption, and
//! Get/Put/DeleteBucketEncryption as the engine's `AccessRequest`s. What is encrypted,
//! and how, is the engine's (`engine::s3::encryption`, `engine::s3::sse`).

use engine::s3::S3Error as EngineError;
use engine::s3::api::{AccessRequest, Request, Response};
use engine::s3::types::{SseArgs, SseInfo};
use s3s::dto;
use s3s::{S3Request, S3Response, S3Result};

use super::{Edge, s3s_error, unexpected};

/// A request's SSE headers: `x-amz-server-side-encryption` (a write's) and the three
/// SSE-C headers (or a copy source's).
pub(super) fn sse_args(
    server: Option<&dto::ServerSideEncryption>,
    algorithm: Option<String>,
    key: Option<String>,
    key_md5: Option<String>,
) -> SseArgs {
    SseArgs {
        server: server.map(|s| s.as_str().to_string()),
        customer_algorithm: algorithm,
        customer_key: key,
        customer_key_md5: key_md5,
    }
}

/// The response headers that say how an object is encrypted.
#[derive(Default)]
pub(super) struct SseHeaders {
    pub server: Option<dto::ServerSideEncryption>,
    pub algorithm: Option<String>,
    pub key_md5: Option<String>,
}

pub(super) fn sse_headers(info: Option<&SseInfo>) -> SseHeaders {
    match info {
        None => SseHeaders::default(),
        Some(SseInfo::Managed) => SseHeaders {
            server: Some(dto::ServerSideEncryption::from_static(
                dto::ServerSideEncryption::AES256,
            )),
            ..SseHeaders::default()
        },
        Some(SseInfo::Customer { key_md5 }) => SseHeaders {
            algorithm: Some(dto::ServerSideEncryption::AES256.to_string()),
            key_md5: Some(key_md5.clone()),
            ..SseHeaders::default()
        },
    }
}

impl Edge {
    pub(super) async fn bucket_encryption(
        &self,
        req: S3Request<dto::GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<dto::GetBucketEncryptionOutput>> {
        let request = Request::Access {
            bucket: req.input.bucket.clone(),
            request: AccessRequest::GetBucketEncryption,
        };
        match self.respond(asker!(req), request).await? {
            Response::Encryption(e) => {
                let rule = dto::ServerSideEncryptionRule {
                    apply_server_side_encryption_by_default: Some(
                        dto::ServerSideEncryptionByDefault {
                            kms_master_key_id: None,
                            sse_algorithm: dto::ServerSideEncryption::from_static(
                                dto::ServerSideEncryption::AES256,
                            ),
                        },
                    ),
                    bucket_key_enabled: Some(e.bucket_key_enabled),
                };
                Ok(S3Response::new(dto::GetBucketEncryptionOutput {
                    server_side_encryption_configuration: Some(
                        dto::ServerSideEncryptionConfiguration { rules: vec![rule] },
                    ),
                }))
            }
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn set_bucket_encryption(
        &self,
        req: S3Request<dto::PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<dto::PutBucketEncryptionOutput>> {
        let who = asker!(req);
        let i = req.input;
        let malformed = |why: &str| s3s_error(EngineError::MalformedXml(why.into()));
        let [rule] = i.server_side_encryption_configuration.rules.as_slice() else {
            return Err(malformed("give exactly one ServerSideEncryptionRule"));
        };
        let Some(by_default) = &rule.apply_server_side_encryption_by_default else {
            return Err(malformed(
                "the rule needs ApplyServerSideEncryptionByDefault",
            ));
        };
        if by_default.kms_master_key_id.is_some() && by_default.sse_algorithm.as_str() == "AES256" {
            return Err(s3s_error(EngineError::InvalidArgument(
                "a KMSMasterKeyID goes only with aws:kms".into(),
            )));
        }
        let request = Request::Access {
            bucket: i.bucket,
            request: AccessRequest::PutBucketEncryption {
                algorithm: by_default.sse_algorithm.as_str().to_string(),
                bucket_key_enabled: rule.bucket_key_enabled == Some(true),
            },
        };
        match self.respond(who, request).await? {
            Response::Done => Ok(S3Response::new(dto::PutBucketEncryptionOutput {})),
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn drop_bucket_encryption(
        &self,
        req: S3Request<dto::DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketEncryptionOutput>> {
        let request = Request::Access {
            bucket: req.input.bucket.clone(),
            request: AccessRequest::DeleteBucketEncryption,
        };
        match self.respond(asker!(req), request).await? {
            Response::Done => Ok(S3Response::new(dto::DeleteBucketEncryptionOutput {})),
            other => Err(unexpected(other)),
        }
    }
}
