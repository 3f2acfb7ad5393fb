//! `bench-plot`: draws `throughput.png` and `latency.png` from the JSON
//! lines of `cluster-bench --json` runs (see `benches::plot`).
//!
//! ```sh
//! bench-plot --out docs/bench results/*.jsonl
//! ```

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// The flags of `bench-plot`.
#[derive(Parser, Debug)]
#[command(
    name = "bench-plot",
    version = concat!(env!("CARGO_PKG_VERSION"), " (Timber)"),
    about = "PNG plots (throughput against clients, latency CDFs) of cluster-bench --json results"
)]
struct Args {
    /// Where to write throughput.png and latency.png.
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// A TrueType font for the text.
    #[arg(long, default_value = benches::plot::DEFAULT_FONT)]
    font: PathBuf,
    /// Files of cluster-bench output; lines that are not `--json` reports
    /// are skipped.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match benches::plot::plot_files(&args.inputs, &args.out, &args.font) {
        Ok(pictures) => {
            for picture in pictures {
                println!("{}", picture.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-plot: {e}");
            ExitCode::FAILURE
        }
    }
}
