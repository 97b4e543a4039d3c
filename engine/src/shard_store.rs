//! The node-local home of shards: one self-describing, sealed file per shard.
//!
//! File layout (all integers little-endian, fixed widths):
//! ```text
//! [0, 80)              header: magic "HAMSHARD", format version, codec id, k, m, shard
//!                      index, block size, chunk size, part, object id, version, object
//!                      length, shard length, zero padding, crc32 of bytes [0, 76)
//! [80, 80+L)           shard data, L = shard length
//! [80+L, 80+L+4B)      crc32 of each block of `block size` bytes (B blocks)
//! [.., +48)            footer: sha256 of the data, crc32 of the crc table, crc32 of the
//!                      footer, magic "HAMSEAL1"
//! ```
//! Durability steps of a store (the order is the protocol):
//! 1. write header and data to `<name>.tmp.<nonce>` in the shard directory;
//! 2. write the crc table and footer;
//! 3. `sync` the temporary file (data durable);
//! 4. `rename` it to `<name>` (the name marks it sealed);
//! 5. `sync_dir` the shard directory (the name durable). Only now is the shard stored.
//!
//! A writer keeps up to [`WRITE_BUFFER_BYTES`] before it writes, so a small shard takes
//! all five steps in one [`Disk::write_sealed`](crate::env::Disk::write_sealed).
//!
//! Fault model: any byte of a file may rot; writes not yet synced may be lost or torn
//! by a crash. A ranged read checks only the blocks it touches; a full verify checks
//! everything against the footer's sha256. Corrupt or truncated files are reported as
//! typed errors, never returned as bytes. Temporary files left by a crash are removed by
//! [`ShardStore::recover`].

pub mod rpc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use std::sync::Arc;

use crate::env::{Disk, DiskError, Rng};
use crate::erasure::CodecId;
use crate::metrics::Metrics;

pub const HEADER_LEN: u64 = 80;
pub const FOOTER_LEN: u64 = 48;
const MAGIC: &[u8; 8] = b"HAMSHARD";
const SEAL_MAGIC: &[u8; 8] = b"HAMSEAL1";
pub const FORMAT_VERSION: u16 = 1;
/// Default checksum granularity: a ranged read verifies at most one extra block per end.
pub const BLOCK_SIZE_BYTES_DEFAULT: u32 = 64 * 1024;
/// Bytes read at a time by a full verify; bounds its memory.
const VERIFY_READ_BYTES_MAX: u64 = 1 << 20;
const TMP_MARKER: &str = ".tmp.";
/// Bytes a shard writer keeps before it writes them (a shard this small, with its
/// header and seal, is written in one go).
const WRITE_BUFFER_BYTES: usize = 1 << 20;
const SHARD_SUFFIX: &str = ".shard";

/// Names one shard: shard `index` of `part` of `version` of `object`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardId {
    pub object: u128,
    pub version: u64,
    pub part: u32,
    pub index: u16,
}

impl ShardId {
    pub fn file_name(&self) -> String {
        format!(
            "{:032x}.{:016x}.{:08x}.{:04x}{SHARD_SUFFIX}",
            self.object, self.version, self.part, self.index
        )
    }
    pub fn parse_file_name(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(SHARD_SUFFIX)?;
        let mut it = stem.split('.');
        let (o, v, p, i) = (it.next()?, it.next()?, it.next()?, it.next()?);
        if it.next().is_some() || o.len() != 32 || v.len() != 16 || p.len() != 8 || i.len() != 4 {
            return None;
        }
        Some(Self {
            object: u128::from_str_radix(o, 16).ok()?,
            version: u64::from_str_radix(v, 16).ok()?,
            part: u32::from_str_radix(p, 16).ok()?,
            index: u16::from_str_radix(i, 16).ok()?,
        })
    }
}

/// Everything a shard file says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardHeader {
    pub id: ShardId,
    pub codec: CodecId,
    pub k: u16,
    pub m: u16,
    pub block_size_bytes: u32,
    pub chunk_size_bytes: u32,
    pub object_len_bytes: u64,
    pub shard_len_bytes: u64,
}

impl ShardHeader {
    pub fn block_count(&self) -> u64 {
        self.shard_len_bytes
            .div_ceil(u64::from(self.block_size_bytes))
    }
    fn table_offset(&self) -> u64 {
        HEADER_LEN + self.shard_len_bytes
    }
    fn footer_offset(&self) -> u64 {
        self.table_offset() + 4 * self.block_count()
    }
    /// The exact length of the sealed file.
    pub fn file_len(&self) -> u64 {
        self.footer_offset() + FOOTER_LEN
    }

