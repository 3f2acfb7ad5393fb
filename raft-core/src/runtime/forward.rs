//! Forwarded proposals, at most once (issue 10, bug 6).
//!
//! A follower forwards a proposal to the leader of its current term in a
//! [`super::Forward::Proposal`] stamped with that term, once, never retried.
//! Transports may still deliver it twice (or redeliver it after a
//! reconnect), late, and to a leader that has since restarted. The contract:
//!
//! - **A forward is valid only in the term it was stamped with, at the
//!   leader of that term.** Anywhere else (a follower, a candidate, the
//!   leader of a later term, the same node after a restart) it is refused,
//!   never proposed.
//! - The leader of the term proposes the first copy it sees and drops
//!   later copies silently (the first copy's answer is the answer). It
//!   remembers, per term and per sending run, the latest [`WINDOW`] request
//!   numbers it took, and refuses as *unknown* an older one it no longer
//!   remembers, rather than risk proposing it twice.
//! - A node cannot lead the same term twice across a restart: it leads only
//!   once its own term and vote are durable, and a later leadership needs a
//!   campaign, hence a later term. (If it crashed before that write was
//!   durable, nothing of that leadership can have been applied either.) So
//!   the filters can live in memory.
//!
//! Together: **each forward is proposed at most once, whatever the
//! transport does.** A refusal is a definite answer ([`ForwardOutcome`]'s
//! `NotLeader` or `NotApplied`) only when this node can prove no copy was
//! taken: it kept its filter of that term, or it cannot have led that term
//! (a term later than the one it started with, never led in this run).
//! Otherwise (a copy reaching a restarted leader, or an old number
//! forgotten) the answer is `OutcomeUnknown`.
//!
//! This is at most once per *forward*, not exactly once per *command*: a
//! client that retries after `OutcomeUnknown` (or a timeout) submits a new
//! forward, which may apply the command a second time. Exactly-once for
//! client retries needs the state machine's help: client sessions (a client
//! id and a sequence number in the command, with the last response per
//! client kept in the replicated state, as the KV node's sessions do).
//!
//! [`ForwardOutcome`]: super::ForwardOutcome

use crate::{NodeId, Term};
use std::collections::{BTreeSet, HashMap, VecDeque};

/// How many request numbers the leader remembers per sending run and term.
/// A copy of an older one is refused as unknown (with ordered transports
/// copies come close together, so this only matters after heavy reordering).
pub(super) const WINDOW: usize = 4096;

/// How many sending runs (a node's restarts) one term's filter tracks. A
/// run beyond them is refused, definitely: it was never taken.
const RUNS_PER_TERM: usize = 64;

/// How many of its latest terms a leader keeps filters of, to answer late
/// copies of them definitely.
const LED_TERMS: usize = 2;

/// A forward's request id: the sending run in the high 32 bits (drawn at
/// random when the node starts), the request's number in that run in the
/// low 32 (from 1).
pub(super) struct ForwardIds {
    run: u32,
    number: u32,
}

impl ForwardIds {
    /// Ids for a run drawn from `random`.
    pub(super) fn new(random: u64) -> Self {
        Self { run: (random >> 32) as u32, number: 0 }
    }

    /// The next id. After 2^32 requests the run moves on (as if the node had
    /// restarted), so an id is never reused within a run.
    pub(super) fn next_id(&mut self) -> u64 {
        if self.number == u32::MAX {
            self.run = self.run.wrapping_add(1);
            self.number = 0;
        }
        self.number += 1;
        (u64::from(self.run) << 32) | u64::from(self.number)
    }
}

/// What to do with a forwarded proposal that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Propose it: the first copy, at the leader of its term.
    Accept,
    /// Drop it without an answer: a copy of one already taken.
    Duplicate,
    /// Do not propose it, and tell the sender why.
    Refuse(Refusal),
}

/// Why a forward was refused, as the sender hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Definitely not applied, and this node does not lead.
    NotLeader,
    /// Definitely not applied; this node leads a later term.
    NotApplied,
    /// Not proposed now, but a copy may have been taken before.
    Unknown,
}

/// Whether a request number was seen.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    New,
    Again,
    /// Older than the window: it may have been.
    Forgotten,
}

