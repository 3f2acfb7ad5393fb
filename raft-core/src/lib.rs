//! # raft-core: the Raft consensus protocol, as a deterministic state machine
//!
//! `raft-core` is the heart of Timber, a Raft library whose storage and
//! transport come in crates of their own (`raft-storage-mem`,
//! `raft-storage-rocksdb`, `raft-net-tcp`, `raft-net-quic`).
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
//! ## A 3-node cluster in memory
//!
//! Write a [`runtime::StateMachine`], start a node per member with a store and
//! a transport, and propose through the leader:
//!
//! ```
//! use raft_core::runtime::{InProcessNetwork, Inbox, Raft, ReadConsistency, RestoreError, RuntimeConfig, StateMachine};
//! use raft_core::{Config, LogId, Membership, SnapshotData};
//! use raft_storage_mem::MemLogStore;
//!
//! /// The replicated state: a counter. Commands add to it.
//! #[derive(Default)]
//! struct Counter(u64);
//!
//! impl StateMachine for Counter {
//!     type Command = u64;
//!     type Response = u64; // the new total
//!     fn apply(&mut self, _entry: LogId, add: u64) -> u64 {
//!         self.0 += add;
//!         self.0
//!     }
//!     // A large state writes itself through `SnapshotData::writer()` and
//!     // reads itself back through `data.reader()`, in pieces; a counter
//!     // fits in one.
//!     fn snapshot(&self) -> SnapshotData {
//!         self.0.to_be_bytes().to_vec().into()
//!     }
//!     fn restore(&mut self, data: &SnapshotData) -> Result<(), RestoreError> {
//!         let bytes = data.to_vec().try_into().map_err(|_| RestoreError("not a counter".into()))?;
//!         self.0 = u64::from_be_bytes(bytes);
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let network = InProcessNetwork::new();
//! let mut nodes = Vec::new();
//! for id in 1..=3 {
//!     let (config, members, store) = (Config::new(id), Membership::new([1, 2, 3], []), MemLogStore::new());
//!     // What peers send waits in the inbox the transport delivers to.
//!     let inbox = Inbox::default();
//!     network.connect(id, inbox.clone());
//!     let raft = Raft::start(config, RuntimeConfig::default(), members, store, network.transport(id), inbox, Counter::default()).await?;
//!     nodes.push(raft);
//! }
//! let leader = nodes[0].metrics().wait_for(|m| m.leader.is_some()).await?.leader.unwrap();
//! let leader = &nodes[leader as usize - 1];
//! assert_eq!(leader.propose(5).await?, 5);
//! assert_eq!(leader.propose(2).await?, 7);
//! assert_eq!(leader.read(ReadConsistency::Linearizable, |counter| counter.0).await?, 7);
//! for node in &nodes {
//!     node.shutdown().await;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! ## One proposal, end to end
//!
//! What happens to `leader.propose(5)` above, through the [`runtime`]'s three
//! tasks per node (core, writer, applier), the [`LogStore`] and the
//! [`runtime::Transport`]. Time runs downwards; the leader's disk write
//! (2) runs while the followers receive the entry (3), and the leader counts
//! itself only once (4) tells it its write is durable.
//!
//! ```text
//!  client          leader node                             follower node (x2)
//!    |   propose   +------------------------------+
//!    |------------>| core: RawNode::propose       |  1 entry appended in memory
//!    |             |   ready() -> Ready {         |
//!    |             |     entries, messages }      |
//!    |             +--+-----------------------+---+
//!    |                | entries               | messages (AppendEntries)
//!    |                v                       v
//!    |   2 writer: LogStore::write      Transport::send -----> Inbox
//!    |     (one fsync for every write         |                core: RawNode::step
//!    |      queued meanwhile)                 |                  ready(): entries,
//!    |                |                       |                  persisted_messages
//!    |                v                       |                writer: LogStore::write
//!    |   4 core: RawNode::on_persisted        |                  then sends the
//!    |     (the leader's own match index)     |                  AppendEntriesResponse
//!    |                |                       |                        |
//!    |                |        core: RawNode::step  <------------------+  3
//!    |                v          commit = the quorum's match index, if
//!    |          5 ready().committed_entries  the entry there is of this term
//!    |                |
//!    |                v
//!    |   6 applier: StateMachine::apply -> response
//!    |<---------------+
//!    |   followers learn the commit index from the next AppendEntries or
//!    |   heartbeat and apply it the same way (no response to send)
//! ```
//!
//! A follower's client may propose too ([`runtime::Raft::propose_or_forward`]):
//! its runtime forwards the proposal to the leader's in an
//! [`runtime::Envelope::Forward`], over the same transport as the protocol's
//! messages (each an [`runtime::Envelope::Raft`]), and the leader's runtime
//! proposes it as above and sends its outcome back the same way. Forwarding
//! is the runtime's business: [`Message`] holds Raft's messages only, and
//! [`RawNode`] never sees a forward.
//!
//! With [`RawNode`] alone the same path is yours to drive: see
//! [Using a `RawNode`](#using-a-rawnode).
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
//! replication. One private module, the durability gate (`durability.rs`),
//! decides which messages wait for the writes of their [`Ready`] (those that
//! vouch for a vote, entries or a snapshot, and any message while the term is
//! not yet durable) and learns from [`RawNode::on_persisted`] how far the log
//! is durable; its module docs say what it guarantees and what it cannot see.
//!
//! ## Membership changes (section 6; thesis 4.3)
//!
//! A configuration travels in the log and is in force on each node as soon as
//! it is in that node's log (rolled back if truncated away). To change voters,
//! the leader appends a joint configuration C_old,new, under which elections
//! and commitment need a majority of both the old and the new voters; once it
//! commits, the leader appends C_new itself. One change at a time, and only
//! once the leader has committed an entry of its term. Any change is possible:
//! add, remove or replace several voters at once, including the leader, which
//! steps down once a configuration without it commits. New voters join first
//! as *learners*, which receive the log but neither vote nor count, and are
//! promoted only once caught up ([`Config::learner_catch_up_lag`]). A voter of
//! the previous configuration keeps campaigning while the new one is
//! uncommitted (thesis 4.2.2), so a cluster never waits on a node it removed.
//!
//! ## Leadership transfer (thesis 3.10)
//!
//! [`RawNode::transfer_leadership`] stops proposals, brings the target's log
//! up to date and tells it to campaign at once (`TimeoutNow`); voters honour
//! that campaign despite leader stickiness. Without a new leader within an
//! election timeout, the transfer is abandoned.
//!
//! ## Snapshots and log compaction (section 7)
//!
//! Once [`Config::snapshot_threshold`] entries were applied since the last
//! snapshot, [`Ready::request_snapshot`] asks the caller for one; given it
//! ([`RawNode::on_snapshot_built`]), the node compacts its log up to
//! [`Config::snapshot_keep_entries`] behind it. A follower whose next entry is
//! gone receives the snapshot in chunks, resumable from its last acknowledged
//! offset, and installs it by the paper's rule: if its log holds the
//! snapshot's last entry it keeps what follows, otherwise it discards its log.
//! The node applies the rule to its in-memory log, which may hold entries not
//! yet written, and tells storage the outcome ([`SnapshotInstall::log`]), so
//! that the stored log never keeps what the node dropped.
//!
//! ## Linearizable reads (thesis 6.4)
//!
//! [`RawNode::read_index`] serves reads without writing to the log. The leader
//! notes its commit index, confirms with a heartbeat round that it still leads
//! (concurrent reads share one round), and hands back a [`ReadState`]: the read
//! is linearizable once the state machine has applied its index. Followers
//! ask the leader for the index and serve the read themselves. A new leader
//! holds reads until it has committed an entry of its term. Lease reads
//! ([`ReadMode::Lease`], opt-in, with check-quorum) skip the round while the
//! leader's lease holds, assuming no node's clock runs slower than another's
//! by more than [`Config::max_clock_drift_ticks`] ticks per
//! `election_timeout_min` ticks, and that a caller that stalls delivers the
//! ticks it missed before anything else (see [`Config::lease_reads`]). Stale
//! reads need no call: read the local state machine.
//!
//! ## Where each rule lives
//!
//! A map from the paper (Figure 2's rules, Figure 8, sections 6 and 7) and
//! the thesis (3.10, 4.2.3, 6.4, 9.6) to the code that implements each rule.
//! Paths are the crate's private modules (`node.rs`, `protocol.rs`,
//! `election.rs`, ...);
//! public items are linked.
//!
//! | Rule | Where |
//! |---|---|
//! | **All servers.** A message of a higher term: adopt it, become follower | `node.rs`: `RawNode::step_inner`, then `become_follower` |
//! | A message of a lower term: refuse it (and say so for votes and appends) | `node.rs`: `RawNode::step_inner` |
//! | Apply committed entries in order | `log.rs`: `RaftLog::take_applicable`, handed out in [`Ready::committed_entries`] |
//! | Persist term, vote and entries before any message that depends on them | `durability.rs`: `vouches_for_durable_state` names those messages, `DurabilityGate::must_hold` (asked by `Core::send_with_term`) holds them for [`Ready::persisted_messages`]; [`RawNode::on_persisted`] reports the writes durable (`DurabilityGate::persisted`) |
//! | **Followers.** No leader heard within the election timeout: campaign | `protocol.rs`: `Core::tick_election`, `Core::campaign_transition` |
//! | **Candidates.** New term, vote for self, ask for votes | `election.rs`: `Candidate::start` |
//! | A majority of votes (of both halves of a joint configuration): lead | `election.rs`: `Candidate::record_vote`, `Candidate::outcome`; [`JointConfig::vote_result`] |
//! | **RequestVote receiver.** One vote per term, only for a log at least as up to date | `election.rs`: `handle_vote_request`, `vote_allowed_by_log`; [`RaftLog::is_up_to_date`] |
//! | **Leaders.** A blank entry of the new term on election | `replication.rs`: `Leader::start` |
//! | Append client commands, replicate them | `replication.rs`: `Leader::propose`, `send_appends` |
//! | On success advance match/next index; on refusal back off by term | [`Progress::maybe_update`], [`Progress::maybe_decr_to`]; `replication.rs`: `Leader::handle_append_response`; [`RaftLog::find_conflict_by_term`] |
//! | Commit the quorum's match index, **only if its entry is of this term** (Figure 8) | `replication.rs`: `Leader::maybe_commit`; [`JointConfig::committed_index`] |
//! | **AppendEntries receiver.** Refuse unless the log matches at the previous entry | `follower.rs`: `Follower::step`, `handle_append`; [`RaftLog::matches`] |
//! | Delete a conflicting suffix, append, advance the commit index | `log.rs`: `RaftLog::append_after`, `RaftLog::commit_to` |
//! | **InstallSnapshot receiver** (section 7): gather chunks, keep a matching suffix | `snapshot_transfer.rs`: `handle_install_snapshot`, into the buffer `Follower` owns; `log.rs`: `RaftLog::install_snapshot` (which also decides what storage does to its log, [`LogAfterInstall`]); `durability.rs`: `DurabilityGate::hold_for_snapshot` |
//! | Compact the log behind a snapshot | [`RawNode::on_snapshot_built`]; `log.rs`: `RaftLog::compact_to` |
//! | **Membership** (section 6, thesis 4.3): joint consensus, one change at a time | `replication.rs`: `Leader::change_membership`, `Leader::advance_membership`; [`MembershipLog`] |
//! | A configuration is in force once in the log, rolled back if truncated | [`MembershipLog`]; `protocol.rs`: `Core::refresh_membership` |
//! | **Leader stickiness** (thesis 4.2.3): ignore votes while a leader is heard | `node.rs`: `RawNode::step_inner`, `RawNode::in_lease` |
//! | **Pre-vote** (thesis 9.6) | `election.rs`: `Campaign::PreVote`, `Candidate::record_pre_vote`, `handle_vote_request` |
//! | **Check-quorum** (thesis 6.2): a leader that has not heard from a quorum steps down | `replication.rs`: `Leader::tick`, `Leader::quorum_active` |
//! | **Leadership transfer** (thesis 3.10) | `replication.rs`: `Leader::transfer_leadership`, `Leader::maybe_send_timeout_now`; `node.rs`: `RawNode::step_role` (TimeoutNow) |
//! | **ReadIndex** (thesis 6.4): note the commit index, confirm leadership by a heartbeat round | `read.rs`: `ReadQueue::register`, `ReadQueue::start_round`, `ReadQueue::confirm`; [`RawNode::read_index`] |
//! | **Lease reads** (thesis 6.4.1) | `read.rs` (its module docs state the lease's conditions); [`Config::lease_reads`] |
//!
//! ## Using a `RawNode`
//!
//! 1. Create it with [`RawNode::new`] from a [`Config`], the state storage holds
//!    ([`InitialState`]; for a new cluster, empty but for the initial
//!    [`Membership`]) and a seed for its RNG.
//! 2. Call [`RawNode::tick`] at a regular interval, [`RawNode::step`] for every
//!    message received, [`RawNode::propose`] for every command (and
//!    [`RawNode::read_index`], [`RawNode::change_membership`],
//!    [`RawNode::transfer_leadership`] as needed).
//! 3. Whenever [`RawNode::has_ready`] says so, take a [`Ready`] and:
//!    1. send its `messages` right away;
//!    2. durably write its `hard_state`, `snapshot` and `entries` (the
//!       snapshot's [`SnapshotInstall::log`] says whether the stored entries
//!       after it stay; entries replace any stored from the first new index
//!       on), in the order the `Ready`s came;
//!    3. once that write and all earlier ones are durable, restore the state
//!       machine from its `snapshot` (if any), send its `persisted_messages`
//!       and call [`RawNode::on_persisted`] with its `number`;
//!    4. apply its `committed_entries` to the state machine, in order;
//!    5. serve its `read_states` once the state machine has applied their
//!       index; purge stored entries up to `purge_to`; if it sets
//!       `request_snapshot`, build a snapshot and hand it to
//!       [`RawNode::on_snapshot_built`].
//!
//! A step may run while earlier writes are still in flight: a runtime can keep
//! its disk, its network and its state machine busy in parallel, as long as each
//! `Ready`'s writes complete in order.
//!
//! ### By hand: three nodes in one loop
//!
//! No runtime, no threads: each node's "disk" is a vector, the "network" a
//! queue, and every `Ready` is handled in the order above (its write is
//! durable as soon as it is pushed, so its persisted messages go out at once).
//!
//! ```
//! use raft_core::{Config, Entry, EntryPayload, InitialState, Membership, Message, RawNode};
//! use std::collections::VecDeque;
//!
//! let members = Membership::new([1, 2, 3], []);
//! let new_node = |id| {
//!     let state = InitialState { membership: members.clone(), ..Default::default() };
//!     RawNode::new(Config::new(id), state, id).expect("a valid config")
//! };
//! let mut nodes: Vec<RawNode> = (1..=3).map(new_node).collect();
//! let mut disks: Vec<Vec<Entry>> = vec![Vec::new(); 3];
//! let mut applied: Vec<Vec<Entry>> = vec![Vec::new(); 3];
//! let mut network: VecDeque<Message> = VecDeque::new();
//!
//! // Handles every node's Ready, then delivers what they sent, until quiet.
//! let mut run = |nodes: &mut Vec<RawNode>| loop {
//!     for (i, node) in nodes.iter_mut().enumerate() {
//!         while node.has_ready() {
//!             let ready = node.ready();
//!             network.extend(ready.messages); // 1. send
//!             if let Some(first) = ready.entries.first() {
//!                 disks[i].retain(|e| e.index < first.index); // 2. write...
//!             }
//!             disks[i].extend(ready.entries); // (hard state: saved likewise)
//!             network.extend(ready.persisted_messages); // 3. ...durable
//!             node.on_persisted(ready.number);
//!             applied[i].extend(ready.committed_entries); // 4. apply
//!         }
//!     }
//!     let Some(message) = network.pop_front() else { break };
//!     let to = message.to as usize - 1;
//!     nodes[to].step(message).expect("a message from a member");
//! };
//!
//! nodes[0].campaign(); // rather than ticking until an election timeout
//! run(&mut nodes);
//! assert_eq!(nodes[0].leader(), Some(1));
//! let at = nodes[0].propose(bytes::Bytes::from_static(b"hello")).expect("the leader accepts");
//! run(&mut nodes);
//! for applied in &applied {
//!     let last = applied.last().expect("something applied");
//!     assert_eq!((last.index, &last.payload), (at.index, &EntryPayload::Command(b"hello"[..].into())));
//! }
//! ```
//!
//! ## Caveats
//!
//! - The node holds the entries since the last compaction in memory, and the
//!   leader its latest snapshot's bytes; snapshots bound the former.
//! - The commit index is not persisted: a restarted node learns it again from
//!   the leader.
//! - A read or proposal whose node loses leadership is not answered with an
//!   error by the node; the caller sees the role change in
//!   [`Ready::soft_state`] and fails or retries what it was waiting on.
//! - Terms above [`MAX_TERM`] are refused as corrupt or hostile.

