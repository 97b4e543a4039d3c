//! SimDisk: a node's disk with a live image and a durable image.
//!
//! Fault model (what a power loss may do, and nothing more):
//! - file data written since the file's last `sync` is resolved write by write, in
//!   order, as dropped, applied, or torn (each of its 512-byte sectors, aligned to the
//!   file, lands or does not; on files under `set_tear_under`, sectors past the file's
//!   durable end may also read back as zeros);
//! - creates, renames and removes since the last `sync_dir` of their directory survive
//!   as a random prefix of that directory's operations (a journaled file system orders
//!   them; it does not promise them);
//! - whatever was synced survives.
//!
//! Beyond crashes: bits can rot and sectors can be zeroed in place (both images: it is
//! the medium), reads and writes can fail with EIO at a configured rate, and a capacity
//! makes writes fail with no-space. Every operation takes a little virtual time, so a
//! crash can fall between any two of them.

use std::collections::BTreeMap;
use std::time::Duration;

use engine::env::{Disk, DiskError, NodeId};
use rand::Rng as _;

use crate::world::{World, WorldState};

const SECTOR_BYTES: usize = 512;
/// A sync takes 1-2 ms, like an SSD's flush; it is what makes a store take time.
const SYNC_BASE_US: u64 = 1000;

#[derive(Default, Clone)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Changes since the last sync, in order.
    unsynced: Vec<Pending>,
}

#[derive(Clone)]
enum Pending {
    Write(u64, Vec<u8>),
    /// A length change (redb's `set_len`); growth reads as zeros.
    SetLen(u64),
}

impl Inode {
    /// A sync: the pending changes reach the durable image, in order.
    fn persist(&mut self) {
        for p in std::mem::take(&mut self.unsynced) {
            match p {
                Pending::Write(offset, data) => {
                    write_into(&mut self.durable, offset as usize, &data)
                }
                Pending::SetLen(len) => self.durable.resize(len as usize, 0),
            }
        }
    }
}

#[derive(Clone, Debug)]
enum DirOp {
    Link {
        path: String,
        inode: u64,
    },
    Unlink {
        path: String,
    },
    /// Atomic: the new name appears exactly when the old one goes. Logged in the
    /// destination directory.
    Rename {
        from: String,
        to: String,
        inode: u64,
    },
}

pub(crate) struct DiskState {
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    live: BTreeMap<String, u64>,
    durable: BTreeMap<String, u64>,
    /// Namespace operations since the last `sync_dir`, per directory, in order.
    unsynced_dir_ops: BTreeMap<String, Vec<DirOp>>,
    capacity_bytes: u64,
    /// Bytes of files that have a live name (unlinked files free their space).
    used_bytes: u64,
    /// Probability that one read or write fails with EIO.
    pub eio_rate: f64,
    /// A disk whose volatile cache acknowledges `sync` and `sync_dir` without
    /// persisting anything. No store can be durable on it; the checkers must notice.
    lying_sync: bool,
    /// Syncs of paths under this prefix lie (as `lying_sync`, for part of the disk).
    lying_under: Option<String>,
    /// How long one sync takes, microseconds (a slow disk); the default otherwise.
    sync_us: Option<u64>,
    /// Unsynced writes to files under this prefix always tear at a crash (some of
    /// their sectors land), never drop or apply whole.
    tear_under: Option<String>,
    /// Bumped when the node dies: storage backends opened before refuse to act after,
    /// as a killed process runs no more code (not even its destructors).
    epoch: u64,
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

fn check_path(path: &str) -> Result<(), DiskError> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        Err(DiskError::InvalidPath { path: path.into() })
    } else {
        Ok(())
    }
}

impl DiskState {
    pub fn new(capacity_bytes: u64) -> Self {
        Self {
            inodes: BTreeMap::new(),
            next_inode: 1,
            live: BTreeMap::new(),
            durable: BTreeMap::new(),
            unsynced_dir_ops: BTreeMap::new(),
            capacity_bytes,
            used_bytes: 0,
            eio_rate: 0.0,
            lying_sync: false,
            lying_under: None,
            sync_us: None,
            tear_under: None,
            epoch: 0,
        }
    }

