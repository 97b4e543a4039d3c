//! A linearizability checker (Wing & Gong's search with Lowe's memoisation, "WGL") for
//! the metadata map, one key at a time (a map is linearizable iff each key is).
//!
//! Each operation has an invocation time and, if it completed, a return time and a
//! result. An operation whose outcome is unknown (timed out) returns at infinity: it may
//! take effect at any point after its invocation, or never (placed last, it changes
//! nothing any other operation saw).

use std::collections::BTreeSet;

/// What was done to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOp {
    /// Unconditional write of a unique value.
    Put(String),
    /// Write only if the key has no value.
    PutIfAbsent(String),
    Delete,
    Get,
}

/// What an operation returned; `Unknown` if it timed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyResult {
    Written,
    PreconditionFailed,
    Deleted,
    NoSuchKey,
    Read(Option<String>),
    Unknown,
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub op: KeyOp,
    pub result: KeyResult,
    pub invoke: u64,
    /// `None` when the outcome is unknown.
    pub ret: Option<u64>,
}

/// The register model: the next state, or `None` if the result is impossible here.
fn step(state: &Option<String>, op: &KeyOp, result: &KeyResult) -> Option<Option<String>> {
    use KeyOp as O;
    use KeyResult as R;
    match (op, result) {
        (O::Put(v), R::Written | R::Unknown) => Some(Some(v.clone())),
        (O::PutIfAbsent(v), R::Written) => state.is_none().then(|| Some(v.clone())),
        (O::PutIfAbsent(_), R::PreconditionFailed) => state.is_some().then(|| state.clone()),
        (O::PutIfAbsent(v), R::Unknown) => Some(state.clone().or_else(|| Some(v.clone()))),
        (O::Delete, R::Deleted) => state.is_some().then_some(None),
        (O::Delete, R::NoSuchKey) => state.is_none().then_some(None),
        (O::Delete, R::Unknown) => Some(None),
        (O::Get, R::Read(v)) => (v == state).then(|| state.clone()),
        (O::Get, R::Unknown) => Some(state.clone()),
        _ => None,
    }
}

/// Largest history searched; beyond it the check reports itself incomplete.
pub const OPERATIONS_MAX: usize = 4096;
/// Search steps before giving up (the search is exponential in the worst case).
const STEPS_MAX: u64 = 20_000_000;

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    /// Too large or too slow to decide.
    Undecided,
}

