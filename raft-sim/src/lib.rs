//! # raft-sim: deterministic simulation of raft-core clusters
//!
//! Runs whole clusters of [`raft_core::RawNode`]s in one thread, on logical
//! time, with a model of disks that lose unflushed writes on a crash and a
//! network that loses, delays, reorders and duplicates messages and can be
//! partitioned. Everything random is drawn from one seed, so a failing run
//! replays exactly:
//!
//! ```text
//! cargo run -p raft-sim --release -- replay <seed>     # one run, with its trace
//! cargo run -p raft-sim --release -- sweep 0 100000    # many seeds, both cores
//! ```
//!
//! After every step the [`checker`]s test Raft's safety properties: Election
//! Safety, Log Matching, Leader Completeness, State Machine Safety, and that no
//! committed entry is ever lost or changed. After the faults stop, a run must
//! elect a leader and commit a proposal within a bounded number of ticks.
//!
//! [`Cluster`] is also the harness of the scripted scenario tests, which drive
//! message delivery by hand.

#![forbid(unsafe_code)]

pub mod checker;
pub mod clock;
pub mod cluster;
pub mod disk;
pub mod kv;
pub mod linearizability;
pub mod net;
pub mod sim;

pub use checker::{Checker, Violation};
pub use cluster::{ClientEvent, Cluster, Disk, DiskModel, NetModel, Stats};
pub use sim::{run_seed, sweep, Failure, Outcome, SimOptions, Simulation, SweepReport};
