//! MemKv's snapshots restore whatever their size: the state machine's
//! snapshot is one encoded map, so a per-value decode limit must not cap the
//! state a replica can install or restart from.

use raft_core::runtime::StateMachine;
use raft_core::LogId;
use raft_storage_mem::{KvCommand, MemKv};

#[test]
fn a_snapshot_of_more_than_64_mib_restores() {
    let mut kv = MemKv::default();
    let value = "v".repeat(1 << 20);
    for i in 0..70u64 {
        kv.apply(LogId::new(1, i + 1), KvCommand::Set { key: format!("key-{i:03}"), value: value.clone() });
    }
    let snapshot = kv.snapshot();
    assert!(snapshot.len() > 64 << 20, "{} bytes", snapshot.len());
    let mut restored = MemKv::default();
    restored.restore(&snapshot).expect("a snapshot MemKv wrote restores");
    assert_eq!(restored, kv);
}
