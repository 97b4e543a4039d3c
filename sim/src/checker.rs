//! Checkers: judge a run from its History and from the disks themselves, never from
//! what a node says about itself. Each returns the violations it found.
//!
//! - reads: every byte a read returned is the byte that was stored; an acknowledged
//!   shard is never missing, and is reported corrupt only if the fault schedule rotted
//!   its file; a decoded object is exactly the stored object;
//! - liveness: after every fault healed, every acknowledged, unrotted shard reads back;
//! - durability (after a final power loss): every acknowledged shard's file is on the
//!   durable image of its holder's disk and decodes byte-exact, unless rotted; every
//!   object with k intact acknowledged shards decodes to its exact bytes from the files;
//! - sealing: no file with a sealed name is torn (every one verifies unless rotted);
//! - recovery: after restart no temporary shard file is left.

use std::collections::BTreeMap;

use engine::erasure::{self, ReedSolomon};
use engine::shard_store::{self, ShardId};
use runtime_sim::World;
use sha2::{Digest, Sha256};

use crate::SHARD_DIR;
use crate::model::{History, ReadOutcome};

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub fn check_reads(h: &History) -> Vec<String> {
    let mut violations = Vec::new();
    for r in &h.shard_reads {
        let object = &h.objects[r.object_index];
        let shard = &object.shards[r.shard];
        let expected = &shard.body[r.offset as usize..(r.offset + r.len) as usize];
        let what = format!(
            "shard {:?} on node {} range {}+{}",
            shard.id, shard.node, r.offset, r.len
        );
        match &r.outcome {
            ReadOutcome::Bytes(got) if *got != sha(expected) => {
                violations.push(format!("WRONG BYTES from {what}"));
            }
            ReadOutcome::NotFound => violations.push(format!("acknowledged {what} is missing")),
            ReadOutcome::Corrupt if !h.is_rotted(shard) => {
                violations.push(format!(
                    "acknowledged {what} is corrupt without injected rot"
                ));
            }
            ReadOutcome::Unavailable if r.after_heal && !h.is_rotted(shard) => {
                violations.push(format!("{what} unreadable after heal"));
            }
            _ => {}
        }
    }
    for r in &h.object_reads {
        let object = &h.objects[r.object_index];
        if r.decoded.is_some_and(|got| got != sha(&object.data)) {
            violations.push(format!(
                "WRONG BYTES decoding object {:032x}",
                object.object
            ));
        }
    }
    violations
}

/// Without faults, every store must be acknowledged by every holder.
pub fn check_all_acked(h: &History) -> Vec<String> {
    h.objects
        .iter()
        .flat_map(|o| o.shards.iter())
        .filter(|s| !s.acked)
        .map(|s| {
            format!(
                "store of {:?} on node {} failed without any fault",
                s.id, s.node
            )
        })
        .collect()
}

/// Reads every node's durable image directly and checks every acknowledged shard.
pub fn check_durability(
    world: &World,
    nodes: u64,
    h: &History,
    codec: &ReedSolomon,
) -> Vec<String> {
    let mut violations = Vec::new();
    let images: BTreeMap<u64, BTreeMap<String, Vec<u8>>> = (1..=nodes)
        .map(|n| (n, world.disk(n).durable_files()))
        .collect();
    for object in &h.objects {
        let mut decodable: Vec<Option<Vec<u8>>> = vec![None; object.shards.len()];
        for (i, shard) in object.shards.iter().enumerate() {
            if !shard.acked {
                continue;
            }
            let path = format!("{SHARD_DIR}/{}", shard.id.file_name());
            let Some(bytes) = images[&shard.node].get(&path) else {
                violations.push(format!(
                    "acknowledged shard {:?} lost from node {}'s disk",
                    shard.id, shard.node
                ));
                continue;
            };
            match shard_store::verify_file_bytes(&path, bytes) {
                Ok((_, data)) if data == *shard.body => decodable[i] = Some(data),
                Ok(_) => violations.push(format!(
                    "WRONG BYTES in sealed file {path} on node {}",
                    shard.node
                )),
                Err(e) if !h.is_rotted(shard) => violations.push(format!(
                    "acknowledged shard on node {} unreadable without rot: {e}",
                    shard.node
                )),
                Err(_) => {}
            }
        }
        if decodable.iter().flatten().count() >= object.geometry.k as usize {
            match erasure::decode_object(codec, &object.geometry, &decodable) {
                Ok(data) if data == *object.data => {}
                Ok(_) => violations.push(format!(
                    "object {:032x} decodes to WRONG BYTES",
                    object.object
                )),
                Err(e) => violations.push(format!(
                    "object {:032x} does not decode: {e}",
                    object.object
                )),
            }
        }
    }
    violations
}

/// No file carrying a sealed shard's name may be torn, on any durable image.
pub fn check_sealed_files(world: &World, nodes: u64, h: &History) -> Vec<String> {
    let mut violations = Vec::new();
    for node in 1..=nodes {
        for (path, bytes) in world.disk(node).durable_files() {
            let Some(name) = path.strip_prefix(&format!("{SHARD_DIR}/")) else {
                continue;
            };
            if ShardId::parse_file_name(name).is_none() || h.rotted.contains(&(node, path.clone()))
            {
                continue;
            }
            if let Err(e) = shard_store::verify_file_bytes(&path, &bytes) {
                violations.push(format!(
                    "node {node}: torn or corrupt file with a sealed name: {e}"
                ));
            }
        }
    }
    violations
}

/// After the restart that follows the final power loss, no temporary is left.
pub fn check_recovered(world: &World, nodes: u64) -> Vec<String> {
    let mut violations = Vec::new();
    for node in 1..=nodes {
        for name in world.disk(node).live_names() {
            if name.contains(".tmp.") {
                violations.push(format!("node {node}: temporary {name} survived recovery"));
            }
        }
    }
    violations
}
