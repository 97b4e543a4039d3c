//! The leader's read lease: a ReadIndex answered from the leader's commit index without
//! a heartbeat round, while no other node can have been elected.
//!
//! Why it is safe. With `check_quorum`, a voter that heard from its leader less than
//! `election_ticks` ticks ago ignores every vote and pre-vote request (raft-rs's
//! `in_lease`); its driver ticks no faster than its clock, so that is at least
//! `(election_ticks - 1) * tick` after the heartbeat arrived. A leader that sent a
//! heartbeat round at `sent` (a Safe ReadIndex: the round carries the read's context)
//! and heard a quorum answer it knows a quorum ignores votes until at least `sent` plus
//! that window, and no leader can be elected without one of them. The lease ends
//! [`LEASE_SHARE`] of the way through the window: the rest absorbs clock rates that
//! differ by up to ~10% between nodes (a voter's clock at most 1.25 times as fast as the
//! leader's). The simulator runs nodes at such rates: `sim/tests/context.rs` puts a
//! leader 10% slow against voters 10% fast, and shows that a leader at half speed does
//! read stale data (a sweep of rates found stale reads from 1.375 times on, none at 1.25
//! or below); the `raft-clock-drift` scenario runs every node at its own rate.
//!
//! What the argument needs, and the driver keeps:
//! - a restarted voter forgets whom it heard from: it refuses votes for a whole election
//!   timeout after it starts ([`Lease::refuses_vote`]);
//! - a round counts only for the term and configuration it was sent in: a lease ends
//!   when the term changes or a configuration change is applied (a quorum of the old
//!   configuration says nothing about the new one);
//! - no leadership transfer (it forces votes through `in_lease`): the lease is not used
//!   while one is under way;
//! - the lease's clock is the node's monotonic clock (`Clock::now`), which wall-clock
//!   jumps do not move.

use std::collections::VecDeque;
use std::time::Duration;

use raft::eraftpb::{Message, MessageType};

/// The part of the voters' vote-refusal window the lease uses.
pub const LEASE_SHARE: (u32, u32) = (8, 10);
/// Heartbeat rounds remembered while their answers are awaited.
const ROUNDS_MAX: usize = 64;

#[derive(Debug)]
pub struct Lease {
    /// How long after a round was sent it keeps other leaders out.
    duration: Duration,
    /// Votes are refused until then: the node's own start plus an election timeout.
    votes_from: Duration,
    /// Rounds sent as leader: (read id, sent at, term, configuration epoch).
    rounds: VecDeque<(u64, Duration, u64, u64)>,
    /// Configuration changes applied since the node started.
    epoch: u64,
    /// (valid until, term, epoch) of the latest round a quorum answered.
    until: Option<(Duration, u64, u64)>,
}

impl Lease {
    /// A lease for a group ticking every `tick` with elections after `election_ticks`,
    /// on a node that started at `now`.
    pub fn new(tick: Duration, election_ticks: usize, now: Duration) -> Self {
        let window = tick * (election_ticks.saturating_sub(1) as u32);
        Self {
            duration: window * LEASE_SHARE.0 / LEASE_SHARE.1,
            votes_from: now + tick * election_ticks as u32,
            rounds: VecDeque::new(),
            epoch: 0,
            until: None,
        }
    }

    /// A heartbeat round (ReadIndex `id`) sent at `now` as leader of `term`.
    pub fn sent(&mut self, id: u64, now: Duration, term: u64) {
        if self.rounds.len() == ROUNDS_MAX {
            self.rounds.pop_front();
        }
        self.rounds.push_back((id, now, term, self.epoch));
    }

    /// A quorum answered ReadIndex `id`; extends the lease if it was a round of ours.
    pub fn answered(&mut self, id: u64) {
        let Some(at) = self.rounds.iter().position(|r| r.0 == id) else {
            return;
        };
        let (_, sent, term, epoch) = self.rounds.remove(at).expect("found");
        if epoch != self.epoch {
            return;
        }
        let until = sent + self.duration;
        if self.until.is_none_or(|(u, t, _)| t != term || u < until) {
            self.until = Some((until, term, epoch));
        }
    }

