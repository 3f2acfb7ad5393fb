//! Unit tests of the state machine, without HTTP or Raft.

use super::*;

fn at(index: Index) -> LogId {
    LogId { term: 1, index }
}

fn put(key: &str, value: &str) -> Command {
    Command {
        request: None,
        op: Op::Put { key: key.into(), value: Bytes::from(value.to_string()), if_revision: None },
    }
}

fn with_request(client: &str, seq: u64, mut command: Command) -> Command {
    command.request = Some(RequestId { client: client.into(), seq });
    command
}

#[test]
fn revisions_are_the_index_of_the_last_change() {
    let mut kv = KvState::new();
    assert_eq!(kv.apply_command(at(3), put("a", "1")), Outcome::Written { revision: 3 });
    assert_eq!(kv.apply_command(at(5), put("b", "2")), Outcome::Written { revision: 5 });
    assert_eq!(kv.apply_command(at(9), put("a", "3")), Outcome::Written { revision: 9 });
    assert_eq!(kv.get("a"), Some(&Versioned { value: Bytes::from("3"), revision: 9 }));
    assert_eq!(kv.get("b").map(|v| v.revision), Some(5));
    let delete = Command { request: None, op: Op::Delete { key: "a".into() } };
    assert_eq!(kv.apply_command(at(10), delete.clone()), Outcome::Deleted { revision: 10 });
    assert_eq!(kv.apply_command(at(11), delete), Outcome::NotFound);
    assert_eq!(kv.get("a"), None);
}

#[test]
fn put_with_if_revision_is_a_compare_and_set_on_the_revision() {
    let mut kv = KvState::new();
    let cas = |revision| Command {
        request: None,
        op: Op::Put { key: "k".into(), value: Bytes::from("v"), if_revision: Some(revision) },
    };
    // 0: the key must be absent.
    assert_eq!(kv.apply_command(at(2), cas(0)), Outcome::Written { revision: 2 });
    assert_eq!(
        kv.apply_command(at(3), cas(0)),
        Outcome::CasFailed { current: Some(Versioned { value: Bytes::from("v"), revision: 2 }) }
    );
    assert_eq!(kv.apply_command(at(4), cas(2)), Outcome::Written { revision: 4 });
    assert_eq!(kv.get("k").map(|v| v.revision), Some(4));
}

#[test]
fn cas_compares_values_and_deletes_with_none() {
    let mut kv = KvState::new();
    let cas = |expected: Option<&str>, new: Option<&str>| Command {
        request: None,
        op: Op::Cas {
            key: "k".into(),
            expected: expected.map(|s| Bytes::from(s.to_string())),
            new: new.map(|s| Bytes::from(s.to_string())),
        },
    };
    assert_eq!(kv.apply_command(at(1), cas(None, Some("a"))), Outcome::Written { revision: 1 });
    assert!(matches!(kv.apply_command(at(2), cas(None, Some("b"))), Outcome::CasFailed { current: Some(_) }));
    assert!(matches!(kv.apply_command(at(3), cas(Some("x"), Some("b"))), Outcome::CasFailed { .. }));
    assert_eq!(kv.apply_command(at(4), cas(Some("a"), Some("b"))), Outcome::Written { revision: 4 });
    assert_eq!(kv.apply_command(at(5), cas(Some("b"), None)), Outcome::Deleted { revision: 5 });
    assert_eq!(kv.get("k"), None);
    assert_eq!(kv.apply_command(at(6), cas(Some("b"), None)), Outcome::CasFailed { current: None });
}

#[test]
fn a_retried_request_gets_the_first_outcome_and_is_not_applied_twice() {
    let mut kv = KvState::new();
    let first = kv.apply_command(at(1), with_request("c1", 1, put("k", "v1")));
    assert_eq!(first, Outcome::Written { revision: 1 });
    // Someone else changes the key; the retry must not overwrite it.
    kv.apply_command(at(2), put("k", "other"));
    let retry = kv.apply_command(at(3), with_request("c1", 1, put("k", "v1")));
    assert_eq!(retry, first);
    assert_eq!(kv.get("k").map(|v| v.value.clone()), Some(Bytes::from("other")));
    // The next request applies; an older one is refused, not applied.
    assert_eq!(
        kv.apply_command(at(4), with_request("c1", 2, put("k", "v2"))),
        Outcome::Written { revision: 4 }
    );
    assert_eq!(
        kv.apply_command(at(5), with_request("c1", 1, put("k", "v1"))),
        Outcome::StaleRequest { latest: 2 }
    );
    assert_eq!(kv.get("k").map(|v| v.value.clone()), Some(Bytes::from("v2")));
}

