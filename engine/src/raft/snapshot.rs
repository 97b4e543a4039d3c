//! Snapshots as streams: the state machine goes to a lagging or new member in frames
//! of records behind the Raft message, never as one message, so its size is bounded by
//! the disk, not by a message limit or memory.
//!
//! Sender (the leader): raft-rs asks for a snapshot and gets only its metadata (the
//! store's applied mark). When the message goes out, [`send`] opens one read
//! transaction, rewrites the metadata to that transaction's mark (never older than
//! what raft-rs was told: the applied index only grows on a leader), and streams the
//! transaction's records. A snapshot newer than raft-rs expects is sound: it is
//! committed state, and the follower's answer carries the index it reached.
//!
//! Receiver: [`stage`] writes the frames to `<dir>/incoming/<nonce>.snap` as they come
//! (`[len u32][crc32 u32][bincode Vec<Record>]`); only a complete stream is stepped into
//! Raft, with the file's name as the snapshot's data. When raft-rs accepts it, the
//! driver [`install`]s the file into the store's `incoming.*` tables and swaps them in
//! with one durable commit; a crash before that commit leaves the old state and a
//! staged file that the next start removes ([`clear_staged`]).

use std::sync::Arc;
use std::time::Duration;

use futures::future::Either;
use protobuf::Message as _;
use raft::eraftpb::Message;

use crate::env::{Disk, DiskError, Env, Net, body_channel, timeout};
use crate::meta::store::{Cursor, Mark, MetaStore, Record, StoreError};
use crate::raft::durable::LogError;

/// Encoded records per frame, roughly.
pub const FRAME_BYTES: usize = 1 << 20;
/// Largest frame accepted from a staged file; anything larger is damage.
const STAGED_FRAME_BYTES_MAX: u32 = 64 << 20;
/// Frames in flight between the store and the connection.
const WINDOW_FRAMES: usize = 2;
/// Time allowed for one whole snapshot transfer, however large.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(3600);
/// A transfer that moves no frame, or gets no answer after its last, for this long is
/// abandoned (a recipient that died mid-stream), and Raft sends again later.
pub const PROGRESS_TIMEOUT: Duration = Duration::from_secs(10);

fn staged_dir(dir: &str) -> String {
    format!("{dir}/incoming")
}

/// The raft-rs snapshot metadata of `mark`, without data.
pub(crate) fn metadata(mark: &Mark) -> raft::eraftpb::Snapshot {
    let mut snap = raft::eraftpb::Snapshot::default();
    let meta = snap.mut_metadata();
    meta.index = mark.index;
    meta.term = mark.term;
    meta.set_conf_state(mark.conf.clone());
    snap
}

/// Streams the store behind `message` (a MsgSnapshot) to its recipient; whether the
/// recipient took the whole stream.
pub(crate) async fn send<E: Env>(env: &E, store: Arc<MetaStore>, mut message: Message) -> bool {
    let disk = env.disk().clone();
    let opened = disk
        .blocking(move || -> Result<_, StoreError> {
            let reader = store.reader()?;
            let mark = reader.mark()?;
            Ok((Arc::new(reader), mark))
        })
        .await;
    let (reader, mark) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            tracing::warn!(%error, "snapshot not sent: the store cannot be read");
            return false;
        }
    };
    let to = message.to;
    message.set_snapshot(metadata(&mark));
    let header = crate::wire::raw_request(
        crate::wire::Tag::RaftSnapshot,
        &message.write_to_bytes().expect("raft messages encode"),
    );
    let (mut tx, rx) = body_channel(WINDOW_FRAMES);
    let clock = env.clock();
    let produce = async move {
        let mut cursor = Cursor::Start;
        while cursor != Cursor::Done {
            let (r, at) = (reader.clone(), cursor.clone());
            let chunk = disk
                .blocking(move || r.export_chunk(&at, FRAME_BYTES))
                .await;
            let (records, next) = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    tracing::warn!(%error, "snapshot stream cut: the store cannot be read");
                    return false;
                }
            };
            if !records.is_empty() {
                let sent = timeout(clock, PROGRESS_TIMEOUT, tx.send(encode(&records).into()));
                if !matches!(sent.await, Ok(Ok(()))) {
                    return false;
                }
            }
            cursor = next;
        }
        matches!(
            timeout(clock, PROGRESS_TIMEOUT, tx.finish()).await,
            Ok(Ok(()))
        )
    };
    let call = env.net().call_streamed(to, header, rx, TRANSFER_TIMEOUT);
    let (produce, call) = (std::pin::pin!(produce), std::pin::pin!(call));
    match futures::future::select(produce, call).await {
        Either::Left((true, call)) => {
            matches!(timeout(clock, PROGRESS_TIMEOUT, call).await, Ok(Ok(_)))
        }
        // The stream failed, or the recipient answered before it ended: not taken.
        Either::Left((false, _)) | Either::Right(_) => false,
    }
}

