//! The deep scrub's persisted cursor: where the current pass is, what it has checked,
//! and when the last full pass ended, so a restarted node resumes its pass instead of
//! starting over (or never finishing one).
//!
//! File: `<dir>/scrub.cursor` = crc32 (LE) of the rest, then the bincode of
//! [`ScrubCursor`]. Written as temp, sync, rename, sync_dir: a crash leaves the old
//! cursor or the new one. A cursor that fails its crc is reported and replaced by a
//! fresh one (the pass restarts; nothing is lost but time).

use serde::{Deserialize, Serialize};

use crate::env::Disk;
use crate::shard_store::ShardId;

const CURSOR_FILE: &str = "scrub.cursor";

/// The scrub's state, as persisted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubCursor {
    /// A pass is under way.
    pub active: bool,
    pub pass_started_ms: u64,
    /// The last shard the current pass checked (shards go in id order).
    pub after: Option<ShardId>,
    pub shards_checked: u64,
    pub bytes_checked: u64,
    /// Shards this pass found corrupt or hashing to another sha256.
    pub bad_found: u64,
    /// When the last full pass ended; 0 if none has.
    pub last_full_pass_ms: u64,
    pub passes: u64,
}

fn path(dir: &str) -> String {
    format!("{dir}/{CURSOR_FILE}")
}

/// Reads the cursor in `dir`; a missing or damaged one gives a fresh cursor.
pub async fn load<D: Disk>(disk: &D, dir: &str) -> ScrubCursor {
    let file = path(dir);
    let len = match disk.len(&file).await {
        Ok(len) => len,
        Err(_) => return ScrubCursor::default(),
    };
    let bytes = match disk.read_at(&file, 0, len).await {
        Ok(bytes) if bytes.len() >= 4 => bytes,
        _ => return ScrubCursor::default(),
    };
    let crc = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
    let decoded = (crc32fast::hash(&bytes[4..]) == crc)
        .then(|| crate::meta::decode::<ScrubCursor>(&bytes[4..]))
        .flatten();
    decoded.unwrap_or_else(|| {
        tracing::warn!(file, "scrub cursor damaged; the pass starts over");
        ScrubCursor::default()
    })
}

/// Persists the cursor in `dir`, durably.
pub async fn save<D: Disk>(
    disk: &D,
    dir: &str,
    cursor: &ScrubCursor,
) -> Result<(), crate::env::DiskError> {
    let body = crate::meta::encode(cursor);
    let mut bytes = crc32fast::hash(&body).to_le_bytes().to_vec();
    bytes.extend_from_slice(&body);
    let (file, tmp) = (path(dir), format!("{}.tmp", path(dir)));
    let _ = disk.remove(&tmp).await;
    disk.write_at(&tmp, 0, &bytes).await?;
    disk.sync(&tmp).await?;
    disk.rename(&tmp, &file).await?;
    disk.sync_dir(dir).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_disk::MemDisk;
    use futures::executor::block_on;

    #[test]
    fn a_cursor_survives_a_restart_and_rot_resets_it() {
        let disk = MemDisk::default();
        assert_eq!(block_on(load(&disk, "repair")), ScrubCursor::default());
        let cursor = ScrubCursor {
            active: true,
            after: Some(ShardId {
                object: 7,
                version: 1,
                part: 0,
                index: 2,
            }),
            shards_checked: 3,
            bytes_checked: 300,
            ..ScrubCursor::default()
        };
        block_on(save(&disk, "repair", &cursor)).unwrap();
        assert_eq!(block_on(load(&disk, "repair")), cursor);
        block_on(disk.write_at("repair/scrub.cursor", 6, &[0xff])).unwrap();
        assert_eq!(block_on(load(&disk, "repair")), ScrubCursor::default());
    }
}
