//! Deterministic engine tests written with the fluent context (`sim::context`).

use std::time::Duration;

use sim::context::{Context, run, run_with};

/// A clock that keeps true time, in parts per million of it.
const TRUE_RATE: u64 = runtime_sim::TRUE_RATE_PPM;

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A GET through a node that has not yet heard of an overwrite answers the new bytes:
/// the small-object read-ahead during the ReadIndex (`engine::s3::prefetch`) fetches
/// what the stale local metadata names, and must drop it once the up-to-date metadata
/// names another blob.
#[test]
fn a_lagging_node_never_serves_the_bytes_it_read_ahead_for_an_overwritten_key() {
    run(13, 5, |t| async move {
        t.s3(1).create_bucket("bkt").await.unwrap();
        for round in 0..4u8 {
            let leader = t.leader(1).await;
            assert_ne!(leader, 0, "a leader is known");
            // A coordinator and a lagging node, both followers.
            let mut followers = (1..=5).filter(|&n| n != leader);
            let (coordinator, lagging) = (followers.next().unwrap(), followers.next().unwrap());
            let old = bytes(1000, 2 * round);
            let new = bytes(1000, 2 * round + 1);
            t.s3(coordinator).put("bkt", "k", &old).await.unwrap();
            t.run_for(Duration::from_secs(1)).await;
            assert_eq!(t.s3(lagging).get("bkt", "k").await.unwrap(), old);
            // The lagging node hears nothing from the leader until the clog clears:
            // not the overwrite's commit, nor the answer to its GET's ReadIndex.
            t.clog(leader, lagging);
            t.s3(coordinator).put("bkt", "k", &new).await.unwrap();
            let heal = async {
                t.run_for(Duration::from_millis(300)).await;
                t.heal();
            };
            let reader = t.s3(lagging);
            let (got, ()) = futures::join!(reader.get("bkt", "k"), heal);
            let got = got.unwrap();
            assert!(
                got == new,
                "round {round}: leader {leader}, via {lagging}: {}",
                if got == old {
                    "the overwritten bytes"
                } else {
                    "other bytes"
                }
            );
            t.run_for(Duration::from_secs(1)).await;
        }
    });
}

/// Parts through different coordinators, one of which then crashes; a completion with
/// the parts out of order is refused; the right one reads back as exactly its parts.
#[test]
fn multipart_parts_on_different_nodes_survive_a_crash() {
    run(11, 5, |t| async move {
        let (p1, p2) = (bytes(1500, 1), bytes(700, 2));
        t.s3(1).create_bucket("bkt").await.unwrap();
        let id = t.s3(1).create_upload("bkt", "k").await.unwrap();
        let up = ("bkt", "k", id.as_str());
        let e1 = t.s3(2).upload_part(up, 1, &p1).await.unwrap();
        t.node(2).crash();
        let e2 = t.s3(3).upload_part(up, 2, &p2).await.unwrap();
        let swapped = t.s3(4).complete(up, &[(2, &e2), (1, &e1)]).await;
        assert_eq!(swapped.unwrap_err(), "InvalidPartOrder");
        t.s3(4).complete(up, &[(1, &e1), (2, &e2)]).await.unwrap();
        t.node(2).restart();
        t.run_for(Duration::from_secs(2)).await;
        assert_eq!(t.s3(2).get("bkt", "k").await.unwrap(), [p1, p2].concat());
    });
}

