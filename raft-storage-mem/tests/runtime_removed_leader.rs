//! Found by the flaky `five_nodes_add_a_learner_promote_it_and_remove_a_voter_under_load`
//! (`runtime_admin.rs`): a leader that removes itself steps down once the
//! configuration without it commits, and then hears no more of the log (no
//! leader replicates to a node outside the configuration). The proposals it
//! had appended after that configuration waited for their index to commit
//! *here*, so they were never answered: its own callers waited forever (the
//! test's clients gave up after 20 s), and the followers that had forwarded
//! to it waited out `forward_timeout` (10 s) before they heard "unknown".
//!
//! Node 1 is a real runtime node on tokio's paused clock; nodes 2 and 3 are
//! scripted by hand, and every message they send is one a correct Raft peer
//! may send. The verdict is whether the answers come back before the
//! forward timeout has elapsed on the paused clock, so no real time decides
//! it.

mod common;

use common::*;
use raft_core::runtime::{
    Envelope, Forward, ForwardOutcome, Forwarded, Inbox, Metrics, Raft, RaftError, RuntimeConfig, Transport,
};
use raft_core::{AppendEntriesResponse, Config, Membership, Message, MessageBody, Role, VoteResponse};
use raft_storage_mem::{MemKv, MemLogStore};
use tokio::sync::mpsc;

/// Hands everything node 1 sends to the test.
struct Outbox(mpsc::UnboundedSender<Envelope>);

impl Transport for Outbox {
    fn send(&self, envelope: Envelope) {
        let _ = self.0.send(envelope);
    }
}

fn vote(from: u64, term: u64) -> Envelope {
    Message { from, to: 1, term, body: MessageBody::VoteResponse(VoteResponse { granted: true }) }.into()
}

/// Node `from` acknowledges storing node 1's log up to `match_index`.
fn ack(from: u64, match_index: u64) -> Envelope {
    let body = MessageBody::AppendEntriesResponse(AppendEntriesResponse::Success { match_index });
    Message { from, to: 1, term: 1, body }.into()
}

async fn until(node: &Raft<MemKv>, what: &str, condition: impl Fn(&Metrics) -> bool) {
    let mut metrics = node.metrics();
    within(what, metrics.wait_for(condition)).await.expect("running");
}

/// Node 1 of {1, 2, 3}, a real runtime node whose peers are scripted: it is
/// elected in term 1 by node 2, and its blank, stored by 2 and 3, commits.
/// Returns the node, its inbox and what it sends.
async fn leader_of_term_one(
    config: Config,
    runtime: RuntimeConfig,
) -> (Raft<MemKv>, Inbox, mpsc::UnboundedReceiver<Envelope>) {
    let net = raft_core::runtime::InProcessNetwork::new();
    let (outbox, sent) = mpsc::unbounded_channel();
    let membership = Membership::new([1, 2, 3], []);
    let (node, inbox) =
        start_member(&net, config, runtime, membership, MemLogStore::new(), Outbox(outbox)).await;
    until(&node, "candidate in term 1", |m| m.role == Role::Candidate && m.term == 1).await;
    inbox.deliver(vote(2, 1));
    until(&node, "leader of term 1", |m| m.role == Role::Leader && m.last_log_index == 1).await;
    inbox.deliver(ack(2, 1));
    inbox.deliver(ack(3, 1));
    until(&node, "the blank committed", |m| m.commit_index == 1).await;
    (node, inbox, sent)
}

