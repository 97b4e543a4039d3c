//! RealNet: the Net trait over TCP, plain or with mutual TLS ([`crate::tls`]).
//!
//! Wire format (little-endian), inside TLS when it is on: a connection opens with magic
//! `HMR1` and the caller's node id (u64). Then calls follow one at a time: a kind byte
//! (0 plain, 1 streamed) and the request (u32 length + bytes); a streamed call follows
//! with body frames, tag 1 + u32 length + bytes, and tag 2 for the end. The answer is
//! u32 length + bytes. Every length is checked against [`NetLimits`] before anything is
//! allocated; a violation closes the connection. TCP_NODELAY is set on every socket.
//!
//! A caller keeps finished connections per peer and reuses them, so a TLS handshake is
//! paid once per connection, not once per call. A pooled connection that the peer
//! closed (it restarted, or its idle timer fired) is noticed before reuse and dropped;
//! a call is never retried, since the peer may have acted on it.
//!
//! With TLS the caller's node id is checked against its certificate: a caller that
//! claims to be node 3 must present the CA-signed certificate of `node-3.hamster`.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine::env::{BodyStream, Frame, Incoming, Net, NetError, NodeId, body_channel};
use futures::channel::{mpsc, oneshot};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter, ReadBuf, ReadHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::tls::{self, Tls};

const MAGIC: &[u8; 4] = b"HMR1";
const KIND_PLAIN: u8 = 0;
const KIND_STREAMED: u8 = 1;
const TAG_DATA: u8 = 1;
const TAG_END: u8 = 2;
/// Calls accepted but not yet taken by the node; beyond it, connections wait.
const INCOMING_CALLS_MAX: usize = 1024;
/// Body frames buffered per incoming stream.
const STREAM_RECEIVE_FRAMES_MAX: usize = 4;
/// Idle connections kept per peer.
const POOL_PER_PEER_MAX: usize = 64;
/// A pooled connection idle longer than this is closed rather than reused.
const POOL_IDLE_MAX: Duration = Duration::from_secs(20);
/// A listener closes a connection that brings no call for this long.
const SERVER_IDLE_MAX: Duration = Duration::from_secs(60);
/// Time allowed for the TCP connect plus the TLS handshake and the opening.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Answers up to this size are copied behind their length and sent as one write.
const ANSWER_COPY_BYTES_MAX: usize = 16 << 10;

/// Size limits that bound what a peer can make this node allocate.
#[derive(Debug, Clone, Copy)]
pub struct NetLimits {
    pub message_bytes_max: u32,
    pub frame_bytes_max: u32,
}

impl Default for NetLimits {
    fn default() -> Self {
        Self {
            message_bytes_max: engine::shard_store::rpc::MESSAGE_BYTES_MAX as u32,
            frame_bytes_max: 16 << 20,
        }
    }
}

