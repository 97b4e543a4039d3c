//! SimNet: message and streamed RPC between simulated nodes.
//!
//! Fault model: each message takes a random latency (so messages reorder); a message
//! may be lost (the caller then times out); a link may be cut one way or both ways
//! (partition) or clogged (messages wait until it clears); a crashed node receives
//! nothing and its in-flight calls are dropped. A streamed body travels frame by frame;
//! a cut link or a lost frame breaks the stream, as a reset TCP connection would. All
//! delays run on the caller's task, so a crashed caller's messages vanish with it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use engine::env::{BodyStream, Frame, Incoming, Net, NetError, NodeId, body_channel};
use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use rand::Rng as _;

use crate::world::World;

/// Network behaviour of one run.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub latency_min: Duration,
    pub latency_max: Duration,
    /// Probability that one message (or one stream frame) is lost.
    pub loss_rate: f64,
    /// Link bandwidth, for the time a body frame takes.
    pub bytes_per_s: u64,
    /// A crashed node's open calls fail at their callers (its process died and its
    /// host reset the connections) instead of going silent (the host lost power).
    pub crash_resets_calls: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            latency_min: Duration::from_micros(100),
            latency_max: Duration::from_millis(2),
            loss_rate: 0.0,
            bytes_per_s: 1 << 30,
            crash_resets_calls: false,
        }
    }
}

/// Frames buffered on the receiving side of a stream.
const STREAM_RECEIVE_FRAMES_MAX: usize = 4;
/// How often a clogged link is checked again.
const CLOG_POLL: Duration = Duration::from_millis(5);

pub(crate) struct NetState {
    pub config: NetConfig,
    inboxes: BTreeMap<NodeId, (u64, mpsc::UnboundedSender<Incoming>)>,
    /// Directed links that drop everything.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Directed links that hold everything back.
    clogged: BTreeSet<(NodeId, NodeId)>,
}

impl NetState {
    pub fn new(config: NetConfig) -> Self {
        Self {
            config,
            inboxes: BTreeMap::new(),
            cut: BTreeSet::new(),
            clogged: BTreeSet::new(),
        }
    }
    pub fn detach(&mut self, node: NodeId) {
        self.inboxes.remove(&node);
    }
    fn incarnation(&self, node: NodeId) -> Option<u64> {
        self.inboxes.get(&node).map(|(i, _)| *i)
    }
}

/// One incarnation's view of the network.
pub struct SimNet {
    world: World,
    node: NodeId,
    inbox: futures::lock::Mutex<mpsc::UnboundedReceiver<Incoming>>,
}

impl SimNet {
    pub(crate) fn attach(world: World, node: NodeId, incarnation: u64) -> Self {
        let (tx, rx) = mpsc::unbounded();
        world.lock().net.inboxes.insert(node, (incarnation, tx));
        Self {
            world,
            node,
            inbox: futures::lock::Mutex::new(rx),
        }
    }
}

/// Fault controls, used by the fault schedule.
impl World {
    /// Cuts the link `from -> to` (one way).
    pub fn cut(&self, from: NodeId, to: NodeId) {
        let mut w = self.lock();
        if w.net.cut.insert((from, to)) {
            w.stats.partitions += 1;
            w.trace(format_args!("cut {from}->{to}"));
        }
    }
    /// Cuts both directions between every node of `a` and every node of `b`.
    pub fn partition(&self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                self.cut(x, y);
                self.cut(y, x);
            }
        }
    }
    pub fn clog(&self, from: NodeId, to: NodeId) {
        let mut w = self.lock();
        if w.net.clogged.insert((from, to)) {
            w.stats.clogs += 1;
            w.trace(format_args!("clog {from}->{to}"));
        }
    }
    /// Removes every cut and clog.
    pub fn heal_network(&self) {
        let mut w = self.lock();
        w.net.cut.clear();
        w.net.clogged.clear();
        w.trace(format_args!("heal network"));
    }
    pub fn set_loss_rate(&self, rate: f64) {
        self.lock().net.config.loss_rate = rate;
    }
}

enum Hop {
    Delivered,
    Lost,
}

impl SimNet {
    fn latency(&self) -> Duration {
        let mut w = self.world.lock();
        let (lo, hi) = (w.net.config.latency_min, w.net.config.latency_max);
        let span = (hi.saturating_sub(lo)).as_nanos() as u64;
        lo + Duration::from_nanos(w.rng.gen_range(0..=span))
    }

    fn frame_time(&self, bytes: usize) -> Duration {
        let w = self.world.lock();
        Duration::from_nanos(bytes as u64 * 1_000_000_000 / w.net.config.bytes_per_s.max(1))
    }

    /// Waits out a clog, then decides whether a message on `from -> to` arrives.
    async fn hop(&self, from: NodeId, to: NodeId, what: &str) -> Hop {
        loop {
            let clogged = self.world.lock().net.clogged.contains(&(from, to));
            if !clogged {
                break;
            }
            madsim::time::sleep(CLOG_POLL).await;
        }
        let mut w = self.world.lock();
        let loss = w.net.config.loss_rate;
        if w.net.cut.contains(&(from, to)) || w.chance(loss) {
            w.stats.messages_dropped += 1;
            w.trace(format_args!("lost {what} {from}->{to}"));
            Hop::Lost
        } else {
            Hop::Delivered
        }
    }

