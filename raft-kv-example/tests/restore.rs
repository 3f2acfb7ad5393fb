//! `raft-kv node --init --restore FILE`: a backup founds a new cluster, on
//! the durable store, which keeps the data across a restart; a data
//! directory that already holds a node refuses to be restored into.
//!
//! Ports: the old cluster uses block 24700, the new one block 24800.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_founds_a_new_cluster_that_keeps_it_across_a_restart() {
    let (base, other) = (24700, 24800);
    let dir = tempfile::tempdir().unwrap();
    let _old = start_node(base, 1, dir.path(), &["--init", "--storage", "mem"]);
    wait_ready(base, 1).await;
    for i in 0..20 {
        put(base, 1, &format!("k{i}"), &format!("v{i}")).await;
    }
    let file = dir.path().join("backup.bin");
    let endpoint = format!("127.0.0.1:{}", base + 1);
    let output = Command::new(bin())
        .args(["backup", file.to_str().unwrap(), "--endpoints", &endpoint])
        .output()
        .expect("run raft-kv backup");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let fresh = dir.path().join("fresh");
    let restore = ["--init", "--restore", file.to_str().unwrap()];
    let mut new = start_node(other, 1, &fresh, &restore);
    wait_ready(other, 1).await;
    for i in 0..20 {
        assert_eq!(get(other, 1, &format!("k{i}")).await, Some(format!("v{i}")));
    }
    put(other, 1, "after", "restore").await;

    // A restart resumes the restored cluster; --restore again is refused.
    new.signal("TERM");
    assert!(new.wait_exit(Duration::from_secs(30)).await.success(), "{}", new.log_text());
    let mut again = start_node(other, 1, &fresh, &restore);
    let status = again.wait_exit(Duration::from_secs(30)).await;
    assert!(!status.success());
    assert!(again.log_text().contains("already holds a node"), "{}", again.log_text());
    let _resumed = start_node(other, 1, &fresh, &[]);
    wait_ready(other, 1).await;
    assert_eq!(get(other, 1, "k7").await, Some("v7".into()));
    assert_eq!(get(other, 1, "after").await, Some("restore".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_backup_founds_nothing_and_says_why() {
    let base = 24900;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("damaged.bin");
    std::fs::write(&file, b"not a backup").unwrap();
    let mut node =
        start_node(base, 1, dir.path(), &["--init", "--storage", "mem", "--restore", file.to_str().unwrap()]);
    let status = node.wait_exit(Duration::from_secs(30)).await;
    assert!(!status.success());
    assert!(node.log_text().contains("backup not restored"), "{}", node.log_text());
}
