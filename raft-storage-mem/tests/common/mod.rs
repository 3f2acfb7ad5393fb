//! Helpers shared by the runtime tests: clusters of in-memory nodes on the
//! in-process network, and waits on conditions with generous deadlines.
#![allow(dead_code)] // each test file uses its own subset

use raft_core::runtime::{InProcessNetwork, Inbox, Raft, RaftError, ReadConsistency, RuntimeConfig};
use raft_core::{Config, Membership, NodeId};
use raft_storage_mem::{KvCommand, MemKv, MemLogStore};
use std::time::Duration;

pub const DEADLINE: Duration = Duration::from_secs(20);

/// Awaits `future`, failing the test if it takes longer than the deadline.
pub async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    raft_core::testing::within(DEADLINE, what, future).await
}

/// The runtime tests' settings (raft-core's shared harness).
pub fn config(id: NodeId) -> Config {
    raft_core::testing::runtime_config(id)
}

pub fn set(key: &str, value: &str) -> KvCommand {
    KvCommand::Set { key: key.into(), value: value.into() }
}

/// Reads from `node`, retrying while it reports no leader (a follower whose
/// election timer fired on a busy machine forgets its leader until the next
/// heartbeat): what a client does with that retryable error.
pub async fn read<R: Send + 'static>(
    node: &Raft<MemKv>,
    consistency: ReadConsistency,
    read: impl Fn(&MemKv) -> R + Clone + Send + Sync + 'static,
) -> Result<R, RaftError> {
    within("a read", async {
        loop {
            match node.read(consistency, read.clone()).await {
                Err(RaftError::NotLeader { .. }) => {
                    let _ = node.metrics().changed().await;
                }
                other => return other,
            }
        }
    })
    .await
}

/// Waits until some node among `nodes` leads, and returns its index.
pub async fn leader(nodes: &[Raft<MemKv>]) -> usize {
    raft_core::testing::wait_for_leader(nodes, DEADLINE).await
}

/// Starts node `config.id` with `membership` (the founding configuration,
/// or `Membership::default()` to join later) over `transport`, its
/// messages from `net` delivered to the inbox returned with it.
pub async fn start_member<T: raft_core::runtime::Transport>(
    net: &InProcessNetwork,
    config: Config,
    runtime: RuntimeConfig,
    membership: Membership,
    store: MemLogStore,
    transport: T,
) -> (Raft<MemKv>, Inbox) {
    raft_core::testing::start_in_process(net, config, runtime, membership, store, transport, MemKv::default())
        .await
        .expect("the node starts")
}

pub async fn start_with(
    net: &InProcessNetwork,
    config: Config,
    voters: &[NodeId],
    store: MemLogStore,
) -> Raft<MemKv> {
    let transport = net.transport(config.id);
    let membership = Membership::new(voters.iter().copied(), []);
    start_member(net, config, RuntimeConfig::default(), membership, store, transport).await.0
}

/// Waits until `node` has applied at least `index`.
pub async fn applied(node: &Raft<MemKv>, index: u64) {
    raft_core::testing::wait_applied(node, index, DEADLINE).await;
}
