//! A node's [`Inbox`] across the node's lives: what arrives before the node
//! starts waits for it, a second node cannot read an inbox in use, and a
//! node restarted on the same inbox (after a shutdown, a crash or a
//! failure) takes it back with what queued meanwhile, as a restarted process
//! keeping its transport would. A stopped node's inbox stays bounded: once
//! full it drops, and never panics.

mod common;

use common::{config, within};
use raft_core::runtime::{
    Envelope, Forward, Forwarded, InProcessNetwork, Inbox, Raft, RuntimeConfig, StartError,
};
use raft_core::{Heartbeat, Membership, Message, MessageBody, Term};
use raft_storage_mem::{MemKv, MemLogStore};
use std::future::Future;
use std::task::Poll;

/// A heartbeat from node 2, the leader of `term`, to node 1: a message
/// whose effect shows in node 1's metrics (it adopts the term).
fn heartbeat(term: Term) -> Envelope {
    Envelope::Raft(Message {
        from: 2,
        to: 1,
        term,
        body: MessageBody::Heartbeat(Heartbeat { commit: 0, round: 0 }),
    })
}

/// Starts node 1 of the cluster {1, 2} (node 2 never runs: only the test
/// speaks for it) on `store` and `inbox`.
async fn start(store: &MemLogStore, inbox: &Inbox) -> Result<Raft<MemKv>, StartError> {
    let net = InProcessNetwork::new();
    Raft::start(
        config(1),
        RuntimeConfig::default(),
        Membership::new([1, 2], []),
        store.clone(),
        net.transport(1),
        inbox.clone(),
        MemKv::default(),
    )
    .await
}

/// Waits until `node` has adopted `term` (it stepped the heartbeat).
async fn adopts(node: &Raft<MemKv>, term: Term) {
    let mut metrics = node.metrics();
    let seen = within("stepping the queued heartbeat", metrics.wait_for(|m| m.term >= term)).await;
    assert!(seen.is_ok(), "the node stopped before stepping the heartbeat");
}

/// Whether `future` is still waiting when polled once.
async fn is_pending<F: Future>(future: F) -> bool {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx).is_pending())).await
}

#[tokio::test]
async fn messages_that_arrive_before_the_node_starts_wait_for_it() {
    let inbox = Inbox::default();
    assert!(inbox.deliver(heartbeat(5)));
    let node = start(&MemLogStore::new(), &inbox).await.expect("the node starts");
    adopts(&node, 5).await;
    within("a shutdown", node.shutdown()).await;
}

#[tokio::test]
async fn a_second_node_cannot_read_an_inbox_in_use_until_the_first_stops() {
    let inbox = Inbox::default();
    let first = start(&MemLogStore::new(), &inbox).await.expect("the node starts");
    let second = start(&MemLogStore::new(), &inbox).await;
    assert!(matches!(second, Err(StartError::InboxInUse)), "two nodes on one inbox: {:?}", second.err());
    assert!(inbox.try_recv().is_none(), "nothing else reads an inbox a node reads");
    within("a shutdown", first.shutdown()).await;
    let second = start(&MemLogStore::new(), &inbox).await.expect("the inbox is free once the node stopped");
    within("a shutdown", second.shutdown()).await;
}

#[tokio::test]
async fn a_node_restarted_after_a_shutdown_reads_what_arrived_meanwhile() {
    let (store, inbox) = (MemLogStore::new(), Inbox::default());
    let node = start(&store, &inbox).await.expect("the node starts");
    within("a shutdown", node.shutdown()).await;
    assert!(inbox.deliver(heartbeat(7)), "a stopped node's inbox still queues");
    let node = start(&store, &inbox).await.expect("the node restarts on its inbox");
    adopts(&node, 7).await;
    within("a shutdown", node.shutdown()).await;
}

/// On a current-thread runtime nothing of the crashed node runs before the
/// restart is asked for: its tasks are aborted, but not yet dropped.
#[tokio::test(flavor = "current_thread")]
async fn a_node_restarted_right_after_a_crash_takes_its_inbox_back() {
    let (store, inbox) = (MemLogStore::new(), Inbox::default());
    let node = start(&store, &inbox).await.expect("the node starts");
    node.crash();
    assert!(inbox.deliver(heartbeat(9)));
    let restarted = within("a restart", start(&store, &inbox)).await;
    let node = restarted.expect("a crashed node's inbox is free for its restart");
    adopts(&node, 9).await;
    within("a shutdown", node.shutdown()).await;
}

