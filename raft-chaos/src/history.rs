//! The recorded history: one [`Record`] per client operation, written as
//! JSON lines, and its translation into the project's linearizability
//! checker ([`raft_sim::linearizability`]: a register of `u64` values per
//! key, with puts, gets, deletes and compare-and-sets).
//!
//! What each operation tells the checker:
//!
//! - A compare-and-set that succeeded is a cas (its old value is checked);
//!   one that failed with `cas_failed` is a get of the value the 409
//!   reported (the state machine read it when it applied the cas, inside
//!   the operation's interval); one with an unknown outcome a cas that may
//!   or may not have happened.
//! - A delete answered 200 is a write of "absent" (that the key existed is
//!   not checked); one answered 404 found the key absent and changed
//!   nothing, exactly a get of absent.
//! - A transaction (`POST /txn`) compares key `a` with the value its
//!   worker last saw there, then puts fresh values on `a` and `b`, or else
//!   gets both. The checker is per key, so the transaction enters it
//!   projected onto each key (if the whole history is linearizable, every
//!   projection is, so a refuted projection is a real violation): with a
//!   200 that succeeded, a cas on `a` and a put on `b`; with one that
//!   failed, a get of each (the values the failure branch read); with an
//!   unknown outcome, a cas on `a` and a put on `b` that may or may not
//!   have happened (the failure branch changes nothing, so "either branch
//!   or nothing" is "the write or nothing" on each key). The projection
//!   is exact on each key but cannot see atomicity across keys: that the
//!   two puts landed at one instant, or that the two gets read one
//!   snapshot. [`txn_atomicity`] checks a sound part of that on the side.

use raft_sim::linearizability::{Event, History, Op, Outcome};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// What an operation was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `PUT /kv/{key}`.
    Put,
    /// `GET /kv/{key}?consistency=linearizable`.
    Get,
    /// `GET /kv/{key}?consistency=lease`.
    LeaseGet,
    /// `POST /kv/{key}/cas`.
    Cas,
    /// `DELETE /kv/{key}`.
    Delete,
    /// `POST /txn`: compare `key` with `expected`; then put `value` on
    /// `key` and `value2` on `key2`; else get both.
    Txn,
    /// A linearizable get after the faults (and, with RocksDB, after every
    /// node was killed at once and restarted): every acknowledged write
    /// must still be there.
    FinalGet,
}

/// What the client knows of an operation's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Done, with this answer.
    Ok,
    /// Definitely not applied.
    Fail,
    /// May or may not have been applied.
    Unknown,
}

/// One client operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The worker that issued it (the final reads are worker `u64::MAX`).
    pub client: u64,
    /// The node whose API it went to.
    pub node: u64,
    /// What it was.
    pub kind: Kind,
    /// The key, `k{key}`.
    pub key: u64,
    /// The value a put or cas wrote.
    pub value: Option<u64>,
    /// The value a cas or txn expected (`null`: absent; no field: not a
    /// cas or txn).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub expected: Option<Option<u64>>,
    /// What a get read, a failed cas found, a txn's failure branch read of
    /// `key`, or absent for a delete's 404 (`null`: absent; no field:
    /// nothing read).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub read: Option<Option<u64>>,
    /// Its outcome.
    pub status: Status,
    /// When it was sent, µs since the run began (monotonic).
    pub invoke_us: u64,
    /// When its answer (or failure) came, µs since the run began.
    pub complete_us: u64,
    /// A transaction's second key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key2: Option<u64>,
    /// The value a transaction's success branch puts on `key2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value2: Option<u64>,
    /// What a transaction's failure branch read of `key2`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub read2: Option<Option<u64>>,
    /// Whether a transaction's comparison held (`null`: unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<bool>,
}

/// A field that is there (even as `null`) is `Some`: with `default`, a
/// missing one is `None`, so "read absent" and "read nothing" differ.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