    /// A configuration change was applied: every round so far is void.
    pub fn conf_changed(&mut self) {
        self.epoch += 1;
        self.until = None;
        self.rounds.clear();
    }

    /// Whether a leader of `term` may answer a read at `now` without a round.
    pub fn holds(&self, now: Duration, term: u64) -> bool {
        self.until
            .is_some_and(|(until, t, epoch)| t == term && epoch == self.epoch && now < until)
    }

    /// Whether a round should go out to take or keep the lease: less than half of it is
    /// left, and no round went out in the last quarter of a lease.
    pub fn renew_due(&self, now: Duration, term: u64) -> bool {
        let recent = self.rounds.back().is_some_and(|&(_, sent, t, epoch)| {
            t == term && epoch == self.epoch && now < sent + self.duration / 4
        });
        if recent {
            return false;
        }
        match self.until {
            Some((until, t, epoch)) if t == term && epoch == self.epoch => {
                now + self.duration / 2 >= until
            }
            _ => true,
        }
    }

    /// A vote or pre-vote request this node must drop: it started too recently to know
    /// whom it promised not to vote against.
    pub fn refuses_vote(&self, m: &Message, now: Duration) -> bool {
        matches!(
            m.get_msg_type(),
            MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
        ) && now < self.votes_from
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn lease() -> Lease {
        // 100 ms ticks, elections after 10: votes refused 900 ms, a lease of 720 ms.
        Lease::new(100 * MS, 10, 1000 * MS)
    }

    #[test]
    fn a_round_answered_holds_the_lease_for_its_share_of_the_window() {
        let mut l = lease();
        assert!(!l.holds(2000 * MS, 3), "no round, no lease");
        l.sent(7, 2000 * MS, 3);
        assert!(!l.holds(2001 * MS, 3), "not before a quorum answered");
        l.answered(7);
        assert!(l.holds(2719 * MS, 3));
        assert!(
            !l.holds(2720 * MS, 3),
            "ends 720 ms after the round was sent"
        );
        assert!(!l.holds(2100 * MS, 4), "another term");
        assert!(!l.renew_due(2300 * MS, 3));
        assert!(l.renew_due(2360 * MS, 3), "half of it left");
        l.sent(8, 2360 * MS, 3);
        assert!(!l.renew_due(2400 * MS, 3), "a round is on its way");
        assert!(
            l.renew_due(2540 * MS, 3),
            "not answered a quarter of a lease later"
        );
    }

    #[test]
    fn an_older_round_never_shortens_and_unknown_ids_do_nothing() {
        let mut l = lease();
        l.sent(1, 2000 * MS, 3);
        l.sent(2, 2500 * MS, 3);
        l.answered(2);
        l.answered(1);
        assert!(l.holds(3200 * MS, 3), "the later round's lease stands");
        l.answered(99);
        assert!(l.holds(3200 * MS, 3));
    }

    #[test]
    fn a_configuration_change_voids_the_lease_and_rounds_in_flight() {
        let mut l = lease();
        l.sent(1, 2000 * MS, 3);
        l.answered(1);
        l.sent(2, 2100 * MS, 3);
        l.conf_changed();
        assert!(!l.holds(2200 * MS, 3));
        l.answered(2);
        assert!(
            !l.holds(2200 * MS, 3),
            "a round sent before the change counts for nothing"
        );
        l.sent(3, 2300 * MS, 3);
        l.answered(3);
        assert!(l.holds(2400 * MS, 3));
    }

    #[test]
    fn a_new_node_drops_votes_for_an_election_timeout() {
        let l = lease();
        let mut vote = Message::default();
        vote.set_msg_type(MessageType::MsgRequestPreVote);
        assert!(l.refuses_vote(&vote, 1999 * MS));
        assert!(!l.refuses_vote(&vote, 2000 * MS));
        vote.set_msg_type(MessageType::MsgRequestVote);
        assert!(l.refuses_vote(&vote, 1500 * MS));
        let mut beat = Message::default();
        beat.set_msg_type(MessageType::MsgHeartbeat);
        assert!(!l.refuses_vote(&beat, 1500 * MS));
    }
}
