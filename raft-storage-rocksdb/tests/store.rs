//! What the conformance suite cannot see: what is refused at open, corrupt
//! data read back, snapshot files, and truncation and purge across restarts.

use bytes::Bytes;
use raft_core::{
    Entry, EntryPayload, HardState, Index, LogAfterInstall, LogId, LogStore, LogWrite, Membership, Snapshot,
    SnapshotInstall, SnapshotMeta, StorageError,
};
use raft_storage_rocksdb::{OpenError, RocksLogStore, RocksLogStoreOptions, STORE_FORMAT_VERSION};
use std::path::{Path, PathBuf};

const CLUSTER: u64 = 42;

fn entries(indexes: std::ops::Range<Index>, term: u64) -> Vec<Entry> {
    indexes
        .map(|index| Entry {
            index,
            term,
            payload: EntryPayload::Command(Bytes::from(format!("{index}@{term}"))),
        })
        .collect()
}

fn snapshot(index: Index, term: u64) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta { last: LogId::new(term, index), membership: Membership::new([1, 2, 3], []) },
        data: Bytes::from(format!("state up to {index}")).into(),
    }
}

async fn open(path: &Path) -> RocksLogStore {
    RocksLogStore::open(path, RocksLogStoreOptions::new(CLUSTER)).await.expect("the store opens")
}

async fn append(store: &RocksLogStore, new: Vec<Entry>) {
    store.write(LogWrite { entries: new, ..Default::default() }).await.expect("write");
}

/// The raw database under a (closed) store, with its column families.
fn raw_db(store: &Path) -> rocksdb::DB {
    rocksdb::DB::open_cf(
        &rocksdb::Options::default(),
        store.join("db"),
        ["raft_meta", "raft_log", "raft_hard_state"],
    )
    .expect("the raw database opens")
}

fn snapshot_files(store: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(store.join("snapshots"))
        .expect("the snapshot directory")
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn a_missing_directory_is_created_and_opens_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("not/yet/there");
    let store = open(&path).await;
    assert_eq!(store.load().await.expect("load"), Default::default());
    store.close().await;
    assert!(path.join("db").is_dir() && path.join("snapshots").is_dir());
}

#[tokio::test]
async fn a_directory_that_is_not_a_store_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("notes.txt"), "someone else's").expect("write a file");
    let result = RocksLogStore::open(dir.path(), RocksLogStoreOptions::new(CLUSTER)).await;
    assert!(matches!(result, Err(OpenError::NotOurs { .. })), "got {result:?}");
    assert!(dir.path().join("notes.txt").is_file(), "nothing is touched");

    let file = dir.path().join("notes.txt");
    let result = RocksLogStore::open(&file, RocksLogStoreOptions::new(CLUSTER)).await;
    assert!(matches!(result, Err(OpenError::NotOurs { .. })), "a file is not a store, got {result:?}");

    // A RocksDB database of someone else's, where ours would be.
    let foreign = dir.path().join("foreign");
    {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        let db = rocksdb::DB::open(&options, foreign.join("db")).expect("a foreign database");
        db.put(b"their key", b"their value").expect("put");
    }
    let result = RocksLogStore::open(&foreign, RocksLogStoreOptions::new(CLUSTER)).await;
    assert!(matches!(result, Err(OpenError::NotOurs { .. })), "got {result:?}");
    let families = rocksdb::DB::list_cf(&rocksdb::Options::default(), foreign.join("db")).expect("list_cf");
    assert_eq!(families, ["default"], "a foreign database is left as it was");
}

#[tokio::test]
async fn a_store_of_another_cluster_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    open(dir.path()).await.close().await;
    let result = RocksLogStore::open(dir.path(), RocksLogStoreOptions::new(CLUSTER + 1)).await;
    assert!(
        matches!(result, Err(OpenError::OtherCluster { expected, found, .. }) if expected == CLUSTER + 1 && found == CLUSTER),
        "got {result:?}"
    );
    open(dir.path()).await.close().await;
}

#[tokio::test]
async fn a_newer_format_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    open(dir.path()).await.close().await;
    let codec = raft_core::codec::FORMAT_VERSION;
    let cases = [
        ([STORE_FORMAT_VERSION + 1, codec], "store layout", STORE_FORMAT_VERSION + 1),
        ([STORE_FORMAT_VERSION, codec + 1], "value codec", codec + 1),
    ];
    for (format, what, newer) in cases {
        {
            let db = raw_db(dir.path());
            let meta = db.cf_handle("raft_meta").expect("meta column family");
            db.put_cf(meta, b"format_version", format).expect("put");
        }
        let result = RocksLogStore::open(dir.path(), RocksLogStoreOptions::new(CLUSTER)).await;
        assert!(
            matches!(&result, Err(OpenError::NewerFormat { what: w, found, .. }) if *w == what && *found == newer),
            "got {result:?}"
        );
    }
}