#[test]
fn sessions_expire_by_log_entries_and_by_count_deterministically() {
    let mut kv = KvState::with_session_limits(10, 2);
    kv.apply_command(at(1), with_request("a", 1, put("x", "1")));
    kv.apply_command(at(2), with_request("b", 1, put("x", "2")));
    kv.apply_command(at(3), with_request("c", 1, put("x", "3")));
    // At most two: "a", the least recently used, went.
    assert_eq!(kv.session_count(), 2);
    assert!(!kv.sessions.contains_key("a"));
    // A retry of "b" refreshes it; "c" then expires 10 entries after its use.
    kv.apply_command(at(5), with_request("b", 1, put("x", "2")));
    kv.apply_command(at(14), put("y", "1"));
    assert_eq!(kv.sessions.keys().collect::<Vec<_>>(), vec!["b"]);
    kv.apply_command(at(16), put("y", "1"));
    assert_eq!(kv.session_count(), 0);
    // Two replicas applying the same entries agree, sessions included.
    let mut twin = KvState::with_session_limits(10, 2);
    for (i, c) in [("a", 1), ("b", 1), ("c", 1)].iter().enumerate() {
        twin.apply_command(at(i as u64 + 1), with_request(c.0, c.1, put("x", &(i + 1).to_string())));
    }
    twin.apply_command(at(5), with_request("b", 1, put("x", "2")));
    twin.apply_command(at(14), put("y", "1"));
    twin.apply_command(at(16), put("y", "1"));
    assert_eq!(twin, kv);
}

#[test]
fn list_pages_through_a_prefix_in_order() {
    let mut kv = KvState::new();
    for (i, key) in ["a/1", "a/2", "a/3", "b/1", "a"].iter().enumerate() {
        kv.apply_command(at(i as u64 + 1), put(key, "v"));
    }
    let keys = |page: Vec<(String, Versioned)>| page.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    let (page, more) = kv.list("a/", None, 2);
    assert_eq!((keys(page), more), (vec!["a/1".to_string(), "a/2".into()], true));
    let (page, more) = kv.list("a/", Some("a/2"), 2);
    assert_eq!((keys(page), more), (vec!["a/3".to_string()], false));
    // An `after` before the prefix starts at the prefix.
    let (page, _) = kv.list("b/", Some("a"), 10);
    assert_eq!(keys(page), vec!["b/1".to_string()]);
    let (page, _) = kv.list("", None, 10);
    assert_eq!(page.len(), 5);
}

#[test]
fn transactions_compare_then_run_one_branch_atomically() {
    let mut kv = KvState::new();
    kv.apply_command(at(1), put("a", "1"));
    let txn = |compare| Txn {
        compare,
        success: vec![
            TxnOp::Put { key: "b".into(), value: "2".into() },
            TxnOp::Delete { key: "a".into() },
            TxnOp::Get { key: "b".into() },
        ],
        failure: vec![TxnOp::Get { key: "a".into() }],
    };
    let command = |t| Command { request: None, op: Op::Txn(t) };
    let failing = txn(vec![
        Compare { key: "a".into(), check: Check::Value(Some("1".into())) },
        Compare { key: "b".into(), check: Check::Exists(true) },
    ]);
    assert_eq!(
        kv.apply_command(at(2), command(failing)),
        Outcome::Txn {
            revision: 2,
            succeeded: false,
            results: vec![TxnOpResult::Get { key: "a".into(), value: Some("1".into()), revision: 1 }]
        }
    );
    assert_eq!(kv.get("b"), None);
    let passing = txn(vec![
        Compare { key: "a".into(), check: Check::Revision { op: Ordering::Eq, value: 1 } },
        Compare { key: "b".into(), check: Check::Revision { op: Ordering::Lt, value: 1 } },
        Compare { key: "b".into(), check: Check::Value(None) },
    ]);
    let Outcome::Txn { succeeded: true, results, .. } = kv.apply_command(at(3), command(passing)) else {
        panic!("the transaction should succeed");
    };
    assert_eq!(results[2], TxnOpResult::Get { key: "b".into(), value: Some("2".into()), revision: 3 });
    assert_eq!(kv.get("a"), None);
}

