//! The recorded history: one [`Record`] per client operation, written as
//! JSON lines, and its translation into the project's linearizability
//! checker ([`raft_sim::linearizability`]: a register of `u64` values per
//! key).
//!
//! The checker knows puts and gets only, so a compare-and-set enters it as
//! what can be said of it soundly: one that succeeded as a put of its new
//! value (the requirement that the old value was the expected one is not
//! checked), one that failed with `cas_failed` as a get of the value the
//! 409 reported (the state machine read it when it applied the cas, inside
//! the operation's interval), and one with an unknown outcome as a put that
//! may or may not have happened.

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
    /// The value a cas expected (`null`: absent).
    pub expected: Option<Option<u64>>,
    /// What a get read, or what a failed cas found (`null`: absent).
    pub read: Option<Option<u64>>,
    /// Its outcome.
    pub status: Status,
    /// When it was sent, µs since the run began (monotonic).
    pub invoke_us: u64,
    /// When its answer (or failure) came, µs since the run began.
    pub complete_us: u64,
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

/// The checker's view of one record, if it constrains anything.
pub fn to_event(record: &Record) -> Option<Event> {
    let key = record.key;
    let put = |value: Option<u64>, outcome| value.map(|value| (Op::Put { key, value }, outcome));
    let (op, outcome) = match (record.kind, record.status) {
        (Kind::Put | Kind::Cas, Status::Ok) => put(record.value, Outcome::PutOk)?,
        (Kind::Put | Kind::Cas, Status::Unknown) => put(record.value, Outcome::Unknown)?,
        (Kind::Cas, Status::Fail) => (Op::Get { key }, Outcome::GetOk(record.read?)),
        (Kind::Get | Kind::LeaseGet | Kind::FinalGet, Status::Ok) => {
            (Op::Get { key }, Outcome::GetOk(record.read?))
        }
        _ => return None,
    };
    Some(Event { client: record.client, op, invoke: record.invoke_us, complete: record.complete_us, outcome })
}

/// The checker's history of `records`.
pub fn to_history(records: &[Record]) -> History {
    records.iter().filter_map(to_event).collect()
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

    fn record(kind: Kind, status: Status, value: Option<u64>, read: Option<Option<u64>>, t: u64) -> Record {
        Record {
            client: 0,
            node: 1,
            kind,
            key: 0,
            value,
            expected: None,
            read,
            status,
            invoke_us: t,
            complete_us: t + 1,
        }
    }

    #[test]
    fn a_stale_read_is_refuted_and_a_fresh_one_passes() {
        let write = record(Kind::Put, Status::Ok, Some(7), None, 0);
        let stale = record(Kind::Get, Status::Ok, None, Some(None), 10);
        let fresh = record(Kind::LeaseGet, Status::Ok, None, Some(Some(7)), 10);
        let check = |records: &[Record]| raft_sim::linearizability::check(&to_history(records), 10_000);
        assert!(check(&[write.clone(), fresh]).is_linearizable());
        assert!(!check(&[write, stale]).is_linearizable());
    }

    #[test]
    fn cas_enters_as_a_put_when_it_succeeds_and_as_a_get_of_what_it_found_when_it_fails() {
        let cas_ok = record(Kind::Cas, Status::Ok, Some(3), None, 0);
        assert_eq!(to_event(&cas_ok).map(|e| e.op), Some(Op::Put { key: 0, value: 3 }));
        let cas_failed = record(Kind::Cas, Status::Fail, Some(4), Some(Some(3)), 5);
        let event = to_event(&cas_failed).expect("a failed cas reads");
        assert_eq!((event.op, event.outcome), (Op::Get { key: 0 }, Outcome::GetOk(Some(3))));
        assert!(to_event(&record(Kind::Put, Status::Fail, Some(5), None, 0)).is_none());
        let unknown = record(Kind::Cas, Status::Unknown, Some(6), None, 0);
        assert_eq!(to_event(&unknown).map(|e| e.outcome), Some(Outcome::Unknown));
        // A failed cas that found 9 while the only write was 3 is refuted.
        let found_other = record(Kind::Cas, Status::Fail, Some(8), Some(Some(9)), 5);
        let history = to_history(&[cas_ok, found_other]);
        assert!(!raft_sim::linearizability::check(&history, 10_000).is_linearizable());
    }
}
