//! Short runs that force each fault kind of issue 12's second half
//! (leadership transfers, membership changes while clients run, two
//! faults at once, disk faults) against real `raft-kv` processes: each
//! must be injected, counted, and leave a linearizable history.
//!
//! Ports (each test its own block of 100): 25500 transfers, 25600
//! membership changes with the memory store, 25700 overlapping faults,
//! 25800 disk faults (RocksDB; built only with this crate's `rocksdb`
//! feature, as `raft-kv` must then have RocksDB).
//!
//! The `raft-kv` binary is `RAFT_KV_BIN`, or built as `tests/runs.rs`
//! builds it.

mod common;

use clap::Parser;
use common::raft_kv;
use raft_chaos::{run, Options, Report};
use raft_sim::linearizability::Verdict;
use std::path::PathBuf;

fn out(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

async fn chaos(name: &str, base_port: u16, extra: &[&str]) -> Report {
    let mut args = vec![
        "raft-chaos".to_string(),
        "--raft-kv".into(),
        raft_kv().display().to_string(),
        "--out".into(),
        out(name).display().to_string(),
        "--base-port".into(),
        base_port.to_string(),
        "--workers".into(),
        "4".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let report = run(Options::parse_from(args)).await.expect("the run finishes");
    println!("{report}");
    report
}

/// Linearizable, enough acknowledged operations, and at least `at_least`
/// faults of each kind in `kinds`.
fn assert_run(report: &Report, kinds: &[&str], at_least: u64) {
    if let Verdict::NotLinearizable { explanation, .. } = &report.verdict {
        panic!("{report}\n{explanation}");
    }
    assert!(report.linearizable(), "{report}");
    assert!(report.counts.ok > 200, "too few acknowledged operations to mean anything: {report}");
    for kind in kinds {
        let n = report.faults.get(*kind).copied().unwrap_or(0);
        assert!(n >= at_least, "{kind} injected {n} times, fewer than {at_least}: {report}");
    }
}

/// The fault log's lines, as `faults.jsonl` holds them.
fn fault_lines(name: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(out(name).join("faults.jsonl")).expect("faults.jsonl");
    text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_transfers_move_the_leader_and_stay_linearizable() {
    let args = ["--seed", "21", "--duration", "15", "--fault-gap-ms", "700", "--faults", "transfer-leader"];
    let report = chaos("transfer", 25500, &args).await;
    assert_run(&report, &["transfer-leader"], 4);
    // Not vacuous: at least one transfer was done, not only refused.
    let moved =
        fault_lines("transfer").iter().any(|f| f["detail"].as_str().is_some_and(|d| d.ends_with("moved")));
    assert!(moved, "no transfer moved the leader: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_while_clients_run_stay_linearizable() {
    let args =
        ["--seed", "22", "--duration", "30", "--fault-gap-ms", "800", "--faults", "remove-rejoin,replace"];
    let report = chaos("membership", 25600, &args).await;
    assert_run(&report, &["remove-rejoin", "replace"], 1);
    // A replacement joins under a new node id.
    let log = fault_lines("membership");
    let replaced = log.iter().filter(|f| f["kind"] == "replace").filter_map(|f| f["detail"].as_str());
    for detail in replaced {
        let (old, new) = (detail.split(' ').nth(1), detail.rsplit(" node ").next());
        let new = new.and_then(|n| n.split(' ').next());
        assert_ne!(old, new, "the replacement kept the old id: {detail}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_faults_are_injected_and_stay_linearizable() {
    let args = [
        "--seed",
        "23",
        "--duration",
        "30",
        "--fault-gap-ms",
        "800",
        "--overlap",
        "1",
        "--faults",
        "kill,pause,transfer-leader,split,isolate-leader,one-way",
    ];
    let report = chaos("overlap", 25700, &args).await;
    assert_run(&report, &[], 0);
    let pairs = fault_lines("overlap")
        .iter()
        .filter(|f| f["detail"].as_str().is_some_and(|d| d.ends_with("(overlapping)")))
        .count();
    assert!(pairs >= 4, "only {pairs} faults overlapped: {report}");
}

/// A node whose disk fills or fails must stop with a clear error (its
/// log says the storage failed, it exits non-zero: the run errs if it
/// keeps running), lose nothing acknowledged (the final reads), and
/// resume from its directory once the disk is back.
#[cfg(feature = "rocksdb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_a_full_or_failed_disk_stops_and_nothing_acknowledged_is_lost() {
    let args = [
        "--seed",
        "24",
        "--duration",
        "30",
        "--fault-gap-ms",
        "1000",
        "--storage",
        "rocksdb",
        "--faults",
        "disk-full,disk-read-only",
    ];
    let report = chaos("disk", 25800, &args).await;
    assert!(report.left_out.is_none(), "disk faults left out: {report}");
    assert_run(&report, &["disk-full", "disk-read-only"], 1);
    let stopped = fault_lines("disk");
    for fault in &stopped {
        let detail = fault["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("it stopped, exit status: 1"), "{detail}");
    }
    let logs: String = std::fs::read_dir(out("disk"))
        .expect("the run's directory")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    let clear =
        logs.matches("the Raft node stopped, so the node exits: the node stopped on a storage error").count();
    assert!(clear >= stopped.len(), "{clear} clear exits for {} disk faults", stopped.len());
}
