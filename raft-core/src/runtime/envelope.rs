//! What one runtime sends another over its [`super::Transport`]: an
//! [`Envelope`], holding either a protocol [`Message`] for the peer's
//! [`crate::RawNode`] or a client request the runtimes forward between
//! themselves ([`Forwarded`]), which the protocol never sees.
//!
//! The two are apart on purpose: [`crate::MessageBody`] is exactly Raft's
//! messages, so the protocol, its durability gate and the simulator know
//! nothing of forwarding, and the runtime's wire says for itself which
//! envelopes go to the core and which the runtime handles. Transports carry
//! envelopes without looking inside, but for [`Envelope::from`],
//! [`Envelope::to`] and [`Envelope::kind`] (and, to route snapshot chunks
//! apart, [`Envelope::is_snapshot_chunk`]).

use crate::{Entry, Message, MessageBody, NodeId, Term};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// What a runtime sends over its transport, and what a transport delivers
/// into the peer's [`super::Inbox`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Envelope {
    /// A Raft message, from one node's [`crate::RawNode`] to another's: the
    /// receiving runtime steps it ([`crate::RawNode::step`]).
    Raft(Message),
    /// A client request forwarded between runtimes (a follower's proposal
    /// to the leader, and its outcome back): the receiving runtime handles
    /// it itself (see [`super::Raft::propose_or_forward`]).
    Forward(Forwarded),
}

/// A [`Forward`], addressed: what [`Envelope::Forward`] carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarded {
    /// The sending node.
    pub from: NodeId,
    /// The receiving node.
    pub to: NodeId,
    /// The sender's term when it sent a [`Forward::Proposal`]: the proposal
    /// is valid only at the leader of that term, which takes the first copy
    /// it receives and refuses it anywhere else (so that a transport that
    /// duplicates or redelivers cannot make it apply twice). A
    /// [`Forward::Response`] carries 0: it is matched to its proposal by id
    /// and sender, never by term.
    pub term: Term,
    /// The request or its answer.
    pub body: Forward,
}

/// A client request forwarded between runtimes, or its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Forward {
    /// Sent by a follower's runtime to the leader it knows, once and never
    /// retried: its client proposes `command` (encoded) through the leader.
    Proposal {
        /// The follower's id for the request, echoed in the response.
        id: u64,
        /// The encoded command.
        command: Bytes,
    },
    /// Sent by the node a [`Forward::Proposal`] went to, once its outcome
    /// is known (or the proposal was refused): what became of it.
    Response {
        /// The id of the proposal answered.
        id: u64,
        /// What became of it.
        outcome: ForwardOutcome,
    },
}

/// What became of a forwarded proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardOutcome {
    /// Applied; the state machine's encoded response.
    Applied(Bytes),
    /// The receiver does not lead (`leader` is who it thinks does).
    NotLeader {
        /// The leader the receiver knows of.
        leader: Option<NodeId>,
    },
    /// Definitely not applied.
    NotApplied,
    /// May or may not have been applied.
    OutcomeUnknown,
    /// Refused for another reason, given (the command did not decode).
    Refused(String),
    /// Applied, but the response did not encode; the reason.
    ResponseLost(String),
}

impl Forward {
    /// A short name for traces and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Forward::Proposal { .. } => "ForwardProposal",
            Forward::Response { .. } => "ForwardResponse",
        }
    }
}

impl Envelope {
    /// The sending node. (Named after [`Message::from`]; so
    /// `Envelope::from(message)` means this method, not [`From`]: wrap a
    /// message with `Envelope::Raft(message)` or `message.into()`.)
    pub fn from(&self) -> NodeId {
        match self {
            Envelope::Raft(message) => message.from,
            Envelope::Forward(forwarded) => forwarded.from,
        }
    }

    /// The receiving node.
    pub fn to(&self) -> NodeId {
        match self {
            Envelope::Raft(message) => message.to,
            Envelope::Forward(forwarded) => forwarded.to,
        }
    }

    /// The term the envelope carries (see [`Message::term`] and
    /// [`Forwarded::term`]).
    pub fn term(&self) -> Term {
        match self {
            Envelope::Raft(message) => message.term,
            Envelope::Forward(forwarded) => forwarded.term,
        }
    }

    /// A short name for traces, logs and metrics: the message's kind
    /// ([`MessageBody::kind`]), or [`Forward::kind`].
    pub fn kind(&self) -> &'static str {
        match self {
            Envelope::Raft(message) => message.body.kind(),
            Envelope::Forward(forwarded) => forwarded.body.kind(),
        }
    }

    /// An estimate of the envelope's size, in memory and on the wire: its
    /// payloads (the entries, a snapshot chunk and the configuration in its
    /// metadata, a command or an answer) and a fixed header. What an
    /// [`super::Inbox`]'s byte budget counts, so it counts every field of
    /// variable size a peer fills: one left out would let a peer pin
    /// memory the budget does not see.
    pub fn size(&self) -> u64 {
        const HEADER: u64 = 64;
        let payload = match self {
            Envelope::Raft(message) => match &message.body {
                MessageBody::AppendEntries(append) => append.entries.iter().map(Entry::size).sum(),
                MessageBody::InstallSnapshot(chunk) => {
                    chunk.data.len() as u64 + crate::types::membership_size(&chunk.meta.membership)
                }
                _ => 0,
            },
            Envelope::Forward(forwarded) => match &forwarded.body {
                Forward::Proposal { command, .. } => command.len() as u64,
                Forward::Response { outcome, .. } => match outcome {
                    ForwardOutcome::Applied(response) => response.len() as u64,
                    ForwardOutcome::Refused(why) | ForwardOutcome::ResponseLost(why) => why.len() as u64,
                    ForwardOutcome::NotLeader { .. }
                    | ForwardOutcome::NotApplied
                    | ForwardOutcome::OutcomeUnknown => 0,
                },
            },
        };
        HEADER + payload
    }

    /// Whether this is a chunk of a snapshot
    /// ([`MessageBody::InstallSnapshot`]): large, and best sent apart from
    /// the rest so that heartbeats never wait behind it.
    pub fn is_snapshot_chunk(&self) -> bool {
        matches!(self, Envelope::Raft(Message { body: MessageBody::InstallSnapshot(_), .. }))
    }
}

