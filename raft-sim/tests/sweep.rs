//! The seed sweep: thousands of randomized runs, each checked for safety after
//! every step and for liveness once faults stop.
//!
//! `RAFT_SIM_SEEDS=N` sweeps seeds `0..N` (default 5,000); `RAFT_SIM_FROM`
//! moves the start. For millions of seeds prefer the release binary:
//! `cargo run -p raft-sim --release -- sweep 0 1000000`.

use raft_sim::{run_seed, SimOptions, Simulation};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn seed_sweep() {
    let from = env_u64("RAFT_SIM_FROM", 0);
    let to = from + env_u64("RAFT_SIM_SEEDS", 5_000);
    let report = raft_sim::sweep(from..to, |_| {});
    let failures: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed:\n{}",
        failures.len(),
        to - from,
        failures.join("\n")
    );
    let lin = report.linearizability;
    assert!(lin.checked > (to - from), "only {} key histories were checked", lin.checked);
    assert!(
        !report.gave_up_too_often(),
        "the linearizability checker gave up on {} of {} key histories",
        lin.gave_up,
        lin.checked
    );
}

/// A seed is a complete description of a run: replaying it gives the same
/// trace, event for event.
#[test]
fn a_replayed_seed_produces_the_identical_trace() {
    // 878 is a fine-clock run (a thousand steps a tick).
    for seed in [3, 11, 42, 878] {
        let traces: Vec<Vec<String>> = (0..2)
            .map(|_| {
                let mut sim = Simulation::new(SimOptions::from_seed(seed));
                sim.enable_trace();
                sim.run().expect("seed passes");
                sim.cluster().trace().to_vec()
            })
            .collect();
        assert!(traces[0].len() > 100, "seed {seed} did too little to compare");
        assert_eq!(traces[0], traces[1], "seed {seed} is not deterministic");
    }
}

/// Runs that fault heavily still commit: the sweep is not passing by doing nothing.
#[test]
fn runs_make_progress_under_faults() {
    let outcomes: Vec<_> = (0..200).map(|seed| run_seed(seed).expect("seed passes")).collect();
    let committed: u64 = outcomes.iter().map(|o| o.committed).sum();
    let elections = outcomes.iter().filter(|o| o.max_term > 2).count();
    assert!(committed / 200 > 20, "only {committed} entries committed in 200 runs");
    assert!(elections > 100, "only {elections} of 200 runs saw more than two terms");
}

/// The checkers see every committed entry: compaction and snapshots never
/// leave a gap in their record (which would silently stop the checks that
/// compare against it).
#[test]
fn the_checkers_record_every_committed_entry() {
    for seed in 0..300 {
        let mut sim = Simulation::new(SimOptions::from_seed(seed));
        sim.run().expect("seed passes");
        let cluster = sim.cluster();
        let highest =
            cluster.ids().iter().filter_map(|&id| cluster.try_node(id)).map(|r| r.log().committed()).max();
        assert_eq!(cluster.committed().len() as u64, highest.unwrap_or(0), "seed {seed}");
    }
}
