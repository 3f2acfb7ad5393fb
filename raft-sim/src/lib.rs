//! # raft-sim: deterministic simulation of raft-core clusters
//!
//! Runs whole clusters of [`raft_core::RawNode`]s in one thread, on logical
//! time, and draws everything random from one seed, so a failing run
//! replays exactly:
//!
//! ```text
//! cargo run -p raft-sim --release -- replay <seed>     # one run, with its trace
//! cargo run -p raft-sim --release -- sweep 0 100000    # many seeds, both cores
//! ```
//!
//! ## What the model has
//!
//! - **Disks** ([`disk`]) that lose unflushed writes on a crash, complete
//!   writes in order after a random latency, and keep the
//!   [`raft_core::LogStore`] contract: a write that would leave a gap in the
//!   log is refused as the real stores refuse it, and reported.
//! - **A network** ([`net`]) that loses, delays, reorders and duplicates
//!   messages, cuts links one way or both, now and then delivers a message
//!   up to 150 ticks late (terms after it was sent), and replays recent
//!   messages after their sender or receiver restarts.
//! - **Clocks** ([`clock`]) of per-node rates that differ up to the very edge
//!   of the drift bound the lease assumes
//!   ([`raft_core::Config::max_clock_drift_ticks`]), and change mid-run.
//! - **Pauses**: a node stopped as by SIGSTOP (alive, neither ticking nor
//!   receiving), leaders for longer than the election timeout; on resuming
//!   it gets the ticks it missed first, then its backlog of messages.
//! - **Clients** that write at the leader and read at any node, by ReadIndex
//!   or by lease, leader or follower; membership churn, leadership
//!   transfers, and spare nodes that join as the docs tell joiners to
//!   (`Membership::default()`, then a learner entry or a snapshot).
//! - **A state machine** ([`kv`]) whose snapshots differ byte for byte from
//!   node to node for the same state.
//!
//! ## What is checked
//!
//! After every step the [`checker`]s test Raft's safety properties: Election
//! Safety, Log Matching, Leader Completeness, State Machine Safety, quorum
//! intersection of consecutive configurations, that every committed entry
//! stays durable on enough nodes, and that snapshots restore the state they
//! claim. Every message is encoded and decoded with `raft_core::codec` on
//! its way, as a transport carries it, so a message the wire format cannot
//! carry fails the run (the runtime simulator, `raft-sim-runtime`, does not
//! do this yet). The clients' history is checked for [`linearizability`] at the end
//! of the fault phase and at the end of the run, however the run ends; a
//! check that gave up is counted, and too many fail the run or the sweep.
//! After the faults stop, a run must elect a leader and commit a proposal
//! within a bounded number of ticks.
//!
//! ## What the model still cannot see
//!
//! - Clocks that break the drift bound, or jump (NTP steps, VM migration):
//!   rates stay within the bound by construction, and a pause is modelled as
//!   a runtime that delivers the missed ticks before anything else. A
//!   runtime that does otherwise is outside the model.
//! - Anything below `RawNode`: the tokio runtime, the real stores and
//!   transports, their batching and back-pressure. Disks are never corrupt,
//!   never lie about a flush, and never fail a write that the contract
//!   allows.
//! - Partial writes within one `Ready` (a torn write persists all or none),
//!   and writes that complete out of order.
//! - Messages that are altered, forged or sent by a node that is not in the
//!   cluster (the fuzzers and hostile-input tests cover decoding).
//! - Long histories: the linearizability search has a budget, so a history
//!   it gives up on is unjudged (counted, never passed).
//! - Large clusters and many keys: 3 or 5 voters with 2 spares, 3 keys.
//! - Faults combined with races shorter than a tick. In most runs a tick
//!   is 10 steps and every message hop and disk write takes at least one,
//!   so an election, its first commit and an acknowledged write hardly ever
//!   fit inside the one tick by which a lease could be wrong. The
//!   fine-clock runs (1,000 steps a tick, a third of the lease-read runs,
//!   see [`SimOptions::tick_steps`]) reach that race, but with a narrow
//!   fault mix: partitions (mostly an isolated leader), duplicates,
//!   reordering and clock-rate changes, and no crashes, loss, pauses, long
//!   delays, replays, membership changes or transfers. So lease reads meet
//!   those faults only in the other two thirds of the lease-read runs. Their
//!   clients give up after 300 steps, so a read that took longer (a round
//!   waiting for a heartbeat tick, say) would be unknown and unchecked
//!   there. They catch the lease bound one tick too long (mutation
//!   `LeaseOneTickTooLong`) 5 times in the first 5,000 seeds, the first at
//!   seed 871.
//!
//! [`Cluster`] is also the harness of the scripted scenario tests, which drive
//! message delivery by hand, and can pause, resume and inject messages.
//!
//! ## Golden traces of the scenario tests
//!
//! Every scenario in `tests/scenarios.rs` records its cluster's [`trace`]
//! and compares it, line for line, with `tests/golden/<scenario>.trace`
//! ([`golden::check`]). The test's assertions are its claims; the trace
//! pins the path to them: each message as it is sent
//! (`1->2 AppendEntries term=2 prev=1@1 entries=[2@2] commit=1`), each
//! hard-state write and entry made durable, each commit-index advance, each
//! role change, snapshot and driver action, stamped with the cluster's
//! logical time. A change that keeps the claims but takes another path
//! (one more round trip, a different probe, a vote that goes elsewhere)
//! fails with the first differing lines. If it is meant, rewrite the files
//! and review them as a diff:
//!
//! ```text
//! RAFT_GOLDEN_UPDATE=1 cargo test -p raft-sim --test scenarios
//! git diff raft-sim/tests/golden/
//! ```
//!
//! A trace cannot see what is not an event: a message delivered that
//! changes nothing visible (a stale response that is ignored), timers that
//! run without firing, the contents of commands and snapshots (only their
//! lengths), the progress a leader keeps per follower, and applied entries
//! (they follow the commit index, which is traced). Without a network model
//! deliveries are not traced either: they follow the send order, and what
//! a delivery causes is.

#![forbid(unsafe_code)]

pub mod checker;
pub mod clock;
pub mod cluster;
pub mod disk;
pub mod golden;
pub mod kv;
pub mod linearizability;
pub mod net;
pub mod sim;
pub mod trace;

pub use checker::{Checker, Violation};
pub use cluster::{ClientEvent, Cluster, Stats};
pub use disk::{Disk, DiskModel};
pub use net::NetModel;
pub use sim::{run_seed, sweep, Failure, Outcome, SimOptions, Simulation, SweepReport};
