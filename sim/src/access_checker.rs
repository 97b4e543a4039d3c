//! Judges the access workload: authorization is linearizable. The key's rights change
//! one at a time (`GrantRecord`s, in order), so they pass through states S0 (none),
//! S1, ... Sn, each change taking effect somewhere between its first attempt and its
//! answer. A request answered between `invoke` and `ret` saw some state Sj with
//! j at least the last change answered before it began and at most the last change
//! begun before it ended. It may be allowed only if one such state grants what it
//! needs, and refused only if one such state does not: no request is ever allowed that
//! the model refuses, nor refused that the model must allow.

use engine::meta::keys::Perms;

use crate::access_workload::{AccessHistory, Decision, GrantRecord};

/// The rights after each change: `states[0]` is none, `states[i]` after change i.
fn states(grants: &[GrantRecord]) -> Vec<Perms> {
    let mut out = vec![Perms::default()];
    for g in grants {
        let now = *out.last().expect("S0");
        out.push(if g.allow {
            now.union(g.perms)
        } else {
            now.minus(g.perms)
        });
    }
    out
}

/// Every request's answer against the states it could have seen.
pub fn check(h: &AccessHistory) -> Vec<String> {
    let states = states(&h.grants);
    let mut violations = Vec::new();
    for r in &h.requests {
        if r.decision == Decision::Unknown {
            continue;
        }
        // Changes are sequential: answered ones form a prefix of those begun.
        let lo = h
            .grants
            .iter()
            .take_while(|g| g.ret.is_some_and(|t| t < r.invoke))
            .count();
        let hi = h.grants.iter().take_while(|g| g.invoke < r.ret).count();
        let seen = &states[lo..=hi.max(lo)];
        let may_allow = seen.iter().any(|p| p.covers(r.need));
        let may_deny = seen.iter().any(|p| !p.covers(r.need));
        let wrong = match r.decision {
            Decision::Allowed => !may_allow,
            Decision::Denied => !may_deny,
            Decision::Unknown => false,
        };
        if wrong {
            violations.push(format!(
                "access: {} through node {} at {}..{} ns was {:?}, but the key's rights \
                 while it was in flight were {:?} (changes {lo}..={hi})",
                r.what, r.node, r.invoke, r.ret, r.decision, seen
            ));
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_workload::RequestRecord;

    fn grant(perms: Perms, allow: bool, invoke: u64, ret: Option<u64>) -> GrantRecord {
        GrantRecord {
            perms,
            allow,
            invoke,
            ret,
        }
    }

    fn request(need: Perms, invoke: u64, ret: u64, decision: Decision) -> RequestRecord {
        RequestRecord {
            what: "GET",
            need,
            node: 1,
            invoke,
            ret,
            decision,
        }
    }

    fn history(requests: Vec<RequestRecord>) -> AccessHistory {
        AccessHistory {
            created: true,
            // Read granted during 10..20, taken away during 30..40.
            grants: vec![
                grant(Perms::READ, true, 10, Some(20)),
                grant(Perms::READ, false, 30, Some(40)),
            ],
            requests,
        }
    }

    #[test]
    fn answers_are_judged_by_the_rights_in_force_while_they_were_in_flight() {
        use Decision::{Allowed, Denied};
        let ok = history(vec![
            request(Perms::READ, 1, 5, Denied),
            request(Perms::READ, 21, 29, Allowed),
            // Overlapping a change: either answer.
            request(Perms::READ, 15, 25, Denied),
            request(Perms::READ, 15, 25, Allowed),
            request(Perms::READ, 35, 45, Allowed),
            request(Perms::READ, 41, 50, Denied),
            // Write was never granted.
            request(Perms::WRITE, 21, 29, Denied),
            request(Perms::READ, 21, 29, Decision::Unknown),
        ]);
        assert_eq!(check(&ok), Vec::<String>::new());
    }

    #[test]
    fn a_wrong_answer_in_either_direction_is_caught() {
        use Decision::{Allowed, Denied};
        for bad in [
            request(Perms::READ, 1, 5, Allowed),
            request(Perms::READ, 21, 29, Denied),
            request(Perms::READ, 41, 50, Allowed),
            request(Perms::WRITE, 21, 29, Allowed),
        ] {
            let v = check(&history(vec![bad.clone()]));
            assert_eq!(v.len(), 1, "{bad:?} passed");
        }
    }

    #[test]
    fn a_change_never_answered_may_land_at_any_later_time() {
        let h = AccessHistory {
            created: true,
            grants: vec![grant(Perms::WRITE, true, 10, None)],
            requests: vec![
                request(Perms::WRITE, 100, 110, Decision::Allowed),
                request(Perms::WRITE, 100, 110, Decision::Denied),
                request(Perms::WRITE, 1, 5, Decision::Allowed),
            ],
        };
        let v = check(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("at 1..5"), "{v:?}");
    }
}
