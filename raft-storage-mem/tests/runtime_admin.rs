//! The handle's administration and client features on real runtime clusters:
//! proposal forwarding, adding a learner and waiting for it, membership
//! changes and crashes under load, snapshots on demand, and replication
//! metrics. Every wait is on a condition with a generous deadline.

mod common;

use common::*;
use raft_core::runtime::{Envelope, Transport};
use raft_core::runtime::{
    Failure, InProcessNetwork, InProcessTransport, Inbox, Raft, RaftError, ReadConsistency, RuntimeConfig,
    Task, TaskEnd,
};
use raft_core::{Membership, NodeId, Role};
use raft_storage_mem::{MemKv, MemLogStore};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn address(id: NodeId) -> String {
    format!("node-{id}.test:7000")
}

/// A founding configuration whose members' addresses are recorded.
fn membership(voters: &[NodeId]) -> Membership {
    voters.iter().fold(Membership::new(voters.iter().copied(), []), |m, &id| m.with_address(id, address(id)))
}

/// An in-process transport that remembers the addresses it was told.
struct Recording {
    inner: InProcessTransport,
    addresses: Arc<Mutex<BTreeMap<NodeId, String>>>,
}

impl Transport for Recording {
    fn send(&self, envelope: Envelope) {
        self.inner.send(envelope);
    }

    fn update_addresses(&self, addresses: &BTreeMap<NodeId, String>) {
        *self.addresses.lock().unwrap() = addresses.clone();
    }
}

struct Cluster {
    net: InProcessNetwork,
    stores: BTreeMap<NodeId, MemLogStore>,
    nodes: BTreeMap<NodeId, Raft<MemKv>>,
    addresses: BTreeMap<NodeId, Arc<Mutex<BTreeMap<NodeId, String>>>>,
    runtime: RuntimeConfig,
}

impl Cluster {
    async fn new(voters: &[NodeId]) -> Self {
        Self::with_runtime(voters, RuntimeConfig::default()).await
    }

    async fn with_runtime(voters: &[NodeId], runtime: RuntimeConfig) -> Self {
        let mut cluster = Cluster {
            net: InProcessNetwork::new(),
            stores: BTreeMap::new(),
            nodes: BTreeMap::new(),
            addresses: BTreeMap::new(),
            runtime,
        };
        for &id in voters {
            cluster.start(id, membership(voters)).await;
        }
        cluster
    }

    /// Starts (or restarts, on its stored state) node `id`.
    async fn start(&mut self, id: NodeId, membership: Membership) {
        let store = self.stores.entry(id).or_default().clone();
        let addresses = self.addresses.entry(id).or_default().clone();
        let transport = Recording { inner: self.net.transport(id), addresses };
        let (node, _) =
            start_member(&self.net, config(id), self.runtime.clone(), membership, store, transport).await;
        self.nodes.insert(id, node);
    }

    /// Stops node `id` as a crash would look to its peers.
    async fn crash(&mut self, id: NodeId) {
        self.net.disconnect(id);
        if let Some(node) = self.nodes.remove(&id) {
            within("a shutdown", node.shutdown()).await;
        }
    }

    fn handles(&self) -> Vec<Raft<MemKv>> {
        self.nodes.values().cloned().collect()
    }

    async fn leader(&self) -> Raft<MemKv> {
        let handles = self.handles();
        handles[leader(&handles).await].clone()
    }

    /// The leader, and a follower that knows it leads.
    async fn leader_and_follower(&self) -> (Raft<MemKv>, Raft<MemKv>) {
        let leader = self.leader().await;
        let leader_id = leader.metrics().borrow().id;
        let follower = self.handles().into_iter().find(|n| n.metrics().borrow().id != leader_id);
        let follower = follower.expect("a follower");
        let mut metrics = follower.metrics();
        within("the follower learning the leader", metrics.wait_for(|m| m.leader == Some(leader_id)))
            .await
            .expect("running");
        (leader, follower)
    }

    async fn shutdown(self) {
        for node in self.nodes.values() {
            within("a shutdown", node.shutdown()).await;
        }
    }
}

