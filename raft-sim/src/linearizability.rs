//! Linearizability checking for client histories of the simulated key-value
//! store.
//!
//! # What is checked
//!
//! The store is a map of independent registers: keys and values are `u64`,
//! and a key that was never written reads as `None`. Clients issue
//! [`Op::Put`], [`Op::Get`], [`Op::Delete`] (a write of `None`) and
//! [`Op::Cas`] (a write that applies only if the register holds the value
//! it expected; its success is checked against the register, not just
//! taken as a write) operations; each one is recorded as an
//! [`Event`] with a logical invocation time, a logical completion time and an
//! [`Outcome`]. A history is *linearizable* if every operation that has a
//! response can be assigned a single instant inside its closed interval
//! `[invoke, complete]` at which it takes effect atomically, such that
//! replaying the operations in the order of those instants against a
//! sequential register reproduces every response. Two operations whose
//! intervals share even one instant are concurrent and may be ordered either
//! way.
//!
//! Outcomes that carry no response are handled as follows:
//!
//! * [`Outcome::Failed`] operations definitely never happened and are removed
//!   from the history before checking.
//! * A write (put, delete or cas) with [`Outcome::Unknown`] may have taken
//!   effect at any instant at or after its invocation, or never (a cas only
//!   where the register held what it expected). It gets the interval
//!   `[invoke, +inf)` and is *optional*: the search may leave it out.
//! * A get with [`Outcome::Unknown`] constrains nothing and is removed.
//!
//! When every put and cas on a key wrote a distinct value, unknown writes
//! are settled before the search, which changes no verdict: one whose value
//! nothing read (no get returned it, no cas expected it) is dropped, and
//! one that a completed get or cas saw becomes required, its interval
//! ending at the earliest completion of such an operation (see
//! `settle_unknown_puts`). Deletes all write the same `None`, so unknown
//! deletes are never settled: each stays open-ended and optional, and many
//! of them on one key make the search expensive.
//!
//! # Algorithm
//!
//! The search follows Wing and Gong ("Testing and verifying concurrent
//! objects", J. Parallel and Distributed Computing, 1993): grow a sequential
//! order one operation at a time, only ever appending an operation that is
//! *minimal* among those not yet placed, meaning no other unplaced operation
//! completed strictly before it was invoked. Appending an operation runs it
//! against the sequential register; a get whose recorded value differs from
//! the register is not appendable. When nothing can be appended the search
//! backtracks. The history is linearizable exactly when some branch places
//! every operation that has a response (unknown puts may be left out).
//!
//! Plain backtracking revisits the same situation through many different
//! orders of commuting operations, which is exponential. Lowe ("Testing for
//! linearizability", Concurrency and Computation: Practice and Experience,
//! 2017) observed that the future of the search depends only on *which*
//! operations have been placed and on the resulting object state, not on the
//! order in which they were placed. This module therefore treats the search
//! as a depth-first traversal of configurations `(set of placed operations,
//! register value)`, with the set stored as a bitset of arbitrary width, and
//! remembers every configuration it has seen so that each is expanded at most
//! once (Lowe's cache of configurations).
//!
//! Linearizability is compositional (Herlihy and Wing's locality property,
//! which Lowe calls P-compositionality when applied to partitions of one
//! object): a history of a map of independent registers is linearizable if
//! and only if, for every key, the sub-history of operations on that key is
//! linearizable. Anish Athalye's checker *porcupine* exploits this by letting
//! a model supply a partition function that splits a history into
//! independent sub-histories, checking each one separately, and reporting the
//! whole history as linearizable only if every part is. This module does the
//! same with the key as the partition: a search over a few dozen operations
//! on one key is far smaller than one over the interleaving of all keys.
//!
//! # Limits
//!
//! For a key with `n` operations the number of configurations is at most
//! `2^n` times the number of distinct values, so the search is exponential
//! in the worst case (the problem is NP-complete). In practice the
//! minimality rule only lets operations that are concurrent with each other
//! be reordered, so the cost is roughly `n` times `2^w`, where `w` is the
//! number of mutually overlapping operations on that key (unknown puts,
//! being open-ended, overlap everything invoked after them). The `budget`
//! argument of [`check`] caps the number of distinct configurations visited
//! per key; when the cap is exceeded the result is [`Verdict::GaveUp`]
//! instead of an unbounded run. Memory is proportional to the number of
//! visited configurations times `n / 64` words.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// Identifier of the client that issued an operation.
pub type ClientId = u64;

