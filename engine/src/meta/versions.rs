//! Object versions: what a bucket's versioning does to the version a write or a
//! DELETE replaces, delete markers, and removing one version by its id.
//!
//! The objects table holds each key's current version (a delete marker may be it); the
//! versions table holds the others, one row per (bucket, key, version), so a key's
//! history never grows inside one record. A version's id is the log index that wrote it
//! ([`Stored::version`]); S3's `null` version is the one written while versioning was
//! off or suspended ([`Stored::null`]), and a key has at most one.
//!
//! Invariants:
//! - a key with noncurrent versions has a current one: removing the current version
//!   promotes the newest noncurrent one;
//! - a blob's data ref names the table its version is in (`Site::Object` for a current
//!   blob, `Site::Version` for a noncurrent one), so repair and the sweep find every
//!   version's shards; a completed multipart object's parts are keyed by version and
//!   need no move;
//! - a bucket that never had versioning has no noncurrent versions: a write replaces
//!   the current version, as before versioning existed.

use serde::{Deserialize, Serialize};

pub use super::access::Versioning;
use super::access::{self, Setting};
use super::{Applied, DataRef, MetaTables, ObjectData, ObjectMeta, Site, Stored};

/// The setting row of a bucket's versioning (a bucket setting: it bumps the access
/// epoch, so the S3 layer's cached bucket state sees it).
pub const VERSIONING: &str = "b/versioning";

/// One version of a key, as a request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionRef {
    /// S3's `null` version.
    Null,
    /// The version written at this log index.
    Id(u64),
}

/// S3's id of the `null` version.
pub const NULL_ID: &str = "null";

/// The S3 version id of the version written at log `version` (`null`: S3's null one):
/// 16 hex digits.
pub fn version_id(version: u64, null: bool) -> String {
    if null {
        NULL_ID.into()
    } else {
        format!("{version:016x}")
    }
}

impl VersionRef {
    /// A version id as `version_id` makes them, or `null`.
    pub fn parse(id: &str) -> Option<Self> {
        if id == NULL_ID {
            return Some(VersionRef::Null);
        }
        let v = u64::from_str_radix(id, 16).ok()?;
        (id.len() == 16).then_some(VersionRef::Id(v))
    }

    pub fn names(&self, s: &Stored) -> bool {
        match self {
            VersionRef::Null => s.null,
            VersionRef::Id(v) => !s.null && s.version == *v,
        }
    }
}

impl Stored {
    /// This version's S3 id.
    pub fn version_id(&self) -> String {
        version_id(self.version, self.null)
    }
}

/// The reads that find a version and a bucket's versioning: the state machine's
/// tables, and the read view nodes serve from (`crate::meta::store::MetaReader`).
pub trait VersionReads {
    type Error;
    fn current(&self, bucket: &str, key: &str) -> Result<Option<Stored>, Self::Error>;
    fn noncurrent(&self, bucket: &str, key: &str, v: u64) -> Result<Option<Stored>, Self::Error>;
    /// The noncurrent versions of (bucket, key), oldest first.
    fn all_noncurrent(&self, bucket: &str, key: &str) -> Result<Vec<Stored>, Self::Error>;
    fn bucket_setting(&self, bucket: &str, name: &str) -> Result<Option<Setting>, Self::Error>;
}

impl<T: MetaTables> VersionReads for T {
    type Error = T::Error;
    fn current(&self, bucket: &str, key: &str) -> Result<Option<Stored>, T::Error> {
        self.object(bucket, key)
    }
    fn noncurrent(&self, bucket: &str, key: &str, v: u64) -> Result<Option<Stored>, T::Error> {
        self.version(bucket, key, v)
    }
    fn all_noncurrent(&self, bucket: &str, key: &str) -> Result<Vec<Stored>, T::Error> {
        self.versions(bucket, key)
    }
    fn bucket_setting(&self, bucket: &str, name: &str) -> Result<Option<Setting>, T::Error> {
        self.setting(bucket, name)
    }
}

/// The versioning of `bucket` (`None`: never set).
pub fn status<T: VersionReads>(t: &T, bucket: &str) -> Result<Option<Versioning>, T::Error> {
    Ok(match t.bucket_setting(bucket, VERSIONING)? {
        Some(Setting::Versioning(v)) => Some(v),
        _ => None,
    })
}

