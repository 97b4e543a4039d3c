//! RealNet: the Net trait over TCP, one connection per call.
//!
//! Wire format (little-endian): a call opens with magic `HMR1`, a kind byte (0 plain,
//! 1 streamed), the caller's node id (u64) and the request (u32 length + bytes). A
//! streamed call follows with body frames: tag 1 + u32 length + bytes, and tag 2 for the
//! end. The answer is u32 length + bytes. Every length is checked against [`NetLimits`]
//! before anything is allocated; a violation closes the connection. TCP_NODELAY is set on
//! every socket, so small answers are not held back by Nagle's algorithm.
//!
//! The caller's node id is self-declared here; the cluster issue puts mutual TLS under
//! this framing so that a peer's identity is its certificate.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use engine::env::{BodyStream, Frame, Incoming, Net, NetError, NodeId, body_channel};
use futures::channel::{mpsc, oneshot};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};

const MAGIC: &[u8; 4] = b"HMR1";
const KIND_PLAIN: u8 = 0;
const KIND_STREAMED: u8 = 1;
const TAG_DATA: u8 = 1;
const TAG_END: u8 = 2;
/// Calls accepted but not yet taken by the node; beyond it, connections wait.
const INCOMING_CALLS_MAX: usize = 1024;
/// Body frames buffered per incoming stream.
const STREAM_RECEIVE_FRAMES_MAX: usize = 4;

/// Size limits that bound what a peer can make this node allocate.
#[derive(Debug, Clone, Copy)]
pub struct NetLimits {
    pub message_bytes_max: u32,
    pub frame_bytes_max: u32,
}

impl Default for NetLimits {
    fn default() -> Self {
        Self {
            message_bytes_max: engine::shard_rpc::MESSAGE_BYTES_MAX as u32,
            frame_bytes_max: 16 << 20,
        }
    }
}

