//! Fuzzing of the decoders a peer's bytes reach: the frame decoder with
//! `Envelope`s (Raft messages and forwarded requests), and the handshake
//! decoder. Arbitrary bytes, and streams of valid frames mutated (bytes
//! overwritten, inserted, deleted, the stream cut short) and fed in
//! arbitrary pieces, must never panic, and every decode must end. Unmutated streams must decode back to what was encoded,
//! however they are cut into pieces.
//!
//! CI runs a few thousand cases; run it long with
//!
//! ```sh
//! RAFT_FUZZ_CASES=2000000 cargo test --release -p raft-net-tcp --test fuzz -- --nocapture
//! ```
//!
//! A failure prints the smallest input proptest found that fails.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use raft_core::codec::{encode_frame, FrameDecoder};
use raft_core::runtime::{Envelope, Forward, ForwardOutcome, Forwarded};
use raft_core::{
    AppendEntries, AppendEntriesResponse, Entry, EntryPayload, Heartbeat, HeartbeatResponse, InstallSnapshot,
    InstallSnapshotResponse, LogId, Membership, Message, MessageBody, ReadIndexRequest, ReadState,
    SnapshotMeta, VoteRequest, VoteResponse,
};
use raft_net_tcp::handshake::{self, Channel, Handshake, Hello, Refusal};
use std::sync::atomic::{AtomicU64, Ordering};

/// Cases per property: `RAFT_FUZZ_CASES`, or a default that keeps CI quick.
fn cases() -> u32 {
    std::env::var("RAFT_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1500)
}

fn runner() -> TestRunner {
    TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() })
}

/// An envelope of any kind, its fields drawn from `numbers` and `payload`.
fn message(kind: u8, n: [u64; 4], payload: Vec<u8>) -> Envelope {
    let [a, b, c, d] = n;
    let forward = |body: Forward| Envelope::Forward(Forwarded { from: d, to: c, term: a ^ b, body });
    let outcome = || match d % 6 {
        0 => ForwardOutcome::Applied(Bytes::from(payload.clone())),
        1 => ForwardOutcome::NotLeader { leader: (b % 2 == 0).then_some(b) },
        2 => ForwardOutcome::NotApplied,
        3 => ForwardOutcome::OutcomeUnknown,
        4 => ForwardOutcome::Refused(String::from_utf8_lossy(&payload).into_owned()),
        _ => ForwardOutcome::ResponseLost(String::from_utf8_lossy(&payload).into_owned()),
    };
    match kind % 15 {
        12 => return forward(Forward::Proposal { id: a, command: Bytes::from(payload.clone()) }),
        13 => return forward(Forward::Response { id: a, outcome: outcome() }),
        _ => {}
    }
    let membership = Membership::new([a % 7 + 1, b % 7 + 1], [c % 5 + 8]);
    let entry = |i: u64| Entry {
        term: a,
        index: b.wrapping_add(i),
        payload: match (c + i) % 3 {
            0 => EntryPayload::Blank,
            1 => EntryPayload::Command(Bytes::from(payload.clone())),
            _ => EntryPayload::Membership(Box::new(membership.clone())),
        },
    };
    let vote = VoteRequest { last_log_index: a, last_log_term: b, leadership_transfer: c % 2 == 0 };
    let body = match kind % 15 {
        0 => MessageBody::PreVote(vote),
        1 => MessageBody::PreVoteResponse(VoteResponse { granted: a % 2 == 0 }),
        2 => MessageBody::Vote(vote),
        3 => MessageBody::VoteResponse(VoteResponse { granted: b % 2 == 0 }),
        4 => MessageBody::AppendEntries(AppendEntries {
            prev_log_index: a,
            prev_log_term: b,
            entries: (0..d % 5).map(entry).collect(),
            leader_commit: c,
        }),
        5 if a % 2 == 0 => {
            MessageBody::AppendEntriesResponse(AppendEntriesResponse::Success { match_index: b })
        }
        5 => MessageBody::AppendEntriesResponse(AppendEntriesResponse::Conflict {
            rejected_index: a,
            hint_index: b,
            hint_term: c,
        }),
        6 => MessageBody::Heartbeat(Heartbeat { commit: a, round: b }),
        7 => MessageBody::HeartbeatResponse(HeartbeatResponse { round: a }),
        8 => MessageBody::TimeoutNow,
        9 => MessageBody::ReadIndex(ReadIndexRequest { ctx: a, lease: b % 2 == 0 }),
        10 => MessageBody::ReadIndexResponse(ReadState { ctx: a, index: b }),
        11 => MessageBody::InstallSnapshot(Box::new(InstallSnapshot {
            meta: SnapshotMeta { last: LogId::new(a, b), membership },
            offset: c,
            done: d % 2 == 0,
            total_len: c.wrapping_add(payload.len() as u64),
            checksum: (a ^ b) as u32,
            data: Bytes::from(payload),
        })),
        _ => MessageBody::InstallSnapshotResponse(InstallSnapshotResponse {
            last: LogId::new(a, b),
            next_offset: c,
            installed: d % 2 == 0,
        }),
    };
    Envelope::Raft(Message { from: d, to: c, term: a ^ b, body })
}

fn messages() -> impl Strategy<Value = Vec<Envelope>> {
    let one = (any::<u8>(), any::<[u64; 4]>(), proptest::collection::vec(any::<u8>(), 0..64))
        .prop_map(|(kind, n, payload)| message(kind, n, payload));
    proptest::collection::vec(one, 1..6)
}

