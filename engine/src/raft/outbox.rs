//! Raft messages to each peer, in order and in batches.
//!
//! A message sent as its own call (one spawned task each) can overtake the one before
//! it: under load the calls to a peer run on several pooled connections at once. A
//! follower that receives append N+1 before append N rejects it, and the leader falls
//! back to probing one append per round trip, so the commit rate stops growing with
//! load. Here each peer has one queue and at most one call in flight: a drain task sends
//! everything queued (up to [`BATCH_BYTES_MAX`]) as one `Tag::RaftBatch` call, waits for
//! the peer to take it, and sends what queued meanwhile. The queue is bounded; beyond
//! it, and after a failed call, messages are dropped (Raft resends what matters).
//!
//! A batch is a sequence of (u32 little-endian length, protobuf message).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::Message;

use crate::env::{Env, Net, NodeId};
use crate::wire::{self, Tag};

/// Messages queued for one peer; beyond it new ones are dropped.
const QUEUE_MESSAGES_MAX: usize = 4096;
/// A batch holds at least one message, and more while under this many bytes.
const BATCH_BYTES_MAX: usize = 4 << 20;
const CALL_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Queue {
    messages: Vec<Vec<u8>>,
    /// A drain task is running for this peer.
    draining: bool,
}

pub(super) struct Outbox<E: Env> {
    env: E,
    peers: Arc<Mutex<BTreeMap<NodeId, Queue>>>,
}

impl<E: Env> Outbox<E> {
    pub(super) fn new(env: E) -> Self {
        Self {
            env,
            peers: Arc::default(),
        }
    }

    /// Queues `message` for its recipient, starting a drain task if none runs.
    pub(super) fn send(&self, message: &Message) {
        let to = message.to;
        let encoded = message.write_to_bytes().expect("raft messages encode");
        let start = {
            let mut peers = self.peers.lock().expect("outbox lock");
            let queue = peers.entry(to).or_default();
            if queue.messages.len() >= QUEUE_MESSAGES_MAX {
                return;
            }
            queue.messages.push(encoded);
            !std::mem::replace(&mut queue.draining, true)
        };
        if start {
            let (env, peers) = (self.env.clone(), self.peers.clone());
            self.env.spawn(drain(env, peers, to));
        }
    }
}

async fn drain<E: Env>(env: E, peers: Arc<Mutex<BTreeMap<NodeId, Queue>>>, to: NodeId) {
    loop {
        let batch = {
            let mut peers = peers.lock().expect("outbox lock");
            let queue = peers.entry(to).or_default();
            if queue.messages.is_empty() {
                queue.draining = false;
                return;
            }
            let (mut take, mut bytes) = (0, 0);
            for m in &queue.messages {
                if take > 0 && bytes + m.len() > BATCH_BYTES_MAX {
                    break;
                }
                take += 1;
                bytes += 4 + m.len();
            }
            encode_batch(queue.messages.drain(..take))
        };
        if env.net().call(to, batch, CALL_TIMEOUT).await.is_err() {
            // The peer is down or slow: what queued meanwhile is stale.
            peers
                .lock()
                .expect("outbox lock")
                .entry(to)
                .or_default()
                .messages
                .clear();
        }
    }
}

fn encode_batch(messages: impl Iterator<Item = Vec<u8>>) -> bytes::Bytes {
    let mut payload = Vec::new();
    for m in messages {
        payload.extend_from_slice(&(m.len() as u32).to_le_bytes());
        payload.extend_from_slice(&m);
    }
    wire::raw_request(Tag::RaftBatch, &payload)
}

/// The messages of a batch, in order; `None` if any is cut short or does not parse.
pub fn decode_batch(mut payload: &[u8]) -> Option<Vec<Message>> {
    let mut messages = Vec::new();
    while !payload.is_empty() {
        let (len, rest) = payload.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        messages.push(Message::parse_from_bytes(&rest[..len]).ok()?);
        payload = &rest[len..];
    }
    Some(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(to: u64, index: u64) -> Message {
        Message {
            to,
            index,
            ..Default::default()
        }
    }

    #[test]
    fn a_batch_round_trips_in_order_and_a_cut_one_is_refused() {
        let ms: Vec<_> = (0..5).map(|i| message(2, i)).collect();
        let bytes = encode_batch(ms.iter().map(|m| m.write_to_bytes().unwrap()));
        let (tag, payload) = wire::split(&bytes).unwrap();
        assert_eq!(tag, Tag::RaftBatch);
        let back = decode_batch(payload).unwrap();
        assert_eq!(
            back.iter().map(|m| m.index).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert!(decode_batch(&payload[..payload.len() - 1]).is_none());
        assert!(decode_batch(&[9, 0, 0]).is_none());
        assert_eq!(decode_batch(&[]).unwrap().len(), 0);
    }
}