pub struct RealNet {
    node: NodeId,
    local: SocketAddr,
    peers: Arc<BTreeMap<NodeId, SocketAddr>>,
    limits: NetLimits,
    incoming: futures::lock::Mutex<mpsc::Receiver<Incoming>>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl Drop for RealNet {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl RealNet {
    /// Listens on `listen` and knows `peers` by address.
    pub async fn bind(
        node: NodeId,
        listen: SocketAddr,
        peers: BTreeMap<NodeId, SocketAddr>,
        limits: NetLimits,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(INCOMING_CALLS_MAX);
        let acceptor = tokio::spawn(accept_loop(listener, tx, limits));
        Ok(Self {
            node,
            local,
            peers: Arc::new(peers),
            limits,
            incoming: futures::lock::Mutex::new(rx),
            acceptor,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    async fn connect(&self, to: NodeId) -> Result<TcpStream, NetError> {
        let addr = self.peers.get(&to).ok_or(NetError::Unreachable { to })?;
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|_| NetError::Unreachable { to })?;
        stream.set_nodelay(true).map_err(|_| NetError::Broken)?;
        Ok(stream)
    }

    fn opening(&self, kind: u8, request: &[u8]) -> Vec<u8> {
        let mut head = Vec::with_capacity(17 + request.len());
        head.extend_from_slice(MAGIC);
        head.push(kind);
        head.extend_from_slice(&self.node.to_le_bytes());
        head.extend_from_slice(&(request.len() as u32).to_le_bytes());
        head.extend_from_slice(request);
        head
    }

    async fn exchange(
        &self,
        to: NodeId,
        request: Bytes,
        body: Option<BodyStream>,
    ) -> Result<Bytes, NetError> {
        if request.len() > self.limits.message_bytes_max as usize {
            return Err(NetError::Broken);
        }
        let stream = self.connect(to).await?;
        let (mut reader, writer) = stream.into_split();
        let mut writer = BufWriter::new(writer);
        let kind = if body.is_some() {
            KIND_STREAMED
        } else {
            KIND_PLAIN
        };
        let broken = |_| NetError::Broken;
        writer
            .write_all(&self.opening(kind, &request))
            .await
            .map_err(broken)?;
        if let Some(mut body) = body {
            loop {
                match body.next_frame().await {
                    Some(Frame::Data(b)) => {
                        writer.write_u8(TAG_DATA).await.map_err(broken)?;
                        writer.write_u32_le(b.len() as u32).await.map_err(broken)?;
                        writer.write_all(&b).await.map_err(broken)?;
                    }
                    Some(Frame::End) => {
                        writer.write_u8(TAG_END).await.map_err(broken)?;
                        break;
                    }
                    // The producer went away mid-body: closing cuts the stream off.
                    None => return Err(NetError::Broken),
                }
            }
        }
        writer.flush().await.map_err(broken)?;
        let answer = read_message(&mut reader, self.limits.message_bytes_max)
            .await
            .map_err(broken)?;
        Ok(Bytes::from(answer))
    }
}

async fn read_message<R: AsyncRead + Unpin>(r: &mut R, max: u32) -> io::Result<Vec<u8>> {
    let len = r.read_u32_le().await?;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message over the limit",
        ));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn accept_loop(listener: TcpListener, calls: mpsc::Sender<Incoming>, limits: NetLimits) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let calls = calls.clone();
                tokio::spawn(async move {
                    if let Err(error) = serve_connection(stream, calls, limits).await {
                        tracing::debug!(%peer, %error, "connection closed");
                    }
                });
            }
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    mut calls: mpsc::Sender<Incoming>,
    limits: NetLimits,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let (mut reader, mut writer) = stream.into_split();
    let mut magic = [0u8; 4];
    reader.read_exact(&mut magic).await?;
    let kind = reader.read_u8().await?;
    if &magic != MAGIC || (kind != KIND_PLAIN && kind != KIND_STREAMED) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a hamster call",
        ));
    }
    let from = reader.read_u64_le().await?;
    let request = Bytes::from(read_message(&mut reader, limits.message_bytes_max).await?);
    let (reply, answer) = oneshot::channel();
    let (body, pump) = if kind == KIND_STREAMED {
        let (tx, rx) = body_channel(STREAM_RECEIVE_FRAMES_MAX);
        (Some(rx), Some(tokio::spawn(pump_body(reader, tx, limits))))
    } else {
        (None, None)
    };
    let incoming = Incoming {
        from,
        request,
        body,
        reply,
    };
    if calls.send(incoming).await.is_err() {
        return Ok(()); // the node is shutting down
    }
    let result = answer.await;
    if let Some(pump) = pump {
        pump.abort();
    }
    let Ok(bytes) = result else {
        return Ok(()); // the handler dropped the call: the caller sees a broken connection
    };
    writer
        .write_all(&(bytes.len() as u32).to_le_bytes())
        .await?;
    writer.write_all(&bytes).await?;
    writer.flush().await
}

/// Moves body frames from the socket into the node's body stream. Dropping `tx`
/// without an end frame tells the handler the stream was cut off.
async fn pump_body<R: AsyncRead + Unpin>(
    mut reader: R,
    mut tx: engine::env::BodySender,
    limits: NetLimits,
) {
    loop {
        let Ok(tag) = reader.read_u8().await else {
            return;
        };
        match tag {
            TAG_DATA => {
                let Ok(frame) = read_message(&mut reader, limits.frame_bytes_max).await else {
                    return;
                };
                if tx.send(Bytes::from(frame)).await.is_err() {
                    return;
                }
            }
            TAG_END => {
                let _ = tx.send_frame(Frame::End).await;
                return;
            }
            _ => return,
        }
    }
}

impl Net for RealNet {
    async fn call(&self, to: NodeId, request: Bytes, timeout: Duration) -> Result<Bytes, NetError> {
        tokio::time::timeout(timeout, self.exchange(to, request, None))
            .await
            .unwrap_or(Err(NetError::Timeout { to }))
    }

    async fn call_streamed(
        &self,
        to: NodeId,
        request: Bytes,
        body: BodyStream,
        timeout: Duration,
    ) -> Result<Bytes, NetError> {
        tokio::time::timeout(timeout, self.exchange(to, request, Some(body)))
            .await
            .unwrap_or(Err(NetError::Timeout { to }))
    }

    async fn accept(&self) -> Option<Incoming> {
        self.incoming.lock().await.next().await
    }
}
