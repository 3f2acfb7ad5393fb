#!/usr/bin/env bash
# Side by side on this machine: a 3-node etcd cluster, then a 3-node raft-kv
# cluster (RocksDB + TCP, synced writes), both on loopback with their data in
# one temporary directory, driven by the same load generator (cluster-bench)
# at 1, 16, 64 and 256 connections spread over the three nodes: writes of
# 16-byte keys (a new key each time) and 64-byte values. In the same run it
# measures one 4 KiB fdatasync on that disk and one loopback TCP round trip,
# the floors every durable figure is read against. It prints a Markdown table
# of throughput and p50/p99 latency for both, and the ratios.
#
#   scripts/bench-vs-etcd.sh                    # 10 s per point
#   scripts/bench-vs-etcd.sh --seconds 3 --clients "1 16" --reads 50
#   scripts/bench-vs-etcd.sh --raft-kv target/release/raft-kv   # no build of raft-kv
#   scripts/bench-vs-etcd.sh --json-out results.jsonl   # then: bench-plot results.jsonl
#
# --raft-kv PATH and --cluster-bench PATH use binaries built already instead
# of building them (raft-kv's RocksDB takes many minutes to compile).
# Installs etcd-server and etcd-client from apt if etcd is missing. Every
# process it starts is stopped on exit (Ctrl-C included); ports are free
# ones picked at start, so runs in parallel do not collide; the data
# directory is removed unless --keep is given.
set -euo pipefail
# A failing command inside $(...) fails the script too.
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

seconds=10
clients="1 16 64 256"
reads=0
keep=0
raft_kv=""
bench=
json_out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --clients) clients="$2"; shift 2 ;;
        --reads) reads="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        --raft-kv) raft_kv="$2"; shift 2 ;;
        --cluster-bench) bench="$2"; shift 2 ;;
        --json-out) json_out="$2"; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing etcd-server and etcd-client from apt"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq etcd-server etcd-client >/dev/null
fi
target="${CARGO_TARGET_DIR:-target}"
if [ -z "$raft_kv" ] || [ -z "$bench" ]; then
    scripts/setup.sh
fi
# Two invocations, not one: each keeps the feature set of its own build, so
# neither rebuilds the other's dependencies (RocksDB's C++ above all).
if [ -z "$raft_kv" ]; then
    cargo build --release --locked -p raft-kv-example --bin raft-kv
    raft_kv="$target/release/raft-kv"
fi
if [ -z "$bench" ]; then
    cargo build --release --locked -p benches --bin cluster-bench
    bench="$target/release/cluster-bench"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/bench-vs-etcd.XXXXXX")"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        # raft-kv's supervisor stops its nodes within 10 s of SIGTERM.
        for _ in $(seq 1 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    pids=()
    if [ "$keep" -eq 1 ]; then
        echo "data and logs kept in $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Polls `$1` (a command) until it succeeds, for at most `$2` seconds.
wait_for() {
    local deadline=$((SECONDS + $2))
    until eval "$1" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            return 1
        fi
        sleep 0.2
    done
}

# Runs the load generator and prints its --json line. Failed operations (a
# leader change under load) are counted and shown in the table, not fatal.
load() {
    local out
    out="$("$bench" "$@" --payload 64 --reads "$reads" --seconds "$seconds" --progress 0 --no-baseline \
        --allow-errors --json)"
    # What ran and its result line, for the reader; the JSON line for the table.
    echo "$out" | sed -n '1p' >&2
    echo "$out" | tail -n 2 | sed -n '1p' >&2
    if [ -n "$json_out" ]; then
        echo "$out" | tail -n 1 >>"$json_out"
    fi
    echo "$out" | tail -n 1
}

# The value of numeric field `$1` of the JSON object `$2` (0 if it has none).
field() {
    local value
    value="$(grep -oE "\"$1\":[-0-9.e+]+" <<<"$2" | head -n 1 | sed 's/.*://')" || true
    echo "${value:-0}"
}

# The floors, measured just before each system's run (the disk of a shared
# machine varies by several times within minutes): prints "SYNC_US RTT_US".
floors() {
    local json
    json="$("$bench" --floors --dir "$work" --json | tail -n 1)"
    awk -v s="$(field fdatasync_4k_us "$json")" -v r="$(field loopback_rtt_us "$json")" \
        'BEGIN { printf "%.1f %.1f\n", s, r }'
}

