//! The replicated state machine: a map of keys to values, each with a
//! revision (the Raft index of the entry that last changed it), and the
//! client sessions that make retried writes apply exactly once (Raft thesis,
//! section 6.3).
//!
//! [`KvState`] is a plain struct: [`KvState::apply`] takes a log index and a
//! [`Command`] and returns an [`Outcome`], with no HTTP or Raft in sight, so
//! it is unit-tested on its own. Everything it decides depends only on the
//! commands and the indexes of their entries, never on a clock, so every
//! replica reaches the same state, sessions and their expiry included.
//!
//! Invariants: a key's revision is the index of the entry that last wrote
//! it, so revisions only grow and are never 0 for a present key (0 stands
//! for "absent" in compare-and-set); a session answers a request number at
//! most once with a new application, and a retry of its latest request with
//! the recorded outcome.

use bytes::Bytes;
use raft_core::runtime::{RestoreError, StateMachine};
use raft_core::{Index, LogId, SnapshotData};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::ops::Bound;

/// A session unused for this many log entries is forgotten (deterministically:
/// measured in entries, which every replica applies alike).
pub const SESSION_TTL_ENTRIES: u64 = 1 << 20;
/// At most this many sessions are kept; beyond, the least recently used goes.
pub const MAX_SESSIONS: usize = 100_000;
/// A session keeps its latest outcome for a retry only up to this many bytes
/// of keys and values; a larger one (a failed compare-and-set holding a big
/// value, a transaction of many gets) is kept as [`Outcome::ResultNotKept`].
/// This bounds a session's memory and its snapshot record: without it, one
/// transaction of 70 gets of a 1 MiB value would leave a 70 MiB record, over
/// the codec's limit for one record, and a snapshot no node could restore.
pub const MAX_KEPT_OUTCOME_BYTES: usize = 64 << 10;

/// A key's value and the index of the entry that last wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// The value, any bytes.
    pub value: Bytes,
    /// The Raft index of the entry that wrote it.
    pub revision: Index,
}

/// Names one request of one client, for exactly-once application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestId {
    /// The client's id (any string the client picks, unique to it).
    pub client: String,
    /// The request's number in the client's sequence, from 1, one request
    /// outstanding at a time.
    pub seq: u64,
}

/// What a client proposes: an operation, and optionally the request it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The client's request, when it wants exactly-once application.
    pub request: Option<RequestId>,
    /// What to do.
    pub op: Op,
}

/// An operation on the map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Sets `key` to `value`; with `if_revision`, only if the key's revision
    /// is that (0: only if the key is absent).
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: Bytes,
        /// The revision the key must have.
        if_revision: Option<Index>,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        key: String,
    },
    /// Replaces `key`'s value if it is `expected` (`None`: the key must be
    /// absent) with `new` (`None`: delete it).
    Cas {
        /// The key.
        key: String,
        /// The value the key must hold, or `None` for absent.
        expected: Option<Bytes>,
        /// The value to store, or `None` to delete.
        new: Option<Bytes>,
    },
    /// A transaction over several keys, applied atomically.
    Txn(Txn),
    /// Loads a backup (a snapshot from [`KvState::encode_snapshot`]) into an
    /// empty map; each key's revision becomes this entry's index, so
    /// revisions stay indexes of this cluster's log. Sessions are not
    /// restored: they belong to the old cluster's clients.
    Restore(Bytes),
}

/// An etcd-style transaction: if every comparison holds, `success` runs,
/// otherwise `failure`; either way in one log entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    /// The conditions, all of which must hold.
    #[serde(default)]
    pub compare: Vec<Compare>,
    /// What runs if they all hold.
    #[serde(default)]
    pub success: Vec<TxnOp>,
    /// What runs otherwise.
    #[serde(default)]
    pub failure: Vec<TxnOp>,
}

/// One condition of a transaction, on one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    /// The key.
    pub key: String,
    /// What must hold of it (not flattened: bincode, the log's codec,
    /// cannot encode flattened fields; the API's JSON flattens it).
    pub check: Check,
}