fn handshakes() -> impl Strategy<Value = Vec<Handshake>> {
    let one =
        (any::<u8>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(kind, cluster, from, to)| {
            match kind % 7 {
                0 => Handshake::Hello(Hello::new(cluster, from, to, Channel::Messages)),
                1 => Handshake::Hello(Hello::new(cluster, from, to, Channel::Snapshots)),
                2 => Handshake::Refused(Refusal::NotRaft),
                3 => Handshake::Refused(Refusal::WrongCluster),
                4 => Handshake::Refused(Refusal::WrongNode),
                5 => Handshake::Refused(Refusal::BadSender),
                _ => Handshake::Refused(Refusal::UnknownSender),
            }
        });
    proptest::collection::vec(one, 1..3)
}

/// One change to a byte stream.
#[derive(Debug, Clone)]
enum Mutation {
    Overwrite(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
    /// Overwrites the four bytes at a position with a length claim.
    Length(usize, u32),
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let one = prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Overwrite(at, byte)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert(at, byte)),
        1 => any::<usize>().prop_map(Mutation::Delete),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), prop_oneof![any::<u32>(), 0u32..64]).prop_map(|(at, len)| Mutation::Length(at, len)),
    ];
    proptest::collection::vec(one, 1..5)
}

fn mutate(bytes: &mut Vec<u8>, mutations: &[Mutation]) {
    for mutation in mutations {
        let len = bytes.len();
        if len == 0 {
            return;
        }
        match *mutation {
            Mutation::Overwrite(at, byte) => bytes[at % len] = byte,
            Mutation::Insert(at, byte) => bytes.insert(at % (len + 1), byte),
            Mutation::Delete(at) => {
                bytes.remove(at % len);
            }
            Mutation::Truncate(at) => bytes.truncate(at % len),
            Mutation::Length(at, claim) => {
                let at = at % len;
                for (i, byte) in claim.to_le_bytes().into_iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(at + i) {
                        *slot = byte;
                    }
                }
            }
        }
    }
}

/// Feeds `stream` to `decode` in pieces cut at `cuts`, as a socket would
/// deliver it; returns what decoded, stopping at the first error (where
/// the transport would close the connection).
fn feed<T, E>(
    stream: &[u8],
    cuts: &[usize],
    mut decode: impl FnMut(&mut BytesMut) -> Result<Option<T>, E>,
) -> Result<Vec<T>, E> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.push(stream.len());
    points.sort_unstable();
    let mut buffer = BytesMut::new();
    let mut decoded = Vec::new();
    let mut start = 0;
    for end in points {
        buffer.extend_from_slice(&stream[start..end]);
        start = end;
        // Each successful decode consumes bytes, so this loop ends.
        while let Some(value) = decode(&mut buffer)? {
            decoded.push(value);
        }
    }
    Ok(decoded)
}

/// Decoder runs, per test.
#[derive(Default)]
struct Executions(AtomicU64);

impl Executions {
    fn count(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn report(&self, what: &str, started: std::time::Instant) {
        eprintln!(
            "fuzz {what}: {} cases, {} decoder runs, no panic ({:.1?})",
            cases(),
            self.0.load(Ordering::Relaxed),
            started.elapsed()
        );
    }
}

fn decode_messages(stream: &[u8], cuts: &[usize]) -> Result<Vec<Envelope>, raft_core::codec::FrameError> {
    let decoder = FrameDecoder::new(1 << 20);
    feed(stream, cuts, |buffer| decoder.decode::<Envelope>(buffer))
}

fn decode_handshakes(stream: &[u8], cuts: &[usize]) -> Result<Vec<Handshake>, handshake::HandshakeError> {
    feed(stream, cuts, handshake::decode)
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(any::<usize>(), 0..6)
}

#[test]
fn arbitrary_bytes_never_panic_either_decoder() {
    let (started, runs) = (std::time::Instant::now(), Executions::default());
    let strategy = (proptest::collection::vec(any::<u8>(), 0..2048), cuts());
    runner()
        .run(&strategy, |(bytes, cuts)| {
            let _ = decode_messages(&bytes, &cuts);
            let _ = decode_handshakes(&bytes, &cuts);
            let _ = raft_core::codec::decode::<Envelope>(&bytes);
            (0..3).for_each(|_| runs.count());
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    runs.report("arbitrary bytes", started);
}

#[test]
fn mutated_message_frames_never_panic_and_intact_ones_round_trip() {
    let (started, runs) = (std::time::Instant::now(), Executions::default());
    let strategy = (messages(), mutations(), cuts());
    runner()
        .run(&strategy, |(messages, mutations, cuts)| {
            let mut stream = Vec::new();
            for message in &messages {
                encode_frame(message, &mut stream).expect("a message encodes");
            }
            prop_assert_eq!(decode_messages(&stream, &cuts).ok(), Some(messages));
            mutate(&mut stream, &mutations);
            let _ = decode_messages(&stream, &cuts);
            (0..2).for_each(|_| runs.count());
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    runs.report("mutated message frames", started);
}

#[test]
fn mutated_handshakes_never_panic_and_intact_ones_round_trip() {
    let (started, runs) = (std::time::Instant::now(), Executions::default());
    let strategy = (handshakes(), mutations(), cuts());
    runner()
        .run(&strategy, |(handshakes, mutations, cuts)| {
            let mut stream = Vec::new();
            for handshake in &handshakes {
                stream.extend_from_slice(&handshake::encode(handshake));
            }
            prop_assert_eq!(decode_handshakes(&stream, &cuts).ok(), Some(handshakes));
            mutate(&mut stream, &mutations);
            (0..2).for_each(|_| runs.count());
            if let Ok(decoded) = decode_handshakes(&stream, &cuts) {
                // Whatever decodes is checked like a received Hello: never a panic.
                for handshake in decoded {
                    if let Handshake::Hello(hello) = handshake {
                        let _ = hello.check(1, 2);
                    }
                }
            }
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    runs.report("mutated handshakes", started);
}
