#!/usr/bin/env bash
# Installs what building the workspace needs beyond the Rust toolchain, on a
# fresh Debian machine. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# RocksDB's bindings (bindgen) need libclang and a C++ compiler, but only once
# the RocksDB store is part of the workspace.
if [ -d raft-storage-rocksdb ]; then
    command -v clang >/dev/null 2>&1 || need_apt+=(clang)
    # Asked of dpkg: a libclang-cpp library alone does not serve bindgen.
    dpkg -s libclang-dev >/dev/null 2>&1 || need_apt+=(libclang-dev)
fi
# bench-plot draws its text in DejaVu Sans, read at run time (its tests too).
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
if [ ${#need_apt[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing ${need_apt[*]} from apt"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
        rustup component add "$component"
    fi
done