/// Runs an administrative request at whoever leads, retrying as an operator
/// would while leadership moves or a previous attempt is still in flight.
async fn at_leader<T, F, Fut>(cluster: &Cluster, what: &str, request: F) -> T
where
    F: Fn(Raft<MemKv>) -> Fut,
    Fut: std::future::Future<Output = Result<T, RaftError>>,
{
    within(what, async {
        loop {
            let leader = cluster.leader().await;
            match request(leader.clone()).await {
                Ok(value) => return value,
                Err(RaftError::NotLeader { .. } | RaftError::OutcomeUnknown | RaftError::Membership(_)) => {
                    let _ = leader.metrics().changed().await;
                }
                Err(other) => panic!("{what}: {other}"),
            }
        }
    })
    .await
}

/// Closed-loop clients writing unique keys through any node (forwarding
/// when that node does not lead), until told to stop; each remembers what
/// was acknowledged.
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(nodes: Vec<Raft<MemKv>>, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|client| {
                let (nodes, stop) = (nodes.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut acknowledged = Vec::new();
                    let mut i = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("c{client}-{i}");
                        let node = &nodes[(client + i) % nodes.len()];
                        i += 1;
                        let attempt = tokio::time::timeout(DEADLINE, node.propose_or_forward(set(&key, "v")));
                        match attempt.await {
                            Ok(Ok(_)) => acknowledged.push(key),
                            // No leader yet, shut down, or unknown: a client retries another key.
                            Ok(Err(_)) => tokio::task::yield_now().await,
                            Err(_) => panic!("a proposal took longer than the deadline"),
                        }
                    }
                    acknowledged
                })
            })
            .collect();
        Load { stop, clients }
    }

    async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        let mut acknowledged = Vec::new();
        for client in self.clients {
            acknowledged.extend(within("a client stopping", client).await.expect("the client ran"));
        }
        acknowledged
    }
}

