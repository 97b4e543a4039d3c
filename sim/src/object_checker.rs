//! Checkers of the objects workload. They judge from the clients' history, from the
//! layouts the cluster reports after heal, and from the disks themselves:
//!
//! - reads: a GET never returns bytes other than the object's (whole or the range);
//!   an acknowledged, undeleted object is never missing; a deleted one never returns;
//!   a refused write is never visible; after heal and repair every object reads back
//!   unless it is marked lost, and a lost one answers ObjectLost (not a 503);
//! - layouts: no committed layout puts two shards of an object on one node (the state
//!   machine refuses such a layout; a PUT that hit that refusal is a violation too);
//! - conditional PUT: `If-None-Match: *` never succeeds over an acknowledged object;
//! - durability and repair (after repair had its time, then a final power loss): every
//!   object not marked lost has all k+m shards sealed, present and hashing to their
//!   replicated sha256 **on the durable disk images**, and decodes to its exact bytes;
//!   an object marked lost really has fewer than k good shards, more of them damaged
//!   by the schedule than its parity covers (the lost set is what the faults explain);
//!   a sealed object's blobs open to its bytes (`sealed_checker`);
//! - the orphan sweep: once it has had its grace, no shard file is left that no
//!   committed object refers to (refused writes, lost coordinators, deletes).

use std::collections::{BTreeMap, BTreeSet};

use engine::data_path::shard_id;
use engine::env::NodeId;
use engine::erasure::{self, Geometry, ReedSolomon};
use engine::meta::DataLayout;
use engine::shard_store::{self, ShardId};
use runtime_sim::World;

use crate::SHARD_DIR;
use crate::model::History;
use crate::object_workload::{
    GetCondition, GetOutcome, KeyKind, KeyRecord, ObjectHistory, PutOutcome, sha,
};
use crate::sealed_checker::{Sealed, open_blob, shows_plaintext};

/// What the cluster said after heal: per key, its layouts, or `None` for NoSuchKey.
pub type Layouts = BTreeMap<usize, Option<Vec<DataLayout>>>;
/// Keys the cluster said are lost (some blob marked lost by repair) after heal.
pub type LostKeys = BTreeSet<usize>;

/// Counts for the verdict line.
#[derive(Debug, Default)]
pub struct Tally {
    pub degraded_writes: u64,
    /// Objects with a blob beyond tolerance (and so marked lost).
    pub beyond_tolerance: u64,
    pub degraded_reads: u64,
    /// Shard files the schedule damaged that were whole again at the end.
    pub healed_shards: u64,
}

pub(crate) fn acked_before(k: &KeyRecord, t: u64) -> bool {
    k.puts
        .iter()
        .any(|p| p.outcome == PutOutcome::Acked && p.ret < t)
}

/// True when some PUT of the key may have taken effect before `t`.
pub(crate) fn maybe_written_before(k: &KeyRecord, t: u64) -> bool {
    k.puts
        .iter()
        .any(|p| p.invoke < t && matches!(p.outcome, PutOutcome::Acked | PutOutcome::Unknown))
}

