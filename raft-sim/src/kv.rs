//! The simulated nodes' state machine: a store of `u64` registers, written by
//! `put` commands in the log and read by linearizable or stale reads.
//!
//! Snapshots of the same state differ byte for byte from node to node, as
//! those of a real state machine do (hash-map order, compression, padding):
//! each node writes its registers in its own order after a padding of its
//! own length, and every encoding restores to the same state. A node that
//! assembles one snapshot from chunks of two encodings gets bytes that do
//! not decode or decode to the wrong state, which the checkers see.

use bytes::Bytes;
use raft_core::{Entry, EntryPayload, Index, NodeId, SnapshotData};
use std::collections::BTreeMap;

const PUT: &[u8; 3] = b"put";

/// A command that sets `key` to `value`.
pub fn put(key: u64, value: u64) -> Bytes {
    Bytes::from([&PUT[..], &key.to_be_bytes(), &value.to_be_bytes()].concat())
}

/// The key and value of a put command, if `command` is one.
pub fn decode_put(command: &[u8]) -> Option<(u64, u64)> {
    let rest = command.strip_prefix(PUT)?;
    let (key, value) = rest.split_at_checked(8)?;
    Some((u64::from_be_bytes(key.try_into().ok()?), u64::from_be_bytes(value.try_into().ok()?)))
}

/// Registers, and how far the log has been applied to them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KvStore {
    data: BTreeMap<u64, u64>,
    applied: Index,
}

impl KvStore {
    /// Applies one committed entry; entries that are not puts change nothing
    /// but the applied index.
    pub fn apply(&mut self, entry: &Entry) {
        if let EntryPayload::Command(command) = &entry.payload {
            if let Some((key, value)) = decode_put(command) {
                self.data.insert(key, value);
            }
        }
        self.applied = entry.index;
    }

    /// The value of `key`.
    pub fn get(&self, key: u64) -> Option<u64> {
        self.data.get(&key).copied()
    }

    /// The last index applied.
    pub fn applied(&self) -> Index {
        self.applied
    }

