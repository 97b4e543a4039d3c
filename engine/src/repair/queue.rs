//! The repair queue: shards owed a rebuild, ordered by margin (good shards minus k,
//! fewest first, as Ceph and HDFS order recovery), bounded by [`REPAIR_QUEUE_MAX`].
//!
//! A full queue keeps the riskiest work: a new task with a smaller margin than the
//! largest queued one evicts it; otherwise the new task is dropped and counted as
//! deferred (the presence check or the scrub finds it again on its next pass).
//!
//! A rotted shard of a blob with fewer than k good shards cannot be rebuilt: its task
//! waits in [`Parked`] until the blob reads whole again (its holders return), then goes
//! back in the queue. Nothing else would find it again before the next deep scrub. An
//! unsealed shard of such a blob found damaged waits there too: the presence pass
//! would otherwise hash it again on every pass.

use std::collections::{BTreeMap, BTreeSet};

use crate::env::NodeId;

/// Tasks a node keeps queued at most.
pub const REPAIR_QUEUE_MAX: usize = 4096;

/// Why a shard is owed a rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// The layout says unsealed, or the file is not in its holder's listing.
    Missing,
    /// The file failed a checksum (read path or scrub), or hashes to another sha256.
    Corrupt,
}

/// One shard owed a rebuild: shard `index` of blob `data_id`, placed on `node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Task {
    pub data_id: u128,
    pub index: u16,
    pub node: NodeId,
    pub reason: Reason,
}

#[derive(Debug, Default)]
pub struct Queue {
    /// (margin, task), riskiest first.
    order: BTreeSet<(i32, Task)>,
    /// (data id, index) -> its entry in `order`: one task per shard.
    by_shard: BTreeMap<(u128, u16), (i32, Task)>,
    pub deferred: u64,
}

impl Queue {
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Queues `task` at `margin`; a shard already queued keeps the smaller margin.
    pub fn push(&mut self, margin: i32, task: Task) {
        let shard = (task.data_id, task.index);
        if let Some(&(old_margin, old)) = self.by_shard.get(&shard) {
            if old_margin <= margin {
                return;
            }
            self.order.remove(&(old_margin, old));
        } else if self.order.len() == REPAIR_QUEUE_MAX {
            let &(worst_margin, worst) = self.order.last().expect("a full queue");
            if worst_margin <= margin {
                self.deferred += 1;
                return;
            }
            self.order.remove(&(worst_margin, worst));
            self.by_shard.remove(&(worst.data_id, worst.index));
            self.deferred += 1;
        }
        self.order.insert((margin, task));
        self.by_shard.insert(shard, (margin, task));
        assert_eq!(self.order.len(), self.by_shard.len(), "queue indexes agree");
        assert!(self.order.len() <= REPAIR_QUEUE_MAX, "queue bounded");
    }

    /// The riskiest task.
    pub fn pop(&mut self) -> Option<(i32, Task)> {
        let first = self.order.pop_first()?;
        self.by_shard.remove(&(first.1.data_id, first.1.index));
        Some(first)
    }

    /// Queued tasks per margin, smallest margin first.
    pub fn by_margin(&self) -> Vec<(i32, u64)> {
        let mut counts: BTreeMap<i32, u64> = BTreeMap::new();
        for (margin, _) in &self.order {
            *counts.entry(*margin).or_default() += 1;
        }
        counts.into_iter().collect()
    }
}

/// Tasks for shards of lost blobs (rotted, or unsealed and found damaged), each with the
/// presence pass it was parked in.
#[derive(Debug, Default)]
pub struct Parked {
    tasks: BTreeMap<(u128, u16), (Task, u64)>,
}

impl Parked {
    #[cfg(test)]
    fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether a task waits for blob `data_id`.
    pub fn holds(&self, data_id: u128) -> bool {
        self.range(data_id).next().is_some()
    }

    /// Whether shard `index` of blob `data_id` waits.
    pub fn holds_shard(&self, data_id: u128, index: u16) -> bool {
        self.tasks.contains_key(&(data_id, index))
    }

    fn range(&self, data_id: u128) -> impl Iterator<Item = (&(u128, u16), &(Task, u64))> {
        self.tasks.range((data_id, 0)..=(data_id, u16::MAX))
    }

