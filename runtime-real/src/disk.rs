//! RealDisk: the Disk trait on the local file system under one root directory.
//!
//! `sync` is fdatasync on the file; `sync_dir` is fsync on the directory, which is what
//! makes a create, rename or remove durable on Linux file systems. Blocking calls run on
//! tokio's blocking pool. Paths are checked before they touch the file system, so no
//! path can leave the root (no absolute paths, no `..`, no empty components).

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read as _, Seek as _};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use engine::env::{Disk, DiskError};

#[derive(Clone)]
pub struct RealDisk {
    root: Arc<PathBuf>,
}

fn map_err(path: &str, e: io::Error) -> DiskError {
    let path = path.to_string();
    match (e.kind(), e.raw_os_error()) {
        (ErrorKind::NotFound, _) => DiskError::NotFound { path },
        (_, Some(libc::ENOSPC)) | (_, Some(libc::EDQUOT)) => DiskError::NoSpace { path },
        (_, Some(libc::EIO)) => DiskError::Io { path },
        _ => DiskError::Other {
            path,
            message: e.to_string(),
        },
    }
}

fn check(path: &str) -> Result<(), DiskError> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        || path.contains('\0');
    if bad {
        Err(DiskError::InvalidPath { path: path.into() })
    } else {
        Ok(())
    }
}

impl RealDisk {
    /// A disk rooted at `root`, created if missing.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(Self {
            root: Arc::new(root),
        })
    }

    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Runs `f` on the blocking pool with the checked, rooted path.
    async fn run<T: Send + 'static>(
        &self,
        path: &str,
        f: impl FnOnce(PathBuf) -> io::Result<T> + Send + 'static,
    ) -> Result<T, DiskError> {
        check(path)?;
        let full = self.root.join(path);
        let owned = path.to_string();
        match tokio::task::spawn_blocking(move || f(full)).await {
            Ok(result) => result.map_err(|e| map_err(&owned, e)),
            Err(join) => Err(DiskError::Other {
                path: owned,
                message: format!("blocking task failed: {join}"),
            }),
        }
    }
}

