//! Lifecycle: a bucket's rules for expiring objects by themselves, and the `Expire`
//! command that carries out what they decide.
//!
//! The configuration is one bucket setting ([`LIFECYCLE`]). A rule applies to the keys
//! its [`Filter`] matches (prefix, tags, size) and says when their current versions
//! expire (days after their creation, or from a date on), when noncurrent versions go
//! (days after they stopped being current, keeping the newest few), whether a delete
//! marker left with no other version goes, and when an upload in progress is aborted.
//! As S3 does, a due time is rounded up to the next day boundary; a "day" is a length
//! the command carries (a setting shortens it so tests run in seconds).
//!
//! [`due`] decides, over any [`VersionReads`], which versions of a key are due at a
//! time. The leader's lifecycle task (`crate::lifecycle`) asks it of its replica and
//! proposes `Expire` with what it found; apply asks it again of the state the command
//! meets and carries out only what is due both times, so a rule removed, a tag changed
//! or a version made current since the scan is never expired. Expiring a current
//! version is a DELETE without a version id (a delete marker where the bucket has
//! versioning); noncurrent versions are removed only where their lock lets them go.

use serde::{Deserialize, Serialize};

use super::access::{self, Setting, Tag};
pub use super::lifecycle_rules::*;
use super::versions::{self, NewVersion, VersionReads, VersionRef};
use super::{Applied, MetaTables, Stored, UploadHead};

/// The setting row of a bucket's lifecycle configuration.
pub const LIFECYCLE: &str = "b/lifecycle";

/// A bucket's lifecycle rules, if it has a configuration.
pub fn config<T: VersionReads>(
    t: &T,
    bucket: &str,
) -> Result<Option<Vec<LifecycleRule>>, T::Error> {
    Ok(match t.bucket_setting(bucket, LIFECYCLE)? {
        Some(Setting::Lifecycle(rules)) => Some(rules),
        _ => None,
    })
}

/// What of one key is due.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Due {
    /// The current version (not a delete marker), by its log index.
    pub current: Option<u64>,
    /// The current version is a delete marker with no other version left.
    pub marker: Option<u64>,
    /// Noncurrent versions, newest first.
    pub noncurrent: Vec<u64>,
}

impl Due {
    pub fn is_empty(&self) -> bool {
        self.current.is_none() && self.marker.is_none() && self.noncurrent.is_empty()
    }

    /// Every version named, in no particular order.
    pub fn versions(&self) -> Vec<u64> {
        let mut all = self.noncurrent.clone();
        all.extend(self.current.iter().chain(&self.marker));
        all
    }
}

fn tags_of<T: VersionReads>(
    t: &T,
    bucket: &str,
    version: u64,
    needed: bool,
) -> Result<Vec<Tag>, T::Error> {
    if !needed {
        return Ok(Vec::new());
    }
    Ok(
        match t.bucket_setting(bucket, &access::object_tags(version))? {
            Some(Setting::Tags(tags)) => tags,
            _ => Vec::new(),
        },
    )
}

/// Whether `rule` removes a delete marker left with no other version (S3 calls it an
/// expired object delete marker): one that asks to, or one that expires current
/// versions, as S3 does. A marker has no tags, so a rule that filters on tags does not.
fn clears_markers(rule: &LifecycleRule) -> bool {
    let Some(e) = &rule.expiration else {
        return false;
    };
    (e.delete_markers || e.days.is_some() || e.date_ms.is_some()) && rule.filter.tags.is_empty()
}

