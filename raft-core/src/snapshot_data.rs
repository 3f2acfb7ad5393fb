//! A snapshot's bytes, held as a sequence of pieces rather than one buffer.
//!
//! A state machine of gigabytes must not need a gigabyte of contiguous
//! memory to snapshot itself, nor a follower to receive one. So a snapshot
//! is written piece by piece through a [`SnapshotWriter`] (an
//! [`std::io::Write`] that cuts a piece every [`SnapshotData::PIECE_BYTES`]),
//! stored piece by piece, sent as chunks that each lie within one piece
//! (slices, never copies), gathered by a follower as the chunks it received
//! (without copying, but for chunks too short to be worth a piece each), and
//! read back through a [`SnapshotReader`] (an
//! [`std::io::Read`]). Nowhere between the state machine and its replica do
//! the pieces join.
//!
//! Two `SnapshotData` are equal when their bytes are, wherever their pieces
//! are cut: a leader's pieces and the chunks its follower gathered hold the
//! same bytes in different pieces.

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::io;

/// The bytes of a snapshot, in pieces. Cloning shares the pieces.
#[derive(Clone, Default)]
pub struct SnapshotData {
    /// The pieces, in order; none is empty.
    pieces: Vec<Bytes>,
    /// Where each piece starts, so that a chunk is found without a scan.
    starts: Vec<u64>,
    /// The sum of the pieces' lengths.
    len: u64,
}

impl SnapshotData {
    /// How long a [`SnapshotWriter`] lets a piece grow (1 MiB): large enough
    /// that a piece costs little bookkeeping, small enough that no piece is a
    /// burden to allocate or to hold twice.
    pub const PIECE_BYTES: usize = 1 << 20;

    /// No bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer that builds a `SnapshotData` piece by piece.
    pub fn writer() -> SnapshotWriter {
        SnapshotWriter::default()
    }

    /// Appends a piece (an empty one is dropped).
    pub fn push(&mut self, piece: Bytes) {
        if !piece.is_empty() {
            self.starts.push(self.len);
            self.len += piece.len() as u64;
            self.pieces.push(piece);
        }
    }

    /// The number of bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces, in order, none of them empty.
    pub fn pieces(&self) -> &[Bytes] {
        &self.pieces
    }

    /// A reader over the bytes, from the start.
    pub fn reader(&self) -> SnapshotReader<'_> {
        SnapshotReader { pieces: &self.pieces, at: 0 }
    }

    /// The bytes from `offset` on, at most `max` of them (fewer only at the
    /// end; empty at or past it): a slice of the piece `offset` falls in when
    /// they fit in it, not a copy; a copy joining the following pieces when
    /// they do not, so that a snapshot of many small pieces still travels in
    /// chunks of `max`. Found by a binary search over the pieces.
    pub fn slice(&self, offset: u64, max: u64) -> Bytes {
        if offset >= self.len || max == 0 {
            return Bytes::new();
        }
        let want = max.min(self.len - offset);
        // The last piece starting at or before `offset` (the first starts at 0).
        let mut at = self.starts.partition_point(|&start| start <= offset) - 1;
        let mut from = (offset - self.starts[at]) as usize;
        let piece = &self.pieces[at];
        if (piece.len() - from) as u64 >= want {
            return piece.slice(from..from + want as usize);
        }
        let mut out = BytesMut::with_capacity(want as usize);
        while (out.len() as u64) < want {
            let piece = &self.pieces[at];
            let take = ((want - out.len() as u64) as usize).min(piece.len() - from);
            out.extend_from_slice(&piece[from..from + take]);
            (at, from) = (at + 1, 0);
        }
        out.freeze()
    }

    /// The CRC-32 (IEEE) of the bytes.
    pub fn crc32(&self) -> u32 {
        let mut hasher = crc32fast::Hasher::new();
        for piece in &self.pieces {
            hasher.update(piece);
        }
        hasher.finalize()
    }

    /// The bytes joined into one buffer: for small snapshots and tests only,
    /// since it is exactly the buffer this type exists to avoid.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len as usize);
        for piece in &self.pieces {
            out.extend_from_slice(piece);
        }
        out
    }
}

