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
//!   not deleted since (directly, or under a common prefix when a delimiter rolls it up).

use std::collections::BTreeMap;

use crate::object_checker::{acked_before, maybe_written_before};
use crate::object_workload::{KeyKind, KeyRecord, ListRecord, ObjectHistory, PutOutcome};

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