/// The numbers of one sending run taken in one term: all those above
/// `floor` are in `taken`.
#[derive(Default)]
struct Window {
    floor: u32,
    taken: BTreeSet<u32>,
}

impl Window {
    fn lookup(&self, number: u32) -> Seen {
        if number <= self.floor {
            Seen::Forgotten
        } else if self.taken.contains(&number) {
            Seen::Again
        } else {
            Seen::New
        }
    }

    fn record(&mut self, number: u32) -> Seen {
        let seen = self.lookup(number);
        if seen == Seen::New {
            self.taken.insert(number);
            if self.taken.len() > WINDOW {
                self.floor = self.taken.pop_first().unwrap_or(self.floor);
            }
        }
        seen
    }
}

/// The forwards one term's leader took, by sender and sending run. Runs are
/// never evicted, so a run without a window took nothing.
#[derive(Default)]
struct TermFilter {
    runs: HashMap<(NodeId, u32), Window>,
}

impl TermFilter {
    fn lookup(&self, from: NodeId, id: u64) -> Seen {
        let (run, number) = split(id);
        self.runs.get(&(from, run)).map_or(Seen::New, |window| window.lookup(number))
    }

    /// Records a copy; `None` if it is of a new run and there is no room.
    fn record(&mut self, from: NodeId, id: u64) -> Option<Seen> {
        let (run, number) = split(id);
        if !self.runs.contains_key(&(from, run)) && self.runs.len() >= RUNS_PER_TERM {
            return None;
        }
        Some(self.runs.entry((from, run)).or_default().record(number))
    }
}

fn split(id: u64) -> (u32, u32) {
    ((id >> 32) as u32, id as u32)
}

/// The leader side: which forwards this node took, in the terms it led.
pub(super) struct ForwardFilter {
    /// The term this node started with: it may have led it, or an earlier
    /// one, in a run whose filters are gone.
    start_term: Term,
    /// Filters of the terms this node took forwards in, in this run, oldest
    /// first (a filter is made with the first forward it takes).
    led: VecDeque<(Term, TermFilter)>,
    /// The latest term whose filter was dropped (0 if none).
    forgotten: Term,
}

impl ForwardFilter {
    /// A filter for a node that starts in `start_term`.
    pub(super) fn new(start_term: Term) -> Self {
        Self { start_term, led: VecDeque::new(), forgotten: 0 }
    }

    /// Decides on a forward `id` from `from`, stamped with `forward_term`,
    /// at a node in `term` that leads it if `leading`.
    pub(super) fn check(
        &mut self,
        from: NodeId,
        id: u64,
        forward_term: Term,
        term: Term,
        leading: bool,
    ) -> Verdict {
        if leading && forward_term == term {
            return match self.filter(term).record(from, id) {
                Some(Seen::New) => Verdict::Accept,
                Some(Seen::Again) => Verdict::Duplicate,
                Some(Seen::Forgotten) => Verdict::Refuse(Refusal::Unknown),
                None => Verdict::Refuse(Refusal::NotApplied),
            };
        }
        let definite = match self.led.iter().find(|(t, _)| *t == forward_term) {
            Some((_, filter)) => match filter.lookup(from, id) {
                Seen::Again => return Verdict::Duplicate,
                Seen::Forgotten => false,
                Seen::New => true,
            },
            // Never led in this run (or led, and took no forward then), and
            // no earlier run can have led it.
            None => forward_term > self.start_term && forward_term > self.forgotten,
        };
        match (definite, leading) {
            (false, _) => Verdict::Refuse(Refusal::Unknown),
            (true, true) => Verdict::Refuse(Refusal::NotApplied),
            (true, false) => Verdict::Refuse(Refusal::NotLeader),
        }
    }

