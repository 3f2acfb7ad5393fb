//! The cluster's trace: one line of plain text per event, in the order the
//! events happen, for replays of simulated runs and for the golden traces
//! of the scenario tests ([`crate::golden`]).
//!
//! A line is the logical time (the cluster's `now`: ticks in scripted use,
//! steps in a simulation) and the event. Nothing in a line depends on
//! memory addresses, hash-map order or wall-clock time, so a run's trace is
//! the same on every machine, every time. Log positions are written
//! `index@term`, runs of entries of one term `first..last@term`.
//!
//! | Line | Event |
//! |------|-------|
//! | `1->2 AppendEntries term=2 prev=1@1 entries=[2@2] commit=1` | node 1 sent a message (suffixed `(cut)` if its link is cut, `(lost)` if the network lost it) |
//! | `deliver 1->2 ...` | it was delivered (only with [`crate::Cluster::enable_trace_with_deliveries`]) |
//! | `drop 1->2 ... (n2 down)`, `lose 1->2 ...` | it was dropped on arrival, or by the script |
//! | `n1 hard-state term=2 vote=1` | node 1's term and vote became durable |
//! | `n1 persist 2..3@2 (replaces 2..4)` | entries became durable, overwriting a suffix |
//! | `n1 commit=3` | node 1's commit index advanced (it is not persisted) |
//! | `n1 role=Leader term=2 leader=1` | a role or leader change (`Ready::soft_state`) |
//! | `n1 snapshot built 900@1`, `n3 snapshot install 900@1`, `n1 purge ..=800` | snapshots and compaction |
//! | `n1 read ctx=7 ready index=3` | a linearizable read may be served |
//! | `n1 campaigns`, `n1 propose len=8`, `n2 crashes (loses 1 write)`, `cut n1 -> n2`, ... | what the driver did |

use raft_core::{Entry, EntryPayload, Index, LogId, Membership, Message, MessageBody, NodeId, RawNode};
use std::collections::BTreeMap;
use std::fmt::Write;

/// A trace being recorded.
#[derive(Debug)]
pub(crate) struct Trace {
    lines: Vec<String>,
    /// Record every delivery too: in a simulation the network reorders
    /// messages, so the send order does not tell the delivery order.
    pub(crate) deliveries: bool,
    /// The commit index last recorded for each node.
    commits: BTreeMap<NodeId, Index>,
}

impl Trace {
    /// A trace that opens with a line for each node's state (or `down`).
    pub(crate) fn start<'a>(
        now: u64,
        deliveries: bool,
        nodes: impl Iterator<Item = (NodeId, Option<&'a RawNode>)>,
    ) -> Self {
        let mut t = Self { lines: Vec::new(), deliveries, commits: BTreeMap::new() };
        for (id, raft) in nodes {
            match raft {
                Some(raft) => {
                    t.reset_commit(id, raft.log().committed());
                    t.push(now, format!("n{id} {}", node(raft)));
                }
                None => t.push(now, format!("n{id} down")),
            }
        }
        t
    }

    pub(crate) fn push(&mut self, now: u64, event: String) {
        self.lines.push(format!("{now:>4} {event}"));
    }

    pub(crate) fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Records node `id`'s commit index if it moved since the last record.
    pub(crate) fn commit(&mut self, now: u64, id: NodeId, commit: Index) {
        if self.commits.insert(id, commit) != Some(commit) {
            self.push(now, format!("n{id} commit={commit}"));
        }
    }

    /// Sets node `id`'s commit index without a line (a (re)start says it).
    pub(crate) fn reset_commit(&mut self, id: NodeId, commit: Index) {
        self.commits.insert(id, commit);
    }
}

/// `index@term`.
pub(crate) fn log_id(id: LogId) -> String {
    format!("{}@{}", id.index, id.term)
}

/// Entries as runs of one term: `2..4@2 5@3`; a configuration entry stands
/// alone, marked `:config`.
pub(crate) fn entries<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> String {
    let mut runs: Vec<(Index, Index, u64, bool)> = Vec::new();
    for e in entries {
        let config = matches!(e.payload, EntryPayload::Membership(_));
        match runs.last_mut() {
            Some((_, last, term, false)) if !config && *term == e.term && *last + 1 == e.index => {
                *last = e.index
            }
            _ => runs.push((e.index, e.index, e.term, config)),
        }
    }
    let mut out = String::new();
    for (i, (first, last, term, config)) in runs.into_iter().enumerate() {
        let sep = if i == 0 { "" } else { " " };
        let mark = if config { ":config" } else { "" };
        if first == last {
            let _ = write!(out, "{sep}{first}@{term}{mark}");
        } else {
            let _ = write!(out, "{sep}{first}..{last}@{term}{mark}");
        }
    }
    out
}

/// A node id or `-`.
fn id_or_dash(id: Option<NodeId>) -> String {
    id.map_or_else(|| "-".to_string(), |id| id.to_string())
}

/// A configuration: `voters={1,2}`, with its outgoing half and learners if any.
pub(crate) fn membership(m: &Membership) -> String {
    let set = |s: &std::collections::BTreeSet<NodeId>| {
        let ids: Vec<String> = s.iter().map(u64::to_string).collect();
        format!("{{{}}}", ids.join(","))
    };
    let mut out = format!("voters={}", set(&m.voters));
    if !m.outgoing.is_empty() {
        let _ = write!(out, " outgoing={}", set(&m.outgoing));
    }
    if !m.learners.is_empty() {
        let _ = write!(out, " learners={}", set(&m.learners));
    }
    if !m.learners_next.is_empty() {
        let _ = write!(out, " learners_next={}", set(&m.learners_next));
    }
    out
}