    /// The store as node `node` encodes it in a snapshot: the applied
    /// index, `node % 8` bytes of padding (their count first), then the
    /// registers in an order of the node's own; cut into pieces of a length
    /// of the node's own (7 to 22 bytes), so that chunks join pieces or
    /// end within one, and followers gather pieces unlike the leader's.
    pub fn encode_for(&self, node: NodeId) -> SnapshotData {
        let mut out = self.applied.to_be_bytes().to_vec();
        let padding = (node % 8) as u8;
        out.push(padding);
        out.extend(std::iter::repeat_n(0xA5, usize::from(padding)));
        let mut pairs: Vec<(&u64, &u64)> = self.data.iter().collect();
        // An odd multiplier permutes the keys differently for each node.
        pairs.sort_by_key(|(key, _)| key.wrapping_mul(node.wrapping_mul(2).wrapping_add(1)) ^ node);
        for (key, value) in pairs {
            out.extend_from_slice(&key.to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
        }
        pieces_for(node, out)
    }

    /// The store as snapshot bytes in one canonical encoding: no padding,
    /// registers in ascending key order (what [`KvStore::encode_for`] gives
    /// node 0).
    pub fn encode(&self) -> SnapshotData {
        self.encode_for(0)
    }

    /// The store as snapshot bytes, its pairs in descending key order: a
    /// second valid encoding of the same state, as a state machine that
    /// encodes a hash map produces different bytes for the same state on
    /// different nodes. [`KvStore::restore`] reads either.
    pub fn encode_descending(&self) -> SnapshotData {
        let mut out = self.applied.to_be_bytes().to_vec();
        out.push(0); // no padding
        for (key, value) in self.data.iter().rev() {
            out.extend_from_slice(&key.to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
        }
        Bytes::from(out).into()
    }

    /// A store restored from any node's snapshot; `None` if it is
    /// malformed (a register twice is: no encoding writes one). The model's
    /// snapshots are small, so it joins the pieces.
    pub fn restore(data: &SnapshotData) -> Option<Self> {
        Self::restore_bytes(&data.to_vec())
    }

    fn restore_bytes(bytes: &[u8]) -> Option<Self> {
        let (applied, rest) = bytes.split_at_checked(8)?;
        let (&padding, rest) = rest.split_first()?;
        let (_, mut rest) = rest.split_at_checked(usize::from(padding))?;
        let mut store = Self { data: BTreeMap::new(), applied: u64::from_be_bytes(applied.try_into().ok()?) };
        while !rest.is_empty() {
            let (pair, tail) = rest.split_at_checked(16)?;
            let (key, value) = pair.split_at(8);
            let key = u64::from_be_bytes(key.try_into().ok()?);
            if store.data.insert(key, u64::from_be_bytes(value.try_into().ok()?)).is_some() {
                return None;
            }
            rest = tail;
        }
        Some(store)
    }

    /// A fingerprint of the state, to compare nodes' states at an index.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut hasher);
        hasher.finish()
    }
}

/// `bytes` cut into pieces of `7 + 5 * (node % 4)` bytes: small enough that
/// every snapshot of the model has several, different for neighbouring
/// nodes, and never a multiple of the configured chunk size, so chunks both
/// join pieces and end inside them.
fn pieces_for(node: NodeId, bytes: Vec<u8>) -> SnapshotData {
    let bytes = Bytes::from(bytes);
    let piece = 7 + 5 * (node % 4) as usize;
    let mut data = SnapshotData::new();
    let mut at = 0;
    while at < bytes.len() {
        let end = (at + piece).min(bytes.len());
        data.push(bytes.slice(at..end));
        at = end;
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_round_trip_and_other_commands_are_ignored() {
        assert_eq!(decode_put(&put(3, 7)), Some((3, 7)));
        assert_eq!(decode_put(b"probe"), None);
        assert_eq!(decode_put(b"put1234"), None);
        let mut kv = KvStore::default();
        kv.apply(&Entry { index: 1, term: 1, payload: EntryPayload::Command(put(3, 7)) });
        kv.apply(&Entry { index: 2, term: 1, payload: EntryPayload::Command(Bytes::from_static(b"x")) });
        assert_eq!((kv.get(3), kv.get(4), kv.applied()), (Some(7), None, 2));
        assert_eq!(KvStore::restore(&kv.encode_for(1)), Some(kv.clone()));
        assert_eq!(KvStore::restore(&kv.encode()), Some(kv.clone()));
        assert_eq!(KvStore::restore(&kv.encode_descending()), Some(kv));
        assert_eq!(KvStore::restore(&SnapshotData::from(&b"short"[..])), None);
    }

    #[test]
    fn every_node_encodes_the_same_state_differently_and_each_restores_it() {
        let mut kv = KvStore::default();
        for (index, key) in [5u64, 1, 9, 2].into_iter().enumerate() {
            let entry = Entry {
                index: index as u64 + 1,
                term: 1,
                payload: EntryPayload::Command(put(key, key * 10)),
            };
            kv.apply(&entry);
        }
        let encodings: Vec<SnapshotData> = (1..=5).map(|node| kv.encode_for(node)).collect();
        for (i, data) in encodings.iter().enumerate() {
            assert!(data.pieces().len() > 2, "node {} cuts its snapshot into pieces", i + 1);
            assert_eq!(KvStore::restore(data).as_ref(), Some(&kv), "node {}", i + 1);
        }
        let encodings: Vec<Vec<u8>> = encodings.iter().map(SnapshotData::to_vec).collect();
        for (i, bytes) in encodings.iter().enumerate() {
            assert!(encodings[..i].iter().all(|other| other != bytes), "node {} repeats an encoding", i + 1);
        }
        // Chunks of two encodings spliced past their common prefix never
        // restore to the state.
        let common = encodings[0].iter().zip(encodings[1].iter()).take_while(|(a, b)| a == b).count();
        for cut in common + 1..encodings[0].len().min(encodings[1].len()) {
            let spliced = [&encodings[0][..cut], &encodings[1][cut..]].concat();
            assert_ne!(KvStore::restore(&spliced.into()).as_ref(), Some(&kv), "cut at {cut}");
        }
    }
}