impl From<Message> for Envelope {
    fn from(message: Message) -> Self {
        Envelope::Raft(message)
    }
}

impl From<Forwarded> for Envelope {
    fn from(forwarded: Forwarded) -> Self {
        Envelope::Forward(forwarded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat() -> Message {
        Message {
            from: 1,
            to: 2,
            term: 3,
            body: MessageBody::Heartbeat(crate::Heartbeat { commit: 4, round: 5 }),
        }
    }

    #[test]
    fn addresses_and_kinds() {
        let raft: Envelope = heartbeat().into();
        assert_eq!((raft.from(), raft.to(), raft.term(), raft.kind()), (1, 2, 3, "Heartbeat"));
        assert!(!raft.is_snapshot_chunk());
        let proposal = Envelope::Forward(Forwarded {
            from: 2,
            to: 1,
            term: 3,
            body: Forward::Proposal { id: 9, command: Bytes::from_static(b"x") },
        });
        assert_eq!((proposal.from(), proposal.to(), proposal.term()), (2, 1, 3));
        assert_eq!(proposal.kind(), "ForwardProposal");
        let response = Forwarded {
            from: 1,
            to: 2,
            term: 0,
            body: Forward::Response { id: 9, outcome: ForwardOutcome::NotApplied },
        };
        assert_eq!(Envelope::Forward(response).kind(), "ForwardResponse");
    }

    #[test]
    fn sizes_count_the_payloads() {
        assert_eq!(Envelope::Raft(heartbeat()).size(), 64);
        let command = |len| Forward::Proposal { id: 1, command: Bytes::from(vec![0; len]) };
        let forward = |body| Envelope::Forward(Forwarded { from: 2, to: 1, term: 3, body });
        assert_eq!(forward(command(1000)).size(), 1064);
        let refused = Forward::Response { id: 1, outcome: ForwardOutcome::Refused("x".repeat(10)) };
        assert_eq!(forward(refused).size(), 74);
        let entries = (1..=3)
            .map(|index| crate::Entry {
                term: 1,
                index,
                payload: crate::EntryPayload::Command(Bytes::from(vec![0; 100])),
            })
            .collect();
        let append = crate::AppendEntries { prev_log_index: 0, prev_log_term: 0, entries, leader_commit: 0 };
        let append = Message { from: 1, to: 2, term: 1, body: MessageBody::AppendEntries(append) };
        assert_eq!(Envelope::Raft(append).size(), 64 + 3 * (24 + 100));
    }

    #[test]
    fn sizes_count_the_configurations_a_peer_sends() {
        let mut membership = crate::Membership::new([1, 2], []);
        membership.learners_next.extend(10..110);
        membership.addresses.insert(2, "x".repeat(10_000));
        // A snapshot chunk's metadata, with no snapshot bytes.
        let meta = crate::SnapshotMeta { last: crate::LogId::new(1, 1), membership: membership.clone() };
        let chunk = crate::InstallSnapshot {
            meta,
            offset: 0,
            data: Bytes::new(),
            done: true,
            total_len: 0,
            checksum: 0,
        };
        let chunk = Message { from: 1, to: 2, term: 1, body: MessageBody::InstallSnapshot(Box::new(chunk)) };
        assert!(Envelope::Raft(chunk).size() > 10_000 + 100 * 8);
        // A configuration entry: every member set and the addresses.
        let entry =
            Entry { term: 1, index: 1, payload: crate::EntryPayload::Membership(Box::new(membership)) };
        let append = crate::AppendEntries {
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![entry],
            leader_commit: 0,
        };
        let append = Message { from: 1, to: 2, term: 1, body: MessageBody::AppendEntries(append) };
        assert!(Envelope::Raft(append).size() > 10_000 + 100 * 8);
    }

    #[test]
    fn envelopes_round_trip_through_the_codec() {
        let envelopes = [
            Envelope::Raft(heartbeat()),
            Envelope::Forward(Forwarded {
                from: 2,
                to: 1,
                term: 3,
                body: Forward::Proposal { id: u64::MAX, command: Bytes::from_static(b"put x 1") },
            }),
            Envelope::Forward(Forwarded {
                from: 1,
                to: 2,
                term: 0,
                body: Forward::Response { id: 7, outcome: ForwardOutcome::NotLeader { leader: Some(3) } },
            }),
        ];
        for envelope in envelopes {
            let bytes = crate::codec::encode(&envelope).unwrap();
            assert_eq!(crate::codec::decode::<Envelope>(&bytes), Ok(envelope));
        }
    }
}
