//! Proof that the runtime simulator is not vacuous: a core with a deliberate
//! bug fails a seed of the sweep CI runs, by a safety check rather than a
//! stall.
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
const CI_SEEDS: u64 = 300;

/// Runs seeds with `bug` active until one fails, which must be by a safety
/// check.
fn first_failure(bug: Mutation) -> Failure {
    mutation::set(Some(bug));
    let failure = (0..CI_SEEDS).find_map(|seed| run_seed(seed, &SimOptions::default()).err());
    mutation::set(None);
    let failure =
        failure.unwrap_or_else(|| panic!("{bug:?} survived {CI_SEEDS} seeds: the simulator is vacuous"));
    assert!(!failure.reason.starts_with("liveness"), "{bug:?} was only caught as a stall: {failure}");
    failure
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
fn applying_before_persisting_is_caught() {
    let failure = first_failure(Mutation::ApplyBeforePersist);
    println!("{failure}");
}

#[test]
fn voting_without_the_log_check_is_caught() {
    let failure = first_failure(Mutation::VoteWithoutLogCheck);
    println!("{failure}");
}
