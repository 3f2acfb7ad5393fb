//! Membership changes while clients run: a voter (the leader, at times) is
//! removed, then added back as a learner that catches up and is promoted,
//! through the runtime's `remove_node`, `add_learner` and
//! `change_membership`.

use crate::cluster::Cluster;
use raft_core::NodeId;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// How long one membership request may take before it is given up on (its
/// outcome is then unknown, and the next attempt looks again).
const PATIENCE: Duration = Duration::from_secs(2);

/// Removes `victim`, waits `gap`, and tries once to bring it back.
pub async fn cycle(cluster: Arc<Cluster>, victim: NodeId, gap: Duration) {
    let Some((leader, raft)) = cluster.leader() else { return };
    let result = tokio::time::timeout(PATIENCE, raft.remove_node(victim)).await;
    cluster.trace.log(format_args!("leader {leader} removes node {victim}: {}", said(&result)));
    tokio::time::sleep(gap).await;
    restore(&cluster).await;
}

/// One attempt, at the leader, to make every node a voter again (adding the
/// missing ones as learners first); whether every node is one.
pub async fn restore(cluster: &Cluster) -> bool {
    let Some((leader, raft)) = cluster.leader() else { return false };
    let membership = raft.metrics().borrow().membership.clone();
    let all: BTreeSet<NodeId> = cluster.ids().into_iter().collect();
    if membership.voters == all && membership.learners.is_empty() && !membership.is_joint() {
        return true;
    }
    for &id in all.difference(&membership.voters) {
        if !membership.learners.contains(&id) {
            let result = tokio::time::timeout(PATIENCE, raft.add_learner(id, None, true)).await;
            cluster.trace.log(format_args!("leader {leader} adds learner {id}: {}", said(&result)));
            if !matches!(result, Ok(Ok(_))) {
                return false;
            }
        }
    }
    let result = tokio::time::timeout(PATIENCE, raft.change_membership(all.clone(), [])).await;
    cluster.trace.log(format_args!("leader {leader} makes {all:?} the voters: {}", said(&result)));
    matches!(result, Ok(Ok(_)))
}

fn said<T: std::fmt::Debug, E: std::fmt::Display>(
    result: &Result<Result<T, E>, tokio::time::error::Elapsed>,
) -> String {
    match result {
        Ok(Ok(value)) => format!("ok {value:?}"),
        Ok(Err(error)) => error.to_string(),
        Err(_) => "gave up".to_string(),
    }
}
