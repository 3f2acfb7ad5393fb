#!/usr/bin/env bash
# Starts a local 3-node cluster and shows what happens in it.
#
# Until the `raft-kv` node exists, this runs a simulated 3-node cluster of the
# protocol core (logical time, simulated disks and network): an election,
# replication, a leader crash and restart, a partition, and healing, each step
# checked for Raft's safety properties.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --release --locked -p raft-sim -- demo
