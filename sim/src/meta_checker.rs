//! Checkers of the metadata plane, from the workload's history and the observer's
//! samples: at most one leader per term; nodes at the same applied index applied the
//! same log; every key's history is linearizable (acknowledged writes are never lost,
//! reads never see the past, timed-out operations are applied whole or not at all);
//! no answer implies lost state.

use std::collections::BTreeMap;

use crate::linearizability::{self, Operation, Verdict};
use crate::meta_workload::MetaHistory;

pub fn check(h: &MetaHistory) -> (Vec<String>, Vec<String>) {
    let (mut violations, mut notes) = (Vec::new(), Vec::new());
    violations.extend(
        h.impossible
            .iter()
            .map(|w| format!("impossible answer: {w}")),
    );
    for (term, leaders) in &h.leader_claims {
        if leaders.len() > 1 {
            violations.push(format!(
                "term {term} had {} leaders: {leaders:?}",
                leaders.len()
            ));
        }
    }
    for (index, chains) in &h.chains {
        if chains.len() > 1 {
            let nodes: Vec<_> = chains.values().collect();
            violations.push(format!(
                "nodes {nodes:?} applied different logs up to index {index}"
            ));
        }
    }
    let mut by_key: BTreeMap<&str, Vec<Operation>> = BTreeMap::new();
    for r in &h.ops {
        by_key.entry(&r.key).or_default().push(Operation {
            op: r.op.clone(),
            result: r.result.clone(),
            invoke: r.invoke,
            ret: r.ret,
        });
    }
    for (key, ops) in by_key {
        match linearizability::check(&ops, None) {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable => violations.push(format!(
                "history of key {key} ({} operations) is not linearizable",
                ops.len()
            )),
            Verdict::Undecided => notes.push(format!(
                "key {key}: linearizability undecided ({} ops)",
                ops.len()
            )),
        }
    }
    (violations, notes)
}
