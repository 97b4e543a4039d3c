//! Judges the lifecycle workload (`lifecycle_workload`). Every key is written once, and
//! nothing but the bucket's rules removes it: a key they match expires one [`DAY`]
//! after its creation, rounded up to a day boundary (the wall clock of a run is
//! [`SIM_EPOCH_MS`] plus its simulated time, on every node).
//!
//! - **Expiry never removes what no rule matches, nor before its time.** A GET that
//!   answers NoSuchKey for a key whose PUT was acknowledged before the GET began is a
//!   violation, unless a rule matches the key and the GET returned after the earliest
//!   time the rule could expire it (a day after the PUT began, rounded up).
//! - **A GET returns the body the key's PUT wrote.**
//! - **Expiry happens.** The listing after the heal (many days after the last write)
//!   shows no key a rule matches whose PUT returned [`GRACE`] before the listing began,
//!   and every key no rule matches whose PUT was acknowledged.

use std::collections::BTreeSet;
use std::time::Duration;

use runtime_sim::SIM_EPOCH_MS;

use crate::lifecycle_workload::{DAY, LcHistory, LcOp, expires};
use crate::version_workload::Outcome;

/// How long after a key's due time the cluster has to expire it before the checker
/// stops excusing it: passes run four times a "day", and a leader change or a fault
/// may cost a few.
pub const GRACE: Duration = Duration::from_secs(5 * 2);

fn day_ms() -> u64 {
    DAY.as_millis() as u64
}

/// The wall time (ms) a rule of one day makes a version due that was created (or made
/// noncurrent) at simulated `at_ns`.
pub fn due_ms(at_ns: u64) -> u64 {
    let created = SIM_EPOCH_MS + at_ns / 1_000_000;
    (created + day_ms()).div_ceil(day_ms()) * day_ms()
}

/// The wall clock (ms) at simulated `at_ns`.
pub fn wall_ms(at_ns: u64) -> u64 {
    SIM_EPOCH_MS + at_ns / 1_000_000
}

pub fn check(h: &LcHistory) -> Vec<String> {
    let mut out = Vec::new();
    if !h.configured {
        return out;
    }
    let puts: Vec<_> = h
        .ops
        .iter()
        .filter_map(|o| match o.op {
            LcOp::Put { sha } => Some((o, sha)),
            LcOp::Get { .. } => None,
        })
        .collect();
    let put_of = |key: &str| puts.iter().find(|(p, _)| p.key == key);
    for o in &h.ops {
        let LcOp::Get { got } = o.op else { continue };
        let Some((put, sha)) = put_of(&o.key) else {
            continue;
        };
        match got {
            Some(body) if body != *sha => out.push(format!(
                "a GET of {} via node {} returned another body than its PUT's",
                o.key, o.node
            )),
            Some(_) => {}
            None if put.outcome == Outcome::Acked && put.ret < o.invoke => {
                if !expires(&o.key) {
                    out.push(format!(
                        "{} matches no rule, yet a GET via node {} missed it after its PUT was acknowledged",
                        o.key, o.node
                    ));
                } else if wall_ms(o.ret) < due_ms(put.invoke) {
                    out.push(format!(
                        "{} expired early: a GET via node {} missed it {} ms before its rule could expire it",
                        o.key,
                        o.node,
                        due_ms(put.invoke) - wall_ms(o.ret)
                    ));
                }
            }
            None => {}
        }
    }
    let Some((listed, began)) = &h.listed else {
        out.push("the bucket could not be listed after the heal".into());
        return out;
    };
    let listed: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
    for (put, _) in &puts {
        let shown = listed.contains(put.key.as_str());
        let settled = due_ms(put.ret) + GRACE.as_millis() as u64 <= wall_ms(*began);
        if expires(&put.key) && shown && settled {
            out.push(format!(
                "{} was not expired: listed {} ms after its rule made it due",
                put.key,
                wall_ms(*began) - due_ms(put.ret)
            ));
        }
        if !expires(&put.key) && !shown && put.outcome == Outcome::Acked {
            out.push(format!(
                "{} matches no rule and was acknowledged, but is not listed",
                put.key
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle_workload::LcRecord;

    const S: u64 = 1_000_000_000;

    fn op(key: &str, invoke: u64, op: LcOp) -> LcRecord {
        LcRecord {
            key: key.into(),
            node: 1,
            invoke,
            ret: invoke + S / 10,
            op,
            outcome: Outcome::Acked,
        }
    }

    fn history(keys: &[&str]) -> LcHistory {
        let mut h = LcHistory {
            configured: true,
            ..LcHistory::default()
        };
        for k in keys {
            h.ops.push(op(k, 0, LcOp::Put { sha: [1; 32] }));
        }
        h
    }

    fn missed(key: &str, at: u64) -> LcRecord {
        op(key, at, LcOp::Get { got: None })
    }

    #[test]
    fn a_removal_no_rule_allows_is_caught() {
        // Written at 0; listed at the end without the expired key.
        let mut h = history(&["keep/1", "exp/2"]);
        h.listed = Some((vec!["keep/1".into()], 100 * S));
        assert_eq!(check(&h), Vec::<String>::new());

        // A key no rule matches went missing.
        let mut lost = history(&["keep/1", "exp/2"]);
        lost.ops.push(missed("keep/1", 50 * S));
        lost.listed = Some((Vec::new(), 100 * S));
        let found = check(&lost);
        assert!(found[0].contains("matches no rule"), "{found:?}");
        assert!(found[1].contains("is not listed"), "{found:?}");

        // A matching key missed before a day could have passed: early. Written at
        // 0 (wall: midnight), it is due at the next day boundary after a day.
        let mut early = history(&["exp/2"]);
        early.listed = Some((Vec::new(), 100 * S));
        early.ops.push(missed("exp/2", S));
        assert!(check(&early)[0].contains("expired early"));
        let mut on_time = history(&["exp/2"]);
        on_time.listed = Some((Vec::new(), 100 * S));
        on_time.ops.push(missed("exp/2", 3 * S));
        assert_eq!(check(&on_time), Vec::<String>::new());
    }

    #[test]
    fn an_expiry_that_never_happens_is_caught() {
        let mut h = history(&["exp/1", "tag/2/y", "tag/3/n"]);
        h.listed = Some((vec!["exp/1".into(), "tag/3/n".into()], 100 * S));
        let found = check(&h);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("exp/1 was not expired"));
        // Within its grace, it is excused.
        h.listed = Some((vec!["exp/1".into(), "tag/3/n".into()], 4 * S));
        assert_eq!(check(&h), Vec::<String>::new());
        // Another body is caught too.
        h.ops
            .push(op("tag/3/n", 5 * S, LcOp::Get { got: Some([2; 32]) }));
        assert!(check(&h)[0].contains("another body"));
    }
}
