//! Conformance suites for backends (feature `testing`): a backend's whole
//! test is one harness and one call.
//!
//! For a store `MyStore` (`raft-storage-mem/tests/conformance.rs` is a
//! complete, compiled example):
//!
//! ```text
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
//!
//! The harness of runtime tests is here too ([`runtime`], re-exported):
//! the settings, start-up and waits that every test of a cluster of
//! [`Raft`](crate::runtime::Raft) nodes shares, whatever its store and
//! transport.

pub mod runtime;
pub use runtime::{
    max_commit_index, propose_at_leader, runtime_config, shutdown_all, start_in_process, wait_all_applied,
    wait_applied, RUNTIME_DEADLINE,
};

use crate::runtime::{Envelope, Forward, ForwardOutcome, Forwarded};
use crate::storage::{LogAfterInstall, LogStore, LogWrite, SnapshotInstall, StorageError, StoredState};
use crate::{Entry, EntryPayload, HardState, Index, LogId, Membership, Snapshot, SnapshotMeta};
use async_trait::async_trait;
use bytes::Bytes;
use std::ops::Range;
use LogAfterInstall::{Discard, KeepSuffix};

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

/// Awaits `future`, panicking with `what` if it takes longer than `deadline`:
/// how a test waits on a condition without letting timing decide its verdict.
pub async fn within<F: std::future::Future>(
    deadline: std::time::Duration,
    what: &str,
    future: F,
) -> F::Output {
    tokio::time::timeout(deadline, future).await.unwrap_or_else(|_| panic!("{what} did not finish in time"))
}

