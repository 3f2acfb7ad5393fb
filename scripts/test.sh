#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, docs, every crate's
# tests (including the simulator's 5,000-seed sweep and the storage
# conformance suite; raft-net-tcp's lints, docs and tests also with its `tls`
# feature), that the benchmarks compile, and the mutation tests that prove the
# simulators' checkers catch deliberate bugs (the protocol simulator's and
# the runtime simulator's, raft-sim-runtime, whose 1,000-seed sweep is part
# of the workspace tests), raft-chaos's fault runs of real raft-kv
# processes over TCP and QUIC, and a few seconds each of the load generator,
# the side-by-side run against etcd (installed from apt if missing) and the
# plots drawn from their results.
#
#   RAFT_SIM_SEEDS=100000 scripts/test.sh    # a longer sweep
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

target="${CARGO_TARGET_DIR:-target}"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p raft-net-tcp --all-targets --features tls --locked -- -D warnings

step "the sans-I/O crates pull no runtime"
# raft-core without features, and the simulator on it, must not depend on
# tokio, tracing or metrics (the runtime is the opt-in feature `runtime`).
for crate in raft-core raft-sim; do
    if cargo tree -p "$crate" -e normal --locked --prefix none | grep -E '^(tokio|tracing|metrics) '; then
        echo "$crate pulls a runtime dependency (above)" >&2
        exit 1
    fi
done

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
RUSTDOCFLAGS="-D warnings" cargo doc -p raft-net-tcp --no-deps --features tls --locked --quiet

step "cargo test (seed sweep: ${RAFT_SIM_SEEDS:-5000} seeds; raft-chaos over TCP and QUIC)"
# raft-chaos's runs start the raft-kv that this same build makes (with
# RocksDB), rather than building one of their own.
RAFT_KV_BIN="$(realpath -m "$target")/debug/raft-kv" cargo test --workspace --locked
cargo test -p raft-net-tcp --features tls --locked

step "benchmarks compile"
# Built in the test profile, reusing the test build: compiling every
# dependency (RocksDB's C++ among them) a second time with optimisations
# would double CI's time to show the same thing. `cargo bench` builds them
# optimised when they are run.
cargo test --workspace --benches --no-run --locked --quiet

step "the load generator, the etcd comparison and the plots run (a few seconds each)"
# The debug binaries the test build made: what is checked is that the
# commands BENCHMARKS.md gives work end to end, not their figures.
bench_out="$(mktemp -d "${TMPDIR:-/tmp}/raft-bench-ci.XXXXXX")"
"$target/debug/cluster-bench" --members 3 --clients 16 --seconds 2 --transport tcp --progress 0 \
    --json >"$bench_out/inproc.jsonl"
scripts/bench-vs-etcd.sh --seconds 2 --clients "1 8" --raft-kv "$target/debug/raft-kv" \
    --cluster-bench "$target/debug/cluster-bench" --json-out "$bench_out/vs-etcd.jsonl"
"$target/debug/bench-plot" --out "$bench_out" "$bench_out/inproc.jsonl" "$bench_out/vs-etcd.jsonl"
rm -rf "$bench_out"

step "mutation tests: the simulator must catch deliberately broken cores"
# A separate target directory: the cfg changes every crate's build.
RUSTFLAGS="--cfg raft_mutation" CARGO_TARGET_DIR="$target/mutation" \
    cargo test -p raft-sim --release --locked --test mutations
RUSTFLAGS="--cfg raft_mutation" CARGO_TARGET_DIR="$target/mutation" \
    cargo test -p raft-sim-runtime --release --locked --test mutations
