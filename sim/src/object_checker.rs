//! Checkers of the objects workload. They judge from the clients' history, from the
//! layouts the cluster reports after heal, and from the disks themselves:
//!
//! - reads: a GET never returns bytes other than the object's (whole or the range);
//!   an acknowledged, undeleted object is never missing; a deleted one never returns;
//!   a refused write is never visible; after heal every object reads back unless more
//!   shards were lost than its parity covers (beyond tolerance, reported honestly);
//! - conditional PUT: `If-None-Match: *` never succeeds over an acknowledged object;
//! - durability (after a final power loss): every committed object decodes to its exact
//!   bytes **from the shard files on the durable disk images**, not through a node;
//!   every shard its layout calls sealed is there and verifies, unless rot was injected;
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
use crate::object_workload::{GetOutcome, KeyRecord, ObjectHistory, PutOutcome, sha};

/// What the cluster said after heal: per key, its layouts, or `None` for NoSuchKey.
pub type Layouts = BTreeMap<usize, Option<Vec<DataLayout>>>;

/// Counts for the verdict line.
#[derive(Debug, Default)]
pub struct Tally {
    pub degraded_writes: u64,
    pub beyond_tolerance: u64,
    pub degraded_reads: u64,
}

fn acked_before(k: &KeyRecord, t: u64) -> bool {
    k.puts
        .iter()
        .any(|p| p.outcome == PutOutcome::Acked && p.ret < t)
}

/// True when some PUT of the key may have taken effect before `t`.
fn maybe_written_before(k: &KeyRecord, t: u64) -> bool {
    k.puts
        .iter()
        .any(|p| p.invoke < t && matches!(p.outcome, PutOutcome::Acked | PutOutcome::Unknown))
}

pub fn check_history(h: &ObjectHistory, beyond: &BTreeSet<usize>) -> Vec<String> {
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
                if g.after_heal && !beyond.contains(&g.key) =>
            {
                violations.push(format!("{what}: failed once every fault healed: {why}"));
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
    }
    violations
}

fn shard_path(layout: &DataLayout, index: usize) -> String {
    format!(
        "{SHARD_DIR}/{}",
        shard_id(layout.data_id, index as u16).file_name()
    )
}

/// Keys whose data cannot be decoded any more because more shards were lost (never
/// sealed, or rotted by the schedule) than the parity covers.
pub fn beyond_tolerance(layouts: &Layouts, faults: &History) -> BTreeSet<usize> {
    layouts
        .iter()
        .filter_map(|(&index, l)| Some((index, l.as_ref()?)))
        .filter(|(_, blobs)| {
            blobs.iter().any(|l| {
                let lost = (0..l.shards.len())
                    .filter(|&i| {
                        !l.shards[i].sealed
                            || faults
                                .rotted
                                .contains(&(l.shards[i].node, shard_path(l, i)))
                    })
                    .count();
                lost > usize::from(l.m)
            })
        })
        .map(|(index, _)| index)
        .collect()
}

/// Decodes every committed object from the durable images of the disks.
pub fn check_durability(
    world: &World,
    nodes: u64,
    h: &ObjectHistory,
    layouts: &Layouts,
    faults: &History,
    tally: &mut Tally,
) -> Vec<String> {
    let mut violations = Vec::new();
    let images: BTreeMap<NodeId, BTreeMap<String, Vec<u8>>> = (1..=nodes)
        .map(|n| (n, world.disk(n).durable_files()))
        .collect();
    let mut codecs: BTreeMap<(u16, u16), ReedSolomon> = BTreeMap::new();
    for (&index, blobs) in layouts {
        let Some(blobs) = blobs else { continue };
        let key = &h.keys[index];
        if blobs.is_empty() && !key.data.is_empty() {
            violations.push(format!("object {} has no data blob", key.key));
        }
        for layout in blobs {
            let n = layout.shards.len();
            if layout.sealed_shards() < n {
                tally.degraded_writes += 1;
            }
            let floor = engine::placement::Profile {
                k: layout.k,
                m: layout.m,
            }
            .write_floor();
            if layout.sealed_shards() < floor {
                violations.push(format!(
                    "object {} was committed with {} sealed shards, below the floor of {floor}",
                    key.key,
                    layout.sealed_shards()
                ));
            }
            let mut shards: Vec<Option<Vec<u8>>> = vec![None; n];
            let mut excused = 0;
            for (i, placement) in layout.shards.iter().enumerate() {
                let path = shard_path(layout, i);
                let rotted = faults.rotted.contains(&(placement.node, path.clone()));
                if !placement.sealed || rotted {
                    excused += 1;
                }
                let file = images.get(&placement.node).and_then(|d| d.get(&path));
                match file.map(|bytes| shard_store::verify_file_bytes(&path, bytes)) {
                    Some(Ok((_, data))) => {
                        if placement.sealed && sha(&data) != placement.sha256 {
                            violations.push(format!(
                                "object {}: shard {i} on node {} is not the shard its holder sealed",
                                key.key, placement.node
                            ));
                        } else {
                            shards[i] = Some(data);
                        }
                    }
                    _ if !placement.sealed || rotted => {}
                    None => violations.push(format!(
                        "object {}: sealed shard {i} is gone from node {}'s disk",
                        key.key, placement.node
                    )),
                    Some(Err(e)) => violations.push(format!(
                        "object {}: sealed shard {i} on node {} unreadable without rot: {e}",
                        key.key, placement.node
                    )),
                }
            }
            let intact = shards.iter().flatten().count();
            if intact < usize::from(layout.k) {
                if excused > usize::from(layout.m) {
                    tally.beyond_tolerance += 1;
                } else {
                    violations.push(format!(
                        "object {}: {intact} shards readable, fewer than k = {}, with only {excused} lost to faults",
                        key.key, layout.k
                    ));
                }
                continue;
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
            match erasure::decode_object(codec, &geometry, &shards) {
                Ok(data) if data == *key.data => {}
                Ok(_) => violations.push(format!(
                    "object {} decodes to WRONG BYTES from its shard files",
                    key.key
                )),
                Err(e) => violations.push(format!(
                    "object {} does not decode from its shard files: {e}",
                    key.key
                )),
            }
        }
    }
    violations
}

/// After the sweep had its grace: every shard file belongs to a committed object.
pub fn check_orphans(world: &World, nodes: u64, layouts: &Layouts) -> Vec<String> {
    let referenced: BTreeSet<u128> = layouts
        .values()
        .flatten()
        .flatten()
        .map(|l| l.data_id)
        .collect();
    let mut violations = Vec::new();
    for node in 1..=nodes {
        for name in world.disk(node).live_names() {
            let Some(file) = name.strip_prefix(&format!("{SHARD_DIR}/")) else {
                continue;
            };
            if let Some(id) = ShardId::parse_file_name(file)
                && !referenced.contains(&id.object)
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
