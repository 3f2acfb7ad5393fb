//! The seed sweep CI runs: a few hundred seeds by default,
//! `RAFT_RUNTIME_SIM_SEEDS` for more (and `RAFT_RUNTIME_SIM_FIRST` to start
//! elsewhere). A failing seed prints the command that replays it.

use raft_sim_runtime::{run_seed, sweep, SimOptions};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn seeds_pass_every_check() {
    let first = env("RAFT_RUNTIME_SIM_FIRST", 0);
    let seeds = env("RAFT_RUNTIME_SIM_SEEDS", 1000);
    let started = std::time::Instant::now();
    let failures = sweep(first, first + seeds, &SimOptions::default(), |_| {});
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!("{seeds} seeds in {elapsed:.1}s ({:.1} seeds/s)", seeds as f64 / elapsed.max(1e-9));
    for failure in &failures {
        eprintln!("{failure}");
    }
    assert!(failures.is_empty(), "{} of {seeds} seeds failed (replay commands above)", failures.len());
}

/// The same seed twice gives the same run: every client operation with its
/// outcome, every fault, every start and crash, at the same simulated times.
#[test]
fn a_seed_replays_identically() {
    for seed in [7, 1234, 99_999] {
        let (first, second) =
            (run_seed(seed, &SimOptions::default()), run_seed(seed, &SimOptions::default()));
        match (first, second) {
            (Ok(first), Ok(second)) => {
                assert!(!first.history.is_empty(), "seed {seed} ran no operations");
                let diverged = first.trace.iter().zip(&second.trace).position(|(a, b)| a != b);
                if let Some(line) = diverged {
                    panic!(
                        "seed {seed} diverged at trace line {line}:\n  {}\n  {}",
                        first.trace[line], second.trace[line]
                    );
                }
                assert_eq!(first, second, "seed {seed} did not replay identically");
            }
            (first, second) => panic!("seed {seed} failed: {:?} / {:?}", first.err(), second.err()),
        }
    }
}
