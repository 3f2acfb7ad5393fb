//! Found by review of the durability gate (persist-gate): the core and the
//! store each apply section 7's install rule ("keep the entries after the
//! snapshot if the log holds its last entry"), but to different logs. The
//! core asks its in-memory log, which may hold an entry not yet handed to
//! storage; the store asks what is stored (`storage.rs`, contract rule 3).
//! When a leader's AppendEntries replaces the entry at the snapshot's index
//! in memory, and a later leader's snapshot arrives before the next
//! `ready()`, the core discards its log while the store keeps its old
//! suffix: the disk then holds entries the running node does not know.

use raft_core::{
    AppendEntries, Config, Entry, EntryPayload, HardState, InstallSnapshot, LogId, LogStore, LogWrite,
    Membership, Message, MessageBody, RawNode, SnapshotData, SnapshotMeta,
};
use raft_storage_mem::MemLogStore;

fn blank(index: u64, term: u64) -> Entry {
    Entry { index, term, payload: EntryPayload::Blank }
}

async fn write_ready(store: &MemLogStore, node: &mut RawNode) {
    let ready = node.ready();
    let write = LogWrite {
        hard_state: ready.hard_state,
        snapshot: ready.snapshot,
        entries: ready.entries,
        purge_to: ready.purge_to,
    };
    store.write(write).await.expect("a write the core asked for");
    node.on_persisted(ready.number);
}

#[tokio::test]
async fn the_store_keeps_no_entries_the_core_discarded_on_a_snapshot_install() {
    let store = MemLogStore::new();
    let membership = Membership::new([1, 2, 3], []);
    let stored = LogWrite {
        hard_state: Some(HardState { term: 1, vote: None }),
        entries: vec![blank(1, 1), blank(2, 1), blank(3, 1)],
        ..LogWrite::default()
    };
    store.write(stored).await.unwrap();
    let state = store.load().await.unwrap().into_initial_state(membership.clone());
    let mut node = RawNode::new(Config::new(1), state, 1).unwrap();

    // Term 2: node 2 lacks (2,1) and replaces it (and (3,1)) with (2,2),
    // in memory only: no ready() yet.
    let body = MessageBody::AppendEntries(AppendEntries {
        prev_log_index: 1,
        prev_log_term: 1,
        entries: vec![blank(2, 2)],
        leader_commit: 0,
    });
    node.step(Message { from: 2, to: 1, term: 2, body }).unwrap();
    // Term 3: node 3 held (2,1), committed it (Figure 8) and sends a
    // snapshot ending there, delivered in the same batch.
    let data = SnapshotData::from(bytes::Bytes::new());
    let chunk = InstallSnapshot {
        meta: SnapshotMeta { last: LogId::new(1, 2), membership },
        offset: 0,
        checksum: data.crc32(),
        data: bytes::Bytes::new(),
        done: true,
        total_len: 0,
    };
    node.step(Message { from: 3, to: 1, term: 3, body: MessageBody::InstallSnapshot(Box::new(chunk)) })
        .unwrap();
    write_ready(&store, &mut node).await;

    let on_disk: Vec<LogId> = store.load().await.unwrap().entries.iter().map(Entry::log_id).collect();
    let in_memory: Vec<LogId> = node
        .log()
        .entries_from(node.log().first_index(), usize::MAX, u64::MAX)
        .iter()
        .map(Entry::log_id)
        .collect();
    assert_eq!(node.log().last_index(), 2, "the core discarded its log down to the snapshot");
    assert_eq!(on_disk, in_memory, "the disk holds entries after the snapshot the core does not know");
}
