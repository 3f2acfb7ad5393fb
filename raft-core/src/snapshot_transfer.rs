//! Receiving a snapshot from the leader, chunk by chunk (section 7).
//!
//! A follower gathers the chunks of one snapshot from one leader in one term,
//! in order, and installs it only once it holds all of it and the whole
//! matches the length and CRC-32 checksum every chunk announces. A leader's
//! chunk is a slice of one of its snapshot's pieces where it fits in one (a
//! copy joining small pieces where it does not: [`SnapshotData::slice`]), and
//! the follower keeps the chunks as the pieces of what it installs, so
//! neither side joins the snapshot into one buffer. Chunks shorter than
//! [`MIN_PIECE_BYTES`] are the exception: the follower copies them together
//! into pieces of that length, since a piece costs a handle and an
//! allocation, and a leader sending tiny chunks would otherwise make the
//! memory `max_snapshot_bytes` bounds tens of times larger. The buffer
//! is keyed by the sending leader, its term, the snapshot's metadata, length
//! and checksum: two leaders may hold snapshots with the same metadata and
//! different bytes (a state machine that encodes a hash map encodes the same
//! state differently on each node), and their chunks must never be spliced.
//!
//! The buffer belongs to the follower role (`follower.rs`), which hands it
//! in; this module owns what happens to it.
//!
//! Invariants: a chunk at offset 0 always starts the buffer over; a chunk
//! that does not belong to the buffer, or does not continue it, is answered
//! with the offset wanted (0 if there is no matching buffer), so the leader
//! resumes from there; a whole whose length or checksum does not match is
//! discarded and asked for again from offset 0, never installed.

use crate::mutation::{mutated, Mutation};
use crate::protocol::Core;
use crate::{
    InstallSnapshot, InstallSnapshotResponse, MessageBody, NodeId, Snapshot, SnapshotData, SnapshotMeta, Term,
};
use bytes::{Bytes, BytesMut};

/// Chunks shorter than this are copied together into pieces of this length
/// rather than kept one piece each (64 KiB: a piece's overhead, some tens of
/// bytes, is then under a thousandth of it).
pub(crate) const MIN_PIECE_BYTES: usize = 64 * 1024;

/// A snapshot being received, and whom it is from.
#[derive(Debug)]
pub(crate) struct IncomingSnapshot {
    /// The leader sending it.
    leader: NodeId,
    /// The term it leads.
    term: Term,
    /// What the snapshot covers.
    meta: SnapshotMeta,
    /// The whole snapshot's length, as announced.
    total_len: u64,
    /// The whole snapshot's CRC-32, as announced.
    checksum: u32,
    /// The bytes received so far, from offset 0, as the chunks they came in
    /// (short ones copied together), up to `short`.
    data: SnapshotData,
    /// The bytes of short chunks received after `data`, not yet a piece.
    short: BytesMut,
    /// The CRC-32 of `data`, kept as it grows.
    crc: crc32fast::Hasher,
}

impl IncomingSnapshot {
    /// Whether `chunk`, sent by `leader` in `term`, is part of this snapshot.
    fn is_for(&self, leader: NodeId, term: Term, chunk: &InstallSnapshot) -> bool {
        if mutated(Mutation::SnapshotBufferNotReset) {
            return self.meta == chunk.meta;
        }
        self.leader == leader
            && self.term == term
            && self.meta == chunk.meta
            && self.total_len == chunk.total_len
            && self.checksum == chunk.checksum
    }

    /// How many bytes have been received.
    fn received(&self) -> u64 {
        self.data.len() + self.short.len() as u64
    }

    /// Appends the next chunk's bytes.
    fn append(&mut self, bytes: Bytes) {
        self.crc.update(&bytes);
        if bytes.len() >= MIN_PIECE_BYTES {
            self.flush_short();
            self.data.push(bytes);
            return;
        }
        if self.short.capacity() == 0 {
            self.short.reserve(MIN_PIECE_BYTES);
        }
        self.short.extend_from_slice(&bytes);
        if self.short.len() >= MIN_PIECE_BYTES {
            self.data.push(self.short.split().freeze());
        }
    }