/// Waits until every node in `nodes` has applied what `leader` committed,
/// then checks that all hold the same state and every acknowledged key.
async fn converged(leader: &Raft<MemKv>, nodes: &[Raft<MemKv>], acknowledged: &[String]) {
    let reference = read(leader, ReadConsistency::Linearizable, |kv| kv.clone()).await.expect("a read");
    let commit = leader.metrics().borrow().commit_index;
    for node in nodes {
        applied(node, commit).await;
        let state = read(node, ReadConsistency::Stale, |kv| kv.clone()).await.expect("a read");
        assert_eq!(state, reference, "node {} diverged", node.metrics().borrow().id);
    }
    for key in acknowledged {
        assert_eq!(reference.get(key), Some("v"), "acknowledged write {key} was lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_forwards_proposals_to_the_leader_when_asked() {
    let cluster = Cluster::new(&[1, 2, 3]).await;
    let (leader, follower) = cluster.leader_and_follower().await;
    let leader_id = leader.metrics().borrow().id;

    let refused = follower.propose(set("a", "1")).await;
    assert_eq!(
        refused,
        Err(RaftError::NotLeader { leader: Some(leader_id), address: Some(address(leader_id)) }),
        "a plain proposal at a follower names the leader and its address"
    );
    let forwarded = within("a forwarded proposal", follower.propose_or_forward(set("a", "1"))).await;
    assert_eq!(forwarded, Ok(None), "the leader's response comes back through the follower");
    let again = within("a forwarded proposal", follower.propose_or_forward(set("a", "2"))).await;
    assert_eq!(again, Ok(Some("1".to_string())), "responses are the state machine's, in order");
    let value = read(&leader, ReadConsistency::Linearizable, |kv| kv.get("a").map(String::from)).await;
    assert_eq!(value, Ok(Some("2".into())));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_proposal_that_is_lost_ends_in_an_unknown_outcome() {
    let runtime = RuntimeConfig { forward_timeout: Duration::from_millis(300), ..RuntimeConfig::default() };
    let cluster = Cluster::with_runtime(&[1, 2, 3], runtime).await;
    let (leader, follower) = cluster.leader_and_follower().await;
    let (leader_id, follower_id) = (leader.metrics().borrow().id, follower.metrics().borrow().id);

    // What the follower sends is lost; the leader's heartbeats still arrive,
    // so it keeps following, and the leader keeps its other follower.
    cluster.net.cut(follower_id, leader_id);
    let outcome = within("a lost forward", follower.propose_or_forward(set("a", "1"))).await;
    assert_eq!(outcome, Err(RaftError::OutcomeUnknown));
    cluster.net.heal();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_add_a_learner_promote_it_and_remove_a_voter_under_load() {
    let mut cluster = Cluster::new(&[1, 2, 3, 4, 5]).await;
    let load = Load::start(cluster.handles(), 4);

    // Node 6 joins knowing nothing; the leader adds it with its address.
    cluster.start(6, Membership::default()).await;
    at_leader(&cluster, "adding a learner", |leader| async move {
        leader.add_learner(6, Some(address(6)), true).await
    })
    .await;
    let leader = cluster.leader().await;
    let metrics = leader.metrics().borrow().clone();
    assert!(metrics.membership.is_learner(6));
    let told = cluster.addresses[&2].lock().unwrap().get(&6).cloned();
    assert_eq!(told, Some(address(6)), "every member's transport learns the new member's address");

    // Promote node 6 in place of node 1 (perhaps the leader itself).
    let target = [2, 3, 4, 5, 6];
    at_leader(&cluster, "replacing node 1 with node 6", |leader| async move {
        leader.change_membership(target, []).await
    })
    .await;
    let leader = cluster.leader().await;
    let membership = leader.metrics().borrow().membership.clone();
    assert_eq!(membership.voters, target.into_iter().collect());
    assert!(!membership.contains(1), "node 1 left the cluster");
    assert_eq!(membership.address(6), Some(address(6).as_str()));

    // And a voter can be removed outright, still under load.
    at_leader(&cluster, "removing node 5", |leader| async move { leader.remove_node(5).await }).await;
    let acknowledged = load.stop().await;
    assert!(!acknowledged.is_empty(), "the cluster served clients throughout");
    let leader = cluster.leader().await;
    assert!(!leader.metrics().borrow().membership.contains(5));
    let remaining: Vec<Raft<MemKv>> = [2, 3, 4, 6].iter().map(|id| cluster.nodes[id].clone()).collect();
    converged(&leader, &remaining, &acknowledged).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_crashes_and_catches_up_under_load() {
    let mut cluster = Cluster::new(&[1, 2, 3]).await;
    let load = Load::start(cluster.handles(), 4);
    let leader = cluster.leader().await;
    let leader_id = leader.metrics().borrow().id;
    let follower = [1, 2, 3].into_iter().find(|&id| id != leader_id).unwrap();
    applied(&leader, 50).await;

    cluster.crash(follower).await;
    let commit = leader.metrics().borrow().commit_index;
    applied(&leader, commit + 100).await;
    cluster.start(follower, membership(&[1, 2, 3])).await;

    let acknowledged = load.stop().await;
    let leader = cluster.leader().await;
    converged(&leader, &cluster.handles(), &acknowledged).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_on_demand_compacts_the_log() {
    let cluster = Cluster::new(&[1, 2, 3]).await;
    let leader = cluster.leader().await;
    for i in 0..50 {
        within("a proposal", leader.propose(set(&format!("k{i}"), "v"))).await.expect("committed");
    }
    let covered = within("a snapshot", leader.trigger_snapshot()).await.expect("built");
    assert!(covered.index >= 50, "the snapshot covers what was applied: {covered:?}");
    let mut metrics = leader.metrics();
    within("the snapshot in the metrics", metrics.wait_for(|m| m.snapshot == covered))
        .await
        .expect("running");
    let id = leader.metrics().borrow().id;
    let stored = raft_core::LogStore::load(&cluster.stores[&id]).await.expect("load");
    assert_eq!(stored.snapshot.map(|s| s.meta.last), Some(covered), "the snapshot is durable");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_reports_each_peers_replication() {
    let cluster = Cluster::new(&[1, 2, 3]).await;
    let leader = cluster.leader().await;
    let leader_id = leader.metrics().borrow().id;
    for i in 0..20 {
        within("a proposal", leader.propose(set(&format!("k{i}"), "v"))).await.expect("committed");
    }
    let mut metrics = leader.metrics();
    let caught_up = |m: &raft_core::runtime::Metrics| {
        m.replication.len() == 2
            && m.replication.values().all(|r| r.lag == 0 && r.match_index == m.last_log_index)
    };
    within("followers caught up", metrics.wait_for(caught_up)).await.expect("running");
    assert!(!leader.metrics().borrow().replication.contains_key(&leader_id));
    for node in cluster.handles() {
        if node.metrics().borrow().role != Role::Leader {
            assert!(node.metrics().borrow().replication.is_empty(), "only a leader tracks replication");
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_on_a_lossy_slow_network_commits_and_converges() {
    // Raft retries its own messages; a lost forwarded proposal is not
    // retried (it might then apply twice), so its client hears "unknown"
    // after the forward timeout and moves on.
    let runtime = RuntimeConfig { forward_timeout: Duration::from_millis(300), ..RuntimeConfig::default() };
    let cluster = Cluster::with_runtime(&[1, 2, 3], runtime).await;
    leader(&cluster.handles()).await;
    // A fifth of all messages lost, the rest 5 ms late (and so reordered).
    cluster.net.set_loss(0.2);
    cluster.net.set_delay(Duration::from_millis(5));
    let load = Load::start(cluster.handles(), 4);
    let leader_handle = cluster.leader().await;
    let start = leader_handle.metrics().borrow().commit_index;
    let mut metrics = leader_handle.metrics();
    within("commits despite loss and delay", metrics.wait_for(|m| m.commit_index >= start + 200))
        .await
        .expect("running");
    let acknowledged = load.stop().await;
    cluster.net.heal();
    let leader_handle = cluster.leader().await;
    converged(&leader_handle, &cluster.handles(), &acknowledged).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_read_whose_request_is_lost_times_out() {
    let runtime = RuntimeConfig { read_timeout: Duration::from_millis(300), ..RuntimeConfig::default() };
    let cluster = Cluster::with_runtime(&[1, 2, 3], runtime).await;
    let (leader, follower) = cluster.leader_and_follower().await;
    let (leader_id, follower_id) = (leader.metrics().borrow().id, follower.metrics().borrow().id);
    // The follower's ReadIndex request is lost; it still follows the leader.
    cluster.net.cut(follower_id, leader_id);
    let outcome = within("a lost read", follower.read(ReadConsistency::Linearizable, |_| ())).await;
    assert_eq!(outcome, Err(RaftError::Timeout), "a read that cannot be confirmed fails rather than hang");
    cluster.net.heal();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_read_with_leases_off_is_refused_for_what_it_is() {
    let cluster = Cluster::new(&[1, 2, 3]).await;
    let leader = cluster.leader().await;
    let outcome = leader.read(ReadConsistency::Lease, |_| ()).await;
    assert_eq!(outcome, Err(RaftError::Read(raft_core::ReadError::LeaseReadsDisabled)));
    cluster.shutdown().await;
}

/// A state machine that panics on one command, as a buggy one might.
#[derive(Default)]
struct Fragile(MemKv);

impl raft_core::runtime::StateMachine for Fragile {
    type Command = raft_storage_mem::KvCommand;
    type Response = Option<String>;

    fn apply(&mut self, entry: raft_core::LogId, command: Self::Command) -> Self::Response {
        if matches!(&command, raft_storage_mem::KvCommand::Delete { key } if key == "boom") {
            panic!("the state machine cannot apply this");
        }
        self.0.apply(entry, command)
    }

    fn snapshot(&self) -> raft_core::SnapshotData {
        self.0.snapshot()
    }

    fn restore(
        &mut self,
        snapshot: &raft_core::SnapshotData,
    ) -> Result<(), raft_core::runtime::RestoreError> {
        self.0.restore(snapshot)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_machine_that_panics_stops_its_node_with_a_clear_error() {
    let net = InProcessNetwork::new();
    let node = Raft::start(
        config(1),
        RuntimeConfig::default(),
        Membership::new([1], []),
        MemLogStore::new(),
        net.transport(1),
        Inbox::default(),
        Fragile::default(),
    )
    .await
    .expect("the node starts");
    let mut metrics = node.metrics();
    within("an election", metrics.wait_for(|m| m.role == Role::Leader)).await.expect("running");
    within("a proposal", node.propose(set("a", "1"))).await.expect("applied");

    let fatal = raft_storage_mem::KvCommand::Delete { key: "boom".into() };
    let outcome = within("a fatal proposal", node.propose(fatal)).await;
    assert_eq!(outcome, Err(RaftError::OutcomeUnknown), "the panic interrupted its own proposal");
    within("the node stopping", async { while metrics.changed().await.is_ok() {} }).await;
    let after = within("a request after the failure", node.propose(set("b", "2"))).await;
    assert!(
        after == Err(RaftError::Failed(Failure::TaskEnded { task: Task::Applier, end: TaskEnd::Panicked })),
        "later requests learn why the node stopped: {after:?}"
    );
}
