//! Membership changes while a client writes: grow 3 to 5 by `--join`,
//! replace nodes, shrink back to 3; no acknowledged write is lost.

mod common;

use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn set_voters(base: u16, through: u64, voters: &[u64]) {
    let http = http();
    let body = serde_json::json!({"voters": voters, "learners": []});
    wait_for(&format!("voters {voters:?}"), Duration::from_secs(60), || {
        let request = http.post(url(base, through, "/cluster/membership")).json(&body).send();
        async move { request.await.ok().filter(|r| r.status() == 200).map(|_| ()) }
    })
    .await;
}

async fn wait_learner(base: u16, through: u64, id: u64) {
    let http = http();
    wait_for(&format!("node {id} to be a learner"), Duration::from_secs(60), || {
        let request = http.get(url(base, through, "/cluster")).send();
        async move {
            let status: serde_json::Value = request.await.ok()?.json().await.ok()?;
            status["members"]
                .as_array()?
                .iter()
                .any(|m| m["id"] == id && m["kind"] == "learner")
                .then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn membership_changes_under_writes_lose_nothing_acknowledged() {
    let base = 23000;
    let dir = tempfile::tempdir().unwrap();
    let founders = members(base, 3);
    let mut nodes: Vec<Proc> =
        (1..=3).map(|id| start_node(base, id, dir.path(), &["--initial-members", &founders])).collect();
    for id in 1..=3 {
        wait_ready(base, id).await;
    }

    // A client writing through node 3 (never removed), one Request-Id per
    // write, retrying an unknown outcome with the same id.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        async move {
            let http = http();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                for _attempt in 0..50 {
                    let answer = http
                        .put(url(base, 3, &format!("/kv/w{i}")))
                        .header("Request-Id", format!("writer:{i}"))
                        .body(format!("v{i}"))
                        .send()
                        .await;
                    match answer.map(|a| a.status().as_u16()) {
                        Ok(200) => {
                            acknowledged.lock().unwrap().push(i);
                            break;
                        }
                        _ => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            }
        }
    });
    let acked = || acknowledged.lock().unwrap().len();

    // Grow to 5: each joins through a member (not necessarily the leader),
    // then is promoted.
    for id in [4, 5] {
        let through = format!("127.0.0.1:{}", ports(base, id - 2).api);
        nodes.push(start_node(base, id, dir.path(), &["--join", &through]));
        wait_learner(base, 3, id).await;
        let voters: Vec<u64> = (1..=id).collect();
        set_voters(base, 3, &voters).await;
    }
    let before = acked();
    wait_for("writes during the change", Duration::from_secs(60), || async move {
        (acked() > before).then_some(())
    })
    .await;

    // Replace node 1 by node 6, then shrink back to three: 3, 5, 6.
    nodes.push(start_node(base, 6, dir.path(), &["--join", &format!("127.0.0.1:{}", ports(base, 4).api)]));
    wait_learner(base, 3, 6).await;
    set_voters(base, 3, &[2, 3, 4, 5, 6]).await;
    set_voters(base, 4, &[3, 5, 6]).await;
    let before = acked();
    wait_for("writes after the change", Duration::from_secs(60), || async move {
        (acked() > before).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    let status: serde_json::Value =
        http().get(url(base, 3, "/cluster")).send().await.unwrap().json().await.unwrap();
    let ids: Vec<u64> =
        status["members"].as_array().unwrap().iter().map(|m| m["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [3, 5, 6]);
    let written = acknowledged.lock().unwrap().clone();
    assert!(written.len() >= 2);
    for i in written {
        for node in [3, 5, 6] {
            assert_eq!(
                get(base, node, &format!("w{i}")).await,
                Some(format!("v{i}")),
                "w{i} lost at node {node}"
            );
        }
    }
}
