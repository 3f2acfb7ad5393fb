//! No input from a peer can make a node panic or break its invariants: random
//! and hostile messages (absurd terms and indexes, gaps, lies about logs) are
//! stepped into nodes in every role, interleaved with ticks, `ready` and
//! arbitrary persistence reports.

use bytes::Bytes;
use proptest::prelude::*;
use raft_core::{
    AppendEntries, AppendEntriesResponse, Config, Entry, EntryPayload, HardState, Heartbeat, InitialState,
    Membership, Message, MessageBody, RawNode, Role, VoteRequest, VoteResponse,
};

/// Numbers that are small (plausible) or extreme (hostile).
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..12, 1 => Just(u64::MAX), 1 => Just(u64::MAX - 1), 1 => any::<u64>()]
}

fn entry() -> impl Strategy<Value = Entry> {
    (number(), number(), prop::bool::ANY).prop_map(|(term, index, blank)| Entry {
        term,
        index,
        payload: if blank { EntryPayload::Blank } else { EntryPayload::Command(Bytes::from_static(b"x")) },
    })
}

/// AppendEntries with any entries at any indexes.
fn any_append_entries() -> impl Strategy<Value = MessageBody> {
    (number(), number(), prop::collection::vec(entry(), 0..4), number()).prop_map(|(i, t, entries, c)| {
        MessageBody::AppendEntries(AppendEntries {
            prev_log_index: i,
            prev_log_term: t,
            entries,
            leader_commit: c,
        })
    })
}

/// AppendEntries of consecutive entries after `prev_log_index`.
fn consecutive_append_entries() -> impl Strategy<Value = MessageBody> {
    (number(), number(), prop::collection::vec(number(), 0..4), number()).prop_map(|(i, t, terms, c)| {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(k, &term)| Entry {
                term,
                index: i.wrapping_add(k as u64 + 1),
                payload: EntryPayload::Blank,
            })
            .collect();
        MessageBody::AppendEntries(AppendEntries {
            prev_log_index: i,
            prev_log_term: t,
            entries,
            leader_commit: c,
        })
    })
}

/// A snapshot chunk of any offset, length and checksum.
fn install_snapshot() -> impl Strategy<Value = MessageBody> {
    (number(), number(), number(), 0usize..20, prop::bool::ANY, 0u64..4, number(), any::<u32>()).prop_map(
        |(term, index, offset, len, done, voters, total_len, checksum)| {
            MessageBody::InstallSnapshot(Box::new(raft_core::InstallSnapshot {
                meta: raft_core::SnapshotMeta {
                    last: raft_core::LogId::new(term, index),
                    membership: Membership::new(1..=voters, []),
                },
                offset,
                data: Bytes::from(vec![7u8; len]),
                done,
                total_len,
                checksum,
            }))
        },
    )
}

fn body() -> impl Strategy<Value = MessageBody> {
    let vote_request = || {
        (number(), number(), prop::bool::ANY).prop_map(|(i, t, transfer)| VoteRequest {
            last_log_index: i,
            last_log_term: t,
            leadership_transfer: transfer,
        })
    };
    let vote_response = || prop::bool::ANY.prop_map(|granted| VoteResponse { granted });
    prop_oneof![
        vote_request().prop_map(MessageBody::PreVote),
        vote_request().prop_map(MessageBody::Vote),
        vote_response().prop_map(MessageBody::PreVoteResponse),
        vote_response().prop_map(MessageBody::VoteResponse),
        any_append_entries(),
        // Consecutive entries after prev: the shape an honest leader sends, with hostile terms.
        consecutive_append_entries(),
        number().prop_map(|m| MessageBody::AppendEntriesResponse(AppendEntriesResponse::Success {
            match_index: m
        })),
        (number(), number(), number()).prop_map(|(r, i, t)| {
            MessageBody::AppendEntriesResponse(AppendEntriesResponse::Conflict {
                rejected_index: r,
                hint_index: i,
                hint_term: t,
            })
        }),
        (number(), number()).prop_map(|(commit, round)| MessageBody::Heartbeat(Heartbeat { commit, round })),
        number().prop_map(|round| MessageBody::HeartbeatResponse(raft_core::HeartbeatResponse { round })),
        Just(MessageBody::TimeoutNow),
        (number(), prop::bool::ANY)
            .prop_map(|(ctx, lease)| MessageBody::ReadIndex(raft_core::ReadIndexRequest { ctx, lease })),
        (number(), number())
            .prop_map(|(ctx, index)| MessageBody::ReadIndexResponse(raft_core::ReadState { ctx, index })),
        install_snapshot(),
        (number(), number(), number(), prop::bool::ANY).prop_map(|(term, index, next_offset, installed)| {
            MessageBody::InstallSnapshotResponse(raft_core::InstallSnapshotResponse {
                last: raft_core::LogId::new(term, index),
                next_offset,
                installed,
            })
        }),
    ]
}