#[tokio::test]
async fn a_stopped_nodes_full_inbox_drops_and_never_panics() {
    let (store, inbox) = (MemLogStore::new(), Inbox::new(2));
    let node = start(&store, &inbox).await.expect("the node starts");
    within("a shutdown", node.shutdown()).await;
    assert!(inbox.deliver(heartbeat(3)));
    assert!(inbox.deliver(heartbeat(4)));
    assert!(!inbox.deliver(heartbeat(5)), "a full inbox drops");
    assert!(
        is_pending(inbox.deliver_or_wait(heartbeat(5))).await,
        "a full inbox makes a flow-controlled sender wait"
    );
    let node = start(&store, &inbox).await.expect("the node restarts on its inbox");
    adopts(&node, 4).await;
    within("a shutdown", node.shutdown()).await;
    assert!(inbox.deliver(heartbeat(6)), "the inbox of a node that stopped again still queues");
}

/// A forwarded proposal of `len` bytes: an envelope of `64 + len` bytes
/// ([`Envelope::size`]).
fn proposal(len: usize) -> Envelope {
    let body = Forward::Proposal { id: 1, command: vec![0; len].into() };
    Envelope::Forward(Forwarded { from: 2, to: 1, term: 1, body })
}

#[tokio::test]
async fn an_inbox_is_bounded_by_bytes_as_well_as_by_count() {
    let inbox = Inbox::with_limits(4096, 3000);
    assert!(inbox.deliver(proposal(1000)));
    assert!(inbox.deliver(proposal(1000)));
    assert!(!inbox.deliver(proposal(1000)), "a third 1,064 bytes is over the 3,000");
    assert!(inbox.deliver(heartbeat(3)), "what fits in the bytes left still goes in");
    assert!(
        is_pending(inbox.deliver_or_wait(proposal(1000))).await,
        "an inbox full of bytes makes a flow-controlled sender wait"
    );
    assert_eq!(inbox.try_recv(), Some(proposal(1000)));
    within("room made by taking one out", inbox.deliver_or_wait(proposal(1000))).await;
}

#[tokio::test]
async fn an_envelope_larger_than_the_byte_budget_waits_for_an_empty_inbox() {
    let inbox = Inbox::with_limits(4096, 3000);
    assert!(inbox.deliver(heartbeat(3)));
    assert!(!inbox.deliver(proposal(10_000)), "it needs the whole budget");
    let waiting = inbox.clone();
    let big = tokio::spawn(async move { waiting.deliver_or_wait(proposal(10_000)).await });
    assert_eq!(within("the heartbeat", inbox.recv()).await, Some(heartbeat(3)));
    within("the large envelope let in", big).await.expect("the sender task runs");
    assert_eq!(inbox.try_recv(), Some(proposal(10_000)));
}

/// A snapshot chunk from node 2 to node 1 with no data, whose metadata's
/// configuration holds `len` bytes of one member's address: what a buggy
/// or hostile peer controls without sending any snapshot bytes.
fn chunk_with_address(len: usize) -> Envelope {
    let mut membership = Membership::new([1, 2], []);
    membership.addresses.insert(2, "x".repeat(len));
    let meta = raft_core::SnapshotMeta { last: raft_core::LogId::new(1, 1), membership };
    let chunk = raft_core::InstallSnapshot {
        meta,
        offset: 0,
        data: Default::default(),
        done: true,
        total_len: 0,
        checksum: 0,
    };
    Envelope::Raft(Message { from: 2, to: 1, term: 1, body: MessageBody::InstallSnapshot(Box::new(chunk)) })
}

#[tokio::test]
async fn a_snapshot_chunks_configuration_counts_against_the_byte_budget() {
    let inbox = Inbox::with_limits(4096, 3 << 20);
    assert!(inbox.deliver(chunk_with_address(1 << 20)));
    assert!(inbox.deliver(chunk_with_address(1 << 20)));
    assert!(!inbox.deliver(chunk_with_address(1 << 20)), "a third MiB of addresses is over the 3 MiB budget");
}