/// Which versions of (bucket, key) `rules` make due at `at`.
pub fn due<T: VersionReads>(
    t: &T,
    (bucket, key): (&str, &str),
    rules: &[LifecycleRule],
    at: At,
) -> Result<Due, T::Error> {
    let mut due = Due::default();
    let rules: Vec<&LifecycleRule> = rules
        .iter()
        .filter(|r| r.enabled && key.starts_with(&r.filter.prefix))
        .collect();
    let Some(current) = t.current(bucket, key)? else {
        return Ok(due);
    };
    if rules.is_empty() {
        return Ok(due);
    }
    let needs_tags = rules.iter().any(|r| !r.filter.tags.is_empty());
    let matches = |r: &LifecycleRule, s: &Stored, tags: &[Tag]| {
        r.filter.matches(key, Some(s.meta.size), Some(tags))
    };
    let wants_noncurrent = rules.iter().any(|r| r.noncurrent.is_some());
    let wants_markers = current.marker && rules.iter().any(|r| clears_markers(r));
    let older = if wants_noncurrent || wants_markers {
        t.all_noncurrent(bucket, key)?
    } else {
        Vec::new()
    };
    if current.marker {
        if wants_markers && older.is_empty() {
            due.marker = Some(current.version);
        }
    } else {
        let tags = tags_of(t, bucket, current.version, needs_tags)?;
        let expires = |r: &&LifecycleRule| {
            let Some(e) = &r.expiration else { return false };
            let by_days = e.days.is_some_and(|d| at.past(current.meta.created_ms, d));
            let by_date = e.date_ms.is_some_and(|d| at.now_ms >= d);
            (by_days || by_date) && matches(r, &current, &tags)
        };
        if rules.iter().any(expires) {
            due.current = Some(current.version);
        }
    }
    if !wants_noncurrent {
        return Ok(due);
    }
    // Newest first: each version stopped being current when the next newer one was made.
    let mut successor = current.meta.created_ms;
    for (newer, s) in older.iter().rev().enumerate() {
        let since = successor;
        successor = s.meta.created_ms;
        let tags = if s.marker {
            Vec::new()
        } else {
            tags_of(t, bucket, s.version, needs_tags)?
        };
        let goes = |r: &&LifecycleRule| {
            let Some(n) = &r.noncurrent else { return false };
            let kept = n.keep_newer.is_some_and(|k| newer < k as usize);
            let size = (!s.marker).then_some(s.meta.size);
            let tags = (!s.marker).then_some(tags.as_slice());
            !kept && at.past(since, n.days) && r.filter.matches(key, size, tags)
        };
        if rules.iter().any(goes)
            && (s.marker || super::lock::of(t, bucket, s.version)?.allows_removal(at.now_ms, false))
        {
            due.noncurrent.push(s.version);
        }
    }
    Ok(due)
}

/// Whether `rules` abort upload `head` at `at`.
pub fn upload_due(rules: &[LifecycleRule], head: &UploadHead, at: At) -> bool {
    rules.iter().any(|r| {
        r.enabled
            && r.abort_upload_days
                .is_some_and(|d| at.past(head.created_ms, d))
            && r.filter.matches(&head.key, None, None)
    })
}

/// What an `Expire` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expired {
    /// Current versions deleted (a delete marker where the bucket has versioning).
    pub current: u32,
    pub noncurrent: u32,
    pub markers: u32,
    pub uploads: u32,
}