    /// The filter of `term`, the latest this node leads: made if new, and
    /// the oldest dropped beyond [`LED_TERMS`].
    fn filter(&mut self, term: Term) -> &mut TermFilter {
        if self.led.back().is_none_or(|(t, _)| *t != term) {
            self.led.push_back((term, TermFilter::default()));
            if self.led.len() > LED_TERMS {
                if let Some((dropped, _)) = self.led.pop_front() {
                    self.forgotten = self.forgotten.max(dropped);
                }
            }
        }
        let latest = self.led.len() - 1;
        &mut self.led[latest].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(run: u32, number: u32) -> u64 {
        (u64::from(run) << 32) | u64::from(number)
    }

    #[test]
    fn the_leader_of_the_term_takes_the_first_copy_only() {
        let mut filter = ForwardFilter::new(1);
        assert_eq!(filter.check(2, id(7, 1), 3, 3, true), Verdict::Accept);
        assert_eq!(filter.check(2, id(7, 1), 3, 3, true), Verdict::Duplicate);
        // Another sender, or another run of the same sender, is another request.
        assert_eq!(filter.check(4, id(7, 1), 3, 3, true), Verdict::Accept);
        assert_eq!(filter.check(2, id(8, 1), 3, 3, true), Verdict::Accept);
    }

    #[test]
    fn a_copy_outside_its_term_is_never_taken() {
        let mut filter = ForwardFilter::new(1);
        assert_eq!(filter.check(2, id(7, 1), 3, 3, true), Verdict::Accept);
        // Later, leading term 5: a copy of the taken one is dropped; one
        // never taken is definitely refused.
        assert_eq!(filter.check(2, id(7, 1), 3, 5, true), Verdict::Duplicate);
        assert_eq!(filter.check(2, id(7, 2), 3, 5, true), Verdict::Refuse(Refusal::NotApplied));
        // As a follower, in the same or a later term.
        assert_eq!(filter.check(2, id(7, 2), 5, 5, false), Verdict::Refuse(Refusal::NotLeader));
        // A term it may have led before it restarted: unknown.
        assert_eq!(filter.check(2, id(7, 2), 1, 5, false), Verdict::Refuse(Refusal::Unknown));
    }

    #[test]
    fn after_a_restart_copies_of_earlier_terms_are_unknown() {
        // Restarted in term 3: it may have taken forwards of term 3 or before.
        let mut filter = ForwardFilter::new(3);
        assert_eq!(filter.check(2, id(7, 1), 3, 3, false), Verdict::Refuse(Refusal::Unknown));
        assert_eq!(filter.check(2, id(7, 1), 2, 4, true), Verdict::Refuse(Refusal::Unknown));
        assert_eq!(filter.check(2, id(7, 1), 4, 4, true), Verdict::Accept);
    }

    #[test]
    fn numbers_older_than_the_window_are_refused_as_unknown() {
        let mut filter = ForwardFilter::new(1);
        for number in 1..=WINDOW as u32 + 1 {
            assert_eq!(filter.check(2, id(7, number), 2, 2, true), Verdict::Accept);
        }
        assert_eq!(filter.check(2, id(7, 1), 2, 2, true), Verdict::Refuse(Refusal::Unknown));
        assert_eq!(filter.check(2, id(7, 2), 2, 2, true), Verdict::Duplicate);
        assert_eq!(filter.check(2, id(7, 1), 2, 3, true), Verdict::Refuse(Refusal::Unknown));
    }

    #[test]
    fn dropped_terms_are_unknown_and_runs_beyond_the_bound_are_refused() {
        let mut filter = ForwardFilter::new(1);
        for term in 2..=2 + LED_TERMS as u64 {
            assert_eq!(filter.check(2, id(7, 1), term, term, true), Verdict::Accept);
        }
        assert_eq!(filter.check(2, id(7, 2), 2, 9, true), Verdict::Refuse(Refusal::Unknown));
        let term = 10;
        for run in 0..RUNS_PER_TERM as u32 {
            assert_eq!(filter.check(2, id(run, 1), term, term, true), Verdict::Accept);
        }
        let beyond = filter.check(2, id(RUNS_PER_TERM as u32, 1), term, term, true);
        assert_eq!(beyond, Verdict::Refuse(Refusal::NotApplied));
    }

    #[test]
    fn ids_never_repeat_within_a_run() {
        let mut ids = ForwardIds { run: 5, number: u32::MAX - 1 };
        assert_eq!(ids.next_id(), id(5, u32::MAX));
        assert_eq!(ids.next_id(), id(6, 1));
    }
}
