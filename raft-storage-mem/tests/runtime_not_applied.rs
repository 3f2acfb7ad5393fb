//! Found by review (issue 10): a leader answered `NotApplied` for its own earlier-term proposal
//! when it proposes a new entry at the same index (`core.rs`, `propose`:
//! "An entry of an earlier term at this index was truncated away: it can
//! never be applied"). It could: another node may still hold the old entry,
//! win a later term and commit it (the Figure 8 pattern). Node 1 is a real
//! runtime node; nodes 2..5 are scripted by hand, and every message they
//! send is one a correct Raft peer may send.

mod common;

use common::*;
use raft_core::runtime::{Envelope, RaftError, ReadConsistency, RuntimeConfig, Transport};
use raft_core::{
    AppendEntries, Config, Entry, EntryPayload, Membership, Message, MessageBody, Role, VoteResponse,
};
use raft_storage_mem::{KvCommand, MemLogStore};

struct Sink;
impl Transport for Sink {
    fn send(&self, _envelope: Envelope) {}
}

fn vote(from: u64, term: u64) -> Envelope {
    Message { from, to: 1, term, body: MessageBody::VoteResponse(VoteResponse { granted: true }) }.into()
}

fn append(from: u64, term: u64, entries: Vec<Entry>, commit: u64) -> Envelope {
    let body = MessageBody::AppendEntries(AppendEntries {
        prev_log_index: 0,
        prev_log_term: 0,
        entries,
        leader_commit: commit,
    });
    Message { from, to: 1, term, body }.into()
}

fn command(term: u64, index: u64, command: &KvCommand) -> Entry {
    let bytes = raft_core::codec::encode(command).unwrap();
    Entry { term, index, payload: EntryPayload::Command(bytes.into()) }
}

#[tokio::test(start_paused = true)]
async fn not_applied_is_never_said_of_a_proposal_that_is_applied() {
    let config = Config { pre_vote: false, check_quorum: false, ..config(1) };
    let net = raft_core::runtime::InProcessNetwork::new();
    let membership = Membership::new([1, 2, 3, 4, 5], []);
    let (node, inbox) =
        start_member(&net, config, RuntimeConfig::default(), membership, MemLogStore::new(), Sink).await;
    let mut metrics = node.metrics();
    let wait = |metrics: &mut tokio::sync::watch::Receiver<raft_core::runtime::Metrics>,
                what: &'static str,
                f: fn(&raft_core::runtime::Metrics) -> bool| {
        let mut metrics = metrics.clone();
        async move {
            within(what, metrics.wait_for(f)).await.expect("running");
        }
    };
    // Term 1: node 1 is elected by 2 and 3, appends its blank (1,1), then
    // x (1,2) and p (1,3). Its appends reach only node 2 (scripted: node 2
    // stores them; no acks reach node 1). Nothing commits.
    wait(&mut metrics, "candidate in term 1", |m| m.role == Role::Candidate && m.term == 1).await;
    inbox.deliver(vote(2, 1));
    inbox.deliver(vote(3, 1));
    wait(&mut metrics, "leader of term 1", |m| m.role == Role::Leader && m.term == 1).await;
    let (x, p) = (set("x", "1"), set("p", "1"));
    let _x = tokio::spawn({
        let (node, x) = (node.clone(), x.clone());
        async move { node.propose(x).await }
    });
    let proposal_p = tokio::spawn({
        let (node, p) = (node.clone(), p.clone());
        async move { node.propose(p).await }
    });
    wait(&mut metrics, "x and p appended", |m| m.last_log_index == 3).await;
    // Term 2: node 3, elected by 3, 4, 5 (empty logs), appends its blank
    // (2,1); its append reaches node 1 only. Node 1 truncates x and p.
    inbox.deliver(append(3, 2, vec![Entry { term: 2, index: 1, payload: EntryPayload::Blank }], 0));
    wait(&mut metrics, "follower in term 2", |m| {
        m.role == Role::Follower && m.term == 2 && m.last_log_index == 1
    })
    .await;
    // Term 3: node 1 campaigns; 4 and 5 (empty logs) vote for it. Its blank
    // goes to index 2, a new proposal r to index 3: where p was. None of
    // its appends reach anyone.
    wait(&mut metrics, "candidate in term 3", |m| m.role == Role::Candidate && m.term == 3).await;
    inbox.deliver(vote(4, 3));
    inbox.deliver(vote(5, 3));
    wait(&mut metrics, "leader of term 3", |m| m.role == Role::Leader && m.term == 3).await;
    let r = tokio::spawn({
        let node = node.clone();
        async move { node.propose(set("r", "1")).await }
    });
    wait(&mut metrics, "r appended at p's index", |m| {
        m.role == Role::Leader && m.term == 3 && m.last_log_index == 3
    })
    .await;
    // p's index now holds r here, but p's fate is not decided yet.
    // Term 4: node 2 (log (1,1) (1,2) (1,3)) is elected by 2, 4 and 5 (empty
    // logs, and they heard no leader), appends (4,4), which 4 and 5 store:
    // p is committed. It tells node 1.
    let entries = vec![
        Entry { term: 1, index: 1, payload: EntryPayload::Blank },
        command(1, 2, &x),
        command(1, 3, &p),
        Entry { term: 4, index: 4, payload: EntryPayload::Blank },
    ];
    inbox.deliver(append(2, 4, entries, 4));
    applied(&node, 4).await;
    let p_value =
        within("a stale read", node.read(ReadConsistency::Stale, |kv| kv.get("p").map(String::from)))
            .await
            .expect("running");
    assert_eq!(p_value, Some("1".into()), "p was applied");
    let p_outcome = within("p's outcome", proposal_p).await.expect("the task completes");
    assert_ne!(p_outcome, Err(RaftError::NotApplied), "p's caller was told NotApplied, but p was applied");
    assert_eq!(p_outcome, Ok(None), "p's caller gets p's own response");
    let r_outcome = within("r's outcome", r).await.expect("the task completes");
    assert_eq!(r_outcome, Err(RaftError::NotApplied), "r, displaced by the committed p, can never apply");
    within("a shutdown", node.shutdown()).await;
}