#[test]
fn a_snapshot_restores_keys_sessions_and_applied_index() {
    let mut kv = KvState::new();
    kv.apply_command(at(1), put("a", "1"));
    kv.apply_command(at(2), with_request("c", 7, put("b", "\u{0}binary\u{ff}")));
    let mut restored = KvState::new();
    restored.apply_command(at(1), put("junk", "x"));
    restored.restore_snapshot(kv.encode_snapshot().unwrap().reader()).unwrap();
    assert_eq!(restored, kv);
    // The restored session still answers the retry without applying it.
    assert_eq!(
        restored.apply_command(at(3), with_request("c", 7, put("b", "again"))),
        Outcome::Written { revision: 2 }
    );
    // The runtime's empty snapshot means an empty state.
    restored.restore_snapshot(std::io::empty()).unwrap();
    assert!(restored.is_empty());
}

#[test]
fn a_large_snapshot_is_written_in_pieces_and_read_back_across_any_cut() {
    let mut kv = KvState::new();
    let value = "v".repeat(1000);
    for i in 0..3000u64 {
        kv.apply_command(at(i + 1), put(&format!("key-{i:05}"), &value));
    }
    let snapshot = kv.encode_snapshot().unwrap();
    let pieces: Vec<usize> = snapshot.pieces().iter().map(Bytes::len).collect();
    assert!(pieces.len() >= 3, "3 MB of records in pieces of at most 1 MiB: {pieces:?}");
    assert!(pieces.iter().all(|&len| len <= raft_core::SnapshotData::PIECE_BYTES));
    // A follower holds the chunks it received, cut anywhere: every record
    // that straddles two of them must still decode.
    let bytes = Bytes::from(snapshot.to_vec());
    let mut recut = raft_core::SnapshotData::new();
    for at in (0..bytes.len()).step_by(777) {
        recut.push(bytes.slice(at..(at + 777).min(bytes.len())));
    }
    let mut restored = KvState::new();
    restored.restore_snapshot(recut.reader()).unwrap();
    assert_eq!(restored, kv);
}

#[test]
fn a_damaged_snapshot_is_refused_and_leaves_the_state_alone() {
    let mut kv = KvState::new();
    kv.apply_command(at(1), put("a", "1"));
    kv.apply_command(at(2), put("b", "2"));
    let snapshot = kv.encode_snapshot().unwrap().to_vec();
    let mut other = KvState::new();
    other.apply_command(at(1), put("z", "9"));
    let before = other.clone();
    for cut in 0..snapshot.len() {
        if cut == 0 {
            continue; // the empty snapshot is valid: nothing applied
        }
        assert!(other.restore_snapshot(&snapshot[..cut]).is_err(), "a snapshot cut at {cut} was accepted");
        assert_eq!(other, before);
    }
    let mut newer = snapshot.clone();
    newer[0] = SNAPSHOT_VERSION + 1;
    assert!(other.restore_snapshot(&newer[..]).is_err());
    let mut trailing = snapshot;
    trailing.push(0);
    assert!(other.restore_snapshot(&trailing[..]).is_err());
}

#[test]
fn every_command_survives_the_log_codec() {
    // The log encodes commands with bincode, which refuses some serde
    // shapes (flattened maps) that JSON accepts: check each variant.
    let txn = Txn {
        compare: vec![
            Compare { key: "a".into(), check: Check::Value(None) },
            Compare { key: "a".into(), check: Check::Revision { op: Ordering::Gt, value: 3 } },
            Compare { key: "a".into(), check: Check::Exists(true) },
        ],
        success: vec![TxnOp::Put { key: "a".into(), value: "v".into() }, TxnOp::Get { key: "a".into() }],
        failure: vec![TxnOp::Delete { key: "a".into() }],
    };
    let ops = [
        Op::Put { key: "k".into(), value: Bytes::from_static(b"\x00\xff"), if_revision: Some(0) },
        Op::Delete { key: "k".into() },
        Op::Cas { key: "k".into(), expected: None, new: Some(Bytes::from("n")) },
        Op::Txn(txn),
    ];
    for op in ops {
        let command = Command { request: Some(RequestId { client: "c".into(), seq: 9 }), op };
        let bytes = raft_core::codec::encode(&command).expect("encodes");
        assert_eq!(raft_core::codec::decode::<Command>(&bytes).expect("decodes"), command);
    }
    let outcome = Outcome::Txn {
        revision: 1,
        succeeded: true,
        results: vec![TxnOpResult::Get { key: "a".into(), value: None, revision: 0 }],
    };
    let bytes = raft_core::codec::encode(&outcome).expect("encodes");
    assert_eq!(raft_core::codec::decode::<Outcome>(&bytes).expect("decodes"), outcome);
}

