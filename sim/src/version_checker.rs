//! Judges the versions workload (`version_workload`). A version id is the log index
//! that wrote the version, so ids order versions: the current version of a key is the
//! one with the highest id still there.
//!
//! - **No acknowledged version is lost before it is deleted.** A GET by the id of an
//!   acknowledged PUT answers its body, or NoSuchVersion only if a delete of that id
//!   was sent before the GET returned (and not refused; a delete marker's id answers
//!   MethodNotAllowed); after the heal, every such
//!   version and every acknowledged delete marker is listed, and every listed version
//!   reads back, by its id, with the body its PUT wrote.
//! - **A GET never returns a version other than the one asked for, or the latest.** A
//!   GET by id returns that PUT's body; a GET of the current version returns a body
//!   some PUT of the key wrote, and never one older than a version (or a delete marker)
//!   acknowledged before the GET began and not deleted since.
//! - **No locked version is ever removed.** A version whose PUT was acknowledged with a
//!   COMPLIANCE retention or a legal hold, or which a PutObjectRetention (COMPLIANCE) or
//!   PutObjectLegalHold (ON) acknowledged before a delete of it began, is kept from
//!   that delete: it must not be acknowledged, and it excuses nothing (the version
//!   must still read and be listed). A GOVERNANCE retention keeps its version only
//!   from deletes that do not bypass it. (Every retention runs past the run.)
//! - **The listing is the history.** Each listed version comes from a PUT or a DELETE
//!   of its key that may have taken effect; the latest entry of a key has its highest
//!   id.

use std::collections::{BTreeMap, BTreeSet};

use engine::meta::versions::VersionRef;

use crate::lifecycle_checker::{due_ms, wall_ms};
use crate::version_workload::{
    EXPIRING_KEY, Got, Lock, Op, Outcome, VersionHistory, VersionOp, key_name,
};

/// Acknowledged PUTs and delete markers: (key, id) -> (the body's sha, none for a
/// marker; when it was answered).
type Acked = BTreeMap<(u64, String), (Option<[u8; 32]>, u64)>;

fn order(id: &str) -> Option<u64> {
    match VersionRef::parse(id)? {
        VersionRef::Id(v) => Some(v),
        VersionRef::Null => None,
    }
}

/// From when on version `id` of `key` is kept from a delete that bypasses governance
/// or not: its PUT's lock keeps it from the start, an acknowledged lock request once it
/// was answered.
fn locked_since(ops: &[VersionOp], key: u64, id: &str, bypass: bool) -> Option<u64> {
    ops.iter()
        .filter(|o| o.key == key && o.outcome == Outcome::Acked)
        .filter_map(|o| match &o.op {
            Op::Put {
                id: Some(v), lock, ..
            } if v == id && lock.keeps(bypass) => Some(0),
            Op::LockVersion { id: v, lock } if v == id && lock.keeps(bypass) => Some(o.ret),
            _ => None,
        })
        .min()
}

/// The deletes of version `id` of `key` that may have removed it: sent before `by`,
/// not refused, and not begun after its lock kept it from them.
fn deletes<'a>(
    ops: &'a [VersionOp],
    key: u64,
    id: &'a str,
    by: u64,
) -> impl Iterator<Item = &'a VersionOp> + 'a {
    ops.iter().filter(move |o| {
        o.key == key
            && o.invoke < by
            && o.outcome != Outcome::Refused
            && matches!(&o.op, Op::DeleteVersion { id: d, bypass }
                if d == id && locked_since(ops, key, id, *bypass).is_none_or(|t| o.invoke < t))
    })
}

/// Whether version `id` of `key` may have been deleted before `by` (a delete of it sent
/// before then, not refused, that its lock did not keep it from).
fn maybe_deleted(ops: &[VersionOp], key: u64, id: &str, by: u64) -> bool {
    deletes(ops, key, id, by).next().is_some()
}