/// A copy (and a part copied from a range) equals its source even after a holder's
/// shards rot: reads verify and rebuild from the other shards.
#[test]
fn copies_equal_their_source_through_rot() {
    run(12, 5, |t| async move {
        let src = bytes(5000, 3);
        t.s3(1).create_bucket("bkt").await.unwrap();
        t.s3(1).put("bkt", "src", &src).await.unwrap();
        t.s3(2).copy(("bkt", "src"), "bkt", "dst").await.unwrap();
        assert!(t.disk(3).rot_shards() > 0);
        assert_eq!(t.s3(4).get("bkt", "dst").await.unwrap(), src);
        let id = t.s3(5).create_upload("bkt", "m").await.unwrap();
        let up = ("bkt", "m", id.as_str());
        let e1 = t
            .s3(5)
            .upload_part_copy(up, 1, ("bkt", "src"), "bytes=0-1999")
            .await
            .unwrap();
        let e2 = t
            .s3(1)
            .upload_part_copy(up, 2, ("bkt", "dst"), "bytes=4000-4999")
            .await
            .unwrap();
        t.s3(2).complete(up, &[(1, &e1), (2, &e2)]).await.unwrap();
        let want = [&src[..2000], &src[4000..]].concat();
        assert_eq!(t.s3(3).get("bkt", "m").await.unwrap(), want);
        // A copy of a key that is not there is refused, and nothing appears.
        let missing = t.s3(1).copy(("bkt", "nope"), "bkt", "dst2").await;
        assert_eq!(missing.unwrap_err(), "NoSuchKey");
        assert_eq!(t.s3(1).get("bkt", "dst2").await.unwrap_err(), "NoSuchKey");
    });
}

/// A rotted shard of a blob that was lost (fewer than k good shards) is rebuilt once
/// the blob's holders return, even when another node clears the lost mark and no
/// periodic scrub comes to find the rot again.
#[test]
fn a_rotted_shard_of_a_lost_blob_heals_once_its_holders_return() {
    let scrub_on_request = |mut p: sim::scenario::Params| {
        p.scrub_on_request = true;
        p
    };
    run_with(17, 6, scrub_on_request, |t| async move {
        let wait_lost = |want: usize| {
            let t = t.clone();
            async move {
                for _ in 0..60 {
                    if t.lost(1).await == Some(want) {
                        return true;
                    }
                    t.run_for(Duration::from_secs(1)).await;
                }
                false
            }
        };
        // 4+2 on six nodes: one shard on each.
        t.s3(1).create_bucket("bkt").await.unwrap();
        let data = bytes(12_000, 5);
        t.s3(1).put("bkt", "k", &data).await.unwrap();
        t.run_for(Duration::from_secs(2)).await;
        let rotted = 2;
        assert_eq!(t.disk(rotted).rot_shards(), 1);
        t.node(4).crash();
        t.node(5).crash();
        t.node(rotted).start_scrub().await;
        assert!(
            wait_lost(1).await,
            "the blob is marked lost: 3 good shards of 4"
        );
        // The rotted node hears nothing while the holders return, so another node
        // reads the blob whole and clears the mark.
        for n in [1, 3, 4, 5, 6] {
            t.clog(n, rotted);
        }
        t.node(4).restart();
        t.node(5).restart();
        assert!(
            wait_lost(0).await,
            "the lost mark clears once the holders return"
        );
        t.heal();
        let disk = t.disk(rotted);
        let healed = t
            .run_until(Duration::from_secs(60), || disk.bad_shards() == 0)
            .await;
        assert!(healed, "node {rotted}'s rotted shard is rebuilt");
        assert_eq!(t.s3(rotted).get("bkt", "k").await.unwrap(), data);
    });
}

/// A holder whose seal answer never reaches the coordinator (node 1): the layout says
/// unsealed while the file is whole. Two other holders' shards rot, and the silent
/// holder's too if `rot_silent`. Returns the silent holder, with the network healed
/// after the write committed without it.
async fn lose_a_seal_answer(t: &Context, data: &[u8], rot_silent: bool) -> u64 {
    t.s3(1).create_bucket("bkt").await.unwrap();
    t.run_for(Duration::from_secs(1)).await;
    let leader = t.leader(1).await;
    assert_ne!(leader, 0, "a leader is known");
    let silent = (2..=6).find(|&n| n != leader).unwrap();
    let mut rotted: Vec<u64> = (1..=6).filter(|&n| n != silent).take(2).collect();
    if rot_silent {
        rotted.push(silent);
    }
    // Nothing `silent` says reaches the coordinator: its seal answer is lost, and the
    // write commits without it once the seal times out (after the client gave up on
    // its answer).
    t.clog(silent, 1);
    let put = async {
        let answer = t.s3(1).put("bkt", "k", data).await;
        assert_eq!(answer.unwrap_err(), "lost", "the PUT outlasts the client");
    };
    let faults = async {
        t.run_for(Duration::from_secs(5)).await;
        assert_eq!(t.disk(silent).shards().len(), 1, "the silent holder sealed");
        for &n in &rotted {
            assert_eq!(t.disk(n).rot_shards(), 1);
        }
        t.run_for(Duration::from_secs(58)).await;
        t.heal();
    };
    futures::join!(put, faults);
    silent
}