    /// Recounts `used_bytes` from scratch (after a crash replaced the live image).
    fn recount_used(&mut self) {
        let linked: std::collections::BTreeSet<u64> = self.live.values().copied().collect();
        self.used_bytes = linked
            .iter()
            .map(|i| self.inodes[i].live.len() as u64)
            .sum();
    }

    /// Removes a live name and frees its file's space. There are no hard links (a file
    /// is created by one name and renames move it), so a live inode has one name.
    fn unlink_live(&mut self, path: &str) {
        if let Some(inode) = self.live.remove(path) {
            self.used_bytes -= self.inodes[&inode].live.len() as u64;
        }
    }

    /// Drops `inode` if no name, live, durable or pending, refers to it any more.
    /// Called only for inodes a directory sync displaced, so it stays cheap.
    fn drop_if_unreferenced(&mut self, inode: u64) {
        let referenced = self.live.values().any(|&i| i == inode)
            || self.durable.values().any(|&i| i == inode)
            || self.unsynced_dir_ops.values().flatten().any(|op| match op {
                DirOp::Link { inode: i, .. } | DirOp::Rename { inode: i, .. } => *i == inode,
                DirOp::Unlink { .. } => false,
            });
        if !referenced {
            self.inodes.remove(&inode);
        }
    }

    fn inode_of(&self, path: &str) -> Result<u64, DiskError> {
        self.live
            .get(path)
            .copied()
            .ok_or_else(|| DiskError::NotFound { path: path.into() })
    }

    fn log_dir_op(&mut self, path: &str, op: DirOp) {
        self.unsynced_dir_ops
            .entry(parent(path).to_string())
            .or_default()
            .push(op);
    }

    /// Applies one namespace operation to the durable image; returns the inode it
    /// unlinked or replaced there, if any.
    fn apply_durable(&mut self, op: DirOp) -> Option<u64> {
        match op {
            DirOp::Link { path, inode } => self.durable.insert(path, inode),
            DirOp::Unlink { path } => self.durable.remove(&path),
            DirOp::Rename { from, to, inode } => {
                let moved = self.durable.remove(&from);
                let replaced = self.durable.insert(to, inode);
                replaced.or(moved.filter(|&m| m != inode))
            }
        }
    }

    /// The durable bytes of `path` as they would be read after a crash right now, if
    /// its name and data were all synced; used by checkers to read "what survived".
    pub fn durable_file(&self, path: &str) -> Option<&[u8]> {
        let inode = self.durable.get(path)?;
        Some(&self.inodes[inode].durable)
    }

    pub fn durable_names(&self) -> impl Iterator<Item = &str> {
        self.durable.keys().map(String::as_str)
    }

    pub fn live_names(&self) -> impl Iterator<Item = &str> {
        self.live.keys().map(String::as_str)
    }
}

/// Resolves `node`'s unsynced state as a power loss would (see the module docs).
/// Marks `node`'s process dead before its tasks are dropped (see `DiskState::epoch`).
pub(crate) fn kill(w: &mut WorldState, node: NodeId) {
    if let Some(disk) = w.disks.get_mut(&node) {
        disk.epoch += 1;
    }
}