/// A proposal displaced from this log waits for its index to commit, to
/// learn whether an entry of its own term made it there (Figure 8). But once
/// an entry of a later term commits at a lower index, nothing of an earlier
/// term can ever commit after it: every later leader holds that entry
/// (Leader Completeness), and terms never decrease along a log. So the
/// proposal is decided, "not applied"; waiting for its index instead leaves
/// its caller hanging for as long as the cluster stays idle.
///
/// Term 1: node 1 leads {1, 2, 3}; its blank (1,1) commits; p at (1,2) and
/// q at (1,3) reach no one. Term 2: node 2 (log (1,1)) leads, commits its
/// blank (2,2) with node 3, tells node 1 and then, idle, only heartbeats.
/// Fails before the fix: q is still unanswered after half a forward timeout.
#[tokio::test(start_paused = true)]
async fn a_proposal_overtaken_by_a_committed_later_term_is_not_applied_in_an_idle_cluster() {
    let config = Config { pre_vote: false, check_quorum: false, ..config(1) };
    let runtime = RuntimeConfig::default();
    let patience = runtime.forward_timeout / 2;
    let net = raft_core::runtime::InProcessNetwork::new();
    let (node, inbox) =
        start_member(&net, config, runtime, Membership::new([1, 2, 3], []), MemLogStore::new(), Sink).await;
    let mut metrics = node.metrics();
    within("candidate in term 1", metrics.wait_for(|m| m.role == Role::Candidate && m.term == 1))
        .await
        .unwrap();
    inbox.deliver(vote(2, 1));
    within("leader of term 1", metrics.wait_for(|m| m.role == Role::Leader && m.last_log_index == 1))
        .await
        .unwrap();
    let ack = |from| {
        let body =
            MessageBody::AppendEntriesResponse(raft_core::AppendEntriesResponse::Success { match_index: 1 });
        Message { from, to: 1, term: 1, body }.into()
    };
    inbox.deliver(ack(2));
    inbox.deliver(ack(3));
    within("the blank committed", metrics.wait_for(|m| m.commit_index == 1)).await.unwrap();
    let spawn = |key: &'static str| {
        let node = node.clone();
        tokio::spawn(async move { node.propose(set(key, "1")).await })
    };
    let (p, q) = (spawn("p"), spawn("q"));
    within("p and q appended", metrics.wait_for(|m| m.last_log_index == 3)).await.unwrap();

    // Node 2's blank (2,2), committed with node 3, replaces p here.
    let blank = Entry { term: 2, index: 2, payload: EntryPayload::Blank };
    let body = MessageBody::AppendEntries(AppendEntries {
        prev_log_index: 1,
        prev_log_term: 1,
        entries: vec![blank],
        leader_commit: 2,
    });
    inbox.deliver(Message { from: 2, to: 1, term: 2, body }.into());
    let p = within("p's outcome", p).await.expect("the task completes");
    assert_eq!(p, Err(RaftError::NotApplied), "(2,2) committed where p was");

    // The cluster is idle: node 2 only heartbeats. q, at 3, can never be
    // committed now, and its caller must hear so.
    let q = tokio::time::timeout(patience, async {
        let mut q = q;
        loop {
            let heartbeat = MessageBody::Heartbeat(raft_core::Heartbeat { commit: 2, round: 0 });
            inbox.deliver(Message { from: 2, to: 1, term: 2, body: heartbeat }.into());
            tokio::select! {
                outcome = &mut q => return outcome.expect("the task completes"),
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
            }
        }
    });
    let q = q.await.expect("q, overtaken by (2,2), was left waiting");
    assert_eq!(q, Err(RaftError::NotApplied));
    within("a shutdown", node.shutdown()).await;
}