#[tokio::test]
async fn a_corrupt_value_is_a_corrupt_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    store
        .write(LogWrite {
            hard_state: Some(HardState { term: 2, vote: Some(1) }),
            entries: entries(1..6, 2),
            ..Default::default()
        })
        .await
        .expect("write");
    store.close().await;

    {
        let db = raw_db(dir.path());
        let log = db.cf_handle("raft_log").expect("log column family");
        db.put_cf(log, 3u64.to_be_bytes(), [0xFF, 0xFE, 0x01]).expect("put garbage");
    }
    let store = open(dir.path()).await;
    let loaded = store.load().await;
    assert!(matches!(loaded, Err(StorageError::Corrupt(_))), "got {loaded:?}");
    let ranged = store.entries(1..6, u64::MAX).await;
    assert!(matches!(ranged, Err(StorageError::Corrupt(_))), "got {ranged:?}");
    assert_eq!(store.entries(1..3, u64::MAX).await.expect("entries before the damage"), entries(1..3, 2));
    store.close().await;

    // A valid entry under the wrong key is corrupt too.
    {
        let db = raw_db(dir.path());
        let log = db.cf_handle("raft_log").expect("log column family");
        let misplaced = raft_core::codec::encode(&entries(9..10, 2)[0]).expect("encode");
        db.put_cf(log, 3u64.to_be_bytes(), misplaced).expect("put");
    }
    let store = open(dir.path()).await;
    let loaded = store.load().await;
    assert!(matches!(loaded, Err(StorageError::Corrupt(_))), "got {loaded:?}");
    store.close().await;

    // And a damaged hard state.
    {
        let db = raw_db(dir.path());
        let log = db.cf_handle("raft_log").expect("log column family");
        let good = raft_core::codec::encode(&entries(3..4, 2)[0]).expect("encode");
        db.put_cf(log, 3u64.to_be_bytes(), good).expect("put");
        let hard_state = db.cf_handle("raft_hard_state").expect("hard state column family");
        db.put_cf(hard_state, b"hard_state", [0xFF; 3]).expect("put garbage");
    }
    let store = open(dir.path()).await;
    let loaded = store.load().await;
    assert!(matches!(loaded, Err(StorageError::Corrupt(_))), "got {loaded:?}");
    store.close().await;
}

#[tokio::test]
async fn a_damaged_snapshot_file_is_never_loaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    append(&store, entries(1..11, 1)).await;
    store.save_snapshot(snapshot(5, 1)).await.expect("save snapshot");
    store.close().await;
    let files = snapshot_files(dir.path());
    assert_eq!(files.len(), 1);
    let good = std::fs::read(&files[0]).expect("read the snapshot file");

    // One flipped bit in the state machine's bytes.
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(&files[0], &bad).expect("damage the file");
    let store = open(dir.path()).await;
    let loaded = store.load().await;
    assert!(matches!(loaded, Err(StorageError::Corrupt(_))), "got {loaded:?}");
    store.close().await;

    // Cut short, as a write that never finished.
    std::fs::write(&files[0], &good[..good.len() / 2]).expect("truncate the file");
    let store = open(dir.path()).await;
    let loaded = store.load().await;
    assert!(matches!(loaded, Err(StorageError::Corrupt(_))), "got {loaded:?}");
    store.close().await;

    // Missing altogether.
    std::fs::remove_file(&files[0]).expect("remove the file");
    let store = open(dir.path()).await;
    let loaded = store.load().await;
    assert!(matches!(loaded, Err(StorageError::Corrupt(_))), "got {loaded:?}");
    store.close().await;
}

