//! What goes between nodes and into stored records: the message tags of a node's one
//! Net endpoint ([`Tag`]) and the one bincode encoding every message and record uses.
//!
//! A request on the wire is one tag byte, then its payload: bincode of the service's
//! request type, or for Raft a protobuf message. Messages from peers decode with a size
//! limit ([`MESSAGE_BYTES_MAX`]); stored state (metadata records, snapshot frames whose
//! crc was checked first) decodes without one.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest message the decoder accepts; bounds memory against a malformed peer.
pub const MESSAGE_BYTES_MAX: usize = 16 << 20;

/// The service a request is for: the first byte of every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Tag {
    /// Shard store, read, verify, remove, ping (`shard_store::rpc`).
    Shard = 0,
    /// One Raft message (protobuf), one way: what 0.3 nodes send.
    Raft = 1,
    /// A proposal forwarded from a follower to the leader (`raft::forward`).
    Propose = 2,
    /// A client or admin request (`node::client`).
    Client = 3,
    /// A Raft snapshot: the message, then the state as the streamed body.
    RaftSnapshot = 4,
    /// An S3 request (`s3::rpc`).
    S3 = 5,
    /// Raft messages to one peer, in the order sent (`raft::outbox`), one way.
    RaftBatch = 6,
}

impl Tag {
    pub const ALL: [Tag; 7] = [
        Tag::Shard,
        Tag::Raft,
        Tag::Propose,
        Tag::Client,
        Tag::RaftSnapshot,
        Tag::S3,
        Tag::RaftBatch,
    ];

    pub fn of(byte: u8) -> Option<Tag> {
        Self::ALL.into_iter().find(|t| *t as u8 == byte)
    }
}

fn message_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MESSAGE_BYTES_MAX>()
}

/// A message's bincode.
pub fn encode<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(bincode::serde::encode_to_vec(value, message_config()).expect("encodable message"))
}

/// A message from a peer; `None` when it does not decode or is over the limit.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    bincode::serde::decode_from_slice(bytes, message_config())
        .ok()
        .map(|(v, _)| v)
}

/// The start of a message from a peer: a value of type `T` decoded from its first bytes,
/// and how many bytes that took.
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Option<(T, usize)> {
    bincode::serde::decode_from_slice(bytes, message_config()).ok()
}

/// A stored record's bincode (no size limit: state can be large).
pub fn encode_record<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("records encode")
}

pub fn decode_record<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .ok()
        .map(|(v, _)| v)
}

/// A request: the tag, then the bincode of `value`.
pub fn request<T: Serialize>(tag: Tag, value: &T) -> Bytes {
    raw_request(tag, &encode(value))
}

/// A request whose payload is already encoded (Raft's protobuf).
pub fn raw_request(tag: Tag, payload: &[u8]) -> Bytes {
    let mut bytes = Vec::with_capacity(1 + payload.len());
    bytes.push(tag as u8);
    bytes.extend_from_slice(payload);
    Bytes::from(bytes)
}

/// A request's tag and payload; `None` for an empty request or an unknown tag.
pub fn split(request: &[u8]) -> Option<(Tag, &[u8])> {
    let (&tag, payload) = request.split_first()?;
    Some((Tag::of(tag)?, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_unknown_bytes_are_refused() {
        for tag in Tag::ALL {
            let r = request(tag, &7u32);
            let (t, payload) = split(&r).unwrap();
            assert_eq!(t, tag);
            assert_eq!(decode::<u32>(payload), Some(7));
        }
        assert_eq!(split(&[7, 1, 2]), None);
        assert_eq!(split(&[]), None);
    }

    #[test]
    fn an_oversized_message_does_not_decode() {
        let big = vec![0u8; MESSAGE_BYTES_MAX + 1];
        let bytes = encode_record(&serde_bytes::ByteBuf::from(big));
        assert!(decode::<serde_bytes::ByteBuf>(&bytes).is_none());
        assert!(decode_record::<serde_bytes::ByteBuf>(&bytes).is_some());
    }
}