    pub fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut b = [0u8; HEADER_LEN as usize];
        b[0..8].copy_from_slice(MAGIC);
        b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[10..12].copy_from_slice(&(self.codec as u16).to_le_bytes());
        b[12..14].copy_from_slice(&self.k.to_le_bytes());
        b[14..16].copy_from_slice(&self.m.to_le_bytes());
        b[16..18].copy_from_slice(&self.id.index.to_le_bytes());
        b[20..24].copy_from_slice(&self.block_size_bytes.to_le_bytes());
        b[24..28].copy_from_slice(&self.chunk_size_bytes.to_le_bytes());
        b[28..32].copy_from_slice(&self.id.part.to_le_bytes());
        b[32..48].copy_from_slice(&self.id.object.to_le_bytes());
        b[48..56].copy_from_slice(&self.id.version.to_le_bytes());
        b[56..64].copy_from_slice(&self.object_len_bytes.to_le_bytes());
        b[64..72].copy_from_slice(&self.shard_len_bytes.to_le_bytes());
        let crc = crc32fast::hash(&b[0..76]);
        b[76..80].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<Self, &'static str> {
        if b.len() < HEADER_LEN as usize {
            return Err("header too short");
        }
        if &b[0..8] != MAGIC {
            return Err("bad header magic");
        }
        if crc32fast::hash(&b[0..76]) != le_u32(&b[76..80]) {
            return Err("header checksum mismatch");
        }
        if le_u16(&b[8..10]) != FORMAT_VERSION {
            return Err("unknown format version");
        }
        let codec = CodecId::from_u16(le_u16(&b[10..12])).ok_or("unknown codec")?;
        let header = Self {
            id: ShardId {
                object: u128::from_le_bytes(b[32..48].try_into().expect("16 bytes")),
                version: le_u64(&b[48..56]),
                part: le_u32(&b[28..32]),
                index: le_u16(&b[16..18]),
            },
            codec,
            k: le_u16(&b[12..14]),
            m: le_u16(&b[14..16]),
            block_size_bytes: le_u32(&b[20..24]),
            chunk_size_bytes: le_u32(&b[24..28]),
            object_len_bytes: le_u64(&b[56..64]),
            shard_len_bytes: le_u64(&b[64..72]),
        };
        if header.block_size_bytes == 0 {
            return Err("zero block size");
        }
        Ok(header)
    }
}

fn le_u16(b: &[u8]) -> u16 {
    u16::from_le_bytes(b.try_into().expect("2 bytes"))
}
fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().expect("4 bytes"))
}
fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

/// What sealing a shard proved: its length and the sha256 of its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedShard {
    pub id: ShardId,
    pub len_bytes: u64,
    pub sha256: [u8; 32],
}

/// Why a shard operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// No sealed shard by that id on this node.
    #[error("shard {0:?} not found")]
    NotFound(ShardId),
    /// The file exists but a checksum, magic or length field disagrees with its content.
    #[error("shard file {file} is corrupt: {reason}")]
    Corrupt { file: String, reason: String },
    /// The file is shorter or longer than its header says.
    #[error("shard file {file} has {actual} bytes, header says {expected}")]
    Truncated {
        file: String,
        expected: u64,
        actual: u64,
    },
    /// A ranged read reached past the shard's end.
    #[error("range {offset}+{len} is outside a shard of {shard_len} bytes")]
    OutOfRange {
        offset: u64,
        len: u64,
        shard_len: u64,
    },
    /// The writer was given more or fewer bytes than the header promised.
    #[error("shard expected {expected} bytes, got {written}")]
    LengthMismatch { expected: u64, written: u64 },
    /// The disk failed underneath (EIO, no space, ...).
    #[error(transparent)]
    Disk(#[from] DiskError),
}

/// The footer of a sealed file.
struct Footer {
    sha256: [u8; 32],
    table_crc: u32,
}

impl Footer {
    fn encode(&self) -> [u8; FOOTER_LEN as usize] {
        let mut b = [0u8; FOOTER_LEN as usize];
        b[0..32].copy_from_slice(&self.sha256);
        b[32..36].copy_from_slice(&self.table_crc.to_le_bytes());
        let crc = crc32fast::hash(&b[0..36]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        b[40..48].copy_from_slice(SEAL_MAGIC);
        b
    }
    fn decode(b: &[u8]) -> Result<Self, &'static str> {
        if b.len() != FOOTER_LEN as usize || &b[40..48] != SEAL_MAGIC {
            return Err("bad footer magic");
        }
        if crc32fast::hash(&b[0..36]) != le_u32(&b[36..40]) {
            return Err("footer checksum mismatch");
        }
        Ok(Self {
            sha256: b[0..32].try_into().expect("32 bytes"),
            table_crc: le_u32(&b[32..36]),
        })
    }
}

