//! The simulated nodes' state machine: a store of `u64` registers, written by
//! `put` commands in the log and read by linearizable or stale reads.

use bytes::Bytes;
use raft_core::{Entry, EntryPayload, Index};
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

    /// The store as snapshot bytes.
    pub fn encode(&self) -> Bytes {
        let mut out = self.applied.to_be_bytes().to_vec();
        for (key, value) in &self.data {
            out.extend_from_slice(&key.to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
        }
        Bytes::from(out)
    }

    /// The store as snapshot bytes, its pairs in descending key order: a
    /// second valid encoding of the same state, as a state machine that
    /// encodes a hash map produces different bytes for the same state on
    /// different nodes. [`KvStore::restore`] reads either.
    pub fn encode_descending(&self) -> Bytes {
        let mut out = self.applied.to_be_bytes().to_vec();
        for (key, value) in self.data.iter().rev() {
            out.extend_from_slice(&key.to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
        }
        Bytes::from(out)
    }

    /// A store restored from snapshot bytes; `None` if they are malformed.
    pub fn restore(bytes: &[u8]) -> Option<Self> {
        let (applied, mut rest) = bytes.split_at_checked(8)?;
        let mut store = Self { data: BTreeMap::new(), applied: u64::from_be_bytes(applied.try_into().ok()?) };
        while !rest.is_empty() {
            let (pair, tail) = rest.split_at_checked(16)?;
            let (key, value) = pair.split_at(8);
            store
                .data
                .insert(u64::from_be_bytes(key.try_into().ok()?), u64::from_be_bytes(value.try_into().ok()?));
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
        assert_eq!(KvStore::restore(&kv.encode()), Some(kv.clone()));
        assert_eq!(KvStore::restore(&kv.encode_descending()), Some(kv));
        assert_eq!(KvStore::restore(b"short"), None);
    }
}
