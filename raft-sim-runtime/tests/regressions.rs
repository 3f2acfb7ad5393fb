//! Seeds that once failed, kept as named tests. A seed names a run of the
//! schedule as it was when the seed was found: a change to what a seed
//! draws (the nemesis, the clients) makes it another run, so each test also
//! says what it caught.

use raft_sim_runtime::{run_seed, SimOptions};

fn passes(seed: u64) {
    if let Err(failure) = run_seed(seed, &SimOptions::default()) {
        panic!("{failure}");
    }
}

/// A leader paused for 1.26 s, past the election of another, served a lease
/// read from its old state on resume: its lease counted timer firings, and
/// missed ones were lost (fixed on branch runtime-safety by deriving ticks
/// from the monotonic clock). Failed with "not linearizable on key 1" before.
#[test]
fn a_paused_leader_serves_no_stale_lease_read_seed_254() {
    passes(254);
}

/// The same bug, with node 1 paused for 1.13 s (key 4).
#[test]
fn a_paused_leader_serves_no_stale_lease_read_seed_491() {
    passes(491);
}