/// Whether the bucket's lifecycle rule may have removed version `id` of `key` before `by`
/// (simulated ns): only versions of `EXPIRING_KEY` that no acknowledged lock keeps; a
/// delete marker at any time (it goes once it is alone), another version a day after
/// the earliest write of its key that may have made it noncurrent (one that had not
/// returned when the version's PUT began, so could have come after it).
fn maybe_expired(ops: &[VersionOp], key: u64, id: &str, by: u64) -> bool {
    if key != EXPIRING_KEY || locked_since(ops, key, id, false).is_some() {
        return false;
    }
    let this = ops.iter().find(|o| match &o.op {
        Op::Put { id: Some(v), .. } | Op::Delete { id: Some(v) } => o.key == key && v == id,
        _ => false,
    });
    let Some(this) = this else {
        return false;
    };
    if matches!(this.op, Op::Delete { .. }) {
        return true;
    }
    let successor = ops
        .iter()
        .filter(|o| o.key == key && o.outcome != Outcome::Refused && o.ret > this.invoke)
        .filter(|o| !std::ptr::eq(*o, this))
        .filter(|o| matches!(o.op, Op::Put { .. } | Op::Delete { .. }))
        .map(|o| o.invoke)
        .min();
    successor.is_some_and(|since| due_ms(since) <= wall_ms(by))
}

/// Whether version `id` of `key` may be gone before `by`: deleted, or expired.
fn maybe_gone(ops: &[VersionOp], key: u64, id: &str, by: u64) -> bool {
    maybe_deleted(ops, key, id, by) || maybe_expired(ops, key, id, by)
}

/// Whether some request may have locked version `id` of `key` (its PUT or a lock
/// request, not refused, whatever their answer). A locked PUT whose answer was lost
/// may have written any version no answer named.
fn may_be_locked(ops: &[VersionOp], key: u64, id: &str) -> bool {
    let named = ops.iter().any(|o| {
        o.key == key
            && matches!(&o.op, Op::Put { id: Some(v), .. } | Op::Delete { id: Some(v) } if v == id)
    });
    ops.iter().any(|o| {
        o.key == key
            && o.outcome != Outcome::Refused
            && match &o.op {
                Op::Put { id: v, lock, .. } => {
                    *lock != Lock::None && v.as_deref().map_or(!named, |v| v == id)
                }
                Op::LockVersion { id: v, .. } => v == id,
                _ => false,
            }
    })
}

/// Versions of `EXPIRING_KEY` the final listing shows although its rule had long made
/// them due: a noncurrent one no lock may keep, or a lone delete marker.
fn not_expired(ops: &[VersionOp], listed: &[(String, String, bool, bool)]) -> Vec<String> {
    let name = key_name(EXPIRING_KEY);
    let ours: Vec<_> = listed.iter().filter(|(k, ..)| *k == name).collect();
    let mut out = Vec::new();
    for (_, id, marker, latest) in &ours {
        let stale = !*latest && !may_be_locked(ops, EXPIRING_KEY, id);
        let lone = *marker && *latest && ours.len() == 1;
        if stale || lone {
            out.push(format!(
                "version {id} of {name} was not expired: its rule made it due long before \
                 the listing"
            ));
        }
    }
    out
}

/// Deletes acknowledged although the version's lock kept it from them, and no delete
/// its lock let through may have removed it before (a delete of a version already gone
/// is answered 204, as S3 does).
fn locks_broken(ops: &[VersionOp]) -> Vec<String> {
    ops.iter()
        .filter(|o| o.outcome == Outcome::Acked)
        .filter_map(|o| match &o.op {
            Op::DeleteVersion { id, bypass } => locked_since(ops, o.key, id, *bypass)
                .filter(|t| o.invoke > *t && !maybe_deleted(ops, o.key, id, o.ret))
                .map(|_| {
                    format!(
                        "a delete of locked version {id} of {} via node {} was acknowledged",
                        key_name(o.key),
                        o.node
                    )
                }),
            _ => None,
        })
        .collect()
}

