//! Clusters on the tokio runtime over TCP on loopback, with the in-memory
//! store and state machine. Every wait is on a condition with a generous
//! deadline; no sleep decides a verdict.

use raft_core::runtime::{Inbox, Raft, ReadConsistency, RuntimeConfig, Transport};
use raft_core::{Membership, Message, MessageBody, NodeId, VoteRequest};
use raft_net_tcp::handshake::{self, Channel, HandshakeError, Hello, Refusal};
use raft_net_tcp::{TcpConfig, TcpTransport};
use raft_storage_mem::{KvCommand, MemKv, MemLogStore};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

const DEADLINE: Duration = raft_core::testing::RUNTIME_DEADLINE;
const CLUSTER: u64 = 7;

/// Awaits `future`, failing the test if it takes longer than the deadline.
async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    raft_core::testing::within(DEADLINE, what, future).await
}

use raft_core::testing::runtime_config as config;

fn set(key: &str, value: &str) -> KvCommand {
    KvCommand::Set { key: key.into(), value: value.into() }
}

struct Node {
    raft: Raft<MemKv>,
    transport: TcpTransport,
}

/// Binds node `id`'s transport on a free loopback port, delivering to the
/// inbox returned with it (the node's, once started).
async fn bind(id: NodeId, cluster: u64) -> (TcpTransport, Inbox) {
    let inbox = Inbox::default();
    let config = TcpConfig::new(id, cluster, "127.0.0.1:0".parse().unwrap());
    let transport = TcpTransport::bind(config, inbox.clone()).await.expect("the transport binds");
    (transport, inbox)
}

async fn start(
    transport: TcpTransport,
    inbox: Inbox,
    peers: &BTreeMap<NodeId, SocketAddr>,
    store: MemLogStore,
) -> Node {
    for (&peer, &addr) in peers {
        transport.set_peer(peer, addr);
    }
    let id = transport.id();
    let membership = Membership::new([1, 2, 3], []);
    let raft = Raft::start(
        config(id),
        RuntimeConfig::default(),
        membership,
        store,
        transport.clone(),
        inbox,
        MemKv::default(),
    )
    .await
    .expect("the node starts");
    Node { raft, transport }
}

/// Starts nodes 1 to 3 on loopback.
async fn cluster(stores: &[MemLogStore]) -> (Vec<Node>, BTreeMap<NodeId, SocketAddr>) {
    let mut bound = Vec::new();
    for id in 1..=3 {
        bound.push(bind(id, CLUSTER).await);
    }
    let addresses: BTreeMap<NodeId, SocketAddr> =
        bound.iter().map(|(transport, _)| (transport.id(), transport.local_addr())).collect();
    let mut nodes = Vec::new();
    for ((transport, inbox), store) in bound.into_iter().zip(stores) {
        nodes.push(start(transport, inbox, &addresses, store.clone()).await);
    }
    (nodes, addresses)
}

/// Waits until some node among `nodes` leads, and returns its index.
async fn leader(nodes: &[&Node]) -> usize {
    raft_core::testing::wait_for_leader(nodes.iter().map(|n| &n.raft), DEADLINE).await
}

