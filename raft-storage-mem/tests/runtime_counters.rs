//! The runtime's counters and histograms reach whatever recorder the
//! application installs (here the `metrics` crate's debugging recorder,
//! installed globally: this file holds one test for that reason).

mod common;

use common::*;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use raft_core::runtime::InProcessNetwork;
use raft_storage_mem::MemLogStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_histograms_reach_the_installed_recorder() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("the only recorder in this test binary");

    let net = InProcessNetwork::new();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start_with(&net, config(id), &[1, 2, 3], MemLogStore::new()).await);
    }
    let l = leader(&nodes).await;
    for i in 0..10 {
        within("a proposal", nodes[l].propose(set(&format!("k{i}"), "v"))).await.expect("committed");
    }
    within("a snapshot", nodes[l].trigger_snapshot()).await.expect("built");
    let leader_id = (l + 1).to_string();

    let snapshot = snapshotter.snapshot().into_vec();
    let value = |name: &str, kind: MetricKind| {
        snapshot
            .iter()
            .find(|(key, _, _, _)| {
                key.kind() == kind
                    && key.key().name() == name
                    && key.key().labels().any(|l| l.key() == "node" && l.value() == leader_id)
            })
            .map(|(_, _, _, value)| value)
            .unwrap_or_else(|| panic!("{name} was not recorded for the leader"))
    };
    let counter = |name: &str| match value(name, MetricKind::Counter) {
        DebugValue::Counter(n) => *n,
        other => panic!("{name} is not a counter: {other:?}"),
    };
    let samples = |name: &str| match value(name, MetricKind::Histogram) {
        DebugValue::Histogram(samples) => samples.len(),
        other => panic!("{name} is not a histogram: {other:?}"),
    };
    assert!(counter("raft_proposals_total") >= 10);
    assert!(counter("raft_entries_applied_total") >= 10);
    assert!(counter("raft_messages_sent_total") > 0);
    assert!(counter("raft_messages_received_total") > 0);
    assert!(counter("raft_log_writes_total") > 0);
    assert!(counter("raft_role_changes_total") > 0);
    assert!(counter("raft_snapshots_built_total") >= 1);
    assert!(samples("raft_log_write_entries") > 0);
    assert!(samples("raft_log_write_seconds") > 0);
    for node in &nodes {
        within("a shutdown", node.shutdown()).await;
    }
}
