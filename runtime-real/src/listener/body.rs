//! A request's body as it arrives (counted; aws-chunked framing checked) and a
//! response's body as it leaves (counted; the request's permit held until it is sent).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes};
use http_body::{Body as HttpBody, Frame};
use hyper::body::Incoming;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::OwnedSemaphorePermit;

use super::CHUNK_BYTES_MAX;
use crate::metrics::{OperationLabels, RequestLabels, S3Metrics};

/// Counts a request once its response is sent (or abandoned).
pub(super) struct Done {
    pub(super) metrics: Arc<S3Metrics>,
    pub(super) operation: &'static str,
    pub(super) status: u16,
    pub(super) began: Instant,
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
    pub(super) inner: s3s::Body,
    pub(super) _permit: Option<OwnedSemaphorePermit>,
    pub(super) done: Done,
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
pub(super) struct RequestBody {
    inner: Incoming,
    /// `None`: not aws-chunked.
    framing: Option<Framing>,
    received: Counter,
    /// Set once the body has been read to its end (at once for an empty body).
    ended: Arc<AtomicBool>,
}

impl RequestBody {
    /// The body, and a flag that says whether it was read to its end.
    pub(super) fn new(
        inner: Incoming,
        chunked: bool,
        received: Counter,
    ) -> (Self, Arc<AtomicBool>) {
        let ended = Arc::new(AtomicBool::new(inner.is_end_stream()));
        let body = Self {
            inner,
            framing: chunked.then_some(Framing::Size {
                size: 0,
                digits_done: false,
                line: 0,
            }),
            received,
            ended: ended.clone(),
        };
        (body, ended)
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
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.ended.store(true, Ordering::Relaxed);
        }
        match polled {
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
