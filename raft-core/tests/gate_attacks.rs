//! Adversarial checks of the durability gate (`durability.rs`), each a
//! sequence of inputs a caller may legally produce: a message that vouches
//! for state written by an earlier, still pending `Ready`; a snapshot
//! installed while earlier writes are pending; a leader deposed between
//! `ready()` and `on_persisted`; reports of numbers out of range.

use bytes::Bytes;
use raft_core::{
    AppendEntries, AppendEntriesResponse, Config, Entry, EntryPayload, HardState, InitialState,
    InstallSnapshot, Membership, Message, MessageBody, RawNode, Role, SnapshotData, SnapshotMeta,
    VoteRequest, VoteResponse,
};

fn blank(index: u64, term: u64) -> Entry {
    Entry { index, term, payload: EntryPayload::Blank }
}

fn append(from: u64, term: u64, prev: (u64, u64), entries: Vec<Entry>, commit: u64) -> Message {
    let body = MessageBody::AppendEntries(AppendEntries {
        prev_log_index: prev.0,
        prev_log_term: prev.1,
        entries,
        leader_commit: commit,
    });
    Message { from, to: 1, term, body }
}

fn follower() -> RawNode {
    let state = InitialState {
        hard_state: HardState { term: 1, vote: None },
        entries: vec![blank(1, 1)],
        membership: Membership::new([1, 2, 3], []),
        ..Default::default()
    };
    RawNode::new(Config::new(1), state, 1).unwrap()
}

fn acks(messages: &[Message]) -> usize {
    messages
        .iter()
        .filter(|m| {
            matches!(
                m.body,
                MessageBody::AppendEntriesResponse(AppendEntriesResponse::Success { .. })
                    | MessageBody::VoteResponse(VoteResponse { granted: true })
                    | MessageBody::InstallSnapshotResponse(_)
            )
        })
        .count()
}

/// A repeated AppendEntries whose entries are already handed to storage
/// (in a `Ready` not yet durable) adds no write of its own: its
/// acknowledgement must still wait, never leave in `messages`.
#[test]
fn an_ack_of_entries_written_by_an_earlier_pending_ready_is_held() {
    let mut node = follower();
    // The leader of the node's own term, already durable: only the entries
    // are at stake, not the term.
    node.step(append(2, 1, (1, 1), vec![blank(2, 1), blank(3, 1)], 0)).unwrap();
    let r1 = node.ready();
    assert!(r1.hard_state.is_none());
    assert_eq!(r1.entries.len(), 2);
    assert_eq!(acks(&r1.messages), 0);
    node.step(append(2, 1, (1, 1), vec![blank(2, 1), blank(3, 1)], 0)).unwrap();
    let r2 = node.ready();
    assert!(r2.entries.is_empty() && r2.hard_state.is_none(), "no write of its own");
    assert_eq!(acks(&r2.messages), 0, "an ack left before the write it vouches for");
    assert_eq!(acks(&r2.persisted_messages), 1);
    // The later number covers the earlier write: reported alone, it makes both durable.
    node.on_persisted(r2.number);
    assert_eq!(node.log().persisted(), 3);
}

/// A snapshot installed while an earlier write of entries it keeps is
/// pending: nothing after the snapshot is applied until the snapshot's own
/// `Ready` is durable, even when the earlier write is reported first.
#[test]
fn a_snapshot_installed_behind_a_pending_write_holds_what_follows_it() {
    let mut node = follower();
    let entries: Vec<Entry> = (2..=6).map(|i| blank(i, 2)).collect();
    node.step(append(2, 2, (1, 1), entries, 0)).unwrap();
    let r1 = node.ready();
    let data = SnapshotData::from(Bytes::from_static(b""));
    let chunk = InstallSnapshot {
        meta: SnapshotMeta { last: raft_core::LogId::new(2, 4), membership: Membership::new([1, 2, 3], []) },
        offset: 0,
        checksum: data.crc32(),
        data: Bytes::new(),
        done: true,
        total_len: 0,
    };
    node.step(Message { from: 2, to: 1, term: 2, body: MessageBody::InstallSnapshot(Box::new(chunk)) })
        .unwrap();
    // The leader commits everything it sent.
    node.step(append(2, 2, (6, 2), Vec::new(), 6)).unwrap();
    let r2 = node.ready();
    assert!(r2.snapshot.is_some());
    assert_eq!(acks(&r2.messages), 0);
    node.on_persisted(r1.number);
    let early = node.ready();
    assert!(early.committed_entries.is_empty(), "applied {:?} before the snapshot", early.committed_entries);
    node.on_persisted(r2.number);
    let applied: Vec<u64> = node.ready().committed_entries.iter().map(|e| e.index).collect();
    assert_eq!(applied, [5, 6]);
}

/// A leader deposed between `ready()` and `on_persisted`: its vote for the
/// new candidate waits for the `Ready` that carries it, and the report of
/// the leader's own earlier write does not release it.
#[test]
fn a_leader_deposed_before_its_write_is_durable_holds_its_new_vote() {
    let mut node = follower();
    node.campaign();
    let r = node.ready();
    node.on_persisted(r.number);
    // Pre-vote first (on by default), then the election.
    for _ in 0..2 {
        let ready = node.ready();
        node.on_persisted(ready.number);
        let term = node.term();
        let body = if node.role() == Role::PreCandidate {
            MessageBody::PreVoteResponse(VoteResponse { granted: true })
        } else {
            MessageBody::VoteResponse(VoteResponse { granted: true })
        };
        let term = if node.role() == Role::PreCandidate { term + 1 } else { term };
        node.step(Message { from: 2, to: 1, term, body }).unwrap();
    }
    assert_eq!(node.role(), Role::Leader);
    let leading = node.ready();
    assert!(!leading.entries.is_empty(), "the leader's first entry");
    let last = node.log().last_index();
    // A transfer campaign (TimeoutNow from this very leader, say, whose
    // answer was lost) overrides leader stickiness.
    let vote = VoteRequest { last_log_index: last, last_log_term: node.term(), leadership_transfer: true };
    let term = node.term() + 1;
    node.step(Message { from: 3, to: 1, term, body: MessageBody::Vote(vote) }).unwrap();
    assert_eq!(node.role(), Role::Follower);
    let voted = node.ready();
    assert!(voted.hard_state.is_some_and(|hs| hs.vote == Some(3)));
    assert_eq!(acks(&voted.messages), 0, "a vote left before it is durable");
    assert_eq!(acks(&voted.persisted_messages), 1);
    node.on_persisted(leading.number);
    // The term is not yet durable: whatever the node says now is held too.
    node.step(append(3, term, (last, term - 1), Vec::new(), 0)).unwrap();
    let after = node.ready();
    assert!(after.messages.is_empty(), "spoke in a term it may forget: {:?}", after.messages);
    // Stale and future numbers change nothing.
    node.on_persisted(leading.number);
    node.on_persisted(after.number + 10);
    node.step(append(3, term, (last, term - 1), Vec::new(), 0)).unwrap();
    assert!(node.ready().messages.is_empty());
    node.on_persisted(voted.number);
    node.step(append(3, term, (last, term - 1), Vec::new(), 0)).unwrap();
    let released = node.ready();
    assert_eq!(acks(&released.messages), 0, "an ack always waits");
    assert_eq!(acks(&released.persisted_messages), 1);
}
