//! The queue a node's inbound messages wait in ([`Inbox`]). It exists
//! before the node does, so the order of start-up is the same for every
//! transport: make the inbox, bind the transport to it, start the node on
//! both.
//!
//! ```
//! use raft_core::runtime::{InProcessNetwork, Inbox, Raft, RuntimeConfig};
//! use raft_core::{Config, Membership};
//! use raft_storage_mem::{MemKv, MemLogStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let network = InProcessNetwork::new();
//! let inbox = Inbox::default();
//! network.connect(1, inbox.clone()); // a transport's `bind(config, inbox.clone())`
//! let raft: Raft<MemKv> = Raft::start(
//!     Config::new(1),
//!     RuntimeConfig::default(),
//!     Membership::new([1], []),
//!     MemLogStore::new(),
//!     network.transport(1),
//!     inbox,
//!     MemKv::default(),
//! )
//! .await?;
//! raft.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! One node at a time reads an inbox. When that node stops (shut down,
//! failed, or crashed), the inbox is free again, with whatever waited in
//! it, so a node restarted in the same process can keep its transport: the
//! messages that arrived meanwhile are delivered late, which Raft allows.
//! A node started while the one before is still stopping (a restart right after a crash, or right after a caller saw
//! the failure) waits for it to hand the inbox back.

use super::Envelope;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};

/// How many envelopes an [`Inbox::default`] holds.
pub const DEFAULT_INBOX_CAPACITY: usize = 4096;

/// How many bytes of envelopes ([`Envelope::size`]) an [`Inbox::default`]
/// holds: eight messages of the largest size a node sends
/// ([`crate::MAX_MESSAGE_BYTES`]), and thousands of ordinary ones.
pub const DEFAULT_INBOX_BYTES: usize = 64 << 20;

/// Where a transport delivers what peers send, for the node started on it
/// ([`super::Raft::start`]). Cheap to clone: every clone is the same queue.
/// Envelopes delivered before the node starts wait in it.
///
/// An inbox is bounded twice: by a number of envelopes and by their bytes
/// ([`Envelope::size`]), so a peer that sends the largest frames to a
/// paused or slow node pins a bounded amount of memory, not the count
/// times the largest frame. An envelope larger than the whole byte budget
/// is let in when the inbox holds nothing else.
#[derive(Clone)]
pub struct Inbox {
    sender: mpsc::Sender<Queued>,
    /// One permit per byte of the budget; each queued envelope holds its
    /// size's worth until the node takes it out.
    bytes: Arc<Semaphore>,
    /// The byte budget: what [`Inbox::bytes`] starts with.
    byte_budget: u32,
    shared: Arc<Shared>,
}

/// An envelope in the queue, with the bytes of the budget it holds.
struct Queued {
    envelope: Envelope,
    _bytes: OwnedSemaphorePermit,
}

/// What every clone of an inbox, and its reader, share.
struct Shared {
    slot: Mutex<Slot>,
    /// Woken whenever a reader hands the reading end back.
    returned: Notify,
}

struct Slot {
    /// The reading end while no node reads it.
    receiver: Option<mpsc::Receiver<Queued>>,
    /// How many readers were taken: which one a [`InboxRelease`] is for.
    readers: u64,
    /// The node reading now is stopping (its loop ended, or it crashed) and
    /// reads no more: a node starting on the inbox waits for it to hand the
    /// reading end back, rather than be refused. Its tasks are finishing or
    /// being dropped, so that is soon.
    stopping: bool,
}

impl Default for Inbox {
    /// An inbox of [`DEFAULT_INBOX_CAPACITY`] messages and
    /// [`DEFAULT_INBOX_BYTES`] bytes.
    fn default() -> Self {
        Self::new(DEFAULT_INBOX_CAPACITY)
    }
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queued_bytes = self.byte_budget as usize - self.bytes.available_permits();
        f.debug_struct("Inbox")
            .field("queued", &(self.sender.max_capacity() - self.sender.capacity()))
            .field("capacity", &self.sender.max_capacity())
            .field("queued_bytes", &queued_bytes)
            .field("byte_budget", &self.byte_budget)
            .finish_non_exhaustive()
    }
}

impl Inbox {
    /// An inbox that holds up to `capacity` messages (at least one) and
    /// [`DEFAULT_INBOX_BYTES`] bytes of them before [`Inbox::deliver`] drops
    /// and [`Inbox::deliver_or_wait`] waits.
    pub fn new(capacity: usize) -> Self {
        Self::with_limits(capacity, DEFAULT_INBOX_BYTES)
    }

