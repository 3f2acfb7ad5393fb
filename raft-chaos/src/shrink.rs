//! The smallest window of a refuted key's history that still shows the
//! violation: what a reader looks at first.
//!
//! The refuted key's operations (transactions included, projected onto
//! the key) are sorted by invocation. A window `[i, j]` of them is
//! checked as they are, while every operation outside it is *weakened*:
//! reads outside are dropped, puts, cas and txn writes outside become
//! unknown (may or may not have happened, at any time after their
//! invocation). Deletes outside stay as they were: they all write the same
//! "absent", so unknown ones could not be narrowed and would make the
//! search exponential (a delete far from the window constrains little).
//! Every linearization of the whole history is one of the weakened history
//! too, so a window the checker refutes is a real violation: no earlier or
//! later operation can explain it. (Cutting the operations outside away
//! instead would not be sound: a window that reads a value written before
//! it would be refuted for want of that write.) The settling pre-pass of
//! the checker drops the weakened writes nothing in the window reads and
//! pins those it does, so the search stays about the window.
//!
//! Weakening more operations only removes constraints, so refutation is
//! monotone in the window: the start is found by bisection (the latest one
//! whose window to the end is refuted), then the end (the earliest one
//! whose window from that start is refuted). The result is minimal at
//! both ends: dropping its first or its last operation makes it pass.

use crate::history::{to_events, Record};
use raft_sim::linearizability::{check, History, Op, Outcome, Verdict};

/// A refuted window of one key's history.
#[derive(Debug, Clone)]
pub struct Window {
    /// The key.
    pub key: u64,
    /// The window's operations, in order of invocation (without those
    /// that constrain nothing, such as failed writes).
    pub records: Vec<Record>,
    /// The writes from outside the window whose values it reads (weakened
    /// to unknown in the check), in order of invocation.
    pub context: Vec<Record>,
}

impl Window {
    /// When the window's first operation was invoked and its last one
    /// completed, in µs since the run began.
    pub fn span(&self) -> (u64, u64) {
        let start = self.records.iter().map(|r| r.invoke_us).min().unwrap_or(0);
        let end = self.records.iter().map(|r| r.complete_us).max().unwrap_or(0);
        (start, end)
    }
}

/// Whether `record` touches `key` (a transaction touches two).
fn on_key(record: &Record, key: u64) -> bool {
    record.key == key || record.key2 == Some(key)
}

/// The history of `key` with `ops[window]` as they are and the rest weakened.
fn weakened(ops: &[&Record], key: u64, window: std::ops::Range<usize>) -> History {
    let mut history = History::new();
    for (index, record) in ops.iter().enumerate() {
        let inside = window.contains(&index);
        for mut event in to_events(record).into_iter().filter(|e| e.op.key() == key) {
            if !inside {
                if !event.op.is_write() || event.outcome == Outcome::Failed {
                    continue;
                }
                // Deletes stay as they were: all write the same "absent",
                // so the settling pass cannot narrow unknown ones, and
                // many open-ended deletes make the search exponential.
                if !matches!(event.op, Op::Delete { .. }) {
                    event.outcome = Outcome::Unknown;
                }
            }
            history.record(event);
        }
    }
    history
}

