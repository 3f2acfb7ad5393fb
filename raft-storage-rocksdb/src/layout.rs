//! The on-disk layout: the store's directory, its column families, their
//! keys, and the records kept beside the log.
//!
//! ```text
//! <path>/db/          the RocksDB database
//!     raft_meta         magic, format versions, cluster id, the snapshot record
//!     raft_log          index (u64, big-endian) -> Entry (project codec)
//!     raft_hard_state   "hard_state" -> HardState (project codec)
//! <path>/snapshots/   snapshot files (see `snapshot_file`), at most one referenced
//! ```
//!
//! Big-endian keys make RocksDB's bytewise order the log's order, so a range
//! of indexes is a range of keys: one range delete truncates or purges it.

use raft_core::{codec, Index, LogId, StorageError};
use serde::{Deserialize, Serialize};

/// The version of this store's layout. A store records it on first open and
/// a build that finds a newer one refuses to open the store.
pub const STORE_FORMAT_VERSION: u8 = 1;

pub(crate) const DB_DIR: &str = "db";
pub(crate) const SNAPSHOT_DIR: &str = "snapshots";

pub(crate) const META_CF: &str = "raft_meta";
pub(crate) const LOG_CF: &str = "raft_log";
pub(crate) const HARD_STATE_CF: &str = "raft_hard_state";
pub(crate) const COLUMN_FAMILIES: [&str; 3] = [META_CF, LOG_CF, HARD_STATE_CF];

pub(crate) const MAGIC_KEY: &[u8] = b"magic";
pub(crate) const MAGIC: &[u8] = b"raft-storage-rocksdb";
/// Two bytes: [`STORE_FORMAT_VERSION`], then the codec's `FORMAT_VERSION`.
pub(crate) const FORMAT_KEY: &[u8] = b"format_version";
/// A u64, big-endian.
pub(crate) const CLUSTER_KEY: &[u8] = b"cluster_id";
/// A [`SnapshotRecord`], when the store holds a snapshot.
pub(crate) const SNAPSHOT_KEY: &[u8] = b"snapshot";
pub(crate) const HARD_STATE_KEY: &[u8] = b"hard_state";

/// The key of the log entry at `index`.
pub(crate) fn log_key(index: Index) -> [u8; 8] {
    index.to_be_bytes()
}

/// The index a log key names.
pub(crate) fn index_of(key: &[u8]) -> Result<Index, StorageError> {
    <[u8; 8]>::try_from(key)
        .map(Index::from_be_bytes)
        .map_err(|_| StorageError::Corrupt(format!("a log key of {} bytes, not 8", key.len())))
}

/// Which snapshot file the store holds, written in the same batch as the
/// log changes that go with it, and only once the file is durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotRecord {
    /// The last entry the snapshot covers.
    pub(crate) last: LogId,
    /// The file's name inside the snapshot directory.
    pub(crate) file: String,
    /// The file's length in bytes.
    pub(crate) len: u64,
    /// The CRC-32 of the file's metadata and data.
    pub(crate) crc: u32,
}

/// Encodes a value for the database.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    codec::encode(value).map_err(|e| StorageError::Io(std::io::Error::other(e)))
}

/// Decodes a value read back from the database; `what` names it in the error.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StorageError> {
    codec::decode(bytes).map_err(|e| StorageError::Corrupt(format!("{what}: {e}")))
}

/// A RocksDB error as a storage error: RocksDB's corruption is ours.
pub(crate) fn rocks_error(error: rocksdb::Error) -> StorageError {
    match error.kind() {
        rocksdb::ErrorKind::Corruption => StorageError::Corrupt(error.into_string()),
        _ => StorageError::Io(std::io::Error::other(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_index() {
        let indexes = [0, 1, 255, 256, 65_535, 1 << 40, u64::MAX];
        for pair in indexes.windows(2) {
            assert!(log_key(pair[0]) < log_key(pair[1]), "{} must sort before {}", pair[0], pair[1]);
        }
        assert_eq!(index_of(&log_key(1 << 40)).ok(), Some(1 << 40));
        assert!(matches!(index_of(b"short"), Err(StorageError::Corrupt(_))));
    }
}
