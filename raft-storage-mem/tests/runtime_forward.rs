//! Forwarded proposals are proposed at most once (issue 10, bug 6), even when
//! the transport delivers a forward again after the leader restarted and
//! leads again in a later term. The copy is hand-delivered, as a transport
//! that redelivers after a reconnect would. Runs on tokio's paused clock.

mod common;

use common::*;
use raft_core::runtime::{
    Envelope, Forward, Forwarded, InProcessNetwork, InProcessTransport, Inbox, Raft, RuntimeConfig, Transport,
};
use raft_core::{Membership, NodeId, Role};
use raft_storage_mem::{MemKv, MemLogStore};
use std::sync::{Arc, Mutex};

/// A transport that keeps a copy of every forwarded proposal it sends.
struct Recording {
    inner: InProcessTransport,
    forwards: Arc<Mutex<Vec<Envelope>>>,
}

impl Transport for Recording {
    fn send(&self, envelope: Envelope) {
        if matches!(envelope, Envelope::Forward(Forwarded { body: Forward::Proposal { .. }, .. })) {
            self.forwards.lock().unwrap().push(envelope.clone());
        }
        self.inner.send(envelope);
    }
}

async fn start(
    net: &InProcessNetwork,
    id: NodeId,
    store: MemLogStore,
    forwards: &Arc<Mutex<Vec<Envelope>>>,
) -> (Raft<MemKv>, Inbox) {
    let transport = Recording { inner: net.transport(id), forwards: forwards.clone() };
    start_member(net, config(id), RuntimeConfig::default(), Membership::new([1, 2, 3], []), store, transport)
        .await
}

async fn value_everywhere(nodes: &[Raft<MemKv>], index: u64) -> Vec<Option<String>> {
    let mut values = Vec::new();
    for node in nodes {
        applied(node, index).await;
        let value = node.read(raft_core::runtime::ReadConsistency::Stale, |kv| kv.get("x").map(String::from));
        values.push(within("a stale read", value).await.expect("the node runs"));
    }
    values
}

#[tokio::test(start_paused = true)]
async fn a_forward_delivered_again_after_the_leader_restarted_is_not_applied_twice() {
    let net = InProcessNetwork::new();
    let forwards = Arc::new(Mutex::new(Vec::new()));
    let stores: Vec<MemLogStore> = (0..3).map(|_| MemLogStore::new()).collect();
    let (mut nodes, mut inboxes) = (Vec::new(), Vec::new());
    for id in 1..=3 {
        let (node, inbox) = start(&net, id, stores[id as usize - 1].clone(), &forwards).await;
        nodes.push(node);
        inboxes.push(inbox);
    }
    let l = leader(&nodes).await;
    let f = (l + 1) % 3;
    // x = 1 through a follower, then x = 2 at the leader.
    assert_eq!(within("a forwarded proposal", nodes[f].propose_or_forward(set("x", "1"))).await, Ok(None));
    assert_eq!(within("x = 2", nodes[l].propose(set("x", "2"))).await, Ok(Some("1".into())));
    let copy = {
        let forwards = forwards.lock().unwrap();
        assert_eq!(forwards.len(), 1, "one forward was sent");
        forwards[0].clone()
    };

    // The leader restarts from its store, and leads again (a later term).
    let old_term = nodes[l].metrics().borrow().term;
    within("a shutdown", nodes[l].shutdown()).await;
    net.disconnect(l as NodeId + 1);
    (nodes[l], inboxes[l]) = start(&net, l as NodeId + 1, stores[l].clone(), &forwards).await;
    within("leadership back at the restarted node", async {
        loop {
            let current = leader(&nodes).await;
            if current == l {
                break;
            }
            let _ = nodes[current].transfer_leadership(l as NodeId + 1).await;
            let mut metrics = nodes[l].metrics();
            let _ = tokio::time::timeout(DEADLINE / 20, metrics.wait_for(|m| m.role == Role::Leader)).await;
        }
    })
    .await;
    assert!(nodes[l].metrics().borrow().term > old_term);

    // The transport delivers the forward again, to the restarted leader and
    // (for good measure) to every other node.
    for inbox in &inboxes {
        inbox.deliver(copy.clone());
    }
    // Two writes after it: had the copy been proposed, one of their
    // responses (the previous value) would be 1, or x would end as 1.
    assert_eq!(within("x = 3", nodes[l].propose(set("x", "3"))).await, Ok(Some("2".into())));
    assert_eq!(within("x = 4", nodes[l].propose(set("x", "4"))).await, Ok(Some("3".into())));
    let commit = nodes[l].metrics().borrow().commit_index;
    let values = value_everywhere(&nodes, commit).await;
    assert_eq!(values, vec![Some("4".to_string()); 3], "the duplicate forward was applied");
    for node in &nodes {
        within("a shutdown", node.shutdown()).await;
    }
}
