//! Every message a node sends fits the smallest shipped frame limit
//! (raft-net-quic's default, 16 MiB = 2 * `MAX_MESSAGE_BYTES`), whatever a
//! client proposes: `Config::validate` caps the budgets, and these cases
//! check what the budgets alone do not cover (found in review of the store
//! contract change): a single entry, which is sent whole however large, and
//! configuration entries, whose size estimate left out their addresses.
#![cfg(feature = "codec")]

use bytes::Bytes;
use raft_core::codec::encode_frame;
use raft_core::{
    AppendEntriesResponse, Config, Entry, EntryPayload, HardState, InitialState, Membership, Message,
    MessageBody, ProposeError, RawNode, Role, VoteResponse, MAX_MESSAGE_BYTES,
};

/// Node 1 of {1, 2}, leading term 2, its first entries durable.
fn leader() -> RawNode {
    let state = InitialState {
        hard_state: HardState { term: 1, vote: None },
        membership: Membership::new([1, 2], []),
        ..Default::default()
    };
    let config = Config { pre_vote: false, check_quorum: false, ..Config::new(1) };
    let mut node = RawNode::new(config, state, 7).unwrap();
    node.campaign();
    let ready = node.ready();
    node.on_persisted(ready.number);
    let body = MessageBody::VoteResponse(VoteResponse { granted: true });
    node.step(Message { from: 2, to: 1, term: node.term(), body }).unwrap();
    assert_eq!(node.role(), Role::Leader);
    drain(&mut node);
    // Node 2 holds the leader's log: the leader replicates to it (not
    // probing), so a proposal is sent at once.
    let match_index = node.log().last_index();
    let body = MessageBody::AppendEntriesResponse(AppendEntriesResponse::Success { match_index });
    node.step(Message { from: 2, to: 1, term: node.term(), body }).unwrap();
    drain(&mut node);
    node
}

/// Everything `node` sends, its writes reported durable at once.
fn drain(node: &mut RawNode) -> Vec<Message> {
    let mut out = Vec::new();
    while node.has_ready() {
        let ready = node.ready();
        out.extend(ready.messages);
        node.on_persisted(ready.number);
        out.extend(ready.persisted_messages);
    }
    out
}

/// The largest frame among `messages`, in bytes.
fn largest_frame(messages: &[Message]) -> u64 {
    let mut largest = 0;
    for message in messages {
        let mut frame = Vec::new();
        let len = encode_frame(message, &mut frame).expect("a message the core sends encodes");
        largest = largest.max(len as u64);
    }
    largest
}

/// A command too large for any frame (17 MiB) was appended and sent, alone,
/// in an AppendEntries over 16 MiB that a QUIC peer never receives: the
/// leader resends it forever and nothing after it commits. It is refused
/// with a typed error instead, and nothing is sent for it.
#[test]
fn a_command_too_large_for_a_frame_is_refused_not_sent_forever() {
    let mut node = leader();
    let last = node.log().last_index();
    let command = Bytes::from(vec![0xA5; (2 * MAX_MESSAGE_BYTES + (1 << 20)) as usize]);
    let result = node.propose(command);
    let sent = drain(&mut node);
    assert!(!sent.is_empty() || result.is_err(), "an accepted proposal is sent at once");
    let largest = largest_frame(&sent);
    assert!(largest <= 2 * MAX_MESSAGE_BYTES, "a frame of {largest} bytes was sent");
    assert!(
        matches!(result, Err(ProposeError::CommandTooLarge { max: MAX_MESSAGE_BYTES, .. })),
        "{result:?}"
    );
    assert_eq!(node.log().last_index(), last, "nothing was appended");
}

/// At the boundary: a command whose entry is exactly `MAX_MESSAGE_BYTES` is
/// replicated, in a frame within twice that; one byte more is refused.
#[test]
fn a_command_at_the_maximum_is_replicated_within_the_frame_limit() {
    let mut node = leader();
    let header = Entry { index: 0, term: 0, payload: EntryPayload::Command(Bytes::new()) }.size();
    let fits = Bytes::from(vec![7; (MAX_MESSAGE_BYTES - header) as usize]);
    let id = node.propose(fits).expect("an entry of MAX_MESSAGE_BYTES is accepted");
    let sent = drain(&mut node);
    assert!(
        sent.iter().any(|m| matches!(&m.body, MessageBody::AppendEntries(a)
            if a.entries.iter().any(|e| e.index == id.index))),
        "the entry is sent"
    );
    let largest = largest_frame(&sent);
    assert!(largest <= 2 * MAX_MESSAGE_BYTES, "a frame of {largest} bytes was sent");
    let over = Bytes::from(vec![7; (MAX_MESSAGE_BYTES - header + 1) as usize]);
    let refused = node.propose(over);
    let expected = ProposeError::CommandTooLarge { size: MAX_MESSAGE_BYTES + 1, max: MAX_MESSAGE_BYTES };
    assert_eq!(refused, Err(expected));
}

/// `Entry::size` is what the byte budgets count: it must not be below an
/// entry's encoded length, or a message within `max_bytes_per_msg` can
/// exceed the frame the budget was chosen for. A configuration of 100
/// members with their addresses was counted as 824 bytes (8 per voter and
/// learner) while it encodes to 5,508: 1,024 such entries (the default
/// `max_entries_per_msg`) were a 5.6 MB message "within" a 1 MiB budget,
/// and under the 8 MiB maximum with more entries allowed, over 16 MiB.
#[test]
fn an_entry_size_is_never_below_its_encoded_length() {
    let addressed = (1..=100).fold(Membership::new(1..=60, 61..=100), |m, id| {
        m.with_address(id, format!("raft-node-{id:03}.a-long-cluster-domain.example.com:7000"))
    });
    let joint =
        Membership { outgoing: (1..=50).collect(), learners_next: (41..=50).collect(), ..addressed.clone() };
    let payloads = [
        ("blank", EntryPayload::Blank),
        ("empty command", EntryPayload::Command(Bytes::new())),
        ("command of 300 bytes", EntryPayload::Command(Bytes::from(vec![1; 300]))),
        ("command of 70,000 bytes", EntryPayload::Command(Bytes::from(vec![1; 70_000]))),
        ("one voter", EntryPayload::Membership(Box::new(Membership::new([1], [])))),
        ("100 addressed members", EntryPayload::Membership(Box::new(addressed))),
        ("joint, 100 addressed members", EntryPayload::Membership(Box::new(joint))),
    ];
    for (what, payload) in payloads {
        for (index, term) in [(1, 1), (1 << 40, 1 << 40), (u64::MAX / 2, u64::MAX / 2)] {
            let entry = Entry { index, term, payload: payload.clone() };
            let encoded = raft_core::codec::encode(&entry).expect("an entry encodes").len() as u64;
            let size = entry.size();
            assert!(size >= encoded, "{what} at {index}: size {size} < encoded {encoded}");
        }
    }
}
