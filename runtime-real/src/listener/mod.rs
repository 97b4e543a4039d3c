//! The S3 listener every node runs (`hamster server`, `hamster cluster run --s3`): HTTP/1
//! on hyper, the s3s service over the engine's S3 edge, and the limits s3s does not
//! have, each answered with an S3 error: request header bytes ([`HEADER_BYTES_MAX`],
//! `RequestHeaderSectionTooLarge`; hyper refuses anything beyond
//! [`HEADER_BUFFER_BYTES_MAX`] outright), concurrent requests ([`REQUESTS_MAX`],
//! `SlowDown`), the declared size of each aws-chunked chunk ([`CHUNK_BYTES_MAX`]: s3s
//! buffers a whole chunk to check its signature), XML bodies, the time to send a head.
//! Bodies are never buffered whole: a PUT streams into the data path.

mod body;
mod https;

use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::s3::S3;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::RealEnv;
use crate::keys::Credentials;
use crate::metrics::S3Metrics;
use body::{Done, RequestBody, ResponseBody};
pub use https::TlsFiles;

/// Request header bytes (names and values) accepted; S3 itself allows 8 KiB.
pub const HEADER_BYTES_MAX: usize = 16 * 1024;
/// hyper's read buffer for a request head; a head beyond it is refused with 431.
pub const HEADER_BUFFER_BYTES_MAX: usize = 64 * 1024;
/// Requests served at once (a streaming GET counts until its body is sent).
pub const REQUESTS_MAX: usize = 512;
/// Largest aws-chunked chunk a client may declare.
pub const CHUNK_BYTES_MAX: u64 = 16 << 20;
/// Largest XML request body (CompleteMultipartUpload of 10 000 parts fits).
pub const XML_BODY_BYTES_MAX: usize = 4 << 20;
/// A client has this long to send a request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time given to requests in flight at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Host parsing: a request to a base domain (or to an address) is path-style; one to
/// `bucket.<base domain>` addresses that bucket.
struct Hosts(Vec<String>);

impl Hosts {
    /// The base domains given, and `localhost`.
    fn new(domains: &[String]) -> Hosts {
        let mut domains = domains.to_vec();
        if !domains.iter().any(|d| d == "localhost") {
            domains.push("localhost".into());
        }
        Hosts(domains)
    }

    /// The base domain and bucket of a `bucket.<domain>` Host header (a port is ignored).
    fn virtual_bucket<'a>(&'a self, host: &'a str) -> Option<(&'a str, &'a str)> {
        let name =
            host.rsplit_once(':').map_or(
                host,
                |(h, p)| {
                    if p.parse::<u16>().is_ok() { h } else { host }
                },
            );
        self.0.iter().find_map(|domain| {
            let bucket = name.strip_suffix(domain.as_str())?.strip_suffix('.')?;
            Some((domain.as_str(), bucket))
        })
    }
}

impl s3s::host::S3Host for Hosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> s3s::S3Result<s3s::host::VirtualHost<'a>> {
        Ok(match self.virtual_bucket(host) {
            Some((domain, bucket)) => s3s::host::VirtualHost::new(domain).with_bucket(bucket),
            None => s3s::host::VirtualHost::new(host),
        })
    }
}

