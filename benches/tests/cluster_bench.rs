//! `cluster-bench`: its flags, its result line and `--json` line, against an
//! in-process cluster on each transport, and its HTTP clients against stand-ins
//! for raft-kv's API and etcd's JSON gateway that check every request.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use benches::cli::{run, run_on, Args, RunError};
use benches::cluster::{StorageKind, TransportKind};
use benches::load::Report;
use clap::Parser;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

fn args(flags: &[&str]) -> Args {
    Args::try_parse_from(std::iter::once("cluster-bench").chain(flags.iter().copied())).expect("flags parse")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn flags_parse_with_their_defaults_and_old_names() {
    let a = args(&[]);
    assert_eq!((a.members, a.clients, a.ops, a.payload, a.reads), (3, 256, None, 0, 0));
    assert_eq!((a.storage, a.transport), (StorageKind::Mem, TransportKind::Inproc));
    let a = args(&[
        "--members",
        "5",
        "--clients",
        "8",
        "--ops",
        "1000000",
        "--storage",
        "rocksdb",
        "--transport",
        "quic",
        "--payload",
        "64",
        "--reads",
        "50",
        "--json",
    ]);
    assert_eq!(
        (a.members, a.clients, a.ops, a.payload, a.reads, a.json),
        (5, 8, Some(1_000_000), 64, 50, true)
    );
    assert_eq!((a.storage, a.transport), (StorageKind::Rocksdb, TransportKind::Quic));
    // raft-load's flags still work.
    let a = args(&["--nodes", "1", "--proposers", "2", "--operations", "9"]);
    assert_eq!((a.members, a.clients, a.ops), (1, 2, Some(9)));
    let a = args(&["--target", "http://127.0.0.1:1,http://127.0.0.1:2"]);
    assert_eq!(a.target.as_deref(), Some("http://127.0.0.1:1,http://127.0.0.1:2"));

    let refused = |flags: &[&str]| {
        Args::try_parse_from(std::iter::once("cluster-bench").chain(flags.iter().copied())).is_err()
    };
    assert!(refused(&["--reads", "101"]));
    assert!(refused(&["--storage", "disk"]));
    assert!(refused(&["--transport", "udp"]));
    assert!(refused(&["--target", "http://a:1", "--etcd", "http://b:2"]));
    assert!(refused(&["--target", "http://a:1", "--storage", "rocksdb"]));
    assert!(refused(&["--etcd", "http://a:1", "--transport", "tcp"]));
}

#[test]
fn the_result_line_and_json_line_carry_the_figures() {
    let report =
        runtime().block_on(run(&args(&["--clients", "8", "--ops", "300", "--no-baseline"]))).unwrap();
    assert_eq!((report.operations, report.errors), (300, 0));
    assert!(report.ops_per_sec > 0.0 && report.p50_us > 0.0);
    assert!(
        report.p50_us <= report.p99_us && report.p99_us <= report.p999_us && report.p999_us <= report.max_us
    );
    let line = report.line();
    assert!(line.starts_with("result: "), "{line}");
    for part in [" ops/s  p50 ", " us  p99 ", " us  p99.9 ", "(300 ops, 0 errors, "] {
        assert!(line.contains(part), "{part:?} missing from {line}");
    }
    let back: Report = serde_json::from_str(&report.json()).unwrap();
    assert_eq!(back, report);
    assert_eq!((back.workload.system.as_str(), back.workload.members), ("inproc", 3));
}

#[test]
fn reads_and_writes_mix_in_process_on_tcp_and_quic() {
    let runtime = runtime();
    for transport in ["inproc", "tcp", "quic"] {
        // A leader change on a loaded machine fails a few operations: they
        // are counted, not retried, and must add up to the budget.
        let flags = [
            "--transport",
            transport,
            "--clients",
            "4",
            "--ops",
            "200",
            "--payload",
            "64",
            "--reads",
            "50",
            "--no-baseline",
            "--allow-errors",
        ];
        let args = args(&flags);
        let run = async { tokio::time::timeout(std::time::Duration::from_secs(120), run(&args)).await };
        let report = runtime.block_on(run).expect("done within 120 s").unwrap();
        assert_eq!(report.operations + report.errors, 200, "{transport}");
        assert!(report.operations > 0, "{transport}");
        assert_eq!((report.workload.transport.as_str(), report.workload.read_percent), (transport, 50));
    }
}

#[cfg(not(feature = "rocksdb"))]
#[test]
fn rocksdb_without_the_feature_is_a_typed_error() {
    let error = runtime().block_on(run(&args(&["--storage", "rocksdb", "--ops", "1"]))).unwrap_err();
    assert!(matches!(error, RunError::Cluster(benches::cluster::ClusterError::NoRocksdb)), "{error}");
}

#[test]
fn the_binary_ends_with_the_result_then_the_json_line() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cluster-bench"))
        .args(["--clients", "4", "--ops", "200", "--json", "--progress", "0"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("in-process 3 nodes"), "{stdout}");
    assert!(lines.iter().any(|l| l.starts_with("echo_baseline ")), "{stdout}");
    assert!(lines[lines.len() - 2].starts_with("result: "), "{stdout}");
    let report: Report = serde_json::from_str(lines[lines.len() - 1]).unwrap();
    assert_eq!((report.operations, report.workload.clients), (200, 4));

    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_cluster-bench"))
        .args(["--target", "ftp://x", "--ops", "1"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not http://HOST:PORT"));

    let ports =
        std::process::Command::new(env!("CARGO_BIN_EXE_cluster-bench")).args(["--free-ports", "6"]).output();
    let ports: Vec<u16> = String::from_utf8(ports.unwrap().stdout)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(ports.len(), 6);
    assert_eq!(ports.iter().collect::<std::collections::BTreeSet<_>>().len(), 6);
}

#[test]
fn in_process_clients_can_run_on_a_runtime_of_their_own() {
    // The clients' runtime counts how often its worker wakes: it only has
    // work if the clients run there.
    let wakes = Arc::new(AtomicU64::new(0));
    let clients = {
        let wakes = wakes.clone();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .on_thread_unpark(move || {
                wakes.fetch_add(1, Ordering::Relaxed);
            })
            .enable_all()
            .build()
            .unwrap()
    };
    let flags = ["--clients", "4", "--ops", "200", "--no-baseline", "--client-threads", "1"];
    let report = runtime().block_on(run_on(&args(&flags), Some(clients.handle().clone()))).unwrap();
    assert_eq!((report.operations, report.errors), (200, 0));
    let wakes = wakes.load(Ordering::Relaxed);
    assert!(wakes >= 20, "the clients' runtime woke {wakes} times for 200 operations");
    drop(clients);
}

/// What a stand-in server saw.
#[derive(Default)]
struct Seen {
    puts: AtomicU64,
    gets: AtomicU64,
    /// Requests whose key was not 16 bytes or whose value not 64.
    malformed: AtomicU64,
}

type Shared = Arc<Seen>;

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// raft-kv's `PUT /kv/{key}` and `GET /kv/{key}`; `fail` answers 500.
fn raft_kv(seen: Shared, fail: bool) -> Router {
    let put = move |State(seen): State<Shared>, Path(key): Path<String>, body: axum::body::Bytes| async move {
        seen.puts.fetch_add(1, Ordering::Relaxed);
        if key.len() != 16 || body.len() != 64 {
            seen.malformed.fetch_add(1, Ordering::Relaxed);
        }
        if fail {
            return (StatusCode::INTERNAL_SERVER_ERROR, "down".to_string());
        }
        (StatusCode::OK, r#"{"revision":7}"#.to_string())
    };
    let read = |State(seen): State<Shared>, Path(key): Path<String>| async move {
        seen.gets.fetch_add(1, Ordering::Relaxed);
        if key.len() != 16 {
            seen.malformed.fetch_add(1, Ordering::Relaxed);
        }
        (StatusCode::OK, "x".repeat(64))
    };
    // raft-core's counters as a leader that writes its log once per four
    // proposals would show them.
    let metrics = |State(seen): State<Shared>| async move {
        let puts = seen.puts.load(Ordering::Relaxed);
        format!("# TYPE raft_proposals_total counter\nraft_proposals_total{{node=\"1\"}} {puts}\nraft_log_writes_total{{node=\"1\"}} {}\n", puts / 4)
    };
    Router::new().route("/kv/{key}", get(read).put(put)).route("/metrics", get(metrics)).with_state(seen)
}

/// etcd's `POST /v3/kv/put` and `POST /v3/kv/range`, base64 in JSON.
fn etcd(seen: Shared) -> Router {
    let decode = |v: &serde_json::Value, field: &str| {
        let text = v.get(field).and_then(|f| f.as_str()).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.decode(text).unwrap_or_default()
    };
    let put = move |State(seen): State<Shared>, Json(body): Json<serde_json::Value>| async move {
        seen.puts.fetch_add(1, Ordering::Relaxed);
        if decode(&body, "key").len() != 16 || decode(&body, "value").len() != 64 {
            seen.malformed.fetch_add(1, Ordering::Relaxed);
        }
        Json(serde_json::json!({"header": {"revision": "9"}}))
    };
    let range = move |State(seen): State<Shared>, Json(body): Json<serde_json::Value>| async move {
        seen.gets.fetch_add(1, Ordering::Relaxed);
        let key = decode(&body, "key");
        if key.len() != 16 {
            seen.malformed.fetch_add(1, Ordering::Relaxed);
        }
        Json(serde_json::json!({"header": {}, "kvs": [{"key": body["key"], "value": "eA=="}], "count": "1"}))
    };
    Router::new().route("/v3/kv/put", post(put)).route("/v3/kv/range", post(range)).with_state(seen)
}

#[test]
fn drives_raft_kv_and_etcd_apis_with_the_same_client_loop() {
    let runtime = runtime();
    for system in ["raft-kv", "etcd"] {
        let seen = Shared::default();
        let endpoint = runtime.block_on(async {
            if system == "etcd" {
                serve(etcd(seen.clone())).await
            } else {
                serve(raft_kv(seen.clone(), false)).await
            }
        });
        let flag = if system == "etcd" { "--etcd" } else { "--target" };
        let flags = [flag, &endpoint, "--clients", "4", "--ops", "100", "--payload", "64", "--reads", "50"];
        let report = runtime.block_on(run(&args(&flags))).unwrap();
        assert_eq!((report.operations, report.errors, report.workload.system.as_str()), (100, 0, system));
        // 4 keys written before the measurement for the reads to find, then
        // every other operation of each client a read, starting with one: the
        // clients share the budget of 100 unevenly, so each may read once more
        // than it writes.
        let (puts, gets) = (seen.puts.load(Ordering::Relaxed), seen.gets.load(Ordering::Relaxed));
        assert_eq!(puts - 4 + gets, 100, "{system}");
        assert!((50..=52).contains(&gets), "{system}: {gets} reads");
        assert_eq!(seen.malformed.load(Ordering::Relaxed), 0, "{system}");
        // Group commit is read from raft-kv's /metrics around the measurement.
        match (system, &report.group_commit) {
            ("etcd", None) => {}
            ("raft-kv", Some(g)) => {
                assert_eq!(g.proposals, puts - 4, "the measurement's writes, not the preload's");
                assert!((3.0..=5.0).contains(&g.proposals_per_write), "{g:?}");
                assert!(report.line().contains("proposals per leader log write"), "{}", report.line());
            }
            (system, other) => panic!("{system}: group commit {other:?}"),
        }
    }
}

#[test]
fn failed_operations_are_counted_and_fail_the_run_unless_allowed() {
    let runtime = runtime();
    let seen = Shared::default();
    let endpoint = runtime.block_on(serve(raft_kv(seen.clone(), true)));
    let flags = ["--target", &endpoint, "--clients", "2", "--ops", "10", "--payload", "64"];
    match runtime.block_on(run(&args(&flags))) {
        Err(RunError::Failed { errors: 10, total: 10, first }) => assert!(first.contains("500"), "{first}"),
        other => panic!("expected 10 failures, got {other:?}"),
    }
    let report = runtime.block_on(run(&args(&[&flags[..], &["--allow-errors"]].concat()))).unwrap();
    assert_eq!((report.operations, report.errors), (0, 10));
    assert_eq!(seen.puts.load(Ordering::Relaxed), 20);
}
