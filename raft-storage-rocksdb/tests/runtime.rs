//! Nodes on the runtime with their logs in RocksDB: a cluster that is
//! stopped entirely and started again from its directories still holds
//! every acknowledged write, and a restarted leader catches up. Every wait
//! is on a condition with a deadline.

use raft_core::runtime::{InProcessNetwork, Raft, RaftError, ReadConsistency, RuntimeConfig};
use raft_core::testing::{propose_at_leader, start_in_process, wait_applied, wait_for_leader, within};
use raft_core::{Membership, NodeId};
use raft_storage_mem::{KvCommand, MemKv};
use raft_storage_rocksdb::{RocksLogStore, RocksLogStoreOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);
const CLUSTER: u64 = 42;

use raft_core::testing::runtime_config as config;

/// Opens the store at `path`, retrying while the previous incarnation's
/// RocksDB lock is still held (it is released once its last handle drops).
async fn open(path: &Path) -> RocksLogStore {
    within(DEADLINE, "opening the store", async {
        loop {
            match RocksLogStore::open(path, RocksLogStoreOptions::new(CLUSTER)).await {
                Ok(store) => return store,
                Err(_) => tokio::task::yield_now().await,
            }
        }
    })
    .await
}

async fn start(net: &InProcessNetwork, id: NodeId, dir: &Path) -> Raft<MemKv> {
    let store = open(&dir.join(format!("node-{id}"))).await;
    let membership = Membership::new([1, 2, 3], []);
    let transport = net.transport(id);
    let started = start_in_process(
        net,
        config(id),
        RuntimeConfig::default(),
        membership,
        store,
        transport,
        MemKv::default(),
    );
    started.await.expect("the node starts").0
}

async fn propose(nodes: &[Raft<MemKv>], key: &str) {
    within(DEADLINE, "a proposal", async {
        loop {
            // An unknown outcome is retried too: a write of a value allows it.
            let command = KvCommand::Set { key: key.into(), value: "v".into() };
            match propose_at_leader(nodes, command, DEADLINE).await {
                Ok(_) => return,
                Err(RaftError::OutcomeUnknown) => {}
                Err(other) => panic!("{other}"),
            }
        }
    })
    .await
}

async fn state(node: &Raft<MemKv>, index: u64) -> MemKv {
    wait_applied(node, index, DEADLINE).await;
    node.read(ReadConsistency::Stale, |kv| kv.clone()).await.expect("a read")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_restarted_from_disk_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let dir: PathBuf = dir.path().to_owned();
    let net = InProcessNetwork::new();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start(&net, id, &dir).await);
    }
    for i in 0..30 {
        propose(&nodes, &format!("k{i}")).await;
    }

    // The leader stops and comes back from its directory.
    let l = wait_for_leader(&nodes, DEADLINE).await;
    let id = l as NodeId + 1;
    net.disconnect(id);
    within(DEADLINE, "a shutdown", nodes[l].shutdown()).await;
    // A stopped node's metrics keep what they last said: ask the others.
    let live: Vec<Raft<MemKv>> =
        nodes.iter().enumerate().filter(|&(i, _)| i != l).map(|(_, n)| n.clone()).collect();
    for i in 30..60 {
        propose(&live, &format!("k{i}")).await;
    }
    nodes[l] = start(&net, id, &dir).await;
    let l = wait_for_leader(&nodes, DEADLINE).await;
    let commit = nodes[l].metrics().borrow().commit_index;
    let reference = state(&nodes[l], commit).await;
    for node in &nodes {
        assert_eq!(state(node, commit).await, reference, "a restarted node catches up from its disk");
    }

    // The whole cluster stops, and starts again from disk alone.
    for (i, node) in nodes.iter().enumerate() {
        net.disconnect(i as NodeId + 1);
        within(DEADLINE, "a shutdown", node.shutdown()).await;
    }
    let net = InProcessNetwork::new();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start(&net, id, &dir).await);
    }
    let l = wait_for_leader(&nodes, DEADLINE).await;
    propose(&nodes, "after").await;
    let commit = nodes[l].metrics().borrow().commit_index;
    let restored = state(&nodes[l], commit).await;
    for i in 0..60 {
        assert_eq!(restored.get(&format!("k{i}")), Some("v"), "acknowledged write k{i} survived the restart");
    }
    for node in &nodes {
        within(DEADLINE, "a shutdown", node.shutdown()).await;
    }
}
