//! Snapshot files: written atomically beside the database, checked before
//! they are loaded.
//!
//! A file is written under a temporary name, synced, renamed to its final
//! name, and the directory synced; only then may a database batch refer to
//! it (by a [`SnapshotRecord`]). A crash at any point leaves either a
//! `.tmp` file or a complete file nothing refers to, both removed at the
//! next open, so a half-written snapshot is never loaded. The file carries
//! a CRC-32 of its contents, checked on every load: a file damaged after it
//! was written is a [`StorageError::Corrupt`], not a wrong state machine.
//! The state machine's bytes are written piece by piece and read back in
//! pieces of [`SnapshotData::PIECE_BYTES`], never as one buffer.
//!
//! File layout (integers little-endian):
//!
//! ```text
//! magic "RAFTSNAP" | version u8 | meta_len u32 | data_len u64 | crc32 u32
//! | meta (SnapshotMeta, project codec) | data (the state machine's bytes)
//! ```

use crate::layout::SnapshotRecord;
use bytes::BytesMut;
use raft_core::{codec, Snapshot, SnapshotData, SnapshotMeta, StorageError};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const MAGIC: &[u8; 8] = b"RAFTSNAP";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 8 + 1 + 4 + 8 + 4;
const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".snap";
const TEMP_SUFFIX: &str = ".tmp";

/// The directory of snapshot files.
#[derive(Debug)]
pub(crate) struct SnapshotDir {
    path: PathBuf,
    /// Makes every file name new, so a rename never replaces a live file.
    next_nonce: AtomicU64,
}

impl SnapshotDir {
    /// Opens (creating) the directory.
    pub(crate) fn open(path: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&path)?;
        let mut next_nonce = 0;
        for entry in fs::read_dir(&path)? {
            let name = entry?.file_name();
            if let Some(nonce) = name.to_str().and_then(parse_name).map(|(_, _, nonce)| nonce) {
                next_nonce = next_nonce.max(nonce.saturating_add(1));
            }
        }
        Ok(Self { path, next_nonce: AtomicU64::new(next_nonce) })
    }

    /// Writes `snapshot` durably to a new file and returns the record that
    /// refers to it.
    pub(crate) fn write(&self, snapshot: &Snapshot) -> Result<SnapshotRecord, StorageError> {
        let meta = crate::layout::encode(&snapshot.meta)?;
        let meta_len = u32::try_from(meta.len())
            .map_err(|_| StorageError::Io(io::Error::other("snapshot metadata over 4 GiB")))?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&meta);
        for piece in snapshot.data.pieces() {
            hasher.update(piece);
        }
        let crc = hasher.finalize();

        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.push(VERSION);
        header.extend_from_slice(&meta_len.to_le_bytes());
        header.extend_from_slice(&snapshot.data.len().to_le_bytes());
        header.extend_from_slice(&crc.to_le_bytes());

        let last = snapshot.meta.last;
        let nonce = self.next_nonce.fetch_add(1, Ordering::Relaxed);
        let file = format!("{PREFIX}{:020}-{:020}-{nonce:020}{SUFFIX}", last.index, last.term);
        let final_path = self.path.join(&file);
        let temp_path = self.path.join(format!("{file}{TEMP_SUFFIX}"));
        let written = (|| {
            let mut out = File::create(&temp_path)?;
            out.write_all(&header)?;
            out.write_all(&meta)?;
            for piece in snapshot.data.pieces() {
                out.write_all(piece)?;
            }
            out.sync_all()?;
            drop(out);
            fs::rename(&temp_path, &final_path)?;
            sync_dir(&self.path)
        })();
        if let Err(error) = written {
            let _ = fs::remove_file(&temp_path);
            let _ = fs::remove_file(&final_path);
            return Err(error.into());
        }
        let len = (HEADER_LEN + meta.len()) as u64 + snapshot.data.len();
        Ok(SnapshotRecord { last, file, len, crc })
    }

    /// Reads and checks the file `record` refers to.
    pub(crate) fn read(&self, record: &SnapshotRecord) -> Result<Snapshot, StorageError> {
        let corrupt = |why: String| StorageError::Corrupt(format!("snapshot file {}: {why}", record.file));
        if parse_name(&record.file).is_none() {
            return Err(corrupt("not a snapshot file name".into()));
        }
        let mut file = match File::open(self.path.join(&record.file)) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(corrupt("missing, though the store refers to it".into()))
            }
            Err(e) => return Err(e.into()),
        };
        let file_len = file.metadata()?.len();
        if file_len != record.len {
            return Err(corrupt(format!("{file_len} bytes, expected {}", record.len)));
        }
        let mut header = [0u8; HEADER_LEN];
        file.read_exact(&mut header).map_err(|e| corrupt(format!("no header: {e}")))?;
        if &header[..8] != MAGIC {
            return Err(corrupt("bad magic".into()));
        }
        if header[8] != VERSION {
            return Err(corrupt(format!("unknown file version {}", header[8])));
        }
        let field = |range: std::ops::Range<usize>| header.get(range).unwrap_or_default();
        let meta_len = u32::from_le_bytes(field(9..13).try_into().unwrap_or_default()) as u64;
        let data_len = u64::from_le_bytes(field(13..21).try_into().unwrap_or_default());
        let crc = u32::from_le_bytes(field(21..25).try_into().unwrap_or_default());
        if Some(file_len) != (HEADER_LEN as u64).checked_add(meta_len).and_then(|n| n.checked_add(data_len)) {
            return Err(corrupt("lengths do not match the file".into()));
        }
        // The file's length matched the record's and the header's sums, so
        // `meta_len` is no more than the file holds.
        let mut meta = vec![0u8; meta_len as usize];
        file.read_exact(&mut meta)?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&meta);
        let mut data = SnapshotData::new();
        let mut left = data_len;
        while left > 0 {
            let mut piece = BytesMut::zeroed(left.min(SnapshotData::PIECE_BYTES as u64) as usize);
            file.read_exact(&mut piece)?;
            hasher.update(&piece);
            left -= piece.len() as u64;
            data.push(piece.freeze());
        }
        if crc != record.crc || hasher.finalize() != crc {
            return Err(corrupt("checksum mismatch".into()));
        }
        let meta: SnapshotMeta = codec::decode(&meta).map_err(|e| corrupt(e.to_string()))?;
        if meta.last != record.last {
            return Err(corrupt(format!("covers {:?}, the store expected {:?}", meta.last, record.last)));
        }
        Ok(Snapshot { meta, data })
    }

    /// Removes a file no record refers to any more. A failure leaves the file
    /// for the next open's clean-up.
    pub(crate) fn remove(&self, file: &str) {
        if parse_name(file).is_some() {
            let _ = fs::remove_file(self.path.join(file));
        }
    }

    /// Removes temporary files and snapshot files other than `keep`: what a
    /// crash left behind, or a superseded file whose removal was lost.
    pub(crate) fn clean(&self, keep: Option<&str>) -> io::Result<()> {
        for entry in fs::read_dir(&self.path)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            let ours = name.starts_with(PREFIX) && (name.ends_with(TEMP_SUFFIX) || name.ends_with(SUFFIX));
            if ours && Some(name) != keep {
                fs::remove_file(self.path.join(name))?;
            }
        }
        Ok(())
    }
}

