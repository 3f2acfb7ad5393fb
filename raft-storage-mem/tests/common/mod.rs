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

/// Election timeouts of 300 to 600 ms: long enough that a loaded machine does
/// not make leaders lose their followers, short enough to keep tests quick.
pub fn config(id: NodeId) -> Config {
    Config { election_timeout_min: 30, election_timeout_max: 60, heartbeat_interval: 3, ..Config::new(id) }
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
    let inbox = Inbox::default();
    net.connect(config.id, inbox.clone());
    let raft = Raft::start(config, runtime, membership, store, transport, inbox.clone(), MemKv::default())
        .await
        .expect("the node starts");
    (raft, inbox)
}

pub async fn start_with(
    net: &InProcessNetwork,
    config: Config,
    voters: &[NodeId],
    store: MemLogStore,
) -> Raft<MemKv> {
    let id = config.id;
    let runtime = RuntimeConfig::default();
    let membership = Membership::new(voters.iter().copied(), []);
    let inbox = Inbox::default();
    net.connect(id, inbox.clone());
    Raft::start(config, runtime, membership, store, net.transport(id), inbox, MemKv::default())
        .await
        .expect("the node starts")
}

/// Waits until `node` has applied at least `index`.
pub async fn applied(node: &Raft<MemKv>, index: u64) {
    let mut metrics = node.metrics();
    let reached =
        within("catching up", async { metrics.wait_for(|m| m.applied_index >= index).await.is_ok() });
    assert!(reached.await, "node {} stopped", node.metrics().borrow().id);
}