pub(crate) fn crash(w: &mut WorldState, node: NodeId) {
    let Some(mut disk) = w.disks.remove(&node) else {
        return;
    };
    for (_, ops) in std::mem::take(&mut disk.unsynced_dir_ops) {
        let keep = w.rng.gen_range(0..=ops.len());
        w.stats.dir_ops_lost += (ops.len() - keep) as u64;
        for op in ops.into_iter().take(keep) {
            disk.apply_durable(op);
        }
    }
    let always_torn: std::collections::BTreeSet<u64> = match &disk.tear_under {
        Some(prefix) => disk
            .live
            .iter()
            .filter(|(name, _)| name.starts_with(prefix.as_str()))
            .map(|(_, id)| *id)
            .collect(),
        None => Default::default(),
    };
    disk.live = disk.durable.clone();
    let referenced: std::collections::BTreeSet<u64> = disk.durable.values().copied().collect();
    // Files whose names did not survive take their unsynced writes with them.
    let vanished: u64 = disk
        .inodes
        .iter()
        .filter(|(id, _)| !referenced.contains(id))
        .map(|(_, inode)| inode.unsynced.len() as u64)
        .sum();
    w.stats.unsynced_writes_dropped += vanished;
    disk.inodes.retain(|id, _| referenced.contains(id));
    for (id, inode) in disk.inodes.iter_mut() {
        for pending in std::mem::take(&mut inode.unsynced) {
            let (offset, data) = match pending {
                Pending::Write(offset, data) => (offset as usize, data),
                Pending::SetLen(len) => {
                    // A size change either reached the inode or did not.
                    if w.rng.gen_bool(0.5) {
                        inode.durable.resize(len as usize, 0);
                        w.stats.unsynced_writes_applied += 1;
                    } else {
                        w.stats.unsynced_writes_dropped += 1;
                    }
                    continue;
                }
            };
            let outcome = if always_torn.contains(id) {
                2
            } else {
                w.rng.gen_range(0..3)
            };
            match outcome {
                0 => w.stats.unsynced_writes_dropped += 1,
                1 => {
                    write_into(&mut inode.durable, offset, &data);
                    w.stats.unsynced_writes_applied += 1;
                }
                _ => {
                    // Sectors are the disk's, aligned to the file's offsets: each one
                    // lands or does not. Past the file's durable end, a file under
                    // `tear_under` may also read back zeros there (its size reached
                    // the disk before its data, as on XFS or ext4 data=writeback).
                    let zeros = always_torn.contains(id);
                    let mut at = 0;
                    while at < data.len() {
                        let boundary = (offset + at) / SECTOR_BYTES * SECTOR_BYTES + SECTOR_BYTES;
                        let end = (boundary - offset).min(data.len());
                        let extends = offset + at >= inode.durable.len();
                        match w.rng.gen_range(0..if zeros && extends { 3 } else { 2 }) {
                            0 => write_into(&mut inode.durable, offset + at, &data[at..end]),
                            1 => {}
                            _ => write_into(&mut inode.durable, offset + at, &vec![0; end - at]),
                        }
                        at = end;
                    }
                    w.stats.unsynced_writes_torn += 1;
                }
            }
        }
        inode.live = inode.durable.clone();
    }
    disk.recount_used();
    w.disks.insert(node, disk);
}

fn write_into(file: &mut Vec<u8>, offset: usize, data: &[u8]) {
    let end = offset + data.len();
    if file.len() < end {
        file.resize(end, 0);
    }
    file[offset..end].copy_from_slice(data);
}

#[derive(Debug, Clone, Copy)]
enum Rot {
    Bit,
    Sector,
}

/// One node's disk. Cheap to clone.
#[derive(Clone)]
pub struct SimDisk {
    world: World,
    node: NodeId,
}

impl SimDisk {
    pub(crate) fn new(world: World, node: NodeId) -> Self {
        Self { world, node }
    }

    /// The virtual time an operation takes: a seek-like base with jitter plus 1 GB/s.
    async fn pause(&self, base_us: u64, bytes: usize) {
        let jitter = self.world.random_below(base_us.max(1));
        let time = Duration::from_micros(base_us + jitter) + Duration::from_nanos(bytes as u64);
        crate::world::pause(&self.world, time).await;
    }

    /// Runs `f` on this node's disk state, after an EIO draw when `may_fail`.
    fn with<T>(
        &self,
        op: &str,
        path: &str,
        may_fail: bool,
        f: impl FnOnce(&mut DiskState) -> Result<T, DiskError>,
    ) -> Result<T, DiskError> {
        let mut w = self.world.lock();
        let node = self.node;
        let rate = w.disks.get(&node).map_or(0.0, |d| d.eio_rate);
        if may_fail && w.chance(rate) {
            w.stats.eio_returned += 1;
            w.trace(format_args!("disk {node} {op} {path} EIO"));
            return Err(DiskError::Io { path: path.into() });
        }
        let disk = w.disks.get_mut(&node).expect("disk exists for node");
        let result = f(disk);
        if matches!(result, Err(DiskError::NoSpace { .. })) {
            w.stats.nospace_returned += 1;
        }
        let ok = result.is_ok();
        w.trace(format_args!("disk {node} {op} {path} {ok}"));
        result
    }

