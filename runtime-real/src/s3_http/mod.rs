//! The S3 HTTP edge: s3s's `S3` trait over the engine's typed S3 API
//! (`engine::s3::api`). s3s parses requests, checks SigV4 (headers, presigned URLs,
//! aws-chunked bodies with their trailers) and writes responses; this module only
//! translates: each s3s input becomes one engine `Request`, and the engine's `Response`
//! becomes the s3s output. Every S3 decision is the engine's. Every operation the engine
//! does not offer is left to s3s's default, which answers `NotImplemented`; the test
//! below fails when this edge serves an operation the engine's request cannot express.

mod auth;
mod convert;

use std::sync::Arc;

use engine::s3::access::{Caller, Origin};
use engine::s3::api::{Request, Response};
use engine::s3::{self as es3, Reply};
use s3s::S3Result;
use s3s::dto;

use crate::RealEnv;
pub use auth::KeyAuth;
#[cfg(test)]
pub(crate) use convert::LIMIT_MARKER;
pub use convert::s3s_error;
use convert::*;

/// The credentials s3s checked, if the request was signed.
type Credentials = Option<s3s::auth::Credentials>;

/// The connection a request came on: the listener puts it in the request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub ip: std::net::IpAddr,
    /// Over TLS.
    pub secure: bool,
}

/// Who asks, and from where (what bucket policy conditions look at).
pub(crate) struct Asker {
    credentials: Credentials,
    origin: Origin,
}

impl Asker {
    pub(crate) fn of(
        credentials: &Credentials,
        extensions: &http::Extensions,
        headers: &http::HeaderMap,
    ) -> Asker {
        let peer = extensions.get::<Peer>();
        let header = |name: http::header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Asker {
            credentials: credentials.clone(),
            origin: Origin {
                source_ip: peer.map(|p| p.ip),
                secure: peer.is_some_and(|p| p.secure),
                referer: header(http::header::REFERER),
                user_agent: header(http::header::USER_AGENT),
            },
        }
    }
}

/// The [`Asker`] of an `S3Request` (its fields, so that its input may be moved out).
macro_rules! asker {
    ($req:expr) => {
        &$crate::s3_http::Asker::of(&$req.credentials, &$req.extensions, &$req.headers)
    };
}

/// The `x-amz-grant-*` headers of an s3s input as [`access::GrantHeaders`]; `no_write`
/// for an object's input, which has no `x-amz-grant-write`.
macro_rules! grant_headers {
    ($i:expr) => {
        $crate::s3_http::access::GrantHeaders {
            write: $i.grant_write,
            ..grant_headers!($i, no_write)
        }
    };
    ($i:expr, no_write) => {
        $crate::s3_http::access::GrantHeaders {
            full_control: $i.grant_full_control,
            read: $i.grant_read,
            read_acp: $i.grant_read_acp,
            write: None,
            write_acp: $i.grant_write_acp,
        }
    };
}

/// The principal s3s authenticated: the root key, an access key, or nobody.
pub(crate) fn caller_of(s3: &es3::S3<RealEnv>, credentials: &Credentials) -> Caller {
    match credentials {
        Some(c) if c.access_key == s3.config().owner => Caller::Root,
        Some(c) => Caller::Key(c.access_key.clone()),
        None => Caller::Anonymous,
    }
}

/// The engine's S3 service behind s3s.
pub struct Edge {
    s3: Arc<es3::S3<RealEnv>>,
}

impl Edge {
    pub fn new(s3: Arc<es3::S3<RealEnv>>) -> Self {
        Self { s3 }
    }

    fn caller(&self, credentials: &Credentials) -> Caller {
        caller_of(&self.s3, credentials)
    }

    /// Runs a request that has no body.
    async fn run(&self, who: &Asker, request: Request) -> S3Result<Reply> {
        let no_body: Option<BlobSource> = None;
        let caller = self.caller(&who.credentials);
        self.s3
            .execute(&caller, &who.origin, request, no_body, &es3::NoTrailer)
            .await
            .map_err(s3s_error)
    }

    async fn respond(&self, who: &Asker, request: Request) -> S3Result<Response> {
        Ok(self.run(who, request).await?.response)
    }

    /// Runs a request with a body and its trailers.
    async fn run_with_body(
        &self,
        who: &Asker,
        request: Request,
        body: Option<dto::StreamingBlob>,
        trailers: Option<s3s::TrailingHeaders>,
    ) -> S3Result<Response> {
        let reply = self
            .s3
            .execute(
                &self.caller(&who.credentials),
                &who.origin,
                request,
                Some(BlobSource(body)),
                &Trailers(trailers),
            )
            .await
            .map_err(s3s_error)?;
        Ok(reply.response)
    }

    fn owner(&self) -> dto::Owner {
        owner(&self.s3)
    }
}

/// The length of a request's object bytes: Content-Length, or for an aws-chunked body
/// sent without one (HTTP chunked, as the SDKs do over HTTPS with a trailing checksum)
/// its `x-amz-decoded-content-length`.
fn body_size(content_length: Option<i64>, headers: &http::HeaderMap) -> Option<i64> {
    content_length.or_else(|| {
        headers
            .get("x-amz-decoded-content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    })
}

/// The engine answered with a response this operation never gives.
fn unexpected(r: Response) -> s3s::S3Error {
    s3s_error(es3::S3Error::Internal(format!(
        "unexpected engine response {r:?}"
    )))
}

fn put_output(r: Response) -> S3Result<es3::PutOutput> {
    match r {
        Response::Put(out) => Ok(out),
        other => Err(unexpected(other)),
    }
}

fn header_inputs(
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<dto::Timestamp>,
) -> HeaderInputs {
    HeaderInputs {
        content_type,
        content_encoding,
        content_disposition,
        content_language,
        cache_control,
        expires,
    }
}

mod access;
mod attributes;
pub(crate) mod cors;
mod encryption;
mod lifecycle;
mod lock;
mod operations;
mod tagging;
mod versions;

#[cfg(test)]
mod tests {
    /// Every operation this edge serves (each `async fn` of its `impl s3s::S3`) must be
    /// one the engine's request enum expresses.
    #[test]
    fn the_edge_serves_only_operations_the_engine_request_expresses() {
        let source = include_str!("operations.rs");
        let mut served = Vec::new();
        for line in source.lines() {
            let Some(rest) = line.trim().strip_prefix("async fn ") else {
                continue;
            };
            let name: String = rest.chars().take_while(|c| *c != '(').collect();
            let pascal: String = name
                .split('_')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                        .unwrap_or_default()
                })
                .collect();
            served.push(pascal);
        }
        assert!(served.len() >= 20, "found only {served:?}");
        for op in &served {
            assert!(
                engine::s3::api::OPERATIONS.contains(&op.as_str()),
                "the edge serves {op}, which engine::s3::api::Request cannot express"
            );
        }
    }
}