/// A running node's state: term, vote, role, commit index and log.
pub(crate) fn node(raft: &RawNode) -> String {
    let log = raft.log();
    let stored = (log.first_index()..=log.last_index()).filter_map(|i| log.entry(i));
    let mut out = format!(
        "term={} vote={} role={:?} leader={} commit={} log=[{}]",
        raft.term(),
        id_or_dash(raft.vote()),
        raft.role(),
        id_or_dash(raft.leader()),
        log.committed(),
        entries(stored)
    );
    if log.snapshot().index > 0 {
        let _ = write!(out, " snapshot={}", log_id(log.snapshot()));
    }
    out
}

/// A message sent: with `(lost)` if the network lost it, and its delays if
/// a network model gave it any.
pub(crate) fn sent(m: &Message, delays: &[u64]) -> String {
    let line = message(m);
    match delays {
        [] => format!("{line} (lost)"),
        [0] => line,
        _ => {
            let delays: Vec<String> = delays.iter().map(u64::to_string).collect();
            format!("{line} delay={}", delays.join(","))
        }
    }
}

/// Node `id` made `entries` durable on a disk that held `stored` before:
/// which stored entries they replace, if any.
pub(crate) fn persisted(id: NodeId, entries: &[Entry], stored: &[Entry]) -> String {
    let first = entries.first().map_or(0, |e| e.index);
    let replaced = stored.iter().filter(|e| e.index >= first).map(|e| e.index);
    let replaced = match (replaced.clone().min(), replaced.max()) {
        (Some(a), Some(b)) if a == b => format!(" (replaces {a})"),
        (Some(a), Some(b)) => format!(" (replaces {a}..{b})"),
        _ => String::new(),
    };
    format!("n{id} persist {}{replaced}", self::entries(entries))
}

/// Node `id` crashed with `lost` writes not yet durable.
pub(crate) fn crashed(id: NodeId, lost: usize) -> String {
    match lost {
        0 => format!("n{id} crashes"),
        1 => format!("n{id} crashes (loses 1 write)"),
        n => format!("n{id} crashes (loses {n} writes)"),
    }
}

/// One line describing a message: sender, recipient, kind, term and the
/// fields that decide what the recipient does with it.
pub(crate) fn message(m: &Message) -> String {
    let detail = match &m.body {
        MessageBody::PreVote(r) | MessageBody::Vote(r) => {
            let transfer = if r.leadership_transfer { " transfer" } else { "" };
            format!("last={}@{}{transfer}", r.last_log_index, r.last_log_term)
        }
        MessageBody::PreVoteResponse(r) | MessageBody::VoteResponse(r) => format!("granted={}", r.granted),
        MessageBody::AppendEntries(a) => format!(
            "prev={}@{} entries=[{}] commit={}",
            a.prev_log_index,
            a.prev_log_term,
            entries(&a.entries),
            a.leader_commit
        ),
        MessageBody::AppendEntriesResponse(raft_core::AppendEntriesResponse::Success { match_index }) => {
            format!("match={match_index}")
        }
        MessageBody::AppendEntriesResponse(raft_core::AppendEntriesResponse::Conflict {
            rejected_index,
            hint_index,
            hint_term,
        }) => format!("reject={rejected_index} hint={hint_index}@{hint_term}"),
        MessageBody::Heartbeat(h) => format!("commit={} round={}", h.commit, h.round),
        MessageBody::HeartbeatResponse(r) => format!("round={}", r.round),
        MessageBody::TimeoutNow => String::new(),
        MessageBody::ReadIndex(r) => format!("ctx={} lease={}", r.ctx, r.lease),
        MessageBody::ReadIndexResponse(r) => format!("ctx={} index={}", r.ctx, r.index),
        MessageBody::InstallSnapshot(c) => format!(
            "last={} offset={} len={} total={}{}",
            log_id(c.meta.last),
            c.offset,
            c.data.len(),
            c.total_len,
            if c.done { " done" } else { "" }
        ),
        MessageBody::InstallSnapshotResponse(r) => {
            format!("last={} next={} installed={}", log_id(r.last), r.next_offset, r.installed)
        }
    };
    let line = format!("{}->{} {} term={}", m.from, m.to, m.body.kind(), m.term);
    if detail.is_empty() {
        line
    } else {
        format!("{line} {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::AppendEntries;

    fn entry(index: Index, term: u64) -> Entry {
        Entry { index, term, payload: EntryPayload::Blank }
    }

    #[test]
    fn entries_are_written_as_runs_of_one_term() {
        let config = Entry { index: 5, term: 3, payload: EntryPayload::Membership(Box::default()) };
        let list = [entry(1, 1), entry(2, 2), entry(3, 2), entry(4, 3), config, entry(6, 3)];
        assert_eq!(entries(&list), "1@1 2..3@2 4@3 5@3:config 6@3");
        assert_eq!(entries(&[]), "");
    }

    #[test]
    fn a_message_line_names_its_key_fields() {
        let m = Message {
            from: 1,
            to: 2,
            term: 2,
            body: MessageBody::AppendEntries(AppendEntries {
                prev_log_index: 1,
                prev_log_term: 1,
                entries: vec![entry(2, 2)],
                leader_commit: 1,
            }),
        };
        assert_eq!(message(&m), "1->2 AppendEntries term=2 prev=1@1 entries=[2@2] commit=1");
        let m = Message { from: 2, to: 1, term: 2, body: MessageBody::TimeoutNow };
        assert_eq!(message(&m), "2->1 TimeoutNow term=2");
    }
}
