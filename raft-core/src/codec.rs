//! The project's one wire and disk format: serde values encoded with
//! bincode 2.x (little-endian, variable-length integers).
//!
//! Everything that leaves a process goes through here (commands in log
//! entries, values in durable stores, frames on the network), so the format
//! can change in one place. Every decode is bounded: a value may not claim
//! more than [`MAX_VALUE_BYTES`], and a length prefix inside it is checked
//! against that limit before anything is allocated.
//!
//! On a byte stream, values travel in frames (see [`encode_frame`] and
//! [`FrameDecoder`]): `[length: u32, little-endian][version: u8][value]`,
//! where the length counts the version byte and the value. A reader learns
//! a frame's length from its first four bytes and refuses one over its limit
//! before reading or allocating its body. The transports' frames carry the
//! runtime's `Envelope`s (and their handshakes); the version byte is
//! [`FRAME_VERSION`], which changes whenever what the frames carry does,
//! so that peers of different versions refuse each other's frames
//! ([`FrameError::Version`]) rather than misread them.

use bytes::{Buf, BytesMut};
use serde::{de::DeserializeOwned, Serialize};
use thiserror::Error;

/// The version of the encoding of values (bincode 2.x, this module's
/// configuration) and of the values stores keep (entries, hard states,
/// snapshot metadata). Stores record it, and refuse a newer one rather than
/// misread it.
pub const FORMAT_VERSION: u8 = 1;

/// The version byte of every frame ([`encode_frame`]), which says what the
/// frames on the wire carry. A frame of any other version is refused
/// ([`FrameError::Version`]).
///
/// - 1: the protocol's messages, with the runtime's forwarded client
///   requests among them (a `Forward` variant of `MessageBody`).
/// - 2: the runtime's `Envelope`s, which hold a protocol message or a
///   forwarded request apart.
///
/// Kept apart from [`FORMAT_VERSION`]: the wire changed, what stores hold
/// did not, and a store written before must still open.
pub const FRAME_VERSION: u8 = 2;

/// The most bytes one encoded value may claim (64 MiB).
pub const MAX_VALUE_BYTES: usize = 64 << 20;

/// The configuration with the limit `LIMIT`: bincode refuses any length
/// prefix claiming more than what is left of the limit.
type Configuration<const LIMIT: usize> = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<LIMIT>,
>;

const fn configuration<const LIMIT: usize>() -> Configuration<LIMIT> {
    bincode::config::standard().with_limit::<LIMIT>()
}

/// Why a value could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The value cannot be represented (a serde error, or over the limit).
    #[error("cannot encode: {0}")]
    Encode(String),
    /// The bytes are not a valid encoding of the expected type.
    #[error("cannot decode: {0}")]
    Decode(String),
    /// The bytes decode, but do not end where the value does.
    #[error("{0} bytes left over after the value")]
    TrailingBytes(usize),
}

/// Encodes `value`.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, configuration::<MAX_VALUE_BYTES>())
        .map_err(|e| CodecError::Encode(e.to_string()))
}

/// Appends the encoding of `value` to `buffer`, returning how many bytes it
/// took (for writing many values into one buffer without allocating each).
pub fn encode_into<T: Serialize + ?Sized>(value: &T, buffer: &mut Vec<u8>) -> Result<usize, CodecError> {
    let start = buffer.len();
    bincode::serde::encode_into_std_write(value, buffer, configuration::<MAX_VALUE_BYTES>())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(buffer.len() - start)
}

/// Decodes a `T` that occupies exactly `bytes`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, read) = decode_prefix(bytes)?;
    if read != bytes.len() {
        return Err(CodecError::TrailingBytes(bytes.len() - read));
    }
    Ok(value)
}

/// Decodes a `T` from the start of `bytes`, returning it and how many bytes
/// it occupied.
///
/// bincode allocates a container as soon as it reads its length, so the
/// decode runs under a limit that follows the input's size. bincode counts
/// against the limit what a value takes in memory, not on the wire: a
/// `u64` varint of 1 byte counts 8, an enum tag of 1 byte counts 4, so a
/// well-formed message of many small entries counts up to 8 times its
/// length. The limit is therefore the smallest power of four (from 4 KiB)
/// that covers 16 times the input: whatever a hostile length prefix claims,
/// a decode allocates at most 4 KiB or 64 times the input it was given,
/// whichever is more. Inputs over [`MAX_VALUE_BYTES`] are refused.
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), CodecError> {
    fn with_limit<T: DeserializeOwned, const LIMIT: usize>(bytes: &[u8]) -> Result<(T, usize), CodecError> {
        bincode::serde::decode_from_slice(bytes, configuration::<LIMIT>())
            .map_err(|e| CodecError::Decode(e.to_string()))
    }
    const K: usize = 1 << 10;
    match bytes.len() {
        0..=256 => with_limit::<T, { 4 * K }>(bytes),
        257..=1024 => with_limit::<T, { 16 * K }>(bytes),
        1025..=4096 => with_limit::<T, { 64 * K }>(bytes),
        4097..=16384 => with_limit::<T, { 256 * K }>(bytes),
        16385..=65536 => with_limit::<T, { 1024 * K }>(bytes),
        65537..=262144 => with_limit::<T, { 4096 * K }>(bytes),
        262145..=1048576 => with_limit::<T, { 16384 * K }>(bytes),
        1048577..=4194304 => with_limit::<T, { 65536 * K }>(bytes),
        4194305..=16777216 => with_limit::<T, { 262144 * K }>(bytes),
        16777217..=MAX_VALUE_BYTES => with_limit::<T, { 1048576 * K }>(bytes),
        len => Err(CodecError::Decode(format!("{len} bytes exceed the limit of {MAX_VALUE_BYTES}"))),
    }
}