/// Writes `data` at `offset` of the file at `p`, creating it (and its directories)
/// when missing; answers the open file.
fn write_file(p: &std::path::Path, offset: u64, data: &[u8]) -> io::Result<File> {
    if let Some(dir) = p.parent() {
        fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(p)?;
    file.write_all_at(data, offset)?;
    Ok(file)
}

/// Reads `len` bytes at `offset` of an open file of length `flen`, into spare capacity
/// (no zeroing of a buffer about to be overwritten); a range past the end is `ShortRead`.
fn read_range(
    file: &File,
    path: &str,
    flen: u64,
    offset: u64,
    len: u64,
) -> io::Result<Result<Vec<u8>, DiskError>> {
    let short = |got: u64| DiskError::ShortRead {
        path: path.into(),
        offset,
        wanted: len,
        len: got,
    };
    if offset.checked_add(len).is_none_or(|end| end > flen) {
        return Ok(Err(short(flen)));
    }
    let mut buf = Vec::with_capacity(len as usize);
    let mut file = file;
    file.seek(std::io::SeekFrom::Start(offset))?;
    file.take(len).read_to_end(&mut buf)?;
    if buf.len() as u64 != len {
        return Ok(Err(short(offset + buf.len() as u64)));
    }
    Ok(Ok(buf))
}

impl Disk for RealDisk {
    async fn write_at(&self, path: &str, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        let data = data.to_vec();
        self.run(path, move |p| write_file(&p, offset, &data).map(drop))
            .await
    }

    async fn write_synced(&self, path: &str, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        let data = data.to_vec();
        self.run(path, move |p| write_file(&p, offset, &data)?.sync_data())
            .await
    }

    async fn read_at(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>, DiskError> {
        let owned = path.to_string();
        self.run(path, move |p| {
            let file = File::open(&p)?;
            let flen = file.metadata()?.len();
            read_range(&file, &owned, flen, offset, len)
        })
        .await?
    }

    async fn write_sealed(
        &self,
        tmp: &str,
        offset: u64,
        data: Vec<u8>,
        to: &str,
        dir: &str,
    ) -> Result<(), DiskError> {
        check(to)?;
        check(dir)?;
        let (target, directory) = (self.root.join(to), self.root.join(dir));
        self.run(tmp, move |p| {
            write_file(&p, offset, &data)?.sync_data()?;
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::rename(&p, &target)?;
            File::open(&directory)?.sync_all()
        })
        .await
    }

    async fn read_planned<P>(
        &self,
        path: &str,
        head: u64,
        plan: P,
    ) -> Result<engine::env::PlannedRead, DiskError>
    where
        P: FnOnce(u64, &[u8]) -> Vec<(u64, u64)> + Send + 'static,
    {
        let owned = path.to_string();
        self.run(path, move |p| {
            let file = File::open(&p)?;
            let len = file.metadata()?.len();
            let head = match read_range(&file, &owned, len, 0, head.min(len))? {
                Ok(head) => head,
                Err(e) => return Ok(Err(e)),
            };
            let mut parts = Vec::new();
            for (offset, n) in plan(len, &head) {
                match read_range(&file, &owned, len, offset, n)? {
                    Ok(part) => parts.push(part),
                    Err(e) => return Ok(Err(e)),
                }
            }
            Ok(Ok(engine::env::PlannedRead { len, head, parts }))
        })
        .await?
    }

    async fn sync(&self, path: &str) -> Result<(), DiskError> {
        self.run(path, |p| File::open(p)?.sync_data()).await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), DiskError> {
        check(to)?;
        let target = self.root.join(to);
        self.run(from, move |p| {
            if let Some(dir) = target.parent() {
                fs::create_dir_all(dir)?;
            }
            fs::rename(p, &target)
        })
        .await
    }

    async fn sync_dir(&self, dir: &str) -> Result<(), DiskError> {
        self.run(dir, |p| File::open(p)?.sync_all()).await
    }

    async fn remove(&self, path: &str) -> Result<(), DiskError> {
        self.run(path, fs::remove_file).await
    }

    async fn list(&self, dir: &str) -> Result<Vec<String>, DiskError> {
        self.run(dir, |p| {
            let entries = match fs::read_dir(&p) {
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
                other => other?,
            };
            let mut names = Vec::new();
            for entry in entries {
                let entry = entry?;
                // Names that are not UTF-8 are not ours (every name we write is ASCII).
                if entry.file_type()?.is_file()
                    && let Ok(name) = entry.file_name().into_string()
                {
                    names.push(name);
                }
            }
            names.sort();
            Ok(names)
        })
        .await
    }

    async fn len(&self, path: &str) -> Result<u64, DiskError> {
        self.run(path, |p| Ok(fs::metadata(p)?.len())).await
    }

    async fn space(&self) -> Result<engine::env::DiskSpace, DiskError> {
        let root = self.root.clone();
        let stat = tokio::task::spawn_blocking(move || statvfs(&root))
            .await
            .map_err(|join| DiskError::Other {
                path: ".".into(),
                message: format!("blocking task failed: {join}"),
            })?;
        stat.map_err(|e| map_err(".", e))
    }

    type Backend = redb::backends::FileBackend;

    async fn storage_backend(&self, path: &str) -> Result<Self::Backend, DiskError> {
        let file = self
            .run(path, |p| {
                let dir = p
                    .parent()
                    .expect("a rooted path has a parent")
                    .to_path_buf();
                fs::create_dir_all(&dir)?;
                let existed = p.exists();
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .read(true)
                    .write(true)
                    .open(&p)?;
                if !existed {
                    File::open(&dir)?.sync_all()?;
                }
                Ok(file)
            })
            .await?;
        redb::backends::FileBackend::new(file).map_err(|e| DiskError::Other {
            path: path.into(),
            message: e.to_string(),
        })
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        match tokio::task::spawn_blocking(f).await {
            Ok(v) => v,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }
}

/// The file system under `path`: its size and what a non-root writer may still use.
fn statvfs(path: &std::path::Path) -> io::Result<engine::env::DiskSpace> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let frsize = st.f_frsize as u64;
    Ok(engine::env::DiskSpace {
        total_bytes: (st.f_blocks as u64).saturating_mul(frsize),
        free_bytes: (st.f_bavail as u64).saturating_mul(frsize),
    })
}