pub fn check_history(h: &ObjectHistory, lost: &LostKeys) -> Vec<String> {
    let mut violations = Vec::new();
    for g in &h.gets {
        let k = &h.keys[g.key];
        let what = format!(
            "GET {} {:?} via node {}{}",
            k.key,
            g.range,
            g.node,
            if g.after_heal { " after heal" } else { "" }
        );
        let deleted_before = k
            .delete
            .as_ref()
            .is_some_and(|d| d.acked && d.ret < g.invoke);
        let delete_started = k.delete.as_ref().is_some_and(|d| d.invoke < g.ret);
        match &g.outcome {
            GetOutcome::Data(got) => {
                let expected = match g.range {
                    Some((first, last)) => sha(&k.data[first as usize..=last as usize]),
                    None => sha(&k.data),
                };
                if *got != expected {
                    violations.push(format!("WRONG BYTES from {what}"));
                }
                // Part 1 is a multipart body's first part (or, once re-PUT whole, all of
                // it); a simple body's part 1 is all of it.
                let part_ok = match (k.kind, g.range) {
                    (_, None) => true,
                    (KeyKind::Multipart { first_part }, Some(span)) => {
                        span == (0, first_part.saturating_sub(1))
                    }
                    _ => false,
                };
                if g.first_part && !part_ok {
                    violations.push(format!("{what}: partNumber=1 served another span"));
                }
                if let Some(c) = &g.condition {
                    violations.push(format!("{what}: returned the bytes despite {c:?}"));
                }
                if deleted_before {
                    violations.push(format!("{what}: a deleted object was returned"));
                }
                if !maybe_written_before(k, g.ret) {
                    violations.push(format!("{what}: returned an object no PUT stored"));
                }
            }
            GetOutcome::NoSuchKey => {
                if acked_before(k, g.invoke) && !delete_started {
                    violations.push(format!("{what}: an acknowledged object is missing"));
                }
            }
            GetOutcome::Unavailable(why) | GetOutcome::Error { message: why, .. }
                if g.after_heal && !lost.contains(&g.key) =>
            {
                violations.push(format!("{what}: failed once every fault healed: {why}"));
            }
            GetOutcome::Unavailable(why) if g.after_heal => {
                violations.push(format!(
                    "{what}: a lost object answered 503 (retried forever), not ObjectLost: {why}"
                ));
            }
            GetOutcome::ObjectLost if g.after_heal && !lost.contains(&g.key) => {
                violations.push(format!("{what}: ObjectLost for an object that is not lost"));
            }
            GetOutcome::ObjectLost => {}
            GetOutcome::NotModified => {
                if !matches!(g.condition, Some(GetCondition::IfNoneMatchCurrent(_))) {
                    violations.push(format!("{what}: 304 without a matching If-None-Match"));
                }
                if deleted_before || !maybe_written_before(k, g.ret) {
                    violations.push(format!("{what}: 304 for an object that is not there"));
                }
            }
            GetOutcome::PreconditionFailed => {
                if !matches!(g.condition, Some(GetCondition::IfMatchOther(_))) {
                    violations.push(format!("{what}: 412 without a failing If-Match"));
                }
            }
            GetOutcome::Error { code, message } => {
                violations.push(format!("{what}: unexpected {code}: {message}"));
            }
            GetOutcome::Lost if g.after_heal => {
                violations.push(format!("{what}: no answer once every fault healed"));
            }
            GetOutcome::Unavailable(_) | GetOutcome::Lost => {}
        }
    }
    for k in &h.keys {
        for p in &k.puts {
            if let PutOutcome::Refused { message, .. } = &p.outcome
                && message.contains("refused the layout")
            {
                violations.push(format!(
                    "PUT of {} via node {}: the metadata refused its layout: {message}",
                    k.key, p.node
                ));
            }
        }
        for p in k.puts.iter().filter(|p| p.if_absent) {
            let deleted = k.delete.as_ref().is_some_and(|d| d.invoke < p.ret);
            if p.outcome == PutOutcome::Acked && acked_before(k, p.invoke) && !deleted {
                violations.push(format!(
                    "conditional PUT of {} via node {} succeeded over an acknowledged object",
                    k.key, p.node
                ));
            }
        }
    }
    violations
}

/// Judges the layouts the cluster reported after heal against the history.
pub fn check_layouts(h: &ObjectHistory, layouts: &Layouts) -> Vec<String> {
    let mut violations = Vec::new();
    for (index, k) in h.keys.iter().enumerate() {
        let visible = matches!(layouts.get(&index), Some(Some(_)));
        let deleted = k.delete.is_some();
        if acked_before(k, u64::MAX) && !deleted && !visible {
            violations.push(format!("acknowledged object {} is gone after heal", k.key));
        }
        if visible && !maybe_written_before(k, u64::MAX) {
            let refusals: Vec<_> = k.puts.iter().map(|p| &p.outcome).collect();
            violations.push(format!(
                "object {} is visible although every PUT was refused: {refusals:?}",
                k.key
            ));
        }
        if visible && k.delete.as_ref().is_some_and(|d| d.acked) {
            violations.push(format!("deleted object {} is visible after heal", k.key));
        }
        for layout in layouts.get(&index).into_iter().flatten().flatten() {
            // The checker's own test, not the engine's (a checker never trusts a node).
            let nodes: Vec<NodeId> = layout.shards.iter().map(|s| s.node).collect();
            if nodes.iter().collect::<BTreeSet<_>>().len() != nodes.len() {
                violations.push(format!(
                    "object {}: two shards on one node: {nodes:?}",
                    k.key
                ));
            }
        }
    }
    violations
}

fn shard_path(layout: &DataLayout, index: usize) -> String {
    format!(
        "{SHARD_DIR}/{}",
        shard_id(layout.data_id, index as u16).file_name()
    )
}

