//! The harness every runtime test shares (feature `testing`): the timings
//! its clusters run with, how a node joins an [`InProcessNetwork`], and the
//! waits a test makes on a cluster of [`Raft`] handles, whatever their
//! store and transport: for a leader, for a proposal to be applied, for
//! every node to catch up. Each wait is on a condition, with a deadline
//! that fails the test rather than decide it by timing.
//!
//! The functions take the nodes as any iterator of handles, so a test
//! keeps them however it likes (with their transports, by id, in a `Vec`),
//! and can ask about a subset (the nodes still up after one crashed).

use super::within;
use crate::runtime::{
    InProcessNetwork, Inbox, Raft, RaftError, RuntimeConfig, StartError, StateMachine, Transport,
};
use crate::{Config, Index, LogStore, Membership, NodeId};
use std::time::Duration;

/// How long a runtime test waits for what should happen: long enough for a
/// loaded machine (CI, two cores shared by several builds).
pub const RUNTIME_DEADLINE: Duration = Duration::from_secs(30);

/// The protocol settings of runtime tests: elections after 30 to 60 ticks
/// (300 to 600 ms with [`RuntimeConfig::default`]'s 10 ms ticks) and
/// heartbeats every 3, long enough that a loaded machine does not make
/// leaders lose their followers, short enough to keep tests quick.
pub fn runtime_config(id: NodeId) -> Config {
    Config { election_timeout_min: 30, election_timeout_max: 60, heartbeat_interval: 3, ..Config::new(id) }
}

/// Starts node `config.id` on `net`: makes its inbox, connects it, and
/// starts the node with `transport` (usually `net.transport(id)`, or a
/// wrapper of it) and `state_machine`.
pub async fn start_in_process<SM: StateMachine, S: LogStore, T: Transport>(
    net: &InProcessNetwork,
    config: Config,
    runtime: RuntimeConfig,
    membership: Membership,
    store: S,
    transport: T,
    state_machine: SM,
) -> Result<(Raft<SM>, Inbox), StartError> {
    let inbox = Inbox::default();
    net.connect(config.id, inbox.clone());
    let raft =
        Raft::start(config, runtime, membership, store, transport, inbox.clone(), state_machine).await?;
    Ok((raft, inbox))
}

/// Proposes `command` at whichever of `nodes` leads, retrying (at the
/// leader of the moment) while the answer is a refusal that says nothing
/// happened ([`RaftError::NotLeader`], [`RaftError::NotApplied`]), as a
/// client would. Any other outcome is returned; panics after `deadline`.
pub async fn propose_at_leader<'a, SM>(
    nodes: impl IntoIterator<Item = &'a Raft<SM>>,
    command: SM::Command,
    deadline: Duration,
) -> Result<SM::Response, RaftError>
where
    SM: StateMachine,
    SM::Command: Clone,
{
    let nodes: Vec<&Raft<SM>> = nodes.into_iter().collect();
    within(deadline, "a proposal", async {
        loop {
            let leader = nodes[super::wait_for_leader(nodes.iter().copied(), deadline).await];
            match leader.propose(command.clone()).await {
                Err(RaftError::NotLeader { .. } | RaftError::NotApplied) => {
                    // Wait for news before asking again, rather than spin.
                    let mut metrics = leader.metrics();
                    let _ = tokio::time::timeout(Duration::from_millis(50), metrics.changed()).await;
                }
                outcome => return outcome,
            }
        }
    })
    .await
}

/// Waits until `node` has applied at least `index`; panics if it stops, or
/// after `deadline`.
pub async fn wait_applied<SM: StateMachine>(node: &Raft<SM>, index: Index, deadline: Duration) {
    let mut metrics = node.metrics();
    let id = metrics.borrow().id;
    let applied = within(deadline, "catching up", metrics.wait_for(|m| m.applied_index >= index)).await;
    assert!(applied.is_ok(), "node {id} stopped before applying {index}");
}

/// Waits until every one of `nodes` has applied at least `index`.
pub async fn wait_all_applied<'a, SM: StateMachine>(
    nodes: impl IntoIterator<Item = &'a Raft<SM>>,
    index: Index,
    deadline: Duration,
) {
    for node in nodes {
        wait_applied(node, index, deadline).await;
    }
}

/// The highest commit index any of `nodes` reports (0 for none).
pub fn max_commit_index<'a, SM: StateMachine>(nodes: impl IntoIterator<Item = &'a Raft<SM>>) -> Index {
    nodes.into_iter().map(|node| node.metrics().borrow().commit_index).max().unwrap_or(0)
}

/// Shuts every one of `nodes` down, each within `deadline`.
pub async fn shutdown_all<'a, SM: StateMachine>(
    nodes: impl IntoIterator<Item = &'a Raft<SM>>,
    deadline: Duration,
) {
    for node in nodes {
        within(deadline, "a shutdown", node.shutdown()).await;
    }
}