/// The version of (bucket, key) that `which` names, current or not.
pub fn find<T: VersionReads>(
    t: &T,
    (bucket, key): (&str, &str),
    which: VersionRef,
) -> Result<Option<Stored>, T::Error> {
    if let Some(current) = t.current(bucket, key)?
        && which.names(&current)
    {
        return Ok(Some(current));
    }
    Ok(match which {
        VersionRef::Id(v) => t.noncurrent(bucket, key, v)?.filter(|s| which.names(s)),
        VersionRef::Null => t.all_noncurrent(bucket, key)?.into_iter().find(|s| s.null),
    })
}

/// What becomes the current version of a key.
pub(super) enum NewVersion<'a> {
    Object(&'a ObjectMeta),
    /// A delete marker, made at this wall-clock time.
    Marker {
        created_ms: u64,
    },
}

/// A new current version of (bucket, key) at log `index`, as the bucket's versioning
/// has it: the version it replaces is kept as noncurrent, unless both are the `null`
/// version (or the bucket never had versioning), when it goes.
pub(super) fn replace_current<T: MetaTables>(
    t: &mut T,
    (bucket, key): (&str, &str),
    index: u64,
    new: NewVersion<'_>,
) -> Result<Applied, T::Error> {
    let status = status(t, bucket)?;
    let null = status != Some(Versioning::Enabled);
    let existed = t.object(bucket, key)?;
    let had = existed.is_some();
    if let Some(old) = existed {
        t.remove_object(bucket, key)?;
        match status {
            Some(_) if !(null && old.null) => demote(t, bucket, key, old)?,
            _ => drop_stored(t, bucket, &old)?,
        }
    }
    if null && status.is_some() {
        for old in t.versions(bucket, key)? {
            if old.null {
                t.remove_version(bucket, key, old.version)?;
                drop_stored(t, bucket, &old)?;
            }
        }
    }
    let (meta, marker) = match new {
        NewVersion::Object(meta) => (meta.clone(), false),
        // No versioning, no marker: the key is simply gone.
        NewVersion::Marker { .. } if status.is_none() => {
            return Ok(if had {
                Applied::Done
            } else {
                Applied::NoSuchKey
            });
        }
        NewVersion::Marker { created_ms } => {
            let mut meta = ObjectMeta::without_data(0, String::new());
            meta.created_ms = created_ms;
            (meta, true)
        }
    };
    if let ObjectData::Blob(layout) = &meta.data {
        t.put_data_ref(layout.data_id, &DataRef::new(bucket, key, Site::Object))?;
    }
    let stored = Stored {
        version: index,
        meta,
        null,
        marker,
    };
    t.put_object(bucket, key, &stored)?;
    Ok(match (status, marker) {
        (None, _) => Applied::Version(index),
        (Some(_), false) => Applied::Versioned {
            version: index,
            null,
        },
        (Some(_), true) => Applied::Marker {
            version: index,
            null,
        },
    })
}

/// What became of one version a `DeleteVersionsAt` named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// It was not there.
    Missing,
    /// It was removed; `marker`: it was a delete marker.
    Removed { marker: bool },
    /// Its lock keeps it (`meta::lock`).
    Locked,
}

impl From<Option<bool>> for Outcome {
    /// What [`remove`] answered.
    fn from(removed: Option<bool>) -> Self {
        match removed {
            None => Outcome::Missing,
            Some(marker) => Outcome::Removed { marker },
        }
    }
}

/// Removes the version `which` of (bucket, key); `Some(was a marker)` when it was
/// there. Removing the current version makes the newest noncurrent one current.
pub(super) fn remove<T: MetaTables>(
    t: &mut T,
    (bucket, key): (&str, &str),
    which: VersionRef,
) -> Result<Option<bool>, T::Error> {
    let Some(found) = find(t, (bucket, key), which)? else {
        return Ok(None);
    };
    let current = t
        .object(bucket, key)?
        .is_some_and(|c| c.version == found.version);
    if current {
        t.remove_object(bucket, key)?;
        if let Some(newest) = t.newest_version(bucket, key)? {
            t.remove_version(bucket, key, newest.version)?;
            if let ObjectData::Blob(layout) = &newest.meta.data {
                t.put_data_ref(layout.data_id, &DataRef::new(bucket, key, Site::Object))?;
            }
            t.put_object(bucket, key, &newest)?;
        }
    } else {
        t.remove_version(bucket, key, found.version)?;
    }
    drop_stored(t, bucket, &found)?;
    Ok(Some(found.marker))
}

