//! HTTPS on the S3 port (`--tls-cert`, `--tls-key`): the files, the handshake, and the
//! clear refusal of a client that speaks plain HTTP to it.

use std::time::Duration;

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

/// A client has this long to finish a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The answer to plain HTTP on an HTTPS port: a clear 400, then the connection closes.
const PLAIN_HTTP_REFUSAL: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Connection: close\r\n\
Content-Length: 70\r\n\r\n\
This S3 endpoint speaks HTTPS only: use https:// in the endpoint URL.\n";

/// A TLS handshake on an accepted connection. A client that speaks plain HTTP (its first
/// byte is not a TLS handshake record's) gets [`PLAIN_HTTP_REFUSAL`] instead.
pub(super) async fn tls_handshake(
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