/// What a [`Compare`] checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The key holds this value (`None`: it is absent).
    Value(Option<String>),
    /// The key's revision compares so with this one (0 for absent).
    Revision {
        /// How to compare.
        op: Ordering,
        /// The revision to compare with.
        value: Index,
    },
    /// The key exists (`true`) or not (`false`).
    Exists(bool),
}

/// A comparison of revisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Less than.
    Lt,
    /// Greater than.
    Gt,
}

/// One operation of a transaction's branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnOp {
    /// Sets a key.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Removes a key.
    Delete {
        /// The key.
        key: String,
    },
    /// Reads a key (as of the transaction).
    Get {
        /// The key.
        key: String,
    },
}

/// What one transaction operation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnOpResult {
    /// A put, and the key's new revision.
    Put {
        /// The key.
        key: String,
        /// Its new revision.
        revision: Index,
    },
    /// A delete, and whether the key was there.
    Delete {
        /// The key.
        key: String,
        /// Whether it existed.
        deleted: bool,
    },
    /// A get, and what it found.
    Get {
        /// The key.
        key: String,
        /// Its value (UTF-8, lossily) and revision, if present.
        value: Option<String>,
        /// Its revision (0 if absent).
        revision: Index,
    },
}

/// What applying a [`Command`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The key was written, at this revision.
    Written {
        /// The key's new revision.
        revision: Index,
    },
    /// The key was removed (by the entry at `revision`).
    Deleted {
        /// The index of the entry that removed it.
        revision: Index,
    },
    /// The key to delete was absent.
    NotFound,
    /// A compare-and-set found something else; nothing changed.
    CasFailed {
        /// What the key holds (`None`: absent).
        current: Option<Versioned>,
    },
    /// A transaction ran; `succeeded` says which branch.
    Txn {
        /// The index of the entry the transaction was applied at.
        revision: Index,
        /// Whether every comparison held.
        succeeded: bool,
        /// The results of the branch's operations, in order.
        results: Vec<TxnOpResult>,
    },
    /// A backup was loaded.
    Restored {
        /// How many keys it held.
        keys: u64,
        /// The revision they all have now.
        revision: Index,
    },
    /// A backup was not loaded: the map is not empty, or the backup is
    /// damaged (`reason` says which).
    RestoreRefused {
        /// Why.
        reason: String,
    },
    /// The request is older than the latest one of its session: its
    /// outcome is no longer known, and it was not applied again.
    StaleRequest {
        /// The session's latest request number.
        latest: u64,
    },
    /// A retry of a request that was applied once, at `revision`, whose
    /// outcome was larger than a session keeps ([`MAX_KEPT_OUTCOME_BYTES`]):
    /// it was not applied again, and only this much of its outcome is known.
    ResultNotKept {
        /// The index of the entry the request was applied at.
        revision: Index,
        /// Whether its comparison held (a transaction's branch, or a
        /// compare-and-set that changed the key); `false` for a failed one.
        succeeded: bool,
    },
}

impl Outcome {
    /// How many bytes of keys and values the outcome holds.
    fn payload_bytes(&self) -> usize {
        match self {
            Outcome::CasFailed { current } => current.as_ref().map_or(0, |v| v.value.len()),
            Outcome::Txn { results, .. } => results
                .iter()
                .map(|r| match r {
                    TxnOpResult::Put { key, .. } | TxnOpResult::Delete { key, .. } => key.len(),
                    TxnOpResult::Get { key, value, .. } => key.len() + value.as_ref().map_or(0, String::len),
                })
                .sum(),
            _ => 0,
        }
    }

    /// What a session keeps of this outcome, applied at `index`, for a retry:
    /// all of it, unless it is over [`MAX_KEPT_OUTCOME_BYTES`].
    fn kept_for_retry(&self, index: Index) -> Outcome {
        if self.payload_bytes() <= MAX_KEPT_OUTCOME_BYTES {
            return self.clone();
        }
        let succeeded = match self {
            Outcome::Txn { succeeded, .. } => *succeeded,
            _ => false,
        };
        Outcome::ResultNotKept { revision: index, succeeded }
    }
}