/// An operation on the key-value store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Write `value` to `key`.
    Put {
        /// The key written.
        key: u64,
        /// The value written.
        value: u64,
    },
    /// Read the current value of `key`.
    Get {
        /// The key read.
        key: u64,
    },
    /// Remove `key`: the register holds `None` afterwards (a write of
    /// "absent"). Its outcome is that of a write ([`Outcome::PutOk`] when
    /// acknowledged).
    Delete {
        /// The key removed.
        key: u64,
    },
    /// Compare-and-set: if `key` holds `expected` (`None`: absent), set it
    /// to `new` (`None`: remove it). [`Outcome::PutOk`] means the
    /// comparison held and the write happened; a cas whose comparison
    /// failed changed nothing and enters a history as a [`Op::Get`] of what
    /// it found (or not at all, if it did not say).
    Cas {
        /// The key.
        key: u64,
        /// What the register must hold for the write to happen.
        expected: Option<u64>,
        /// What it holds afterwards.
        new: Option<u64>,
    },
}

impl Op {
    /// The key this operation accesses.
    pub fn key(&self) -> u64 {
        match *self {
            Op::Put { key, .. } | Op::Get { key } | Op::Delete { key } | Op::Cas { key, .. } => key,
        }
    }

    /// Whether the operation writes (a put, delete or cas).
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Get { .. })
    }
}

/// How an operation ended, as observed by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A write (put, delete, or cas whose comparison held) that completed
    /// (acknowledged).
    PutOk,
    /// A get that returned this value.
    GetOk(Option<u64>),
    /// Definitely did not take effect (e.g. rejected, or the leader lost it
    /// and the client was told so). Such an op is simply dropped from the
    /// history.
    Failed,
    /// Unknown: may or may not have taken effect, at any time after
    /// invocation (e.g. the node crashed). For a put it may be linearized at
    /// any point after `invoke`, or never. A get with an unknown outcome is
    /// dropped, since it constrains nothing.
    Unknown,
}

/// One client operation together with its timing and outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Event {
    /// The client that issued the operation.
    pub client: ClientId,
    /// The operation issued.
    pub op: Op,
    /// Logical time at which the operation was invoked.
    pub invoke: u64,
    /// Logical time at which the response was received. Ignored when the
    /// outcome is [`Outcome::Unknown`] or [`Outcome::Failed`].
    pub complete: u64,
    /// What the client observed.
    pub outcome: Outcome,
}

/// A recorded client history: the events of all clients, in any order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    events: Vec<Event>,
}

impl History {
    /// Creates an empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an event. Events may be recorded in any order.
    ///
    /// # Panics
    ///
    /// Panics if the event is malformed: a put with a [`Outcome::GetOk`]
    /// outcome, a get with a [`Outcome::PutOk`] outcome, or a completed
    /// operation (`PutOk` or `GetOk`) whose `complete` is before its
    /// `invoke`.
    pub fn record(&mut self, event: Event) {
        match (event.op, event.outcome) {
            (op, Outcome::GetOk(_)) if op.is_write() => {
                panic!("malformed event, outcome does not match operation: {event:?}")
            }
            (Op::Get { .. }, Outcome::PutOk) => {
                panic!("malformed event, outcome does not match operation: {event:?}")
            }
            (_, Outcome::PutOk | Outcome::GetOk(_)) => assert!(
                event.invoke <= event.complete,
                "malformed event, completes before it is invoked: {event:?}"
            ),
            _ => {}
        }
        self.events.push(event);
    }

    /// Number of recorded events (including failed and unknown ones).
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no events have been recorded.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The recorded events, in recording order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }
}

impl Extend<Event> for History {
    fn extend<I: IntoIterator<Item = Event>>(&mut self, iter: I) {
        for event in iter {
            self.record(event);
        }
    }
}