/// Lets up to a minute pass until node 1 lists `want` lost blobs and `done` holds.
async fn wait_for_lost(t: &Context, want: usize, done: impl Fn() -> bool) -> bool {
    for _ in 0..60 {
        if done() && t.lost(1).await == Some(want) {
            return true;
        }
        t.run_for(Duration::from_secs(1)).await;
    }
    false
}

/// With two other shards rotted, only 3 shards are good by the layout's count, so
/// nothing can be rebuilt from the others (and the blob is marked lost once repair
/// tries); the holder whose seal answer was lost hashes its shard against the
/// replicated sha256 and seals it in place, and the blob heals.
#[test]
fn a_whole_shard_whose_seal_answer_was_lost_brings_its_blob_back() {
    run(19, 6, |t| async move {
        let data = bytes(12_000, 9);
        lose_a_seal_answer(&t, &data, false).await;
        let whole = || (1..=6).map(|n| t.disk(n).bad_shards()).sum::<usize>() == 0;
        assert!(
            wait_for_lost(&t, 0, whole).await,
            "not lost, and the rotted shards are rebuilt"
        );
        assert_eq!(t.s3(4).get("bkt", "k").await.unwrap(), data);
    });
}

/// The same, but the silent holder's shard rots too: 3 shards of 4+2 are good, so the
/// blob is lost for good. The holder hashes its damaged shard once, and not again on
/// every presence pass (each would read the whole shard, unpaced).
#[test]
fn a_damaged_unsealed_shard_of_a_lost_blob_is_hashed_once() {
    run(19, 6, |t| async move {
        let silent = lose_a_seal_answer(&t, &bytes(12_000, 9), true).await;
        assert!(
            wait_for_lost(&t, 1, || true).await,
            "the blob is marked lost: 3 good shards of 4"
        );
        // A dozen presence passes.
        t.run_for(Duration::from_secs(60)).await;
        let status = t.node(silent).repair_status().await;
        assert_eq!(status.adopted_shards, 0);
        assert_eq!(status.unadoptable_shards, 1, "hashed once: {status:?}");
        assert_eq!(t.lost(1).await, Some(1));
    });
}

/// Waits until node `via` knows a leader other than `old_leader`, overwrites "k" with
/// an empty body through it (a metadata write: no holder to wait for), then reads "k"
/// through `old_leader`: it may fail, but must not answer the overwritten bytes. True if
/// it did (a stale read).
async fn overwrite_then_read_through(t: &Context, via: u64, old_leader: u64, round: u8) -> bool {
    let mut elected = 0;
    for _ in 0..200 {
        let seen = t.leader(via).await;
        if seen != 0 && seen != old_leader {
            elected = seen;
            break;
        }
        t.run_for(Duration::from_millis(20)).await;
    }
    assert_ne!(elected, 0, "round {round}: the others elect a leader");
    t.s3(elected).put("bkt", "k", &[]).await.unwrap();
    t.s3(old_leader)
        .get("bkt", "k")
        .await
        .is_ok_and(|got| !got.is_empty())
}

/// The start of a lease round: writes round `round`'s bytes to "k" and, a second later,
/// returns them with the leader node 1 knows.
async fn write_and_find_leader(t: &Context, round: u8) -> (Vec<u8>, u64) {
    let old = bytes(100, round);
    t.s3(1).put("bkt", "k", &old).await.unwrap();
    t.run_for(Duration::from_secs(1)).await;
    let leader = t.leader(1).await;
    assert_ne!(leader, 0, "a leader is known");
    (old, leader)
}

