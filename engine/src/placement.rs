//! Where a blob's shards go: the storage-profile ladder and rendezvous placement.
//!
//! **Ladder.** The profile (k data + m parity shards) follows the number of data-plane
//! members: 1 node 1+0, 2 nodes 1+1, 3 nodes 2+1, 4 nodes 2+2, 5 nodes 3+2, 6 or more
//! 4+2. Each step keeps k+m within the members (every shard on its own node) and
//! tolerates the most node losses the size allows without overhead above 3x.
//!
//! **Small objects use k = 1** (replicas, with the ladder's m): a blob of at most
//! [`SMALL_BLOB_BYTES_MAX`] is stored as 1+m copies. Striping a 4 KiB object 4+2 ways
//! means six shard files of ~1 KiB, six seals (fsync + rename + directory fsync) and
//! six network transfers, and a GET that must touch four of them; a replica costs
//! 1+m seals and a GET reads one. Tolerance is the same (any m losses); the space cost
//! of copies over parity is at most `SMALL_BLOB_BYTES_MAX * (m + 1)` per object, which
//! at 128 KiB is smaller than the metadata and per-file overhead it saves on tiny
//! objects. The threshold is one eighth of a 4+2 stripe of 1 MiB chunks, so every blob
//! that stripes fills at least half a chunk per data shard.
//!
//! **Placement.** k+m *distinct* nodes, chosen by rendezvous (highest random weight)
//! hashing of the blob's data id over the members: every node gets a score from a
//! fixed hash of (data id, node id) and the k+m best win, in score order (shard 0 on
//! the best). Deterministic, independent of member order, spread evenly, and a member
//! that leaves moves only the shards it held.

use crate::env::NodeId;

/// Blobs up to this size are stored as replicas (k = 1); see the module docs.
pub const SMALL_BLOB_BYTES_MAX: u64 = 128 * 1024;

/// Chunk size of striped blobs: one stripe is k chunks.
pub const CHUNK_SIZE_BYTES: u32 = 1 << 20;

/// A storage profile: k data shards and m parity shards per stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    pub k: u16,
    pub m: u16,
}

impl Profile {
    pub fn shards(&self) -> usize {
        usize::from(self.k) + usize::from(self.m)
    }

    /// Fewest sealed shards a write may be acknowledged with: all of them on the
    /// healthy path; with parity, at least k + 1 (one loss of margin left).
    pub fn write_floor(&self) -> usize {
        (usize::from(self.k) + 1).min(self.shards())
    }
}

/// The profile of the ladder for `members` data-plane members (at least one).
pub fn ladder(members: usize) -> Profile {
    let (k, m) = match members {
        0 => panic!("a cluster has at least one member"),
        1 => (1, 0),
        2 => (1, 1),
        3 => (2, 1),
        4 => (2, 2),
        5 => (3, 2),
        _ => (4, 2),
    };
    Profile { k, m }
}

/// The profile for a blob of `size` bytes on `members` members, where blobs up to
/// `small_blob_bytes_max` are replicas ([`SMALL_BLOB_BYTES_MAX`] in production).
pub fn profile_for(members: usize, size: u64, small_blob_bytes_max: u64) -> Profile {
    let p = ladder(members);
    if size <= small_blob_bytes_max {
        Profile { k: 1, m: p.m }
    } else {
        p
    }
}

/// A fixed 64-bit mix (splitmix64's finaliser): the same on every platform and run.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn score(data_id: u128, node: NodeId) -> u64 {
    let lo = data_id as u64;
    let hi = (data_id >> 64) as u64;
    mix(mix(lo ^ mix(node)) ^ hi.rotate_left(17))
}

