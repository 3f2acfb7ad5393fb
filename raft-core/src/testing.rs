//! Conformance suites for backends (feature `testing`): a backend's whole
//! test is one harness and one call.
//!
//! ```ignore
//! struct Harness;
//! #[async_trait::async_trait]
//! impl LogStoreHarness for Harness {
//!     type Store = MyStore;
//!     async fn create(&mut self) -> MyStore { MyStore::open_fresh().await }
//!     async fn reopen(&mut self, store: MyStore) -> MyStore { store.close_and_reopen().await }
//! }
//! #[tokio::test]
//! async fn conforms() { raft_core::testing::log_store_conformance(&mut Harness).await }
//! ```
//!
//! Each check panics with the rule it found broken.

use crate::storage::{LogStore, LogWrite, StorageError, StoredState};
use crate::{Entry, EntryPayload, HardState, Index, LogId, Membership, Snapshot, SnapshotMeta};
use async_trait::async_trait;
use bytes::Bytes;
use std::ops::Range;

/// How the suite obtains stores.
#[async_trait]
pub trait LogStoreHarness: Send {
    /// The store under test.
    type Store: LogStore;
    /// A new, empty store.
    async fn create(&mut self) -> Self::Store;
    /// The same store as after a restart: closed, then opened again from
    /// whatever it made durable.
    async fn reopen(&mut self, store: Self::Store) -> Self::Store;
}

/// Runs every check of the [`LogStore`] contract against stores from `harness`.
pub async fn log_store_conformance<H: LogStoreHarness>(harness: &mut H) {
    a_new_store_is_empty(harness).await;
    appended_entries_and_hard_state_load_back(harness).await;
    a_conflicting_suffix_is_replaced(harness).await;
    a_write_leaving_a_gap_is_refused(harness).await;
    a_purged_prefix_is_gone(harness).await;
    ranges_respect_the_byte_budget(harness).await;
    a_received_snapshot_keeps_a_matching_suffix(harness).await;
    a_received_snapshot_discards_a_log_that_does_not_match(harness).await;
    a_built_snapshot_leaves_the_entries(harness).await;
    an_older_built_snapshot_does_not_replace_a_newer_one(harness).await;
    everything_survives_a_restart(harness).await;
}

fn entries(indexes: Range<Index>, term: u64) -> Vec<Entry> {
    indexes
        .map(|index| Entry {
            index,
            term,
            payload: EntryPayload::Command(Bytes::from(index.to_be_bytes().to_vec())),
        })
        .collect()
}

fn snapshot(index: Index, term: u64) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta { last: LogId::new(term, index), membership: Membership::new([1, 2, 3], []) },
        data: Bytes::from_static(b"state machine"),
    }
}

async fn load(store: &impl LogStore) -> StoredState {
    store.load().await.expect("load")
}

async fn append(store: &impl LogStore, new: Vec<Entry>) {
    store.write(LogWrite { entries: new, ..Default::default() }).await.expect("write");
}

fn indexes_and_terms(stored: &StoredState) -> Vec<(Index, u64)> {
    stored.entries.iter().map(|e| (e.index, e.term)).collect()
}

async fn a_new_store_is_empty<H: LogStoreHarness>(h: &mut H) {
    let store = h.create().await;
    assert_eq!(load(&store).await, StoredState::default(), "a new store must load empty");
}

async fn appended_entries_and_hard_state_load_back<H: LogStoreHarness>(h: &mut H) {
    let store = h.create().await;
    let hard_state = HardState { term: 3, vote: Some(2) };
    store
        .write(LogWrite { hard_state: Some(hard_state), entries: entries(1..4, 3), ..Default::default() })
        .await
        .expect("write");
    append(&store, entries(4..6, 3)).await;
    let stored = load(&store).await;
    assert_eq!(stored.hard_state, hard_state, "the hard state must load back");
    assert_eq!(stored.entries, entries(1..6, 3), "appended entries must load back, payloads intact");
}

async fn a_conflicting_suffix_is_replaced<H: LogStoreHarness>(h: &mut H) {
    let store = h.create().await;
    append(&store, entries(1..11, 1)).await;
    append(&store, entries(7..9, 2)).await;
    let stored = load(&store).await;
    let expected: Vec<(Index, u64)> = (1..7).map(|i| (i, 1)).chain((7..9).map(|i| (i, 2))).collect();
    assert_eq!(indexes_and_terms(&stored), expected, "entries from the first new index on must be replaced");
}

