//! # raft-sim-runtime: the tokio runtime under deterministic simulation
//!
//! `raft-sim` simulates the sans-I/O [`raft_core::RawNode`]; this crate runs
//! whole clusters of the *runtime*, [`raft_core::runtime::Raft`], with its
//! core task, the writer's group commit, the applier, forwarding, request
//! routing, read and forward timeouts, and shutdown, as users run it. Every
//! node runs on one single-threaded tokio runtime whose clock is paused: it
//! jumps to the next timer whenever every task waits, so seconds of
//! simulated time cost milliseconds, and the order in which tasks run is
//! fixed by the program and the seed alone.
//!
//! ```text
//! cargo run -p raft-sim-runtime --release -- replay <seed>      # one run, with its trace
//! cargo run -p raft-sim-runtime --release -- sweep 0 10000      # many seeds
//! RAFT_RUNTIME_SIM_SEEDS=5000 cargo test -p raft-sim-runtime --release --test sweep
//! ```
//!
//! ## A run
//!
//! A seed draws the cluster (3 or 5 voters, lease reads on or off, how often
//! snapshots are taken, how slow the disks are), then:
//!
//! 1. clients ([`client`]) run closed loops of puts (`propose` at the node
//!    they pick, or `propose_or_forward`) and reads (linearizable, or lease
//!    when enabled, at the leader or any follower) on five registers, each
//!    recorded with its invocation, completion and outcome: ok, definitely
//!    failed (the runtime said nothing happened) or unknown;
//! 2. meanwhile the [`nemesis`] crashes nodes, the leader among them, and
//!    restarts them later from their disks; cuts the power to a majority at
//!    once; pauses nodes (the leader among them) for up to 1.5 s, longer
//!    than an election timeout, as SIGSTOP would; cuts the network into two
//!    sides, one way, or around the leader; makes it lose, delay (so
//!    reorder) and duplicate messages; transfers leadership; and removes a
//!    voter (the leader at times) and adds it back as a learner that is
//!    promoted once caught up ([`membership`]);
//! 3. everything heals (every node a voter again), and within ten simulated
//!    seconds a leader must commit a put that every node applies (liveness);
//! 4. every node crashes at once and restarts from its disk alone; progress
//!    is required again, and the leader reads every register.
//!
//! ## What is checked
//!
//! - **State Machine Safety**, as nodes apply: whatever any node (any
//!   incarnation of it) applies at an index agrees with what every other
//!   applied there, and each incarnation applies in increasing order
//!   ([`kv::Recorder`]); a snapshot restored, and every node's registers at
//!   the end, equal the one history replayed to that point.
//! - **Durability**: every acknowledged put was applied, and the registers
//!   after the full restart come from the same history, so a lost
//!   acknowledged write fails the final reads.
//! - **Linearizability** of the client history, with `raft-sim`'s checker
//!   ([`raft_sim::linearizability`]); unknown puts may or may not have taken
//!   effect, failed ones must not have. Times are readings of one logical
//!   counter taken as operations start and end: on one thread its order is
//!   the real order of events.
//! - **Liveness** after healing and after the full restart.
//! - **Determinism**: the same seed gives the same trace and history.
//!
//! ## Speed
//!
//! A run is 3 simulated seconds of faults and clients plus healing and a full
//! restart, about 4 to 15 simulated seconds in all, for 5 to 10 ms of CPU
//! in release builds: about 100 seeds per second on one core of the shared
//! development machine (the 1000 seeds of `tests/sweep.rs` take under 30 s
//! in the test profile, which optimises tokio and this crate).
//!
//! ## The simulated world
//!
//! - The network ([`net`]) is this crate's own, seeded: raft-core's
//!   `InProcessNetwork` draws losses from a counter shared across runs and
//!   spawns a task per delayed message.
//! - A disk ([`store`]) is a `MemLogStore` behind a seeded latency. A crash
//!   ([`raft_core::runtime::Raft::crash`], feature `testing`) aborts the
//!   node's tasks, so a write waiting on its latency never lands: the store
//!   holds exactly what it acknowledged.
//!
//! ## What it cannot see
//!
//! - **One clock for every node.** All nodes share the runtime's clock, so
//!   there is no drift between them: a lease that is only safe under a
//!   bounded drift is never tested beyond the bound. Pauses (a node that
//!   stops while the others go on) are the only way one node's view of time
//!   falls behind.
//! - **One thread.** The multi-threaded scheduler's interleavings, and races
//!   between the core, writer and applier tasks that only parallel execution
//!   shows, do not happen here.
//! - **No real I/O.** No sockets (framing, connection loss, the transports'
//!   own queues), no disks (torn writes, fsync lies, disk-full errors, slow
//!   reads); `MemLogStore` applies a write atomically.
//! - **No panics or storage errors injected**, no full queues (the inbound
//!   and request capacities are never reached), and no memory pressure.
//! - **Membership** only shrinks by one voter and grows back: no new node
//!   ids, no replacement of several voters at once.
//! - Runs are short (seconds of simulated time), so slow leaks and long-term
//!   starvation are out of sight.

#![forbid(unsafe_code)]

pub mod client;
pub mod cluster;
pub mod kv;
pub mod membership;
pub mod nemesis;
pub mod net;
pub mod sim;
pub mod store;

pub use sim::{params, run_seed, sweep, Failure, Report, SimOptions};