/// Rounds of: the leader, its clock at `leader_ppm` and every other node's at
/// `others_ppm`, is cut off from every other node; the others elect a leader, which
/// acknowledges an overwrite at once; then the old leader is asked, before it notices
/// that it lost its quorum if it is slow to. Returns the rounds whose read through the
/// old leader answered the overwritten bytes.
fn cut_off_leader_rounds(seed: u64, rounds: u8, leader_ppm: u64, others_ppm: u64) -> Vec<u8> {
    let stale = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let found = stale.clone();
    run(seed, 5, move |t| async move {
        t.s3(1).create_bucket("bkt").await.unwrap();
        for round in 0..rounds {
            let (old, leader) = write_and_find_leader(&t, round).await;
            for n in 1..=5 {
                t.set_clock_rate(n, if n == leader { leader_ppm } else { others_ppm });
            }
            // Some of the lease taken at these rates.
            t.run_for(Duration::from_millis(300)).await;
            assert_eq!(t.s3(leader).get("bkt", "k").await.unwrap(), old);
            let other = (1..=5).find(|&n| n != leader).unwrap();
            for n in (1..=5).filter(|&n| n != leader) {
                t.clog(leader, n);
                t.clog(n, leader);
            }
            if overwrite_then_read_through(&t, other, leader, round).await {
                found.lock().unwrap().push(round);
            }
            t.heal();
            t.run_for(Duration::from_secs(3)).await;
        }
    });
    stale.lock().unwrap().clone()
}

/// A leader cut off from every other node must not answer a read from its own state once
/// the others may have elected a new leader and acknowledged a write: the gate any
/// read lease has to pass. raft-rs's own `ReadOnlyOption::LeaseBased` fails it (its
/// leader keeps leading for up to two election timeouts after it loses its quorum).
#[test]
fn a_cut_off_leader_never_answers_a_read_from_its_own_state() {
    assert_eq!(
        cut_off_leader_rounds(23, 8, TRUE_RATE, TRUE_RATE),
        Vec::<u8>::new()
    );
}

/// The same with clock drift at the bound the lease allows for: the leader's clock 10%
/// slow (its lease lasts longer in true time), every other node's 10% fast (their
/// elections come sooner).
#[test]
fn a_cut_off_leader_never_answers_a_read_from_its_own_state_under_drift() {
    assert_eq!(
        cut_off_leader_rounds(23, 8, 900_000, 1_100_000),
        Vec::<u8>::new()
    );
}

/// The gate catches a drift the lease does not allow for: with the leader's clock at
/// half speed, its lease outlasts the others' election timers, and some round reads the
/// overwritten bytes through it.
#[test]
fn a_leader_clock_at_half_speed_outlasts_its_lease_and_the_gate_sees_it() {
    let stale = cut_off_leader_rounds(23, 8, 500_000, TRUE_RATE);
    assert!(!stale.is_empty(), "no stale read in 8 rounds");
}

/// Voters that granted the leader its lease, then crashed and restarted, must not vote
/// for anyone until the lease they granted has run out: they forgot hearing from the
/// leader. Two nodes already cut off from the leader campaign at once; the restarted two
/// would give them a quorum while the old leader, now cut off too, still reads from its
/// lease.
#[test]
fn restarted_voters_do_not_elect_a_leader_inside_the_lease_they_granted() {
    run(29, 5, |t| async move {
        t.s3(1).create_bucket("bkt").await.unwrap();
        for round in 0..16u8 {
            let (old, leader) = write_and_find_leader(&t, round).await;
            let others: Vec<u64> = (1..=5).filter(|&n| n != leader).collect();
            let (granting, campaigning) = (&others[..2], &others[2..]);
            for &n in campaigning {
                t.clog(leader, n);
                t.clog(n, leader);
            }
            t.run_for(Duration::from_millis(2500)).await;
            // A read through the leader renews its lease with the two granting voters.
            assert_eq!(t.s3(leader).get("bkt", "k").await.unwrap(), old);
            for &n in granting {
                t.clog(leader, n);
                t.clog(n, leader);
                t.node(n).crash();
                t.node(n).restart();
            }
            let stale = overwrite_then_read_through(&t, campaigning[0], leader, round).await;
            assert!(
                !stale,
                "round {round}: the cut-off leader {leader} answered the overwritten bytes"
            );
            t.heal();
            t.run_for(Duration::from_secs(3)).await;
        }
    });
}