    /// Flips one bit of `path` (both images). Returns false when there is no such file.
    pub fn flip_bit(&self, path: &str, bit: u64) -> bool {
        self.mutate(path, Rot::Bit, |file| {
            if file.is_empty() {
                return false;
            }
            let bit = bit % (file.len() as u64 * 8);
            file[(bit / 8) as usize] ^= 1 << (bit % 8);
            true
        })
    }

    /// Zeroes the 512-byte sector holding byte `offset` of `path` (both images).
    pub fn zero_sector(&self, path: &str, offset: u64) -> bool {
        self.mutate(path, Rot::Sector, |file| {
            if file.is_empty() {
                return false;
            }
            let start = (offset as usize % file.len()) / SECTOR_BYTES * SECTOR_BYTES;
            let end = (start + SECTOR_BYTES).min(file.len());
            file[start..end].fill(0);
            true
        })
    }

    fn mutate(&self, path: &str, kind: Rot, f: impl Fn(&mut Vec<u8>) -> bool) -> bool {
        let mut w = self.world.lock();
        let node = self.node;
        let Some(disk) = w.disks.get_mut(&node) else {
            return false;
        };
        let Some(&inode) = disk.live.get(path) else {
            return false;
        };
        let inode = disk.inodes.get_mut(&inode).expect("linked inode exists");
        let live = f(&mut inode.live);
        let durable = f(&mut inode.durable);
        let rotted = live || durable;
        if rotted {
            match kind {
                Rot::Bit => w.stats.bits_flipped += 1,
                Rot::Sector => w.stats.sectors_zeroed += 1,
            }
        }
        w.trace(format_args!("rot node {node} {path} {kind:?}"));
        rotted
    }

    /// Empties the directory `dir` in both images, as a replaced data disk mounted there
    /// would be (the rest of the disk, e.g. Raft's state, is kept). Returns the names
    /// that were removed. Meant for a node that is down.
    pub fn replace_dir(&self, dir: &str) -> Vec<String> {
        let mut w = self.world.lock();
        let node = self.node;
        let Some(disk) = w.disks.get_mut(&node) else {
            return Vec::new();
        };
        let prefix = format!("{dir}/");
        let names: Vec<String> = disk
            .live
            .keys()
            .chain(disk.durable.keys())
            .filter(|n| n.starts_with(&prefix))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for name in &names {
            disk.unlink_live(name);
            if let Some(inode) = disk.durable.remove(name) {
                disk.drop_if_unreferenced(inode);
            }
        }
        disk.unsynced_dir_ops.remove(dir);
        w.trace(format_args!(
            "disk {node} replaced {dir}: {} files",
            names.len()
        ));
        names
    }

    /// Sets the probability that a read or write fails with EIO.
    pub fn set_eio_rate(&self, rate: f64) {
        self.configure(|d| d.eio_rate = rate);
    }

    /// Makes the disk acknowledge syncs without persisting (see `DiskState`).
    pub fn set_lying_sync(&self, lying: bool) {
        self.configure(|d| d.lying_sync = lying);
    }

    /// Makes every sync take about `us` microseconds (a slow disk): crashes then often
    /// land while writes are unsynced, so appends tear.
    pub fn set_sync_us(&self, us: u64) {
        self.configure(|d| d.sync_us = (us > 0).then_some(us));
    }

    fn sync_base_us(&self) -> u64 {
        self.world
            .lock()
            .disks
            .get(&self.node)
            .and_then(|d| d.sync_us)
            .unwrap_or(SYNC_BASE_US)
    }

