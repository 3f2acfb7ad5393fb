//! End-to-end tests of `raft-kv node`: real processes on loopback, on
//! RocksDB and memory, over TCP and QUIC.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_single_node_founds_a_cluster_and_resumes_from_its_data_dir() {
    let base = 21000;
    let dir = tempfile::tempdir().unwrap();
    let mut node = start_node(base, 1, dir.path(), &["--init"]);
    wait_ready(base, 1).await;
    let revision = put(base, 1, "greeting", "hello").await;
    assert!(revision > 0);
    let http = http();
    let answer = http.get(url(base, 1, "/kv/greeting")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["x-raft-revision"], revision.to_string().as_str());
    assert_eq!(answer.headers()["x-raft-leader"], "1");
    assert!(answer.headers().contains_key("x-raft-applied-index"));
    assert_eq!(answer.text().await.unwrap(), "hello");

    node.signal("TERM");
    assert!(node.wait_exit(Duration::from_secs(30)).await.success(), "{}", node.log_text());
    // No --init this time: the data dir says what the node is.
    let _node = start_node(base, 1, dir.path(), &[]);
    wait_ready(base, 1).await;
    assert_eq!(get(base, 1, "greeting").await.as_deref(), Some("hello"));
    let answer = http.get(url(base, 1, "/kv/greeting")).send().await.unwrap();
    assert_eq!(answer.headers()["x-raft-revision"], revision.to_string().as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_without_data_or_founding_flags_refuses_to_start() {
    let base = 21100;
    let dir = tempfile::tempdir().unwrap();
    let mut node = start_node(base, 1, dir.path(), &[]);
    let status = node.wait_exit(Duration::from_secs(30)).await;
    assert!(!status.success());
    assert!(node.log_text().contains("--init"), "{}", node.log_text());
}

/// Three founding voters; writes through a follower are forwarded, reads
/// at another follower see them; the leader is killed, the rest go on, and
/// the killed node comes back from its disk.
#[tokio::test(flavor = "multi_thread")]
async fn three_voters_forward_writes_survive_the_leaders_death_and_its_restart() {
    let base = 21200;
    let dir = tempfile::tempdir().unwrap();
    let members = members(base, 3);
    let mut nodes: Vec<Proc> =
        (1..=3).map(|id| start_node(base, id, dir.path(), &["--initial-members", &members])).collect();
    for id in 1..=3 {
        wait_ready(base, id).await;
    }
    let leader = leader_of(base, 1).await;
    let followers: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    put(base, followers[0], "k", "v1").await;
    assert_eq!(get(base, followers[1], "k").await.as_deref(), Some("v1"));

    nodes[leader as usize - 1].kill();
    put(base, followers[0], "k", "v2").await;
    assert_eq!(get(base, followers[1], "k").await.as_deref(), Some("v2"));

    nodes[leader as usize - 1] = start_node(base, leader, dir.path(), &[]);
    wait_ready(base, leader).await;
    assert_eq!(get(base, leader, "k").await.as_deref(), Some("v2"));
    let status: serde_json::Value =
        http().get(url(base, leader, "/cluster")).send().await.unwrap().json().await.unwrap();
    let members = status["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    for member in members {
        assert_eq!(member["kind"], "voter");
        assert!(member["api_addr"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(member["raft_addr"].as_str().unwrap().starts_with("127.0.0.1:"));
    }
}

/// A write repeated at another node with the same Request-Id (its first
/// answer received, so this is a client's duplicate, not a lost answer: see
/// the next test) gets the first answer and is not applied a second time.
#[tokio::test(flavor = "multi_thread")]
async fn a_retried_request_id_is_applied_once_at_any_node() {
    let base = 21300;
    let dir = tempfile::tempdir().unwrap();
    let members = members(base, 3);
    let _nodes: Vec<Proc> =
        (1..=3).map(|id| start_node(base, id, dir.path(), &["--initial-members", &members])).collect();
    for id in 1..=3 {
        wait_ready(base, id).await;
    }
    let http = http();
    let first = http
        .put(url(base, 1, "/kv/counter"))
        .header("Request-Id", "client-a:1")
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let first: serde_json::Value = first.json().await.unwrap();
    // Someone else writes the key after; a second application would undo it.
    put(base, 2, "counter", "2").await;
    let retry = http
        .put(url(base, 3, "/kv/counter"))
        .header("Request-Id", "client-a:1")
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.json::<serde_json::Value>().await.unwrap(), first);
    assert_eq!(get(base, 1, "counter").await.as_deref(), Some("2"));
    // The same through a compare-and-set (a second application would fail).
    let cas = |node| {
        http.post(url(base, node, "/kv/counter/cas"))
            .header("Request-Id", "client-a:2")
            .json(&serde_json::json!({"expected": "2", "new": "3"}))
            .send()
    };
    let a = cas(2).await.unwrap();
    assert_eq!(a.status(), 200);
    let b = cas(1).await.unwrap();
    assert_eq!(b.status(), 200, "the retry must get the first outcome, not a conflict");
    assert_eq!(get(base, 3, "counter").await.as_deref(), Some("3"));
    // A failed compare-and-set whose answer holds more than a session keeps
    // (64 KiB): the retry learns it was applied once, and failed.
    let big = "b".repeat(70 << 10);
    put(base, 1, "big", &big).await;
    let cas = |node| {
        http.post(url(base, node, "/kv/big/cas"))
            .header("Request-Id", "client-a:3")
            .json(&serde_json::json!({"expected": "other", "new": "x"}))
            .send()
    };
    let first = cas(1).await.unwrap();
    assert_eq!(first.status(), 409);
    let retry = cas(2).await.unwrap();
    assert_eq!(retry.status(), 410);
    let retry: serde_json::Value = retry.json().await.unwrap();
    assert_eq!(retry["error"], "result_not_kept", "{retry}");
    assert!(retry["message"].as_str().unwrap().contains("did not hold"), "{retry}");
    assert_eq!(get(base, 3, "big").await.as_deref(), Some(big.as_str()));
}

/// Issue 11, with the answer really lost: a create-only write
/// (`if_revision=0`) with a Request-Id reaches a follower through a relay
/// that drops the follower's answer, so the client times out without one
/// and gives up on that node, which then hangs (SIGSTOP). The retry at
/// another node gets the first answer; a second application would have
/// answered 409 `cas_failed`. The key's revision, read back from the store
/// at every node, is the one that answer names.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_whose_answer_is_lost_is_applied_once_when_retried_at_another_node() {
    // Owns ports 23200-23299 (the relay listens on 23290).
    let base = 23200;
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
    let (lost_at, retry_at) = (followers[0], followers[1]);

    let mut relay = AnswerLosingRelay::start(base + 90, ports(base, lost_at).api).await;
    let client = raft_kv_example::tls::http_client(None, Duration::from_secs(5));
    let attempt = client
        .put(format!("http://127.0.0.1:{}/kv/once?if_revision=0", base + 90))
        .header("Request-Id", "lost-answer:1")
        .body("first")
        .send();
    let attempt = tokio::spawn(attempt);
    let lost = relay.kept_answer(Duration::from_secs(60)).await;
    let (head, body) = split_http(&lost).expect("a whole answer");
    assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&lost));
    let first: serde_json::Value = serde_json::from_slice(body).unwrap();
    let revision = first["revision"].as_u64().unwrap();
    nodes[lost_at as usize - 1].signal("STOP");
    let error = attempt.await.unwrap().expect_err("the answer must never reach the client");
    assert!(error.is_timeout(), "the client must give up by its timeout: {error}");

    // The retry, at another node, while the first hangs: retried like a
    // client would while the outcome is unavailable or unknown.
    let http = http();
    let retried = wait_for("the retry's answer", Duration::from_secs(60), || {
        let request = http
            .put(url(base, retry_at, "/kv/once?if_revision=0"))
            .header("Request-Id", "lost-answer:1")
            .body("first")
            .send();
        async move {
            let response = request.await.ok()?;
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.ok()?;
            (status != 503 && status != 504).then_some((status, body))
        }
    })
    .await;
    assert_eq!(retried, (200, first.clone()), "a second application would answer cas_failed");

    // The store: one write, at the revision both answers name.
    let read = http.get(url(base, retry_at, "/kv/once")).send().await.unwrap();
    assert_eq!(read.headers()["x-raft-revision"], revision.to_string().as_str());
    assert_eq!(read.text().await.unwrap(), "first");
    nodes[lost_at as usize - 1].signal("CONT");
    assert_eq!(get(base, lost_at, "once").await.as_deref(), Some("first"));
    let read = http.get(url(base, lost_at, "/kv/once")).send().await.unwrap();
    assert_eq!(read.headers()["x-raft-revision"], revision.to_string().as_str());
    // And the premise: applied again (a new request), the write fails.
    let again = http
        .put(url(base, lost_at, "/kv/once?if_revision=0"))
        .header("Request-Id", "lost-answer:2")
        .body("second")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(
        (again["error"].as_str(), again["current"]["revision"].as_u64()),
        (Some("cas_failed"), Some(revision))
    );
}