impl From<Bytes> for SnapshotData {
    fn from(bytes: Bytes) -> Self {
        let mut data = Self::new();
        data.push(bytes);
        data
    }
}

impl From<Vec<u8>> for SnapshotData {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::from(bytes).into()
    }
}

impl From<&'static [u8]> for SnapshotData {
    fn from(bytes: &'static [u8]) -> Self {
        Bytes::from_static(bytes).into()
    }
}

impl PartialEq for SnapshotData {
    fn eq(&self, other: &Self) -> bool {
        if self.len != other.len {
            return false;
        }
        let (mut mine, mut theirs) = (self.reader(), other.reader());
        loop {
            let (a, b) = (mine.current(), theirs.current());
            let n = a.len().min(b.len());
            if n == 0 {
                return a.is_empty() && b.is_empty();
            }
            if a[..n] != b[..n] {
                return false;
            }
            mine.advance(n);
            theirs.advance(n);
        }
    }
}

impl Eq for SnapshotData {}

impl fmt::Debug for SnapshotData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SnapshotData({} bytes in {} pieces)", self.len, self.pieces.len())
    }
}

/// Encoded as the sequence of its pieces, so neither side joins them.
impl Serialize for SnapshotData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(&self.pieces)
    }
}

impl<'de> Deserialize<'de> for SnapshotData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pieces = Vec::<Bytes>::deserialize(deserializer)?;
        let mut data = Self::new();
        for piece in pieces {
            data.push(piece);
        }
        Ok(data)
    }
}

/// Builds a [`SnapshotData`]: bytes written are gathered into pieces of
/// [`SnapshotData::PIECE_BYTES`]. Writing never fails.
#[derive(Debug, Default)]
pub struct SnapshotWriter {
    data: SnapshotData,
    current: BytesMut,
}

impl SnapshotWriter {
    /// The bytes written.
    pub fn finish(mut self) -> SnapshotData {
        // The last piece's buffer was reserved at PIECE_BYTES: a short one is
        // copied to its length, so a small snapshot does not keep 1 MiB alive
        // (a copy of under half a piece, once per snapshot).
        let last = if self.current.len() < SnapshotData::PIECE_BYTES / 2 {
            Bytes::copy_from_slice(&self.current)
        } else {
            self.current.split().freeze()
        };
        self.data.push(last);
        self.data
    }
}

impl io::Write for SnapshotWriter {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let written = buf.len();
        while !buf.is_empty() {
            if self.current.capacity() == 0 {
                self.current.reserve(SnapshotData::PIECE_BYTES);
            }
            let room = SnapshotData::PIECE_BYTES - self.current.len();
            let (now, later) = buf.split_at(room.min(buf.len()));
            self.current.extend_from_slice(now);
            buf = later;
            if self.current.len() == SnapshotData::PIECE_BYTES {
                let piece = self.current.split().freeze();
                self.data.push(piece);
            }
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads a [`SnapshotData`]'s bytes in order.
#[derive(Debug, Clone)]
pub struct SnapshotReader<'a> {
    /// The pieces not yet read through.
    pieces: &'a [Bytes],
    /// How far into `pieces[0]` has been read.
    at: usize,
}

impl SnapshotReader<'_> {
    /// What is left of the current piece (empty only at the end).
    fn current(&self) -> &[u8] {
        self.pieces.first().map_or(&[], |piece| &piece[self.at..])
    }

    /// Moves `n` bytes on, within the current piece.
    fn advance(&mut self, n: usize) {
        self.at += n;
        if let Some(piece) = self.pieces.first() {
            if self.at == piece.len() {
                self.pieces = &self.pieces[1..];
                self.at = 0;
            }
        }
    }
}

impl io::Read for SnapshotReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let current = self.current();
        let n = current.len().min(buf.len());
        buf[..n].copy_from_slice(&current[..n]);
        self.advance(n);
        Ok(n)
    }
}

