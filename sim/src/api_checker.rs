//! Checkers of the objects workload's other S3 operations, separate from the workload:
//!
//! - multipart: a completion whose parts are out of order is never acknowledged (a
//!   completed object decoding to exactly its named parts is the read checker's: the
//!   key's one body is its parts' concatenation);
//! - copies: an acknowledged copy had a source that existed at the copy's point in the
//!   history (written before the copy returned, its delete not acknowledged before the
//!   copy began); its bytes equal the source's (the read checker again);
//! - listings: pages never overlap or go backwards; a listing never shows a key whose
//!   delete was acknowledged before it began, nor one no write could have stored before
//!   it ended; a complete listing never misses a key acknowledged before it began and
//!   not deleted since (directly, or under a common prefix when a delimiter rolls it up);
//! - each key as a register (absent, then its one body, then absent once deleted, never
//!   written again): once any read or acknowledgement showed the body, no read that
//!   began later misses it unless a delete began before that read ended; once a
//!   delete was acknowledged or a read missed the key after it was known written, no
//!   read that began later returns it (linearizability where the model is this simple:
//!   it also judges writes whose outcome the client never learnt).

use std::collections::BTreeMap;

use crate::object_checker::{acked_before, maybe_written_before};
use crate::object_workload::{
    GetOutcome, KeyKind, KeyRecord, ListRecord, ObjectHistory, PutOutcome, expected_tags,
};

pub fn check(h: &ObjectHistory) -> Vec<String> {
    let mut violations = Vec::new();
    for (index, outcome) in &h.misordered {
        if *outcome == PutOutcome::Acked {
            violations.push(format!(
                "a completion of {} with its parts out of order was acknowledged",
                h.keys[*index].key
            ));
        }
    }
    for k in &h.keys {
        let KeyKind::Copy { source } = k.kind else {
            continue;
        };
        let src = &h.keys[source];
        for p in k.puts.iter().filter(|p| p.outcome == PutOutcome::Acked) {
            if !maybe_written_before(src, p.ret) {
                violations.push(format!(
                    "copy {} of {} was acknowledged though nothing had written its source",
                    k.key, src.key
                ));
            }
            if src
                .delete
                .as_ref()
                .is_some_and(|d| d.acked && d.ret < p.invoke)
            {
                violations.push(format!(
                    "copy {} of {} was acknowledged after the source's delete was",
                    k.key, src.key
                ));
            }
        }
    }
    // A body's tags come in its own commit: a GET that returns the body returns them.
    for g in &h.gets {
        let expected = expected_tags(&h.keys, g.key);
        if matches!(g.outcome, GetOutcome::Data(_)) && g.tags != expected {
            violations.push(format!(
                "a GET of {} via node {} returned its body with {} tags; its write gave {expected}",
                h.keys[g.key].key, g.node, g.tags
            ));
        }
    }
    violations.extend(check_registers(h));
    let by_name: BTreeMap<&str, &KeyRecord> = h.keys.iter().map(|k| (k.key.as_str(), k)).collect();
    for l in &h.lists {
        violations.extend(check_listing(l, &by_name));
    }
    violations
}

fn check_listing(l: &ListRecord, keys: &BTreeMap<&str, &KeyRecord>) -> Vec<String> {
    let mut violations = Vec::new();
    let what = format!(
        "listing of prefix {:?} delimiter {:?} ({} pages)",
        l.prefix,
        l.delimiter,
        l.pages.len()
    );
    let listed: Vec<&String> = l.pages.iter().flat_map(|(k, _)| k).collect();
    let prefixes: Vec<&String> = l.pages.iter().flat_map(|(_, p)| p).collect();
    for pair in listed.windows(2) {
        if pair[0] >= pair[1] {
            violations.push(format!(
                "{what}: pages overlap or go backwards ({} then {})",
                pair[0], pair[1]
            ));
        }
    }
    for pair in prefixes.windows(2) {
        if pair[0] >= pair[1] {
            violations.push(format!(
                "{what}: common prefixes repeat ({} then {})",
                pair[0], pair[1]
            ));
        }
    }
    for name in &listed {
        if !name.starts_with(&l.prefix) {
            violations.push(format!("{what}: listed {name}, outside the prefix"));
        }
        match keys.get(name.as_str()) {
            None => violations.push(format!("{what}: listed {name}, which no client wrote")),
            Some(k) => {
                if k.delete
                    .as_ref()
                    .is_some_and(|d| d.acked && d.ret < l.invoke)
                {
                    violations.push(format!(
                        "{what}: listed {name}, whose delete was acknowledged before it began"
                    ));
                }
                if !maybe_written_before(k, l.ret) {
                    violations.push(format!("{what}: listed {name}, which no write stored"));
                }
            }
        }
    }
    if !l.complete {
        return violations;
    }
    for (name, k) in keys.range(l.prefix.as_str()..) {
        if !name.starts_with(&l.prefix) {
            break;
        }
        let present =
            acked_before(k, l.invoke) && k.delete.as_ref().is_none_or(|d| d.invoke >= l.ret);
        if !present {
            continue;
        }
        let rolled_up = l.delimiter.as_deref().and_then(|d| {
            name[l.prefix.len()..]
                .find(d)
                .map(|i| &name[..l.prefix.len() + i + d.len()])
        });
        let shown = match rolled_up {
            Some(p) => prefixes.iter().any(|q| q.as_str() == p),
            None => listed.iter().any(|q| q.as_str() == *name),
        };
        if !shown {
            violations.push(format!(
                "{what}: misses {name}, acknowledged before it began and not deleted"
            ));
        }
    }
    violations
}