#[tokio::test]
async fn snapshot_files_a_crash_left_behind_are_ignored_and_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    append(&store, entries(1..11, 1)).await;
    store.save_snapshot(snapshot(5, 1)).await.expect("save snapshot");
    store.close().await;
    let files = snapshot_files(dir.path());
    assert_eq!(files.len(), 1);
    let good = std::fs::read(&files[0]).expect("read the snapshot file");

    // A crash while writing a newer file (temporary, half written), and one
    // after a newer file was complete but before the batch referring to it.
    let snapshots = dir.path().join("snapshots");
    let half =
        snapshots.join("snapshot-00000000000000000009-00000000000000000001-00000000000000000007.snap.tmp");
    std::fs::write(&half, &good[..good.len() / 2]).expect("a half-written file");
    let orphan =
        snapshots.join("snapshot-00000000000000000008-00000000000000000001-00000000000000000008.snap");
    std::fs::write(&orphan, &good).expect("an unreferenced file");

    let store = open(dir.path()).await;
    let loaded = store.load().await.expect("load");
    assert_eq!(loaded.snapshot, Some(snapshot(5, 1)), "only the committed snapshot loads");
    assert_eq!(loaded.entries, entries(6..11, 1));
    assert_eq!(snapshot_files(dir.path()), files, "what the crash left is removed");

    // A newer snapshot replaces the old file once it is durable.
    store.save_snapshot(snapshot(8, 1)).await.expect("save snapshot");
    store.save_snapshot(snapshot(7, 1)).await.expect("an older snapshot is ignored");
    assert_eq!(snapshot_files(dir.path()).len(), 1, "the superseded file is removed");
    store.close().await;
    let store = open(dir.path()).await;
    assert_eq!(store.load().await.expect("load").snapshot, Some(snapshot(8, 1)));
    store.close().await;
}

#[tokio::test]
async fn truncation_and_purge_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = || RocksLogStoreOptions::new(CLUSTER).compact_after_purging(1);
    let store = RocksLogStore::open(dir.path(), options()).await.expect("open");
    append(&store, entries(1..101, 1)).await;
    // A conflicting suffix from 61 on, replaced by a shorter one.
    append(&store, entries(61..71, 2)).await;
    store.save_snapshot(snapshot(50, 1)).await.expect("save snapshot");
    // Purge (compacting in the background) together with new entries.
    store
        .write(LogWrite { entries: entries(71..81, 2), purge_to: Some(40), ..Default::default() })
        .await
        .expect("write");
    let expected: Vec<Entry> = entries(41..61, 1).into_iter().chain(entries(61..81, 2)).collect();
    assert_eq!(store.entries(41..81, u64::MAX).await.expect("entries"), expected);
    store.close().await;

    let store = RocksLogStore::open(dir.path(), options()).await.expect("reopen");
    assert_eq!(store.entries(41..81, u64::MAX).await.expect("entries"), expected);
    let gone = store.entries(40..42, u64::MAX).await;
    assert!(
        matches!(gone, Err(StorageError::Unavailable { held: std::ops::Range { start: 41, end: 81 }, .. })),
        "got {gone:?}"
    );
    let beyond = store.entries(80..82, u64::MAX).await;
    assert!(
        matches!(beyond, Err(StorageError::Unavailable { .. })),
        "the old suffix is gone, got {beyond:?}"
    );
    let loaded = store.load().await.expect("load");
    assert_eq!(loaded.entries, expected[10..].to_vec(), "load returns the entries after the snapshot");

    // A snapshot of everything, purging everything, then continuing after it.
    store.save_snapshot(snapshot(80, 2)).await.expect("save snapshot");
    store.write(LogWrite { purge_to: Some(80), ..Default::default() }).await.expect("purge all");
    assert!(store.load().await.expect("load").entries.is_empty());
    append(&store, entries(81..83, 3)).await;
    store.close().await;
    let store = RocksLogStore::open(dir.path(), options()).await.expect("reopen");
    assert_eq!(store.entries(81..83, u64::MAX).await.expect("entries"), entries(81..83, 3));
    store.close().await;
}

#[tokio::test]
async fn a_received_snapshot_and_the_entries_after_it_commit_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    append(&store, entries(1..11, 1)).await;
    store
        .write(LogWrite {
            hard_state: Some(HardState { term: 3, vote: None }),
            snapshot: Some(SnapshotInstall { snapshot: snapshot(20, 3), log: LogAfterInstall::Discard }),
            entries: entries(21..24, 3),
            purge_to: None,
        })
        .await
        .expect("install");
    store.close().await;
    let store = open(dir.path()).await;
    let loaded = store.load().await.expect("load");
    assert_eq!(loaded.hard_state, HardState { term: 3, vote: None });
    assert_eq!(loaded.snapshot, Some(snapshot(20, 3)));
    assert_eq!(loaded.entries, entries(21..24, 3));
    assert!(matches!(store.entries(5..6, u64::MAX).await, Err(StorageError::Unavailable { .. })));
    assert_eq!(snapshot_files(dir.path()).len(), 1);
    store.close().await;
}