    /// Parks `task` during presence pass `pass`; false when full (the scrub finds the
    /// shard again).
    pub fn park(&mut self, task: Task, pass: u64) -> bool {
        let shard = (task.data_id, task.index);
        if self.tasks.len() >= REPAIR_QUEUE_MAX && !self.tasks.contains_key(&shard) {
            return false;
        }
        self.tasks.insert(shard, (task, pass));
        true
    }

    /// Takes the tasks of blob `data_id` (it reads whole again).
    pub fn take(&mut self, data_id: u128) -> Vec<Task> {
        let shards: Vec<(u128, u16)> = self.range(data_id).map(|(s, _)| *s).collect();
        shards
            .iter()
            .filter_map(|s| self.tasks.remove(s))
            .map(|(task, _)| task)
            .collect()
    }

    /// After a complete presence pass that started as pass `pass`: drops the tasks
    /// parked before it whose blob it did not see lost (deleted or overwritten since).
    pub fn forget_unseen(&mut self, pass: u64, seen_lost: &BTreeSet<u128>) {
        self.tasks
            .retain(|(data_id, _), (_, parked)| *parked >= pass || seen_lost.contains(data_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: u128) -> Task {
        Task {
            data_id: id,
            index: 0,
            node: 1,
            reason: Reason::Missing,
        }
    }

    #[test]
    fn riskiest_first_and_one_task_per_shard() {
        let mut q = Queue::default();
        q.push(2, task(1));
        q.push(0, task(2));
        q.push(1, task(3));
        q.push(-1, task(1)); // the same shard again, riskier now
        q.push(5, task(2)); // the same shard, less risky: keeps margin 0
        assert_eq!(q.by_margin(), vec![(-1, 1), (0, 1), (1, 1)]);
        let order: Vec<u128> = std::iter::from_fn(|| q.pop().map(|(_, t)| t.data_id)).collect();
        assert_eq!(order, vec![1, 2, 3]);
        assert!(q.is_empty());
    }

    #[test]
    fn parked_tasks_wait_for_their_blob_and_are_forgotten_with_it() {
        let mut p = Parked::default();
        let rotted = |id, index| Task {
            index,
            reason: Reason::Corrupt,
            ..task(id)
        };
        assert!(p.park(rotted(7, 1), 1));
        assert!(p.park(rotted(7, 3), 1));
        assert!(p.park(rotted(8, 0), 1));
        assert!(p.park(rotted(9, 0), 2));
        assert!(p.holds(7) && !p.holds(6));
        assert!(p.holds_shard(7, 3) && !p.holds_shard(7, 2));
        let back: Vec<u16> = p.take(7).iter().map(|t| t.index).collect();
        assert_eq!(back, vec![1, 3]);
        assert!(!p.holds(7) && p.take(7).is_empty());
        // Pass 2 saw blob 8 still lost and never saw blob 9's ref; 9 was parked during
        // pass 2, after its page may have gone by, so it stays one more pass.
        p.forget_unseen(2, &BTreeSet::from([8]));
        assert_eq!((p.holds(8), p.holds(9)), (true, true));
        p.forget_unseen(3, &BTreeSet::new());
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn parked_tasks_are_bounded() {
        let mut p = Parked::default();
        for id in 0..REPAIR_QUEUE_MAX as u128 {
            assert!(p.park(task(id), 0));
        }
        assert!(!p.park(task(u128::MAX), 0));
        assert!(p.park(task(0), 1), "a parked shard is parked again");
        assert_eq!(p.len(), REPAIR_QUEUE_MAX);
    }

    #[test]
    fn a_full_queue_keeps_the_riskiest() {
        let mut q = Queue::default();
        for id in 0..REPAIR_QUEUE_MAX as u128 {
            q.push(3, task(id));
        }
        q.push(3, task(u128::MAX)); // no riskier than any: deferred
        assert_eq!((q.len(), q.deferred), (REPAIR_QUEUE_MAX, 1));
        q.push(0, task(u128::MAX - 1)); // riskier: evicts one at margin 3
        assert_eq!((q.len(), q.deferred), (REPAIR_QUEUE_MAX, 2));
        assert_eq!(
            q.pop().map(|(m, t)| (m, t.data_id)),
            Some((0, u128::MAX - 1))
        );
    }
}