pub fn check(h: &VersionHistory) -> Vec<String> {
    let mut out = Vec::new();
    if !h.enabled {
        return out;
    }
    let mut acked: Acked = BTreeMap::new();
    let mut written: BTreeMap<u64, BTreeSet<[u8; 32]>> = BTreeMap::new();
    for o in &h.ops {
        match &o.op {
            Op::Put { sha, id, .. } if o.outcome != Outcome::Refused => {
                written.entry(o.key).or_default().insert(*sha);
                if let (Outcome::Acked, Some(id)) = (o.outcome, id) {
                    acked.insert((o.key, id.clone()), (Some(*sha), o.ret));
                }
            }
            Op::Delete { id: Some(id) } => {
                acked.insert((o.key, id.clone()), (None, o.ret));
            }
            _ => {}
        }
    }
    for o in &h.ops {
        let Op::Get { id, got } = &o.op else { continue };
        let name = key_name(o.key);
        match (id, got) {
            (Some(id), Got::Body { sha, .. })
                if acked.get(&(o.key, id.clone())).and_then(|a| a.0) != Some(*sha) =>
            {
                out.push(format!(
                    "a GET of {name} version {id} via node {} returned another body",
                    o.node
                ));
            }
            (Some(id), Got::Missing(code)) => {
                // A delete marker named by its id is 405, as long as it is there.
                let marker = acked
                    .get(&(o.key, id.clone()))
                    .is_some_and(|a| a.0.is_none());
                if marker && code == "MethodNotAllowed" {
                    continue;
                }
                if code == "MethodNotAllowed" || !maybe_gone(&h.ops, o.key, id, o.ret) {
                    out.push(format!(
                        "a GET of {name} version {id} via node {} answered {code}; no delete \
                         of it was sent, and no rule could have expired it yet",
                        o.node
                    ));
                }
            }
            (None, Got::Body { sha, id }) => {
                if !written.get(&o.key).is_some_and(|w| w.contains(sha)) {
                    out.push(format!(
                        "a GET of {name} returned a body never written to it"
                    ));
                    continue;
                }
                let got = id.as_deref().and_then(order).unwrap_or(0);
                let newer = acked.iter().find(|((k, v), (_, ret))| {
                    *k == o.key
                        && order(v).is_some_and(|v| v > got)
                        && *ret < o.invoke
                        && !maybe_gone(&h.ops, o.key, v, o.ret)
                });
                if let Some(((_, v), _)) = newer {
                    out.push(format!(
                        "a GET of {name} via node {} returned version {id:?}; version {v} was \
                         acknowledged before the GET began",
                        o.node
                    ));
                }
            }
            _ => {}
        }
    }
    out.extend(locks_broken(&h.ops));
    let Some(listed) = &h.listed else {
        out.push("the version listing could not be read after the heal".into());
        return out;
    };
    out.extend(not_expired(&h.ops, listed));
    let seen: BTreeSet<(String, String)> = listed
        .iter()
        .map(|(k, v, _, _)| (k.clone(), v.clone()))
        .collect();
    for (key, id) in acked.keys() {
        if !seen.contains(&(key_name(*key), id.clone())) && !maybe_gone(&h.ops, *key, id, u64::MAX)
        {
            out.push(format!(
                "acknowledged version {id} of {} is not listed, was never deleted and no \
                 rule could expire it",
                key_name(*key)
            ));
        }
    }
    let mut newest: BTreeMap<&str, (u64, bool)> = BTreeMap::new();
    for (key, id, marker, latest) in listed {
        let Some(k) = (0..crate::version_workload::KEYS).find(|k| &key_name(*k) == key) else {
            out.push(format!("the listing shows a key nobody wrote: {key}"));
            continue;
        };
        let may_exist = h.ops.iter().any(|o| {
            o.key == k
                && o.outcome != Outcome::Refused
                && match &o.op {
                    Op::Put { id: v, .. } => !*marker && v.as_ref().is_none_or(|v| v == id),
                    Op::Delete { id: v } => *marker && v.as_ref().is_none_or(|v| v == id),
                    _ => false,
                }
        });
        if !may_exist {
            out.push(format!(
                "the listing shows version {id} of {key}, which no write made"
            ));
        }
        let n = order(id).unwrap_or(0);
        let e = newest.entry(key).or_insert((n, *latest));
        if n > e.0 {
            *e = (n, *latest);
        }
    }
    for (key, (id, latest)) in newest {
        if !latest {
            out.push(format!(
                "the listing's latest version of {key} is not its newest ({id:x})"
            ));
        }
    }
    for (key, id, got) in &h.read_back {
        // A version repair marked lost answers so (whether its loss is what the faults
        // explain is judged on the disk images: `object_checker::check_version_shards`).
        let lost = h
            .layouts
            .iter()
            .any(|(k, v, _, lost)| k == key && v == id && *lost);
        if lost && got.as_ref().is_err_and(|e| e.starts_with("ObjectLost")) {
            continue;
        }
        let k = (0..crate::version_workload::KEYS).find(|k| &key_name(*k) == key);
        let want = k
            .and_then(|k| acked.get(&(k, id.clone())))
            .and_then(|a| a.0);
        let fine = match (got, want) {
            (Ok(sha), Some(want)) => *sha == want,
            (Ok(sha), None) => k.is_some_and(|k| written.get(&k).is_some_and(|w| w.contains(sha))),
            (Err(_), _) => false,
        };
        if !fine {
            out.push(format!(
                "listed version {id} of {key} read back as {got:?}, not its body"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version_workload::Lock;

    fn op(key: u64, invoke: u64, ret: u64, op: Op, outcome: Outcome) -> VersionOp {
        VersionOp {
            key,
            node: 1,
            invoke,
            ret,
            op,
            outcome,
        }
    }

    fn id(n: u64) -> String {
        engine::meta::versions::version_id(n, false)
    }

    fn history() -> VersionHistory {
        let put = |n: u8, v: u64, at: u64| {
            op(
                0,
                at,
                at + 1,
                Op::Put {
                    sha: [n; 32],
                    id: Some(id(v)),
                    lock: Lock::None,
                },
                Outcome::Acked,
            )
        };
        VersionHistory {
            enabled: true,
            ops: vec![put(1, 10, 0), put(2, 20, 10)],
            listed: Some(vec![
                ("v0".into(), id(20), false, true),
                ("v0".into(), id(10), false, false),
            ]),
            read_back: vec![
                ("v0".into(), id(20), Ok([2; 32])),
                ("v0".into(), id(10), Ok([1; 32])),
            ],
            layouts: Vec::new(),
        }
    }

    #[test]
    fn a_faithful_history_passes() {
        assert_eq!(check(&history()), Vec::<String>::new());
    }

    #[test]
    fn a_lost_version_a_stale_read_and_a_wrong_body_are_caught() {
        let mut lost = history();
        lost.listed.as_mut().unwrap().pop();
        lost.read_back.pop();
        assert!(
            check(&lost)[0].contains("is not listed"),
            "{:?}",
            check(&lost)
        );

        let mut stale = history();
        let got = Got::Body {
            sha: [1; 32],
            id: Some(id(10)),
        };
        stale
            .ops
            .push(op(0, 30, 31, Op::Get { id: None, got }, Outcome::Acked));
        assert!(check(&stale)[0].contains("was acknowledged before the GET began"));

        let mut wrong = history();
        let got = Got::Body {
            sha: [2; 32],
            id: Some(id(10)),
        };
        wrong.ops.push(op(
            0,
            30,
            31,
            Op::Get {
                id: Some(id(10)),
                got,
            },
            Outcome::Acked,
        ));
        assert!(check(&wrong)[0].contains("returned another body"));

        // Deleted versions are excused, once a delete of them was sent.
        let mut deleted = lost;
        let gone = Op::DeleteVersion {
            id: id(10),
            bypass: false,
        };
        deleted.ops.push(op(0, 40, 41, gone, Outcome::Unknown));
        assert_eq!(check(&deleted), Vec::<String>::new());
    }

    #[test]
    fn a_locked_version_removed_is_caught_and_excuses_nothing() {
        let delete = |at: u64, bypass: bool, outcome| {
            let gone = Op::DeleteVersion { id: id(10), bypass };
            op(0, at, at + 1, gone, outcome)
        };
        let lock = |at: u64, lock: Lock| {
            op(
                0,
                at,
                at + 1,
                Op::LockVersion { id: id(10), lock },
                Outcome::Acked,
            )
        };
        // Version 10 held from t=30; a delete acknowledged after it is a broken lock,
        // one begun before it is not.
        let mut early = history();
        early.ops.push(lock(30, Lock::Hold));
        early.ops.push(delete(20, true, Outcome::Acked));
        assert_eq!(check(&early), Vec::<String>::new());
        let mut held = history();
        held.ops.push(lock(30, Lock::Hold));
        held.ops.push(delete(40, true, Outcome::Acked));
        assert!(check(&held)[0].contains("a delete of locked version"));

        // A governance lock yields to a bypass only; once a bypass may have removed
        // the version, a later delete without one finds nothing to keep.
        let mut governed = history();
        governed.ops.push(lock(30, Lock::Governance));
        governed.ops.push(delete(50, false, Outcome::Acked));
        assert_eq!(check(&governed).len(), 1);
        governed.ops.push(delete(60, true, Outcome::Acked));
        assert_eq!(check(&governed).len(), 1);
        governed.ops.push(delete(40, true, Outcome::Unknown));
        assert_eq!(check(&governed), Vec::<String>::new());
        // A hold is bypassed by nothing, so a delete after it excuses no other.
        held.ops.push(delete(45, false, Outcome::Acked));
        assert_eq!(check(&held).len(), 2);

        // A locked version that went missing is not excused by a delete sent after
        // its lock, even one whose outcome is unknown.
        let mut lost = history();
        lost.listed.as_mut().unwrap().pop();
        lost.read_back.pop();
        lost.ops.push(lock(30, Lock::Compliance));
        lost.ops.push(delete(40, true, Outcome::Unknown));
        assert!(
            check(&lost)[0].contains("is not listed"),
            "{:?}",
            check(&lost)
        );
    }

    #[test]
    fn an_expiry_too_early_of_a_locked_version_or_never_is_caught() {
        const S: u64 = 1_000_000_000;
        let put = |v: u64, at: u64, lock: Lock| {
            let put = Op::Put {
                sha: [v as u8; 32],
                id: Some(id(v)),
                lock,
            };
            op(EXPIRING_KEY, at, at + S / 10, put, Outcome::Acked)
        };
        let missed = |v: u64, at: u64| {
            let got = Got::Missing("NoSuchVersion".into());
            op(
                EXPIRING_KEY,
                at,
                at + S / 10,
                Op::Get {
                    id: Some(id(v)),
                    got,
                },
                Outcome::Acked,
            )
        };
        // Version 10 at 0, made noncurrent by version 20 at 10 s: due a "day" later.
        let mut h = VersionHistory {
            enabled: true,
            ops: vec![put(10, 0, Lock::None), put(20, 10 * S, Lock::None)],
            listed: Some(vec![(key_name(EXPIRING_KEY), id(20), false, true)]),
            ..VersionHistory::default()
        };
        assert_eq!(check(&h), Vec::<String>::new());
        h.ops.push(missed(10, 10 * S + S / 2));
        assert!(check(&h)[0].contains("no rule could have expired it yet"));
        h.ops.pop();
        h.ops.push(missed(10, 20 * S));
        assert_eq!(check(&h), Vec::<String>::new());

        // Kept by a lock, its absence is never excused.
        let mut locked = h;
        locked.ops[0] = put(10, 0, Lock::Governance);
        let found = check(&locked);
        assert!(
            found.iter().any(|v| v.contains("no rule could expire it")),
            "{found:?}"
        );

        // Listed long after it was due, unlocked: not expired.
        let mut kept = VersionHistory {
            enabled: true,
            ops: vec![put(10, 0, Lock::None), put(20, 10 * S, Lock::None)],
            listed: Some(vec![
                (key_name(EXPIRING_KEY), id(20), false, true),
                (key_name(EXPIRING_KEY), id(10), false, false),
            ]),
            ..VersionHistory::default()
        };
        assert!(check(&kept)[0].contains("was not expired"));
        kept.ops[0] = put(10, 0, Lock::Compliance);
        assert_eq!(check(&kept), Vec::<String>::new());
        // A locked PUT whose answer was lost may have written it, but not version 20,
        // whose own PUT named it.
        let mut lost_answer = put(10, 0, Lock::Governance);
        lost_answer.outcome = Outcome::Unknown;
        if let Op::Put { id, .. } = &mut lost_answer.op {
            *id = None;
        }
        kept.ops[0] = lost_answer;
        assert_eq!(check(&kept), Vec::<String>::new());
        kept.listed.as_mut().unwrap()[0].3 = false;
        kept.listed
            .as_mut()
            .unwrap()
            .push((key_name(EXPIRING_KEY), id(30), false, true));
        kept.ops.push(put(30, 20 * S, Lock::None));
        assert!(check(&kept)[0].contains("version 0000000000000014 of v2 was not expired"));
    }
}