/// Applies an `Expire` of bucket `bucket` at log `index`: of each key's named
/// versions, those [`due`] still finds due; of the named uploads, those still due.
pub(super) fn expire<T: MetaTables>(
    t: &mut T,
    index: u64,
    bucket: &str,
    (keys, uploads): (&[(String, Vec<u64>)], &[String]),
    at: At,
) -> Result<Applied, T::Error> {
    let mut done = Expired::default();
    let Some(rules) = config(t, bucket)? else {
        return Ok(Applied::Expired(done));
    };
    for (key, named) in keys {
        let mut now = due(t, (bucket, key), &rules, at)?;
        let mut removed = 0;
        for v in now.noncurrent.iter().filter(|v| named.contains(v)) {
            if let Some(old) = t.version(bucket, key, *v)? {
                t.remove_version(bucket, key, *v)?;
                versions::drop_stored(t, bucket, &old)?;
                removed += 1;
            }
        }
        done.noncurrent += removed;
        if now.marker.is_none() && removed > 0 {
            // A marker whose last other versions just went may go too.
            now = due(t, (bucket, key), &rules, at)?;
        }
        if let Some(v) = now.marker.filter(|v| named.contains(v)) {
            let which = VersionRef::Id(v);
            let which = match t.object(bucket, key)? {
                Some(c) if c.null => VersionRef::Null,
                _ => which,
            };
            versions::remove(t, (bucket, key), which)?;
            done.markers += 1;
        }
        if now.current.is_some_and(|v| named.contains(&v)) {
            let marker = NewVersion::Marker {
                created_ms: at.now_ms,
            };
            versions::replace_current(t, (bucket, key), index, marker)?;
            done.current += 1;
        }
    }
    for id in uploads {
        let due = t
            .upload(id)?
            .is_some_and(|h| h.bucket == bucket && upload_due(&rules, &h, at));
        if due && super::drop_upload(t, id)? {
            done.uploads += 1;
        }
    }
    Ok(Applied::Expired(done))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::lock::{LOCK_CONFIG, LockConfig, VersionLock};
    use crate::meta::tests::{head, meta, with_bucket};
    use crate::meta::{Command, CommandV1, MetaState, PutCondition};

    const DAY: u64 = 1000;

    fn run(s: &mut MetaState, index: u64, c: CommandV1) -> Applied {
        s.apply(index, &Command::V1(c))
    }

    fn put(s: &mut MetaState, index: u64, key: &str, size: u64, created_ms: u64) {
        let mut meta = meta(size * 1000 + index);
        meta.size = size;
        meta.created_ms = created_ms;
        let c = CommandV1::PutObject {
            bucket: "b".into(),
            key: key.into(),
            meta,
            condition: PutCondition::Always,
        };
        assert!(matches!(
            run(s, index, c),
            Applied::Version(_) | Applied::Versioned { .. }
        ));
    }

    fn setting(s: &mut MetaState, index: u64, name: &str, setting: Setting) {
        let c = CommandV1::PutSetting {
            bucket: "b".into(),
            name: name.into(),
            setting,
        };
        assert_eq!(run(s, index, c), Applied::Done);
    }

    fn rule(prefix: &str) -> LifecycleRule {
        LifecycleRule {
            enabled: true,
            filter: Filter {
                prefix: prefix.into(),
                ..Filter::default()
            },
            ..LifecycleRule::default()
        }
    }

    fn at(now_ms: u64) -> At {
        At {
            now_ms,
            day_ms: DAY,
        }
    }

    fn due_at(s: &MetaState, key: &str, now_ms: u64) -> Due {
        let rules = config(s, "b").unwrap().unwrap();
        due(s, ("b", key), &rules, at(now_ms)).unwrap()
    }

    /// Proposes what is due for `key` at `now_ms` as the lifecycle task would.
    fn expire_due(s: &mut MetaState, index: u64, key: &str, now_ms: u64) -> Expired {
        let named = due_at(s, key, now_ms).versions();
        expire_named(s, index, key, named, now_ms)
    }

    fn expire_named(s: &mut MetaState, index: u64, key: &str, v: Vec<u64>, now: u64) -> Expired {
        let c = CommandV1::Expire {
            bucket: "b".into(),
            keys: vec![(key.into(), v)],
            uploads: Vec::new(),
            at: at(now),
        };
        match run(s, index, c) {
            Applied::Expired(e) => e,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn current_versions_expire_by_days_rounded_to_a_day_and_by_date() {
        let mut s = with_bucket();
        let mut logs = rule("logs/");
        logs.expiration = Some(Expiration {
            days: Some(1),
            ..Expiration::default()
        });
        let mut old = rule("old/");
        old.expiration = Some(Expiration {
            date_ms: Some(5 * DAY),
            ..Expiration::default()
        });
        setting(&mut s, 2, LIFECYCLE, Setting::Lifecycle(vec![logs, old]));
        put(&mut s, 3, "logs/a", 1, 500);
        put(&mut s, 4, "data/b", 1, 500);
        put(&mut s, 5, "old/c", 1, 4 * DAY + 900);
        // Created at 0.5 days: one day later is 1.5, rounded up to 2.
        assert!(due_at(&s, "logs/a", 2 * DAY - 1).is_empty());
        assert_eq!(due_at(&s, "logs/a", 2 * DAY).current, Some(3));
        assert!(due_at(&s, "data/b", 100 * DAY).is_empty());
        assert!(due_at(&s, "old/c", 5 * DAY - 1).is_empty());
        assert_eq!(due_at(&s, "old/c", 5 * DAY).current, Some(5));
        // Apply judges again: a key its rules do not match is never expired.
        assert_eq!(
            expire_named(&mut s, 6, "data/b", vec![4], 100 * DAY).current,
            0
        );
        assert!(s.objects.contains_key(&("b".into(), "data/b".into())));
        assert_eq!(expire_due(&mut s, 7, "logs/a", 2 * DAY).current, 1);
        assert!(!s.objects.contains_key(&("b".into(), "logs/a".into())));
        // A version written since the scan is not the one named.
        put(&mut s, 8, "old/c", 1, 6 * DAY);
        assert_eq!(
            expire_named(&mut s, 9, "old/c", vec![5], 6 * DAY).current,
            0
        );
        assert_eq!(
            expire_named(&mut s, 10, "old/c", vec![8], 6 * DAY).current,
            1
        );
    }

    #[test]
    fn filters_match_tags_and_sizes() {
        let tag = Tag {
            key: "class".into(),
            value: "tmp".into(),
        };
        let f = Filter {
            prefix: "p/".into(),
            tags: vec![tag.clone()],
            size_greater: Some(10),
            size_less: Some(100),
        };
        let tags = [tag];
        assert!(f.matches("p/x", Some(50), Some(&tags)));
        assert!(!f.matches("q/x", Some(50), Some(&tags)));
        assert!(!f.matches("p/x", Some(10), Some(&tags)));
        assert!(!f.matches("p/x", Some(100), Some(&tags)));
        assert!(!f.matches("p/x", Some(50), Some(&[])));
        assert!(f.matches("p/x", None, None));

        let mut s = with_bucket();
        let mut r = rule("");
        r.filter = f;
        r.expiration = Some(Expiration {
            days: Some(1),
            ..Expiration::default()
        });
        setting(&mut s, 2, LIFECYCLE, Setting::Lifecycle(vec![r]));
        put(&mut s, 3, "p/tagged", 50, 0);
        put(&mut s, 4, "p/plain", 50, 0);
        let tags = CommandV1::PutObjectTags {
            bucket: "b".into(),
            key: "p/tagged".into(),
            version: None,
            tags: Some(tags.to_vec()),
        };
        assert_eq!(run(&mut s, 5, tags), Applied::Done);
        assert_eq!(due_at(&s, "p/tagged", DAY).current, Some(3));
        assert!(due_at(&s, "p/plain", DAY).is_empty());
    }

    #[test]
    fn noncurrent_versions_go_after_their_days_unless_kept_or_locked() {
        let mut s = with_bucket();
        setting(
            &mut s,
            2,
            versions::VERSIONING,
            Setting::Versioning(access::Versioning::Enabled),
        );
        setting(
            &mut s,
            3,
            LOCK_CONFIG,
            Setting::LockConfig(LockConfig::default()),
        );
        let mut r = rule("");
        r.noncurrent = Some(NoncurrentExpiration {
            days: 1,
            keep_newer: Some(1),
        });
        r.expiration = Some(Expiration {
            delete_markers: true,
            ..Expiration::default()
        });
        setting(&mut s, 4, LIFECYCLE, Setting::Lifecycle(vec![r]));
        put(&mut s, 5, "k", 1, 0);
        put(&mut s, 6, "k", 1, 0);
        put(&mut s, 7, "k", 1, 0);
        put(&mut s, 8, "k", 1, 3 * DAY);
        // 7 is the newest noncurrent version and is kept; 5 and 6 stopped being current
        // at 0 and are due after one day.
        assert_eq!(due_at(&s, "k", DAY).noncurrent, vec![6, 5]);
        let hold = VersionLock {
            retention: None,
            legal_hold: true,
        };
        setting(
            &mut s,
            9,
            &crate::meta::lock::version_lock(6),
            Setting::Lock(hold),
        );
        assert_eq!(due_at(&s, "k", DAY).noncurrent, vec![5]);
        assert_eq!(expire_due(&mut s, 10, "k", DAY).noncurrent, 1);
        assert!(s.versions.contains_key(&("b".into(), "k".into(), 6)));
        assert!(!s.versions.contains_key(&("b".into(), "k".into(), 5)));

        // A version named noncurrent that became current since is not removed.
        let remove = CommandV1::DeleteVersions {
            bucket: "b".into(),
            targets: vec![("k".into(), VersionRef::Id(8))],
        };
        assert!(matches!(run(&mut s, 11, remove), Applied::Removed(_)));
        assert_eq!(
            expire_named(&mut s, 12, "k", vec![7], 10 * DAY).noncurrent,
            0
        );
        assert_eq!(s.objects[&("b".into(), "k".into())].version, 7);
    }

    #[test]
    fn a_lone_delete_marker_goes_once_its_versions_have() {
        let mut s = with_bucket();
        setting(
            &mut s,
            2,
            versions::VERSIONING,
            Setting::Versioning(access::Versioning::Enabled),
        );
        let mut r = rule("");
        r.noncurrent = Some(NoncurrentExpiration {
            days: 1,
            keep_newer: None,
        });
        // Days alone: a rule that expires current versions clears lone markers too.
        r.expiration = Some(Expiration {
            days: Some(2),
            ..Expiration::default()
        });
        setting(&mut s, 3, LIFECYCLE, Setting::Lifecycle(vec![r.clone()]));
        put(&mut s, 4, "k", 1, 0);
        // Expiring the current version writes a delete marker at the command's index.
        assert_eq!(expire_due(&mut s, 5, "k", 2 * DAY).current, 1);
        let marker = &s.objects[&("b".into(), "k".into())];
        assert!(marker.marker && marker.version == 5);
        assert_eq!(due_at(&s, "k", 2 * DAY).marker, None);
        // A day after the marker, version 4 goes, and the marker with it.
        let done = expire_due(&mut s, 6, "k", 3 * DAY);
        assert_eq!((done.noncurrent, done.markers), (1, 0));
        let done = expire_named(&mut s, 7, "k", vec![4, 5], 3 * DAY);
        assert_eq!(done.markers, 1);
        assert!(!s.objects.contains_key(&("b".into(), "k".into())));
        // A marker has no tags: a rule that filters on them leaves it.
        r.filter.tags.push(Tag {
            key: "a".into(),
            value: "b".into(),
        });
        assert!(!clears_markers(&r));
        r.expiration = None;
        assert!(!clears_markers(&r));
    }

    #[test]
    fn uploads_are_aborted_days_after_they_began() {
        let mut s = with_bucket();
        let mut r = rule("tmp/");
        r.abort_upload_days = Some(2);
        setting(&mut s, 2, LIFECYCLE, Setting::Lifecycle(vec![r]));
        for (i, key) in ["tmp/a", "keep/b"].into_iter().enumerate() {
            let c = CommandV1::CreateUpload {
                upload_id: format!("u{i}"),
                head: head("b", key),
            };
            assert_eq!(run(&mut s, 3 + i as u64, c), Applied::Done);
        }
        let rules = config(&s, "b").unwrap().unwrap();
        assert!(!upload_due(&rules, &s.uploads["u0"], at(2 * DAY - 1)));
        assert!(upload_due(&rules, &s.uploads["u0"], at(2 * DAY)));
        assert!(!upload_due(&rules, &s.uploads["u1"], at(9 * DAY)));
        let c = CommandV1::Expire {
            bucket: "b".into(),
            keys: Vec::new(),
            uploads: vec!["u0".into(), "u1".into()],
            at: at(9 * DAY),
        };
        assert_eq!(
            run(&mut s, 5, c),
            Applied::Expired(Expired {
                uploads: 1,
                ..Expired::default()
            })
        );
        assert!(!s.uploads.contains_key("u0") && s.uploads.contains_key("u1"));
    }
}
