//! # raft-core: the Raft consensus protocol, as a deterministic state machine
//!
//! Raft (Ongaro and Ousterhout, *In Search of an Understandable Consensus
//! Algorithm*, 2014; Ongaro's thesis, 2014) keeps a log replicated across a
//! cluster of nodes so that every node applies the same commands in the same
//! order, as long as a majority of them can talk to each other. This crate is
//! the protocol and nothing else: [`RawNode`] takes messages, ticks of logical
//! time and proposals in, and hands back what to persist, what to send and what
//! to apply in a [`Ready`]. Storage, networking, timers and the state machine
//! are the caller's; no I/O, clock or global randomness lives here, so the same
//! inputs always give the same outputs, and a simulator can run whole clusters
//! of nodes deterministically from a seed.
//!
//! ## Leader election (section 5.2)
//!
//! Time is divided into *terms*, each with at most one leader. A follower that
//! hears nothing from a leader for a randomized election timeout campaigns: with
//! *pre-vote* (thesis 9.6, on by default) it first asks whether a majority would
//! vote for it without changing any term; if so, it increments its term, votes
//! for itself and asks the others for their votes. A node grants one vote per
//! term, and only to a candidate whose log is at least as up to date as its own
//! (section 5.4.1). A candidate with votes from a majority becomes leader and
//! appends a blank entry of its term.
//!
//! Two mechanisms keep a healthy cluster stable. *Leader stickiness*: a node
//! that heard from a leader within the minimum election timeout ignores vote
//! requests for newer terms. *Check-quorum* (on by default): a leader that has
//! not heard from a majority within the minimum election timeout steps down, so
//! clients stop waiting on a leader that cannot commit anything.
//!
//! ## Log replication (section 5.3)
//!
//! The leader appends each proposal to its log and sends AppendEntries to every
//! follower, carrying the entry before the new ones so the follower can check
//! that its log matches up to there. A follower whose log does not match
//! refuses, with a hint (the last index of an earlier term it has) that lets the
//! leader skip back a whole term per round trip instead of one index. Once the
//! leader finds the matching point it streams entries optimistically, several
//! messages in flight at once, each within an entry and byte budget. Heartbeats
//! carry the commit index to idle followers.
//!
//! ## Safety (section 5.4)
//!
//! An entry is *committed* once it is stored durably on a majority and it is of
//! the leader's current term; entries of earlier terms are committed only
//! through a later entry of the current term, never by counting replicas
//! (Figure 8). Every node persists its term and vote before sending any message
//! that depends on them, and a follower acknowledges entries only once they are
//! durable. The leader counts its own log toward a majority only once it is
//! durable too, which lets the caller write the leader's disk in parallel with
//! replication.
//!
//! ## Using a `RawNode`
//!
//! 1. Create it with [`RawNode::new`] from a [`Config`], the state storage holds
//!    ([`InitialState`]; empty for a new node) and a seed for its RNG.
//! 2. Call [`RawNode::tick`] at a regular interval, [`RawNode::step`] for every
//!    message received, [`RawNode::propose`] for every command.
//! 3. Whenever [`RawNode::has_ready`] says so, take a [`Ready`] and:
//!    1. send its `messages` right away;
//!    2. durably write its `hard_state` and `entries` (replacing any stored
//!       entries from the first new index on), in the order the `Ready`s came;
//!    3. once that write and all earlier ones are durable, send its
//!       `persisted_messages` and call [`RawNode::on_persisted`] with its
//!       `number`;
//!    4. apply its `committed_entries` to the state machine, in order.
//!
//! A step may run while earlier writes are still in flight: a runtime can keep
//! its disk, its network and its state machine busy in parallel, as long as each
//! `Ready`'s writes complete in order.
//!
//! ## Caveats
//!
//! - The node holds the entries since the last snapshot in memory; snapshots
//!   bound that.
//! - Membership is fixed at creation in this version: membership changes,
//!   snapshots and linearizable reads arrive with later versions.
//! - The commit index is not persisted: a restarted node learns it again from
//!   the leader.

#![forbid(unsafe_code)]

mod config;
mod election;
mod log;
mod membership;
mod message;
#[cfg(raft_mutation)]
pub mod mutation;
#[cfg(not(raft_mutation))]
mod mutation;
mod node;
mod progress;
mod quorum;
mod read;
mod replication;
mod rng;
mod types;

pub use config::{Config, ConfigError};
pub use log::{LogError, RaftLog};
pub use membership::{Membership, MembershipError, MembershipLog};
pub use message::{
    AppendEntries, AppendEntriesResponse, Heartbeat, HeartbeatResponse, InstallSnapshot,
    InstallSnapshotResponse, Message, MessageBody, ReadIndexRequest, ReadState, VoteRequest, VoteResponse,
};
pub use node::{
    InitError, InitialState, MembershipChangeError, ProposeError, RawNode, ReadError, ReadMode, Ready,
    StepError, TransferError,
};
pub use progress::{Inflights, Progress, ProgressState};
pub use quorum::{JointConfig, MajorityConfig, VoteResult};
pub use types::{
    Entry, EntryPayload, HardState, Index, LogId, NodeId, Role, Snapshot, SnapshotMeta, SoftState, Term,
    MAX_TERM,
};
