//! `raft-chaos`: a Jepsen-style fault test of real `raft-kv` processes.
//!
//! The simulator (`raft-sim`) checks the protocol in a model; this checks
//! the system users run: separate `raft-kv node` processes on loopback,
//! real sockets, real clocks, and (with `--storage rocksdb`) real disks.
//!
//! # What a run does
//!
//! 1. Starts 3 or 5 nodes ([`cluster`]) with `--peer-via`, so every Raft
//!    link goes through a fault-injecting proxy of its own, one per
//!    direction ([`proxy`]; TCP, or UDP for QUIC).
//! 2. Runs concurrent clients ([`client`]): puts of unique values, gets
//!    at `linearizable` and `lease` consistency, compare-and-sets,
//!    deletes and two-key transactions, in the proportions of `--mix`, on
//!    a few keys, through every node; each operation is recorded with its
//!    invocation and completion times (one monotonic clock) and its
//!    outcome, `ok`, `fail` (definitely not applied) or `unknown`.
//! 3. Meanwhile injects faults from a schedule seeded by `--seed`
//!    ([`faults`]): SIGKILL and restart of a node or the leader (with the
//!    memory store the node is removed and rejoins empty through `--join`,
//!    [`membership`]), of every node at once (RocksDB), SIGSTOP/SIGCONT
//!    pauses of several election timeouts, and partitions (isolated
//!    leader, majority/minority split, one-way cuts, a bridge node, delayed
//!    and lossy links), leadership transfers, membership changes (a node
//!    removed and rejoining empty, or replaced by a new node id) and, with
//!    RocksDB, disk faults ([`disk`]: a full or failing filesystem, which
//!    must stop the node); with chance `--overlap`, two at once.
//! 4. Heals everything, lets the cluster settle, kills every node at once
//!    and restarts them (RocksDB), then reads every key linearizably: these
//!    final reads join the history, so an acknowledged write that was lost
//!    is a linearizability violation like any other.
//! 5. Checks the history with [`raft_sim::linearizability`] (unknown
//!    writes may or may not have happened), writes `history.jsonl`,
//!    `faults.jsonl`, `timeline.png` ([`timeline`]) and every node's log
//!    to `--out` (on a violation also `violation-kKEY.jsonl`, the refuted
//!    key's operations in order, and `violation-kKEY-window.jsonl`, the
//!    smallest window of them that is still refuted, [`shrink`]), and
//!    prints one line ([`Report`]). The exit code is 1 on a violation.
//!
//! # What it cannot see
//!
//! - Transactions are checked by projection onto each key (see
//!   [`history`]), which cannot see atomicity across keys; a side check,
//!   [`history::txn_atomicity`], covers a sound part of it. A delete that
//!   succeeded is a write of absent (that the key existed is not checked).
//! - Process timing is not replayable: the seed fixes the fault schedule's
//!   and the clients' choices, not when the kernel runs what.
//! - Memory-store runs never kill every node at once (nothing would
//!   survive), so "nothing acknowledged is lost across a full restart" is
//!   only checked with `--storage rocksdb`.

#![forbid(unsafe_code)]

pub mod client;
pub mod cluster;
pub mod disk;
pub mod faults;
pub mod history;
pub mod membership;
pub mod proxy;
mod run;
pub mod shrink;
pub mod timeline;

pub use cluster::Layout;
pub use run::{run, Options, Report};

/// A plain-HTTP client whose requests time out after `timeout`.
pub fn http_client(timeout: std::time::Duration) -> reqwest::Client {
    // Fails only when a provider is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(1)
        .build()
        .expect("an HTTP client with a TLS provider installed builds")
}

/// The store the nodes keep their log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Storage {
    /// `--storage mem`: gone when the process dies.
    Mem,
    /// `--storage rocksdb`: durable (needs a `raft-kv` built with RocksDB).
    Rocksdb,
}

impl Storage {
    /// The flag's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Storage::Mem => "mem",
            Storage::Rocksdb => "rocksdb",
        }
    }
}

/// The transport between the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// TCP (the proxies forward TCP).
    Tcp,
    /// QUIC with mutual TLS (the proxies forward UDP).
    Quic,
}

impl Transport {
    /// The flag's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Quic => "quic",
        }
    }
}

/// Why a run could not finish (a violation is not an error: see
/// [`Report::verdict`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or process could not be made.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// The cluster did not do what the run needed (start, get ready,
    /// rejoin) in time.
    #[error("{0}")]
    Cluster(String),
    /// A flag that makes no sense.
    #[error("{0}")]
    Usage(String),
}