    /// Delivers a call to `to`'s inbox; `None` when lost or `to` is down (an error
    /// instead when `to` is down and refuses connections: `crash_resets_calls`).
    async fn deliver(
        &self,
        to: NodeId,
        request: Bytes,
        body: Option<BodyStream>,
    ) -> Option<Result<(u64, oneshot::Receiver<Bytes>), NetError>> {
        crate::world::pause(&self.world, self.latency()).await;
        if let Hop::Lost = self.hop(self.node, to, "request").await {
            return None;
        }
        let (reply, answer) = oneshot::channel();
        let mut w = self.world.lock();
        let (incarnation, inbox) = match w.net.inboxes.get(&to) {
            Some(found) => found.clone(),
            None if w.net.config.crash_resets_calls => {
                // Nothing listens there: the connection is refused.
                w.trace(format_args!("refused {}->{to}", self.node));
                return Some(Err(NetError::Unreachable { to }));
            }
            None => return None,
        };
        let len = request.len();
        let incoming = Incoming {
            from: self.node,
            request,
            body,
            reply,
        };
        if inbox.unbounded_send(incoming).is_err() {
            // The node is up but its process stopped listening (its main ended).
            if w.net.config.crash_resets_calls {
                w.trace(format_args!("refused {}->{to}", self.node));
                return Some(Err(NetError::Unreachable { to }));
            }
            return None;
        }
        w.trace(format_args!("deliver {}->{to} {len}B", self.node));
        Some(Ok((incarnation, answer)))
    }

    /// Waits for the answer and carries it back; pending forever if it never comes
    /// (the caller's timeout decides), unless the callee died and its connections are
    /// reset (`crash_resets_calls`).
    async fn answer(
        &self,
        to: NodeId,
        answer: oneshot::Receiver<Bytes>,
    ) -> Result<Bytes, NetError> {
        let Ok(bytes) = answer.await else {
            if self.world.lock().net.config.crash_resets_calls {
                crate::world::pause(&self.world, self.latency()).await;
                self.broken(to);
                return Err(NetError::Broken);
            }
            return futures::future::pending().await;
        };
        crate::world::pause(&self.world, self.latency()).await;
        if let Hop::Lost = self.hop(to, self.node, "reply").await {
            return futures::future::pending().await;
        }
        Ok(bytes)
    }

    async fn call_inner(&self, to: NodeId, request: Bytes) -> Result<Bytes, NetError> {
        let (_, answer) = match self.deliver(to, request, None).await {
            Some(delivered) => delivered?,
            None => return futures::future::pending().await,
        };
        self.answer(to, answer).await
    }

    async fn streamed_inner(
        &self,
        to: NodeId,
        request: Bytes,
        mut body: BodyStream,
    ) -> Result<Bytes, NetError> {
        let (mut tx, rx) = body_channel(STREAM_RECEIVE_FRAMES_MAX);
        let (incarnation, answer) = match self.deliver(to, request, Some(rx)).await {
            Some(delivered) => delivered?,
            None => return futures::future::pending().await,
        };
        loop {
            let frame = body.next_frame().await;
            let bytes = match &frame {
                Some(Frame::Data(b)) => b.len(),
                _ => 0,
            };
            crate::world::pause(&self.world, self.frame_time(bytes)).await;
            let alive = self.world.lock().net.incarnation(to) == Some(incarnation);
            let lost = matches!(self.hop(self.node, to, "frame").await, Hop::Lost);
            if !alive || lost {
                self.broken(to);
                return Err(NetError::Broken);
            }
            match frame {
                Some(Frame::Data(b)) => {
                    if tx.send(b).await.is_err() {
                        break;
                    }
                }
                Some(Frame::End) => {
                    let _ = tx.finish().await;
                    break;
                }
                // The local producer went away mid-body: the stream is cut off.
                None => {
                    self.broken(to);
                    return Err(NetError::Broken);
                }
            }
        }
        self.answer(to, answer).await
    }

    fn broken(&self, to: NodeId) {
        let mut w = self.world.lock();
        w.stats.streams_broken += 1;
        w.trace(format_args!("stream broken {}->{to}", self.node));
    }
}

impl Net for SimNet {
    async fn call(&self, to: NodeId, request: Bytes, timeout: Duration) -> Result<Bytes, NetError> {
        engine::env::timeout(&crate::SimClock, timeout, self.call_inner(to, request))
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
        engine::env::timeout(
            &crate::SimClock,
            timeout,
            self.streamed_inner(to, request, body),
        )
        .await
        .unwrap_or(Err(NetError::Timeout { to }))
    }

    async fn accept(&self) -> Option<Incoming> {
        self.inbox.lock().await.next().await
    }
}