impl Record {
    /// A record of `kind` on `key` with nothing known yet: the client fills
    /// in the rest.
    pub fn new(client: u64, node: u64, kind: Kind, key: u64) -> Self {
        Record {
            client,
            node,
            kind,
            key,
            value: None,
            expected: None,
            read: None,
            status: Status::Unknown,
            invoke_us: 0,
            complete_us: 0,
            key2: None,
            value2: None,
            read2: None,
            succeeded: None,
        }
    }

    /// The values this operation would write, with their keys.
    fn writes(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let first = self.value.map(|v| (self.key, v));
        let second = self.key2.zip(self.value2);
        first.into_iter().chain(second)
    }
}

/// Writes `records` as JSON lines.
pub fn write_jsonl<T: Serialize>(path: &Path, records: &[T]) -> std::io::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for record in records {
        serde_json::to_writer(&mut file, record)?;
        file.write_all(b"\n")?;
    }
    file.flush()
}

/// The checker's view of one record: the events it constrains (none for
/// an operation that definitely did not happen; two for a transaction,
/// one per key).
pub fn to_events(record: &Record) -> Vec<Event> {
    let event = |op: Op, outcome| Event {
        client: record.client,
        op,
        invoke: record.invoke_us,
        complete: record.complete_us,
        outcome,
    };
    let key = record.key;
    let get = |read: Option<Option<u64>>| read.map(|seen| event(Op::Get { key }, Outcome::GetOk(seen)));
    let written = match record.status {
        Status::Ok => Outcome::PutOk,
        Status::Unknown => Outcome::Unknown,
        Status::Fail => Outcome::Failed,
    };
    let cas = |value: Option<u64>| {
        let expected = record.expected?;
        Some(event(Op::Cas { key, expected, new: Some(value?) }, written))
    };
    let one = match (record.kind, record.status) {
        (Kind::Get | Kind::LeaseGet | Kind::FinalGet, Status::Ok) => get(record.read),
        (Kind::Put, Status::Ok | Status::Unknown) => {
            record.value.map(|value| event(Op::Put { key, value }, written))
        }
        (Kind::Cas, Status::Ok | Status::Unknown) => cas(record.value),
        (Kind::Cas, Status::Fail) => get(record.read),
        // A 404: the key was absent, and stays so.
        (Kind::Delete, Status::Ok) if record.read == Some(None) => get(record.read),
        (Kind::Delete, Status::Ok | Status::Unknown) => Some(event(Op::Delete { key }, written)),
        (Kind::Txn, _) => return txn_events(record, event, written),
        _ => None,
    };
    one.into_iter().collect()
}

/// A transaction projected onto its two keys (see the module docs).
fn txn_events(record: &Record, event: impl Fn(Op, Outcome) -> Event, written: Outcome) -> Vec<Event> {
    let (a, Some(b)) = (record.key, record.key2) else { return Vec::new() };
    let writes = || -> Option<[Event; 2]> {
        let (expected, new, value2) = (record.expected?, record.value?, record.value2?);
        Some([
            event(Op::Cas { key: a, expected, new: Some(new) }, written),
            event(Op::Put { key: b, value: value2 }, written),
        ])
    };
    let reads = || -> Option<[Event; 2]> {
        let (read, read2) = (record.read?, record.read2?);
        Some([
            event(Op::Get { key: a }, Outcome::GetOk(read)),
            event(Op::Get { key: b }, Outcome::GetOk(read2)),
        ])
    };
    let events = match (record.status, record.succeeded) {
        (Status::Ok, Some(true)) | (Status::Unknown, _) => writes(),
        (Status::Ok, Some(false)) => reads(),
        _ => None,
    };
    events.map(Vec::from).unwrap_or_default()
}

/// The checker's history of `records`.
pub fn to_history(records: &[Record]) -> History {
    records.iter().flat_map(to_events).collect()
}