/// Moves `old` (no longer current) to the versions table.
fn demote<T: MetaTables>(t: &mut T, bucket: &str, key: &str, old: Stored) -> Result<(), T::Error> {
    if let ObjectData::Blob(layout) = &old.meta.data {
        let site = Site::Version {
            version: old.version,
        };
        t.put_data_ref(layout.data_id, &DataRef::new(bucket, key, site))?;
    }
    t.put_version(bucket, key, &old)
}

/// Removes what a version owns besides its row: its part rows, its blobs' data refs
/// (their shards become orphans for the sweep) and its ACL and tags.
pub(super) fn drop_stored<T: MetaTables>(
    t: &mut T,
    bucket: &str,
    old: &Stored,
) -> Result<(), T::Error> {
    match &old.meta.data {
        ObjectData::Empty => {}
        ObjectData::Blob(layout) => t.remove_data_ref(layout.data_id)?,
        ObjectData::Parts { .. } => {
            for part in t.object_parts(old.version)? {
                if let Some(layout) = &part.info.data {
                    t.remove_data_ref(layout.data_id)?;
                }
            }
            t.remove_object_parts(old.version)?;
        }
    }
    access::version_dropped(t, bucket, old.version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::tests::meta;
    use crate::meta::{Command, CommandV1, MetaState, PutCondition};

    fn run(s: &mut MetaState, index: u64, c: CommandV1) -> Applied {
        s.apply(index, &Command::V1(c))
    }

    fn put(s: &mut MetaState, index: u64, size: u64) -> Applied {
        let c = CommandV1::PutObject {
            bucket: "b".into(),
            key: "k".into(),
            meta: meta(size),
            condition: PutCondition::Always,
        };
        run(s, index, c)
    }

    fn set(s: &mut MetaState, index: u64, v: Versioning) {
        let c = CommandV1::PutSetting {
            bucket: "b".into(),
            name: VERSIONING.into(),
            setting: Setting::Versioning(v),
        };
        assert_eq!(run(s, index, c), Applied::Done);
    }

    fn delete(s: &mut MetaState, index: u64) -> Applied {
        let c = CommandV1::DeleteObject {
            bucket: "b".into(),
            key: "k".into(),
        };
        run(s, index, c)
    }

    fn remove(s: &mut MetaState, index: u64, which: &[VersionRef]) -> Applied {
        let c = CommandV1::DeleteVersions {
            bucket: "b".into(),
            targets: which.iter().map(|w| ("k".to_string(), *w)).collect(),
        };
        run(s, index, c)
    }

    /// The key's versions, newest first: (version, null, marker); the current first.
    fn history(s: &MetaState) -> Vec<(u64, bool, bool)> {
        let current = s.object("b", "k").map(|c| (c.version, c.null, c.marker));
        let older = s.versions("b", "k").unwrap();
        current
            .into_iter()
            .chain(older.iter().rev().map(|o| (o.version, o.null, o.marker)))
            .collect()
    }

    fn site(s: &MetaState, data_id: u128) -> Option<Site> {
        s.data_refs.get(&data_id).map(|r| r.site.clone())
    }

    fn bucket() -> MetaState {
        let mut s = MetaState::default();
        let c = CommandV1::CreateBucket {
            name: "b".into(),
            owner: "o".into(),
            created_ms: 0,
        };
        assert_eq!(run(&mut s, 1, c), Applied::Done);
        s
    }

    #[test]
    fn without_versioning_a_write_replaces_and_a_delete_removes() {
        let mut s = bucket();
        assert_eq!(put(&mut s, 2, 100), Applied::Version(2));
        assert_eq!(put(&mut s, 3, 101), Applied::Version(3));
        assert_eq!(history(&s), vec![(3, true, false)]);
        assert_eq!(site(&s, 100), None, "the replaced blob is an orphan");
        assert_eq!(delete(&mut s, 4), Applied::Done);
        assert_eq!(delete(&mut s, 5), Applied::NoSuchKey);
        assert!(s.data_refs.is_empty() && s.versions.is_empty());
    }

    #[test]
    fn enabled_keeps_every_version_and_deletes_write_markers() {
        let mut s = bucket();
        set(&mut s, 2, Versioning::Enabled);
        let v = |version| Applied::Versioned {
            version,
            null: false,
        };
        assert_eq!(put(&mut s, 3, 100), v(3));
        assert_eq!(put(&mut s, 4, 101), v(4));
        assert_eq!(history(&s), vec![(4, false, false), (3, false, false)]);
        // The noncurrent blob is still referenced, where repair will look for it.
        assert_eq!(site(&s, 100), Some(Site::Version { version: 3 }));
        assert_eq!(site(&s, 101), Some(Site::Object));
        let r = s.data_refs[&100].clone();
        let found = crate::meta::repair::layout_at(&s, 100, &r).unwrap();
        assert_eq!(found.map(|l| l.data_id), Some(100));

        assert_eq!(
            delete(&mut s, 5),
            Applied::Marker {
                version: 5,
                null: false
            }
        );
        assert_eq!(history(&s)[0], (5, false, true));
        // A conditional PUT sees no object under a marker.
        let c = CommandV1::PutObject {
            bucket: "b".into(),
            key: "k".into(),
            meta: meta(7),
            condition: PutCondition::IfEtag("e101".into()),
        };
        assert_eq!(run(&mut s, 6, c), Applied::PreconditionFailed);

        // Removing the marker makes the newest version current again.
        assert_eq!(
            remove(&mut s, 7, &[VersionRef::Id(5)]),
            Applied::Removed(vec![Some(true)])
        );
        assert_eq!(history(&s), vec![(4, false, false), (3, false, false)]);
        assert_eq!(site(&s, 101), Some(Site::Object));
        assert_eq!(
            remove(
                &mut s,
                8,
                &[VersionRef::Id(3), VersionRef::Id(3), VersionRef::Null]
            ),
            Applied::Removed(vec![Some(false), None, None])
        );
        assert_eq!(site(&s, 100), None);
        assert_eq!(history(&s), vec![(4, false, false)]);
    }

    #[test]
    fn suspended_writes_replace_the_one_null_version() {
        let mut s = bucket();
        assert_eq!(put(&mut s, 2, 100), Applied::Version(2));
        set(&mut s, 3, Versioning::Enabled);
        let versioned = Applied::Versioned {
            version: 4,
            null: false,
        };
        assert_eq!(put(&mut s, 4, 101), versioned);
        // The object from before versioning is kept as the null version.
        assert_eq!(history(&s), vec![(4, false, false), (2, true, false)]);
        set(&mut s, 5, Versioning::Suspended);
        let null = Applied::Versioned {
            version: 6,
            null: true,
        };
        assert_eq!(put(&mut s, 6, 102), null);
        assert_eq!(history(&s), vec![(6, true, false), (4, false, false)]);
        assert_eq!(site(&s, 100), None, "the old null version went");
        assert_eq!(
            put(&mut s, 7, 103).clone(),
            Applied::Versioned {
                version: 7,
                null: true
            }
        );
        assert_eq!(site(&s, 102), None);
        assert_eq!(
            delete(&mut s, 8),
            Applied::Marker {
                version: 8,
                null: true
            }
        );
        assert_eq!(history(&s), vec![(8, true, true), (4, false, false)]);
        assert_eq!(site(&s, 103), None);
        let gone = CommandV1::DeleteBucket { name: "b".into() };
        assert_eq!(run(&mut s, 9, gone.clone()), Applied::BucketNotEmpty);
        assert_eq!(
            remove(&mut s, 10, &[VersionRef::Null, VersionRef::Id(4)]),
            Applied::Removed(vec![Some(true), Some(false)])
        );
        assert!(history(&s).is_empty());
        assert!(s.data_refs.is_empty() && s.versions.is_empty());
        assert_eq!(run(&mut s, 11, gone), Applied::Done);
    }
}