/// Where the access check leaves the name of the operation s3s routed a request to (the
/// listener reads it back for its metrics; a request refused before routing has none).
#[derive(Clone, Default)]
struct OperationSlot(Arc<std::sync::OnceLock<&'static str>>);

/// Notes the operation; admits every request, signed or not, to the engine, which
/// decides (`engine::s3::access`: an anonymous request succeeds where a bucket policy or
/// ACL allows it). A bad signature never gets here: s3s refuses it first.
struct NoteOperation;

#[async_trait::async_trait]
impl s3s::access::S3Access for NoteOperation {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> s3s::S3Result<()> {
        let name = cx.s3_op().name();
        let known = engine::s3::api::OPERATIONS
            .iter()
            .find(|op| **op == name)
            .copied()
            .unwrap_or("Other");
        if let Some(slot) = cx.extensions_mut().get::<OperationSlot>() {
            let _ = slot.0.set(known);
        }
        Ok(())
    }
}

/// Builds the s3s service over `s3`.
pub fn s3_service(
    s3: Arc<S3<RealEnv>>,
    credentials: &Credentials,
    domains: &[String],
) -> s3s::service::S3Service {
    let mut builder = s3s::service::S3ServiceBuilder::new(crate::s3_http::Edge::new(s3.clone()));
    builder.set_auth(crate::s3_http::KeyAuth::new(
        credentials.clone(),
        s3.clone(),
    ));
    builder.set_route(crate::admin_api::AdminRoute::new(s3));
    builder.set_host(Hosts::new(domains));
    builder.set_access(NoteOperation);
    let mut config = s3s::config::S3Config::default();
    config.xml_max_body_size = XML_BODY_BYTES_MAX;
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        config,
    ))));
    builder.build()
}

/// How a node serves S3: keys, region, domains, TLS, and where it counts requests.
pub struct S3Front {
    pub credentials: Credentials,
    pub region: String,
    /// Base domains for virtual-host addressing (`bucket.<domain>`).
    pub domains: Vec<String>,
    /// HTTPS with this certificate (`--tls-cert`/`--tls-key`); plain HTTP when `None`.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub metrics: Arc<S3Metrics>,
}

/// Serves S3 on `listener` until `stop` resolves, then lets requests in flight finish
/// (for up to [`SHUTDOWN_GRACE`]).
pub async fn serve_s3(
    listener: TcpListener,
    s3: Arc<S3<RealEnv>>,
    front: &S3Front,
    stop: impl std::future::Future<Output = ()>,
) {
    let service = s3_service(s3.clone(), &front.credentials, &front.domains);
    let cors = Arc::new(Cors {
        s3,
        hosts: Hosts::new(&front.domains),
    });
    let permits = Arc::new(Semaphore::new(REQUESTS_MAX));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.as_mut() => break,
        };
        let _ = stream.set_nodelay(true);
        let (service, permits, metrics) = (service.clone(), permits.clone(), front.metrics.clone());
        let cors = cors.clone();
        let from = crate::s3_http::Peer {
            ip: peer.ip(),
            secure: front.tls.is_some(),
        };
        let handler = hyper::service::service_fn(move |req| {
            let (service, permits, metrics) = (service.clone(), permits.clone(), metrics.clone());
            let cors = cors.clone();
            async move {
                let front = (&service, &*cors);
                let response = handle(front, &permits, &metrics, from, req).await;
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let watcher = graceful.watcher();
        let tls = front.tls.clone();
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(HEADER_BUFFER_BYTES_MAX)
                .keep_alive(true);
            let served = match tls {
                None => {
                    let conn = http.serve_connection(TokioIo::new(stream), handler);
                    watcher.watch(conn).await
                }
                Some(tls) => {
                    let Some(stream) = https::tls_handshake(&tls, stream, peer).await else {
                        return;
                    };
                    let conn = http.serve_connection(TokioIo::new(stream), handler);
                    watcher.watch(conn).await
                }
            };
            if let Err(error) = served {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    tracing::info!("stopping: no new connections; finishing requests in flight");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?}; closing them");
        }
    }
}

/// An S3 error response built here, for limits s3s does not know.
fn error_response(code: &str, status: u16, message: &str) -> http::Response<s3s::Body> {
    let code = s3s::S3ErrorCode::from_bytes(code.as_bytes())
        .unwrap_or_else(|| s3s::S3ErrorCode::Custom(code.to_string().into()));
    let mut err = s3s::S3Error::with_message(code, message.to_string());
    if let Ok(s) = http::StatusCode::from_u16(status) {
        err.set_status_code(s);
    }
    err.to_http_response().unwrap_or_else(|_| {
        let mut resp = http::Response::new(s3s::Body::empty());
        *resp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        resp
    })
}

fn header_bytes(headers: &http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.as_bytes().len() + 4)
        .sum()
}

fn is_aws_chunked(headers: &http::HeaderMap) -> bool {
    let streaming = headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("STREAMING-"));
    let encoded = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim() == "aws-chunked"));
    streaming || encoded
}

