//! `raft-sim`: run the deterministic simulator from the command line.
//!
//! ```text
//! raft-sim demo                 # a 3-node cluster through a crash and a partition, narrated
//! raft-sim replay <seed>        # one seeded run with its full trace
//! raft-sim sweep <from> <to>    # every seed in [from, to), on every core
//! ```

use raft_sim::{Cluster, SimOptions, Simulation};
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).and_then(|s| s.parse::<u64>().ok());
    match args.first().map(String::as_str) {
        Some("demo") | None => demo(),
        Some("replay") => match arg(1) {
            Some(seed) => replay(seed),
            None => usage(),
        },
        Some("sweep") => match (arg(1), arg(2)) {
            (Some(from), Some(to)) if from < to => sweep(from, to),
            _ => usage(),
        },
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: raft-sim [demo | replay <seed> | sweep <from> <to>]");
    ExitCode::from(2)
}

fn replay(seed: u64) -> ExitCode {
    let options = SimOptions::from_seed(seed);
    println!("{options:?}");
    let mut sim = Simulation::new(options);
    sim.enable_trace();
    let result = sim.run();
    for line in sim.cluster().trace() {
        println!("{line}");
    }
    match result {
        Ok(outcome) => {
            println!("seed {seed} passed: {outcome:?}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            println!("{failure}");
            ExitCode::FAILURE
        }
    }
}

/// Runs seeds `[from, to)` on every available core and reports the failures.
fn sweep(from: u64, to: u64) -> ExitCode {
    let started = Instant::now();
    let report = raft_sim::sweep(from..to, |failure| println!("{failure}"));
    let (count, failed, lin) = (to - from, report.failures.len() as u64, report.linearizability);
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{} passed, {failed} failed: seeds {from}..{to} in {seconds:.1}s ({:.0} seeds/s) on {} threads",
        count - failed,
        count as f64 / seconds,
        report.threads
    );
    println!(
        "linearizability: {} key histories checked, the checker gave up on {} (bound {})",
        lin.checked,
        lin.gave_up,
        raft_sim::sim::MAX_GAVE_UP_PER_SWEEP
    );
    if report.gave_up_too_often() {
        println!("FAILED: the checker gave up too often to call this sweep a pass");
        return ExitCode::FAILURE;
    }
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A narrated run: election, replication, a leader crash, a partition, healing.
fn demo() -> ExitCode {
    let mut c = Cluster::new(3);
    c.enable_trace();
    let say = |c: &Cluster, what: &str| {
        let leader = c.leader().map_or("none".to_string(), |l| format!("n{l} (term {})", c.node(l).term()));
        println!("-- {what}: leader {leader}, {} entries committed", c.committed().len());
    };
    println!("A simulated 3-node raft-core cluster (logical time, in-memory disks and network).\n");
    c.tick_all(25);
    say(&c, "after the first election");
    let leader = c.leader().expect("a leader after 25 ticks");
    for i in 0..5 {
        c.propose(leader, format!("set x={i}"));
    }
    c.stabilize();
    say(&c, "after 5 proposals");
    c.crash(leader);
    c.tick_all(30);
    say(&c, &format!("after n{leader} crashed"));
    c.restart(leader);
    c.tick_all(5);
    say(&c, &format!("after n{leader} restarted and caught up"));
    let new_leader = c.leader().expect("a leader");
    c.isolate(new_leader);
    c.tick_all(40);
    say(&c, &format!("after n{new_leader} was partitioned away (check-quorum made it step down)"));
    c.heal();
    c.tick_all(10);
    let leader = c.leader().expect("a leader");
    c.propose(leader, "set y=1");
    c.stabilize();
    say(&c, "after healing and one more proposal");
    println!("\nThe last 25 events of the trace:");
    let trace = c.trace();
    for line in &trace[trace.len().saturating_sub(25)..] {
        println!("  {line}");
    }
    println!("\nEvery step was checked for Election Safety, Log Matching, Leader Completeness and");
    println!("State Machine Safety. Try `cargo run -p raft-sim --release -- sweep 0 1000`.");
    ExitCode::SUCCESS
}