/// Writes the encoding of `value` to `writer` (for example a snapshot's
/// [`crate::SnapshotWriter`]), returning how many bytes it took.
pub fn encode_to_writer<T: Serialize + ?Sized, W: std::io::Write>(
    value: &T,
    writer: &mut W,
) -> Result<usize, CodecError> {
    bincode::serde::encode_into_std_write(value, writer, configuration::<MAX_VALUE_BYTES>())
        .map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes the next `T` from `reader` (for example a snapshot's
/// [`crate::SnapshotReader`]), reading no further than it ends. The input's
/// size is not known here, so the limit is [`MAX_VALUE_BYTES`]: a hostile
/// length prefix makes a decode allocate at most that much. An input that
/// ends inside the value is a [`CodecError::Decode`].
pub fn decode_from_reader<T: DeserializeOwned, R: std::io::Read>(reader: &mut R) -> Result<T, CodecError> {
    bincode::serde::decode_from_std_read(reader, configuration::<MAX_VALUE_BYTES>())
        .map_err(|e| CodecError::Decode(e.to_string()))
}

/// Bytes before a frame's version byte: the little-endian `u32` length.
pub const FRAME_LENGTH_BYTES: usize = 4;

/// Why a frame could not be read. Any of these ends the connection it came
/// from: the stream can no longer be trusted to be in step.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The frame claims more bytes than the reader accepts.
    #[error("a frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// What the frame claims.
        len: usize,
        /// The reader's limit.
        max: usize,
    },
    /// The frame has no version byte.
    #[error("an empty frame")]
    Empty,
    /// The frame was written in a frame version this node does not speak
    /// (see [`FRAME_VERSION`]).
    #[error("frame version {0} is not supported (this node speaks version {FRAME_VERSION})")]
    Version(u8),
    /// The frame's value does not decode.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Appends `value` to `buffer` as one frame, returning the frame's length
/// (header included). On error, `buffer` is left as it was.
pub fn encode_frame<T: Serialize + ?Sized>(value: &T, buffer: &mut Vec<u8>) -> Result<usize, CodecError> {
    let start = buffer.len();
    buffer.extend_from_slice(&[0; FRAME_LENGTH_BYTES]);
    buffer.push(FRAME_VERSION);
    let body = match encode_into(value, buffer) {
        Ok(len) => len + 1,
        Err(error) => {
            buffer.truncate(start);
            return Err(error);
        }
    };
    let Some(len) = u32::try_from(body).ok().filter(|_| body <= MAX_VALUE_BYTES) else {
        buffer.truncate(start);
        return Err(CodecError::Encode(format!("a frame of {body} bytes exceeds {MAX_VALUE_BYTES}")));
    };
    buffer[start..start + FRAME_LENGTH_BYTES].copy_from_slice(&len.to_le_bytes());
    Ok(buffer.len() - start)
}

/// Reads frames from the front of a buffer that a stream fills.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max_frame_bytes: usize,
}

impl FrameDecoder {
    /// A decoder refusing frames whose length (version byte and value)
    /// exceeds `max_frame_bytes` (at most [`MAX_VALUE_BYTES`]).
    pub fn new(max_frame_bytes: usize) -> Self {
        Self { max_frame_bytes: max_frame_bytes.min(MAX_VALUE_BYTES) }
    }

    /// The largest frame this decoder accepts.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// How many bytes the frame at the front of `buffer` occupies, header
    /// included, once its header has arrived; an error as soon as the header
    /// shows the frame is too large or empty.
    pub fn frame_len(&self, buffer: &[u8]) -> Result<Option<usize>, FrameError> {
        let Some(header) = buffer.first_chunk::<FRAME_LENGTH_BYTES>() else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(*header) as usize;
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len > self.max_frame_bytes {
            return Err(FrameError::TooLarge { len, max: self.max_frame_bytes });
        }
        Ok(Some(FRAME_LENGTH_BYTES + len))
    }