/// Checks one key's history, starting from `initial`.
pub fn check(ops: &[Operation], initial: Option<String>) -> Verdict {
    if ops.len() > OPERATIONS_MAX {
        return Verdict::Undecided;
    }
    // Events: (time, is_return, op). Calls sort before returns at equal times, so
    // operations that touch in time count as concurrent.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * ops.len());
    for (i, o) in ops.iter().enumerate() {
        events.push((o.invoke, false, i));
        events.push((o.ret.unwrap_or(u64::MAX), true, i));
    }
    events.sort();
    // A doubly linked list over the events, so entries can be lifted and restored.
    let n = events.len();
    let mut next: Vec<usize> = (1..=n).collect();
    let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
    let mut head = 0usize;
    let mut ret_of = vec![0usize; ops.len()];
    for (pos, &(_, is_ret, op)) in events.iter().enumerate() {
        if is_ret {
            ret_of[op] = pos;
        }
    }
    let unlink = |pos: usize, next: &mut Vec<usize>, prev: &mut Vec<usize>, head: &mut usize| {
        let (p, nx) = (prev[pos], next[pos]);
        if p == usize::MAX {
            *head = nx
        } else {
            next[p] = nx
        }
        if nx < n {
            prev[nx] = p;
        }
    };
    let relink = |pos: usize, next: &mut Vec<usize>, prev: &mut Vec<usize>, head: &mut usize| {
        let (p, nx) = (prev[pos], next[pos]);
        if p == usize::MAX {
            *head = pos
        } else {
            next[p] = pos
        }
        if nx < n {
            prev[nx] = pos;
        }
    };
    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: BTreeSet<(Vec<u64>, Option<String>)> = BTreeSet::new();
    let mut stack: Vec<(usize, Option<String>)> = Vec::new();
    let mut state = initial;
    let mut entry = head;
    let mut steps = 0u64;
    while head < n {
        steps += 1;
        if steps > STEPS_MAX {
            return Verdict::Undecided;
        }
        if entry >= n {
            // Walked off the end without a return event: cannot happen with a list
            // that still holds entries, as every call has its return after it.
            return Verdict::NotLinearizable;
        }
        let (_, is_ret, op) = events[entry];
        if !is_ret {
            let o = &ops[op];
            let mut advanced = false;
            if let Some(new_state) = step(&state, &o.op, &o.result) {
                linearized[op / 64] |= 1 << (op % 64);
                if cache.insert((linearized.clone(), new_state.clone())) {
                    stack.push((entry, state.clone()));
                    state = new_state;
                    unlink(entry, &mut next, &mut prev, &mut head);
                    unlink(ret_of[op], &mut next, &mut prev, &mut head);
                    entry = head;
                    advanced = true;
                } else {
                    linearized[op / 64] &= !(1 << (op % 64));
                }
            }
            if !advanced {
                entry = next[entry];
            }
        } else {
            // A return with its call not yet linearized: undo the last choice.
            let Some((call, old)) = stack.pop() else {
                return Verdict::NotLinearizable;
            };
            let op = events[call].2;
            state = old;
            linearized[op / 64] &= !(1 << (op % 64));
            relink(ret_of[op], &mut next, &mut prev, &mut head);
            relink(call, &mut next, &mut prev, &mut head);
            entry = next[call];
        }
    }
    Verdict::Linearizable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(op: KeyOp, result: KeyResult, invoke: u64, ret: Option<u64>) -> Operation {
        Operation {
            op,
            result,
            invoke,
            ret,
        }
    }
    fn put(v: &str) -> KeyOp {
        KeyOp::Put(v.into())
    }
    fn read(v: Option<&str>) -> KeyResult {
        KeyResult::Read(v.map(String::from))
    }

    #[test]
    fn sequential_and_concurrent_histories() {
        use KeyOp::*;
        use KeyResult::*;
        let h = [
            op(put("a"), Written, 0, Some(1)),
            op(Get, read(Some("a")), 2, Some(3)),
        ];
        assert_eq!(check(&h, None), Verdict::Linearizable);
        // A read that returns an overwritten value after the overwrite finished.
        let h = [
            op(put("a"), Written, 0, Some(1)),
            op(put("b"), Written, 2, Some(3)),
            op(Get, read(Some("a")), 4, Some(5)),
        ];
        assert_eq!(check(&h, None), Verdict::NotLinearizable);
        // The same read concurrent with the overwrite is fine.
        let h = [
            op(put("a"), Written, 0, Some(1)),
            op(put("b"), Written, 2, Some(6)),
            op(Get, read(Some("a")), 4, Some(5)),
        ];
        assert_eq!(check(&h, None), Verdict::Linearizable);
        // Two reads that disagree on the order of two concurrent writes.
        let h = [
            op(put("a"), Written, 0, Some(10)),
            op(put("b"), Written, 0, Some(10)),
            op(Get, read(Some("a")), 11, Some(12)),
            op(Get, read(Some("b")), 13, Some(14)),
            op(Get, read(Some("a")), 15, Some(16)),
        ];
        assert_eq!(check(&h, None), Verdict::NotLinearizable);
        // Delete and conditional put.
        let h = [
            op(PutIfAbsent("a".into()), Written, 0, Some(1)),
            op(PutIfAbsent("b".into()), PreconditionFailed, 2, Some(3)),
            op(Delete, Deleted, 4, Some(5)),
            op(Delete, NoSuchKey, 6, Some(7)),
            op(Get, read(None), 8, Some(9)),
        ];
        assert_eq!(check(&h, None), Verdict::Linearizable);
        let h = [
            op(PutIfAbsent("a".into()), Written, 0, Some(1)),
            op(PutIfAbsent("b".into()), Written, 2, Some(3)),
        ];
        assert_eq!(check(&h, None), Verdict::NotLinearizable);
    }

    #[test]
    fn unknown_outcomes_may_or_may_not_have_happened() {
        use KeyOp::*;
        use KeyResult::*;
        // A timed-out write that a later read saw: it took effect.
        let h = [
            op(put("a"), Unknown, 0, None),
            op(Get, read(Some("a")), 5, Some(6)),
        ];
        assert_eq!(check(&h, None), Verdict::Linearizable);
        // A timed-out write nobody saw: it may not have.
        let h = [
            op(put("a"), Unknown, 0, None),
            op(Get, read(None), 5, Some(6)),
        ];
        assert_eq!(check(&h, None), Verdict::Linearizable);
        // But it cannot have taken effect before it was invoked.
        let h = [
            op(Get, read(Some("a")), 0, Some(1)),
            op(put("a"), Unknown, 5, None),
        ];
        assert_eq!(check(&h, None), Verdict::NotLinearizable);
        // An acknowledged write later lost.
        let h = [
            op(put("a"), Written, 0, Some(1)),
            op(Get, read(None), 2, Some(3)),
        ];
        assert_eq!(check(&h, None), Verdict::NotLinearizable);
    }
}