/// A client's session: its latest request and that request's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    seq: u64,
    outcome: Outcome,
    last_used: Index,
}

/// The key-value map and client sessions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KvState {
    map: BTreeMap<String, Versioned>,
    sessions: BTreeMap<String, Session>,
    /// Sessions by last use, oldest first, for deterministic expiry.
    by_use: BTreeSet<(Index, String)>,
    applied: LogId,
    session_ttl: u64,
    max_sessions: usize,
}

impl KvState {
    /// An empty map, with the default session limits.
    pub fn new() -> Self {
        Self::with_session_limits(SESSION_TTL_ENTRIES, MAX_SESSIONS)
    }

    /// An empty map whose sessions expire after `ttl` entries unused, at most
    /// `max` kept. Every replica must use the same limits.
    pub fn with_session_limits(ttl: u64, max: usize) -> Self {
        Self { session_ttl: ttl, max_sessions: max.max(1), ..Self::default() }
    }

    /// The key's value and revision.
    pub fn get(&self, key: &str) -> Option<&Versioned> {
        self.map.get(key)
    }

    /// Up to `limit` keys starting with `prefix` and after `after` (exclusive),
    /// in order, and whether more follow.
    pub fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> (Vec<(String, Versioned)>, bool) {
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        let mut keys = self.map.range((start, Bound::Unbounded)).take_while(|(k, _)| k.starts_with(prefix));
        let page: Vec<_> = keys.by_ref().take(limit).map(|(k, v)| (k.clone(), v.clone())).collect();
        let more = keys.next().is_some();
        (page, more)
    }

    /// How many keys the map holds.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// How many client sessions are kept.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The last entry applied to this state.
    pub fn applied(&self) -> LogId {
        self.applied
    }

    /// Applies `command`, the entry at `entry`.
    pub fn apply_command(&mut self, entry: LogId, command: Command) -> Outcome {
        self.applied = entry;
        self.expire_sessions(entry.index);
        let Some(request) = command.request else {
            return self.apply_op(entry.index, command.op);
        };
        if let Some(session) = self.sessions.get(&request.client) {
            if request.seq == session.seq {
                let outcome = session.outcome.clone();
                self.touch(&request.client, entry.index);
                return outcome;
            }
            if request.seq < session.seq {
                return Outcome::StaleRequest { latest: session.seq };
            }
        }
        let outcome = self.apply_op(entry.index, command.op);
        let old = self.sessions.insert(
            request.client.clone(),
            Session {
                seq: request.seq,
                outcome: outcome.kept_for_retry(entry.index),
                last_used: entry.index,
            },
        );
        if let Some(old) = old {
            self.by_use.remove(&(old.last_used, request.client.clone()));
        }
        self.by_use.insert((entry.index, request.client));
        while self.sessions.len() > self.max_sessions {
            self.evict_oldest();
        }
        outcome
    }

    fn touch(&mut self, client: &str, index: Index) {
        if let Some(session) = self.sessions.get_mut(client) {
            self.by_use.remove(&(session.last_used, client.to_string()));
            session.last_used = index;
            self.by_use.insert((index, client.to_string()));
        }
    }