/// Each key as a register: present from the first sign of its body (an acknowledged
/// write, a read that returned it), absent again from the first sign of its delete.
fn check_registers(h: &ObjectHistory) -> Vec<String> {
    let mut violations = Vec::new();
    let mut present_by: BTreeMap<usize, u64> = BTreeMap::new();
    for (i, k) in h.keys.iter().enumerate() {
        if let Some(t) = k
            .puts
            .iter()
            .filter(|p| p.outcome == PutOutcome::Acked)
            .map(|p| p.ret)
            .min()
        {
            present_by.insert(i, t);
        }
    }
    for g in &h.gets {
        if matches!(g.outcome, GetOutcome::Data(_) | GetOutcome::NotModified) {
            let t = present_by.entry(g.key).or_insert(g.ret);
            *t = (*t).min(g.ret);
        }
    }
    let mut absent_by: BTreeMap<usize, u64> = BTreeMap::new();
    for (i, k) in h.keys.iter().enumerate() {
        if let Some(d) = k.delete.as_ref().filter(|d| d.acked) {
            absent_by.insert(i, d.ret);
        }
    }
    for g in &h.gets {
        let known = present_by.get(&g.key).is_some_and(|&t| t < g.invoke);
        if g.outcome == GetOutcome::NoSuchKey && known {
            let t = absent_by.entry(g.key).or_insert(g.ret);
            *t = (*t).min(g.ret);
        }
    }
    for g in &h.gets {
        let k = &h.keys[g.key];
        let delete_began = k.delete.as_ref().is_some_and(|d| d.invoke < g.ret);
        let present_before = present_by.get(&g.key).is_some_and(|&t| t < g.invoke);
        let absent_before = absent_by.get(&g.key).is_some_and(|&t| t < g.invoke);
        match g.outcome {
            GetOutcome::NoSuchKey if present_before && !delete_began => violations.push(format!(
                "GET {} via node {} missed it after the key was seen written and before any \
                 delete began",
                k.key, g.node
            )),
            GetOutcome::Data(_) | GetOutcome::NotModified if absent_before => {
                violations.push(format!(
                    "GET {} via node {} returned it after the key was seen deleted",
                    k.key, g.node
                ))
            }
            _ => {}
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::object_workload::{GetRecord, PutRecord};

    fn history(put: PutOutcome, reads: &[(u64, u64, GetOutcome)]) -> ObjectHistory {
        let mut h = ObjectHistory::default();
        h.keys.push(KeyRecord {
            key: "c0/o0".into(),
            data: Arc::new(vec![1, 2, 3]),
            kind: KeyKind::Put,
            puts: vec![PutRecord {
                node: 1,
                if_absent: false,
                invoke: 0,
                ret: 5,
                outcome: put,
                degraded: false,
                etag: None,
            }],
            delete: None,
        });
        for (invoke, ret, outcome) in reads {
            h.gets.push(GetRecord {
                key: 0,
                range: None,
                node: 2,
                invoke: *invoke,
                ret: *ret,
                outcome: outcome.clone(),
                tags: 0,
                down: Default::default(),
                after_heal: false,
                condition: None,
                first_part: false,
            });
        }
        h
    }

    #[test]
    fn a_body_read_without_its_tags_is_caught() {
        let seen = GetOutcome::Data([0; 32]);
        let mut h = history(PutOutcome::Acked, &[(10, 20, seen)]);
        assert!(check(&h).is_empty(), "{:?}", check(&h));
        h.gets[0].tags = 1;
        let v = check(&h);
        assert!(v.iter().any(|v| v.contains("with 1 tags")), "{v:?}");
    }

    #[test]
    fn a_write_seen_by_one_read_is_never_missed_by_a_later_one() {
        let seen = GetOutcome::Data([0; 32]);
        // The client never learnt the write's outcome; a read saw it, a later one not.
        let bad = history(
            PutOutcome::Unknown,
            &[(10, 20, seen.clone()), (30, 40, GetOutcome::NoSuchKey)],
        );
        assert_eq!(
            check_registers(&bad).len(),
            1,
            "{:?}",
            check_registers(&bad)
        );
        // Overlapping reads may see either state.
        let fine = history(
            PutOutcome::Unknown,
            &[(10, 35, seen), (30, 40, GetOutcome::NoSuchKey)],
        );
        assert!(check_registers(&fine).is_empty());
    }
}
