//! End-to-end tests of `raft-kv cluster` and the client verbs, as a user
//! runs them: the supervisor starts separate node processes, the CLI talks
//! to them, Ctrl-C stops them all, and a second run resumes the data.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

fn start_cluster(dir: &std::path::Path, base: u16, extra: &[&str]) -> Proc {
    let mut args: Vec<String> = vec!["cluster".into(), "--dir".into(), dir.join("c").display().to_string()];
    args.extend(["--base-port".to_string(), base.to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    start(&args, &dir.join("cluster.log"))
}

async fn wait_up(cluster: &Proc) {
    wait_for("the cluster to come up", Duration::from_secs(120), || {
        let text = cluster.log_text();
        async move {
            assert!(!text.contains("error:"), "the cluster failed:\n{text}");
            text.contains("are up and agree on a leader").then_some(())
        }
    })
    .await;
}

/// The README's run command, as a user would: up, put, get from another
/// node, kill the leader, get again, restart it, Ctrl-C, start again on the
/// same directory and find the data.
#[tokio::test(flavor = "multi_thread")]
async fn the_cluster_command_runs_stops_on_ctrl_c_and_resumes_its_data() {
    let base = 22000;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start_cluster(dir.path(), base, &[]);
    wait_up(&cluster).await;
    let text = cluster.log_text();
    assert!(text.contains("Try, in another terminal"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{}", base + 1)), "{text}");
    let endpoint = |id: u16| format!("127.0.0.1:{}", base + id);

    let (code, out, err) = cli(&["put", "hello", "world", "--endpoints", &endpoint(1)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("OK revision"), "{out}");
    let (code, out, _) = cli(&["get", "hello", "--endpoints", &endpoint(3)]);
    assert_eq!((code, out.as_str()), (0, "world\n"));

    // Kill the leader's process (a child of the supervisor).
    let status: serde_json::Value =
        http().get(format!("http://{}/status", endpoint(1))).send().await.unwrap().json().await.unwrap();
    let leader = status["leader"].as_u64().unwrap() as u16;
    let pid_of = |id: u16| -> u32 {
        let out = Command::new("pgrep")
            .args(["-f", &format!("api-addr 127.0.0.1:{} ", base + id)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().next().expect("node pid").trim().parse().unwrap()
    };
    let victim = pid_of(leader);
    raft_kv_example::cluster::send_signal(victim, "KILL");
    let survivors: Vec<String> = (1..=3).filter(|&i| i != leader).map(endpoint).collect();
    let (code, out, err) = cli(&["get", "hello", "--endpoints", &survivors.join(","), "--timeout", "30"]);
    assert_eq!((code, out.as_str()), (0, "world\n"), "{err}");
    let (code, _, err) =
        cli(&["put", "after", "kill", "--endpoints", &survivors.join(","), "--timeout", "30"]);
    assert_eq!(code, 0, "{err}");
    wait_for("the supervisor to report the death", Duration::from_secs(30), || {
        let text = cluster.log_text();
        async move { text.contains(&format!("node {leader} exited")).then_some(()) }
    })
    .await;

    // Ctrl-C stops every node; the nodes' processes are gone.
    cluster.signal("INT");
    let status = cluster.wait_exit(Duration::from_secs(60)).await;
    assert!(status.success(), "{}", cluster.log_text());
    for id in 1..=3 {
        let out = Command::new("pgrep")
            .args(["-f", &format!("api-addr 127.0.0.1:{} ", base + id)])
            .output()
            .unwrap();
        assert!(out.stdout.is_empty(), "node {id} outlived the supervisor");
    }

    // Again on the same directory: the same cluster, with its data.
    let cluster = start_cluster(dir.path(), base, &[]);
    wait_up(&cluster).await;
    let all: Vec<String> = (1..=3).map(endpoint).collect();
    let (code, out, _) = cli(&["get", "hello", "--endpoints", &endpoint(leader)]);
    assert_eq!((code, out.as_str()), (0, "world\n"));
    let (code, out, _) = cli(&["get", "after", "--endpoints", &all.join(",")]);
    assert_eq!((code, out.as_str()), (0, "kill\n"));
}

/// The client verbs' outputs and exit codes: not found, conflict,
/// unavailable, bad request, and `--json`.
#[tokio::test(flavor = "multi_thread")]
async fn client_verbs_print_text_or_json_and_exit_codes_tell_outcomes_apart() {
    let base = 22200;
    let dir = tempfile::tempdir().unwrap();
    let cluster = start_cluster(dir.path(), base, &["--storage", "mem"]);
    wait_up(&cluster).await;
    let endpoints = (1..=3).map(|i| format!("127.0.0.1:{}", base + i)).collect::<Vec<_>>().join(",");
    let e = endpoints.as_str();

    let (code, out, _) = cli(&["put", "a", "1", "--endpoints", e, "--json"]);
    assert_eq!(code, 0);
    let revision = serde_json::from_str::<serde_json::Value>(&out).unwrap()["revision"].as_u64().unwrap();
    let (code, out, _) = cli(&["get", "a", "--endpoints", e, "--json", "--consistency", "stale"]);
    assert_eq!(code, 0);
    let item: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((item["value"].as_str(), item["revision"].as_u64()), (Some("1"), Some(revision)));
    assert_eq!(cli(&["get", "nope", "--endpoints", e]).0, 3);
    assert_eq!(cli(&["delete", "nope", "--endpoints", e]).0, 3);
    let (code, _, err) = cli(&["cas", "a", "--expected", "2", "--new", "3", "--endpoints", e]);
    assert_eq!(code, 4);
    assert!(err.contains("current value: 1"), "{err}");
    assert_eq!(cli(&["cas", "a", "--expected", "1", "--new", "3", "--endpoints", e]).0, 0);
    assert_eq!(cli(&["put", "a", "x", "--if-revision", "1", "--endpoints", e]).0, 4);
    assert_eq!(cli(&["get", "a", "--consistency", "lease", "--endpoints", e]).1, "3\n");
    assert_eq!(cli(&["put", "b/1", "x", "--endpoints", e]).0, 0);
    assert_eq!(cli(&["put", "b/2", "y", "--endpoints", e]).0, 0);
    let (code, out, _) = cli(&["list", "b/", "--endpoints", e]);
    assert_eq!((code, out.as_str()), (0, "b/1\tx\nb/2\ty\n"));
    assert_eq!(cli(&["delete", "b/1", "--endpoints", e]).0, 0);
    let (code, out, _) = cli(&["status", "--endpoints", e]);
    assert_eq!(code, 0);
    assert!(out.contains("leader") && out.contains("voter"), "{out}");
    let (code, out, _) = cli(&["status", "--endpoints", e, "--json"]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["members"].as_array().unwrap().len(), 3);
    let txn = dir.path().join("txn.json");
    std::fs::write(&txn, r#"{"compare":[{"key":"a","value":"3"}],"success":[{"get":{"key":"a"}}]}"#).unwrap();
    let (code, out, _) = cli(&["txn", txn.to_str().unwrap(), "--endpoints", e]);
    assert_eq!(code, 0);
    assert!(out.contains("\"succeeded\": true"), "{out}");
    // A bad key: 7; nobody listening: 5.
    assert_eq!(cli(&["get", "bad\u{1}key", "--endpoints", e]).0, 7);
    let (code, _, err) = cli(&["get", "a", "--endpoints", "127.0.0.1:1", "--timeout", "1"]);
    assert_eq!(code, 5, "{err}");
    // An unreachable endpoint first: the next is tried.
    let with_dead = format!("127.0.0.1:1,{e}");
    assert_eq!(cli(&["get", "a", "--endpoints", &with_dead]).1, "3\n");
}

/// Issue 11 through the CLI: its first endpoint loses the answer (a relay
/// passes the create-only put to node `lost_at` and keeps the 200), so the
/// CLI gives up on it within `--timeout`, retries at the next endpoint with
/// the same Request-Id and prints the first outcome (a second application
/// would exit 4). With a hung node (SIGSTOP) first, a read goes on at the
/// next endpoint. Each attempt gets a share of `--timeout`: before, one
/// attempt could wait 90 s, past the deadline, and the next endpoint was
/// never tried.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_retries_past_a_lost_answer_and_a_hung_node_within_its_timeout() {
    // Owns ports 23600-23699 (the relay listens on 23690).
    let base = 23600;
    let dir = tempfile::tempdir().unwrap();
    let members = members(base, 3);
    let nodes: Vec<Proc> = (1..=3)
        .map(|id| start_node(base, id, dir.path(), &["--initial-members", &members, "--storage", "mem"]))
        .collect();
    for id in 1..=3 {
        wait_ready(base, id).await;
    }
    let leader = leader_of(base, 1).await;
    let followers: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    let (lost_at, hung) = (followers[0], followers[1]);
    let api = |id: u64| format!("127.0.0.1:{}", ports(base, id).api);

    let mut relay = AnswerLosingRelay::start(base + 90, ports(base, lost_at).api).await;
    let endpoints = format!("127.0.0.1:{},{}", base + 90, api(leader));
    let put = tokio::task::spawn_blocking(move || {
        cli(&["put", "once", "first", "--if-revision", "0", "--endpoints", &endpoints, "--timeout", "20"])
    });
    let lost = relay.kept_answer(Duration::from_secs(60)).await;
    let (head, body) = split_http(&lost).expect("a whole answer");
    assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&lost));
    let revision = serde_json::from_slice::<serde_json::Value>(body).unwrap()["revision"].as_u64().unwrap();
    let (code, out, err) = put.await.unwrap();
    assert_eq!((code, out), (0, format!("OK revision {revision}\n")), "{err}");

    nodes[hung as usize - 1].signal("STOP");
    let endpoints = format!("{},{}", api(hung), api(lost_at));
    let read = tokio::task::spawn_blocking(move || {
        cli(&["get", "once", "--endpoints", &endpoints, "--timeout", "20"])
    });
    let (code, out, err) = read.await.unwrap();
    assert_eq!((code, out.as_str()), (0, "first\n"), "{err}");
    // Only the hung node: unavailable (5), and the error names it.
    let only = api(hung);
    let read =
        tokio::task::spawn_blocking(move || cli(&["get", "once", "--endpoints", &only, "--timeout", "2"]));
    let (code, _, err) = read.await.unwrap();
    nodes[hung as usize - 1].signal("CONT");
    assert_eq!(code, 5, "{err}");
    assert!(err.contains(&api(hung)), "{err}");
}

/// `--transport quic`: the supervisor makes the certificates, and the
/// nodes replicate over QUIC with mutual TLS.
#[tokio::test(flavor = "multi_thread")]
async fn a_quic_cluster_comes_up_with_its_own_certificates_and_replicates() {
    let base = 22400;
    let dir = tempfile::tempdir().unwrap();
    let cluster = start_cluster(dir.path(), base, &["--transport", "quic", "--storage", "mem"]);
    wait_up(&cluster).await;
    assert!(dir.path().join("c/certs/ca.pem").exists());
    assert!(dir.path().join("c/certs/node-3-key.pem").exists());
    let e = |id: u16| format!("127.0.0.1:{}", base + id);
    assert_eq!(cli(&["put", "q", "over quic", "--endpoints", &e(2)]).0, 0);
    assert_eq!(cli(&["get", "q", "--endpoints", &e(3)]).1, "over quic\n");
}

/// Mutual TLS over TCP with `--tls-dir`, certificates from `raft-kv certs`,
/// and flags from a TOML file and the environment.
#[tokio::test(flavor = "multi_thread")]
async fn tcp_with_tls_and_flags_from_a_config_file_and_the_environment() {
    let base = 22600;
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let (code, out, err) = cli(&["certs", "--dir", certs.to_str().unwrap(), "--nodes", "1,2"]);
    assert_eq!(code, 0, "{out}{err}");
    let members = members(base, 2);
    let mut nodes = Vec::new();
    for id in 1..=2u64 {
        let p = ports(base, id);
        let config = dir.path().join(format!("node-{id}.toml"));
        std::fs::write(
            &config,
            format!(
                "id = {id}\nraft-addr = \"127.0.0.1:{}\"\napi-addr = \"127.0.0.1:{}\"\ninitial-members = \"{members}\"\n\
                 tls-dir = \"{}\"\nstorage = \"rocksdb\"\n",
                p.raft,
                p.api,
                certs.display()
            ),
        )
        .unwrap();
        // The data dir from the environment; storage from the command line
        // wins over the file's.
        let log = dir.path().join(format!("node-{id}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin())
            .args(["node", "--config", config.to_str().unwrap(), "--storage", "mem"])
            .env("RAFT_KV_DATA_DIR", dir.path().join(format!("d{id}")))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        nodes.push(Proc { child: Some(child), log });
    }
    for id in 1..=2 {
        wait_ready(base, id).await;
    }
    put(base, 1, "tls", "yes").await;
    assert_eq!(get(base, 2, "tls").await.as_deref(), Some("yes"));
    assert!(!dir.path().join("d1/node.json").exists(), "--storage mem from the command line must win");
}

/// `backup FILE` from one cluster, `restore FILE` into a new one: the
/// keys and values are there; a cluster with data refuses a restore.
#[tokio::test(flavor = "multi_thread")]
async fn a_backup_restores_into_a_new_cluster() {
    let (base, other) = (22800, 22900);
    let dir = tempfile::tempdir().unwrap();
    let _old = start_node(base, 1, dir.path(), &["--init", "--storage", "mem"]);
    wait_ready(base, 1).await;
    for i in 0..20 {
        put(base, 1, &format!("k{i}"), &format!("v{i}")).await;
    }
    let e = format!("127.0.0.1:{}", base + 1);
    let file = dir.path().join("backup.bin");
    let (code, out, err) = cli(&["backup", file.to_str().unwrap(), "--endpoints", &e]);
    assert_eq!(code, 0, "{out}{err}");
    let fresh = dir.path().join("fresh");
    let _new = start_node(other, 1, &fresh, &["--init", "--storage", "mem"]);
    wait_ready(other, 1).await;
    let e2 = format!("127.0.0.1:{}", other + 1);
    let (code, out, err) = cli(&["restore", file.to_str().unwrap(), "--endpoints", &e2]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("restored 20 keys"), "{out}");
    for i in 0..20 {
        assert_eq!(get(other, 1, &format!("k{i}")).await, Some(format!("v{i}")));
    }
    let (code, _, err) = cli(&["restore", file.to_str().unwrap(), "--endpoints", &e2]);
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("holds 20 keys"), "{err}");
}
