//! The messages Raft nodes exchange.
//!
//! Every message carries the sender's term: a node that sees a higher term than
//! its own adopts it and becomes a follower (Figure 2, "Rules for Servers"),
//! with the exceptions for pre-votes and leader stickiness explained in
//! [`crate::RawNode::step`].
//!
//! These are Raft's messages and nothing else. What a runtime sends beside
//! them (a follower's client proposal forwarded to the leader, and its
//! answer) travels in the runtime's own [`crate::runtime::Envelope`], which
//! the protocol never sees.

use crate::{Entry, Index, LogId, NodeId, SnapshotMeta, Term};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A message from one node to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The recipient.
    pub to: NodeId,
    /// The sender's term; for a pre-vote request, the term the sender would
    /// campaign in (its own term plus one).
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// The kinds of messages, each with who sends it and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// Sent by a pre-candidate: "would you vote for me in `term`?". Nobody
    /// changes state on receiving one; it only avoids futile elections.
    PreVote(VoteRequest),
    /// The answer to a [`MessageBody::PreVote`].
    PreVoteResponse(VoteResponse),
    /// Sent by a candidate to every voter: RequestVote (section 5.2).
    Vote(VoteRequest),
    /// The answer to a [`MessageBody::Vote`].
    VoteResponse(VoteResponse),
    /// Sent by the leader: entries to append after a given position, and its
    /// commit index (section 5.3).
    AppendEntries(AppendEntries),
    /// A follower's answer to [`MessageBody::AppendEntries`], sent only once the
    /// entries it acknowledges are durable.
    AppendEntriesResponse(AppendEntriesResponse),
    /// Sent by the leader every heartbeat interval to keep its followers from
    /// campaigning, carrying a commit index the follower can safely adopt.
    Heartbeat(Heartbeat),
    /// A node's answer to a [`MessageBody::Heartbeat`]; also what a node sends to
    /// a leader of a stale term so that it learns the newer term and steps down.
    HeartbeatResponse(HeartbeatResponse),
    /// Sent by a leader handing over leadership, once the target's log is as
    /// up to date as its own: "campaign now" (thesis section 3.10). A
    /// follower obeys it only from the leader it knows in the current term.
    TimeoutNow,
    /// Sent by a follower to its leader on behalf of a client's linearizable
    /// read: "at which index may I serve read `ctx`?"
    ReadIndex(ReadIndexRequest),
    /// The leader's answer to [`MessageBody::ReadIndex`], once it has
    /// confirmed it still leads: the read may be served once the follower has
    /// applied `index`.
    ReadIndexResponse(ReadState),
    /// Sent by the leader to a follower whose next entry was compacted away:
    /// one chunk of a snapshot (section 7).
    /// Boxed, to keep every other message small.
    InstallSnapshot(Box<InstallSnapshot>),
    /// A follower's answer to [`MessageBody::InstallSnapshot`], sent once what
    /// it acknowledges is durable.
    InstallSnapshotResponse(InstallSnapshotResponse),
}

/// One chunk of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshot {
    /// What the snapshot covers.
    pub meta: SnapshotMeta,
    /// Where in the snapshot's bytes this chunk starts.
    pub offset: u64,
    /// The chunk.
    pub data: Bytes,
    /// This is the last chunk.
    pub done: bool,
    /// The whole snapshot's length in bytes: the chunk must end within it,
    /// and the last one at it.
    pub total_len: u64,
    /// The CRC-32 (IEEE) of the whole snapshot's bytes. The follower checks
    /// what it gathered against it, and against `total_len`, before it
    /// installs anything, and keys its buffer on both (and on the sender,
    /// term and `meta`), so chunks of two snapshots are never spliced.
    pub checksum: u32,
}

/// A follower's progress in receiving a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshotResponse {
    /// The snapshot answered about.
    pub last: LogId,
    /// The offset of the next chunk the follower wants (it has everything
    /// before it); after installing, the snapshot's size.
    pub next_offset: u64,
    /// The snapshot is installed (or the follower already had its entries).
    pub installed: bool,
}

impl MessageBody {
    /// A short name for traces and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            MessageBody::PreVote(_) => "PreVote",
            MessageBody::PreVoteResponse(_) => "PreVoteResponse",
            MessageBody::Vote(_) => "Vote",
            MessageBody::VoteResponse(_) => "VoteResponse",
            MessageBody::AppendEntries(_) => "AppendEntries",
            MessageBody::AppendEntriesResponse(_) => "AppendEntriesResponse",
            MessageBody::Heartbeat(_) => "Heartbeat",
            MessageBody::HeartbeatResponse(_) => "HeartbeatResponse",
            MessageBody::TimeoutNow => "TimeoutNow",
            MessageBody::ReadIndex(_) => "ReadIndex",
            MessageBody::ReadIndexResponse(_) => "ReadIndexResponse",
            MessageBody::InstallSnapshot(_) => "InstallSnapshot",
            MessageBody::InstallSnapshotResponse(_) => "InstallSnapshotResponse",
        }
    }
}

/// A request for a vote or a pre-vote, with the candidate's last log position
/// for the up-to-date check (section 5.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteRequest {
    /// The index of the candidate's last log entry.
    pub last_log_index: Index,
    /// The term of the candidate's last log entry.
    pub last_log_term: Term,
    /// The candidate campaigns because the leader handed leadership to it
    /// ([`MessageBody::TimeoutNow`]): voters must not ignore it for having
    /// heard from that leader recently.
    pub leadership_transfer: bool,
}

/// The answer to a vote or pre-vote request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteResponse {
    /// Whether the vote was granted.
    pub granted: bool,
}

/// The leader's AppendEntries request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntries {
    /// The index of the entry immediately before `entries`.
    pub prev_log_index: Index,
    /// The term of that entry: the consistency check.
    pub prev_log_term: Term,
    /// Entries to append, with consecutive indexes from `prev_log_index + 1`;
    /// empty when the message only probes or carries the commit index.
    pub entries: Vec<Entry>,
    /// The leader's commit index.
    pub leader_commit: Index,
}

/// A follower's answer to AppendEntries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendEntriesResponse {
    /// The follower's log matches the leader's up to and including `match_index`,
    /// durably.
    Success {
        /// The last index known to match the leader's log.
        match_index: Index,
    },
    /// The consistency check failed at `rejected_index` (the request's
    /// `prev_log_index`). The hint lets the leader skip a whole term per round
    /// trip: the follower's last entry at or before `rejected_index` whose term
    /// is at most the request's `prev_log_term` is at `hint_index`, with term
    /// `hint_term`.
    Conflict {
        /// The `prev_log_index` that was rejected.
        rejected_index: Index,
        /// Where the follower suggests the leader probe next.
        hint_index: Index,
        /// The follower's term at `hint_index`.
        hint_term: Term,
    },
}

/// The leader's heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// `min(leader commit, follower's match index)`: an index the follower's log
    /// is known to share with the leader, so it may adopt it as its commit index
    /// without a consistency check.
    pub commit: Index,
    /// The leader's latest read round: an answer echoing it confirms, for the
    /// reads of that round, that the leader still led when they were made.
    pub round: u64,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The read round of the heartbeat answered (0 when answering a stale term).
    pub round: u64,
}

/// A follower's request for a read index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndexRequest {
    /// The caller's id for the read, returned in the [`ReadState`].
    pub ctx: u64,
    /// The caller accepts a lease-based confirmation.
    pub lease: bool,
}

/// A read that has become safe: it may be served from the state machine once
/// that has applied `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadState {
    /// The caller's id for the read.
    pub ctx: u64,
    /// The commit index at the time the read was made.
    pub index: Index,
}