/// Waits until one of `nodes` that runs reports itself leader, and
/// returns its position; panics after `deadline`, or once every node has
/// stopped. A stopped node is never the answer, though its last metrics
/// may say it leads (they are what it reported as it stopped).
pub async fn wait_for_leader<'a, SM: crate::runtime::StateMachine>(
    nodes: impl IntoIterator<Item = &'a crate::runtime::Raft<SM>>,
    deadline: std::time::Duration,
) -> usize {
    use std::future::Future as _;
    let mut metrics: Vec<_> = nodes.into_iter().map(|node| node.metrics()).collect();
    within(deadline, "electing a leader", async {
        loop {
            // Receivers first, then the check: a change in between still
            // wakes us. A closed receiver is a node that stopped.
            let running = |m: &tokio::sync::watch::Receiver<_>| m.has_changed().is_ok();
            let leads = |m: &tokio::sync::watch::Receiver<crate::runtime::Metrics>| {
                running(m) && m.borrow().role == crate::Role::Leader
            };
            if let Some(i) = metrics.iter().position(leads) {
                return i;
            }
            assert!(metrics.iter().any(running), "no leader: every node stopped");
            let mut changes: Vec<_> =
                metrics.iter_mut().filter(|m| running(m)).map(|m| Box::pin(m.changed())).collect();
            std::future::poll_fn(|cx| {
                let any = changes.iter_mut().any(|change| change.as_mut().poll(cx).is_ready());
                if any {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await;
        }
    })
    .await
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
    a_received_snapshot_discards_a_matching_log_when_told(harness).await;
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
        data: Bytes::from_static(b"state machine").into(),
    }
}

/// A leader's snapshot ending at `(index, term)`, installed doing `log`.
fn install(index: Index, term: u64, log: LogAfterInstall) -> SnapshotInstall {
    SnapshotInstall { snapshot: snapshot(index, term), log }
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
    store
        .write(LogWrite { snapshot: Some(install(6, 1, KeepSuffix)), ..Default::default() })
        .await
        .expect("install");
    let stored = load(&store).await;
    assert_eq!(stored.snapshot, Some(snapshot(6, 1)));
    assert_eq!(
        stored.entries,
        entries(7..11, 1),
        "entries after a snapshot that keeps the suffix must be kept"
    );
    // In one write: the snapshot, then entries replacing part of the suffix.
    let write = LogWrite {
        snapshot: Some(install(8, 1, KeepSuffix)),
        entries: entries(10..12, 2),
        ..Default::default()
    };
    store.write(write).await.expect("install");
    let expected = vec![(9, 1), (10, 2), (11, 2)];
    assert_eq!(indexes_and_terms(&load(&store).await), expected, "the kept suffix, then the write's entries");
}

async fn a_received_snapshot_discards_a_log_that_does_not_match<H: LogStoreHarness>(h: &mut H) {
    let store = h.create().await;
    append(&store, entries(1..11, 1)).await;
    store
        .write(LogWrite { snapshot: Some(install(6, 2, Discard)), ..Default::default() })
        .await
        .expect("install");
    let stored = load(&store).await;
    assert!(stored.entries.is_empty(), "a log that does not match the snapshot must be discarded");
    append(&store, entries(7..9, 2)).await;
    assert_eq!(load(&store).await.entries, entries(7..9, 2), "the log continues after the snapshot");
}

/// The core decides what a snapshot install keeps, on its in-memory log: a
/// stored entry at the snapshot's index that matches may be one the core
/// has replaced (in memory, not yet written) and then discarded. A store
/// that decides again from what it holds keeps entries the core dropped.
async fn a_received_snapshot_discards_a_matching_log_when_told<H: LogStoreHarness>(h: &mut H) {
    let store = h.create().await;
    append(&store, entries(1..11, 1)).await;
    // A write whose entries would follow only the kept suffix is refused.
    let gap =
        LogWrite { snapshot: Some(install(6, 1, Discard)), entries: entries(9..10, 1), ..Default::default() };
    let result = store.write(gap).await;
    assert!(
        matches!(result, Err(StorageError::NotContiguous { first: 9, last: 6 })),
        "after a snapshot that discards the log, entries must follow the snapshot, got {result:?}"
    );
    let stored = load(&store).await;
    assert_eq!(
        (stored.snapshot, stored.entries),
        (None, entries(1..11, 1)),
        "a refused write changes nothing"
    );
    store
        .write(LogWrite { snapshot: Some(install(6, 1, Discard)), ..Default::default() })
        .await
        .expect("install");
    let stored = load(&store).await;
    assert_eq!(stored.snapshot, Some(snapshot(6, 1)));
    assert!(
        stored.entries.is_empty(),
        "a snapshot told to discard the log must remove every stored entry, even where the log matches it"
    );
    let store = h.reopen(store).await;
    assert!(load(&store).await.entries.is_empty(), "discarded entries must not come back after a restart");
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
    store
        .write(LogWrite { snapshot: Some(install(8, 1, KeepSuffix)), ..Default::default() })
        .await
        .expect("install");
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
/// queue its inbound envelopes land in.
#[async_trait]
pub trait TransportHarness: Send {
    /// The transport under test.
    type Transport: crate::runtime::Transport;
    /// Starts node `id` (again, after [`TransportHarness::stop`]): its
    /// transport, and the [`Inbox`](crate::runtime::Inbox) it was bound to,
    /// which the suite reads with [`Inbox::recv`](crate::runtime::Inbox::recv).
    async fn start(&mut self, id: crate::NodeId) -> (Self::Transport, crate::runtime::Inbox);
    /// Stops node `id`: nothing reaches it until it starts again.
    async fn stop(&mut self, id: crate::NodeId);

    /// Makes `id` a peer that never answers: it takes what the transport
    /// offers (as far as the transport needs: a byte-stream transport may
    /// complete its handshake) and then reads nothing, ever. The peer lasts
    /// as long as the returned guard. The default starts `id` and never
    /// reads its inbox; a byte-stream transport should override it with a
    /// peer whose socket nobody reads, so that its writes back up.
    async fn start_unresponsive(&mut self, id: crate::NodeId) -> Box<dyn std::any::Any + Send> {
        Box::new(self.start(id).await)
    }

    /// A raw connection to node `to` as from node `from`, past whatever
    /// handshake the transport runs, so that what the suite writes on it is
    /// read as frames of [`Envelope`]s (the project codec's, see
    /// [`crate::codec::encode_frame`]). `None` (the default) skips the
    /// hostile-peer checks, for transports without a byte stream.
    async fn hostile_connection(
        &mut self,
        from: crate::NodeId,
        to: crate::NodeId,
    ) -> Option<Box<dyn tokio::io::AsyncWrite + Unpin + Send>> {
        let _ = (from, to);
        None
    }
}

/// How long the suite waits for an envelope that should arrive.
const TRANSPORT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs every check of the [`crate::runtime::Transport`] contract, with
/// both kinds of [`Envelope`].
pub async fn transport_conformance<H: TransportHarness>(harness: &mut H) {
    use crate::runtime::Transport;
    let (one, _one_inbox) = harness.start(1).await;
    let (_two, two_inbox) = harness.start(2).await;

    // Delivery, in order per peer.
    for round in 0..100 {
        one.send(heartbeat(1, 2, round));
    }
    for round in 0..100 {
        let envelope = receive(&two_inbox).await;
        assert_eq!(envelope, heartbeat(1, 2, round), "messages to a peer must arrive in order, intact");
    }

    // A large snapshot chunk arrives intact.
    let chunk = snapshot_chunk(1, 2, 256 * 1024);
    one.send(chunk.clone());
    assert_eq!(receive(&two_inbox).await, chunk, "a large snapshot chunk must arrive intact");

    forwarded_requests_cross_intact(&one, &two_inbox).await;

    // Sending to a peer that is down (or never existed) does not block.
    harness.stop(2).await;
    let started = std::time::Instant::now();
    for round in 0..10_000 {
        one.send(heartbeat(1, 2, round));
        one.send(heartbeat(1, 9, round));
    }
    assert!(started.elapsed() < TRANSPORT_DEADLINE, "send must never block on an absent peer");

    // A peer that restarts receives again.
    let (_two, two_inbox) = harness.start(2).await;
    let delivered = tokio::time::timeout(TRANSPORT_DEADLINE, async {
        let mut round = 1_000_000;
        loop {
            // Transports may drop while they reconnect; Raft retries, so do we.
            one.send(heartbeat(1, 2, round));
            round += 1;
            let attempt = tokio::time::timeout(std::time::Duration::from_millis(100), two_inbox.recv()).await;
            if let Ok(Some(envelope)) = attempt {
                if envelope.from() == 1 {
                    return;
                }
            }
        }
    })
    .await;
    assert!(delivered.is_ok(), "a restarted peer must receive again");

    a_peer_that_never_answers_blocks_nobody(harness, &one, &two_inbox).await;
    hostile_bytes_end_their_connection_not_the_node(harness, &one, &two_inbox).await;
}

/// Issue 13: the runtime's forwarded client requests travel in
/// [`Envelope::Forward`]s beside the protocol's messages. A proposal (with
/// a large command) and an answer of every outcome arrive intact, in order
/// with the Raft messages sent between them.
async fn forwarded_requests_cross_intact<T: crate::runtime::Transport>(
    one: &T,
    two_inbox: &crate::runtime::Inbox,
) {
    let command: Vec<u8> = (0..64 * 1024).map(|i| (i % 253) as u8).collect();
    let proposal = |id, command: Bytes| Forward::Proposal { id, command };
    let response = |id, outcome| Forward::Response { id, outcome };
    let bodies = [
        proposal(u64::MAX, Bytes::from(command)),
        proposal(1, Bytes::new()),
        response(2, ForwardOutcome::Applied(Bytes::from_static(b"the state machine's response"))),
        response(3, ForwardOutcome::NotLeader { leader: Some(3) }),
        response(4, ForwardOutcome::NotLeader { leader: None }),
        response(5, ForwardOutcome::NotApplied),
        response(6, ForwardOutcome::OutcomeUnknown),
        response(7, ForwardOutcome::Refused("the command did not decode".into())),
        response(8, ForwardOutcome::ResponseLost("the response did not encode".into())),
    ];
    let mut sent = Vec::new();
    for (i, body) in bodies.into_iter().enumerate() {
        let term = if matches!(body, Forward::Proposal { .. }) { 7 } else { 0 };
        sent.push(Envelope::Forward(Forwarded { from: 1, to: 2, term, body }));
        sent.push(heartbeat(1, 2, 500 + i as u64));
    }
    for envelope in &sent {
        one.send(envelope.clone());
    }
    for expected in sent {
        let envelope = receive(two_inbox).await;
        assert_eq!(
            envelope, expected,
            "a forwarded request must arrive intact, in order with the messages around it"
        );
    }
}

/// Issue 4: a peer that accepts nothing and reads nothing must not block
/// `send`, nor delay the other peers' messages.
async fn a_peer_that_never_answers_blocks_nobody<H: TransportHarness>(
    harness: &mut H,
    one: &H::Transport,
    two_inbox: &crate::runtime::Inbox,
) {
    use crate::runtime::Transport;
    let _silent = harness.start_unresponsive(3).await;
    // 64 MiB at the silent peer: more than any socket buffer holds.
    let payload = Bytes::from(vec![7; 16 * 1024]);
    let started = std::time::Instant::now();
    for round in 0..4096 {
        one.send(append_entries(1, 3, round, payload.clone()));
    }
    assert!(started.elapsed() < TRANSPORT_DEADLINE, "send must never block on a peer that reads nothing");
    for round in 0..100 {
        one.send(heartbeat(1, 2, 2_000_000 + round));
    }
    for round in 0..100 {
        let envelope = receive_fresh(two_inbox, 2_000_000).await;
        assert_eq!(
            envelope,
            heartbeat(1, 2, 2_000_000 + round),
            "a peer that reads nothing must not hold up messages to the others"
        );
    }
}

/// Issue 6: garbage, truncated, oversized and misaddressed frames, and
/// frames of another version (the bare messages of version 1 among them),
/// end the connection they came on (nothing after them is delivered) and
/// never the node (a good peer's messages still arrive).
async fn hostile_bytes_end_their_connection_not_the_node<H: TransportHarness>(
    harness: &mut H,
    one: &H::Transport,
    two_inbox: &crate::runtime::Inbox,
) {
    use tokio::io::AsyncWriteExt;
    let cases = hostile_frames();
    let mut skipped = true;
    for (i, (what, bytes, then_close)) in cases.into_iter().enumerate() {
        let Some(mut hostile) = harness.hostile_connection(HOSTILE, 2).await else {
            break;
        };
        skipped = false;
        let round = 3_000_000 + 10 * i as u64;
        // The connection works before the bad bytes: the check is not vacuous.
        hostile
            .write_all(&frame(&heartbeat(HOSTILE, 2, round)))
            .await
            .expect("a hostile connection accepts a valid frame");
        hostile.flush().await.expect("flush");
        assert_eq!(
            receive_from(two_inbox, HOSTILE).await,
            heartbeat(HOSTILE, 2, round),
            "a valid frame on the test's raw connection must be delivered (before {what})"
        );
        // Then the bad bytes, and a valid frame that must never be read.
        let _ = hostile.write_all(&bytes).await;
        if then_close {
            let _ = hostile.shutdown().await;
        } else {
            let _ = hostile.write_all(&frame(&heartbeat(HOSTILE, 2, round + 1))).await;
        }
        let _ = hostile.flush().await;
        drop(hostile);
        // The node still takes a good peer's messages.
        good_peer_still_heard(one, two_inbox, 4_000_000 + i as u64, what).await;
    }
    if skipped {
        eprintln!("transport_conformance: no hostile_connection; the hostile-peer checks were skipped");
    }
    // Whatever a hostile connection's last frame became, it is not delivered late.
    tokio::task::yield_now().await;
    while let Some(envelope) = two_inbox.try_recv() {
        assert!(!from_hostile(&envelope), "an envelope after hostile bytes was delivered: {envelope:?}");
    }
}

/// The hostile peer's id in [`hostile_bytes_end_their_connection_not_the_node`].
const HOSTILE: crate::NodeId = 4;

/// Whether `envelope` came from the hostile peer, or in its name from the
/// node it pretends to be.
fn from_hostile(envelope: &Envelope) -> bool {
    [HOSTILE, HOSTILE + 1].contains(&envelope.from())
}

/// `value` in a frame of this version.
fn frame(value: &Envelope) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = crate::codec::encode_frame(value, &mut bytes);
    bytes
}

/// The bad bytes a hostile peer sends: what each is, its bytes, and whether
/// the connection ends right after them (else a valid frame follows, which
/// must never be read).
fn hostile_frames() -> Vec<(&'static str, Vec<u8>, bool)> {
    use crate::codec::{encode_frame, FRAME_LENGTH_BYTES, FRAME_VERSION, MAX_VALUE_BYTES};
    let mut frame_of_garbage = vec![8, 0, 0, 0, FRAME_VERSION];
    frame_of_garbage.extend_from_slice(&[0xFF; 7]);
    let mut other_version = frame(&heartbeat(HOSTILE, 2, 0));
    other_version[FRAME_LENGTH_BYTES] = FRAME_VERSION.wrapping_add(1);
    // What a node of version 1 sent: a bare message, in a frame of version 1.
    let mut version_1 = Vec::new();
    let _ = encode_frame(&heartbeat_message(HOSTILE, 2, 0), &mut version_1);
    version_1[FRAME_LENGTH_BYTES] = 1;
    let misaddressed = frame(&heartbeat(HOSTILE + 1, 2, 0));
    let misaddressed_forward = frame(&Envelope::Forward(Forwarded {
        from: HOSTILE + 1,
        to: 2,
        term: 1,
        body: Forward::Proposal { id: 1, command: Bytes::from_static(b"a command") },
    }));
    let oversized = |len: u32| {
        let mut bytes = len.to_le_bytes().to_vec();
        bytes.push(FRAME_VERSION);
        bytes.extend_from_slice(&[0; 64]);
        bytes
    };
    vec![
        ("garbage", frame_of_garbage, false),
        ("a frame of another frame version", other_version, false),
        ("a frame of version 1 (a bare message, from before envelopes)", version_1, false),
        ("an empty frame", 0u32.to_le_bytes().to_vec(), false),
        ("a frame over the codec's limit", oversized(MAX_VALUE_BYTES as u32 + 1), false),
        ("a frame claiming 4 GiB", oversized(u32::MAX), false),
        ("a message from another node than the handshake's", misaddressed, false),
        ("a forward from another node than the handshake's", misaddressed_forward, false),
        // A header promising 100 bytes, 10 of them, then the end of the stream.
        ("a truncated frame", [&100u32.to_le_bytes()[..], &[FRAME_VERSION; 10]].concat(), true),
    ]
}

/// Waits until a heartbeat `marker` from the good peer `one` reaches node
/// 2, resending it meanwhile; fails if anything of the hostile peer's
/// arrives first (the bad bytes were `what`).
async fn good_peer_still_heard<T: crate::runtime::Transport>(
    one: &T,
    two_inbox: &crate::runtime::Inbox,
    marker: u64,
    what: &str,
) {
    let arrived = tokio::time::timeout(TRANSPORT_DEADLINE, async {
        loop {
            one.send(heartbeat(1, 2, marker));
            let attempt = tokio::time::timeout(std::time::Duration::from_millis(100), two_inbox.recv()).await;
            match attempt {
                Ok(Some(envelope)) if from_hostile(&envelope) => {
                    panic!("an envelope from or after {what} was delivered: {envelope:?}")
                }
                Ok(Some(envelope)) if envelope == heartbeat(1, 2, marker) => return,
                Ok(None) => panic!("a node reads the inbox"),
                _ => {}
            }
        }
    })
    .await;
    assert!(arrived.is_ok(), "after {what} from a hostile peer, a good peer's messages must still arrive");
}

fn heartbeat_message(from: crate::NodeId, to: crate::NodeId, round: u64) -> crate::Message {
    crate::Message {
        from,
        to,
        term: 1,
        body: crate::MessageBody::Heartbeat(crate::Heartbeat { commit: round, round }),
    }
}

fn heartbeat(from: crate::NodeId, to: crate::NodeId, round: u64) -> Envelope {
    heartbeat_message(from, to, round).into()
}

fn snapshot_chunk(from: crate::NodeId, to: crate::NodeId, len: usize) -> Envelope {
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    Envelope::Raft(crate::Message {
        from,
        to,
        term: 1,
        body: crate::MessageBody::InstallSnapshot(Box::new(crate::InstallSnapshot {
            meta: SnapshotMeta { last: LogId::new(1, 100), membership: Membership::new([1, 2], []) },
            offset: 0,
            total_len: data.len() as u64,
            checksum: crc32fast::hash(&data),
            data: Bytes::from(data),
            done: true,
        })),
    })
}

fn append_entries(from: crate::NodeId, to: crate::NodeId, round: u64, payload: Bytes) -> Envelope {
    Envelope::Raft(crate::Message {
        from,
        to,
        term: 1,
        body: crate::MessageBody::AppendEntries(crate::AppendEntries {
            prev_log_index: round,
            prev_log_term: 1,
            entries: vec![Entry { term: 1, index: round + 1, payload: EntryPayload::Command(payload) }],
            leader_commit: 0,
        }),
    })
}

/// The next envelope that is not a heartbeat of a round below `min_round`
/// (a straggler of an earlier check that retried).
async fn receive_fresh(inbox: &crate::runtime::Inbox, min_round: u64) -> Envelope {
    loop {
        let envelope = receive(inbox).await;
        match &envelope {
            Envelope::Raft(crate::Message { body: crate::MessageBody::Heartbeat(h), .. })
                if h.round < min_round => {}
            _ => return envelope,
        }
    }
}

/// The next envelope from `from`, skipping others (stragglers of earlier
/// checks that retried).
async fn receive_from(inbox: &crate::runtime::Inbox, from: crate::NodeId) -> Envelope {
    loop {
        let envelope = receive(inbox).await;
        if envelope.from() == from {
            return envelope;
        }
    }
}

async fn receive(inbox: &crate::runtime::Inbox) -> Envelope {
    tokio::time::timeout(TRANSPORT_DEADLINE, inbox.recv())
        .await
        .expect("an envelope must arrive within the deadline")
        .expect("no node reads the inbox")
}
