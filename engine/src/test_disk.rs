//! An in-memory Disk for unit tests of the format code: no latency, no faults, no
//! crash model (SimDisk in runtime-sim has those). Test-only.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::env::{Disk, DiskError};

#[derive(Clone, Default)]
pub struct MemDisk(Arc<Mutex<BTreeMap<String, Vec<u8>>>>);

impl MemDisk {
    pub fn get(&self, p: &str) -> Result<Vec<u8>, DiskError> {
        self.0
            .lock()
            .unwrap()
            .get(p)
            .cloned()
            .ok_or(DiskError::NotFound { path: p.into() })
    }
    pub fn put(&self, p: &str, bytes: Vec<u8>) {
        self.0.lock().unwrap().insert(p.into(), bytes);
    }
    pub fn poke(&self, p: &str, f: impl FnOnce(&mut Vec<u8>)) {
        f(self.0.lock().unwrap().get_mut(p).unwrap())
    }
}

impl Disk for MemDisk {
    async fn write_at(&self, p: &str, off: u64, d: &[u8]) -> Result<(), DiskError> {
        let mut m = self.0.lock().unwrap();
        let f = m.entry(p.into()).or_default();
        let end = off as usize + d.len();
        if f.len() < end {
            f.resize(end, 0);
        }
        f[off as usize..end].copy_from_slice(d);
        Ok(())
    }
    async fn read_at(&self, p: &str, off: u64, len: u64) -> Result<Vec<u8>, DiskError> {
        let f = self.get(p)?;
        if off + len > f.len() as u64 {
            return Err(DiskError::ShortRead {
                path: p.into(),
                offset: off,
                wanted: len,
                len: f.len() as u64,
            });
        }
        Ok(f[off as usize..(off + len) as usize].to_vec())
    }
    async fn sync(&self, p: &str) -> Result<(), DiskError> {
        self.get(p).map(|_| ())
    }
    async fn rename(&self, from: &str, to: &str) -> Result<(), DiskError> {
        let f = self.get(from)?;
        let mut m = self.0.lock().unwrap();
        m.remove(from);
        m.insert(to.into(), f);
        Ok(())
    }
    async fn sync_dir(&self, _: &str) -> Result<(), DiskError> {
        Ok(())
    }
    async fn remove(&self, p: &str) -> Result<(), DiskError> {
        self.0
            .lock()
            .unwrap()
            .remove(p)
            .map(|_| ())
            .ok_or(DiskError::NotFound { path: p.into() })
    }
    async fn list(&self, dir: &str) -> Result<Vec<String>, DiskError> {
        let prefix = format!("{dir}/");
        Ok(self
            .0
            .lock()
            .unwrap()
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(String::from)
            .collect())
    }
    async fn len(&self, p: &str) -> Result<u64, DiskError> {
        self.get(p).map(|f| f.len() as u64)
    }

    async fn space(&self) -> Result<crate::env::DiskSpace, DiskError> {
        let used: u64 = self
            .0
            .lock()
            .unwrap()
            .values()
            .map(|f| f.len() as u64)
            .sum();
        Ok(crate::env::DiskSpace {
            total_bytes: u64::MAX,
            free_bytes: u64::MAX - used,
        })
    }

    type Backend = MemBackend;
    async fn storage_backend(&self, p: &str) -> Result<MemBackend, DiskError> {
        self.0.lock().unwrap().entry(p.into()).or_default();
        Ok(MemBackend {
            disk: self.clone(),
            path: p.into(),
        })
    }
    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        f()
    }
}

/// A redb backend on one MemDisk file.
#[derive(Debug)]
pub struct MemBackend {
    disk: MemDisk,
    path: String,
}

impl std::fmt::Debug for MemDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemDisk")
    }
}

impl redb::StorageBackend for MemBackend {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.disk.get(&self.path).map_or(0, |f| f.len() as u64))
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let f = self.disk.get(&self.path).map_err(std::io::Error::other)?;
        let end = offset as usize + out.len();
        let src = f
            .get(offset as usize..end)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        out.copy_from_slice(src);
        Ok(())
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.disk.poke(&self.path, |f| f.resize(len as usize, 0));
        Ok(())
    }
    fn sync_data(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.disk.poke(&self.path, |f| {
            let end = offset as usize + data.len();
            if f.len() < end {
                f.resize(end, 0);
            }
            f[offset as usize..end].copy_from_slice(data);
        });
        Ok(())
    }
}
