//! The repair queue: shards owed a rebuild, ordered by margin (good shards minus k,
//! fewest first, as Ceph and HDFS order recovery), bounded by [`REPAIR_QUEUE_MAX`].
//!
//! A full queue keeps the riskiest work: a new task with a smaller margin than the
//! largest queued one evicts it; otherwise the new task is dropped and counted as
//! deferred (the presence check or the scrub finds it again on its next pass).

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