impl io::BufRead for SnapshotReader<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        Ok(self.current())
    }

    fn consume(&mut self, amount: usize) {
        self.advance(amount.min(self.current().len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::{Read, Write};

    fn pieces(data: &SnapshotData) -> Vec<usize> {
        data.pieces().iter().map(Bytes::len).collect()
    }

    #[test]
    fn the_writer_cuts_pieces_and_the_reader_joins_them_back() {
        let bytes: Vec<u8> = (0..SnapshotData::PIECE_BYTES * 2 + 17).map(|i| (i % 251) as u8).collect();
        let mut writer = SnapshotData::writer();
        for part in bytes.chunks(999) {
            writer.write_all(part).unwrap();
        }
        let data = writer.finish();
        assert_eq!(pieces(&data), vec![SnapshotData::PIECE_BYTES, SnapshotData::PIECE_BYTES, 17]);
        assert_eq!(data.len(), bytes.len() as u64);
        let mut back = Vec::new();
        data.reader().read_to_end(&mut back).unwrap();
        assert_eq!(back, bytes);
        assert_eq!(data.crc32(), crc32fast::hash(&bytes));
        assert_eq!(data.to_vec(), bytes);
    }

    #[test]
    fn a_small_snapshot_does_not_hold_a_whole_piece_of_memory() {
        // The writer reserves PIECE_BYTES for each piece; a snapshot of a few
        // bytes (a counter, an empty map) must not keep 1 MiB alive with it.
        let mut writer = SnapshotData::writer();
        writer.write_all(b"a counter").unwrap();
        let data = writer.finish();
        let piece = data.pieces()[0].clone();
        drop(data);
        let held = piece.try_into_mut().map(|piece| piece.capacity()).unwrap_or(usize::MAX);
        assert!(held < 4096, "9 bytes hold a buffer of {held}");
    }

    #[test]
    fn an_empty_writer_gives_no_pieces() {
        let data = SnapshotData::writer().finish();
        assert!(data.is_empty());
        assert!(data.pieces().is_empty());
        assert_eq!(data, SnapshotData::from(Vec::new()));
    }

    #[test]
    fn equality_is_of_the_bytes_wherever_the_pieces_are_cut() {
        let mut cut = SnapshotData::new();
        for part in [&b"ab"[..], b"", b"cde", b"f"] {
            cut.push(Bytes::copy_from_slice(part));
        }
        assert_eq!(cut, SnapshotData::from(&b"abcdef"[..]));
        assert_ne!(cut, SnapshotData::from(&b"abcdeg"[..]));
        assert_ne!(cut, SnapshotData::from(&b"abcde"[..]));
        assert_eq!(pieces(&cut), vec![2, 3, 1]);
    }

    #[test]
    fn slices_are_of_one_piece_where_they_fit_and_join_pieces_where_they_do_not() {
        let mut data = SnapshotData::new();
        for piece in [&b"abc"[..], b"defg", b"h", b"ij"] {
            data.push(Bytes::copy_from_slice(piece));
        }
        let within = data.slice(3, 2);
        assert_eq!(within, Bytes::from_static(b"de"));
        // A slice of the piece itself: no copy.
        assert_eq!(within.as_ptr(), data.pieces()[1][..].as_ptr());
        assert_eq!(data.slice(1, 1), Bytes::from_static(b"b"));
        assert_eq!(data.slice(0, 100), Bytes::from_static(b"abcdefghij"));
        assert_eq!(data.slice(2, 6), Bytes::from_static(b"cdefgh"));
        assert_eq!(data.slice(7, 2), Bytes::from_static(b"hi"));
        assert_eq!(data.slice(9, 10), Bytes::from_static(b"j"));
        assert!(data.slice(10, 10).is_empty());
        assert!(data.slice(3, 0).is_empty());
        assert!(data.slice(u64::MAX, u64::MAX).is_empty());
        // Every offset and length against the joined bytes.
        let whole = data.to_vec();
        for offset in 0..=whole.len() {
            for max in 0..=whole.len() + 1 {
                let end = (offset + max).min(whole.len());
                assert_eq!(&data.slice(offset as u64, max as u64)[..], &whole[offset..end], "{offset} {max}");
            }
        }
    }

    #[test]
    fn many_small_pieces_travel_in_few_chunks() {
        let mut data = SnapshotData::new();
        for i in 0..100_000u32 {
            data.push(Bytes::from(vec![i as u8]));
        }
        let (mut offset, mut chunks) = (0, 0);
        while offset < data.len() {
            offset += data.slice(offset, 4096).len() as u64;
            chunks += 1;
        }
        assert_eq!(chunks, 100_000usize.div_ceil(4096));
    }

    /// Piece lengths that are mostly tiny (so that chunks cross many
    /// boundaries) and sometimes empty, which `push` must drop.
    fn piece_lens() -> impl Strategy<Value = Vec<usize>> {
        proptest::collection::vec(prop_oneof![3 => 0usize..4, 2 => 0usize..40, 1 => 100usize..300], 0..24)
    }

    /// Offsets and lengths at, near and far past the end, and the extremes.
    fn around(len: u64) -> impl Strategy<Value = u64> {
        prop_oneof![
            0..=len + 2,
            len.saturating_sub(2)..=len + 2,
            Just(u64::MAX),
            Just(u64::MAX - 1),
            (u64::MAX - len - 2)..=u64::MAX,
        ]
    }

    proptest! {
        /// `slice` against the naive model: the joined bytes, cut.
        #[test]
        fn a_slice_is_the_joined_bytes_cut(
            (lens, offset, max) in piece_lens().prop_flat_map(|lens| {
                let len = lens.iter().sum::<usize>() as u64;
                (Just(lens), around(len), around(len))
            })
        ) {
            let mut data = SnapshotData::new();
            let mut next = 0u8;
            for len in &lens {
                data.push((0..*len).map(|_| { next = next.wrapping_add(1); next }).collect::<Vec<u8>>().into());
            }
            let whole = data.to_vec();
            prop_assert_eq!(data.len(), whole.len() as u64);
            prop_assert!(data.pieces().iter().all(|piece| !piece.is_empty()));
            let start = offset.min(whole.len() as u64) as usize;
            let end = offset.saturating_add(max).min(whole.len() as u64) as usize;
            let slice = data.slice(offset, max);
            prop_assert_eq!(&slice[..], &whole[start..end.max(start)]);
        }

        /// Walking the whole by `slice`, as a leader sends its chunks, gives
        /// back exactly the bytes and checksum, each chunk full but the last.
        #[test]
        fn chunks_walk_the_whole_exactly(lens in piece_lens(), max in 1u64..70) {
            let mut data = SnapshotData::new();
            for (i, len) in lens.iter().enumerate() {
                data.push(vec![i as u8; *len].into());
            }
            let (mut back, mut offset, mut chunks) = (SnapshotData::new(), 0u64, 0u64);
            while offset < data.len() {
                let chunk = data.slice(offset, max);
                prop_assert!(chunk.len() as u64 == max || offset + chunk.len() as u64 == data.len());
                offset += chunk.len() as u64;
                back.push(chunk);
                chunks += 1;
            }
            prop_assert_eq!(chunks, data.len().div_ceil(max));
            prop_assert_eq!(back.crc32(), data.crc32());
            prop_assert_eq!(back.to_vec(), data.to_vec());
        }
    }

    #[test]
    fn the_codec_round_trips_the_pieces() {
        let mut data = SnapshotData::new();
        data.push(Bytes::from_static(b"abc"));
        data.push(Bytes::from_static(b"de"));
        let back: SnapshotData = crate::codec::decode(&crate::codec::encode(&data).unwrap()).unwrap();
        assert_eq!(pieces(&back), vec![3, 2]);
        assert_eq!(back, data);
    }
}