impl FromIterator<Event> for History {
    fn from_iter<I: IntoIterator<Item = Event>>(iter: I) -> Self {
        let mut history = History::new();
        history.extend(iter);
        history
    }
}

/// Result of [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every per-key sub-history has a valid linearization.
    Linearizable,
    /// The sub-history of `key` has no valid linearization.
    NotLinearizable {
        /// The key whose sub-history is not linearizable.
        key: u64,
        /// Human-readable description of where the search got stuck.
        explanation: String,
    },
    /// The search for `key` exceeded the budget before reaching a verdict.
    GaveUp {
        /// The key whose search was abandoned.
        key: u64,
    },
}

impl Verdict {
    /// Whether the verdict is [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => write!(f, "linearizable"),
            Verdict::NotLinearizable { key, explanation } => {
                write!(f, "not linearizable on key {key}: {explanation}")
            }
            Verdict::GaveUp { key } => {
                write!(f, "gave up on key {key}: search budget exhausted")
            }
        }
    }
}

/// Checks whether `history` is linearizable with respect to a map of
/// registers.
///
/// The history is split by key and each key is checked independently, in
/// ascending key order, visiting at most `budget` distinct search
/// configurations per key. A key with nothing to check (for example only
/// unknown puts) needs no search and never gives up.
///
/// Returns [`Verdict::NotLinearizable`] for the first key that has no
/// linearization. If no key is refuted but some key exceeded its budget,
/// returns [`Verdict::GaveUp`] for the first such key. Otherwise returns
/// [`Verdict::Linearizable`].
pub fn check(history: &History, budget: usize) -> Verdict {
    check_counted(history, budget).0
}

/// How many keys a check searched, and on how many it gave up. A gave-up
/// key is unjudged, not passed: callers count and bound these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyCounts {
    /// Keys with operations to check.
    pub checked: u64,
    /// Keys whose search exceeded its budget.
    pub gave_up: u64,
}

/// [`check`], also counting the keys checked and given up on (every key is
/// searched, even after one gave up, unless one is refuted).
pub fn check_counted(history: &History, budget: usize) -> (Verdict, KeyCounts) {
    let mut by_key: BTreeMap<u64, Vec<KeyOp>> = BTreeMap::new();
    for (index, event) in history.events.iter().enumerate() {
        let kind = match (event.op, event.outcome) {
            (_, Outcome::Failed) | (Op::Get { .. }, Outcome::Unknown) => continue,
            (Op::Get { .. }, Outcome::GetOk(seen)) => {
                Kind { expects: Some(seen), writes: None, required: true }
            }
            (write, Outcome::PutOk | Outcome::Unknown) => {
                let required = event.outcome == Outcome::PutOk;
                let (expects, writes) = match write {
                    Op::Put { value, .. } => (None, Some(value)),
                    Op::Delete { .. } => (None, None),
                    Op::Cas { expected, new, .. } => (Some(expected), new),
                    Op::Get { .. } => unreachable!("a get's outcomes are matched above"),
                };
                Kind { expects, writes: Some(writes), required }
            }
            // `History::record` rejects the remaining combination.
            (_, Outcome::GetOk(_)) => unreachable!("malformed event in history: {event:?}"),
        };
        let complete = match event.outcome {
            Outcome::Unknown => u64::MAX,
            _ => event.complete,
        };
        by_key.entry(event.op.key()).or_default().push(KeyOp { index, invoke: event.invoke, complete, kind });
    }

    let mut gave_up = None;
    let mut counts = KeyCounts::default();
    for (key, mut ops) in by_key {
        settle_unknown_puts(&mut ops);
        counts.checked += 1;
        match check_key(ops, budget) {
            KeyResult::Ok => {}
            KeyResult::Stuck(stuck) => {
                let explanation = stuck.explain(history);
                return (Verdict::NotLinearizable { key, explanation }, counts);
            }
            KeyResult::OverBudget => {
                counts.gave_up += 1;
                gave_up.get_or_insert(key);
            }
        }
    }
    let verdict = match gave_up {
        Some(key) => Verdict::GaveUp { key },
        None => Verdict::Linearizable,
    };
    (verdict, counts)
}

