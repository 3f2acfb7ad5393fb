#!/usr/bin/env bash
# Starts a local 3-node raft-kv cluster: three separate `raft-kv node`
# processes on loopback, on RocksDB and TCP, with their data and logs in
# ./raft-kv-cluster. It prints each node's endpoints and commands to try;
# Ctrl-C stops every node, and running this again resumes the same cluster
# with its data. Flags are passed on to `raft-kv cluster` (see --help):
#   scripts/run-cluster.sh --nodes 5 --transport quic --dir /tmp/kv
#
# The simulated cluster this script used to show is still there:
#   cargo run --release -p raft-sim -- demo
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked -p raft-kv-example --bin raft-kv
exec "${CARGO_TARGET_DIR:-target}/release/raft-kv" cluster "$@"
