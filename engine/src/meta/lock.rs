//! Object lock: a bucket's lock configuration (its default retention), and each
//! version's retention (GOVERNANCE or COMPLIANCE, until a date) and legal hold.
//!
//! All of it is rows of the settings table (`meta::access`): the bucket's
//! [`LOCK_CONFIG`], and one [`version_lock`] row per protected version (an upload's
//! [`upload_lock`] row becomes its completed version's). Every rule that keeps a
//! protected version is decided here, at apply, with the time the proposer put in the
//! command, so two replicas never disagree and no race between a request's read and its
//! commit can remove a version its lock keeps:
//! - a bucket's lock can only be set while its versioning is Enabled, and then its
//!   versioning can no longer change (a suspended bucket would replace `null`
//!   versions) and the lock cannot be removed;
//! - a version under legal hold, or retained until a time after the command's, is not
//!   removed; a GOVERNANCE retention gives way to a command that bypasses it;
//! - a retention is only lengthened, unless it is GOVERNANCE and the command bypasses
//!   it; a COMPLIANCE one keeps its mode.

use serde::{Deserialize, Serialize};

use super::access::{self, Setting};
pub use super::retention::*;
use super::versions::{VERSIONING, VersionReads};
use super::{Applied, MetaTables, Stored};

/// The setting row of a bucket's object lock configuration.
pub const LOCK_CONFIG: &str = "b/object-lock";

/// A change to a version's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockChange {
    /// PutObjectRetention (`None`: remove it), bypassing governance or not.
    Retention {
        retention: Option<Retention>,
        bypass: bool,
    },
    /// PutObjectLegalHold.
    LegalHold(bool),
}

/// Whether setting (`Some`) or removing (`None`) bucket setting `name` keeps the lock's
/// rules: the lock needs versioning Enabled, and then neither changes.
pub(super) fn setting_allowed<T: MetaTables>(
    t: &T,
    bucket: &str,
    name: &str,
    setting: Option<&Setting>,
) -> Result<bool, T::Error> {
    let locked = || Ok::<_, T::Error>(config(t, bucket)?.is_some());
    Ok(match (name, setting) {
        (LOCK_CONFIG, Some(_)) => matches!(
            t.setting(bucket, VERSIONING)?,
            Some(Setting::Versioning(access::Versioning::Enabled))
        ),
        (LOCK_CONFIG, None) => !locked()?,
        (VERSIONING, Some(Setting::Versioning(v))) => {
            *v == access::Versioning::Enabled || !locked()?
        }
        _ => true,
    })
}

/// The bucket's lock configuration, if lock is enabled.
pub fn config<T: VersionReads>(t: &T, bucket: &str) -> Result<Option<LockConfig>, T::Error> {
    Ok(match t.bucket_setting(bucket, LOCK_CONFIG)? {
        Some(Setting::LockConfig(c)) => Some(c),
        _ => None,
    })
}

/// The lock of the version written at `version` (default: none).
pub fn of<T: VersionReads>(t: &T, bucket: &str, version: u64) -> Result<VersionLock, T::Error> {
    Ok(match t.bucket_setting(bucket, &version_lock(version))? {
        Some(Setting::Lock(l)) => l,
        _ => VersionLock::default(),
    })
}

/// Whether a command at `now_ms` (bypassing governance or not) may remove `s`.
pub(super) fn removable<T: MetaTables>(
    t: &T,
    bucket: &str,
    s: &Stored,
    now_ms: u64,
    bypass: bool,
) -> Result<bool, T::Error> {
    Ok(s.marker || of(t, bucket, s.version)?.allows_removal(now_ms, bypass))
}

