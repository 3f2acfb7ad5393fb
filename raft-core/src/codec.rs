//! The project's one wire and disk format: serde values encoded with
//! bincode 2.x (little-endian, variable-length integers).
//!
//! Everything that leaves a process goes through here (commands in log
//! entries, values in durable stores, frames on the network), so the format
//! can change in one place. Every decode is bounded: a value may not claim
//! more than [`MAX_VALUE_BYTES`], and a length prefix inside it is checked
//! against that limit before anything is allocated.

use serde::{de::DeserializeOwned, Serialize};
use thiserror::Error;

/// The version of the format. Stores and frames record it, and refuse a
/// newer one rather than misread it.
pub const FORMAT_VERSION: u8 = 1;

/// The most bytes one encoded value may claim (64 MiB).
pub const MAX_VALUE_BYTES: usize = 64 << 20;

type Configuration = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_VALUE_BYTES>,
>;

const CONFIGURATION: Configuration = bincode::config::standard().with_limit::<MAX_VALUE_BYTES>();

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
    bincode::serde::encode_to_vec(value, CONFIGURATION).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Appends the encoding of `value` to `buffer`, returning how many bytes it
/// took (for writing many values into one buffer without allocating each).
pub fn encode_into<T: Serialize + ?Sized>(value: &T, buffer: &mut Vec<u8>) -> Result<usize, CodecError> {
    let start = buffer.len();
    bincode::serde::encode_into_std_write(value, buffer, CONFIGURATION)
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
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), CodecError> {
    bincode::serde::decode_from_slice(bytes, CONFIGURATION).map_err(|e| CodecError::Decode(e.to_string()))
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
    }
}