if [ -n "$json_out" ]; then
    : >"$json_out"
fi
echo "== data in $work"
read -r etcd_sync etcd_rtt <<<"$(floors)"
echo "floors before etcd: fdatasync 4 KiB $etcd_sync us, loopback round trip $etcd_rtt us"
echo "== etcd $(etcd --version 2>/dev/null | head -n 1 | sed 's/.*: //'), 3 members"
read -r -a ports <<<"$("$bench" --free-ports 6)"
cluster=""
endpoints=""
for i in 1 2 3; do
    cluster+="${cluster:+,}e$i=http://127.0.0.1:${ports[$((i + 2))]}"
    endpoints+="${endpoints:+,}http://127.0.0.1:${ports[$((i - 1))]}"
done
for i in 1 2 3; do
    client="http://127.0.0.1:${ports[$((i - 1))]}"
    peer="http://127.0.0.1:${ports[$((i + 2))]}"
    etcd --name "e$i" --data-dir "$work/etcd-$i" \
        --listen-client-urls "$client" --advertise-client-urls "$client" \
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
        --initial-cluster "$cluster" --initial-cluster-token "bench-$$" --initial-cluster-state new \
        --logger zap --log-level warn >"$work/etcd-$i.log" 2>&1 &
    pids+=($!)
done
if ! wait_for "etcdctl --endpoints=$endpoints endpoint health" 60; then
    echo "etcd did not come up in 60 s; logs in $work/etcd-*.log" >&2
    keep=1
    exit 1
fi
declare -A etcd_result
for n in $clients; do
    etcd_result[$n]="$(load --etcd "$endpoints" --clients "$n")"
done
cleanup_etcd() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
cleanup_etcd

read -r kv_sync kv_rtt <<<"$(floors)"
echo "floors before raft-kv: fdatasync 4 KiB $kv_sync us, loopback round trip $kv_rtt us"
echo "== raft-kv, 3 nodes, RocksDB + TCP"
"$raft_kv" cluster --nodes 3 --storage rocksdb --transport tcp --dir "$work/raft-kv" >"$work/raft-kv.log" 2>&1 &
pids+=($!)
if ! wait_for "grep -q 'nodes are up' '$work/raft-kv.log'" 120; then
    echo "raft-kv did not come up in 120 s; see $work/raft-kv.log" >&2
    keep=1
    exit 1
fi
endpoints="$(grep -o 'API http://[0-9.:]*' "$work/raft-kv.log" | sed 's/API //' | paste -sd, -)"
declare -A kv_result
for n in $clients; do
    kv_result[$n]="$(load --target "$endpoints" --clients "$n")"
done

echo
echo "floors (p50), before etcd: fdatasync 4 KiB $etcd_sync us, loopback round trip $etcd_rtt us;" \
    "before raft-kv: $kv_sync us, $kv_rtt us. $seconds s per point, ${reads} % reads, 16 B keys, 64 B values"
echo
echo "| connections | etcd ops/s | raft-kv ops/s | raft-kv / etcd | etcd p50 us | raft-kv p50 us | p50 raft-kv / etcd | etcd p99 us | raft-kv p99 us | p50 / its fdatasync: etcd, raft-kv | raft-kv proposals per leader log write | failed ops: etcd, raft-kv |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in $clients; do
    e="${etcd_result[$n]}"
    k="${kv_result[$n]}"
    awk -v n="$n" -v es="$etcd_sync" -v ks="$kv_sync" \
        -v eo="$(field ops_per_sec "$e")" -v ko="$(field ops_per_sec "$k")" \
        -v e50="$(field p50_us "$e")" -v k50="$(field p50_us "$k")" \
        -v e99="$(field p99_us "$e")" -v k99="$(field p99_us "$k")" \
        -v ee="$(field errors "$e")" -v ke="$(field errors "$k")" -v kg="$(field proposals_per_write "$k")" \
        'BEGIN { printf "| %d | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f | %.0f | %.0f | %.1f, %.1f | %.1f | %d, %d |\n",
                 n, eo, ko, ko / eo, e50, k50, k50 / e50, e99, k99, e50 / es, k50 / ks, kg, ee, ke }'
done