fn encode(records: &[Record]) -> Vec<u8> {
    crate::wire::encode_record(&records)
}

/// Writes a received stream to a staged file under `dir`; returns its path once the
/// stream ended cleanly. A cut-off stream leaves nothing behind.
pub async fn stage<D: Disk>(
    disk: &D,
    dir: &str,
    nonce: u64,
    mut body: crate::env::BodyStream,
) -> Result<String, LogError> {
    let path = format!("{}/{nonce:016x}.snap", staged_dir(dir));
    let written = async {
        // An empty state still stages a file, so that `install` finds one.
        disk.write_at(&path, 0, &[]).await?;
        let mut offset = 0u64;
        while let Some(frame) = body.next().await.map_err(|_| DiskError::Other {
            path: path.clone(),
            message: "snapshot stream cut off".into(),
        })? {
            let mut record = Vec::with_capacity(8 + frame.len());
            record.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            record.extend_from_slice(&crc32fast::hash(&frame).to_le_bytes());
            record.extend_from_slice(&frame);
            disk.write_at(&path, offset, &record).await?;
            offset += record.len() as u64;
        }
        Ok::<_, DiskError>(())
    };
    match written.await {
        Ok(()) => Ok(path),
        Err(e) => {
            let _ = disk.remove(&path).await;
            Err(e.into())
        }
    }
}

/// Installs the staged file `path` as the state at `mark` and removes the file.
pub(crate) async fn install<D: Disk>(
    disk: &D,
    store: &Arc<MetaStore>,
    path: &str,
    mark: &Mark,
) -> Result<(), LogError> {
    let corrupt = |offset: u64, reason: &str| LogError::Corrupt {
        file: path.to_string(),
        offset,
        reason: reason.to_string(),
    };
    let s = store.clone();
    disk.blocking(move || s.begin_install()).await?;
    let len = disk.len(path).await?;
    let mut offset = 0;
    while offset < len {
        let head = disk.read_at(path, offset, 8.min(len - offset)).await?;
        if head.len() < 8 {
            return Err(corrupt(offset, "staged snapshot cut short"));
        }
        let frame_len = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
        if frame_len > STAGED_FRAME_BYTES_MAX || offset + 8 + u64::from(frame_len) > len {
            return Err(corrupt(offset, "staged snapshot frame out of range"));
        }
        let frame = disk.read_at(path, offset + 8, u64::from(frame_len)).await?;
        if crc32fast::hash(&frame) != crc {
            return Err(corrupt(offset, "staged snapshot frame checksum mismatch"));
        }
        let records: Vec<Record> = crate::wire::decode_record(&frame)
            .ok_or_else(|| corrupt(offset, "staged snapshot frame does not decode"))?;
        let s = store.clone();
        disk.blocking(move || s.install_chunk(&records)).await?;
        offset += 8 + u64::from(frame_len);
    }
    let (s, m) = (store.clone(), mark.clone());
    disk.blocking(move || s.finish_install(&m)).await?;
    remove(disk, path).await;
    Ok(())
}

/// Removes a staged file; one that cannot be removed is left for the next start.
pub(crate) async fn remove<D: Disk>(disk: &D, path: &str) {
    match disk.remove(path).await {
        Ok(()) | Err(DiskError::NotFound { .. }) => {}
        Err(error) => tracing::warn!(%error, "staged snapshot not removed"),
    }
}

/// Removes every staged file (at start: none of them can be installed any more).
pub(crate) async fn clear_staged<D: Disk>(disk: &D, dir: &str) -> Result<(), LogError> {
    let staged = staged_dir(dir);
    for name in disk.list(&staged).await? {
        remove(disk, &format!("{staged}/{name}")).await;
    }
    Ok(())
}
