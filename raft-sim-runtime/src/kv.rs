//! The simulated state machine, a map of `u64` registers written by puts,
//! and the [`Recorder`] that checks State Machine Safety across every node
//! and every incarnation of a node as they apply.

use raft_core::runtime::{RestoreError, StateMachine};
use raft_core::{Index, LogId, NodeId, SnapshotData, Term};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A client's command: set `key` to `value` (values are unique in a run, so
/// a value names the put that wrote it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Put {
    /// The register written.
    pub key: u64,
    /// The value written.
    pub value: u64,
}

/// The registers of one incarnation of one node.
pub struct SimKv {
    node: NodeId,
    incarnation: u32,
    data: BTreeMap<u64, u64>,
    /// The index of the last command applied (or restored).
    last: Index,
    recorder: Recorder,
}

impl SimKv {
    /// An empty state machine for incarnation `incarnation` of `node`.
    pub fn new(node: NodeId, incarnation: u32, recorder: Recorder) -> Self {
        Self { node, incarnation, data: BTreeMap::new(), last: 0, recorder }
    }

    /// The value of `key`.
    pub fn get(&self, key: u64) -> Option<u64> {
        self.data.get(&key).copied()
    }

    /// The index of the last command applied (or restored from a snapshot).
    pub fn last(&self) -> Index {
        self.last
    }

    /// Every register.
    pub fn registers(&self) -> &BTreeMap<u64, u64> {
        &self.data
    }
}

/// How long the pieces of this state machine's snapshots are.
const SNAPSHOT_PIECE_BYTES: usize = 64;

impl StateMachine for SimKv {
    type Command = Put;
    /// The index the put was applied at.
    type Response = Index;

    fn apply(&mut self, entry: LogId, put: Put) -> Index {
        self.recorder.applied(self.node, self.incarnation, entry, put);
        self.data.insert(put.key, put.value);
        self.last = entry.index;
        entry.index
    }

    fn snapshot(&self) -> SnapshotData {
        let pairs: Vec<(u64, u64)> = self.data.iter().map(|(&k, &v)| (k, v)).collect();
        // Encoding plain integers cannot fail.
        let bytes = bytes::Bytes::from(raft_core::codec::encode(&(self.last, pairs)).unwrap_or_default());
        // Small pieces, so that snapshots cross the runtime in several
        // chunks cut at piece boundaries, as a large state machine's do.
        let mut data = SnapshotData::new();
        for at in (0..bytes.len()).step_by(SNAPSHOT_PIECE_BYTES) {
            data.push(bytes.slice(at..(at + SNAPSHOT_PIECE_BYTES).min(bytes.len())));
        }
        data
    }

    fn restore(&mut self, snapshot: &SnapshotData) -> Result<(), RestoreError> {
        let mut reader = snapshot.reader();
        let (last, pairs): (Index, Vec<(u64, u64)>) =
            raft_core::codec::decode_from_reader(&mut reader).map_err(|e| RestoreError(e.to_string()))?;
        if std::io::Read::read(&mut reader, &mut [0u8; 1]).map_or(true, |n| n != 0) {
            return Err(RestoreError("bytes left over after the snapshot".into()));
        }
        self.data = pairs.into_iter().collect();
        self.last = last;
        self.recorder.restored(self.node, self.incarnation, last);
        self.recorder.check_state(self.node, last, &self.data, "restored from a snapshot");
        Ok(())
    }
}

/// What every node applied, merged into one history by index, and every
/// disagreement with it. Cheap to clone; clones share the record.
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<Mutex<Record>>,
}

#[derive(Default)]
struct Record {
    /// The one history: the command applied at each index, and its term.
    history: BTreeMap<Index, (Term, Put)>,
    /// The last index each incarnation of each node applied or restored.
    last: BTreeMap<(NodeId, u32), Index>,
    violations: Vec<String>,
    applies: u64,
}

impl Recorder {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Record> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that `node` (incarnation `incarnation`) applied `put` at
    /// `entry`: it must agree with whatever any node applied there, and come
    /// after what this incarnation applied before.
    fn applied(&self, node: NodeId, incarnation: u32, entry: LogId, put: Put) {
        let mut record = self.lock();
        record.applies += 1;
        let before = record.last.insert((node, incarnation), entry.index).unwrap_or(0);
        if entry.index <= before {
            let violation = format!(
                "node {node} (incarnation {incarnation}) applied index {} after index {before}",
                entry.index
            );
            record.violations.push(violation);
        }
        match record.history.get(&entry.index) {
            Some(&(term, first)) if (term, first) != (entry.term, put) => {
                let violation = format!(
                    "state machine safety: node {node} applied {put:?} of term {} at index {}, \
                     where {first:?} of term {term} was applied",
                    entry.term, entry.index
                );
                record.violations.push(violation);
            }
            Some(_) => {}
            None => {
                record.history.insert(entry.index, (entry.term, put));
            }
        }
    }

    fn restored(&self, node: NodeId, incarnation: u32, last: Index) {
        self.lock().last.insert((node, incarnation), last);
    }

    /// Checks that `data`, a node's registers as of command index `last`,
    /// equal the one history replayed up to `last`.
    pub fn check_state(&self, node: NodeId, last: Index, data: &BTreeMap<u64, u64>, when: &str) {
        let mut record = self.lock();
        let replayed = replay(&record.history, last);
        if &replayed != data {
            let violation = format!(
                "node {node}'s registers {when} at index {last} are {data:?}, \
                 but the applied history gives {replayed:?}"
            );
            record.violations.push(violation);
        }
    }

    /// The registers the one history gives up to index `last`.
    pub fn replayed(&self, last: Index) -> BTreeMap<u64, u64> {
        replay(&self.lock().history, last)
    }

    /// Every put some node applied.
    pub fn applied_puts(&self) -> std::collections::BTreeSet<Put> {
        self.lock().history.values().map(|&(_, put)| put).collect()
    }

    /// The one history, as (index, term, put).
    pub fn history(&self) -> Vec<(Index, Term, Put)> {
        self.lock().history.iter().map(|(&i, &(t, p))| (i, t, p)).collect()
    }

    /// How many entries were applied, summed over nodes.
    pub fn applies(&self) -> u64 {
        self.lock().applies
    }

    /// Every disagreement seen.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }
}

fn replay(history: &BTreeMap<Index, (Term, Put)>, last: Index) -> BTreeMap<u64, u64> {
    let mut data = BTreeMap::new();
    for (_, (_, put)) in history.range(..=last) {
        data.insert(put.key, put.value);
    }
    data
}
