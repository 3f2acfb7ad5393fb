//! The `raft-chaos` binary: runs the fault test the flags describe and
//! prints its one-line report (exit code 1 on a violation, 2 when the run
//! could not finish or the checker could not decide).

#![forbid(unsafe_code)]

use clap::Parser;
use raft_chaos::{run, Options};
use raft_sim::linearizability::Verdict;
use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = Options::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("raft-chaos: cannot start the tokio runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(opts)) {
        Ok(report) => {
            println!("{report}");
            if let Some(found) = &report.atomicity {
                println!("transaction atomicity: {found}");
            }
            match &report.verdict {
                Verdict::Linearizable if report.atomicity.is_some() => ExitCode::from(1),
                Verdict::Linearizable => ExitCode::SUCCESS,
                Verdict::NotLinearizable { key, explanation } => {
                    println!("violation on key k{key}: {explanation}");
                    ExitCode::from(1)
                }
                Verdict::GaveUp { .. } => ExitCode::from(2),
            }
        }
        Err(error) => {
            eprintln!("raft-chaos: {error}");
            ExitCode::from(2)
        }
    }
}
