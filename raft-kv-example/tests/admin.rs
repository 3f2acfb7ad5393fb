//! End-to-end tests of the CLI's admin verbs (`status`, `add-learner`,
//! `promote`, `change-membership`, `transfer-leader`, `remove-node`,
//! `snapshot`, `backup`, `restore`) against real nodes on the memory store:
//! their text and `--json` outputs, the exit codes and messages of
//! refusals, and each verb's effect, seen through the API.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// `raft-kv status --json` through `e`.
fn status(e: &str) -> Value {
    let (code, out, err) = cli(&["status", "--endpoints", e, "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// Each member's id and kind, from `status --json`.
fn kinds(e: &str) -> Vec<(u64, String)> {
    let members = status(e)["members"].as_array().unwrap().clone();
    members.iter().map(|m| (m["id"].as_u64().unwrap(), m["kind"].as_str().unwrap().to_string())).collect()
}

/// Waits until `status --json` lists exactly `expected` (the node reached
/// may apply a committed change a moment after the leader answered).
async fn wait_kinds(e: &str, expected: &[(u64, &str)]) {
    let expected: Vec<(u64, String)> = expected.iter().map(|&(id, k)| (id, k.to_string())).collect();
    wait_for(&format!("members {expected:?}"), Duration::from_secs(60), || {
        let found = kinds(e);
        let want = expected.clone();
        async move { (found == want).then_some(()) }
    })
    .await
}

/// Waits until every node in `nodes` names `leader` in `/status`.
async fn wait_leader(base: u16, nodes: &[u64], leader: u64) {
    let http = http();
    wait_for(&format!("nodes {nodes:?} to follow {leader}"), Duration::from_secs(60), || {
        let asks: Vec<_> = nodes.iter().map(|&id| http.get(url(base, id, "/status")).send()).collect();
        async move {
            for ask in asks {
                let status: Value = ask.await.ok()?.json().await.ok()?;
                (status["leader"] == leader).then_some(())?;
            }
            Some(())
        }
    })
    .await
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// The index in a `... (entry N)` or `... entry N (term T)` line.
fn entry_of(line: &str) -> u64 {
    let (_, after) = line.split_once("entry ").unwrap_or_else(|| panic!("no entry in {line:?}"));
    after.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

/// Three voters; every membership and leadership verb in turn, in text
/// and JSON, each change checked in `status`, and the refusals' exit codes.
#[tokio::test(flavor = "multi_thread")]
async fn membership_and_leadership_verbs_take_effect_and_refusals_exit_with_their_codes() {
    // Owns ports 23300-23399 (nodes 1 to 4).
    let base = 23300;
    let dir = tempfile::tempdir().unwrap();
    let members = members(base, 3);
    let _nodes: Vec<Proc> = (1..=3)
        .map(|id| start_node(base, id, dir.path(), &["--initial-members", &members, "--storage", "mem"]))
        .collect();
    for id in 1..=3 {
        wait_ready(base, id).await;
    }
    let e = (1..=3).map(|id| addr(ports(base, id).api)).collect::<Vec<_>>().join(",");
    let e = e.as_str();
    status_in_text_and_json(base, e).await;
    let _node4 = add_learner(base, dir.path(), e).await;
    promote_and_demote(e).await;
    transfer_leadership(base, e).await;
    remove_nodes(e).await;
}

/// `status`: a header naming the leader, a table row per member; the
/// same in JSON, as the API's `ClusterStatus`.
async fn status_in_text_and_json(base: u16, e: &str) {
    let leader = leader_of(base, 1).await;
    wait_leader(base, &[1, 2, 3], leader).await;
    let (code, out, err) = cli(&["status", "--endpoints", e]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines[0].starts_with("cluster ") && lines[0].contains(&format!("leader {leader}")), "{out}");
    let header: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(header, ["ID", "KIND", "ROLE", "TERM", "COMMIT", "APPLIED", "LAG", "RAFT", "API"]);
    for (id, line) in (1..=3u64).zip(&lines[2..]) {
        let row: Vec<&str> = line.split_whitespace().collect();
        let p = ports(base, id);
        let role = if id == leader { "leader" } else { "follower" };
        assert_eq!((row[0], row[1], row[2]), (id.to_string().as_str(), "voter", role), "{out}");
        assert_eq!((row[7], row[8]), (addr(p.raft).as_str(), addr(p.api).as_str()), "{out}");
    }
    let status = status(e);
    assert_eq!(status["leader"], json!({"id": leader, "api": addr(ports(base, leader).api)}));
    assert_eq!(status["joint"], false);
    assert_eq!(status["cluster_id"].as_str().unwrap().len(), 16);
    assert_eq!(kinds(e), [(1, "voter".into()), (2, "voter".into()), (3, "voter".into())]);
}

/// `add-learner` for node 4 before it runs: the configuration lists it
/// (unreachable: nothing else could have added it), and the verb returns
/// once node 4, started, has caught up. Again with `--json`: idempotent.
async fn add_learner(base: u16, dir: &std::path::Path, e: &str) -> Proc {
    let p = ports(base, 4);
    let (raft, api) = (addr(p.raft), addr(p.api));
    let args = ["add-learner", "4", &raft, &api, "--endpoints", e, "--timeout", "120"];
    let mut adding = start(&args.map(String::from), &dir.join("add-learner.log"));
    wait_kinds(e, &[(1, "voter"), (2, "voter"), (3, "voter"), (4, "learner")]).await;
    let four = status(e)["members"][3].clone();
    assert_eq!(
        (&four["role"], &four["raft_addr"], &four["api_addr"]),
        (&json!("unreachable"), &json!(raft), &json!(api))
    );
    let node = start_node(base, 4, dir, &["--join", &addr(ports(base, 1).api), "--storage", "mem"]);
    let exit = adding.wait_exit(Duration::from_secs(120)).await;
    let text = adding.log_text();
    assert!(exit.success(), "{text}");
    let added = text.lines().find(|l| l.starts_with("node 4 added as a learner and caught up (entry "));
    let entry = entry_of(added.unwrap_or_else(|| panic!("{text}")));
    let (code, out, err) = cli(&["add-learner", "4", &raft, &api, "--endpoints", e, "--json"]);
    assert_eq!(code, 0, "{err}");
    let again: Value = serde_json::from_str(&out).unwrap();
    assert!(again["index"].as_u64().unwrap() > entry && again["term"].as_u64().unwrap() > 0, "{out}");
    node
}

/// `promote` (text), `change-membership` back (JSON), `promote --json`,
/// `change-membership` (text); refusals: a learner cannot lead (7), a
/// voter is no learner to promote (3), a stranger cannot vote (7).
async fn promote_and_demote(e: &str) {
    let all_voters = [(1, "voter"), (2, "voter"), (3, "voter"), (4, "voter")];
    let four_learns = [(1, "voter"), (2, "voter"), (3, "voter"), (4, "learner")];
    let (code, _, err) = cli(&["transfer-leader", "4", "--endpoints", e]);
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("node 4 is not a voter"), "{err}");
    let (code, out, err) = cli(&["promote", "4", "--endpoints", e, "--timeout", "60"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("node 4 is a voter (entry "), "{out}");
    wait_kinds(e, &all_voters).await;
    let (code, _, err) = cli(&["promote", "4", "--endpoints", e]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("node 4 is already a voter, not a learner"), "{err}");
    let (code, _, err) = cli(&["promote", "9", "--endpoints", e]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("node 9 is not a member, not a learner"), "{err}");
    let (code, _, err) = cli(&["change-membership", "--voters", "1,2,3,7", "--endpoints", e]);
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("node 7 must join as a learner"), "{err}");
    let (code, out, err) =
        cli(&["change-membership", "--voters", "1,2,3", "--learners", "4", "--endpoints", e, "--json"]);
    assert_eq!(code, 0, "{err}");
    let p: Value = serde_json::from_str(&out).unwrap();
    assert!(p["index"].as_u64().is_some() && p["term"].as_u64().is_some(), "{out}");
    wait_kinds(e, &four_learns).await;
    let (code, out, err) = cli(&["promote", "4", "--endpoints", e, "--json", "--timeout", "60"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        serde_json::from_str::<Value>(&out).unwrap()["index"].as_u64().unwrap()
            > p["index"].as_u64().unwrap()
    );
    wait_kinds(e, &all_voters).await;
    let (code, out, err) =
        cli(&["change-membership", "--voters", "1,2,3", "--learners", "4", "--endpoints", e]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("membership changed (entry "), "{out}");
    wait_kinds(e, &four_learns).await;
}

/// `transfer-leader` (JSON, then text to node 2): every node then names
/// the new leader; a transfer to a stranger exits 3.
async fn transfer_leadership(base: u16, e: &str) {
    let first = if leader_of(base, 1).await == 3 { 1 } else { 3 };
    let (code, out, err) = cli(&["transfer-leader", &first.to_string(), "--endpoints", e, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!({"leader": first}));
    wait_leader(base, &[1, 2, 3, 4], first).await;
    let (code, out, err) = cli(&["transfer-leader", "2", "--endpoints", e]);
    assert_eq!((code, out.as_str()), (0, "node 2 leads\n"), "{err}");
    wait_leader(base, &[1, 2, 3, 4], 2).await;
    let led: Value = http().get(url(base, 2, "/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(led["role"], "leader");
    assert_eq!(status(e)["leader"]["id"], 2);
    let (code, _, err) = cli(&["transfer-leader", "9", "--endpoints", e]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("node 9 is not a member"), "{err}");
}

/// `remove-node` of the learner (text) and of a voter (JSON): `status`
/// lists them no more; removing a stranger exits 3.
async fn remove_nodes(e: &str) {
    let (code, out, err) = cli(&["remove-node", "4", "--endpoints", e]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("node 4 removed (entry "), "{out}");
    wait_kinds(e, &[(1, "voter"), (2, "voter"), (3, "voter")]).await;
    let (code, out, _) = cli(&["status", "--endpoints", e]);
    assert_eq!(code, 0);
    let ids: Vec<&str> = out.lines().skip(2).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(ids, ["1", "2", "3"], "{out}");
    let (code, _, err) = cli(&["remove-node", "9", "--endpoints", e]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("node 9 is not a member"), "{err}");
    let (code, out, err) = cli(&["remove-node", "3", "--endpoints", e, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(serde_json::from_str::<Value>(&out).unwrap()["index"].as_u64().is_some(), "{out}");
    wait_kinds(e, &[(1, "voter"), (2, "voter")]).await;
}

/// The snapshot index node `id` reports in `/metrics`.
async fn snapshot_index(base: u16, id: u64) -> u64 {
    let text = http().get(url(base, id, "/metrics")).send().await.unwrap().text().await.unwrap();
    let prefix = format!("raft_snapshot_index{{node=\"{id}\"}} ");
    let line = text.lines().find_map(|l| l.strip_prefix(prefix.as_str()));
    line.unwrap_or_else(|| panic!("no {prefix} in\n{text}")).trim().parse().unwrap()
}

/// `snapshot` (text, then JSON): the node reports a snapshot at the entry
/// the verb names. `backup FILE` (JSON, then text), and `restore FILE`
/// into a new, empty cluster: a damaged file is refused (7) and leaves the
/// map empty, the backup loads (JSON) and its keys are there, and a second
/// restore is refused (7); a backup to an unwritable path exits 1.
#[tokio::test(flavor = "multi_thread")]
async fn snapshot_backup_and_restore_verbs_take_effect_and_refusals_exit_with_their_codes() {
    // Owns ports 23400-23499 (the first cluster) and 23500-23599 (the new one).
    let (base, fresh) = (23400, 23500);
    let dir = tempfile::tempdir().unwrap();
    let _old = start_node(base, 1, dir.path(), &["--init", "--storage", "mem"]);
    wait_ready(base, 1).await;
    for i in 0..5 {
        put(base, 1, &format!("k{i}"), &format!("v{i}")).await;
    }
    let e = addr(ports(base, 1).api);
    let (code, out, err) = cli(&["snapshot", "--endpoints", &e]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("snapshot up to entry ") && out.contains("(term "), "{out}");
    let first = entry_of(&out);
    assert_eq!(snapshot_index(base, 1).await, first);
    put(base, 1, "k5", "v5").await;
    let (code, out, err) = cli(&["snapshot", "--endpoints", &e, "--json"]);
    assert_eq!(code, 0, "{err}");
    let second = serde_json::from_str::<Value>(&out).unwrap()["index"].as_u64().unwrap();
    assert!(second > first, "{out}");
    assert_eq!(snapshot_index(base, 1).await, second);

    let (file, copy) = (dir.path().join("backup.bin"), dir.path().join("copy.bin"));
    let (code, out, err) = cli(&["backup", file.to_str().unwrap(), "--endpoints", &e, "--json"]);
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::metadata(&file).unwrap().len();
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!({"file": file, "bytes": bytes}));
    let (code, out, err) = cli(&["backup", copy.to_str().unwrap(), "--endpoints", &e]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("backup of {bytes} bytes written to {}\n", copy.display()));
    let nowhere = dir.path().join("no/such/dir/backup.bin");
    let (code, _, err) = cli(&["backup", nowhere.to_str().unwrap(), "--endpoints", &e]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot write"), "{err}");

    let _new = start_node(fresh, 1, &dir.path().join("fresh"), &["--init", "--storage", "mem"]);
    wait_ready(fresh, 1).await;
    let e2 = addr(ports(fresh, 1).api);
    let damaged = dir.path().join("damaged.bin");
    std::fs::write(&damaged, b"not a backup").unwrap();
    let (code, _, err) = cli(&["restore", damaged.to_str().unwrap(), "--endpoints", &e2]);
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("backup not restored"), "{err}");
    assert_eq!(cli(&["list", "--endpoints", &e2]), (0, String::new(), String::new()));
    let (code, out, err) = cli(&["restore", file.to_str().unwrap(), "--endpoints", &e2, "--json"]);
    assert_eq!(code, 0, "{err}");
    let restored: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(restored["keys"], 6, "{out}");
    let listed = (0..6).map(|i| format!("k{i}\tv{i}\n")).collect::<String>();
    assert_eq!(cli(&["list", "--endpoints", &e2]), (0, listed, String::new()));
    let (code, out, _) = cli(&["get", "k3", "--endpoints", &e2, "--json"]);
    assert_eq!(code, 0);
    let item: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((&item["value"], &item["revision"]), (&json!("v3"), &restored["revision"]));
    let (code, _, err) = cli(&["restore", copy.to_str().unwrap(), "--endpoints", &e2]);
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("holds 6 keys"), "{err}");
}
