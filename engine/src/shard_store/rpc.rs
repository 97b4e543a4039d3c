//! Storing and reading shards on other nodes: the wire messages, the serving loop and
//! the client calls. The data path (PUT/GET coordinators, repair) is built on these.
//!
//! A store is one streamed call: the request carries the shard header, the body the
//! shard data in frames of at most `frame_bytes`, and the answer comes only after the
//! holder sealed the shard (fsynced data and directory), so an `Ok` is durable. Any
//! error (including a timeout) leaves the outcome unknown to the caller; the holder
//! never exposes an unsealed shard, and its start-up scan removes leftovers.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::env::{Clock, Env, Net, NetError, NodeId, body_channel};
use crate::shard_store::{SealedShard, ShardError, ShardHeader, ShardId, ShardStore};
use crate::wire::{self, Tag, decode};

pub use crate::wire::MESSAGE_BYTES_MAX;
/// Frames of a shard body buffered per transfer (the window is this times frame size).
pub const TRANSFER_WINDOW_FRAMES_MAX: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Store a shard; the data follows as the streamed body.
    Store { header: ShardHeader },
    /// Read verified shard bytes.
    Read { id: ShardId, offset: u64, len: u64 },
    /// Verify a whole shard; answers its sha256.
    Verify { id: ShardId },
    /// List sealed shards.
    List,
    /// Remove a sealed shard (a write below its floor, an orphan); gone is fine.
    Remove { id: ShardId },
    /// Is this holder up? (Repair's liveness probe.)
    Ping,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Stored(SealedShard),
    /// Encoded as one byte string, not a sequence of numbers.
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
    Verified {
        sha256: [u8; 32],
    },
    Ids(Vec<ShardId>),
    Removed,
    Failed(RemoteError),
    Pong,
}

/// A failure reported by the holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RemoteError {
    #[error("shard not found")]
    NotFound,
    /// The holder found the shard corrupt; it must not be used, and repair should act.
    #[error("shard corrupt: {0}")]
    Corrupt(String),
    /// The request was malformed or inconsistent (wrong length, bad range).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The holder's disk failed (EIO, full).
    #[error("holder disk error: {0}")]
    Disk(String),
    /// The body stream was cut off before its end.
    #[error("body stream broken")]
    Broken,
}

/// Why a client call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("remote: {0}")]
    Remote(#[from] RemoteError),
    /// The answer could not be decoded or was of the wrong kind.
    #[error("malformed answer")]
    Malformed,
}

impl From<ShardError> for RemoteError {
    fn from(e: ShardError) -> Self {
        match e {
            ShardError::NotFound(_) => Self::NotFound,
            ShardError::Corrupt { .. } | ShardError::Truncated { .. } => {
                Self::Corrupt(e.to_string())
            }
            ShardError::OutOfRange { .. } | ShardError::LengthMismatch { .. } => {
                Self::BadRequest(e.to_string())
            }
            ShardError::Disk(d) => Self::Disk(d.to_string()),
        }
    }
}

/// A shard request as it goes on the wire: the tag, then the request.
fn tagged(request: &Request) -> Bytes {
    wire::request(Tag::Shard, request)
}

/// Answers one shard call (the tag already stripped).
pub async fn handle<E: Env>(
    env: &E,
    store: &ShardStore<E::Disk>,
    request: &[u8],
    body: Option<crate::env::BodyStream>,
) -> Response {
    handle_request(env, store, request, body).await
}