async fn error_of(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    (status, body["error"].as_str().unwrap().to_string(), body["message"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_the_right_code_and_message_and_the_node_goes_on() {
    let base = 21400;
    let dir = tempfile::tempdir().unwrap();
    let _node =
        start_node(base, 1, dir.path(), &["--init", "--max-value-bytes", "1000", "--max-body-bytes", "4000"]);
    wait_ready(base, 1).await;
    let http = http();
    let u = |path: &str| url(base, 1, path);

    let (status, code, message) =
        error_of(http.put(u("/kv/big")).body(vec![b'x'; 2000]).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (413, "payload_too_large"), "{message}");
    let (status, code, _) =
        error_of(http.put(u("/kv/bigger")).body(vec![b'x'; 10_000]).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));
    let bad_json = http.post(u("/kv/k/cas")).header("content-type", "application/json").body("{nope").send();
    let (status, code, message) = error_of(bad_json.await.unwrap()).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    assert!(message.contains("JSON"), "{message}");
    let (status, code, message) =
        error_of(http.get(u("/kv/k?consistency=eventual")).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    assert!(message.contains("eventual"), "{message}");
    let (status, code, message) = error_of(http.get(u("/kv/a%01b")).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    assert!(message.contains("key"), "{message}");
    let long_key = "k".repeat(2000);
    let (status, code, _) = error_of(http.get(u(&format!("/kv/{long_key}"))).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));
    let (status, code, message) = error_of(http.delete(u("/cluster/members/42")).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    assert!(message.contains("42"), "{message}");
    let (status, code, _) =
        error_of(http.put(u("/kv/k")).header("Request-Id", "no-seq").body("v").send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    let (status, code, _) =
        error_of(http.put(u("/kv/k?if_revision=abc")).body("v").send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    let (status, code, _) = error_of(http.get(u("/no/such/route")).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    let (status, code, _) = error_of(http.delete(u("/kv/absent")).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    let (status, code, _) = error_of(http.get(u("/kv/absent")).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));

    // Undisturbed.
    put(base, 1, "k", "still fine").await;
    assert_eq!(get(base, 1, "k").await.as_deref(), Some("still fine"));
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_writes_cas_list_and_txn() {
    let base = 21500;
    let dir = tempfile::tempdir().unwrap();
    let _node = start_node(base, 1, dir.path(), &["--init", "--storage", "mem"]);
    wait_ready(base, 1).await;
    let http = http();
    let u = |path: &str| url(base, 1, path);
    // if_revision=0: only if absent.
    let created = http.put(u("/kv/c?if_revision=0")).body("1").send().await.unwrap();
    assert_eq!(created.status(), 200);
    let revision = created.json::<serde_json::Value>().await.unwrap()["revision"].as_u64().unwrap();
    let again = http.put(u("/kv/c?if_revision=0")).body("2").send().await.unwrap();
    assert_eq!(again.status(), 409);
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["error"], "cas_failed");
    assert_eq!(body["current"]["value"], "1");
    assert_eq!(body["current"]["revision"], revision);
    let ok = http.put(u(&format!("/kv/c?if_revision={revision}"))).body("2").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    // CAS by value; null new deletes.
    let cas = |expected: serde_json::Value, new: serde_json::Value| {
        http.post(u("/kv/c/cas")).json(&serde_json::json!({"expected": expected, "new": new})).send()
    };
    assert_eq!(cas("1".into(), "3".into()).await.unwrap().status(), 409);
    assert_eq!(cas("2".into(), serde_json::Value::Null).await.unwrap().status(), 200);
    assert_eq!(get(base, 1, "c").await, None);
    assert_eq!(cas(serde_json::Value::Null, "new".into()).await.unwrap().status(), 200);

    // List: in order, paginated, binary-safe.
    for key in ["p/3", "p/1", "p/2", "q/1"] {
        put(base, 1, key, key).await;
    }
    http.put(u("/kv/p/bin")).body(vec![0xff, 0x00]).send().await.unwrap();
    let page: serde_json::Value =
        http.get(u("/kv?prefix=p/&limit=2")).send().await.unwrap().json().await.unwrap();
    let keys: Vec<&str> =
        page["items"].as_array().unwrap().iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["p/1", "p/2"]);
    assert_eq!(page["more"], true);
    let next: serde_json::Value =
        http.get(u("/kv?prefix=p/&limit=10&after=p/2")).send().await.unwrap().json().await.unwrap();
    let items = next["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["key"], "p/bin");
    assert_eq!(items[1]["value"], serde_json::Value::Null);
    assert_eq!(items[1]["value_base64"], "/wA=");
    assert_eq!(next["more"], false);

    // A transaction: compare, then one branch, atomically.
    let txn = serde_json::json!({
        "compare": [{"key": "p/1", "value": "p/1"}, {"key": "nothing", "exists": false}],
        "success": [{"put": {"key": "t", "value": "yes"}}, {"delete": {"key": "p/1"}}, {"get": {"key": "t"}}],
        "failure": [{"put": {"key": "t", "value": "no"}}]
    });
    let result: serde_json::Value =
        http.post(u("/txn")).json(&txn).send().await.unwrap().json().await.unwrap();
    assert_eq!(result["succeeded"], true, "{result}");
    assert_eq!(result["results"][2]["get"]["value"], "yes");
    assert_eq!(get(base, 1, "p/1").await, None);
    let result: serde_json::Value =
        http.post(u("/txn")).json(&txn).send().await.unwrap().json().await.unwrap();
    assert_eq!(result["succeeded"], false);
    assert_eq!(get(base, 1, "t").await.as_deref(), Some("no"));

    // Prometheus text: the API's latency histograms, Raft's gauges and
    // raft-core's counters.
    let metrics = http.get(u("/metrics")).send().await.unwrap().text().await.unwrap();
    for expected in [
        r#"raft_kv_request_seconds_bucket{route="/kv/{*key}",method="PUT",status="200""#,
        r#"raft_kv_request_seconds_count{route="/txn",method="POST",status="200"}"#,
        r#"raft_term{node="1"} "#,
        r#"raft_is_leader{node="1"} 1"#,
        "raft_entries_applied_total",
        "raft_proposals_total",
    ] {
        assert!(metrics.contains(expected), "no {expected} in\n{metrics}");
    }
}

/// Grows a cluster by --join (the request reaching a follower), promotes
/// the learner, and removes a node, while every write stays readable.
#[tokio::test(flavor = "multi_thread")]
async fn nodes_join_through_any_member_and_are_promoted_and_removed() {
    let base = 21600;
    let dir = tempfile::tempdir().unwrap();
    let members = members(base, 2);
    let _a = start_node(base, 1, dir.path(), &["--initial-members", &members]);
    let _b = start_node(base, 2, dir.path(), &["--initial-members", &members]);
    wait_ready(base, 1).await;
    wait_ready(base, 2).await;
    put(base, 1, "before", "1").await;
    let leader = leader_of(base, 1).await;
    let follower = 3 - leader;
    let through = format!("127.0.0.1:{}", ports(base, follower).api);
    let _c = start_node(base, 3, dir.path(), &["--join", &through]);
    let http = http();
    wait_for("node 3 to be a learner", Duration::from_secs(60), || {
        let request = http.get(url(base, 1, "/cluster")).send();
        async move {
            let status: serde_json::Value = request.await.ok()?.json().await.ok()?;
            status["members"].as_array()?.iter().any(|m| m["id"] == 3 && m["kind"] == "learner").then_some(())
        }
    })
    .await;
    // A learner is promotable once it has kept up for a few rounds; until
    // then the leader refuses with a retryable 503 (NotCaughtUp), and
    // nothing else may fail.
    wait_for("node 3's promotion", Duration::from_secs(60), || {
        let request = http
            .post(url(base, follower, "/cluster/membership"))
            .json(&serde_json::json!({"voters": [1, 2, 3], "learners": []}))
            .send();
        async move {
            let promote = request.await.unwrap();
            let status = promote.status();
            let body = promote.text().await.unwrap();
            if status == 503 && body.contains("has not caught up") {
                return None;
            }
            assert_eq!(status, 200, "{body}");
            Some(())
        }
    })
    .await;
    assert_eq!(get(base, 3, "before").await.as_deref(), Some("1"));
    put(base, 3, "after", "2").await;
    let removed = http.delete(url(base, 3, &format!("/cluster/members/{follower}"))).send().await.unwrap();
    assert_eq!(removed.status(), 200, "{}", removed.text().await.unwrap());
    let remaining = if leader == 1 { [1, 3] } else { [2, 3] };
    for id in remaining {
        assert_eq!(get(base, id, "after").await.as_deref(), Some("2"));
    }
    let status: serde_json::Value =
        http.get(url(base, 3, "/cluster")).send().await.unwrap().json().await.unwrap();
    let ids: Vec<u64> =
        status["members"].as_array().unwrap().iter().map(|m| m["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, remaining);
}

/// SIGKILL of every node at once, then a restart: every write that got a
/// 200 is there.
#[tokio::test(flavor = "multi_thread")]
async fn every_acknowledged_write_survives_sigkill_of_all_nodes() {
    let base = 21700;
    let dir = tempfile::tempdir().unwrap();
    let members = members(base, 3);
    let mut nodes: Vec<Proc> =
        (1..=3).map(|id| start_node(base, id, dir.path(), &["--initial-members", &members])).collect();
    for id in 1..=3 {
        wait_ready(base, id).await;
    }
    let http = http();
    let mut acknowledged = Vec::new();
    for i in 0..60u64 {
        let node = i % 3 + 1;
        let answer = http.put(url(base, node, &format!("/kv/w{i}"))).body(format!("v{i}")).send().await;
        if answer.is_ok_and(|a| a.status() == 200) {
            acknowledged.push(i);
        }
    }
    assert!(!acknowledged.is_empty());
    for node in &mut nodes {
        node.signal("KILL");
    }
    for node in &mut nodes {
        node.wait_exit(Duration::from_secs(10)).await;
    }
    let _nodes: Vec<Proc> = (1..=3).map(|id| start_node(base, id, dir.path(), &[])).collect();
    for id in 1..=3 {
        wait_ready(base, id).await;
    }
    for i in acknowledged {
        assert_eq!(get(base, i % 3 + 1, &format!("w{i}")).await, Some(format!("v{i}")), "w{i} was lost");
    }
}