/// Shards of `layout` the fault schedule damaged (rotted, or lost with a replaced
/// disk) or that its write never sealed: the most a lost blob may blame on faults.
fn damaged(layout: &DataLayout, faults: &History) -> usize {
    (0..layout.shards.len())
        .filter(|&i| {
            !layout.shards[i].sealed
                || faults
                    .rotted
                    .contains(&(layout.shards[i].node, shard_path(layout, i)))
        })
        .count()
}

/// Judges every committed object from the durable images of the disks, after repair
/// had its time. Nothing is excused any more: an object not marked lost must have all
/// k+m shards sealed, present, verifying and hashing to their replicated sha256 (so no
/// rebuilt shard differs from the original encoding), and must decode to its exact
/// bytes; an object marked lost must really have fewer than k good shards, and more
/// shards damaged by the schedule than its parity covers.
pub fn check_durability(
    world: &World,
    nodes: u64,
    (h, layouts, lost, sealed): (&ObjectHistory, &Layouts, &LostKeys, &Sealed),
    faults: &History,
    tally: &mut Tally,
) -> Vec<String> {
    let mut violations = Vec::new();
    let images: BTreeMap<NodeId, BTreeMap<String, Vec<u8>>> = (1..=nodes)
        .map(|n| (n, world.disk(n).durable_files()))
        .collect();
    let mut codecs: BTreeMap<(u16, u16), ReedSolomon> = BTreeMap::new();
    tally.degraded_writes = h
        .keys
        .iter()
        .flat_map(|k| &k.puts)
        .filter(|p| p.degraded && p.outcome == PutOutcome::Acked)
        .count() as u64;
    for (&index, blobs) in layouts {
        let Some(blobs) = blobs else { continue };
        let key = &h.keys[index];
        if blobs.is_empty() && !key.data.is_empty() {
            violations.push(format!("object {} has no data blob", key.key));
        }
        let is_lost = lost.contains(&index);
        let mut lost_blobs = 0;
        // The blobs' bytes in order (a multipart object's parts), while all decode.
        let mut decoded: Option<Vec<u8>> = Some(Vec::new());
        for layout in blobs {
            let n = layout.shards.len();
            let mut shards: Vec<Option<Vec<u8>>> = vec![None; n];
            let mut unhealed = Vec::new();
            for (i, placement) in layout.shards.iter().enumerate() {
                let path = shard_path(layout, i);
                let was_damaged = faults.rotted.contains(&(placement.node, path.clone()));
                let file = images.get(&placement.node).and_then(|d| d.get(&path));
                match file.map(|bytes| shard_store::verify_file_bytes(&path, bytes)) {
                    Some(Ok((_, data))) if sha(&data) == placement.sha256 => {
                        shards[i] = Some(data);
                        tally.healed_shards += u64::from(was_damaged);
                        if !placement.sealed {
                            unhealed
                                .push(format!("shard {i} is whole but its layout says unsealed"));
                        }
                    }
                    Some(Ok(_)) => unhealed.push(format!(
                        "shard {i} on node {} is not the shard its layout's sha256 names",
                        placement.node
                    )),
                    None => {
                        unhealed.push(format!("shard {i} is missing from node {}", placement.node))
                    }
                    Some(Err(e)) => {
                        unhealed.push(format!("shard {i} on node {}: {e}", placement.node))
                    }
                }
            }
            let intact = shards.iter().flatten().count();
            if intact < usize::from(layout.k) {
                lost_blobs += 1;
                decoded = None;
                if !is_lost {
                    violations.push(format!(
                        "object {}: {intact} shards readable, fewer than k = {}, but it is not marked lost: {}",
                        key.key,
                        layout.k,
                        unhealed.join("; ")
                    ));
                }
                let blamed = damaged(layout, faults);
                if blamed <= usize::from(layout.m) {
                    violations.push(format!(
                        "object {}: {intact} shards readable, fewer than k = {}, with only {blamed} damaged by faults",
                        key.key, layout.k
                    ));
                }
                continue;
            }
            if !is_lost && !unhealed.is_empty() {
                violations.push(format!(
                    "object {}: repair did not heal it within its time: {}",
                    key.key,
                    unhealed.join("; ")
                ));
            }
            let codec = codecs.entry((layout.k, layout.m)).or_insert_with(|| {
                ReedSolomon::new(u32::from(layout.k), u32::from(layout.m))
                    .expect("a committed profile is valid")
            });
            let geometry = Geometry::new(
                u32::from(layout.k),
                u32::from(layout.m),
                layout.chunk_size_bytes,
                layout.size,
            );
            let opened = erasure::decode_object(codec, &geometry, &shards)
                .map_err(|e| format!("does not decode from its shard files: {e}"))
                .and_then(|raw| match sealed.get(&index) {
                    None => Ok(raw),
                    Some(_) if shows_plaintext(&raw, &key.data) => {
                        Err("is sealed, yet its shards hold its body's bytes".into())
                    }
                    Some(record) => open_blob(record, layout, &raw),
                });
            match opened {
                Ok(data) => {
                    if let Some(all) = decoded.as_mut() {
                        all.extend_from_slice(&data);
                    }
                }
                Err(e) => {
                    decoded = None;
                    violations.push(format!("object {} {e}", key.key));
                }
            }
        }
        if decoded.is_some_and(|all| all != *key.data) {
            violations.push(format!(
                "object {} decodes to WRONG BYTES from its shard files",
                key.key
            ));
        }
        if is_lost && lost_blobs == 0 {
            violations.push(format!(
                "object {} is marked lost although every blob has k good shards",
                key.key
            ));
        }
        tally.beyond_tolerance += u64::from(lost_blobs > 0);
    }
    violations
}

