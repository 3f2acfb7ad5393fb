//! Proof that the runtime simulator is not vacuous: a core with a deliberate
//! bug fails a seed of the sweep CI runs, by a safety check rather than a
//! stall.
//!
//! `ApplyBeforePersist` is left to raft-sim: it lets a node's state machine
//! run ahead of its durable log, which only a durable state machine would
//! show after a restart; this one is rebuilt from the log, and the entries
//! were committed elsewhere, so clients cannot tell.
//!
//! The bugs exist only in builds with `--cfg raft_mutation`, so this file is
//! empty otherwise. Run it with:
//!
//! ```text
//! RUSTFLAGS="--cfg raft_mutation" CARGO_TARGET_DIR=target/mutation \
//!     cargo test -p raft-sim-runtime --release --test mutations
//! ```
#![cfg(raft_mutation)]

use raft_core::mutation::{self, Mutation};
use raft_sim_runtime::{run_seed, Failure, SimOptions};

/// The seeds `tests/sweep.rs` runs by default: each bug must be caught
/// within them.
const CI_SEEDS: u64 = 1000;

/// Runs seeds with `bug` active until one fails a safety check (seeds that
/// only stall are counted and passed over: a stall proves less).
fn first_failure(bug: Mutation) -> Failure {
    mutation::set(Some(bug));
    let mut stalls = Vec::new();
    let failure = (0..CI_SEEDS).find_map(|seed| match run_seed(seed, &SimOptions::default()) {
        Err(failure) if failure.reason.starts_with("liveness") => {
            stalls.push(seed);
            None
        }
        outcome => outcome.err(),
    });
    mutation::set(None);
    println!("{bug:?}: seeds that only stalled: {stalls:?}");
    failure.unwrap_or_else(|| panic!("{bug:?} survived {CI_SEEDS} seeds (stalls only: {stalls:?})"))
}

#[test]
fn reading_without_confirming_leadership_is_caught() {
    let failure = first_failure(Mutation::ReadWithoutQuorum);
    assert!(failure.reason.contains("not linearizable"), "{failure}");
    println!("{failure}");
}

#[test]
fn acknowledging_before_persisting_is_caught() {
    let failure = first_failure(Mutation::AckBeforePersist);
    println!("{failure}");
}

#[test]
fn voting_without_the_log_check_is_caught() {
    let failure = first_failure(Mutation::VoteWithoutLogCheck);
    println!("{failure}");
}

#[test]
fn counting_timer_firings_as_lease_ticks_is_caught() {
    // Only pauses expose it: a paused leader's lease outlives real time.
    let failure = first_failure(Mutation::LeaseOnLogicalTicksOnly);
    assert!(failure.reason.contains("not linearizable"), "{failure}");
    println!("{failure}");
}