#[derive(Debug, Clone)]
enum Input {
    Step { from: u64, to_me: bool, term: u64, body: MessageBody },
    Tick,
    Propose,
    Ready,
    Persisted(u64),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        6 => (0u64..6, prop::bool::weighted(0.95), number(), body())
            .prop_map(|(from, to_me, term, body)| Input::Step { from, to_me, term, body }),
        2 => Just(Input::Tick),
        1 => Just(Input::Propose),
        2 => Just(Input::Ready),
        1 => (0u64..40).prop_map(Input::Persisted),
    ]
}

/// Node 1 of {1, 2, 3} with a short log, made `role` by honest messages first.
fn node(role: Role) -> RawNode {
    let entries =
        (1..=5).map(|i| Entry { term: 1 + i / 3, index: i, payload: EntryPayload::Blank }).collect();
    let state = InitialState {
        hard_state: HardState { term: 2, vote: None },
        entries,
        membership: Membership::new([1, 2, 3], []),
        ..Default::default()
    };
    let mut node = RawNode::new(Config::new(1), state, 7).unwrap();
    if role != Role::Follower {
        node.campaign();
    }
    let grant = |node: &mut RawNode, pre: bool| {
        let term = if pre { node.term() + 1 } else { node.term() };
        let body = VoteResponse { granted: true };
        let body = if pre { MessageBody::PreVoteResponse(body) } else { MessageBody::VoteResponse(body) };
        node.step(Message { from: 2, to: 1, term, body }).unwrap();
    };
    if matches!(role, Role::Candidate | Role::Leader) {
        grant(&mut node, true);
    }
    if role == Role::Leader {
        // The candidate's term and vote become durable; then a vote arrives.
        let ready = node.ready();
        node.on_persisted(ready.number);
        grant(&mut node, false);
    }
    assert_eq!(node.role(), role);
    node
}