/// Proposes at whichever node leads, retrying also when the outcome is
/// unknown (a leader crashed under it), which a write of a value allows.
async fn propose(nodes: &[&Node], command: KvCommand) -> Option<String> {
    within("a proposal", async {
        loop {
            let rafts = nodes.iter().map(|n| &n.raft);
            match raft_core::testing::propose_at_leader(rafts, command.clone(), DEADLINE).await {
                Ok(previous) => return previous,
                Err(error) => eprintln!("retrying a proposal: {error}"),
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_over_tcp_elects_replicates_and_survives_its_leader() {
    let stores: Vec<MemLogStore> = (0..3).map(|_| MemLogStore::new()).collect();
    let (mut nodes, mut addresses) = cluster(&stores).await;
    let all: Vec<&Node> = nodes.iter().collect();
    assert_eq!(propose(&all, set("a", "1")).await, None);
    let mut proposals = tokio::task::JoinSet::new();
    let l = leader(&all).await;
    for i in 0..100 {
        let node = nodes[l].raft.clone();
        proposals.spawn(async move { node.propose(set(&format!("k{i}"), "v")).await });
    }
    let mut committed = 1;
    while let Some(result) = within("a proposal", proposals.join_next()).await {
        // A loaded machine may move leadership mid-way; what commits must be applied everywhere.
        if result.expect("the task completes").is_ok() {
            committed += 1;
        }
    }
    let all: Vec<&Node> = nodes.iter().collect();
    let l = leader(&all).await;
    let value = within("a read", nodes[l].raft.read(ReadConsistency::Linearizable, |kv| kv.len())).await;
    assert!(value.is_ok_and(|len| len >= committed), "every committed proposal is applied at the leader");
    let target = nodes[l].raft.metrics().borrow().commit_index;
    raft_core::testing::wait_all_applied(nodes.iter().map(|n| &n.raft), target, DEADLINE).await;

    // The leader crashes: shut down, its transport closed and dropped.
    let crashed = nodes.remove(l);
    let crashed_id = crashed.transport.id();
    within("the leader's shutdown", crashed.raft.shutdown()).await;
    crashed.transport.close();
    drop(crashed);
    let rest: Vec<&Node> = nodes.iter().collect();
    let new = leader(&rest).await;
    assert_ne!(nodes[new].transport.id(), crashed_id);
    // (Some("2") only if a retried proposal had in fact been applied.)
    let previous = propose(&rest, set("a", "2")).await;
    assert!(matches!(previous.as_deref(), Some("1" | "2")), "the new leader has every entry: {previous:?}");
    for i in 0..20 {
        propose(&rest, set(&format!("after{i}"), "v")).await;
    }

    // It restarts from its store on a new port; the others learn the new address.
    let (transport, inbox) = bind(crashed_id, CLUSTER).await;
    addresses.insert(crashed_id, transport.local_addr());
    for node in &nodes {
        node.transport.set_peer(crashed_id, transport.local_addr());
    }
    let peers: BTreeMap<NodeId, SocketAddr> =
        addresses.iter().filter(|(&id, _)| id != crashed_id).map(|(&id, &a)| (id, a)).collect();
    let restarted = start(transport, inbox, &peers, stores[crashed_id as usize - 1].clone()).await;
    let target = {
        let rest: Vec<&Node> = nodes.iter().collect();
        let l = leader(&rest).await;
        let commit = nodes[l].raft.metrics().borrow().commit_index;
        commit
    };
    raft_core::testing::wait_applied(&restarted.raft, target, DEADLINE).await;
    let value = within(
        "a stale read",
        restarted.raft.read(ReadConsistency::Stale, |kv| kv.get("a").map(String::from)),
    )
    .await;
    assert_eq!(value, Ok(Some("2".into())));
    nodes.push(restarted);
    for node in &nodes {
        within("a shutdown", node.raft.shutdown()).await;
        node.transport.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_cluster_is_refused_and_cannot_disturb_a_running_cluster() {
    let stores: Vec<MemLogStore> = (0..3).map(|_| MemLogStore::new()).collect();
    let (nodes, addresses) = cluster(&stores).await;
    let all: Vec<&Node> = nodes.iter().collect();
    propose(&all, set("a", "1")).await;
    let term_before = nodes.iter().map(|n| n.raft.metrics().borrow().term).max().unwrap_or(0);

    // An impostor: node 2 of cluster 8, with everyone's address, asking for
    // votes in a far higher term (which would depose any leader it reached).
    let (impostor, _inbox) = bind(2, CLUSTER + 1).await;
    for (&id, &addr) in &addresses {
        impostor.set_peer(id, addr);
    }
    let disruptive = |to: NodeId, term: u64| Message {
        from: 2,
        to,
        term,
        body: MessageBody::Vote(VoteRequest {
            last_log_index: 1 << 40,
            last_log_term: 1 << 40,
            leadership_transfer: true,
        }),
    };
    // Its handshake is refused at every node, with the reason.
    for (&id, &addr) in &addresses {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let refused = within(
            "a handshake",
            handshake::dial(&mut stream, Hello::new(CLUSTER + 1, 2, id, Channel::Messages)),
        )
        .await;
        assert!(matches!(refused, Err(HandshakeError::Refused(Refusal::WrongCluster))), "{refused:?}");
        // A node of the right cluster that dials the wrong node is refused too.
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let other = if id == 1 { 3 } else { 1 };
        let refused = within(
            "a handshake",
            handshake::dial(&mut stream, Hello::new(CLUSTER, id, other, Channel::Messages)),
        )
        .await;
        assert!(matches!(refused, Err(HandshakeError::Refused(Refusal::WrongNode))), "{refused:?}");
    }
    // Its transport keeps trying (and failing) while the cluster works on.
    for i in 0..30 {
        for id in 1..=3 {
            impostor.send(disruptive(id, 1_000 + i).into());
        }
        propose(&all, set(&format!("k{i}"), "v")).await;
    }
    // Every one of its messages is dropped (counted once its link gives up
    // on the batch it held, after at most one backoff).
    within("the impostor's messages being dropped", async {
        while impostor.dropped() < 90 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    for node in &nodes {
        let term = node.raft.metrics().borrow().term;
        assert!(
            term < 1_000,
            "node {} adopted the impostor's term {term} (was {term_before})",
            node.transport.id()
        );
    }
    assert_eq!(
        within("a read", nodes[leader(&all).await].raft.read(ReadConsistency::Linearizable, |kv| kv.len()))
            .await,
        Ok(31)
    );
    impostor.close();
    for node in &nodes {
        within("a shutdown", node.raft.shutdown()).await;
        node.transport.close();
    }
}