/// Section 4.2.2 of the thesis: a leader outside the new configuration
/// manages the cluster until it commits, then steps down. What it appended
/// after that entry may still be committed by the members that hold it, so
/// its proposers cannot be told "not applied"; but they must be told
/// something, since nothing will ever decide it here.
#[tokio::test(start_paused = true)]
async fn a_leader_that_removes_itself_answers_what_it_can_no_longer_see_decided() {
    let config = Config { pre_vote: false, check_quorum: false, ..config(1) };
    let runtime = RuntimeConfig::default();
    let patience = runtime.forward_timeout / 2;
    let (node, inbox, mut sent) = leader_of_term_one(config, runtime).await;

    // Node 1 removes itself: the joint configuration at 2, stored by 2 and 3,
    // commits, and node 1 appends the configuration {2, 3} at 3.
    let removal = tokio::spawn({
        let node = node.clone();
        async move { node.remove_node(1).await }
    });
    until(&node, "the joint configuration appended", |m| m.last_log_index == 2).await;
    inbox.deliver(ack(2, 2));
    inbox.deliver(ack(3, 2));
    until(&node, "the configuration {2, 3} appended", |m| {
        m.last_log_index == 3 && !m.membership.is_joint() && !m.membership.contains(1)
    })
    .await;

    // Still leading until {2, 3} commits, it takes a proposal of its own at
    // 4 and one node 2 forwards at 5.
    let local = tokio::spawn({
        let node = node.clone();
        async move { node.propose(set("local", "1")).await }
    });
    let command = raft_core::codec::encode(&set("forwarded", "1")).expect("encodes");
    let forward = Forward::Proposal { id: 7, command: command.into() };
    inbox.deliver(Envelope::Forward(Forwarded { from: 2, to: 1, term: 1, body: forward }));
    until(&node, "both proposals appended", |m| m.role == Role::Leader && m.last_log_index == 5).await;

    // Nodes 2 and 3 store {2, 3} (and, as far as node 1 ever learns, no
    // more): it commits, and node 1 steps down.
    inbox.deliver(ack(2, 3));
    inbox.deliver(ack(3, 3));
    until(&node, "stepped down", |m| m.role == Role::Follower && m.commit_index == 3).await;
    let removed = within("the removal", removal).await.expect("the task completes");
    assert!(removed.is_ok(), "the removal completed: {removed:?}");

    // Both callers hear at once that the outcome is unknown: either entry
    // may yet be committed by nodes 2 and 3, if they hold it.
    let outcome = tokio::time::timeout(patience, local).await;
    let outcome = outcome.expect("the local proposal was left waiting").expect("the task completes");
    assert_eq!(outcome, Err(RaftError::OutcomeUnknown));
    let answer = tokio::time::timeout(patience, async {
        while let Some(envelope) = sent.recv().await {
            if let Envelope::Forward(Forwarded { to, body: Forward::Response { id: 7, outcome }, .. }) =
                envelope
            {
                return Some((to, outcome));
            }
        }
        None
    });
    let answer = answer.await.expect("the forwarded proposal was left unanswered");
    assert_eq!(answer, Some((2, ForwardOutcome::OutcomeUnknown)), "node 2 hears the outcome is unknown");
    within("a shutdown", node.shutdown()).await;
}

/// The same removal, finished by another leader. Node 1 appends the joint
/// configuration {1, 2, 3} -> {2, 3} at 2 and a proposal of its own at 3;
/// node 2, which stores both, is elected in term 2 (by itself and node 3:
/// majorities of both halves) and sends node 1 its blank at 4. Node 3
/// acknowledges the blank, so 2, 3 and 4 commit; node 2 broadcasts the new
/// commit index, appends {2, 3} at 5 and from then on sends node 1 nothing.
/// The one message that told node 1 of the commit is lost (or node 1 was cut
/// off while node 2 finished the change, which is how node 2 came to lead):
/// no leader will ever send it the commit index or the entry removing it.
///
/// Node 1's log ends at the joint configuration, which still names it, so
/// it does not know it was removed; left alone, the proposal at 3
/// (committed, as it happens) would never be answered. It must hear
/// "unknown" once node 1 has heard from no leader for a forward timeout (before
/// the fix it was still unanswered after three).
#[tokio::test(start_paused = true)]
async fn a_leader_deposed_while_removing_itself_answers_its_proposals() {
    let config = Config { pre_vote: false, check_quorum: false, ..config(1) };
    let runtime = RuntimeConfig::default();
    let patience = runtime.forward_timeout * 3;
    let (node, inbox, _sent) = leader_of_term_one(config, runtime).await;

    // The joint configuration at 2, then a proposal at 3; neither is
    // acknowledged to node 1.
    let removal = tokio::spawn({
        let node = node.clone();
        async move { node.remove_node(1).await }
    });
    until(&node, "the joint configuration appended", |m| m.last_log_index == 2 && m.membership.is_joint())
        .await;
    let local = tokio::spawn({
        let node = node.clone();
        async move { node.propose(set("local", "1")).await }
    });
    until(&node, "the proposal appended", |m| m.last_log_index == 3).await;

    // Node 2 leads term 2 and sends its blank at 4 after node 1's entries.
    let blank = raft_core::Entry { term: 2, index: 4, payload: raft_core::EntryPayload::Blank };
    let append = raft_core::AppendEntries {
        prev_log_index: 3,
        prev_log_term: 1,
        entries: vec![blank],
        leader_commit: 1,
    };
    inbox.deliver(Message { from: 2, to: 1, term: 2, body: MessageBody::AppendEntries(append) }.into());
    until(&node, "follower of node 2 in term 2", |m| m.role == Role::Follower && m.last_log_index == 4).await;
    let removed = within("the removal", removal).await.expect("the task completes");
    assert_eq!(removed, Err(RaftError::OutcomeUnknown), "node 1 lost its term before the change completed");

    // Node 2 commits 4 with node 3; its commit broadcast to node 1 is lost;
    // it appends {2, 3} and falls silent towards node 1. Whatever the caller hears, it must hear it: the proposal is
    // committed, so "not applied" would be false, but "unknown" is true.
    let outcome = tokio::time::timeout(patience, local).await;
    let outcome = outcome.expect("the local proposal was left waiting forever").expect("the task completes");
    assert!(matches!(outcome, Ok(_) | Err(RaftError::OutcomeUnknown)), "a committed proposal: {outcome:?}");
    within("a shutdown", node.shutdown()).await;
}