/// Narrows the unknown writes of one key's operations before the search,
/// without changing the verdict. Only when every write of a value (a put,
/// or a cas's new value; not a delete, whose "absent" repeats) wrote a
/// distinct one, as the simulator's and the fault test's clients do; with
/// repeated values it changes nothing.
///
/// An operation *observes* value `v` when it needs the register to hold
/// `v`: a get that returned `v`, or a cas that expected `v`.
///
/// * An unknown write of `v` that a completed operation observed took
///   effect before that operation did (it is the only write of `v`), so it
///   is required and its interval ends at the earliest completion of such
///   an observer. Repeated until nothing changes, as a required cas
///   observes the value it expected.
/// * An unknown write of `v` that no operation at all observes (completed
///   or not) is dropped. In any linearization that places it, the next
///   operation after it is a write that does not look at the register (a
///   get or a cas of `v` would observe `v`), so leaving it out changes no
///   response.
/// * An unknown cas that expects a value nothing (left) writes can never
///   apply, and is dropped too. Both rules repeat until nothing changes
///   (a chain of unknown cas ops, each expecting the last one's value, goes
///   as a whole when nothing observes its end).
///
/// Open-ended optional writes overlap everything invoked after them, which
/// makes the search exponential in their number; after this pass only the
/// writes that were observed, each with a closed interval, and unknown
/// writes of "absent" (deletes) remain.
fn settle_unknown_puts(ops: &mut Vec<KeyOp>) {
    let mut values = HashSet::new();
    let all_distinct = ops.iter().filter_map(|op| op.kind.writes.flatten()).all(|value| values.insert(value));
    if !all_distinct {
        return;
    }
    loop {
        // Earliest completion of a required op observing each value.
        let mut first_seen: BTreeMap<u64, u64> = BTreeMap::new();
        for op in ops.iter().filter(|op| op.kind.required) {
            if let Some(Some(value)) = op.kind.expects {
                let complete = first_seen.entry(value).or_insert(op.complete);
                *complete = (*complete).min(op.complete);
            }
        }
        let mut changed = false;
        for op in ops.iter_mut().filter(|op| !op.kind.required) {
            if let Some(&complete) = op.kind.writes.flatten().and_then(|v| first_seen.get(&v)) {
                op.kind.required = true;
                op.complete = complete;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    // Dropping one op can leave the write it observed unobserved, or the
    // value it expected unwritten: repeat until nothing changes.
    loop {
        let before = ops.len();
        let observed: HashSet<u64> = ops.iter().filter_map(|op| op.kind.expects.flatten()).collect();
        ops.retain(|op| op.kind.required || op.kind.writes.flatten().is_none_or(|v| observed.contains(&v)));
        let written: HashSet<u64> = ops.iter().filter_map(|op| op.kind.writes.flatten()).collect();
        ops.retain(|op| op.kind.required || op.kind.expects.flatten().is_none_or(|v| written.contains(&v)));
        if ops.len() == before {
            break;
        }
    }
}

/// What an operation expects of the register and does to it: a get
/// expects what it read and writes nothing; a put expects nothing and
/// writes its value; a delete writes `None`; a cas expects and writes.
#[derive(Debug, Clone, Copy)]
struct Kind {
    /// What the register must hold (`None`: anything).
    expects: Option<Option<u64>>,
    /// What it holds afterwards (`None`: unchanged).
    writes: Option<Option<u64>>,
    /// Whether the operation must be placed (an unknown write may not).
    required: bool,
}

/// An operation of a single key's sub-history, prepared for the search.
#[derive(Debug, Clone, Copy)]
struct KeyOp {
    /// Index of the originating event in the history.
    index: usize,
    invoke: u64,
    /// `u64::MAX` for unknown writes.
    complete: u64,
    kind: Kind,
}

impl KeyOp {
    fn required(&self) -> bool {
        self.kind.required
    }

    /// Runs the operation against register value `state`, returning the new
    /// value, or `None` if the operation's recorded response is impossible.
    fn apply(&self, state: Option<u64>) -> Option<Option<u64>> {
        match self.kind.expects {
            Some(expected) if expected != state => None,
            _ => Some(self.kind.writes.unwrap_or(state)),
        }
    }
}

/// Fixed-width set of operation indices.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Bits {
    words: Vec<u64>,
}

impl Bits {
    fn with_len(n: usize) -> Self {
        Bits { words: vec![0; n.div_ceil(64)] }
    }

    fn contains(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    fn insert(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }
}

/// The furthest point a failed search reached.
struct Stuck {
    /// Number of required operations placed in the deepest configuration.
    placed: usize,
    /// Number of required operations in the sub-history.
    total: usize,
    /// Register value in the deepest configuration.
    state: Option<u64>,
    /// History index of the earliest-completing unplaced required operation
    /// in the deepest configuration.
    blocked: usize,
}

impl Stuck {
    fn explain(&self, history: &History) -> String {
        let e = &history.events[self.blocked];
        format!(
            "no valid order exists; the longest partial linearization placed {} of {} \
             completed ops (register then held {:?}) and got stuck at event #{}: \
             client {} {:?} invoked at {} completed at {} with {:?}",
            self.placed,
            self.total,
            self.state,
            self.blocked,
            e.client,
            e.op,
            e.invoke,
            e.complete,
            e.outcome
        )
    }
}

enum KeyResult {
    Ok,
    Stuck(Stuck),
    OverBudget,
}

/// Searches for a linearization of one key's operations.
fn check_key(mut ops: Vec<KeyOp>, budget: usize) -> KeyResult {
    let total = ops.iter().filter(|op| op.required()).count();
    if total == 0 {
        return KeyResult::Ok;
    }
    // Sorted by invocation so the minimal candidates form a prefix of the
    // unplaced operations.
    ops.sort_by_key(|op| (op.invoke, op.complete, op.index));
    let n = ops.len();

    let start = (Bits::with_len(n), None::<u64>);
    let mut seen: HashSet<(Bits, Option<u64>)> = HashSet::new();
    seen.insert(start.clone());
    if seen.len() > budget {
        return KeyResult::OverBudget;
    }
    let mut stack = vec![(start.0, start.1, 0usize)];
    let mut deepest = (0usize, Bits::with_len(n), None::<u64>);
    let mut candidates: Vec<usize> = Vec::new();

    while let Some((placed, state, done)) = stack.pop() {
        if done == total {
            return KeyResult::Ok;
        }
        if done > deepest.0 {
            deepest = (done, placed.clone(), state);
        }
        // An unplaced op may go next only if no other unplaced op completed
        // strictly before it was invoked.
        let horizon =
            (0..n).filter(|&i| !placed.contains(i)).map(|i| ops[i].complete).min().unwrap_or(u64::MAX);
        candidates.clear();
        candidates.extend((0..n).take_while(|&i| ops[i].invoke <= horizon).filter(|&i| !placed.contains(i)));
        // Push the latest-completing candidate first so that the
        // earliest-completing one is explored first; open-ended unknown puts
        // are thus tried last.
        candidates.sort_by_key(|&i| std::cmp::Reverse(ops[i].complete));
        for &i in &candidates {
            let op = &ops[i];
            let Some(next_state) = op.apply(state) else {
                continue;
            };
            let mut next = placed.clone();
            next.insert(i);
            let key = (next, next_state);
            if !seen.insert(key.clone()) {
                continue;
            }
            if seen.len() > budget {
                return KeyResult::OverBudget;
            }
            let next_done = done + usize::from(op.required());
            stack.push((key.0, key.1, next_done));
        }
    }

    let (placed, bits, state) = deepest;
    let blocked = (0..n)
        .filter(|&i| !bits.contains(i) && ops[i].required())
        .min_by_key(|&i| (ops[i].complete, ops[i].invoke))
        .map(|i| ops[i].index)
        .expect("a failed search leaves some completed op unplaced");
    KeyResult::Stuck(Stuck { placed, total, state, blocked })
}

#[cfg(test)]
mod tests;
