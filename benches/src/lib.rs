//! Shared set-up for the benchmarks: in-process clusters on the memory store.

#![forbid(unsafe_code)]

use raft_core::runtime::{InProcessNetwork, Inbox, Raft, RuntimeConfig};
use raft_core::{Config, Membership, NodeId, Role};
use raft_storage_mem::{MemKv, MemLogStore};
use std::time::Duration;

/// A cluster of `n` nodes on the in-process network and memory stores.
pub struct Cluster {
    /// The nodes, node `i + 1` at index `i`.
    pub nodes: Vec<Raft<MemKv>>,
}

impl Cluster {
    /// Starts `n` nodes and waits for a leader.
    pub async fn start(n: u64) -> Self {
        let network = InProcessNetwork::new();
        let voters: Vec<NodeId> = (1..=n).collect();
        let mut nodes = Vec::new();
        for id in 1..=n {
            let runtime = RuntimeConfig { tick: Duration::from_millis(10), ..Default::default() };
            let inbox = Inbox::default();
            network.connect(id, inbox.clone());
            let raft = Raft::start(
                Config::new(id),
                runtime,
                Membership::new(voters.clone(), []),
                MemLogStore::new(),
                network.transport(id),
                inbox,
                MemKv::default(),
            )
            .await
            .expect("a node starts");
            nodes.push(raft);
        }
        let cluster = Self { nodes };
        cluster.leader().await;
        cluster
    }

    /// The leader, once there is one.
    pub async fn leader(&self) -> Raft<MemKv> {
        loop {
            if let Some(leader) = self.nodes.iter().find(|n| n.metrics().borrow().role == Role::Leader) {
                return leader.clone();
            }
            let mut metrics = self.nodes[0].metrics();
            let _ = tokio::time::timeout(Duration::from_millis(50), metrics.changed()).await;
        }
    }

    /// Stops every node.
    pub async fn shutdown(&self) {
        for node in &self.nodes {
            node.shutdown().await;
        }
    }
}