    fn expire_sessions(&mut self, index: Index) {
        while let Some((last_used, _)) = self.by_use.first() {
            if last_used.saturating_add(self.session_ttl) >= index {
                break;
            }
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        if let Some((_, client)) = self.by_use.pop_first() {
            self.sessions.remove(&client);
        }
    }

    fn apply_op(&mut self, index: Index, op: Op) -> Outcome {
        match op {
            Op::Put { key, value, if_revision } => {
                let current = self.map.get(&key);
                if let Some(expected) = if_revision {
                    if current.map_or(0, |v| v.revision) != expected {
                        return Outcome::CasFailed { current: current.cloned() };
                    }
                }
                self.map.insert(key, Versioned { value, revision: index });
                Outcome::Written { revision: index }
            }
            Op::Delete { key } => match self.map.remove(&key) {
                Some(_) => Outcome::Deleted { revision: index },
                None => Outcome::NotFound,
            },
            Op::Cas { key, expected, new } => {
                let current = self.map.get(&key);
                if current.map(|v| &v.value) != expected.as_ref() {
                    return Outcome::CasFailed { current: current.cloned() };
                }
                match new {
                    Some(value) => {
                        self.map.insert(key, Versioned { value, revision: index });
                        Outcome::Written { revision: index }
                    }
                    None => {
                        self.map.remove(&key);
                        Outcome::Deleted { revision: index }
                    }
                }
            }
            Op::Txn(txn) => self.apply_txn(index, txn),
            Op::Restore(backup) => self.apply_restore(index, &backup),
        }
    }

    fn apply_restore(&mut self, index: Index, backup: &[u8]) -> Outcome {
        if !self.map.is_empty() {
            let reason = format!("the map holds {} keys; restore into a new cluster", self.map.len());
            return Outcome::RestoreRefused { reason };
        }
        let mut loaded = KvState::new();
        if let Err(error) = loaded.restore_snapshot(backup) {
            return Outcome::RestoreRefused { reason: error.to_string() };
        }
        self.map =
            loaded.map.into_iter().map(|(k, v)| (k, Versioned { value: v.value, revision: index })).collect();
        Outcome::Restored { keys: self.map.len() as u64, revision: index }
    }

    fn holds(&self, compare: &Compare) -> bool {
        let current = self.map.get(&compare.key);
        match &compare.check {
            Check::Value(expected) => {
                current.map(|v| &v.value[..]) == expected.as_ref().map(|s| s.as_bytes())
            }
            Check::Exists(exists) => current.is_some() == *exists,
            Check::Revision { op, value } => {
                let revision = current.map_or(0, |v| v.revision);
                match op {
                    Ordering::Eq => revision == *value,
                    Ordering::Ne => revision != *value,
                    Ordering::Lt => revision < *value,
                    Ordering::Gt => revision > *value,
                }
            }
        }
    }

    fn apply_txn(&mut self, index: Index, txn: Txn) -> Outcome {
        let succeeded = txn.compare.iter().all(|c| self.holds(c));
        let branch = if succeeded { txn.success } else { txn.failure };
        let results = branch
            .into_iter()
            .map(|op| match op {
                TxnOp::Put { key, value } => {
                    self.map.insert(key.clone(), Versioned { value: Bytes::from(value), revision: index });
                    TxnOpResult::Put { key, revision: index }
                }
                TxnOp::Delete { key } => {
                    let deleted = self.map.remove(&key).is_some();
                    TxnOpResult::Delete { key, deleted }
                }
                TxnOp::Get { key } => {
                    let found = self.map.get(&key);
                    let value = found.map(|v| String::from_utf8_lossy(&v.value).into_owned());
                    let revision = found.map_or(0, |v| v.revision);
                    TxnOpResult::Get { key, value, revision }
                }
            })
            .collect();
        Outcome::Txn { revision: index, succeeded, results }
    }
}

/// One record of a snapshot. A snapshot is [`SNAPSHOT_VERSION`], then one
/// record per key and per session, each encoded on its own (so no record
/// is bounded by the size of the whole map), then [`Record::End`] with the
/// counts, so a truncated snapshot is refused rather than half-restored.
#[derive(Debug, Serialize, Deserialize)]
enum Record {
    Applied(LogId),
    Key(String, Versioned),
    Session(String, Session),
    End { keys: u64, sessions: u64 },
}

/// The first byte of every snapshot: its format.
pub const SNAPSHOT_VERSION: u8 = 1;

impl KvState {
    /// Encodes the state as a snapshot: [`SNAPSHOT_VERSION`], then one
    /// record per key and per session, then a record with their counts;
    /// written record by record into pieces (see [`SnapshotData`]), never
    /// into one buffer of the whole map.
    pub fn encode_snapshot(&self) -> Result<SnapshotData, raft_core::codec::CodecError> {
        use raft_core::codec::encode_to_writer;
        let mut out = SnapshotData::writer();
        encode_to_writer(&SNAPSHOT_VERSION, &mut out)?;
        encode_to_writer(&RecordRef::Applied(self.applied), &mut out)?;
        for (key, value) in &self.map {
            encode_to_writer(&RecordRef::Key(key, value), &mut out)?;
        }
        for (client, session) in &self.sessions {
            encode_to_writer(&RecordRef::Session(client, session), &mut out)?;
        }
        let end = Record::End { keys: self.map.len() as u64, sessions: self.sessions.len() as u64 };
        encode_to_writer(&end, &mut out)?;
        Ok(out.finish())
    }