/// What CORS needs of a request: the engine (for the bucket's rules) and the base
/// domains (to find the bucket a virtual-host request names).
struct Cors {
    s3: Arc<S3<RealEnv>>,
    hosts: Hosts,
}

impl Cors {
    /// The bucket a request names: `bucket.<domain>` in its Host, else its path's
    /// first segment.
    fn bucket_of(&self, req: &http::Request<Incoming>) -> Option<String> {
        let host = req.headers().get(http::header::HOST);
        if let Some((_, bucket)) = host
            .and_then(|h| h.to_str().ok())
            .and_then(|h| self.hosts.virtual_bucket(h))
        {
            return Some(bucket.to_string());
        }
        let first = req.uri().path().trim_start_matches('/').split('/').next()?;
        (!first.is_empty()).then(|| first.to_string())
    }

    /// The `Origin` of a request that names a bucket, and the bucket.
    fn origin_of(&self, req: &http::Request<Incoming>) -> Option<(String, String)> {
        let origin = req.headers().get("origin")?.to_str().ok()?.to_string();
        Some((self.bucket_of(req)?, origin))
    }
}

async fn handle(
    (service, cors): (&s3s::service::S3Service, &Cors),
    permits: &Arc<Semaphore>,
    metrics: &Arc<S3Metrics>,
    from: crate::s3_http::Peer,
    req: http::Request<Incoming>,
) -> http::Response<ResponseBody> {
    let began = Instant::now();
    let slot = OperationSlot::default();
    // Whether the request's body was read to its end by the time the answer is ready.
    let mut body_read = http_body::Body::is_end_stream(req.body());
    let (mut resp, permit) = match permits.clone().try_acquire_owned() {
        Err(_) => (
            error_response(
                "SlowDown",
                503,
                "Please reduce your request rate: too many requests in flight.",
            ),
            None,
        ),
        Ok(_) if header_bytes(req.headers()) > HEADER_BYTES_MAX => (
            error_response(
                "RequestHeaderSectionTooLarge",
                400,
                "Your request header section exceeds the maximum allowed size.",
            ),
            None,
        ),
        Ok(permit) if req.method() == http::Method::OPTIONS => {
            let _ = slot.0.set("Preflight");
            let bucket = cors.bucket_of(&req);
            let resp = crate::s3_http::cors::preflight(&cors.s3, bucket, req.headers(), from).await;
            (resp, Some(permit))
        }
        Ok(permit) => {
            let asked = cors.origin_of(&req).map(|o| (o, req.method().to_string()));
            let chunked = is_aws_chunked(req.headers());
            let received = metrics.received_bytes.clone();
            let (parts, body) = req.into_parts();
            let (body, ended) = RequestBody::new(body, chunked, received);
            let mut req = http::Request::from_parts(parts, s3s::Body::http_body(body));
            req.extensions_mut().insert(slot.clone());
            req.extensions_mut().insert(from);
            let mut resp = service.call(req).await.unwrap_or_else(|error| {
                tracing::warn!(?error, "request failed inside the S3 service");
                error_response("InternalError", 500, "We encountered an internal error.")
            });
            body_read = ended.load(std::sync::atomic::Ordering::Relaxed);
            if let Some(((bucket, origin), method)) = asked
                && let Some(answer) = cors.s3.cors_headers(&bucket, &origin, &method)
            {
                crate::s3_http::cors::add_headers(resp.headers_mut(), &answer, false);
            }
            (resp, Some(permit))
        }
    };
    if !body_read {
        // Answered before its body was read: the client may send that body or (after
        // `Expect: 100-continue`, which no 100 answered) skip it and send its next
        // request, so the next bytes on this connection cannot be told apart. Close it.
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    let done = Done {
        metrics: metrics.clone(),
        operation: slot.0.get().copied().unwrap_or("Unknown"),
        status: resp.status().as_u16(),
        began,
    };
    resp.map(|inner| ResponseBody {
        inner,
        _permit: permit,
        done,
    })
}
