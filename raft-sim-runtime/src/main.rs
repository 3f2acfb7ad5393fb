//! The seed runner: `sweep <from> <to>` runs seeds and reports failures and
//! speed; `replay <seed>` runs one seed and prints its trace.

use raft_sim_runtime::{run_seed, sweep, SimOptions};
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok());
    match (args.first().map(String::as_str), number(1), number(2)) {
        (Some("sweep"), Some(from), Some(to)) => run_sweep(from, to),
        (Some("replay"), Some(seed), None) => replay(seed),
        _ => {
            eprintln!("usage: raft-sim-runtime sweep <from> <to> | replay <seed>");
            ExitCode::FAILURE
        }
    }
}

fn run_sweep(from: u64, to: u64) -> ExitCode {
    let started = Instant::now();
    let (mut passed, mut gave_up) = (0u64, 0u64);
    let failures = sweep(from, to, &SimOptions::default(), |outcome| match outcome {
        Ok(report) => {
            passed += 1;
            gave_up += u64::from(report.gave_up);
        }
        Err(failure) => eprintln!("{failure}"),
    });
    let seconds = started.elapsed().as_secs_f64();
    let seeds = to.saturating_sub(from);
    println!(
        "{seeds} seeds in {seconds:.1}s ({:.1} seeds/s): {passed} passed ({gave_up} with linearizability unchecked, over budget), {} failed",
        seeds as f64 / seconds.max(1e-9),
        failures.len()
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn replay(seed: u64) -> ExitCode {
    let options = SimOptions { echo: true, ..SimOptions::default() };
    match run_seed(seed, &options) {
        Ok(report) => {
            println!(
                "seed {seed} passed: {} operations, {} puts acknowledged, {} applies, {:?} simulated, network {:?}",
                report.history.len(),
                report.acknowledged,
                report.applies,
                report.simulated,
                report.network
            );
            ExitCode::SUCCESS
        }
        Err(failure) => {
            println!("{failure}");
            ExitCode::FAILURE
        }
    }
}
