//! The S3 listener every node runs (`hamster server`, `hamster cluster run --s3`): HTTP/1
//! on hyper, the s3s service over the engine's S3 edge, and the limits s3s does not
//! have, each answered with an S3 error: request header bytes ([`HEADER_BYTES_MAX`],
//! `RequestHeaderSectionTooLarge`; hyper refuses anything beyond
//! [`HEADER_BUFFER_BYTES_MAX`] outright), concurrent requests ([`REQUESTS_MAX`],
//! `SlowDown`), the declared size of each aws-chunked chunk ([`CHUNK_BYTES_MAX`]: s3s
//! buffers a whole chunk to check its signature), XML bodies, the time to send a head.
//! Bodies are never buffered whole: a PUT streams into the data path.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use engine::s3::S3;
use http_body::{Body as HttpBody, Frame};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::RealEnv;
use crate::keys::Credentials;
use crate::metrics::{OperationLabels, RequestLabels, S3Metrics};
use prometheus_client::metrics::counter::Counter;
use std::time::Instant;

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

impl s3s::host::S3Host for Hosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> s3s::S3Result<s3s::host::VirtualHost<'a>> {
        let name =
            host.rsplit_once(':').map_or(
                host,
                |(h, p)| {
                    if p.parse::<u16>().is_ok() { h } else { host }
                },
            );
        for domain in &self.0 {
            if let Some(bucket) = name
                .strip_suffix(domain.as_str())
                .and_then(|b| b.strip_suffix('.'))
            {
                return Ok(s3s::host::VirtualHost::new(domain.as_str()).with_bucket(bucket));
            }
        }
        Ok(s3s::host::VirtualHost::new(host))
    }
}

/// Where the access check leaves the name of the operation s3s routed a request to (the
/// listener reads it back for its metrics; a request refused before routing has none).
#[derive(Clone, Default)]
struct OperationSlot(Arc<std::sync::OnceLock<&'static str>>);

/// s3s's default access rule (a request must be signed), noting the operation.
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
        match cx.credentials() {
            Some(_) => Ok(()),
            None => Err(s3s::s3_error!(AccessDenied, "Signature is required")),
        }
    }
}

/// Builds the s3s service over `s3`.
pub fn s3_service(
    s3: Arc<S3<RealEnv>>,
    credentials: &Credentials,
    domains: &[String],
) -> s3s::service::S3Service {
    let mut builder = s3s::service::S3ServiceBuilder::new(crate::s3_http::Edge::new(s3));
    builder.set_auth(s3s::auth::SimpleAuth::from_single(
        credentials.access_key.as_str(),
        credentials.secret_key.as_str(),
    ));
    let mut domains = domains.to_vec();
    if !domains.iter().any(|d| d == "localhost") {
        domains.push("localhost".into());
    }
    builder.set_host(Hosts(domains));
    builder.set_access(NoteOperation);
    let mut config = s3s::config::S3Config::default();
    config.xml_max_body_size = XML_BODY_BYTES_MAX;
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        config,
    ))));
    builder.build()
}

/// The certificate and key files of `--tls-cert` and `--tls-key`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl TlsFiles {
    pub fn acceptor(&self) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
        crate::tls::s3_acceptor(&self.cert, &self.key)
    }
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