    /// Makes the short chunks gathered so far a piece, copied to its length
    /// so that it does not hold the rest of their buffer.
    fn flush_short(&mut self) {
        if !self.short.is_empty() {
            self.data.push(Bytes::copy_from_slice(&self.short));
            self.short.clear();
        }
    }

    /// All the bytes received.
    fn into_data(mut self) -> SnapshotData {
        self.flush_short();
        self.data
    }
}

/// The chunk of `snapshot` (whose checksum is `checksum`) that starts at
/// `offset` (clamped to its end), `chunk_bytes` long but at the end (see
/// [`SnapshotData::slice`]).
pub(crate) fn chunk(snapshot: &Snapshot, checksum: u32, offset: u64, chunk_bytes: u64) -> InstallSnapshot {
    let len = snapshot.data.len();
    let offset = offset.min(len);
    let data = snapshot.data.slice(offset, chunk_bytes);
    let end = offset + data.len() as u64;
    InstallSnapshot { meta: snapshot.meta.clone(), offset, data, done: end == len, total_len: len, checksum }
}

/// The receiver's side of InstallSnapshot from `from`, the leader of the
/// current term: gathers chunks in order in `buffer` (the follower role's),
/// then installs the snapshot by the rule of section 7 (see
/// [`crate::RaftLog`]'s `install_snapshot`).
pub(crate) fn handle_install_snapshot(
    core: &mut Core,
    buffer: &mut Option<IncomingSnapshot>,
    from: NodeId,
    chunk: InstallSnapshot,
) {
    let last = chunk.meta.last;
    let respond = |core: &mut Core, next_offset: u64, installed: bool| {
        let response = InstallSnapshotResponse { last, next_offset, installed };
        core.send(from, MessageBody::InstallSnapshotResponse(response));
    };
    if last.index <= core.log.committed() {
        // Everything it covers is committed here already.
        *buffer = None;
        respond(core, chunk.offset.saturating_add(chunk.data.len() as u64), true);
        return;
    }
    let term = core.term();
    let restart = match &*buffer {
        _ if chunk.offset != 0 => false,
        Some(incoming) if mutated(Mutation::SnapshotBufferNotReset) => incoming.meta != chunk.meta,
        _ => true,
    };
    if restart {
        *buffer = Some(IncomingSnapshot {
            leader: from,
            term,
            meta: chunk.meta.clone(),
            total_len: chunk.total_len,
            checksum: chunk.checksum,
            data: SnapshotData::new(),
            short: BytesMut::new(),
            crc: crc32fast::Hasher::new(),
        });
    }
    let Some(incoming) = buffer.as_mut().filter(|i| i.is_for(from, term, &chunk)) else {
        respond(core, 0, false);
        return;
    };
    if chunk.offset != incoming.received() {
        let wanted = incoming.received();
        respond(core, wanted, false);
        return;
    }
    incoming.append(chunk.data);
    let received = incoming.received();
    if mutated(Mutation::SnapshotBufferNotReset) {
        if !chunk.done {
            respond(core, received, false);
            return;
        }
    } else if !chunk.done && received < incoming.total_len {
        respond(core, received, false);
        return;
    }
    let Some(incoming) = buffer.take() else { return };
    let crc = incoming.crc.clone().finalize();
    let whole = received == incoming.total_len && crc == incoming.checksum;
    if !whole && !mutated(Mutation::SnapshotBufferNotReset) {
        // Not the snapshot announced: start over rather than install it.
        respond(core, 0, false);
        return;
    }
    let meta = incoming.meta.clone();
    let snapshot = Snapshot { meta, data: incoming.into_data() };
    let stored_log = core.log.install_snapshot(&snapshot.meta);
    core.gate.hold_for_snapshot();
    core.snapshot = Some(snapshot.clone());
    core.snapshot_checksum = crc;
    core.outbox.install_snapshot(snapshot, stored_log);
    respond(core, received, true);
}
