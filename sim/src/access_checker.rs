//! Judges the access workload: authorization is linearizable. Who may do what changes
//! one step at a time (`GrantRecord`s, in order: a key's rights or the bucket policy),
//! so it passes through states S0 (no rights, no policy), S1, ... Sn, each change taking
//! effect somewhere between its first attempt and its answer. A request answered
//! between `invoke` and `ret` saw some state Sj with j at least the last change answered
//! before it began and at most the last change begun before it ended. It may be allowed
//! only if one such state allows it, and refused only if one such state does not: no
//! request is ever allowed that the model refuses, nor refused that the model must
//! allow.
//!
//! The model of each state is written out here, not computed by the engine's evaluator:
//! what each of the workload's [`POLICIES`](crate::access_workload::POLICIES) says. The
//! policies name only the first key; each key's grants are its own.

use engine::meta::keys::Perms;

use crate::access_workload::{ACCESS_KEYS, AccessHistory, Change, Decision, GrantRecord};

/// Who may do what between two changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct State {
    /// Each key's rights, by its index in `ACCESS_KEYS`.
    pub perms: [Perms; ACCESS_KEYS.len()],
    pub policy: Option<usize>,
}

impl State {
    /// Whether a request `what` (GET, LIST, PUT, DELETE, DELETES) as key `key` (`None`:
    /// anonymously) is allowed: a Deny of the policy first, then the key's grants, then
    /// a policy Allow.
    pub fn allows(&self, key: Option<usize>, what: &str) -> bool {
        let write = matches!(what, "PUT" | "DELETE" | "DELETES");
        let need = if write { Perms::WRITE } else { Perms::READ };
        let named = key == Some(0);
        if self.policy == Some(1) && named && write {
            return false;
        }
        if key.is_some_and(|k| self.perms[k].covers(need)) {
            return true;
        }
        match (self.policy, what) {
            (Some(0), "GET") | (Some(1), "LIST") => true,
            (Some(2), "PUT" | "DELETE" | "DELETES" | "LIST") => named,
            _ => false,
        }
    }
}

/// The state after each change: `states[0]` is S0, `states[i]` after change i.
fn states(changes: &[GrantRecord]) -> Vec<State> {
    let mut out = vec![State::default()];
    for g in changes {
        let mut now = *out.last().expect("S0");
        match g.change {
            Change::Grant {
                key,
                perms,
                allow: true,
            } => now.perms[key] = now.perms[key].union(perms),
            Change::Grant {
                key,
                perms,
                allow: false,
            } => now.perms[key] = now.perms[key].minus(perms),
            Change::Policy(p) => now.policy = p,
        }
        out.push(now);
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
        let may_allow = seen.iter().any(|s| s.allows(r.key, r.what));
        let may_deny = seen.iter().any(|s| !s.allows(r.key, r.what));
        let wrong = match r.decision {
            Decision::Allowed => !may_allow,
            Decision::Denied => !may_deny,
            Decision::Unknown => false,
        };
        if wrong {
            let who = r.key.map_or("anonymous", |k| ACCESS_KEYS[k]);
            violations.push(format!(
                "access: {} as {who} through node {} at {}..{} ns was {:?}, but who may do \
                 what while it was in flight was {:?} (changes {lo}..={hi})",
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
            change: Change::Grant {
                key: 0,
                perms,
                allow,
            },
            invoke,
            ret,
        }
    }

    fn policy(p: Option<usize>, invoke: u64, ret: Option<u64>) -> GrantRecord {
        GrantRecord {
            change: Change::Policy(p),
            invoke,
            ret,
        }
    }

    /// A GET needs read, a PUT write, as the first key.
    fn request(need: Perms, invoke: u64, ret: u64, decision: Decision) -> RequestRecord {
        let what = if need == Perms::READ { "GET" } else { "PUT" };
        RequestRecord {
            what,
            key: Some(0),
            node: 1,
            invoke,
            ret,
            decision,
        }
    }

    fn anonymous(what: &'static str, invoke: u64, ret: u64, decision: Decision) -> RequestRecord {
        RequestRecord {
            key: None,
            what,
            ..request(Perms::READ, invoke, ret, decision)
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

    #[test]
    fn policies_admit_anonymous_callers_and_their_denies_beat_grants() {
        use Decision::{Allowed, Denied};
        let h = |requests| AccessHistory {
            created: true,
            // Write granted by 20; public GET 30..40; deny-the-key's-writes 50..60;
            // no policy 70..80.
            grants: vec![
                grant(Perms::WRITE, true, 10, Some(20)),
                policy(Some(0), 30, Some(40)),
                policy(Some(1), 50, Some(60)),
                policy(None, 70, Some(80)),
            ],
            requests,
        };
        let ok = h(vec![
            anonymous("GET", 21, 29, Denied),
            anonymous("GET", 41, 49, Allowed),
            anonymous("LIST", 41, 49, Denied),
            anonymous("LIST", 61, 69, Allowed),
            anonymous("GET", 61, 69, Denied),
            request(Perms::WRITE, 41, 49, Allowed),
            request(Perms::WRITE, 61, 69, Denied),
            request(Perms::WRITE, 81, 90, Allowed),
            anonymous("PUT", 81, 90, Denied),
        ]);
        assert_eq!(check(&ok), Vec::<String>::new());
        for bad in [
            anonymous("GET", 21, 29, Allowed),
            anonymous("GET", 41, 49, Denied),
            anonymous("LIST", 61, 69, Denied),
            anonymous("PUT", 41, 49, Allowed),
            request(Perms::WRITE, 61, 69, Allowed),
            request(Perms::WRITE, 81, 90, Denied),
        ] {
            let v = check(&h(vec![bad.clone()]));
            assert_eq!(v.len(), 1, "{bad:?} passed");
        }
    }

    #[test]
    fn each_key_has_its_own_grants_and_only_the_first_is_named_by_the_policies() {
        use Decision::{Allowed, Denied};
        let second = |what, invoke, ret, decision| RequestRecord {
            key: Some(1),
            ..anonymous(what, invoke, ret, decision)
        };
        let h = |requests| AccessHistory {
            created: true,
            // The first key gets write by 20; the policy lets it write by 40.
            grants: vec![
                grant(Perms::WRITE, true, 10, Some(20)),
                GrantRecord {
                    change: Change::Grant {
                        key: 1,
                        perms: Perms::READ,
                        allow: true,
                    },
                    invoke: 30,
                    ret: Some(40),
                },
                policy(Some(2), 50, Some(60)),
            ],
            requests,
        };
        let ok = h(vec![
            second("PUT", 21, 29, Denied),
            second("GET", 21, 29, Denied),
            second("GET", 41, 49, Allowed),
            second("LIST", 61, 69, Allowed),
            second("PUT", 61, 69, Denied),
            request(Perms::WRITE, 21, 29, Allowed),
        ]);
        assert_eq!(check(&ok), Vec::<String>::new());
        for bad in [
            // The first key's grant is not the second's.
            second("PUT", 21, 29, Allowed),
            second("GET", 41, 49, Denied),
            // A policy naming the first key does not admit the second.
            second("PUT", 61, 69, Allowed),
            request(Perms::READ, 41, 49, Allowed),
        ] {
            let v = check(&h(vec![bad.clone()]));
            assert_eq!(v.len(), 1, "{bad:?} passed");
        }
    }
}
