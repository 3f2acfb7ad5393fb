//! The persist-before-apply and term-bound rules, each against the sequence of
//! inputs that once broke it (found in review).

use raft_core::{
    AppendEntries, Config, Entry, EntryPayload, HardState, InitError, InitialState, Membership, Message,
    MessageBody, RawNode, MAX_TERM,
};

fn blank(index: u64, term: u64) -> Entry {
    Entry { index, term, payload: EntryPayload::Blank }
}

fn append(from: u64, term: u64, prev: (u64, u64), entries: Vec<Entry>, commit: u64) -> Message {
    Message {
        from,
        to: 1,
        term,
        body: MessageBody::AppendEntries(AppendEntries {
            prev_log_index: prev.0,
            prev_log_term: prev.1,
            entries,
            leader_commit: commit,
        }),
    }
}

fn five_node_follower() -> RawNode {
    let state = InitialState {
        hard_state: HardState { term: 1, vote: None },
        entries: vec![blank(1, 1)],
        membership: Membership::new([1, 2, 3, 4, 5], []),
        ..Default::default()
    };
    RawNode::new(Config::new(1), state, 1).unwrap()
}

/// A write of entries that were later replaced and then appended again must
/// not report them durable while the write that removes them is pending:
/// otherwise they are applied, and a crash after the pending write leaves the
/// state machine ahead of the log.
#[test]
fn a_stale_persist_report_after_truncate_and_reappend_does_not_mark_entries_durable() {
    let mut node = five_node_follower();
    // Term 2: entries 2..3 of term 2 (write R1).
    node.step(append(2, 2, (1, 1), vec![blank(2, 2), blank(3, 2)], 0)).unwrap();
    let r1 = node.ready();
    // Term 3: another leader replaces index 2 (write R2).
    node.step(append(3, 3, (1, 1), vec![blank(2, 3)], 0)).unwrap();
    let _r2 = node.ready();
    // Term 4: the first leader's entries come back, and commit 4 (write R3).
    node.step(append(2, 4, (1, 1), vec![blank(2, 2), blank(3, 2), blank(4, 4)], 4)).unwrap();
    let _r3 = node.ready();
    // Only R1 is durable: the disk holds [1@1, 2@2, 3@2], but R2 will cut it.
    node.on_persisted(r1.number);
    let applied: Vec<u64> = node.ready().committed_entries.iter().map(|e| e.index).collect();
    assert_eq!(node.log().persisted(), 1);
    assert!(applied.is_empty(), "applied {applied:?} before they are durable");
}

/// A term beyond MAX_TERM from a peer is refused, so `term + 1` never overflows.
#[test]
fn a_term_beyond_max_term_from_a_peer_is_refused() {
    let mut node = five_node_follower();
    for term in [MAX_TERM + 1, u64::MAX - 1, u64::MAX] {
        let message =
            Message { from: 2, to: 1, term, body: MessageBody::HeartbeatResponse(Default::default()) };
        assert!(node.step(message).is_err(), "term {term}");
    }
    assert_eq!(node.term(), 1);
}

/// At MAX_TERM a node stops campaigning instead of wrapping its term.
#[test]
fn a_node_at_max_term_never_campaigns_past_it() {
    let mut node = five_node_follower();
    node.step(Message {
        from: 2,
        to: 1,
        term: MAX_TERM,
        body: MessageBody::HeartbeatResponse(Default::default()),
    })
    .unwrap();
    for _ in 0..3 {
        node.campaign();
        let _ = node.ready();
        assert_eq!(node.term(), MAX_TERM);
    }
}

/// A stored term beyond MAX_TERM is corruption, refused at start.
#[test]
fn a_stored_term_beyond_max_term_is_refused() {
    let state =
        InitialState { hard_state: HardState { term: u64::MAX - 1, vote: None }, ..Default::default() };
    let err = RawNode::new(Config::new(1), state, 1).unwrap_err();
    assert_eq!(err, InitError::TermTooLarge(u64::MAX - 1));
}

/// A stored snapshot or log at the top of the index range is corruption: it
/// is refused at start with a typed error, where `last + 1` overflowed (a
/// panic in debug builds, a wrapped index in release) before.
#[test]
fn a_stored_log_at_the_top_of_the_index_range_is_refused_not_a_panic() {
    use raft_core::{LogId, Snapshot, SnapshotMeta};
    let membership = Membership::new([1, 2, 3], []);
    let snapshot = |index| Snapshot {
        meta: SnapshotMeta { last: LogId::new(1, index), membership: membership.clone() },
        data: Default::default(),
    };
    let cases = [
        (Some(snapshot(u64::MAX)), Vec::new(), u64::MAX),
        (Some(snapshot(u64::MAX / 2)), Vec::new(), u64::MAX / 2),
        (Some(snapshot(u64::MAX - 2)), vec![blank(u64::MAX - 1, 1), blank(u64::MAX, 1)], u64::MAX),
    ];
    for (snapshot, entries, last) in cases {
        let state = InitialState {
            hard_state: HardState { term: 1, vote: None },
            snapshot,
            membership: membership.clone(),
            entries,
        };
        let result = RawNode::new(Config::new(1), state, 1).map(|_| ());
        assert_eq!(result, Err(InitError::IndexTooLarge(last)));
    }
    // Just below the bound, a node starts.
    let state = InitialState {
        hard_state: HardState { term: 1, vote: None },
        snapshot: Some(snapshot(u64::MAX / 2 - 1)),
        membership: membership.clone(),
        entries: Vec::new(),
    };
    assert!(RawNode::new(Config::new(1), state, 1).is_ok());
}
