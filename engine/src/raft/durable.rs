//! Raft's durable state on the Disk trait: the log and the hard state. (The state
//! machine, with its applied mark, is `crate::meta::store`.)
//!
//! **Log.** Append-only segment files `<dir>/log/<seq:020>.seg`, each a run of records
//! `[len u32][crc32 u32][protobuf Entry]`. An append writes every record of a batch and
//! syncs once (group commit); a new segment's name is made durable with `sync_dir`
//! before its first batch counts. Raft may overwrite a suffix (a follower's conflicting
//! entries): the log never rewrites, a later record for index i simply supersedes every
//! record for i and beyond, on replay exactly as in memory.
//!
//! Recovery reads the segments in order. A record that is cut short or fails its crc at
//! the end of the last segment is a torn tail (a crash during an unsynced append): the
//! good prefix is rewritten to a fresh file that replaces the segment, and recovery goes
//! on. A bad record anywhere else, or one followed by a valid record, is corruption in
//! the middle: recovery refuses with [`LogError::Corrupt`], and the node must not serve
//! from that log.
//!
//! **Hard state.** Two slot files `<dir>/hard.0` and `<dir>/hard.1`; each save writes
//! the older slot in place with a sequence number and a crc, then syncs. A torn save
//! leaves the other slot intact; load takes the valid slot with the higher sequence.
//!
//! A slot also records `log_durable_to`, the last log index the log had made durable
//! when the slot was saved. The driver saves a slot after every append and before it
//! acknowledges anything, so every entry this node ever acknowledged is at or below the
//! recorded mark. Recovery can then tell a torn tail (records past the mark: never
//! acknowledged, safe to drop) from rot in the last records (at or below the mark: the
//! log lost what it promised, and the node must not serve).
//!
use protobuf::Message as _;
use raft::eraftpb::{Entry, HardState};

use crate::env::{Disk, DiskError};