async fn a_write_leaving_a_gap_is_refused<H: LogStoreHarness>(h: &mut H) {
    let store = h.create().await;
    append(&store, entries(1..4, 1)).await;
    let result = store.write(LogWrite { entries: entries(6..8, 1), ..Default::default() }).await;
    assert!(
        matches!(result, Err(StorageError::NotContiguous { first: 6, last: 3 })),
        "a write leaving a gap must be refused, got {result:?}"
    );
    assert_eq!(load(&store).await.entries, entries(1..4, 1), "a refused write must change nothing");
}

async fn a_purged_prefix_is_gone<H: LogStoreHarness>(h: &mut H) {
    let store = h.create().await;
    append(&store, entries(1..11, 1)).await;
    store.save_snapshot(snapshot(6, 1)).await.expect("save snapshot");
    store.write(LogWrite { purge_to: Some(4), ..Default::default() }).await.expect("purge");
    let ranged = store.entries(5..11, u64::MAX).await.expect("entries after the purge point");
    assert_eq!(ranged, entries(5..11, 1), "entries after the purge point must remain");
    let purged = store.entries(1..5, u64::MAX).await;
    assert!(
        matches!(purged, Err(StorageError::Unavailable { .. })),
        "purged entries must be unavailable, got {purged:?}"
    );
    append(&store, entries(11..13, 1)).await;
    assert_eq!(load(&store).await.entries, entries(7..13, 1), "load returns the entries after the snapshot");
}

async fn ranges_respect_the_byte_budget<H: LogStoreHarness>(h: &mut H) {
    let store = h.create().await;
    append(&store, entries(1..21, 1)).await;
    let one = entries(1..2, 1)[0].size();
    assert_eq!(store.entries(3..8, u64::MAX).await.expect("range"), entries(3..8, 1));
    assert_eq!(
        store.entries(3..8, 2 * one).await.expect("range").len(),
        2,
        "the budget must bound the entries"
    );
    assert_eq!(
        store.entries(3..8, 1).await.expect("range").len(),
        1,
        "the first entry comes whatever the budget"
    );
    let beyond = store.entries(18..30, u64::MAX).await;
    assert!(
        matches!(beyond, Err(StorageError::Unavailable { .. })),
        "entries beyond the log are unavailable, got {beyond:?}"
    );
}

async fn a_received_snapshot_keeps_a_matching_suffix<H: LogStoreHarness>(h: &mut H) {
    let store = h.create().await;
    append(&store, entries(1..11, 1)).await;
    store.write(LogWrite { snapshot: Some(snapshot(6, 1)), ..Default::default() }).await.expect("install");
    let stored = load(&store).await;
    assert_eq!(stored.snapshot, Some(snapshot(6, 1)));
    assert_eq!(stored.entries, entries(7..11, 1), "entries after a matching snapshot must be kept");
}

async fn a_received_snapshot_discards_a_log_that_does_not_match<H: LogStoreHarness>(h: &mut H) {
    let store = h.create().await;
    append(&store, entries(1..11, 1)).await;
    store.write(LogWrite { snapshot: Some(snapshot(6, 2)), ..Default::default() }).await.expect("install");
    let stored = load(&store).await;
    assert!(stored.entries.is_empty(), "a log that does not match the snapshot must be discarded");
    append(&store, entries(7..9, 2)).await;
    assert_eq!(load(&store).await.entries, entries(7..9, 2), "the log continues after the snapshot");
}

async fn a_built_snapshot_leaves_the_entries<H: LogStoreHarness>(h: &mut H) {
    let store = h.create().await;
    append(&store, entries(1..11, 1)).await;
    store.save_snapshot(snapshot(8, 1)).await.expect("save snapshot");
    assert_eq!(
        store.entries(1..11, u64::MAX).await.expect("entries"),
        entries(1..11, 1),
        "saving a snapshot purges nothing"
    );
    let stored = load(&store).await;
    assert_eq!(stored.snapshot, Some(snapshot(8, 1)));
    assert_eq!(stored.entries, entries(9..11, 1), "load returns only the entries after the snapshot");
}

async fn an_older_built_snapshot_does_not_replace_a_newer_one<H: LogStoreHarness>(h: &mut H) {
    let store = h.create().await;
    append(&store, entries(1..11, 1)).await;
    store.write(LogWrite { snapshot: Some(snapshot(8, 1)), ..Default::default() }).await.expect("install");
    store.save_snapshot(snapshot(5, 1)).await.expect("save an older snapshot");
    let stored = load(&store).await;
    assert_eq!(stored.snapshot, Some(snapshot(8, 1)), "an older built snapshot must not replace a newer one");
    assert_eq!(stored.entries, entries(9..11, 1));
    let store = h.reopen(store).await;
    assert_eq!(load(&store).await.snapshot, Some(snapshot(8, 1)), "nor after a restart");
}

