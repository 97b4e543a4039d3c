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
    let mut config = s3s::config::S3Config::default();
    config.xml_max_body_size = XML_BODY_BYTES_MAX;
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        config,
    ))));
    builder.build()
}

/// Serves S3 on `listener` until `stop` resolves, then lets requests in flight finish
/// (for up to [`SHUTDOWN_GRACE`]).
pub async fn serve_s3(
    listener: TcpListener,
    s3: Arc<S3<RealEnv>>,
    credentials: &Credentials,
    region: &str,
    domains: &[String],
    stop: impl std::future::Future<Output = ()>,
) {
    let _ = region;
    let service = s3_service(s3, credentials, domains);
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
        let (service, permits) = (service.clone(), permits.clone());
        let handler = hyper::service::service_fn(move |req| {
            let (service, permits) = (service.clone(), permits.clone());
            async move { Ok::<_, std::convert::Infallible>(handle(&service, &permits, req).await) }
        });
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(HEADER_BUFFER_BYTES_MAX)
            .keep_alive(true);
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), handler));
        tokio::spawn(async move {
            if let Err(error) = conn.await {
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
fn error_response(code: &str, status: u16, message: &str) -> http::Response<ResponseBody> {
    let code = s3s::S3ErrorCode::from_bytes(code.as_bytes())
        .unwrap_or_else(|| s3s::S3ErrorCode::Custom(code.to_string().into()));
    let mut err = s3s::S3Error::with_message(code, message.to_string());
    if let Ok(s) = http::StatusCode::from_u16(status) {
        err.set_status_code(s);
    }
    match err.to_http_response() {
        Ok(resp) => resp.map(|b| ResponseBody {
            inner: b,
            _permit: None,
        }),
        Err(_) => {
            let mut resp = http::Response::new(ResponseBody {
                inner: s3s::Body::empty(),
                _permit: None,
            });
            *resp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            resp
        }
    }
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
    req: http::Request<Incoming>,
) -> http::Response<ResponseBody> {
    let Ok(permit) = permits.clone().try_acquire_owned() else {
        return error_response(
            "SlowDown",
            503,
            "Please reduce your request rate: too many requests in flight.",
        );
    };
    if header_bytes(req.headers()) > HEADER_BYTES_MAX {
        return error_response(
            "RequestHeaderSectionTooLarge",
            400,
            "Your request header section exceeds the maximum allowed size.",
        );
    }
    let chunked = is_aws_chunked(req.headers());
    let req = req.map(|body| {
        if chunked {
            s3s::Body::http_body(ChunkGuard::new(body))
        } else {
            s3s::Body::from(body)
        }
    });
    match service.call(req).await {
        Ok(resp) => resp.map(|inner| ResponseBody {
            inner,
            _permit: Some(permit),
        }),
        Err(error) => {
            tracing::warn!(?error, "request failed inside the S3 service");
            error_response("InternalError", 500, "We encountered an internal error.")
        }
    }
}

/// A response body that holds its request's permit until it is sent.
pub struct ResponseBody {
    inner: s3s::Body,
    _permit: Option<OwnedSemaphorePermit>,
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = <s3s::Body as HttpBody>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
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

/// Checks the declared size of every aws-chunked chunk as the body arrives, before
/// s3s buffers it.
struct ChunkGuard {
    inner: Incoming,
    framing: Framing,
}

impl ChunkGuard {
    fn new(inner: Incoming) -> Self {
        Self {
            inner,
            framing: Framing::Size {
                size: 0,
                digits_done: false,
                line: 0,
            },
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

impl HttpBody for ChunkGuard {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && let Err(e) = scan_framing(&mut self.framing, data.chunk())
                {
                    return Poll::Ready(Some(Err(Box::new(e))));
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