/// How connections are secured.
#[derive(Clone)]
pub enum Transport {
    /// Plain TCP with a self-declared caller id: for tests and benchmarks on one host.
    Plain,
    /// Mutual TLS under the cluster CA.
    Tls(Arc<Tls>),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
type Conn = Box<dyn Stream>;

struct Idle {
    conn: Conn,
    since: Instant,
}

pub struct RealNet {
    node: NodeId,
    local: SocketAddr,
    peers: Arc<BTreeMap<NodeId, SocketAddr>>,
    limits: NetLimits,
    transport: Transport,
    pool: Mutex<BTreeMap<NodeId, Vec<Idle>>>,
    incoming: futures::lock::Mutex<mpsc::Receiver<Incoming>>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl Drop for RealNet {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl RealNet {
    /// Listens on `listen` over plain TCP and knows `peers` by address.
    pub async fn bind(
        node: NodeId,
        listen: SocketAddr,
        peers: BTreeMap<NodeId, SocketAddr>,
        limits: NetLimits,
    ) -> io::Result<Self> {
        Self::bind_with(node, listen, peers, limits, Transport::Plain).await
    }

    /// Listens on `listen` with `transport`.
    pub async fn bind_with(
        node: NodeId,
        listen: SocketAddr,
        peers: BTreeMap<NodeId, SocketAddr>,
        limits: NetLimits,
        transport: Transport,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        Ok(Self::serve_on(node, listener, peers, limits, transport))
    }

    /// Serves on an already bound listener.
    pub fn serve_on(
        node: NodeId,
        listener: TcpListener,
        peers: BTreeMap<NodeId, SocketAddr>,
        limits: NetLimits,
        transport: Transport,
    ) -> Self {
        let local = listener
            .local_addr()
            .expect("a bound listener has an address");
        let (tx, rx) = mpsc::channel(INCOMING_CALLS_MAX);
        let acceptor = tokio::spawn(accept_loop(listener, tx, limits, transport.clone()));
        Self {
            node,
            local,
            peers: Arc::new(peers),
            limits,
            transport,
            pool: Mutex::new(BTreeMap::new()),
            incoming: futures::lock::Mutex::new(rx),
            acceptor,
        }
    }

    /// A client-only endpoint (admin tools): it calls but nobody can call it.
    pub async fn client(
        node: NodeId,
        peers: BTreeMap<NodeId, SocketAddr>,
        limits: NetLimits,
        transport: Transport,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let net = Self::serve_on(node, listener, peers, limits, transport);
        net.acceptor.abort();
        Ok(net)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The peers this node knows by address.
    pub fn peers(&self) -> &BTreeMap<NodeId, SocketAddr> {
        &self.peers
    }

    /// A pooled connection to `to` that still looks open, if any.
    fn pooled(&self, to: NodeId) -> Option<Conn> {
        let mut pool = self.pool.lock().expect("pool lock");
        let idle = pool.get_mut(&to)?;
        while let Some(Idle { mut conn, since }) = idle.pop() {
            if since.elapsed() < POOL_IDLE_MAX && still_open(&mut conn) {
                return Some(conn);
            }
        }
        None
    }

    fn put_back(&self, to: NodeId, conn: Conn) {
        let mut pool = self.pool.lock().expect("pool lock");
        let idle = pool.entry(to).or_default();
        if idle.len() < POOL_PER_PEER_MAX {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    async fn connect(&self, to: NodeId) -> Result<Conn, NetError> {
        let addr = *self.peers.get(&to).ok_or(NetError::Unreachable { to })?;
        let unreachable = |_| NetError::Unreachable { to };
        let open = async {
            let stream = TcpStream::connect(addr).await.map_err(unreachable)?;
            stream.set_nodelay(true).map_err(|_| NetError::Broken)?;
            let mut conn: Conn = match &self.transport {
                Transport::Plain => Box::new(stream),
                Transport::Tls(tls) => {
                    let tls_stream = tls
                        .client
                        .connect(tls::server_name(to), stream)
                        .await
                        .map_err(|error| {
                            tracing::warn!(peer = to, %addr, %error, "TLS handshake with peer failed");
                            NetError::Unreachable { to }
                        })?;
                    Box::new(tls_stream)
                }
            };
            let mut opening = MAGIC.to_vec();
            opening.extend_from_slice(&self.node.to_le_bytes());
            conn.write_all(&opening).await.map_err(unreachable)?;
            Ok(conn)
        };
        tokio::time::timeout(HANDSHAKE_TIMEOUT, open)
            .await
            .unwrap_or(Err(NetError::Timeout { to }))
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
        let conn = match self.pooled(to) {
            Some(conn) => conn,
            None => self.connect(to).await?,
        };
        let (answer, conn) = call_on(conn, &request, body, self.limits).await?;
        self.put_back(to, conn);
        Ok(answer)
    }
}

/// Whether an idle connection is still open: nothing may arrive on it unasked, so any
/// readiness (end of stream, an error, stray bytes) means it is done.
fn still_open(conn: &mut Conn) -> bool {
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    matches!(Pin::new(conn).poll_read(&mut cx, &mut buf), Poll::Pending)
}

/// One call on an open connection; gives the connection back when it is clean.
async fn call_on(
    conn: Conn,
    request: &[u8],
    body: Option<BodyStream>,
    limits: NetLimits,
) -> Result<(Bytes, Conn), NetError> {
    let broken = |_| NetError::Broken;
    let mut conn = BufWriter::new(conn);
    let kind = if body.is_some() {
        KIND_STREAMED
    } else {
        KIND_PLAIN
    };
    conn.write_u8(kind).await.map_err(broken)?;
    conn.write_u32_le(request.len() as u32)
        .await
        .map_err(broken)?;
    conn.write_all(request).await.map_err(broken)?;
    if let Some(mut body) = body {
        loop {
            match body.next_frame().await {
                Some(Frame::Data(b)) => {
                    conn.write_u8(TAG_DATA).await.map_err(broken)?;
                    conn.write_u32_le(b.len() as u32).await.map_err(broken)?;
                    conn.write_all(&b).await.map_err(broken)?;
                }
                Some(Frame::End) => {
                    conn.write_u8(TAG_END).await.map_err(broken)?;
                    break;
                }
                // The producer went away mid-body: closing cuts the stream off.
                None => return Err(NetError::Broken),
            }
        }
    }
    conn.flush().await.map_err(broken)?;
    let mut conn = conn.into_inner();
    let answer = read_message(&mut conn, limits.message_bytes_max)
        .await
        .map_err(broken)?;
    Ok((Bytes::from(answer), conn))
}

async fn read_message<R: AsyncRead + Unpin>(r: &mut R, max: u32) -> io::Result<Vec<u8>> {
    let len = r.read_u32_le().await?;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message over the limit",
        ));
    }
    // Into spare capacity: a large answer's buffer is not zeroed before it is filled.
    let mut buf = Vec::with_capacity(len as usize);
    r.take(u64::from(len)).read_to_end(&mut buf).await?;
    if buf.len() != len as usize {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(buf)
}

async fn accept_loop(
    listener: TcpListener,
    calls: mpsc::Sender<Incoming>,
    limits: NetLimits,
    transport: Transport,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let calls = calls.clone();
                let transport = transport.clone();
                tokio::spawn(async move {
                    if let Err(error) = serve_connection(stream, calls, limits, transport).await {
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

fn invalid(reason: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

async fn read_opening<S: AsyncRead + Unpin>(s: &mut S) -> io::Result<NodeId> {
    let mut opening = [0u8; 12];
    s.read_exact(&mut opening).await?;
    if &opening[..4] != MAGIC {
        return Err(invalid("not a hamster connection"));
    }
    Ok(u64::from_le_bytes(
        opening[4..].try_into().expect("8 bytes"),
    ))
}

/// Completes the TLS handshake (if any) and the opening; returns the caller's id, which
/// under TLS its certificate must name.
async fn open_connection(stream: TcpStream, transport: &Transport) -> io::Result<(NodeId, Conn)> {
    let peer = stream.peer_addr()?;
    stream.set_nodelay(true)?;
    match transport {
        Transport::Plain => {
            let mut stream = stream;
            let from = read_opening(&mut stream).await?;
            Ok((from, Box::new(stream)))
        }
        Transport::Tls(tls) => {
            let mut stream = tls.server.accept(stream).await.inspect_err(|error| {
                tracing::warn!(%peer, %error, "refused a connection: TLS handshake failed");
            })?;
            let from = read_opening(&mut stream).await?;
            let named = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .is_some_and(|cert| tls::certificate_names(cert, from));
            if !named {
                tracing::warn!(%peer, claimed = from, "refused a connection: its certificate does not name the node it claims to be");
                return Err(invalid("certificate does not name the caller"));
            }
            Ok((from, Box::new(stream)))
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    mut calls: mpsc::Sender<Incoming>,
    limits: NetLimits,
    transport: Transport,
) -> io::Result<()> {
    let (from, conn) = tokio::time::timeout(HANDSHAKE_TIMEOUT, open_connection(stream, &transport))
        .await
        .map_err(|_| invalid("handshake timed out"))??;
    let (reader, mut writer) = tokio::io::split(conn);
    let mut idle_reader = Some(reader);
    while let Some(mut reader) = idle_reader.take() {
        let kind = match tokio::time::timeout(SERVER_IDLE_MAX, reader.read_u8()).await {
            Err(_) => return Ok(()), // idle: the caller reconnects when it needs to
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(kind) => kind?,
        };
        if kind != KIND_PLAIN && kind != KIND_STREAMED {
            return Err(invalid("not a hamster call"));
        }
        let request = Bytes::from(read_message(&mut reader, limits.message_bytes_max).await?);
        let (reply, answer) = oneshot::channel();
        let (body, pump) = if kind == KIND_STREAMED {
            let (tx, rx) = body_channel(STREAM_RECEIVE_FRAMES_MAX);
            (Some(rx), Some(tokio::spawn(pump_body(reader, tx, limits))))
        } else {
            idle_reader = Some(reader);
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
        let Ok(bytes) = result else {
            if let Some(pump) = pump {
                pump.abort();
            }
            return Ok(()); // the handler dropped the call: the caller sees a broken connection
        };
        write_answer(&mut writer, &bytes).await?;
        match pump {
            None => {}
            // Reuse the connection only if the body was read to its end; a handler that
            // answered early leaves the rest of it unread.
            Some(pump) => {
                let abort = pump.abort_handle();
                match tokio::time::timeout(Duration::from_secs(1), pump).await {
                    Ok(Ok(Some(r))) => idle_reader = Some(r),
                    _ => {
                        abort.abort();
                        return Ok(());
                    }
                }
            }
        }
    }
    Ok(())
}

/// An answer: its length, then its bytes. A small one goes out as one write (one TLS
/// record, one send, one wake-up of the caller), a large one without being copied.
async fn write_answer<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> io::Result<()> {
    let len = (bytes.len() as u32).to_le_bytes();
    if bytes.len() <= ANSWER_COPY_BYTES_MAX {
        let mut one = Vec::with_capacity(len.len() + bytes.len());
        one.extend_from_slice(&len);
        one.extend_from_slice(bytes);
        w.write_all(&one).await?;
    } else {
        w.write_all(&len).await?;
        w.write_all(bytes).await?;
    }
    w.flush().await
}

/// Moves body frames from the socket into the node's body stream and gives the reader
/// back once the end frame arrived. Dropping `tx` without an end frame tells the
/// handler the stream was cut off.
async fn pump_body(
    mut reader: ReadHalf<Conn>,
    mut tx: engine::env::BodySender,
    limits: NetLimits,
) -> Option<ReadHalf<Conn>> {
    loop {
        let tag = reader.read_u8().await.ok()?;
        match tag {
            TAG_DATA => {
                let frame = read_message(&mut reader, limits.frame_bytes_max)
                    .await
                    .ok()?;
                if tx.send(Bytes::from(frame)).await.is_err() {
                    return None;
                }
            }
            TAG_END => {
                let _ = tx.send_frame(Frame::End).await;
                return Some(reader);
            }
            _ => return None,
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