/// Verifies a whole shard file held in memory; returns its header and data. This is the
/// same check as [`ShardStore::verify`], for tools that read files directly (the
/// simulator's durability checker reads SimDisk images with it).
pub fn verify_file_bytes(file: &str, bytes: &[u8]) -> Result<(ShardHeader, Vec<u8>), ShardError> {
    let corrupt = |reason: &str| ShardError::Corrupt {
        file: file.to_string(),
        reason: reason.to_string(),
    };
    let header = ShardHeader::decode(bytes).map_err(corrupt)?;
    if bytes.len() as u64 != header.file_len() {
        return Err(ShardError::Truncated {
            file: file.to_string(),
            expected: header.file_len(),
            actual: bytes.len() as u64,
        });
    }
    let footer = Footer::decode(&bytes[header.footer_offset() as usize..]).map_err(corrupt)?;
    let table = &bytes[header.table_offset() as usize..header.footer_offset() as usize];
    if crc32fast::hash(table) != footer.table_crc {
        return Err(corrupt("crc table checksum mismatch"));
    }
    let data = &bytes[HEADER_LEN as usize..header.table_offset() as usize];
    for (i, block) in data.chunks(header.block_size_bytes as usize).enumerate() {
        if crc32fast::hash(block) != le_u32(&table[4 * i..4 * i + 4]) {
            return Err(corrupt("block checksum mismatch"));
        }
    }
    if <[u8; 32]>::from(Sha256::digest(data)) != footer.sha256 {
        return Err(corrupt("sha256 mismatch"));
    }
    Ok((header, data.to_vec()))
}

/// What [`ShardStore::recover`] found at start-up.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Sealed shards that passed the check.
    pub sealed: Vec<ShardId>,
    /// Unsealed temporary files that were removed.
    pub removed_temporaries: Vec<String>,
    /// Files that failed the check, with the reason; left in place for repair to act on.
    pub corrupt: Vec<(String, ShardError)>,
    /// Files whose names are not shard names; left alone.
    pub unknown: Vec<String>,
}

/// How thorough the start-up check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryCheck {
    /// Header, length and footer: cheap, catches torn and truncated files.
    Structure,
    /// Every block and the sha256 as well (the scrub's check).
    Full,
}

/// Counts a shard operation's failure: a checksum mismatch or a disk error.
fn count_failure(metrics: &Metrics, error: &ShardError) {
    use crate::metrics::{DiskErrorKind, DiskErrorLabels};
    match error {
        ShardError::Corrupt { .. } | ShardError::Truncated { .. } => {
            metrics.shard_verify_failures.inc();
        }
        ShardError::Disk(e) => {
            let kind = DiskErrorKind::of(e);
            metrics
                .disk_errors
                .get_or_create(&DiskErrorLabels { kind })
                .inc();
        }
        _ => {}
    }
}

/// Shards of one node, in one directory of its disk.
#[derive(Clone)]
pub struct ShardStore<D: Disk> {
    disk: D,
    dir: String,
    metrics: Arc<Metrics>,
}

impl<D: Disk> ShardStore<D> {
    pub fn new(disk: D, dir: impl Into<String>) -> Self {
        Self {
            disk,
            dir: dir.into(),
            metrics: Arc::default(),
        }
    }
    /// Counts reads, seals, checksum failures and disk errors into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
    pub fn dir(&self) -> &str {
        &self.dir
    }
    pub fn path_of(&self, id: &ShardId) -> String {
        format!("{}/{}", self.dir, id.file_name())
    }

    /// Starts writing a shard under a temporary name. `nonce` keeps concurrent writers
    /// of the same shard apart.
    pub async fn create(
        &self,
        header: ShardHeader,
        rng: &impl Rng,
    ) -> Result<ShardWriter<D>, ShardError> {
        assert!(header.block_size_bytes > 0, "block size");
        let tmp = format!(
            "{}/{}{TMP_MARKER}{:016x}",
            self.dir,
            header.id.file_name(),
            rng.next_u64()
        );
        let mut pending =
            Vec::with_capacity(header.file_len().min(WRITE_BUFFER_BYTES as u64) as usize);
        pending.extend_from_slice(&header.encode());
        Ok(ShardWriter {
            store: self.clone(),
            header,
            tmp,
            pending,
            pending_at: 0,
            written: 0,
            block_fill: 0,
            block_crc: crc32fast::Hasher::new(),
            crcs: Vec::with_capacity(header.block_count() as usize),
            sha: Sha256::new(),
        })
    }