/// A client has this long to finish a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves S3 on `listener` until `stop` resolves, then lets requests in flight finish
/// (for up to [`SHUTDOWN_GRACE`]).
pub async fn serve_s3(
    listener: TcpListener,
    s3: Arc<S3<RealEnv>>,
    front: &S3Front,
    stop: impl std::future::Future<Output = ()>,
) {
    let service = s3_service(s3, &front.credentials, &front.domains);
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
        let handler = hyper::service::service_fn(move |req| {
            let (service, permits, metrics) = (service.clone(), permits.clone(), metrics.clone());
            async move {
                Ok::<_, std::convert::Infallible>(handle(&service, &permits, &metrics, req).await)
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
                    let Some(stream) = tls_handshake(&tls, stream, peer).await else {
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

/// The answer to plain HTTP on an HTTPS port: a clear 400, then the connection closes.
const PLAIN_HTTP_REFUSAL: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Connection: close\r\n\
Content-Length: 70\r\n\r\n\
This S3 endpoint speaks HTTPS only: use https:// in the endpoint URL.\n";

/// A TLS handshake on an accepted connection. A client that speaks plain HTTP (its first
/// byte is not a TLS handshake record's) gets [`PLAIN_HTTP_REFUSAL`] instead.
async fn tls_handshake(
    tls: &tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    use tokio::io::AsyncWriteExt;
    const TLS_HANDSHAKE_RECORD: u8 = 0x16;
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await;
    match peeked {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => {}
        Ok(Ok(1)) => {
            tracing::debug!(%peer, "plain HTTP on the HTTPS port; refused");
            let mut stream = stream;
            let _ = stream.write_all(PLAIN_HTTP_REFUSAL).await;
            let _ = stream.shutdown().await;
            return None;
        }
        _ => return None,
    }
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
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

async fn handle(
    service: &s3s::service::S3Service,
    permits: &Arc<Semaphore>,
    metrics: &Arc<S3Metrics>,
    req: http::Request<Incoming>,
) -> http::Response<ResponseBody> {
    let began = Instant::now();
    let slot = OperationSlot::default();
    let (resp, permit) = match permits.clone().try_acquire_owned() {
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
        Ok(permit) => {
            let chunked = is_aws_chunked(req.headers());
            let received = metrics.received_bytes.clone();
            let mut req =
                req.map(|body| s3s::Body::http_body(RequestBody::new(body, chunked, received)));
            req.extensions_mut().insert(slot.clone());
            let resp = service.call(req).await.unwrap_or_else(|error| {
                tracing::warn!(?error, "request failed inside the S3 service");
                error_response("InternalError", 500, "We encountered an internal error.")
            });
            (resp, Some(permit))
        }
    };
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

/// Counts a request once its response is sent (or abandoned).
struct Done {
    metrics: Arc<S3Metrics>,
    operation: &'static str,
    status: u16,
    began: Instant,
}

impl Drop for Done {
    fn drop(&mut self) {
        let (operation, status) = (self.operation, self.status);
        self.metrics
            .requests
            .get_or_create(&RequestLabels { operation, status })
            .inc();
        self.metrics
            .duration
            .get_or_create(&OperationLabels { operation })
            .observe(self.began.elapsed().as_secs_f64());
    }
}

/// A response body that holds its request's permit until it is sent, and counts it.
pub struct ResponseBody {
    inner: s3s::Body,
    _permit: Option<OwnedSemaphorePermit>,
    done: Done,
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = <s3s::Body as HttpBody>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.done.metrics.sent_bytes.inc_by(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("hamster-limit: {0}")]
struct OverLimit(String);

/// Where the framing of an aws-chunked body is.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// In a chunk's size line: the size so far, whether the hex digits ended
    /// (an extension or CR follows), and the line's length.
    Size {
        size: u64,
        digits_done: bool,
        line: usize,
    },
    /// After the size line's CR, expecting LF.
    SizeLf { size: u64 },
    /// In a chunk's data and its trailing CRLF: bytes left.
    Data { left: u64 },
    /// After the last chunk: trailers, left to s3s.
    Trailers,
}

/// Longest chunk size line (size, extension, signature) accepted.
const SIZE_LINE_BYTES_MAX: usize = 4096;

/// A request body as it arrives: counted, and for aws-chunked bodies the declared size
/// of every chunk checked before s3s buffers it.
struct RequestBody {
    inner: Incoming,
    /// `None`: not aws-chunked.
    framing: Option<Framing>,
    received: Counter,
}

impl RequestBody {
    fn new(inner: Incoming, chunked: bool, received: Counter) -> Self {
        Self {
            inner,
            framing: chunked.then_some(Framing::Size {
                size: 0,
                digits_done: false,
                line: 0,
            }),
            received,
        }
    }
}

/// Advances `framing` over `bytes`; fails on a size line too long or a chunk too large.
fn scan_framing(framing: &mut Framing, mut bytes: &[u8]) -> Result<(), OverLimit> {
    while !bytes.is_empty() {
        *framing = match *framing {
            Framing::Trailers => return Ok(()),
            Framing::Data { left } => {
                let take = left.min(bytes.len() as u64);
                bytes = &bytes[take as usize..];
                if take == left {
                    Framing::Size {
                        size: 0,
                        digits_done: false,
                        line: 0,
                    }
                } else {
                    Framing::Data { left: left - take }
                }
            }
            Framing::SizeLf { size } => {
                bytes = &bytes[1..];
                if size == 0 {
                    Framing::Trailers
                } else {
                    Framing::Data { left: size + 2 }
                }
            }
            Framing::Size {
                size,
                digits_done,
                line,
            } => {
                let b = bytes[0];
                bytes = &bytes[1..];
                if line >= SIZE_LINE_BYTES_MAX {
                    return Err(OverLimit("an aws-chunked size line is too long".into()));
                }
                match (b, (b as char).to_digit(16)) {
                    (b'\r', _) => Framing::SizeLf { size },
                    (_, Some(d)) if !digits_done => {
                        let size = size * 16 + u64::from(d);
                        if size > CHUNK_BYTES_MAX {
                            return Err(OverLimit(format!(
                                "an aws-chunked chunk may hold at most {CHUNK_BYTES_MAX} bytes"
                            )));
                        }
                        Framing::Size {
                            size,
                            digits_done,
                            line: line + 1,
                        }
                    }
                    _ => Framing::Size {
                        size,
                        digits_done: true,
                        line: line + 1,
                    },
                }
            }
        };
    }
    Ok(())
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.received.inc_by(data.len() as u64);
                    if let Some(framing) = self.framing.as_mut()
                        && let Err(e) = scan_framing(framing, data.chunk())
                    {
                        return Poll::Ready(Some(Err(Box::new(e))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3_http::LIMIT_MARKER;

    /// The framing scanner on its own, fed in pieces of every size.
    fn scan_all(body: &[u8], piece: usize) -> Result<(), String> {
        let mut framing = Framing::Size {
            size: 0,
            digits_done: false,
            line: 0,
        };
        for p in body.chunks(piece) {
            scan_framing(&mut framing, p).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    #[test]
    fn chunk_sizes_are_checked_across_frame_boundaries() {
        let sig = format!(";chunk-signature={}", "a".repeat(64));
        let ok = format!(
            "10{sig}\r\n{}\r\n5{sig}\r\nhello\r\n0{sig}\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n",
            "x".repeat(16)
        );
        let unsigned = "400\r\n".to_string() + &"y".repeat(1024) + "\r\n0\r\n\r\n";
        let big = format!("{:x}{sig}\r\n", CHUNK_BYTES_MAX + 1);
        let long = format!("10;{}\r\n", "z".repeat(SIZE_LINE_BYTES_MAX));
        for piece in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(scan_all(ok.as_bytes(), piece), Ok(()), "piece {piece}");
            assert_eq!(
                scan_all(unsigned.as_bytes(), piece),
                Ok(()),
                "piece {piece}"
            );
            let e = scan_all(big.as_bytes(), piece).unwrap_err();
            assert!(e.starts_with(LIMIT_MARKER), "{e}");
            assert!(scan_all(long.as_bytes(), piece).is_err());
        }
    }
}