    /// Makes only the syncs of paths under `prefix` lie (a lying cache in front of one
    /// directory): the rest of the disk stays honest.
    pub fn set_lying_sync_under(&self, prefix: &str) {
        let prefix = prefix.to_string();
        self.configure(|d| d.lying_under = Some(prefix));
    }

    fn configure(&self, f: impl FnOnce(&mut DiskState)) {
        if let Some(d) = self.world.lock().disks.get_mut(&self.node) {
            f(d);
        }
    }

    /// True (and counted) when this sync is to be acknowledged without effect.
    fn lie(&self, op: &str, path: &str) -> bool {
        let mut w = self.world.lock();
        let node = self.node;
        let lies = w.disks.get(&node).is_some_and(|d| {
            d.lying_sync
                || d.lying_under
                    .as_ref()
                    .is_some_and(|p| path.starts_with(p.as_str()))
        });
        if !lies {
            return false;
        }
        w.stats.syncs_lied += 1;
        w.trace(format_args!("disk {node} {op} {path} lied"));
        true
    }

    /// Sets the capacity; writes that would grow the disk past it fail with no-space.
    pub fn set_capacity(&self, capacity_bytes: u64) {
        self.configure(|d| d.capacity_bytes = capacity_bytes);
    }

    /// True when a crash now could lose something: unsynced writes or namespace ops.
    /// Makes unsynced writes to files under `prefix` tear whenever the node crashes.
    pub fn set_tear_under(&self, prefix: &str) {
        let prefix = prefix.to_string();
        self.configure(|d| d.tear_under = Some(prefix));
    }

    /// True when a file under `prefix` has writes not yet synced.
    pub fn has_unsynced_under(&self, prefix: &str) -> bool {
        let w = self.world.lock();
        w.disks.get(&self.node).is_some_and(|d| {
            d.live
                .iter()
                .filter(|(name, _)| name.starts_with(prefix))
                .any(|(_, id)| d.inodes.get(id).is_some_and(|i| !i.unsynced.is_empty()))
        })
    }

    pub fn has_unsynced(&self) -> bool {
        let w = self.world.lock();
        w.disks.get(&self.node).is_some_and(|d| {
            d.unsynced_dir_ops.values().any(|ops| !ops.is_empty())
                || d.inodes.values().any(|i| !i.unsynced.is_empty())
        })
    }

    /// Live file names (what a running node sees), sorted.
    pub fn live_names(&self) -> Vec<String> {
        let w = self.world.lock();
        w.disks[&self.node].live_names().map(String::from).collect()
    }

    /// Length of the live file `path` (what a running node sees), if it exists.
    pub fn live_len(&self, path: &str) -> Option<u64> {
        let w = self.world.lock();
        let d = &w.disks[&self.node];
        let inode = d.live.get(path)?;
        Some(d.inodes[inode].live.len() as u64)
    }

    /// What would survive a crash right now: every durable name with its durable bytes.
    /// Checkers read this, not the node, to judge durability.
    pub fn durable_files(&self) -> BTreeMap<String, Vec<u8>> {
        let w = self.world.lock();
        let disk = &w.disks[&self.node];
        disk.durable_names()
            .map(|n| {
                (
                    n.to_string(),
                    disk.durable_file(n).expect("durable").to_vec(),
                )
            })
            .collect()
    }
}

impl Disk for SimDisk {
    async fn write_at(&self, path: &str, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        check_path(path)?;
        self.pause(20, data.len()).await;
        self.with("write", path, true, |d| {
            let (inode, new) = match d.live.get(path) {
                Some(&i) => (i, false),
                None => (d.next_inode, true),
            };
            let current = if new {
                0
            } else {
                d.inodes[&inode].live.len() as u64
            };
            let grow = (offset + data.len() as u64).saturating_sub(current);
            if d.used_bytes + grow > d.capacity_bytes {
                return Err(DiskError::NoSpace { path: path.into() });
            }
            if new {
                d.next_inode += 1;
                d.inodes.insert(inode, Inode::default());
                d.live.insert(path.to_string(), inode);
                d.log_dir_op(
                    path,
                    DirOp::Link {
                        path: path.into(),
                        inode,
                    },
                );
            }
            d.used_bytes += grow;
            let file = d.inodes.get_mut(&inode).expect("inode");
            write_into(&mut file.live, offset as usize, data);
            file.unsynced.push(Pending::Write(offset, data.to_vec()));
            Ok(())
        })
    }