/// The index, term and nonce a final snapshot file name carries.
fn parse_name(name: &str) -> Option<(u64, u64, u64)> {
    let stem = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let mut parts = stem.split('-').map(|part| part.parse::<u64>().ok());
    let parsed = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(parsed)
}

/// Makes a directory's entries (a rename, a new file) durable.
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use raft_core::{LogId, Membership};

    #[test]
    fn a_snapshot_of_many_pieces_is_read_back_in_pieces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let snapshots = SnapshotDir::open(dir.path().join("snapshots")).expect("open");
        let mut data = SnapshotData::new();
        for i in 0..5u8 {
            data.push(Bytes::from(vec![i; 700_000]));
        }
        let meta = SnapshotMeta { last: LogId::new(3, 9), membership: Membership::new([1], []) };
        let snapshot = Snapshot { meta, data };
        let back = snapshots.read(&snapshots.write(&snapshot).expect("write")).expect("read");
        assert_eq!(back, snapshot);
        let sizes: Vec<usize> = back.data.pieces().iter().map(Bytes::len).collect();
        let piece = SnapshotData::PIECE_BYTES;
        assert_eq!(sizes, vec![piece, piece, piece, 3_500_000 - 3 * piece]);
    }

    #[test]
    fn names_parse_back_and_foreign_names_do_not() {
        assert_eq!(
            parse_name("snapshot-00000000000000000007-00000000000000000002-00000000000000000009.snap"),
            Some((7, 2, 9))
        );
        assert_eq!(parse_name("snapshot-7-2-9.snap.tmp"), None);
        assert_eq!(parse_name("../snapshot-7-2-9.snap"), None);
        assert_eq!(parse_name("snapshot-7-2-9-1.snap"), None);
    }

    #[test]
    fn a_file_round_trips_and_every_flipped_byte_is_caught() {
        let dir = tempfile::tempdir().expect("tempdir");
        let snapshots = SnapshotDir::open(dir.path().join("snapshots")).expect("open");
        let snapshot = Snapshot {
            meta: SnapshotMeta { last: LogId::new(2, 7), membership: Membership::new([1, 2], []) },
            data: SnapshotData::from(&b"the state machine"[..]),
        };
        let record = snapshots.write(&snapshot).expect("write");
        assert_eq!(snapshots.read(&record).expect("read"), snapshot);
        let path = dir.path().join("snapshots").join(&record.file);
        let good = fs::read(&path).expect("read file");
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            fs::write(&path, &bad).expect("write file");
            let result = snapshots.read(&record);
            assert!(
                matches!(result, Err(StorageError::Corrupt(_))),
                "a flip at {at} must be caught, got {result:?}"
            );
        }
        fs::write(&path, &good[..good.len() - 1]).expect("truncate");
        assert!(matches!(snapshots.read(&record), Err(StorageError::Corrupt(_))));
    }
}