/// A new version written at `version`, at `created_ms`, in a bucket with lock: it gets
/// `asked` (what its request gave), else the bucket's default retention, unless it has
/// a lock row already (an upload's, moved to it).
pub(super) fn version_created<T: MetaTables>(
    t: &mut T,
    bucket: &str,
    version: u64,
    created_ms: u64,
    asked: Option<&VersionLock>,
) -> Result<(), T::Error> {
    let Some(config) = config(t, bucket)? else {
        return Ok(());
    };
    let row = version_lock(version);
    let lock = match asked {
        Some(lock) => *lock,
        None if t.setting(bucket, &row)?.is_some() => return Ok(()),
        None => match config.default {
            Some((mode, period)) => VersionLock {
                retention: Some(Retention {
                    mode,
                    until_ms: created_ms.saturating_add(period.ms()),
                }),
                legal_hold: false,
            },
            None => return Ok(()),
        },
    };
    t.put_setting(bucket, &row, &Setting::Lock(lock))
}

/// Applies `change` to the lock of version `version` of `key` (`None`: the current
/// one) at `now_ms`: `Applied::Locked` where the lock's rules refuse it.
pub(super) fn change<T: MetaTables>(
    t: &mut T,
    (bucket, key): (&str, &str),
    version: Option<u64>,
    change: LockChange,
    now_ms: u64,
) -> Result<Applied, T::Error> {
    if config(t, bucket)?.is_none() {
        return Ok(if t.bucket(bucket)?.is_none() {
            Applied::NoSuchBucket
        } else {
            Applied::InvalidBucketState
        });
    }
    let target = match access::version_target(t, (bucket, key), version)? {
        Ok(s) => s,
        Err(refused) => return Ok(refused),
    };
    let mut lock = of(t, bucket, target.version)?;
    match change {
        LockChange::Retention { retention, bypass } => {
            if !lock.allows_retention(retention, now_ms, bypass) {
                return Ok(Applied::Locked);
            }
            lock.retention = retention;
        }
        LockChange::LegalHold(on) => lock.legal_hold = on,
    }
    t.put_setting(bucket, &version_lock(target.version), &Setting::Lock(lock))?;
    Ok(Applied::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::tests::{head, meta, part, with_bucket};
    use crate::meta::versions::{Outcome, VersionRef};
    use crate::meta::{Command, CommandV1, MetaState, PutCondition};
    use LockMode::{Compliance, Governance};

    const DAY: u64 = 24 * 3600 * 1000;

    fn run(s: &mut MetaState, index: u64, c: CommandV1) -> Applied {
        s.apply(index, &Command::V1(c))
    }

    fn setting(name: &str, setting: Setting) -> CommandV1 {
        CommandV1::PutSetting {
            bucket: "b".into(),
            name: name.into(),
            setting,
        }
    }

    fn versioning(v: access::Versioning) -> CommandV1 {
        setting(VERSIONING, Setting::Versioning(v))
    }

    /// Bucket `b`, made with versioning Enabled and object lock (its default
    /// retention: `default`) at index 1.
    fn locked(default: Option<(LockMode, Period)>) -> MetaState {
        let mut s = MetaState::default();
        let c = CommandV1::CreateBucketWith {
            name: "b".into(),
            owner: "o".into(),
            created_ms: 0,
            settings: vec![
                (
                    VERSIONING.into(),
                    Setting::Versioning(access::Versioning::Enabled),
                ),
                (
                    LOCK_CONFIG.into(),
                    Setting::LockConfig(LockConfig { default }),
                ),
            ],
        };
        assert_eq!(run(&mut s, 1, c), Applied::Done);
        s
    }

    fn put(s: &mut MetaState, index: u64, created_ms: u64, lock: Option<VersionLock>) -> Applied {
        let mut meta = meta(index);
        meta.created_ms = created_ms;
        let (bucket, key, condition) = ("b".into(), "k".into(), PutCondition::Always);
        let c = match lock {
            Some(lock) => CommandV1::PutObjectLocked {
                bucket,
                key,
                meta,
                condition,
                settings: access::VersionSettings::default(),
                lock,
            },
            None => CommandV1::PutObject {
                bucket,
                key,
                meta,
                condition,
            },
        };
        run(s, index, c)
    }

    fn delete(s: &mut MetaState, index: u64, v: u64, now_ms: u64, bypass: bool) -> Outcome {
        let c = CommandV1::DeleteVersionsAt {
            bucket: "b".into(),
            targets: vec![("k".into(), VersionRef::Id(v))],
            now_ms,
            bypass,
        };
        match run(s, index, c) {
            Applied::Outcomes(o) => o[0],
            other => panic!("{other:?}"),
        }
    }

    fn retained(mode: LockMode, until_ms: u64) -> VersionLock {
        VersionLock {
            retention: Some(Retention { mode, until_ms }),
            legal_hold: false,
        }
    }

    fn change(s: &mut MetaState, index: u64, v: u64, change: LockChange, now_ms: u64) -> Applied {
        let c = CommandV1::ChangeLock {
            bucket: "b".into(),
            key: "k".into(),
            version: Some(v),
            change,
            now_ms,
        };
        run(s, index, c)
    }

    #[test]
    fn lock_needs_versioning_enabled_and_then_neither_changes() {
        let mut s = with_bucket();
        let lock = setting(LOCK_CONFIG, Setting::LockConfig(LockConfig::default()));
        assert_eq!(run(&mut s, 2, lock.clone()), Applied::InvalidBucketState);
        let suspend = versioning(access::Versioning::Suspended);
        assert_eq!(run(&mut s, 3, suspend.clone()), Applied::Done);
        assert_eq!(run(&mut s, 4, lock.clone()), Applied::InvalidBucketState);
        let enable = versioning(access::Versioning::Enabled);
        assert_eq!(run(&mut s, 5, enable.clone()), Applied::Done);
        assert_eq!(run(&mut s, 6, lock), Applied::Done);
        assert_eq!(run(&mut s, 7, suspend), Applied::InvalidBucketState);
        assert_eq!(run(&mut s, 8, enable), Applied::Done);
        let unlock = CommandV1::DeleteSetting {
            bucket: "b".into(),
            name: LOCK_CONFIG.into(),
        };
        assert_eq!(run(&mut s, 9, unlock), Applied::InvalidBucketState);
        assert_eq!(config(&s, "b"), Ok(Some(LockConfig::default())));
        // Made locked: the same, from its first commit.
        let mut made = locked(None);
        let suspend = versioning(access::Versioning::Suspended);
        assert_eq!(run(&mut made, 2, suspend), Applied::InvalidBucketState);
    }

    #[test]
    fn a_locked_version_goes_only_as_its_lock_allows() {
        let mut s = locked(None);
        assert!(matches!(
            put(&mut s, 2, 0, Some(retained(Governance, 100))),
            Applied::Versioned { .. }
        ));
        assert!(matches!(
            put(&mut s, 3, 0, Some(retained(Compliance, 100))),
            Applied::Versioned { .. }
        ));
        let held = VersionLock {
            retention: None,
            legal_hold: true,
        };
        assert!(matches!(
            put(&mut s, 4, 0, Some(held)),
            Applied::Versioned { .. }
        ));
        assert!(matches!(put(&mut s, 5, 0, None), Applied::Versioned { .. }));

        assert_eq!(delete(&mut s, 10, 2, 50, false), Outcome::Locked);
        assert_eq!(delete(&mut s, 11, 3, 50, true), Outcome::Locked);
        assert_eq!(delete(&mut s, 12, 4, u64::MAX, true), Outcome::Locked);
        assert_eq!(
            delete(&mut s, 13, 5, 50, false),
            Outcome::Removed { marker: false }
        );
        assert_eq!(
            delete(&mut s, 14, 2, 50, true),
            Outcome::Removed { marker: false }
        );
        assert_eq!(
            delete(&mut s, 15, 3, 100, false),
            Outcome::Removed { marker: false }
        );
        assert_eq!(delete(&mut s, 16, 3, 100, false), Outcome::Missing);
        // A removed version's lock row went with it.
        assert_eq!(s.setting("b", &version_lock(2)), Ok(None));
        assert_eq!(s.setting("b", &version_lock(3)), Ok(None));
        // The hold released, the version goes.
        let off = LockChange::LegalHold(false);
        assert_eq!(change(&mut s, 17, 4, off, 0), Applied::Done);
        assert_eq!(
            delete(&mut s, 18, 4, 0, false),
            Outcome::Removed { marker: false }
        );
    }

    #[test]
    fn retentions_change_by_the_rules_at_the_commands_time() {
        let mut s = locked(None);
        assert!(matches!(
            put(&mut s, 2, 0, Some(retained(Compliance, 100))),
            Applied::Versioned { .. }
        ));
        let set = |mode, until_ms, bypass| LockChange::Retention {
            retention: Some(Retention { mode, until_ms }),
            bypass,
        };
        assert_eq!(
            change(&mut s, 3, 2, set(Governance, 200, true), 50),
            Applied::Locked
        );
        assert_eq!(
            change(&mut s, 4, 2, set(Compliance, 99, true), 50),
            Applied::Locked
        );
        assert_eq!(
            change(&mut s, 5, 2, set(Compliance, 150, false), 50),
            Applied::Done
        );
        assert_eq!(of(&s, "b", 2), Ok(retained(Compliance, 150)));
        // Expired: anything goes.
        assert_eq!(
            change(&mut s, 6, 2, set(Governance, 160, false), 150),
            Applied::Done
        );
        // A version that is not there, and a bucket without lock.
        assert_eq!(
            change(&mut s, 7, 99, set(Governance, 1, false), 0),
            Applied::PreconditionFailed
        );
        let mut plain = with_bucket();
        assert_eq!(
            change(&mut plain, 2, 1, LockChange::LegalHold(true), 0),
            Applied::InvalidBucketState
        );
        // A locked PUT into a bucket without lock is refused, and writes nothing.
        let held = VersionLock {
            retention: None,
            legal_hold: true,
        };
        assert_eq!(
            put(&mut plain, 3, 0, Some(held)),
            Applied::InvalidBucketState
        );
        assert_eq!(plain.object("b", "k"), None);
    }

    #[test]
    fn new_versions_get_the_default_unless_their_request_or_upload_gave_one() {
        let mut s = locked(Some((Governance, Period::Days(2))));
        assert!(matches!(
            put(&mut s, 2, 1000, None),
            Applied::Versioned { .. }
        ));
        assert_eq!(of(&s, "b", 2), Ok(retained(Governance, 1000 + 2 * DAY)));
        let asked = retained(Compliance, 5);
        assert!(matches!(
            put(&mut s, 3, 1000, Some(asked)),
            Applied::Versioned { .. }
        ));
        assert_eq!(of(&s, "b", 3), Ok(asked));

        // An upload's lock becomes its object's; one without gets the default.
        for (index, id) in [(10, "u"), (11, "v")] {
            let upload = CommandV1::CreateUpload {
                upload_id: id.into(),
                head: head("b", "k"),
            };
            assert_eq!(run(&mut s, index, upload), Applied::Done);
            let p = CommandV1::PutPart {
                upload_id: id.into(),
                part: 1,
                info: part(index.into(), 5),
            };
            assert_eq!(run(&mut s, index + 10, p), Applied::Done);
        }
        let hold = VersionLock {
            retention: None,
            legal_hold: true,
        };
        let lock_upload = setting(&upload_lock("u"), Setting::Lock(hold));
        assert_eq!(run(&mut s, 30, lock_upload), Applied::Done);
        for (index, id, part_id) in [(31, "u", "p10"), (32, "v", "p11")] {
            let mut m = meta(0);
            m.created_ms = 7;
            let complete = CommandV1::CompleteUpload {
                upload_id: id.into(),
                parts: vec![(1, part_id.into())],
                meta: m,
                part_size_min: 0,
            };
            assert!(matches!(
                run(&mut s, index, complete),
                Applied::Versioned { .. }
            ));
        }
        assert_eq!(of(&s, "b", 31), Ok(hold));
        assert_eq!(s.setting("b", &upload_lock("u")), Ok(None));
        assert_eq!(of(&s, "b", 32), Ok(retained(Governance, 7 + 2 * DAY)));
    }
}