/// What the per-key projection of transactions cannot see, checked on the
/// side (soundly, not completely): a transaction whose comparison failed
/// must not have read the very value it compared with; and when its two
/// gets read a value that another transaction `T` wrote together with a
/// value on the other key, the other get must not read a value whose write
/// completed before `T` began (`T` overwrote it, and the gets read one
/// snapshot after `T`). Values are unique, so a value names its write.
/// Returns a description of the first violation found.
pub fn txn_atomicity(records: &[Record]) -> Option<String> {
    let mut writer = std::collections::HashMap::new();
    for (index, record) in records.iter().enumerate() {
        // A transaction whose comparison failed wrote nothing.
        if record.status != Status::Fail && record.succeeded != Some(false) {
            for (_, value) in record.writes() {
                writer.insert(value, index);
            }
        }
    }
    let answered = records.iter().filter(|r| r.kind == Kind::Txn && r.status == Status::Ok);
    for record in answered.filter(|r| r.succeeded == Some(false)) {
        let (Some(read), Some(read2)) = (record.read, record.read2) else { continue };
        if record.expected == Some(read) {
            return Some(format!(
                "a txn's comparison failed, yet its failure branch read what it compared with: {record:?}"
            ));
        }
        let Some(key2) = record.key2 else { continue };
        for (seen, other, other_key) in [(read, read2, key2), (read2, read, record.key)] {
            let Some(txn) = seen.and_then(|v| writer.get(&v)).map(|&i| &records[i]) else { continue };
            if txn.kind != Kind::Txn || !txn.writes().any(|(key, _)| key == other_key) {
                continue;
            }
            let Some(older) = other.and_then(|v| writer.get(&v)).map(|&i| &records[i]) else { continue };
            if older.status == Status::Ok && older.complete_us < txn.invoke_us {
                return Some(format!(
                    "a txn's gets read {seen:?}, written by txn {txn:?}, and {other:?}, which that txn \
                     overwrote: not one snapshot: {record:?}"
                ));
            }
        }
    }
    None
}

/// How many operations ended each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// All operations.
    pub ops: u64,
    /// Acknowledged (or answered).
    pub ok: u64,
    /// Unknown outcome.
    pub unknown: u64,
    /// Definitely not applied.
    pub failed: u64,
}