fn check_invariants(node: &RawNode) {
    let log = node.log();
    assert!(log.applied() <= log.committed(), "applied {} > committed {}", log.applied(), log.committed());
    assert!(log.committed() <= log.last_index());
    assert!(log.persisted() <= log.last_index());
    assert!(log.last_term() <= node.term());
    if let Some(progress) = node.progress() {
        for pr in progress.values() {
            assert!(pr.match_index() < pr.next_index());
            assert!(pr.next_index() <= log.last_index() + 1);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn hostile_messages_never_panic_or_break_invariants(
        role in prop_oneof![Just(Role::Follower), Just(Role::PreCandidate), Just(Role::Candidate), Just(Role::Leader)],
        inputs in prop::collection::vec(input(), 1..40),
    ) {
        let mut node = node(role);
        for input in inputs {
            match input {
                Input::Step { from, to_me, term, body } => {
                    let to = if to_me { 1 } else { 9 };
                    let _ = node.step(Message { from, to, term, body });
                }
                Input::Tick => node.tick(),
                Input::Propose => { let _ = node.propose(Bytes::from_static(b"p")); }
                Input::Ready => { let _ = node.ready(); }
                Input::Persisted(n) => node.on_persisted(n),
            }
            check_invariants(&node);
        }
    }
}

#[test]
fn malformed_appends_are_refused_without_changing_state() {
    let mut node = node(Role::Follower);
    let before = (node.term(), node.log().last_log_id());
    let gap = AppendEntries {
        prev_log_index: 5,
        prev_log_term: 2,
        entries: vec![Entry { term: 2, index: 7, payload: EntryPayload::Blank }],
        leader_commit: 0,
    };
    let err =
        node.step(Message { from: 2, to: 1, term: 3, body: MessageBody::AppendEntries(gap) }).unwrap_err();
    assert!(err.to_string().contains("not consecutive"), "{err}");
    assert_eq!((node.term(), node.log().last_log_id()), before);

    let max_term =
        Message { from: 2, to: 1, term: u64::MAX, body: MessageBody::HeartbeatResponse(Default::default()) };
    assert!(node.step(max_term).is_err());
    assert_eq!(node.term(), 2);
}

fn snapshot_chunk(last: raft_core::LogId, membership: Membership) -> Message {
    Message {
        from: 2,
        to: 1,
        term: 3,
        body: MessageBody::InstallSnapshot(Box::new(raft_core::InstallSnapshot {
            meta: raft_core::SnapshotMeta { last, membership },
            offset: 0,
            data: Bytes::from_static(b"s"),
            done: true,
            total_len: 1,
            checksum: crc32fast::hash(b"s"),
        })),
    }
}

/// InstallSnapshot is validated like AppendEntries: an index that would
/// overflow, a term beyond the leader's, or a configuration without voters
/// is refused, and nothing changes. (From review.)
#[test]
fn malformed_snapshots_are_refused_without_changing_state() {
    let mut node = node(Role::Follower);
    let before = (node.term(), node.log().last_log_id(), node.membership().clone());
    for (last, membership) in [
        (raft_core::LogId::new(1, u64::MAX), Membership::new([1, 2, 3], [])),
        (raft_core::LogId::new(99, 5), Membership::new([1, 2, 3], [])),
        (raft_core::LogId::new(1, 5), Membership::new([], [])),
    ] {
        assert!(node.step(snapshot_chunk(last, membership)).is_err());
        let _ = node.ready();
        assert_eq!((node.term(), node.log().last_log_id(), node.membership().clone()), before);
    }
}

fn chunk_of(offset: u64, data: &'static [u8], done: bool, total_len: u64, checksum: u32) -> Message {
    Message {
        from: 2,
        to: 1,
        term: 3,
        body: MessageBody::InstallSnapshot(Box::new(raft_core::InstallSnapshot {
            meta: raft_core::SnapshotMeta {
                last: raft_core::LogId::new(2, 10),
                membership: Membership::new([1, 2, 3], []),
            },
            offset,
            data: Bytes::from_static(data),
            done,
            total_len,
            checksum,
        })),
    }
}

/// What a follower answered to snapshot chunks, and whether it installs one.
fn snapshot_answers(node: &mut RawNode) -> (Vec<(u64, bool)>, bool) {
    let ready = node.ready();
    let answers = ready
        .messages
        .iter()
        .chain(&ready.persisted_messages)
        .filter_map(|m| match &m.body {
            MessageBody::InstallSnapshotResponse(r) => Some((r.next_offset, r.installed)),
            _ => None,
        })
        .collect();
    (answers, ready.snapshot.is_some())
}

/// Issue 10: a snapshot is installed only if the whole matches the length
/// and checksum its chunks announce; otherwise the follower discards what it
/// gathered and asks again from offset 0.
#[test]
fn snapshots_that_do_not_match_their_length_or_checksum_are_never_installed() {
    let mut node = node(Role::Follower);
    let crc = crc32fast::hash(b"abcd");
    // A wrong checksum.
    node.step(chunk_of(0, b"ab", false, 4, crc ^ 1)).unwrap();
    node.step(chunk_of(2, b"cd", true, 4, crc ^ 1)).unwrap();
    assert_eq!(snapshot_answers(&mut node), (vec![(2, false), (0, false)], false));
    // Done before the announced length.
    node.step(chunk_of(0, b"ab", true, 4, crc)).unwrap();
    assert_eq!(snapshot_answers(&mut node), (vec![(0, false)], false));
    // A chunk of another announced snapshot does not continue the buffer.
    node.step(chunk_of(0, b"ab", false, 4, crc)).unwrap();
    node.step(chunk_of(2, b"cd", true, 4, crc ^ 1)).unwrap();
    assert_eq!(snapshot_answers(&mut node), (vec![(2, false), (0, false)], false));
    // A chunk at offset 0 starts over, even mid-transfer.
    node.step(chunk_of(0, b"ab", false, 4, crc)).unwrap();
    node.step(chunk_of(0, b"ab", false, 4, crc)).unwrap();
    node.step(chunk_of(2, b"cd", true, 4, crc)).unwrap();
    assert_eq!(snapshot_answers(&mut node), (vec![(2, false), (2, false), (4, true)], true));
    assert_eq!(node.snapshot_last(), raft_core::LogId::new(2, 10));
}

/// Issue 10: a chunk announcing a snapshot larger than `max_snapshot_bytes`,
/// or running past the length it announces, is refused on its face.
#[test]
fn snapshot_chunks_with_impossible_lengths_are_refused() {
    let mut node = node(Role::Follower);
    let before = (node.term(), node.log().last_log_id());
    for chunk in [
        chunk_of(0, b"ab", true, u64::MAX, 0),
        chunk_of(0, b"abc", true, 2, 0),
        chunk_of(u64::MAX, b"a", true, 4, 0),
    ] {
        assert!(node.step(chunk).is_err());
        assert_eq!(snapshot_answers(&mut node), (vec![], false));
        assert_eq!((node.term(), node.log().last_log_id()), before);
    }
}

/// A leader that sends its snapshot one byte per chunk must not make the
/// follower hold one `Bytes` (a handle and an allocation, tens of bytes) per
/// byte: `max_snapshot_bytes` is what bounds a follower's memory, and pieces
/// kept as they arrived would multiply it by the per-piece overhead. The
/// follower gathers short chunks into pieces of its own.
#[test]
fn a_snapshot_sent_byte_by_byte_is_not_held_byte_by_byte() {
    let mut node = node(Role::Follower);
    let bytes: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
    let crc = crc32fast::hash(&bytes);
    let total = bytes.len() as u64;
    for (at, byte) in bytes.iter().enumerate() {
        let mut chunk = chunk_of(at as u64, b"", at as u64 + 1 == total, total, crc);
        if let MessageBody::InstallSnapshot(install) = &mut chunk.body {
            install.data = Bytes::copy_from_slice(std::slice::from_ref(byte));
        }
        node.step(chunk).unwrap();
    }
    let ready = node.ready();
    let snapshot = ready.snapshot.expect("the whole snapshot arrived and is installed").snapshot;
    assert_eq!(snapshot.data.to_vec(), bytes);
    assert!(
        snapshot.data.pieces().len() <= 16,
        "{} bytes held in {} pieces",
        total,
        snapshot.data.pieces().len()
    );
}

/// Chunks long and short, in any mix, install exactly the bytes sent: the
/// long ones kept as pieces, the short ones gathered between them.
#[test]
fn a_snapshot_of_long_and_short_chunks_installs_exactly_its_bytes() {
    let mut node = node(Role::Follower);
    let lens = [1usize, 70_000, 3, 65_536, 65_535, 2, 10];
    let total: usize = lens.iter().sum();
    let bytes: Vec<u8> = (0..total).map(|i| (i * 7 % 253) as u8).collect();
    let crc = crc32fast::hash(&bytes);
    let mut at = 0;
    for len in lens {
        let mut chunk = chunk_of(at as u64, b"", at + len == total, total as u64, crc);
        if let MessageBody::InstallSnapshot(install) = &mut chunk.body {
            install.data = Bytes::copy_from_slice(&bytes[at..at + len]);
        }
        node.step(chunk).unwrap();
        at += len;
    }
    let snapshot = node.ready().snapshot.expect("installed").snapshot;
    assert_eq!(snapshot.data.to_vec(), bytes);
    let pieces: Vec<usize> = snapshot.data.pieces().iter().map(Bytes::len).collect();
    assert_eq!(pieces, vec![1, 70_000, 3, 65_536, 65_537, 10]);
}