/// After the sweep had its grace: every shard file is one a committed layout places on
/// that node (not a refused write's, a deleted object's, or a shard repair moved away).
pub fn check_orphans(world: &World, nodes: u64, layouts: &Layouts) -> Vec<String> {
    let referenced: BTreeSet<(NodeId, ShardId)> = layouts
        .values()
        .flatten()
        .flatten()
        .flat_map(|l| {
            l.shards
                .iter()
                .enumerate()
                .map(|(i, p)| (p.node, shard_id(l.data_id, i as u16)))
        })
        .collect();
    let mut violations = Vec::new();
    for node in 1..=nodes {
        for name in world.disk(node).live_names() {
            let Some(file) = name.strip_prefix(&format!("{SHARD_DIR}/")) else {
                continue;
            };
            if let Some(id) = ShardId::parse_file_name(file)
                && !referenced.contains(&(node, id))
            {
                violations.push(format!(
                    "node {node}: orphan shard {file} outlived the sweep"
                ));
            }
        }
    }
    violations
}

/// GETs that succeeded while a holder of the object was down.
pub fn degraded_reads(h: &ObjectHistory, layouts: &Layouts) -> u64 {
    h.gets
        .iter()
        .filter(|g| matches!(g.outcome, GetOutcome::Data(_)) && !g.down.is_empty())
        .filter(|g| {
            layouts
                .get(&g.key)
                .and_then(Option::as_ref)
                .is_some_and(|blobs| {
                    blobs
                        .iter()
                        .any(|l| l.shards.iter().any(|s| g.down.contains(&s.node)))
                })
        })
        .count() as u64
}

/// The versions workload's blobs (key, version id, layout, marked lost), after repair
/// had its time, on the durable images: every shard of a blob not marked lost is
/// sealed, present and hashes to its replicated sha256; a lost one has more shards
/// damaged by the schedule than its parity covers.
pub fn check_version_shards(
    world: &World,
    blobs: &[(String, String, DataLayout, bool)],
    faults: &History,
) -> Vec<String> {
    let mut violations = Vec::new();
    for (key, id, layout, lost) in blobs {
        let mut good = 0;
        let mut unhealed = Vec::new();
        for (i, placement) in layout.shards.iter().enumerate() {
            let path = shard_path(layout, i);
            let image = world.disk(placement.node).durable_files();
            match image
                .get(&path)
                .map(|b| shard_store::verify_file_bytes(&path, b))
            {
                Some(Ok((_, data))) if sha(&data) == placement.sha256 && placement.sealed => {
                    good += 1
                }
                other => unhealed.push(format!(
                    "shard {i} on node {}: {}",
                    placement.node,
                    match other {
                        None => "missing".to_string(),
                        Some(Err(e)) => e.to_string(),
                        Some(Ok(_)) => "unsealed or not its sha256".to_string(),
                    }
                )),
            }
        }
        let blamed = damaged(layout, faults);
        if *lost && (good >= usize::from(layout.k) || blamed <= usize::from(layout.m)) {
            violations.push(format!(
                "version {id} of {key} is marked lost with {good} good shards, {blamed} damaged by faults"
            ));
        }
        if !lost && !unhealed.is_empty() {
            violations.push(format!(
                "version {id} of {key}: repair did not heal it within its time: {}",
                unhealed.join("; ")
            ));
        }
    }
    violations
}