/// The smallest refuted window of `key`'s operations in `records`, or
/// `None` if even the whole of them is not refuted within `budget`.
pub fn smallest_window(records: &[Record], key: u64, budget: usize) -> Option<Window> {
    let mut ops: Vec<&Record> = records.iter().filter(|r| on_key(r, key)).collect();
    ops.sort_by_key(|r| (r.invoke_us, r.complete_us));
    let n = ops.len();
    let refuted = |window: std::ops::Range<usize>| {
        matches!(check(&weakened(&ops, key, window), budget), Verdict::NotLinearizable { .. })
    };
    if !refuted(0..n) {
        return None;
    }
    // The latest start whose window to the end is refuted.
    let (mut low, mut high) = (0, n - 1);
    while low < high {
        let mid = (low + high).div_ceil(2);
        if refuted(mid..n) {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    let start = low;
    // The earliest end (exclusive) whose window from `start` is refuted.
    let (mut low, mut high) = (start + 1, n);
    while low < high {
        let mid = (low + high) / 2;
        if refuted(start..mid) {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    // Operations that constrain nothing (failed ones) are left out of
    // what is shown: they change no verdict.
    let window: Vec<Record> = ops[start..low]
        .iter()
        .filter(|r| to_events(r).iter().any(|e| e.op.key() == key))
        .map(|r| (*r).clone())
        .collect();
    let read: std::collections::HashSet<u64> = window
        .iter()
        .flat_map(to_events)
        .filter(|e| e.op.key() == key)
        .filter_map(|e| match (e.op, e.outcome) {
            (_, Outcome::GetOk(Some(v))) => Some(v),
            (Op::Cas { expected: Some(v), .. }, _) => Some(v),
            _ => None,
        })
        .collect();
    let context = ops[..start]
        .iter()
        .chain(&ops[low..])
        .filter(|r| {
            to_events(r).iter().any(|e| e.op.key() == key && e.op.is_write() && writes_one_of(e, &read))
        })
        .map(|r| (*r).clone())
        .collect();
    Some(Window { key, records: window, context })
}

fn writes_one_of(event: &raft_sim::linearizability::Event, values: &std::collections::HashSet<u64>) -> bool {
    match event.op {
        Op::Put { value, .. } | Op::Cas { new: Some(value), .. } => values.contains(&value),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Kind, Status};

    fn op(kind: Kind, value: Option<u64>, read: Option<Option<u64>>, t: u64) -> Record {
        Record {
            value,
            read,
            status: Status::Ok,
            invoke_us: t,
            complete_us: t + 5,
            ..Record::new(0, 1, kind, 0)
        }
    }

    /// Forty sequential puts, each read back, on key 0 (and noise on key 1),
    /// with one stale read in the middle: the read at 2,000 sees 18 after
    /// 19 was written.
    fn history(stale: bool) -> Vec<Record> {
        let mut records = Vec::new();
        for i in 0..40 {
            let t = 100 * i;
            records.push(op(Kind::Put, Some(i + 1), None, t));
            let seen = if stale && i == 20 { i } else { i + 1 };
            records.push(op(Kind::Get, None, Some(Some(seen)), t + 50));
            records.push(Record { key: 1, ..op(Kind::Get, None, Some(None), t + 60) });
        }
        records
    }

    #[test]
    fn the_window_of_a_stale_read_is_the_overwrite_and_the_read() {
        let records = history(true);
        assert!(!check(&crate::history::to_history(&records), 100_000).is_linearizable());
        let window = smallest_window(&records, 0, 100_000).expect("refuted");
        // The read of 20 that pins its put before the put of 21, that put,
        // and the stale read of 20 after it; the put of 20, from before
        // the window, is the write both reads saw.
        let kinds: Vec<(Kind, Option<u64>)> = window.records.iter().map(|r| (r.kind, r.value)).collect();
        assert_eq!(kinds, [(Kind::Get, None), (Kind::Put, Some(21)), (Kind::Get, None)], "{window:?}");
        assert_eq!(window.context.iter().map(|r| r.value).collect::<Vec<_>>(), [Some(20)]);
        assert_eq!(window.span(), (1_950, 2_055));
        // Still refuted on its own terms, and minimal: either half passes.
        let ops: Vec<&Record> = window.context.iter().chain(&window.records).collect();
        let n = ops.len();
        let refuted = |w: std::ops::Range<usize>| !check(&weakened(&ops, 0, w), 100_000).is_linearizable();
        assert!(refuted(1..n));
        assert!(!refuted(2..n) && !refuted(1..n - 1));
    }

    #[test]
    fn a_linearizable_history_has_no_window() {
        assert!(smallest_window(&history(false), 0, 100_000).is_none());
    }

    #[test]
    fn a_read_of_a_value_from_before_the_window_is_not_blamed_on_the_cut() {
        // Cut away instead of weakened, the window [read of 3] alone would
        // be refuted (3 was never written in it). Weakened, it passes, so
        // the only refuted window is the one with the stale read.
        let mut records = vec![op(Kind::Put, Some(3), None, 0), op(Kind::Get, None, Some(Some(3)), 100)];
        let ops: Vec<&Record> = records.iter().collect();
        assert!(check(&weakened(&ops, 0, 1..2), 1_000).is_linearizable());
        records.push(op(Kind::Delete, None, None, 200));
        records.push(op(Kind::Get, None, Some(Some(3)), 300));
        let window = smallest_window(&records, 0, 1_000).expect("refuted");
        // The first read pins the put of 3 before the delete.
        let kinds: Vec<Kind> = window.records.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [Kind::Get, Kind::Delete, Kind::Get]);
    }
}
