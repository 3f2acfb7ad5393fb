//! The vocabulary of the protocol: node ids, terms, log indexes, entries and the
//! persistent state every node keeps.
//!
//! Index 0 and term 0 mean "nothing": the first real entry has index 1, and a
//! node that never took part in an election is in term 0.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A node's identity, unique within a cluster. Never 0 (see [`crate::Config::validate`]).
pub type NodeId = u64;
/// A leader's term: Raft's logical clock. Increases monotonically on every node.
pub type Term = u64;
/// A position in the replicated log, starting at 1.
pub type Index = u64;

/// The largest term a node accepts, from a peer or from its own storage. Real
/// clusters never come near it (a new term per microsecond would take 292,000
/// years); a claim beyond it is corruption or hostility and is refused, which
/// also guarantees that `term + 1` can never overflow.
pub const MAX_TERM: Term = u64::MAX / 2;

/// Identifies one log entry: by Log Matching, an index and a term name the same
/// entry (and the same prefix) on every node that has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct LogId {
    /// The term of the leader that created the entry. Compared first: a log
    /// whose last term is higher is more up to date (section 5.4.1).
    pub term: Term,
    /// The entry's position in the log.
    pub index: Index,
}

impl LogId {
    /// Builds a log id.
    pub fn new(term: Term, index: Index) -> Self {
        Self { term, index }
    }
}

/// One entry of the replicated log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The term of the leader that appended it.
    pub term: Term,
    /// Its position in the log.
    pub index: Index,
    /// What it carries.
    pub payload: EntryPayload,
}

/// What an entry carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryPayload {
    /// Appended by every new leader: committing an entry of its own term is how
    /// a leader learns which earlier entries are committed (section 5.4.2).
    Blank,
    /// An application command, opaque to Raft.
    Command(Bytes),
    /// A new cluster configuration, in force on each node from the moment
    /// the entry is in its log. Boxed: configurations are rare, and entries
    /// are moved around by the thousand, so they stay small.
    Membership(Box<crate::Membership>),
}

impl Entry {
    /// This entry's log id.
    pub fn log_id(&self) -> LogId {
        LogId::new(self.term, self.index)
    }

    /// An estimate of the entry's size on the wire, used for the byte budgets of
    /// messages: the payload plus a fixed header. It is never below the
    /// entry's encoded length (for payloads under 4 GiB; commands are capped
    /// far below, see [`crate::RawNode::propose`]), so that a message within
    /// its budget fits the frame the budget was chosen for: a configuration
    /// counts every member id and every address, not only the voters.
    pub fn size(&self) -> u64 {
        ENTRY_HEADER_BYTES
            + match &self.payload {
                EntryPayload::Blank => 0,
                EntryPayload::Command(data) => data.len() as u64,
                EntryPayload::Membership(m) => membership_size(m),
            }
    }
}

/// What [`Entry::size`] counts for an entry besides its payload: its term,
/// index and kind (at most 9 + 9 + 1 bytes encoded) and a payload's length
/// prefix (at most 5 bytes below 4 GiB).
pub(crate) const ENTRY_HEADER_BYTES: u64 = 24;

/// An upper estimate of a configuration's encoded length: 9 bytes for each
/// member id and each set's length, and an address's id and length prefix
/// besides its bytes.
pub(crate) fn membership_size(m: &crate::Membership) -> u64 {
    let ids = m.voters.len() + m.outgoing.len() + m.learners.len() + m.learners_next.len();
    let addresses: u64 = m.addresses.values().map(|a| 18 + a.len() as u64).sum();
    9 * (ids as u64 + 5) + addresses
}

/// The state a node must persist before it answers any message that depends on
/// it (Figure 2, "Persistent state on all servers", less the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate this node voted for in `term`, if any. Persisting it is
    /// what stops a restarted node from voting twice in one term.
    pub vote: Option<NodeId>,
}

/// The role a node currently plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Replicates the leader's log; campaigns when the leader goes quiet.
    Follower,
    /// Asks whether it could win an election, without disturbing anyone's term
    /// (thesis section 9.6).
    PreCandidate,
    /// Campaigns for votes in a new term.
    Candidate,
    /// Accepts proposals and replicates them.
    Leader,
}

/// Volatile state that callers usually want to observe: who leads, and what
/// this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoftState {
    /// The leader this node knows of in the current term.
    pub leader: Option<NodeId>,
    /// This node's role.
    pub role: Role,
}

/// What a snapshot covers: the log up to and including `last`, and the
/// configuration in force there.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last entry the snapshot covers.
    pub last: LogId,
    /// The configuration in force at `last`.
    pub membership: crate::Membership,
}

/// A state-machine snapshot: its metadata and the state machine's bytes (in
/// pieces: see [`crate::SnapshotData`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// What it covers.
    pub meta: SnapshotMeta,
    /// The state machine's serialized state, opaque to Raft.
    pub data: crate::SnapshotData,
}