    /// Takes the first frame off `buffer` and decodes it, or returns
    /// `Ok(None)` (leaving `buffer` alone) while the frame is incomplete.
    pub fn decode<T: DeserializeOwned>(&self, buffer: &mut BytesMut) -> Result<Option<T>, FrameError> {
        let Some(len) = self.frame_len(buffer)? else {
            return Ok(None);
        };
        if buffer.len() < len {
            return Ok(None);
        }
        let mut frame = buffer.split_to(len);
        frame.advance(FRAME_LENGTH_BYTES);
        let version = frame[0];
        if version != FRAME_VERSION {
            return Err(FrameError::Version(version));
        }
        Ok(Some(decode(&frame[1..])?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Entry, EntryPayload, HardState, Membership, Message};
    use bytes::Bytes;

    #[test]
    fn values_round_trip() {
        let entry =
            Entry { term: 3, index: 9, payload: EntryPayload::Command(Bytes::from_static(b"put x 1")) };
        assert_eq!(decode::<Entry>(&encode(&entry).unwrap()), Ok(entry));
        let hard_state = HardState { term: 7, vote: Some(2) };
        assert_eq!(decode::<HardState>(&encode(&hard_state).unwrap()), Ok(hard_state));
        let membership = Membership::new([1, 2, 3], [4]);
        assert_eq!(decode::<Membership>(&encode(&membership).unwrap()), Ok(membership));
    }

    /// Found by `raft-chaos` (seed 1, TCP, memory store): a follower that
    /// fell about a hundred small entries behind refused every catch-up
    /// AppendEntries with `LimitExceeded` and never caught up. bincode
    /// counts a decoded value's in-memory size against the limit (8 bytes
    /// for a `u64` that took 1 byte on the wire), so a limit of 1 to 4
    /// times the input refused well-formed messages.
    #[test]
    fn append_entries_of_many_small_entries_decode() {
        // From index 1: a one-byte index varint is the worst ratio of
        // in-memory size to wire size; `len` None is a blank entry, Some(0)
        // an empty command (the benchmarks').
        for n in [1u64, 10, 50, 100, 200, 400, 800, 1024, 4096] {
            let lens = [None, Some(0usize), Some(1), Some(8), Some(30), Some(100)];
            for (first, len) in [1, 1000].into_iter().flat_map(|f| lens.map(|l| (f, l))) {
                let entries: Vec<Entry> = (0..n)
                    .map(|i| Entry {
                        term: 3,
                        index: first + i,
                        payload: match len {
                            None => EntryPayload::Blank,
                            Some(len) => EntryPayload::Command(Bytes::from(vec![7u8; len])),
                        },
                    })
                    .collect();
                let body = crate::MessageBody::AppendEntries(crate::AppendEntries {
                    prev_log_index: 999,
                    prev_log_term: 3,
                    entries,
                    leader_commit: 5,
                });
                let message = Message { from: 1, to: 2, term: 3, body };
                let bytes = encode(&message).unwrap();
                let what = format!("{n} entries from index {first} with payloads {len:?}");
                assert_eq!(decode::<Message>(&bytes).as_ref(), Ok(&message), "{what}");
            }
        }
    }

    #[test]
    fn encode_into_appends() {
        let mut buffer = vec![0xAA];
        let used = encode_into(&HardState { term: 1, vote: None }, &mut buffer).unwrap();
        assert_eq!(buffer.len(), 1 + used);
        assert_eq!(decode::<HardState>(&buffer[1..]), Ok(HardState { term: 1, vote: None }));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&HardState { term: 1, vote: None }).unwrap();
        bytes.push(0);
        assert_eq!(decode::<HardState>(&bytes), Err(CodecError::TrailingBytes(1)));
    }

    #[test]
    fn truncated_and_garbage_input_is_an_error() {
        let entry = Entry { term: 3, index: 9, payload: EntryPayload::Command(Bytes::from_static(b"abc")) };
        let bytes = encode(&entry).unwrap();
        for len in 0..bytes.len() {
            assert!(decode::<Entry>(&bytes[..len]).is_err(), "a truncation at {len} must not decode");
        }
        assert!(decode::<Message>(&[0xFF; 32]).is_err());
    }

    #[test]
    fn a_hostile_length_prefix_is_refused_before_allocating() {
        // An entry whose command claims 2^40 bytes: varint 253 = u64 follows.
        let mut bytes = encode(&(3u64, 9u64)).unwrap();
        bytes.push(1); // EntryPayload::Command
        bytes.push(253);
        bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(matches!(decode::<Entry>(&bytes), Err(CodecError::Decode(_))));
        // A claim within MAX_VALUE_BYTES is refused too when it exceeds what
        // the input could hold: the limit follows the input's size.
        let mut bytes = encode(&(3u64, 9u64)).unwrap();
        bytes.push(1);
        bytes.push(252); // varint: a u32 follows
        bytes.extend_from_slice(&(1u32 << 20).to_le_bytes());
        let error = decode::<Entry>(&bytes).unwrap_err().to_string();
        assert!(error.contains("LimitExceeded"), "{error}");
    }
    fn heartbeat(round: u64) -> Message {
        Message {
            from: 1,
            to: 2,
            term: 3,
            body: crate::MessageBody::Heartbeat(crate::Heartbeat { commit: round, round }),
        }
    }

    #[test]
    fn frames_round_trip_whole_and_byte_by_byte() {
        let mut stream = Vec::new();
        for round in 0..10 {
            encode_frame(&heartbeat(round), &mut stream).unwrap();
        }
        let decoder = FrameDecoder::new(1 << 20);
        let mut whole = BytesMut::from(&stream[..]);
        for round in 0..10 {
            assert_eq!(decoder.decode::<Message>(&mut whole), Ok(Some(heartbeat(round))));
        }
        assert_eq!(decoder.decode::<Message>(&mut whole), Ok(None));
        let mut trickle = BytesMut::new();
        let mut decoded = Vec::new();
        for byte in stream {
            trickle.extend_from_slice(&[byte]);
            if let Some(message) = decoder.decode::<Message>(&mut trickle).unwrap() {
                decoded.push(message);
            }
        }
        assert_eq!(decoded, (0..10).map(heartbeat).collect::<Vec<_>>());
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_header_alone() {
        let decoder = FrameDecoder::new(1024);
        let mut buffer = BytesMut::from(&2000u32.to_le_bytes()[..]);
        assert_eq!(
            decoder.decode::<Message>(&mut buffer),
            Err(FrameError::TooLarge { len: 2000, max: 1024 })
        );
        let mut buffer = BytesMut::from(&u32::MAX.to_le_bytes()[..]);
        assert!(matches!(decoder.decode::<Message>(&mut buffer), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn empty_frames_other_versions_and_garbage_are_errors() {
        let decoder = FrameDecoder::new(1024);
        let mut empty = BytesMut::from(&0u32.to_le_bytes()[..]);
        assert_eq!(decoder.decode::<Message>(&mut empty), Err(FrameError::Empty));
        for version in [0, FRAME_VERSION - 1, FRAME_VERSION + 1, u8::MAX] {
            let mut frame = Vec::new();
            encode_frame(&heartbeat(1), &mut frame).unwrap();
            frame[FRAME_LENGTH_BYTES] = version;
            let decoded = decoder.decode::<Message>(&mut BytesMut::from(&frame[..]));
            assert_eq!(decoded, Err(FrameError::Version(version)));
        }
        let mut garbage =
            BytesMut::from(&[8, 0, 0, 0, FRAME_VERSION, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF][..]);
        assert!(matches!(decoder.decode::<Message>(&mut garbage), Err(FrameError::Codec(_))));
    }

    /// A node of frame version 1 (before envelopes) sends bare messages:
    /// their frames are refused by their version byte, with the typed
    /// error, never tried as envelopes (a message's first byte, its
    /// sender's id, would be read as an envelope's tag).
    #[cfg(feature = "runtime")]
    #[test]
    fn a_frame_of_version_1_is_refused() {
        use crate::runtime::Envelope;
        let mut frame = vec![0; FRAME_LENGTH_BYTES];
        frame.push(1);
        let value = encode(&heartbeat(1)).unwrap();
        frame.extend_from_slice(&value);
        let len = u32::try_from(frame.len() - FRAME_LENGTH_BYTES).unwrap();
        frame[..FRAME_LENGTH_BYTES].copy_from_slice(&len.to_le_bytes());
        let decoder = FrameDecoder::new(1024);
        let mut buffer = BytesMut::from(&frame[..]);
        assert_eq!(decoder.decode::<Envelope>(&mut buffer), Err(FrameError::Version(1)));
        let error = FrameError::Version(1).to_string();
        assert!(error.contains("version 1 is not supported") && error.contains("version 2"), "{error}");
        // The same frame at this version is an envelope intact.
        let envelope = Envelope::Raft(heartbeat(1));
        let mut current = Vec::new();
        encode_frame(&envelope, &mut current).unwrap();
        assert_eq!(current[FRAME_LENGTH_BYTES], FRAME_VERSION);
        assert_eq!(decoder.decode::<Envelope>(&mut BytesMut::from(&current[..])), Ok(Some(envelope)));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode::<Message>(&bytes);
            let _ = decode::<Entry>(&bytes);
            let mut buffer = BytesMut::from(&bytes[..]);
            let decoder = FrameDecoder::new(256);
            while let Ok(Some(_)) = decoder.decode::<Message>(&mut buffer) {}
        }
    }
}