    async fn read_at(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>, DiskError> {
        check_path(path)?;
        self.pause(20, len as usize).await;
        self.with("read", path, true, |d| {
            let file = &d.inodes[&d.inode_of(path)?].live;
            let flen = file.len() as u64;
            if offset.checked_add(len).is_none_or(|end| end > flen) {
                return Err(DiskError::ShortRead {
                    path: path.into(),
                    offset,
                    wanted: len,
                    len: flen,
                });
            }
            Ok(file[offset as usize..(offset + len) as usize].to_vec())
        })
    }

    async fn sync(&self, path: &str) -> Result<(), DiskError> {
        check_path(path)?;
        self.pause(self.sync_base_us(), 0).await;
        let lied = self.lie("sync", path);
        self.with("sync", path, true, |d| {
            let inode = d.inode_of(path)?;
            if lied {
                return Ok(());
            }
            d.inodes.get_mut(&inode).expect("inode").persist();
            Ok(())
        })
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), DiskError> {
        check_path(from)?;
        check_path(to)?;
        self.pause(20, 0).await;
        self.with("rename", to, false, |d| {
            let inode = d.inode_of(from)?;
            d.live.remove(from);
            if from != to {
                d.unlink_live(to);
            }
            d.live.insert(to.to_string(), inode);
            let op = DirOp::Rename {
                from: from.into(),
                to: to.into(),
                inode,
            };
            d.log_dir_op(to, op);
            Ok(())
        })
    }

    async fn sync_dir(&self, dir: &str) -> Result<(), DiskError> {
        check_path(dir)?;
        self.pause(self.sync_base_us(), 0).await;
        if self.lie("sync_dir", dir) {
            return Ok(());
        }
        self.with("sync_dir", dir, true, |d| {
            let mut displaced = Vec::new();
            for op in d.unsynced_dir_ops.remove(dir).unwrap_or_default() {
                displaced.extend(d.apply_durable(op));
            }
            for inode in displaced {
                d.drop_if_unreferenced(inode);
            }
            Ok(())
        })
    }

    async fn remove(&self, path: &str) -> Result<(), DiskError> {
        check_path(path)?;
        self.pause(20, 0).await;
        self.with("remove", path, false, |d| {
            d.inode_of(path)?;
            d.unlink_live(path);
            d.log_dir_op(path, DirOp::Unlink { path: path.into() });
            Ok(())
        })
    }

    async fn list(&self, dir: &str) -> Result<Vec<String>, DiskError> {
        check_path(dir)?;
        self.pause(20, 0).await;
        self.with("list", dir, false, |d| {
            let prefix = format!("{dir}/");
            Ok(d.live
                .keys()
                .filter_map(|p| p.strip_prefix(&prefix))
                .filter(|rest| !rest.contains('/'))
                .map(String::from)
                .collect())
        })
    }

    async fn len(&self, path: &str) -> Result<u64, DiskError> {
        check_path(path)?;
        self.with("len", path, false, |d| {
            Ok(d.inodes[&d.inode_of(path)?].live.len() as u64)
        })
    }

    async fn space(&self) -> Result<engine::env::DiskSpace, DiskError> {
        match self.world.lock().disks.get(&self.node) {
            Some(d) => Ok(engine::env::DiskSpace {
                total_bytes: d.capacity_bytes,
                free_bytes: d.capacity_bytes.saturating_sub(d.used_bytes),
            }),
            None => Err(DiskError::Io { path: ".".into() }),
        }
    }

    type Backend = SimBackend;

    async fn storage_backend(&self, path: &str) -> Result<SimBackend, DiskError> {
        check_path(path)?;
        let exists = self.with("db-open", path, false, |d| Ok(d.live.contains_key(path)))?;
        if !exists {
            self.write_at(path, 0, &[]).await?;
            self.sync_dir(parent(path)).await?;
        }
        let epoch = self.with("db-open", path, false, |d| Ok(d.epoch))?;
        Ok(SimBackend {
            disk: self.clone(),
            path: path.into(),
            epoch,
        })
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        f()
    }
}

fn io_error(e: DiskError) -> std::io::Error {
    match e {
        DiskError::NotFound { .. } => std::io::Error::new(std::io::ErrorKind::NotFound, e),
        DiskError::NoSpace { .. } => std::io::Error::from_raw_os_error(28), // ENOSPC
        DiskError::Io { .. } => std::io::Error::from_raw_os_error(5),       // EIO
        other => std::io::Error::other(other),
    }
}

/// A redb storage backend on one SimDisk file: the same live and durable images, the
/// same crash model, EIO, capacity and lying syncs as every other file. Its calls take
/// no virtual time (redb's I/O is synchronous).
pub struct SimBackend {
    disk: SimDisk,
    path: String,
    epoch: u64,
}

impl std::fmt::Debug for SimBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimBackend(node {}, {})", self.disk.node, self.path)
    }
}

