//! A leader's snapshot, cut into chunks by `SnapshotData::slice` (pieces
//! joined up to `snapshot_chunk_bytes`), arrives at a follower as exactly the
//! same bytes with the same CRC, whatever the pieces' lengths (empty ones
//! included), the chunk budget (1 byte up to the largest a configuration
//! allows, `MAX_MESSAGE_BYTES`, more than any snapshot here) and the losses
//! and duplicates on the way (section 7). Slicing with budgets and offsets
//! up to `u64::MAX` is checked on `SnapshotData` itself (its unit tests).

use bytes::Bytes;
use proptest::prelude::*;
use raft_core::{
    Config, HardState, InitialState, LogId, Membership, Message, MessageBody, RawNode, Role, Snapshot,
    SnapshotData, SnapshotMeta, VoteResponse, MAX_MESSAGE_BYTES,
};

/// Node 1 of {1, 2}, leading term 2 with `data` as its snapshot at index 10.
fn leader(data: SnapshotData, chunk_bytes: u64) -> RawNode {
    let membership = Membership::new([1, 2], []);
    let meta = SnapshotMeta { last: LogId::new(1, 10), membership: membership.clone() };
    let state = InitialState {
        hard_state: HardState { term: 1, vote: None },
        snapshot: Some(Snapshot { meta, data }),
        membership,
        entries: Vec::new(),
    };
    let config =
        Config { pre_vote: false, check_quorum: false, snapshot_chunk_bytes: chunk_bytes, ..Config::new(1) };
    let mut node = RawNode::new(config, state, 7).unwrap();
    node.campaign();
    let ready = node.ready();
    node.on_persisted(ready.number);
    let body = MessageBody::VoteResponse(VoteResponse { granted: true });
    node.step(Message { from: 2, to: 1, term: node.term(), body }).unwrap();
    assert_eq!(node.role(), Role::Leader);
    node
}

/// A new node 2 of {1, 2}, with an empty log.
fn follower() -> RawNode {
    let state = InitialState { membership: Membership::new([1, 2], []), ..Default::default() };
    RawNode::new(Config::new(2), state, 9).unwrap()
}

/// Takes `node`'s output, reporting its writes durable at once; the snapshot
/// it asks to install, if any.
fn drain(node: &mut RawNode, out: &mut Vec<Message>) -> Option<Snapshot> {
    let mut installed = None;
    while node.has_ready() {
        let ready = node.ready();
        out.extend(ready.messages);
        node.on_persisted(ready.number);
        out.extend(ready.persisted_messages);
        installed = installed.or(ready.snapshot.map(|install| install.snapshot));
    }
    installed
}

/// Runs the leader and the follower until the follower installs a snapshot;
/// `faults` decides, chunk by chunk, to deliver (0), drop (1) or duplicate
/// (2) the first snapshot chunks sent. Returns it and the chunks sent.
fn transfer(data: SnapshotData, chunk_bytes: u64, faults: &[u8]) -> (Snapshot, usize) {
    let (mut leader, mut follower) = (leader(data, chunk_bytes), follower());
    let (mut chunks, mut idle) = (0, 0);
    // The faults are a prefix: a network that drops every chunk forever is
    // not one any protocol gets through.
    let mut faults = faults.iter().chain(std::iter::repeat(&0));
    let mut to_follower = Vec::new();
    drain(&mut leader, &mut to_follower);
    for _ in 0..200_000 {
        let mut to_leader = Vec::new();
        for message in std::mem::take(&mut to_follower) {
            let is_chunk = matches!(message.body, MessageBody::InstallSnapshot(_));
            let copies = match is_chunk.then(|| faults.next()).flatten() {
                Some(1) => 0,
                Some(2) => 2,
                _ => 1,
            };
            chunks += usize::from(is_chunk);
            for _ in 0..copies {
                let _ = follower.step(message.clone());
            }
            if let Some(snapshot) = drain(&mut follower, &mut to_leader) {
                return (snapshot, chunks);
            }
        }
        if to_leader.is_empty() {
            // Nothing in flight: heartbeats let the leader resend what was lost.
            idle += 1;
            assert!(idle < 1_000, "the transfer stalled");
            leader.tick();
        }
        for message in to_leader {
            let _ = leader.step(message);
        }
        drain(&mut leader, &mut to_follower);
    }
    panic!("no snapshot installed after 200,000 rounds");
}

/// Piece lengths: mostly tiny (chunks cross many boundaries), some empty,
/// a few around the follower's 64 KiB threshold for keeping a chunk whole.
fn piece_lens() -> impl Strategy<Value = Vec<usize>> {
    let len = prop_oneof![4 => 0usize..4, 3 => 0usize..300, 1 => 65_530usize..65_542];
    proptest::collection::vec(len, 0..12)
}

fn chunk_bytes() -> impl Strategy<Value = u64> {
    prop_oneof![Just(1), Just(2), 1u64..600, 65_530u64..65_542, Just(1 << 20), Just(MAX_MESSAGE_BYTES)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_follower_installs_exactly_the_leaders_bytes(
        lens in piece_lens(),
        chunk_bytes in chunk_bytes(),
        faults in proptest::collection::vec(prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)], 1..16),
    ) {
        let mut data = SnapshotData::new();
        for (i, len) in lens.iter().enumerate() {
            data.push(Bytes::from((0..*len).map(|j| (i * 31 + j) as u8).collect::<Vec<u8>>()));
        }
        // Large transfers byte by byte take too long; they say nothing new.
        prop_assume!(chunk_bytes > 2 || data.len() < 5_000);
        let (snapshot, chunks) = transfer(data.clone(), chunk_bytes, &faults);
        prop_assert_eq!(snapshot.meta.last, LogId::new(1, 10));
        prop_assert_eq!(snapshot.data.len(), data.len());
        prop_assert_eq!(snapshot.data.crc32(), data.crc32());
        prop_assert_eq!(snapshot.data.to_vec(), data.to_vec());
        // Without losses, one chunk per `chunk_bytes` (one, if empty).
        if faults.iter().all(|&f| f == 0) {
            prop_assert_eq!(chunks as u64, data.len().div_ceil(chunk_bytes).max(1));
        }
    }
}
