//! Proof that the checkers are not vacuous: a core with a deliberate bug is
//! caught, by the sweep and by the scenario built for that bug.
//!
//! The bugs exist only in builds with `--cfg raft_mutation`, so this file is
//! empty otherwise. Run it with:
//!
//! ```text
//! RUSTFLAGS="--cfg raft_mutation" cargo test -p raft-sim --release --target-dir target/mutation --test mutations
//! ```
#![cfg(raft_mutation)]

use raft_core::mutation::{self, Mutation};
use raft_sim::{run_seed, Failure};

/// The number of seeds `.ci/run` sweeps: each bug must be caught within it.
const CI_SEEDS: u64 = 5_000;

/// Sweeps seeds with `bug` active until one fails. The sweep must catch it
/// within the seeds CI runs, and by a safety property, not by a stall.
fn first_failure(bug: Mutation) -> Failure {
    mutation::set(Some(bug));
    let failure = (0..CI_SEEDS).find_map(|seed| run_seed(seed).err());
    mutation::set(None);
    let failure =
        failure.unwrap_or_else(|| panic!("{bug:?} survived {CI_SEEDS} seeds: the checkers are vacuous"));
    assert_ne!(failure.violation.property, "Liveness", "{bug:?} was only caught as a stall: {failure}");
    failure
}

#[test]
fn voting_without_the_log_check_is_caught() {
    let failure = first_failure(Mutation::VoteWithoutLogCheck);
    println!("{failure}");
}

#[test]
fn committing_an_earlier_term_entry_by_count_is_caught() {
    let failure = first_failure(Mutation::CommitEarlierTermByCount);
    println!("{failure}");
}

#[test]
fn acknowledging_before_persisting_is_caught() {
    let failure = first_failure(Mutation::AckBeforePersist);
    println!("{failure}");
}