    /// An inbox that holds up to `capacity` messages and `bytes` bytes of
    /// them ([`Envelope::size`]; each limit at least one, and the bytes at
    /// most `u32::MAX`).
    pub fn with_limits(capacity: usize, bytes: usize) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let byte_budget = u32::try_from(bytes).unwrap_or(u32::MAX).max(1);
        let slot = Slot { receiver: Some(receiver), readers: 0, stopping: false };
        Self {
            sender,
            bytes: Arc::new(Semaphore::new(byte_budget as usize)),
            byte_budget,
            shared: Arc::new(Shared { slot: Mutex::new(slot), returned: Notify::new() }),
        }
    }

    /// The bytes of the budget `envelope` holds while it is queued: its
    /// size, or the whole budget for one larger than that.
    fn charge(&self, envelope: &Envelope) -> u32 {
        u32::try_from(envelope.size()).unwrap_or(u32::MAX).min(self.byte_budget)
    }

    /// Queues `envelope` for the node, never waiting: when the inbox is full
    /// (of messages or of bytes) the envelope is dropped (Raft retries) and
    /// this returns false. What a transport without flow control calls.
    pub fn deliver(&self, envelope: Envelope) -> bool {
        let Ok(bytes) = self.bytes.clone().try_acquire_many_owned(self.charge(&envelope)) else {
            return false;
        };
        self.sender.try_send(Queued { envelope, _bytes: bytes }).is_ok()
    }

    /// Queues `envelope`, waiting while the inbox is full (of messages or of
    /// bytes): what a transport with flow control calls, so that a node
    /// that falls behind slows its peers down (QUIC's streams stop being
    /// read). Never fails: the inbox holds its own reading end while no
    /// node reads it, and never closes its byte budget.
    pub async fn deliver_or_wait(&self, envelope: Envelope) {
        let charge = self.charge(&envelope);
        let Ok(bytes) = self.bytes.clone().acquire_many_owned(charge).await else { return };
        let _ = self.sender.send(Queued { envelope, _bytes: bytes }).await;
    }

    /// The next envelope in the inbox, waiting for one: for a program that
    /// reads an inbox without a node (a transport's tests or benchmarks).
    /// `None` while a node reads this inbox.
    pub async fn recv(&self) -> Option<Envelope> {
        let mut reader = self.try_take()?;
        std::future::poll_fn(|cx| reader.poll_recv(cx)).await
    }

    /// The next envelope if one is queued, without waiting (see
    /// [`Inbox::recv`]). `None` if none is, or while a node reads this inbox.
    pub fn try_recv(&self) -> Option<Envelope> {
        self.try_take()?.try_recv()
    }

    /// Takes the reading end for a node: at once if no node has it, once
    /// it is handed back if the node that has it is stopping, and `None` if
    /// that node runs on.
    pub(super) async fn take(&self) -> Option<InboxReader> {
        loop {
            // Registered before the slot is looked at, so a hand-back in
            // between still wakes this.
            let returned = self.shared.returned.notified();
            let mut returned = std::pin::pin!(returned);
            returned.as_mut().enable();
            {
                let slot = self.shared.lock();
                if slot.receiver.is_some() || !slot.stopping {
                    drop(slot);
                    return self.try_take();
                }
            }
            returned.await;
        }
    }

    /// Takes the reading end if no node has it.
    fn try_take(&self) -> Option<InboxReader> {
        let mut slot = self.shared.lock();
        let receiver = slot.receiver.take()?;
        slot.readers += 1;
        slot.stopping = false;
        Some(InboxReader { receiver, number: slot.readers, shared: self.shared.clone() })
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A node's reading end of its [`Inbox`], handed back when dropped (the
/// node stopped, or its task was aborted), so the inbox can be read again.
pub(super) struct InboxReader {
    receiver: mpsc::Receiver<Queued>,
    /// Which reader of the inbox this is.
    number: u64,
    shared: Arc<Shared>,
}

impl InboxReader {
    /// The next envelope, once one is queued; its bytes go back to the
    /// budget as it is taken out. `None` once every clone of the [`Inbox`]
    /// is gone, so nothing can be delivered any more.
    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Envelope>> {
        self.receiver.poll_recv(cx).map(|queued| queued.map(|queued| queued.envelope))
    }

    /// The next envelope if one is queued, without waiting.
    pub(super) fn try_recv(&mut self) -> Option<Envelope> {
        self.receiver.try_recv().ok().map(|queued| queued.envelope)
    }

    /// A way to say, from elsewhere, that this reader's node is stopping.
    #[cfg(feature = "testing")]
    pub(super) fn release(&self) -> InboxRelease {
        InboxRelease { number: self.number, shared: self.shared.clone() }
    }

    /// This reader's node is stopping: it reads no more.
    pub(super) fn stopping(&self) {
        InboxRelease { number: self.number, shared: self.shared.clone() }.stopping();
    }
}

impl Drop for InboxReader {
    fn drop(&mut self) {
        // A closed stand-in takes the receiver's place for the last moment
        // of this reader's life.
        let (_, closed) = mpsc::channel(1);
        let receiver = std::mem::replace(&mut self.receiver, closed);
        let mut slot = self.shared.lock();
        slot.receiver = Some(receiver);
        slot.stopping = false;
        drop(slot);
        self.shared.returned.notify_waiters();
    }
}

/// Marks the node reading an inbox as stopping (see [`Slot::stopping`]):
/// it reads no more, and hands the reading end back soon.
#[derive(Clone)]
pub(super) struct InboxRelease {
    number: u64,
    shared: Arc<Shared>,
}

impl InboxRelease {
    /// The reader's node is stopping. Does nothing once that reader is
    /// gone: a mark must not make a later node's start wait on a node that
    /// runs.
    pub(super) fn stopping(&self) {
        let mut slot = self.shared.lock();
        if slot.readers == self.number && slot.receiver.is_none() {
            slot.stopping = true;
        }
    }
}