async fn handle_request<E: Env>(
    env: &E,
    store: &ShardStore<E::Disk>,
    request: &[u8],
    body: Option<crate::env::BodyStream>,
) -> Response {
    let Some(request) = decode::<Request>(request) else {
        return Response::Failed(RemoteError::BadRequest("undecodable request".into()));
    };
    let result = match (request, body) {
        (Request::Store { header }, Some(body)) => store_body(env, store, header, body)
            .await
            .map(Response::Stored),
        (Request::Store { .. }, None) => Err(RemoteError::BadRequest("store without body".into())),
        (Request::Read { id, offset, len }, _) => store
            .read_range(&id, offset, len)
            .await
            .map(Response::Data)
            .map_err(RemoteError::from),
        (Request::Verify { id }, _) => store
            .verify(&id)
            .await
            .map(|(_, sha256)| Response::Verified { sha256 })
            .map_err(RemoteError::from),
        (Request::List, _) => store
            .list()
            .await
            .map(Response::Ids)
            .map_err(RemoteError::from),
        (Request::Remove { id }, _) => match store.remove(&id).await {
            Ok(()) | Err(ShardError::NotFound(_)) => Ok(Response::Removed),
            Err(e) => Err(RemoteError::from(e)),
        },
        (Request::Ping, _) => Ok(Response::Pong),
    };
    result.unwrap_or_else(Response::Failed)
}

async fn store_body<E: Env>(
    env: &E,
    store: &ShardStore<E::Disk>,
    header: ShardHeader,
    mut body: crate::env::BodyStream,
) -> Result<SealedShard, RemoteError> {
    if header.block_size_bytes == 0 {
        return Err(RemoteError::BadRequest("zero block size".into()));
    }
    let mut writer = store.create(header, env.rng()).await?;
    let outcome = loop {
        match body.next().await {
            Ok(Some(frame)) => {
                if let Err(e) = writer.write(&frame).await {
                    break Err(RemoteError::from(e));
                }
            }
            Ok(None) => break Ok(()),
            Err(_) => break Err(RemoteError::Broken),
        }
    };
    match outcome {
        Ok(()) => {
            let began = env.clock().now();
            let sealed = writer.seal().await;
            let now = env.clock().now();
            store
                .metrics()
                .stage(crate::metrics::Stage::SealLocal, began, now);
            Ok(sealed?)
        }
        Err(e) => {
            // Best effort: the start-up scan removes what this cannot.
            let _ = writer.abort().await;
            Err(e)
        }
    }
}

async fn call<E: Env>(
    env: &E,
    to: NodeId,
    request: &Request,
    timeout: Duration,
) -> Result<Response, CallError> {
    let answer = env.net().call(to, tagged(request), timeout).await?;
    decode::<Response>(&answer).ok_or(CallError::Malformed)
}

/// Stores `data` as shard `header.id` on node `to`; `Ok` means sealed there.
pub async fn store<E: Env>(
    env: &E,
    to: NodeId,
    header: ShardHeader,
    data: Bytes,
    frame_bytes: usize,
    timeout: Duration,
) -> Result<SealedShard, CallError> {
    assert!(frame_bytes > 0, "frame size");
    let (mut tx, rx) = body_channel(TRANSFER_WINDOW_FRAMES_MAX);
    let produce = async move {
        let mut pos = 0;
        while pos < data.len() {
            let end = (pos + frame_bytes).min(data.len());
            if tx.send(data.slice(pos..end)).await.is_err() {
                return;
            }
            pos = end;
        }
        let _ = tx.finish().await;
    };
    let request = tagged(&Request::Store { header });
    let send = env.net().call_streamed(to, request, rx, timeout);
    let ((), answer) = futures::join!(produce, send);
    match decode::<Response>(&answer?) {
        Some(Response::Stored(sealed)) if sealed.id == header.id => Ok(sealed),
        Some(Response::Failed(e)) => Err(e.into()),
        _ => Err(CallError::Malformed),
    }
}

/// Reads verified bytes of a shard on node `to`: a slice of the answer, not a copy.
pub async fn read<E: Env>(
    env: &E,
    to: NodeId,
    id: ShardId,
    offset: u64,
    len: u64,
    timeout: Duration,
) -> Result<Bytes, CallError> {
    let request = tagged(&Request::Read { id, offset, len });
    let answer = env.net().call(to, request, timeout).await?;
    if let Some(data) = data_of(&answer) {
        return match data.len() as u64 == len {
            true => Ok(data),
            false => Err(CallError::Malformed),
        };
    }
    match decode::<Response>(&answer) {
        Some(Response::Failed(e)) => Err(e.into()),
        _ => Err(CallError::Malformed),
    }
}