    async fn open(&self, id: &ShardId) -> Result<(String, ShardHeader), ShardError> {
        let (path, header, _) = self.read_sealed(id, |_, _| Vec::new()).await?;
        Ok((path, header))
    }

    /// A sealed file's checked header and the ranges `plan` names from its length and
    /// head, in one trip to the disk.
    async fn read_sealed<P>(
        &self,
        id: &ShardId,
        plan: P,
    ) -> Result<(String, ShardHeader, Vec<Vec<u8>>), ShardError>
    where
        P: FnOnce(u64, &[u8]) -> Vec<(u64, u64)> + Send + 'static,
    {
        let path = self.path_of(id);
        let read = match self.disk.read_planned(&path, HEADER_LEN, plan).await {
            Err(DiskError::NotFound { .. }) => return Err(ShardError::NotFound(*id)),
            other => other?,
        };
        if read.len < HEADER_LEN {
            return Err(truncated(path, HEADER_LEN, read.len));
        }
        let header = checked_header(&path, id, read.len, &read.head)?;
        Ok((path, header, read.parts))
    }

    /// The header of a sealed shard (checks its checksum and the file length).
    pub async fn header(&self, id: &ShardId) -> Result<ShardHeader, ShardError> {
        Ok(self.open(id).await?.1)
    }