/// Counts `records` by status.
pub fn count(records: &[Record]) -> Counts {
    let mut counts = Counts::default();
    for record in records {
        counts.ops += 1;
        match record.status {
            Status::Ok => counts.ok += 1,
            Status::Unknown => counts.unknown += 1,
            Status::Fail => counts.failed += 1,
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_sim::linearizability::{check, Verdict};

    fn record(kind: Kind, status: Status, value: Option<u64>, read: Option<Option<u64>>, t: u64) -> Record {
        Record { value, read, status, invoke_us: t, complete_us: t + 1, ..Record::new(0, 1, kind, 0) }
    }

    /// A transaction on keys 0 and 1 comparing key 0 with `expected`, over
    /// `[t, t + 1]`.
    fn txn(expected: Option<u64>, values: (u64, u64), status: Status, t: u64) -> Record {
        Record {
            expected: Some(expected),
            value: Some(values.0),
            key2: Some(1),
            value2: Some(values.1),
            ..record(Kind::Txn, status, None, None, t)
        }
    }

    fn linearizable(records: &[Record]) -> bool {
        check(&to_history(records), 10_000).is_linearizable()
    }

    #[test]
    fn a_stale_read_is_refuted_and_a_fresh_one_passes() {
        let write = record(Kind::Put, Status::Ok, Some(7), None, 0);
        let stale = record(Kind::Get, Status::Ok, None, Some(None), 10);
        let fresh = record(Kind::LeaseGet, Status::Ok, None, Some(Some(7)), 10);
        assert!(linearizable(&[write.clone(), fresh]));
        assert!(!linearizable(&[write, stale]));
    }

    #[test]
    fn a_cas_is_checked_against_what_it_expected_and_a_failed_one_is_a_get_of_what_it_found() {
        let put = record(Kind::Put, Status::Ok, Some(3), None, 0);
        let cas_ok = Record { expected: Some(Some(3)), ..record(Kind::Cas, Status::Ok, Some(4), None, 5) };
        let op = to_events(&cas_ok)[0].op;
        assert_eq!(op, Op::Cas { key: 0, expected: Some(3), new: Some(4) });
        assert!(linearizable(&[put.clone(), cas_ok.clone()]));
        // A cas that succeeded expecting absent, after 3 was written: refuted.
        let wrong = Record { expected: Some(None), ..cas_ok.clone() };
        assert!(!linearizable(&[put.clone(), wrong]));
        let cas_failed = record(Kind::Cas, Status::Fail, Some(5), Some(Some(3)), 5);
        let event = to_events(&cas_failed)[0];
        assert_eq!((event.op, event.outcome), (Op::Get { key: 0 }, Outcome::GetOk(Some(3))));
        assert!(to_events(&record(Kind::Put, Status::Fail, Some(5), None, 0)).is_empty());
        let unknown =
            Record { expected: Some(Some(3)), ..record(Kind::Cas, Status::Unknown, Some(6), None, 0) };
        assert_eq!(to_events(&unknown)[0].outcome, Outcome::Unknown);
        // A failed cas that found 9 while the only write was 3 is refuted.
        let found_other = record(Kind::Cas, Status::Fail, Some(8), Some(Some(9)), 5);
        assert!(!linearizable(&[put, found_other]));
    }

    #[test]
    fn a_delete_writes_absent_and_a_404_is_a_read_of_absent() {
        let put = record(Kind::Put, Status::Ok, Some(7), None, 0);
        let delete = record(Kind::Delete, Status::Ok, None, None, 10);
        assert_eq!(to_events(&delete)[0].op, Op::Delete { key: 0 });
        let absent = record(Kind::Get, Status::Ok, None, Some(None), 20);
        let stale = record(Kind::Get, Status::Ok, None, Some(Some(7)), 20);
        assert!(linearizable(&[put.clone(), delete.clone(), absent]));
        assert!(!linearizable(&[put.clone(), delete.clone(), stale]));
        // A 404 after the put completed claims the key was absent: refuted.
        let not_found = record(Kind::Delete, Status::Ok, None, Some(None), 10);
        assert_eq!(to_events(&not_found)[0].op, Op::Get { key: 0 });
        assert!(!linearizable(&[put.clone(), not_found]));
        // An unknown delete may explain an absent read, but nothing else.
        let unknown = record(Kind::Delete, Status::Unknown, None, None, 10);
        let absent = record(Kind::Get, Status::Ok, None, Some(None), 20);
        assert!(linearizable(&[put, unknown, absent]));
    }

    #[test]
    fn a_txn_is_projected_onto_each_key_by_the_branch_that_ran() {
        let put = record(Kind::Put, Status::Ok, Some(7), None, 0);
        // Succeeded expecting 7: a cas 7 -> 1 on key 0, a put of 2 on key 1.
        let ok = Record { succeeded: Some(true), ..txn(Some(7), (1, 2), Status::Ok, 10) };
        let ops: Vec<Op> = to_events(&ok).iter().map(|e| e.op).collect();
        assert_eq!(ops, [Op::Cas { key: 0, expected: Some(7), new: Some(1) }, Op::Put { key: 1, value: 2 }]);
        let read_b = Record { key: 1, ..record(Kind::Get, Status::Ok, None, Some(Some(2)), 20) };
        assert!(linearizable(&[put.clone(), ok.clone(), read_b.clone()]));
        // The wrong branch: it says it succeeded, but key 0 held 7, not absent.
        let wrong = Record { expected: Some(None), ..ok.clone() };
        assert!(!linearizable(&[put.clone(), wrong, read_b]));
        // Failed: its gets read key 0 and key 1; a stale one is refuted.
        let failed = Record {
            succeeded: Some(false),
            read: Some(Some(7)),
            read2: Some(None),
            ..txn(None, (3, 4), Status::Ok, 10)
        };
        assert!(linearizable(&[put.clone(), failed.clone()]));
        let stale = Record { read: Some(None), ..failed };
        assert!(!linearizable(&[put.clone(), stale]));
        // Unknown: the writes may or may not have happened.
        let unknown = txn(Some(7), (5, 6), Status::Unknown, 10);
        assert!(to_events(&unknown).iter().all(|e| e.outcome == Outcome::Unknown));
        let saw = Record { key: 1, ..record(Kind::Get, Status::Ok, None, Some(Some(6)), 20) };
        assert!(linearizable(&[put.clone(), unknown.clone(), saw.clone()]));
        // ... but only where key 0 held what it compared with.
        let unknown_wrong = Record { expected: Some(Some(9)), ..unknown };
        let saw_a = record(Kind::Get, Status::Ok, None, Some(Some(5)), 20);
        assert!(!linearizable(&[put, unknown_wrong, saw_a]));
        assert!(to_events(&txn(None, (1, 2), Status::Fail, 0)).is_empty());
    }

    #[test]
    fn txn_atomicity_sees_a_torn_snapshot_the_projections_pass() {
        let first = Record { succeeded: Some(true), ..txn(None, (1, 2), Status::Ok, 0) };
        // The second txn is concurrent with the reader, over [10, 40].
        let second =
            Record { succeeded: Some(true), complete_us: 40, ..txn(Some(1), (3, 4), Status::Ok, 10) };
        let torn = Record {
            succeeded: Some(false),
            read: Some(Some(3)),
            read2: Some(Some(2)),
            complete_us: 30,
            ..txn(Some(9), (5, 6), Status::Ok, 20)
        };
        let records = [first.clone(), second.clone(), torn.clone()];
        assert!(linearizable(&records), "each key alone is linearizable");
        let found = txn_atomicity(&records).expect("a torn snapshot");
        assert!(found.contains("one snapshot"), "{found}");
        let whole = Record { read2: Some(Some(4)), ..torn.clone() };
        assert_eq!(txn_atomicity(&[first.clone(), second.clone(), whole]), None);
        // A failed comparison that read what it compared with is caught too.
        let liar = Record { expected: Some(Some(3)), ..torn };
        assert!(txn_atomicity(&[first, second, liar]).is_some_and(|f| f.contains("comparison failed")));
    }

    #[test]
    fn records_round_trip_through_json() {
        let record = Record {
            succeeded: Some(false),
            read: Some(Some(5)),
            read2: Some(None),
            ..txn(None, (1, 2), Status::Ok, 3)
        };
        let text = serde_json::to_string(&record).expect("serialises");
        assert_eq!(serde_json::from_str::<Record>(&text).expect("parses"), record);
        let plain = record_plain();
        let text = serde_json::to_string(&plain).expect("serialises");
        assert!(!text.contains("key2"), "{text}");
    }

    fn record_plain() -> Record {
        record(Kind::Get, Status::Ok, None, Some(Some(1)), 0)
    }

    #[test]
    fn the_checker_verdict_names_the_key_of_a_refuted_projection() {
        let put = Record { key: 1, ..record(Kind::Put, Status::Ok, Some(7), None, 0) };
        let failed = Record {
            succeeded: Some(false),
            read: Some(None),
            read2: Some(None),
            ..txn(Some(5), (3, 4), Status::Ok, 10)
        };
        let verdict = check(&to_history(&[put, failed]), 10_000);
        assert!(matches!(verdict, Verdict::NotLinearizable { key: 1, .. }), "{verdict}");
    }
}