#[test]
fn a_backup_loads_into_an_empty_map_only_with_this_logs_revisions() {
    let mut old = KvState::new();
    old.apply_command(at(7), put("a", "1"));
    old.apply_command(at(9), with_request("c", 1, put("b", "2")));
    let backup = Bytes::from(old.encode_snapshot().unwrap().to_vec());
    let restore = |b: &Bytes| Command { request: None, op: Op::Restore(b.clone()) };
    let mut new = KvState::new();
    assert!(matches!(
        new.apply_command(at(2), restore(&Bytes::from_static(b"\x01junk"))),
        Outcome::RestoreRefused { .. }
    ));
    assert_eq!(new.apply_command(at(3), restore(&backup)), Outcome::Restored { keys: 2, revision: 3 });
    assert_eq!(new.get("a"), Some(&Versioned { value: Bytes::from("1"), revision: 3 }));
    assert_eq!(new.get("b").map(|v| v.revision), Some(3));
    assert_eq!(new.session_count(), 0);
    // Not over data.
    assert!(matches!(new.apply_command(at(4), restore(&backup)), Outcome::RestoreRefused { .. }));
}

/// A state the API accepts with its default limits (values of 1 MiB, 128
/// operations a transaction) gives a snapshot that restores. A transaction
/// of 70 gets of a 1 MiB value has an outcome of 70 MiB: kept in its
/// session, it would be one snapshot record over the codec's 64 MiB limit.
#[test]
fn a_session_holding_a_large_transaction_outcome_still_restores() {
    let mut kv = KvState::new();
    kv.apply_command(at(1), put("big", &"v".repeat(1 << 20)));
    let gets = (0..70).map(|_| TxnOp::Get { key: "big".into() }).collect();
    let txn = Txn { compare: vec![], success: gets, failure: vec![] };
    let command = with_request("c", 1, Command { request: None, op: Op::Txn(txn) });
    assert!(matches!(kv.apply_command(at(2), command.clone()), Outcome::Txn { succeeded: true, .. }));
    let snapshot = kv.encode_snapshot().expect("encodes");
    assert!(snapshot.len() < 2 << 20, "the session does not keep the 70 MiB outcome: {}", snapshot.len());
    let mut restored = KvState::new();
    restored.restore_snapshot(snapshot.reader()).expect("the snapshot of an accepted state restores");
    assert_eq!(restored, kv);
    // A retry learns that it was applied, where, and which branch ran; it is
    // not applied again.
    assert_eq!(
        restored.apply_command(at(3), command),
        Outcome::ResultNotKept { revision: 2, succeeded: true }
    );
}

/// Only an outcome over the limit is cut short: a failed compare-and-set
/// holding a value of exactly the limit is answered in full on a retry, one
/// byte more is answered as not kept (and as failed: nothing changed).
#[test]
fn a_session_keeps_outcomes_up_to_the_limit_in_full() {
    for (size, kept_in_full) in [(MAX_KEPT_OUTCOME_BYTES, true), (MAX_KEPT_OUTCOME_BYTES + 1, false)] {
        let mut kv = KvState::new();
        kv.apply_command(at(1), put("k", &"v".repeat(size)));
        let cas = Op::Cas { key: "k".into(), expected: Some(Bytes::from("other")), new: None };
        let command = with_request("c", 1, Command { request: None, op: cas });
        let first = kv.apply_command(at(2), command.clone());
        assert!(matches!(first, Outcome::CasFailed { current: Some(_) }));
        let retry = kv.apply_command(at(3), command);
        if kept_in_full {
            assert_eq!(retry, first, "size {size}");
        } else {
            assert_eq!(retry, Outcome::ResultNotKept { revision: 2, succeeded: false }, "size {size}");
        }
        assert_eq!(kv.get("k").map(|v| v.value.len()), Some(size), "nothing changed");
    }
}