/// [`Response::Data`]'s variant index in the encoding.
const DATA_VARIANT: u32 = 1;

/// The bytes of an encoded [`Response::Data`], sliced out of it: bincode writes the
/// variant index and the length (varints), then the bytes. Decoding it as a `Response`
/// would copy them (a quarter of a 1 MiB GET's bytes per remote shard).
fn data_of(answer: &Bytes) -> Option<Bytes> {
    let ((variant, len), head) = wire::decode_prefix::<(u32, u64)>(answer)?;
    let end = head.checked_add(usize::try_from(len).ok()?)?;
    (variant == DATA_VARIANT && end == answer.len()).then(|| answer.slice(head..end))
}

/// Verifies a whole shard on node `to`; answers its sha256.
pub async fn verify<E: Env>(
    env: &E,
    to: NodeId,
    id: ShardId,
    timeout: Duration,
) -> Result<[u8; 32], CallError> {
    match call(env, to, &Request::Verify { id }, timeout).await? {
        Response::Verified { sha256 } => Ok(sha256),
        Response::Failed(e) => Err(e.into()),
        _ => Err(CallError::Malformed),
    }
}

/// Whether node `to` answers a shard call within `timeout`.
pub async fn ping<E: Env>(env: &E, to: NodeId, timeout: Duration) -> bool {
    matches!(
        call(env, to, &Request::Ping, timeout).await,
        Ok(Response::Pong)
    )
}

/// Removes shard `id` on node `to` (already gone counts as removed).
pub async fn remove<E: Env>(
    env: &E,
    to: NodeId,
    id: ShardId,
    timeout: Duration,
) -> Result<(), CallError> {
    match call(env, to, &Request::Remove { id }, timeout).await? {
        Response::Removed => Ok(()),
        Response::Failed(e) => Err(e.into()),
        _ => Err(CallError::Malformed),
    }
}

/// Opens a streamed store of shard `header.id` on node `to`: frames sent on the
/// returned sender become its data; the receiver answers once the holder sealed it
/// (after the sender's `finish`). Dropping the sender unfinished aborts the store (the
/// holder removes its temporary). `timeout` bounds the whole transfer.
pub fn open_store<E: Env>(
    env: &E,
    to: NodeId,
    header: ShardHeader,
    timeout: Duration,
) -> (
    crate::env::BodySender,
    futures::channel::oneshot::Receiver<Result<SealedShard, CallError>>,
) {
    let (tx, rx) = body_channel(TRANSFER_WINDOW_FRAMES_MAX);
    let (answer_tx, answer_rx) = futures::channel::oneshot::channel();
    let task_env = env.clone();
    env.spawn(async move {
        let request = tagged(&Request::Store { header });
        let answer = task_env.net().call_streamed(to, request, rx, timeout).await;
        let result = match answer.map(|a| decode::<Response>(&a)) {
            Err(e) => Err(CallError::Net(e)),
            Ok(Some(Response::Stored(sealed))) if sealed.id == header.id => Ok(sealed),
            Ok(Some(Response::Failed(e))) => Err(e.into()),
            Ok(_) => Err(CallError::Malformed),
        };
        let _ = answer_tx.send(result);
    });
    (tx, answer_rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_answers_are_sliced_out_whole_at_every_length_encoding() {
        // Varint lengths take 1, 3 and 5 bytes across these.
        for n in [0usize, 1, 250, 251, 65_535, 65_536, 300_000] {
            let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let answer = wire::encode(&Response::Data(data.clone()));
            assert_eq!(data_of(&answer).as_deref(), Some(&data[..]), "{n} bytes");
            // Cut short or with bytes after it: not a Data answer.
            let short = answer.slice(..answer.len() - 1);
            let mut long = answer.to_vec();
            long.push(0);
            assert_eq!(data_of(&short), None);
            assert_eq!(data_of(&Bytes::from(long)), None);
        }
        for other in [
            Response::Removed,
            Response::Pong,
            Response::Failed(RemoteError::NotFound),
        ] {
            assert_eq!(data_of(&wire::encode(&other)), None, "{other:?}");
        }
    }
}