async fn everything_survives_a_restart<H: LogStoreHarness>(h: &mut H) {
    let store = h.create().await;
    let hard_state = HardState { term: 5, vote: Some(1) };
    store
        .write(LogWrite { hard_state: Some(hard_state), entries: entries(1..6, 5), ..Default::default() })
        .await
        .expect("write");
    store.save_snapshot(snapshot(3, 5)).await.expect("save snapshot");
    let store = h.reopen(store).await;
    let stored = load(&store).await;
    assert_eq!(stored.hard_state, hard_state, "the hard state must survive a restart");
    assert_eq!(stored.snapshot, Some(snapshot(3, 5)), "the snapshot must survive a restart");
    assert_eq!(stored.entries, entries(4..6, 5), "the entries must survive a restart");
}

/// How the transport suite obtains nodes: each with its transport and the
/// queue its inbound messages land in.
#[async_trait]
pub trait TransportHarness: Send {
    /// The transport under test.
    type Transport: crate::runtime::Transport;
    /// Starts node `id` (again, after [`TransportHarness::stop`]): its
    /// transport, and the receiver of what peers send it.
    async fn start(
        &mut self,
        id: crate::NodeId,
    ) -> (Self::Transport, tokio::sync::mpsc::Receiver<crate::Message>);
    /// Stops node `id`: nothing reaches it until it starts again.
    async fn stop(&mut self, id: crate::NodeId);
}

/// How long the suite waits for a message that should arrive.
const TRANSPORT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs every check of the [`crate::runtime::Transport`] contract.
pub async fn transport_conformance<H: TransportHarness>(harness: &mut H) {
    use crate::runtime::Transport;
    let (one, _one_inbox) = harness.start(1).await;
    let (_two, mut two_inbox) = harness.start(2).await;

    // Delivery, in order per peer.
    for round in 0..100 {
        one.send(heartbeat(1, 2, round));
    }
    for round in 0..100 {
        let message = receive(&mut two_inbox).await;
        assert_eq!(message, heartbeat(1, 2, round), "messages to a peer must arrive in order, intact");
    }

    // A large snapshot chunk arrives intact.
    let chunk = snapshot_chunk(1, 2, 256 * 1024);
    one.send(chunk.clone());
    assert_eq!(receive(&mut two_inbox).await, chunk, "a large snapshot chunk must arrive intact");

    // Sending to a peer that is down (or never existed) does not block.
    harness.stop(2).await;
    let started = std::time::Instant::now();
    for round in 0..10_000 {
        one.send(heartbeat(1, 2, round));
        one.send(heartbeat(1, 9, round));
    }
    assert!(started.elapsed() < TRANSPORT_DEADLINE, "send must never block on an absent peer");

    // A peer that restarts receives again.
    let (_two, mut two_inbox) = harness.start(2).await;
    let delivered = tokio::time::timeout(TRANSPORT_DEADLINE, async {
        let mut round = 1_000_000;
        loop {
            // Transports may drop while they reconnect; Raft retries, so do we.
            one.send(heartbeat(1, 2, round));
            round += 1;
            let attempt = tokio::time::timeout(std::time::Duration::from_millis(100), two_inbox.recv()).await;
            if let Ok(Some(message)) = attempt {
                if message.from == 1 {
                    return;
                }
            }
        }
    })
    .await;
    assert!(delivered.is_ok(), "a restarted peer must receive again");
}

fn heartbeat(from: crate::NodeId, to: crate::NodeId, round: u64) -> crate::Message {
    crate::Message {
        from,
        to,
        term: 1,
        body: crate::MessageBody::Heartbeat(crate::Heartbeat { commit: round, round }),
    }
}

fn snapshot_chunk(from: crate::NodeId, to: crate::NodeId, len: usize) -> crate::Message {
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    crate::Message {
        from,
        to,
        term: 1,
        body: crate::MessageBody::InstallSnapshot(Box::new(crate::InstallSnapshot {
            meta: SnapshotMeta { last: LogId::new(1, 100), membership: Membership::new([1, 2], []) },
            offset: 0,
            data: Bytes::from(data),
            done: true,
        })),
    }
}

async fn receive(inbox: &mut tokio::sync::mpsc::Receiver<crate::Message>) -> crate::Message {
    tokio::time::timeout(TRANSPORT_DEADLINE, inbox.recv())
        .await
        .expect("a message must arrive within the deadline")
        .expect("the inbox is open")
}