/// The `count` nodes of `members` that hold the shards of blob `data_id`, shard 0
/// first; all distinct. `None` when there are fewer members than shards.
pub fn place(members: &[NodeId], data_id: u128, count: usize) -> Option<Vec<NodeId>> {
    let mut distinct: Vec<NodeId> = members.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < count {
        return None;
    }
    let mut scored: Vec<(u64, NodeId)> = distinct
        .into_iter()
        .map(|n| (score(data_id, n), n))
        .collect();
    // Highest score first; the node id breaks (astronomically rare) ties.
    scored.sort_unstable_by(|a, b| b.cmp(a));
    Some(scored.into_iter().take(count).map(|(_, n)| n).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_ladder_by_cluster_size() {
        let table = [
            (1, 1, 0),
            (2, 1, 1),
            (3, 2, 1),
            (4, 2, 2),
            (5, 3, 2),
            (6, 4, 2),
            (9, 4, 2),
            (16, 4, 2),
        ];
        for (members, k, m) in table {
            assert_eq!(ladder(members), Profile { k, m }, "{members} members");
            assert!(ladder(members).shards() <= members);
        }
    }

    #[test]
    fn small_blobs_are_replicas_and_the_floor_keeps_a_margin() {
        let table = [
            // (members, size, k, m, floor)
            (6, 0, 1, 2, 2),
            (6, 4096, 1, 2, 2),
            (6, SMALL_BLOB_BYTES_MAX, 1, 2, 2),
            (6, SMALL_BLOB_BYTES_MAX + 1, 4, 2, 5),
            (6, 1 << 30, 4, 2, 5),
            (3, 1 << 20, 2, 1, 3),
            (2, 1 << 20, 1, 1, 2),
            (1, 1 << 20, 1, 0, 1),
            (5, 1 << 20, 3, 2, 4),
        ];
        for (members, size, k, m, floor) in table {
            let p = profile_for(members, size, SMALL_BLOB_BYTES_MAX);
            assert_eq!((p.k, p.m), (k, m), "{members} members, {size} bytes");
            assert_eq!(p.write_floor(), floor, "{members} members, {size} bytes");
        }
    }

    #[test]
    fn placement_is_deterministic_and_order_free() {
        let a = place(&[1, 2, 3, 4, 5, 6], 42, 6).unwrap();
        let b = place(&[6, 5, 4, 3, 2, 1, 3], 42, 6).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, place(&[1, 2, 3, 4, 5, 6], 43, 6).unwrap());
        assert_eq!(place(&[1, 2], 7, 3), None);
    }

    #[test]
    fn placement_spreads_shard_zero_evenly() {
        let members: Vec<NodeId> = (1..=6).collect();
        let mut firsts = [0u32; 7];
        for id in 0..6000u128 {
            firsts[place(&members, id * 7919, 6).unwrap()[0] as usize] += 1;
        }
        for n in &firsts[1..] {
            assert!((800..1200).contains(n), "uneven: {firsts:?}");
        }
    }

    proptest! {
        /// For every cluster size from 1 to 16 and any blob, the ladder's shards land on
        /// distinct members, and a member outside the placement leaving moves nothing.
        #[test]
        fn no_two_shards_of_a_blob_share_a_node(
            members in 1usize..=16,
            data_id in any::<u128>(),
            size in 0u64..(8 << 20),
        ) {
            let nodes: Vec<NodeId> = (1..=members as NodeId).map(|n| n * 3 + 1).collect();
            let p = profile_for(members, size, SMALL_BLOB_BYTES_MAX);
            let holders = place(&nodes, data_id, p.shards()).unwrap();
            prop_assert_eq!(holders.len(), p.shards());
            let mut distinct = holders.clone();
            distinct.sort_unstable();
            distinct.dedup();
            prop_assert_eq!(distinct.len(), holders.len());
            prop_assert!(holders.iter().all(|h| nodes.contains(h)));
            if let Some(idle) = nodes.iter().find(|n| !holders.contains(n)) {
                let rest: Vec<NodeId> = nodes.iter().copied().filter(|n| n != idle).collect();
                prop_assert_eq!(place(&rest, data_id, p.shards()).unwrap(), holders);
            }
        }
    }
}