    /// Replaces the state with the snapshot `snapshot` reads (record by
    /// record: a snapshot's [`SnapshotData::reader`], a backup file, a
    /// slice), keeping the session limits. Nothing changes unless the whole
    /// snapshot is valid.
    pub fn restore_snapshot(&mut self, mut snapshot: impl Read) -> Result<(), RestoreError> {
        let fail = |what: String| RestoreError(what);
        let mut version = [0u8; 1];
        match snapshot.read(&mut version) {
            // The runtime's empty snapshot: nothing applied yet.
            Ok(0) => {
                *self = Self::with_session_limits(self.session_ttl, self.max_sessions);
                return Ok(());
            }
            Ok(_) => {}
            Err(e) => return Err(fail(format!("cannot read the snapshot: {e}"))),
        }
        if version[0] != SNAPSHOT_VERSION {
            return Err(fail(format!("snapshot format {}, this build reads {SNAPSHOT_VERSION}", version[0])));
        }
        let mut state = Self::with_session_limits(self.session_ttl, self.max_sessions);
        loop {
            let record = raft_core::codec::decode_from_reader::<Record, _>(&mut snapshot)
                .map_err(|e| fail(format!("bad record: {e}")))?;
            match record {
                Record::Applied(applied) => state.applied = applied,
                Record::Key(key, value) => {
                    state.map.insert(key, value);
                }
                Record::Session(client, session) => {
                    state.by_use.insert((session.last_used, client.clone()));
                    state.sessions.insert(client, session);
                }
                Record::End { keys, sessions } => {
                    let at_end = matches!(snapshot.read(&mut [0u8; 1]), Ok(0));
                    if keys != state.map.len() as u64 || sessions != state.sessions.len() as u64 || !at_end {
                        return Err(fail("snapshot counts or length do not match its records".into()));
                    }
                    *self = state;
                    return Ok(());
                }
            }
        }
    }
}

/// [`Record`] borrowing its contents, for encoding without copies (the same
/// encoding: serde encodes variants by index, and references as values).
#[derive(Serialize)]
enum RecordRef<'a> {
    Applied(LogId),
    Key(&'a str, &'a Versioned),
    Session(&'a str, &'a Session),
}

impl StateMachine for KvState {
    type Command = Command;
    type Response = Outcome;

    fn apply(&mut self, entry: LogId, command: Command) -> Outcome {
        self.apply_command(entry, command)
    }

    fn snapshot(&self) -> SnapshotData {
        // Encoding plain data into memory fails only past the codec's
        // per-value limit, which the API's key and value limits keep far off;
        // the snapshot below (format 0) would then be refused by `restore`
        // of any replica, so say so loudly.
        match self.encode_snapshot() {
            Ok(data) => data,
            Err(error) => {
                tracing::error!(%error, "cannot encode the snapshot");
                SnapshotData::from(&[0u8][..])
            }
        }
    }

    fn restore(&mut self, snapshot: &SnapshotData) -> Result<(), RestoreError> {
        self.restore_snapshot(snapshot.reader())
    }
}

#[cfg(test)]
mod tests;