/// A new segment starts once the current one reaches this size.
pub const SEGMENT_BYTES_MAX: u64 = 8 << 20;
/// Largest record accepted on replay; anything larger is corruption, not a record.
const RECORD_BYTES_MAX: u32 = 64 << 20;
const SLOT_BYTES: usize = 44;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The log is damaged beyond a torn tail; it cannot be served from.
    #[error("raft log corrupt in {file} at byte {offset}: {reason}")]
    Corrupt {
        file: String,
        offset: u64,
        reason: String,
    },
    #[error(transparent)]
    Disk(#[from] DiskError),
    /// The state machine's store failed (I/O, or damage redb detected).
    #[error(transparent)]
    Store(#[from] crate::meta::store::StoreError),
}

struct Segment {
    seq: u64,
    len: u64,
    /// Highest entry index recorded in it (0 if none).
    max_index: u64,
    name_durable: bool,
}

/// The append-only log of one node.
pub struct DurableLog<D: Disk> {
    disk: D,
    dir: String,
    segments: Vec<Segment>,
    /// Sequence number of the next new segment; never reused.
    next_seq: u64,
}

fn encode_record(entry: &Entry, out: &mut Vec<u8>) {
    let payload = entry.write_to_bytes().expect("entries encode");
    let len = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&record_crc(len, &payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// The record crc covers the length too: a zeroed region (length 0, crc 0) must not
/// pass for an empty record, and crc32 of nothing is 0.
fn record_crc(len: [u8; 4], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(payload);
    h.finalize()
}

/// One record at `pos`: `Ok(Some((entry, next)))`, `Ok(None)` when cut short, `Err` when
/// its checksum or content is bad.
fn decode_record(bytes: &[u8], pos: usize) -> Result<Option<(Entry, usize)>, &'static str> {
    let Some(head) = bytes.get(pos..pos + 8) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
    if len > RECORD_BYTES_MAX {
        return Err("record length out of range");
    }
    let Some(payload) = bytes.get(pos + 8..pos + 8 + len as usize) else {
        return Ok(None);
    };
    if record_crc(len.to_le_bytes(), payload) != crc {
        return Err("record checksum mismatch");
    }
    let entry = Entry::parse_from_bytes(payload).map_err(|_| "record does not decode")?;
    if entry.index == 0 {
        return Err("record holds no entry index");
    }
    Ok(Some((entry, pos + 8 + len as usize)))
}

/// Applies one replayed entry to the in-memory log with Raft's overwrite rule.
fn replay(entries: &mut Vec<Entry>, entry: Entry) -> Result<(), &'static str> {
    if let Some(first) = entries.first().map(|e| e.index) {
        if entry.index < first {
            // Superseding entries older than what this log still holds: start over.
            entries.clear();
        } else {
            let keep = (entry.index - first) as usize;
            if keep > entries.len() {
                return Err("gap between records");
            }
            entries.truncate(keep);
        }
    }
    entries.push(entry);
    Ok(())
}

impl<D: Disk> DurableLog<D> {
    fn log_dir(&self) -> String {
        format!("{}/log", self.dir)
    }

    fn path(&self, seq: u64) -> String {
        format!("{}/log/{seq:020}.seg", self.dir)
    }

    /// Recovers the log under `dir`; returns it with its entries (oldest first, Raft's
    /// overwrite rule applied).
    pub async fn open(disk: D, dir: &str) -> Result<(Self, Vec<Entry>), LogError> {
        let mut log = Self {
            disk,
            dir: dir.to_string(),
            segments: Vec::new(),
            next_seq: 1,
        };
        let mut names: Vec<(u64, String)> = log
            .disk
            .list(&log.log_dir())
            .await?
            .into_iter()
            .filter_map(|n| Some((n.strip_suffix(".seg")?.parse().ok()?, n)))
            .collect();
        names.sort();
        let mut entries = Vec::new();
        let count = names.len();
        for (i, (seq, name)) in names.into_iter().enumerate() {
            let path = log.path(seq);
            let len = log.disk.len(&path).await?;
            let bytes = log.disk.read_at(&path, 0, len).await?;
            let (good, max_index) = scan_segment(&name, &bytes, &mut entries, i + 1 == count)?;
            if good < bytes.len() {
                tracing::warn!(file = %path, good, len, "truncating torn tail of the raft log");
                log.rewrite_prefix(&path, &bytes[..good]).await?;
            }
            log.segments.push(Segment {
                seq,
                len: good as u64,
                max_index,
                name_durable: true,
            });
            log.next_seq = seq + 1;
        }
        Ok((log, entries))
    }

    /// Replaces a segment by its good prefix: temporary, sync, rename, sync_dir.
    async fn rewrite_prefix(&self, path: &str, prefix: &[u8]) -> Result<(), LogError> {
        let tmp = format!("{path}.tmp");
        // A temporary left by an earlier crash may be longer than this prefix.
        match self.disk.remove(&tmp).await {
            Ok(()) | Err(DiskError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.disk
            .write_sealed(&tmp, 0, prefix.to_vec(), path, &self.log_dir())
            .await?;
        Ok(())
    }

    /// Appends a batch and makes it durable with one sync (group commit).
    pub async fn append(&mut self, entries: &[Entry]) -> Result<(), LogError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut batch = Vec::new();
        for e in entries {
            encode_record(e, &mut batch);
        }
        let roll = self
            .segments
            .last()
            .is_none_or(|s| s.len >= SEGMENT_BYTES_MAX);
        if roll {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.segments.push(Segment {
                seq,
                len: 0,
                max_index: 0,
                name_durable: false,
            });
        }
        let last = self.segments.last().expect("a segment exists");
        let (seq, offset) = (last.seq, last.len);
        let path = self.path(seq);
        self.disk.write_synced(&path, offset, &batch).await?;
        let last = self.segments.last_mut().expect("a segment exists");
        if !last.name_durable {
            self.disk.sync_dir(&format!("{}/log", self.dir)).await?;
            let last = self.segments.last_mut().expect("a segment exists");
            last.name_durable = true;
        }
        let last = self.segments.last_mut().expect("a segment exists");
        last.len += batch.len() as u64;
        last.max_index = entries.last().expect("non-empty").index;
        Ok(())
    }

    /// Removes whole segments (never the newest) whose entries are all at or below
    /// `upto`, which a snapshot already covers.
    pub async fn compact(&mut self, upto: u64) -> Result<(), LogError> {
        let newest = self.segments.last().map(|s| s.seq);
        let doomed: Vec<u64> = self
            .segments
            .iter()
            .filter(|s| Some(s.seq) != newest && s.max_index <= upto)
            .map(|s| s.seq)
            .collect();
        for seq in &doomed {
            self.disk.remove(&self.path(*seq)).await?;
        }
        if !doomed.is_empty() {
            self.disk.sync_dir(&self.log_dir()).await?;
            self.segments.retain(|s| !doomed.contains(&s.seq));
        }
        Ok(())
    }

    /// Drops every segment: a snapshot from the leader replaced the whole log.
    pub async fn reset(&mut self) -> Result<(), LogError> {
        let segments = std::mem::take(&mut self.segments);
        for seg in &segments {
            self.disk.remove(&self.path(seg.seq)).await?;
        }
        if !segments.is_empty() {
            self.disk.sync_dir(&self.log_dir()).await?;
        }
        Ok(())
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

/// Replays one segment into `entries`; returns the length of its good prefix and its
/// highest index. Only the last segment may end in a torn record.
fn scan_segment(
    name: &str,
    bytes: &[u8],
    entries: &mut Vec<Entry>,
    last: bool,
) -> Result<(usize, u64), LogError> {
    let corrupt = |offset: usize, reason: &str| LogError::Corrupt {
        file: name.to_string(),
        offset: offset as u64,
        reason: reason.to_string(),
    };
    let (mut pos, mut max_index) = (0usize, 0u64);
    while pos < bytes.len() {
        match decode_record(bytes, pos) {
            Ok(Some((entry, next))) => {
                max_index = entry.index;
                replay(entries, entry).map_err(|r| corrupt(pos, r))?;
                pos = next;
            }
            Ok(None) if last => return Ok((pos, max_index)),
            Ok(None) => return Err(corrupt(pos, "record cut short before the last segment")),
            Err(reason) => {
                if !last || followed_by_valid_record(bytes, pos) {
                    return Err(corrupt(pos, reason));
                }
                return Ok((pos, max_index));
            }
        }
    }
    Ok((pos, max_index))
}

/// A bad record whose length field still points at a valid record is damage in the
/// middle of the log, not a torn tail.
fn followed_by_valid_record(bytes: &[u8], pos: usize) -> bool {
    let Some(head) = bytes.get(pos..pos + 4) else {
        return false;
    };
    let len = u32::from_le_bytes(head.try_into().expect("4 bytes")) as usize;
    matches!(decode_record(bytes, pos + 8 + len), Ok(Some(_)))
}

/// The hard state in two alternating slots.
pub struct HardStateSlots<D: Disk> {
    disk: D,
    dir: String,
    seq: u64,
}

/// What one slot holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slot {
    pub hs: HardState,
    /// The last log index that was durable when the slot was saved (see module docs).
    pub log_durable_to: u64,
}

fn encode_slot(seq: u64, slot: &Slot) -> [u8; SLOT_BYTES] {
    let mut b = [0u8; SLOT_BYTES];
    b[0..8].copy_from_slice(&seq.to_le_bytes());
    b[8..16].copy_from_slice(&slot.hs.term.to_le_bytes());
    b[16..24].copy_from_slice(&slot.hs.vote.to_le_bytes());
    b[24..32].copy_from_slice(&slot.hs.commit.to_le_bytes());
    b[32..40].copy_from_slice(&slot.log_durable_to.to_le_bytes());
    let crc = crc32fast::hash(&b[0..40]);
    b[40..44].copy_from_slice(&crc.to_le_bytes());
    b
}

fn decode_slot(b: &[u8]) -> Option<(u64, Slot)> {
    if b.len() != SLOT_BYTES || crc32fast::hash(&b[0..40]).to_le_bytes() != b[40..44] {
        return None;
    }
    let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let hs = HardState {
        term: word(8),
        vote: word(16),
        commit: word(24),
        ..Default::default()
    };
    Some((
        word(0),
        Slot {
            hs,
            log_durable_to: word(32),
        },
    ))
}

impl<D: Disk> HardStateSlots<D> {
    fn slot(&self, i: u64) -> String {
        format!("{}/hard.{}", self.dir, i % 2)
    }

    /// Loads the newest valid slot, creating both slots durably on first use.
    pub async fn open(disk: D, dir: &str) -> Result<(Self, Slot), LogError> {
        let mut slots = Self {
            disk,
            dir: dir.to_string(),
            seq: 0,
        };
        let mut best: Option<(u64, Slot)> = None;
        let mut missing = false;
        for i in 0..2 {
            match slots
                .disk
                .read_at(&slots.slot(i), 0, SLOT_BYTES as u64)
                .await
            {
                Ok(b) => {
                    if let Some((seq, hs)) = decode_slot(&b)
                        && best.as_ref().is_none_or(|(s, _)| seq > *s)
                    {
                        best = Some((seq, hs));
                    }
                }
                Err(DiskError::NotFound { .. }) | Err(DiskError::ShortRead { .. }) => {
                    missing = true
                }
                Err(e) => return Err(e.into()),
            }
        }
        if missing && best.is_none() {
            for i in 0..2 {
                let path = slots.slot(i);
                slots
                    .disk
                    .write_at(&path, 0, &encode_slot(0, &Slot::default()))
                    .await?;
                slots.disk.sync(&path).await?;
            }
            slots.disk.sync_dir(dir).await?;
        }
        let (seq, hs) = best.unwrap_or_default();
        slots.seq = seq;
        Ok((slots, hs))
    }

    /// Saves `slot` durably into the older slot.
    pub async fn save(&mut self, slot: &Slot) -> Result<(), LogError> {
        let seq = self.seq + 1;
        let path = self.slot(seq);
        self.disk
            .write_synced(&path, 0, &encode_slot(seq, slot))
            .await?;
        self.seq = seq;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_disk::MemDisk;
    use futures::executor::block_on;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8; (index % 7) as usize].into(),
            ..Default::default()
        }
    }

    fn indices(entries: &[Entry]) -> Vec<(u64, u64)> {
        entries.iter().map(|e| (e.index, e.term)).collect()
    }

    #[test]
    fn append_recover_and_overwrite() {
        block_on(async {
            let disk = MemDisk::default();
            let (mut log, got) = DurableLog::open(disk.clone(), "r").await.unwrap();
            assert!(got.is_empty());
            log.append(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>())
                .await
                .unwrap();
            // A conflicting suffix from a new leader supersedes 4 and 5.
            log.append(&[entry(4, 2), entry(5, 2), entry(6, 2)])
                .await
                .unwrap();
            let (_, got) = DurableLog::open(disk.clone(), "r").await.unwrap();
            assert_eq!(
                indices(&got),
                vec![(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 2)]
            );
            assert_eq!(got[2].data, entry(3, 1).data);
        });
    }

    #[test]
    fn torn_tail_is_truncated_but_middle_damage_refuses() {
        block_on(async {
            let disk = MemDisk::default();
            let (mut log, _) = DurableLog::open(disk.clone(), "r").await.unwrap();
            for i in 1..=4 {
                log.append(&[entry(i, 1)]).await.unwrap();
            }
            let path = "r/log/00000000000000000001.seg";
            let clean = disk.get(path).unwrap();
            // Cut in the middle of the last record: torn tail, 3 entries survive.
            for cut in [clean.len() - 1, clean.len() - 5] {
                disk.put(path, clean[..cut].to_vec());
                let (_, got) = DurableLog::open(disk.clone(), "r").await.unwrap();
                assert_eq!(indices(&got), vec![(1, 1), (2, 1), (3, 1)], "cut at {cut}");
                // The repair made the file clean: a second open agrees and appends work.
                let (mut again, got2) = DurableLog::open(disk.clone(), "r").await.unwrap();
                assert_eq!(indices(&got2), indices(&got));
                again.append(&[entry(4, 3)]).await.unwrap();
                let (_, got3) = DurableLog::open(disk.clone(), "r").await.unwrap();
                assert_eq!(got3.last().map(|e| (e.index, e.term)), Some((4, 3)));
            }
            // A flipped byte in the first record, with good records after it: refuse.
            let mut rotted = clean.clone();
            rotted[9] ^= 0x10;
            disk.put(path, rotted);
            let err = DurableLog::open(disk.clone(), "r")
                .await
                .err()
                .expect("refused");
            assert!(matches!(err, LogError::Corrupt { .. }), "{err:?}");
        });
    }

    /// A crash can leave the unsynced tail as zeroed sectors. Length 0 with crc 0 used to
    /// pass as a record (crc32 of nothing is 0) that reset the replay (fuzz seed
    /// 5340994688034391822 in seeds/).
    #[test]
    fn zeroed_tail_is_torn_not_a_record() {
        block_on(async {
            let disk = MemDisk::default();
            let (mut log, _) = DurableLog::open(disk.clone(), "r").await.unwrap();
            for i in 1..=3 {
                log.append(&[entry(i, 1)]).await.unwrap();
            }
            let path = "r/log/00000000000000000001.seg";
            let clean = disk.get(path).unwrap();
            for zeros in [8, 16, 512] {
                let mut torn = clean.clone();
                torn.extend(std::iter::repeat_n(0u8, zeros));
                disk.put(path, torn);
                let (_, got) = DurableLog::open(disk.clone(), "r").await.unwrap();
                assert_eq!(indices(&got), vec![(1, 1), (2, 1), (3, 1)], "{zeros} zeros");
                assert_eq!(disk.get(path).unwrap(), clean, "tail truncated");
            }
        });
    }

    #[test]
    fn compaction_keeps_the_newest_segment() {
        block_on(async {
            let disk = MemDisk::default();
            let (mut log, _) = DurableLog::open(disk.clone(), "r").await.unwrap();
            let big = |i: u64| {
                let mut e = entry(i, 1);
                e.data = vec![0u8; (SEGMENT_BYTES_MAX / 2) as usize].into();
                e
            };
            for i in 1..=5 {
                log.append(&[big(i)]).await.unwrap();
            }
            assert_eq!(log.segment_count(), 3);
            log.compact(4).await.unwrap();
            assert_eq!(
                log.segment_count(),
                1,
                "segments holding 1-2 and 3-4 are gone"
            );
            let (_, got) = DurableLog::open(disk.clone(), "r").await.unwrap();
            assert_eq!(got.first().map(|e| e.index), Some(5));
        });
    }

    #[test]
    fn hard_state_survives_a_torn_slot() {
        block_on(async {
            let disk = MemDisk::default();
            let (mut slots, got) = HardStateSlots::open(disk.clone(), "r").await.unwrap();
            assert_eq!(got, Slot::default());
            let mut want = Slot::default();
            for t in 1..=3 {
                want.hs.term = t;
                want.hs.commit = t * 10;
                want.log_durable_to = t * 11;
                slots.save(&want).await.unwrap();
            }
            // Seq 3 went to slot 1; tear it: slot 0 (seq 2) wins.
            disk.poke("r/hard.1", |b| b[20] ^= 1);
            let (_, got) = HardStateSlots::open(disk.clone(), "r").await.unwrap();
            assert_eq!(
                (got.hs.term, got.hs.commit, got.log_durable_to),
                (2, 20, 22)
            );
        });
    }
}