    /// Reads `len` bytes of shard data at `offset`, checking every block it touches.
    pub async fn read_range(
        &self,
        id: &ShardId,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, ShardError> {
        let read = self.read_range_checked(id, offset, len).await;
        match &read {
            Ok(data) => {
                self.metrics.shard_reads.inc();
                self.metrics.shard_read_bytes.inc_by(data.len() as u64);
            }
            Err(e) => count_failure(&self.metrics, e),
        }
        read
    }

    async fn read_range_checked(
        &self,
        id: &ShardId,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, ShardError> {
        // The header, then the range's crcs and blocks when the header passes the checks
        // that `read_sealed` makes again below (and reports).
        let want = *id;
        let plan = move |file_len: u64, head: &[u8]| {
            checked_header("", &want, file_len, head)
                .map(|h| range_reads(&h, offset, len))
                .unwrap_or_default()
        };
        let (path, header, parts) = self.read_sealed(id, plan).await?;
        let shard_len = header.shard_len_bytes;
        if offset.checked_add(len).is_none_or(|end| end > shard_len) {
            return Err(ShardError::OutOfRange {
                offset,
                len,
                shard_len,
            });
        }
        let Some((first, _)) = blocks_of(&header, offset, len) else {
            return Ok(Vec::new()); // an empty range
        };
        let [crcs, mut data] = <[Vec<u8>; 2]>::try_from(parts)
            .expect("the plan reads crcs and blocks for the header and range just checked");
        let bs = header.block_size_bytes as usize;
        for (i, block) in data.chunks(bs).enumerate() {
            if crc32fast::hash(block) != le_u32(&crcs[4 * i..4 * i + 4]) {
                return Err(corrupt(&path, "block checksum mismatch"));
            }
        }
        let start = (offset - first * bs as u64) as usize;
        data.truncate(start + len as usize);
        data.drain(..start);
        Ok(data)
    }

    /// Checks every byte of a sealed shard; returns its header and data sha256.
    pub async fn verify(&self, id: &ShardId) -> Result<(ShardHeader, [u8; 32]), ShardError> {
        let verified = self.verify_all(id).await;
        if let Err(e) = &verified {
            count_failure(&self.metrics, e);
        }
        verified
    }

    /// [`verify`](Self::verify), then syncs the file and the directory: a shard found
    /// under its name is then as durable as one whose store finished its five steps (its
    /// writer may have been cut off between the rename and the directory sync).
    pub async fn verify_durable(
        &self,
        id: &ShardId,
    ) -> Result<(ShardHeader, [u8; 32]), ShardError> {
        let verified = self.verify(id).await?;
        self.disk.sync(&self.path_of(id)).await?;
        self.disk.sync_dir(&self.dir).await?;
        Ok(verified)
    }

    async fn verify_all(&self, id: &ShardId) -> Result<(ShardHeader, [u8; 32]), ShardError> {
        let (path, header) = self.open(id).await?;
        let footer_raw = self
            .disk
            .read_at(&path, header.footer_offset(), FOOTER_LEN)
            .await?;
        let footer = Footer::decode(&footer_raw).map_err(|r| corrupt(&path, r))?;
        let table = self
            .disk
            .read_at(&path, header.table_offset(), 4 * header.block_count())
            .await?;
        if crc32fast::hash(&table) != footer.table_crc {
            return Err(corrupt(&path, "crc table checksum mismatch"));
        }
        let bs = u64::from(header.block_size_bytes);
        // Whole blocks per read, at most VERIFY_READ_BYTES_MAX (or one block).
        let step = (VERIFY_READ_BYTES_MAX / bs).max(1) * bs;
        let mut sha = Sha256::new();
        let mut pos = 0;
        while pos < header.shard_len_bytes {
            let n = step.min(header.shard_len_bytes - pos);
            let data = self.disk.read_at(&path, HEADER_LEN + pos, n).await?;
            for (i, block) in data.chunks(bs as usize).enumerate() {
                let b = (pos / bs) as usize + i;
                if crc32fast::hash(block) != le_u32(&table[4 * b..4 * b + 4]) {
                    return Err(corrupt(&path, "block checksum mismatch"));
                }
            }
            sha.update(&data);
            pos += n;
        }
        let digest: [u8; 32] = sha.finalize().into();
        if digest != footer.sha256 {
            return Err(corrupt(&path, "sha256 mismatch"));
        }
        Ok((header, digest))
    }

    /// Removes a sealed shard (durably).
    pub async fn remove(&self, id: &ShardId) -> Result<(), ShardError> {
        match self.disk.remove(&self.path_of(id)).await {
            Err(DiskError::NotFound { .. }) => Err(ShardError::NotFound(*id)),
            other => other.map_err(ShardError::from),
        }?;
        self.disk.sync_dir(&self.dir).await?;
        Ok(())
    }

    /// Sealed shard ids present, in order (no content check).
    pub async fn list(&self) -> Result<Vec<ShardId>, ShardError> {
        let names = self.disk.list(&self.dir).await?;
        Ok(names
            .iter()
            .filter_map(|n| ShardId::parse_file_name(n))
            .collect())
    }

    /// The start-up scan: removes temporaries, checks sealed files.
    pub async fn recover(&self, check: RecoveryCheck) -> Result<RecoveryReport, ShardError> {
        let mut report = RecoveryReport::default();
        for name in self.disk.list(&self.dir).await? {
            let path = format!("{}/{name}", self.dir);
            if name.contains(TMP_MARKER) {
                self.disk.remove(&path).await?;
                report.removed_temporaries.push(name);
                continue;
            }
            let Some(id) = ShardId::parse_file_name(&name) else {
                report.unknown.push(name);
                continue;
            };
            let checked = match check {
                RecoveryCheck::Structure => self.check_structure(&id).await,
                RecoveryCheck::Full => self.verify(&id).await.map(|_| ()),
            };
            match checked {
                Ok(()) => report.sealed.push(id),
                Err(ShardError::Disk(e)) => return Err(ShardError::Disk(e)),
                Err(e) => report.corrupt.push((name, e)),
            }
        }
        if !report.removed_temporaries.is_empty() {
            self.disk.sync_dir(&self.dir).await?;
        }
        Ok(report)
    }

    async fn check_structure(&self, id: &ShardId) -> Result<(), ShardError> {
        let (path, header) = self.open(id).await?;
        let raw = self
            .disk
            .read_at(&path, header.footer_offset(), FOOTER_LEN)
            .await?;
        Footer::decode(&raw).map_err(|r| corrupt(&path, r))?;
        Ok(())
    }
}

/// The first and last block a non-empty range inside the shard touches.
fn blocks_of(header: &ShardHeader, offset: u64, len: u64) -> Option<(u64, u64)> {
    let end = offset.checked_add(len)?;
    if len == 0 || end > header.shard_len_bytes {
        return None;
    }
    let bs = u64::from(header.block_size_bytes);
    Some((offset / bs, (end - 1) / bs))
}

/// Where the crcs and blocks of a non-empty range inside the shard are in its file.
fn range_reads(header: &ShardHeader, offset: u64, len: u64) -> Vec<(u64, u64)> {
    let Some((first, last)) = blocks_of(header, offset, len) else {
        return Vec::new();
    };
    let bs = u64::from(header.block_size_bytes);
    let (lo, hi) = (first * bs, ((last + 1) * bs).min(header.shard_len_bytes));
    vec![
        (header.table_offset() + 4 * first, 4 * (last - first + 1)),
        (HEADER_LEN + lo, hi - lo),
    ]
}

/// A sealed file's header, checked: its own checksum, the shard it names, the file's
/// length (`actual`) against the length the header implies.
fn checked_header(
    path: &str,
    id: &ShardId,
    actual: u64,
    raw: &[u8],
) -> Result<ShardHeader, ShardError> {
    let header = ShardHeader::decode(raw).map_err(|r| corrupt(path, r))?;
    if header.id != *id {
        return Err(corrupt(path, "header names another shard"));
    }
    if actual != header.file_len() {
        return Err(truncated(path.to_string(), header.file_len(), actual));
    }
    Ok(header)
}

fn truncated(file: String, expected: u64, actual: u64) -> ShardError {
    ShardError::Truncated {
        file,
        expected,
        actual,
    }
}

fn corrupt(path: &str, reason: &str) -> ShardError {
    ShardError::Corrupt {
        file: path.to_string(),
        reason: reason.to_string(),
    }
}

/// An unsealed shard being written. Dropping it without `seal` leaves a temporary file
/// for `abort` or the start-up scan to remove; it is never visible as a shard.
pub struct ShardWriter<D: Disk> {
    store: ShardStore<D>,
    header: ShardHeader,
    tmp: String,
    /// Bytes not yet written, for file offset `pending_at` on: small shards reach the
    /// disk in one write with their seal, large ones a frame at a time.
    pending: Vec<u8>,
    pending_at: u64,
    written: u64,
    block_fill: u64,
    block_crc: crc32fast::Hasher,
    crcs: Vec<u32>,
    sha: Sha256,
}

impl<D: Disk> ShardWriter<D> {
    pub fn header(&self) -> &ShardHeader {
        &self.header
    }
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends data; fails rather than write past the length the header promised.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), ShardError> {
        let expected = self.header.shard_len_bytes;
        if self.written + data.len() as u64 > expected {
            return Err(ShardError::LengthMismatch {
                expected,
                written: self.written + data.len() as u64,
            });
        }
        if let Err(e) = self.buffer(data).await {
            let e = ShardError::Disk(e);
            count_failure(&self.store.metrics, &e);
            return Err(e);
        }
        self.written += data.len() as u64;
        self.sha.update(data);
        let bs = u64::from(self.header.block_size_bytes);
        while !data.is_empty() {
            let take = ((bs - self.block_fill) as usize).min(data.len());
            self.block_crc.update(&data[..take]);
            self.block_fill += take as u64;
            data = &data[take..];
            if self.block_fill == bs {
                let done = std::mem::take(&mut self.block_crc);
                self.crcs.push(done.finalize());
                self.block_fill = 0;
            }
        }
        Ok(())
    }

    /// Keeps `data` (the next bytes of the file) for a later write while what is kept
    /// stays under [`WRITE_BUFFER_BYTES`]; otherwise writes what was kept, then `data`.
    async fn buffer(&mut self, data: &[u8]) -> Result<(), DiskError> {
        if self.pending.len() + data.len() <= WRITE_BUFFER_BYTES {
            self.pending.extend_from_slice(data);
            return Ok(());
        }
        let disk = &self.store.disk;
        if !self.pending.is_empty() {
            disk.write_at(&self.tmp, self.pending_at, &self.pending)
                .await?;
            self.pending_at += self.pending.len() as u64;
            self.pending.clear();
        }
        disk.write_at(&self.tmp, self.pending_at, data).await?;
        self.pending_at += data.len() as u64;
        Ok(())
    }

    /// Seals the shard (durability steps 2 to 5 in the module docs). On failure the
    /// temporary file is removed (best effort; the start-up scan removes what remains).
    pub async fn seal(mut self) -> Result<SealedShard, ShardError> {
        let sealed = self.seal_steps().await;
        let metrics = &self.store.metrics;
        match &sealed {
            Ok(shard) => {
                metrics.shard_writes.inc();
                metrics.shard_write_bytes.inc_by(shard.len_bytes);
            }
            Err(e) => {
                count_failure(metrics, e);
                let _ = self.store.disk.remove(&self.tmp).await;
            }
        }
        sealed
    }

    async fn seal_steps(&mut self) -> Result<SealedShard, ShardError> {
        let expected = self.header.shard_len_bytes;
        if self.written != expected {
            return Err(ShardError::LengthMismatch {
                expected,
                written: self.written,
            });
        }
        if self.block_fill > 0 {
            let done = std::mem::take(&mut self.block_crc);
            self.crcs.push(done.finalize());
        }
        assert_eq!(self.crcs.len() as u64, self.header.block_count());
        let mut tail = Vec::with_capacity(self.crcs.len() * 4 + FOOTER_LEN as usize);
        for crc in &self.crcs {
            tail.extend_from_slice(&crc.to_le_bytes());
        }
        let sha256: [u8; 32] = self.sha.clone().finalize().into();
        let footer = Footer {
            sha256,
            table_crc: crc32fast::hash(&tail),
        };
        tail.extend_from_slice(&footer.encode());
        debug_assert_eq!(
            self.pending_at + self.pending.len() as u64,
            self.header.table_offset()
        );
        let mut last = std::mem::take(&mut self.pending);
        last.extend_from_slice(&tail);
        let path = self.store.path_of(&self.header.id);
        let disk = &self.store.disk;
        disk.write_sealed(&self.tmp, self.pending_at, last, &path, &self.store.dir)
            .await?;
        Ok(SealedShard {
            id: self.header.id,
            len_bytes: expected,
            sha256,
        })
    }

    /// Removes the temporary file.
    pub async fn abort(self) -> Result<(), ShardError> {
        match self.store.disk.remove(&self.tmp).await {
            Ok(()) | Err(DiskError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Format and store behaviour on a plain in-memory disk; crash and fault behaviour is
    //! tested against SimDisk in runtime-sim and by the simulator's workloads.
    use super::*;
    use crate::env::SeededRng;
    use crate::test_disk::MemDisk;
    use futures::executor::block_on;

    fn header(len: u64, block: u32) -> ShardHeader {
        ShardHeader {
            id: ShardId {
                object: 0xfeed_beef_u128 << 64 | 7,
                version: 3,
                part: 1,
                index: 2,
            },
            codec: CodecId::ReedSolomonGf8,
            k: 4,
            m: 2,
            block_size_bytes: block,
            chunk_size_bytes: 1024,
            object_len_bytes: len * 4,
            shard_len_bytes: len,
        }
    }

    fn data(len: u64) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 13) as u8).collect()
    }

    async fn put(
        store: &ShardStore<MemDisk>,
        h: ShardHeader,
        d: &[u8],
        pieces: usize,
    ) -> SealedShard {
        let mut w = store.create(h, &SeededRng::new(1)).await.unwrap();
        for piece in d.chunks(pieces.max(1)) {
            w.write(piece).await.unwrap();
        }
        w.seal().await.unwrap()
    }

    #[test]
    fn file_names_round_trip() {
        let id = header(1, 1).id;
        assert_eq!(ShardId::parse_file_name(&id.file_name()), Some(id));
        for bad in [
            "x.shard",
            "00.shard",
            &format!("{}.tmp.0000000000000001", id.file_name()),
        ] {
            assert_eq!(ShardId::parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranged_reads_are_exact_for_every_range() {
        block_on(async {
            for (len, block, piece) in [
                (0u64, 8u32, 1usize),
                (1, 8, 1),
                (8, 8, 3),
                (9, 8, 5),
                (37, 8, 7),
                (64, 16, 64),
            ] {
                let disk = MemDisk::default();
                let store = ShardStore::new(disk.clone(), "shards");
                let d = data(len);
                let sealed = put(&store, header(len, block), &d, piece).await;
                assert_eq!(sealed.sha256, <[u8; 32]>::from(Sha256::digest(&d)));
                for a in 0..=len {
                    for b in a..=len {
                        let got = store.read_range(&sealed.id, a, b - a).await.unwrap();
                        assert_eq!(got, &d[a as usize..b as usize]);
                    }
                }
                assert!(matches!(
                    store.read_range(&sealed.id, len, 1).await,
                    Err(ShardError::OutOfRange { .. })
                ));
                assert!(matches!(
                    store.read_range(&sealed.id, u64::MAX, 2).await,
                    Err(ShardError::OutOfRange { .. })
                ));
                assert_eq!(store.verify(&sealed.id).await.unwrap().1, sealed.sha256);
                let bytes = disk.get(&store.path_of(&sealed.id)).unwrap();
                assert_eq!(verify_file_bytes("f", &bytes).unwrap().1, d);
            }
        });
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        block_on(async {
            let disk = MemDisk::default();
            let store = ShardStore::new(disk.clone(), "shards");
            let d = data(40);
            let sealed = put(&store, header(40, 16), &d, 40).await;
            let path = store.path_of(&sealed.id);
            let clean = disk.get(&path).unwrap();
            for byte in 0..clean.len() {
                disk.poke(&path, |f| f[byte] ^= 1 << (byte % 8));
                let verified = store.verify(&sealed.id).await;
                assert!(verified.is_err(), "flip at {byte} not caught by verify");
                assert!(verify_file_bytes("f", &disk.get(&path).unwrap()).is_err());
                // A ranged read may succeed only when it does not touch the flip, and
                // then it must return the right bytes.
                for (a, b) in [(0u64, 40u64), (0, 16), (16, 32), (32, 40), (5, 6)] {
                    if let Ok(got) = store.read_range(&sealed.id, a, b - a).await {
                        assert_eq!(got, &d[a as usize..b as usize], "flip at {byte}");
                    }
                }
                disk.poke(&path, |f| f.copy_from_slice(&clean));
            }
        });
    }

    #[test]
    fn truncated_and_missing_files_are_typed_errors() {
        block_on(async {
            let disk = MemDisk::default();
            let store = ShardStore::new(disk.clone(), "shards");
            let sealed = put(&store, header(100, 32), &data(100), 33).await;
            let path = store.path_of(&sealed.id);
            for cut in [0usize, 10, 79, 80, 150, 200] {
                let mut f = disk.get(&path).unwrap();
                f.truncate(cut);
                disk.put(&path, f);
                let err = store.read_range(&sealed.id, 0, 10).await.unwrap_err();
                assert!(
                    matches!(err, ShardError::Truncated { .. }),
                    "{cut}: {err:?}"
                );
                assert!(store.verify(&sealed.id).await.is_err());
            }
            let other = ShardId {
                index: 9,
                ..sealed.id
            };
            assert_eq!(
                store.read_range(&other, 0, 1).await,
                Err(ShardError::NotFound(other))
            );
        });
    }

    #[test]
    fn writer_refuses_wrong_lengths_and_abort_cleans_up() {
        block_on(async {
            let disk = MemDisk::default();
            let store = ShardStore::new(disk.clone(), "shards");
            let mut w = store
                .create(header(10, 4), &SeededRng::new(2))
                .await
                .unwrap();
            w.write(&[1; 6]).await.unwrap();
            assert!(matches!(
                w.write(&[1; 5]).await,
                Err(ShardError::LengthMismatch { .. })
            ));
            w.abort().await.unwrap();
            let mut w = store
                .create(header(10, 4), &SeededRng::new(3))
                .await
                .unwrap();
            w.write(&[1; 9]).await.unwrap();
            assert!(matches!(
                w.seal().await,
                Err(ShardError::LengthMismatch {
                    expected: 10,
                    written: 9
                })
            ));
            // The failed seal removed its own temporary; nothing is left to recover.
            assert!(disk.list("shards").await.unwrap().is_empty());
            let report = store.recover(RecoveryCheck::Full).await.unwrap();
            assert!(report.removed_temporaries.is_empty() && report.sealed.is_empty());
        });
    }

    #[test]
    fn recovery_sorts_sealed_temporary_corrupt_and_unknown() {
        block_on(async {
            let disk = MemDisk::default();
            let store = ShardStore::new(disk.clone(), "shards");
            let good = put(&store, header(50, 16), &data(50), 50).await;
            let bad_header = ShardHeader {
                id: ShardId {
                    index: 3,
                    ..good.id
                },
                ..header(50, 16)
            };
            let bad = put(&store, bad_header, &data(50), 50).await;
            disk.poke(&store.path_of(&bad.id), |f| {
                f[HEADER_LEN as usize + 3] ^= 0xff
            });
            // A writer dropped once it wrote past its buffer leaves a temporary file;
            // one that kept everything leaves nothing.
            let big = WRITE_BUFFER_BYTES as u64 + 100;
            for (len, wrote) in [(big, WRITE_BUFFER_BYTES as u64 + 1), (50, 20)] {
                let mut w = store
                    .create(header(len, 4096), &SeededRng::new(4))
                    .await
                    .unwrap();
                w.write(&data(wrote)).await.unwrap();
                drop(w);
            }
            disk.write_at("shards/notes.txt", 0, b"hi").await.unwrap();

            let structural = store.recover(RecoveryCheck::Structure).await.unwrap();
            assert_eq!(
                structural.sealed,
                vec![good.id, bad.id],
                "a data flip passes the cheap check"
            );
            assert_eq!(structural.removed_temporaries.len(), 1);
            assert_eq!(structural.unknown, vec!["notes.txt".to_string()]);

            let full = store.recover(RecoveryCheck::Full).await.unwrap();
            assert_eq!(full.sealed, vec![good.id]);
            assert_eq!(full.corrupt.len(), 1);
            assert!(full.removed_temporaries.is_empty());
        });
    }
}