#![forbid(unsafe_code)]
// This page describes the runtime too, which exists only with the `runtime`
// feature: built without it, its links to the runtime have nothing to point at.
#![cfg_attr(not(feature = "runtime"), allow(rustdoc::broken_intra_doc_links))]

#[cfg(feature = "codec")]
pub mod codec;
mod config;
mod durability;
mod election;
mod errors;
mod follower;
mod log;
mod membership;
mod message;
#[cfg(raft_mutation)]
pub mod mutation;
#[cfg(not(raft_mutation))]
mod mutation;
mod node;
mod outbox;
mod progress;
mod protocol;
mod quorum;
mod read;
mod replication;
mod rng;
#[cfg(feature = "runtime")]
pub mod runtime;
mod snapshot_data;
mod snapshot_transfer;
mod storage;
#[cfg(feature = "testing")]
pub mod testing;
mod types;

pub use config::{Config, ConfigError, MAX_MESSAGE_BYTES};
pub use errors::{
    InitError, MembershipChangeError, ProposeError, ReadError, SnapshotError, StepError, TransferError,
};
pub use log::{LogError, RaftLog};
pub use membership::{Membership, MembershipError, MembershipLog};
pub use message::{
    AppendEntries, AppendEntriesResponse, Heartbeat, HeartbeatResponse, InstallSnapshot,
    InstallSnapshotResponse, Message, MessageBody, ReadIndexRequest, ReadState, VoteRequest, VoteResponse,
};
pub use node::{InitialState, RawNode, ReadMode, Ready};
pub use progress::{Inflights, Progress, ProgressState};
pub use quorum::{JointConfig, MajorityConfig, VoteResult};
pub use snapshot_data::{SnapshotData, SnapshotReader, SnapshotWriter};
pub use storage::{LogAfterInstall, LogStore, LogWrite, SnapshotInstall, StorageError, StoredState};
pub use types::{
    Entry, EntryPayload, HardState, Index, LogId, NodeId, Role, Snapshot, SnapshotMeta, SoftState, Term,
    MAX_TERM,
};