impl SimBackend {
    fn with<T>(
        &self,
        op: &str,
        may_fail: bool,
        f: impl FnOnce(&mut DiskState, u64) -> Result<T, DiskError>,
    ) -> std::io::Result<T> {
        let epoch = self.epoch;
        self.disk
            .with(op, &self.path, may_fail, |d| {
                if d.epoch != epoch {
                    return Err(DiskError::Other {
                        path: String::new(),
                        message: "the process that opened this file is dead".into(),
                    });
                }
                let inode = d.inode_of(&self.path)?;
                f(d, inode)
            })
            .map_err(io_error)
    }

    /// Grows or shrinks the live image to `end` bytes, within the disk's capacity.
    fn resize(d: &mut DiskState, inode: u64, end: u64, path: &str) -> Result<(), DiskError> {
        let current = d.inodes[&inode].live.len() as u64;
        if end > current && d.used_bytes + (end - current) > d.capacity_bytes {
            return Err(DiskError::NoSpace { path: path.into() });
        }
        d.used_bytes = d.used_bytes + end.saturating_sub(current) - current.saturating_sub(end);
        d.inodes
            .get_mut(&inode)
            .expect("inode")
            .live
            .resize(end as usize, 0);
        Ok(())
    }
}

impl redb::StorageBackend for SimBackend {
    fn len(&self) -> std::io::Result<u64> {
        self.with("db-len", false, |d, i| Ok(d.inodes[&i].live.len() as u64))
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.with("db-read", true, |d, i| {
            let file = &d.inodes[&i].live;
            let end = offset as usize + out.len();
            let Some(src) = file.get(offset as usize..end) else {
                return Err(DiskError::ShortRead {
                    path: String::new(),
                    offset,
                    wanted: out.len() as u64,
                    len: file.len() as u64,
                });
            };
            out.copy_from_slice(src);
            Ok(())
        })
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.with("db-set-len", true, |d, i| {
            Self::resize(d, i, len, &self.path)?;
            let file = d.inodes.get_mut(&i).expect("inode");
            file.unsynced.push(Pending::SetLen(len));
            Ok(())
        })
    }

    fn sync_data(&self) -> std::io::Result<()> {
        let lied = self.disk.lie("db-sync", &self.path);
        self.with("db-sync", true, |d, i| {
            if !lied {
                d.inodes.get_mut(&i).expect("inode").persist();
            }
            Ok(())
        })
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.with("db-write", true, |d, i| {
            let end = offset + data.len() as u64;
            if end > d.inodes[&i].live.len() as u64 {
                Self::resize(d, i, end, &self.path)?;
            }
            let file = d.inodes.get_mut(&i).expect("inode");
            write_into(&mut file.live, offset as usize, data);
            file.unsynced.push(Pending::Write(offset, data.to_vec()));
            Ok(())
        })
    }
}
