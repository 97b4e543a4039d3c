//! CORS: Get/Put/DeleteBucketCors as the engine's `AccessRequest`s, a browser's
//! preflight (`OPTIONS`, which s3s does not route: the listener hands it here), and the
//! `Access-Control-*` headers the listener adds to a response for a request with an
//! `Origin`. Which rule matches is the engine's (`engine::s3::cors`).

use std::sync::Arc;

use engine::meta::access::CorsRule;
use engine::s3::access::{Caller, Origin};
use engine::s3::api::{AccessRequest, Request, Response};
use engine::s3::{self as es3, S3};
use s3s::dto;
use s3s::{S3Request, S3Response, S3Result};

use super::{Edge, Peer, convert::BlobSource, s3s_error, unexpected};
use crate::RealEnv;

fn rule_of(r: dto::CORSRule) -> CorsRule {
    CorsRule {
        id: r.id,
        allowed_origins: r.allowed_origins,
        allowed_methods: r.allowed_methods,
        allowed_headers: r.allowed_headers.unwrap_or_default(),
        expose_headers: r.expose_headers.unwrap_or_default(),
        max_age_seconds: r.max_age_seconds,
    }
}

fn rule_dto(r: CorsRule) -> dto::CORSRule {
    let some = |v: Vec<String>| (!v.is_empty()).then_some(v);
    dto::CORSRule {
        id: r.id,
        allowed_origins: r.allowed_origins,
        allowed_methods: r.allowed_methods,
        allowed_headers: some(r.allowed_headers),
        expose_headers: some(r.expose_headers),
        max_age_seconds: r.max_age_seconds,
    }
}

impl Edge {
    pub(super) async fn bucket_cors(
        &self,
        req: S3Request<dto::GetBucketCorsInput>,
    ) -> S3Result<S3Response<dto::GetBucketCorsOutput>> {
        let bucket = req.input.bucket;
        let request = Request::Access {
            bucket,
            request: AccessRequest::GetBucketCors,
        };
        match self.respond(asker!(req), request).await? {
            Response::CorsRules(rules) => Ok(S3Response::new(dto::GetBucketCorsOutput {
                cors_rules: Some(rules.into_iter().map(rule_dto).collect()),
            })),
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn set_bucket_cors(
        &self,
        req: S3Request<dto::PutBucketCorsInput>,
    ) -> S3Result<S3Response<dto::PutBucketCorsOutput>> {
        let i = req.input;
        let rules = i.cors_configuration.cors_rules.into_iter().map(rule_of);
        let request = Request::Access {
            bucket: i.bucket,
            request: AccessRequest::PutBucketCors(rules.collect()),
        };
        self.respond(asker!(req), request).await?;
        Ok(S3Response::new(dto::PutBucketCorsOutput::default()))
    }

    pub(super) async fn drop_bucket_cors(
        &self,
        req: S3Request<dto::DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketCorsOutput>> {
        let request = Request::Access {
            bucket: req.input.bucket,
            request: AccessRequest::DeleteBucketCors,
        };
        self.respond(asker!(req), request).await?;
        Ok(S3Response::with_status(
            dto::DeleteBucketCorsOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Adds `answer`'s `Access-Control-*` headers to `headers`.
pub(crate) fn add_headers(
    headers: &mut http::HeaderMap,
    answer: &es3::cors::CorsAnswer,
    preflight: bool,
) {
    for (name, value) in answer.headers(preflight) {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

/// Answers a preflight (`OPTIONS`) to `bucket` from its `Origin` and
/// `Access-Control-Request-Method` / `-Headers`.
pub(crate) async fn preflight(
    s3: &Arc<S3<RealEnv>>,
    bucket: Option<String>,
    headers: &http::HeaderMap,
    peer: Peer,
) -> http::Response<s3s::Body> {
    let origin = header(headers, "origin");
    let method = header(headers, "access-control-request-method");
    let (Some(bucket), Some(origin), Some(method)) = (bucket, origin, method) else {
        return error(es3::S3Error::InvalidRequest(
            "Insufficient information. Origin request header needed.".into(),
        ));
    };
    let asked = header(headers, "access-control-request-headers")
        .map(|h| {
            h.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let request = Request::Preflight {
        bucket,
        origin: origin.to_string(),
        method: method.to_string(),
        headers: asked,
    };
    let origin = Origin {
        source_ip: Some(peer.ip),
        secure: peer.secure,
        ..Origin::default()
    };
    let no_body: Option<BlobSource> = None;
    let answer = s3
        .execute(
            &Caller::Anonymous,
            &origin,
            request,
            no_body,
            &es3::NoTrailer,
        )
        .await;
    match answer.map(|r| r.response) {
        Ok(Response::Cors(answer)) => {
            let mut resp = http::Response::new(s3s::Body::empty());
            add_headers(resp.headers_mut(), &answer, true);
            resp
        }
        Ok(other) => error(es3::S3Error::Internal(format!(
            "unexpected answer {other:?}"
        ))),
        Err(e) => error(e),
    }
}

fn error(e: es3::S3Error) -> http::Response<s3s::Body> {
    s3s_error(e).to_http_response().unwrap_or_else(|_| {
        let mut resp = http::Response::new(s3s::Body::empty());
        *resp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        resp
    })
}
