//! `raft-load`: the earlier name of `cluster-bench`, kept so existing
//! commands (`--proposers`, `--nodes`, `--operations` are aliases) still
//! run. See `cluster-bench --help`.

fn main() -> std::process::ExitCode {
    benches::cli::main()
}
