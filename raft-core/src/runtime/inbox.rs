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
use tokio::sync::{mpsc, Notify};

/// How many envelopes an [`Inbox::default`] holds.
pub const DEFAULT_INBOX_CAPACITY: usize = 4096;

/// Where a transport delivers what peers send, for the node started on it
/// ([`super::Raft::start`]). Cheap to clone: every clone is the same queue.
/// Envelopes delivered before the node starts wait in it.
#[derive(Clone)]
pub struct Inbox {
    sender: mpsc::Sender<Envelope>,
    shared: Arc<Shared>,
}

/// What every clone of an inbox, and its reader, share.
struct Shared {
    slot: Mutex<Slot>,
    /// Woken whenever a reader hands the reading end back.
    returned: Notify,
}

struct Slot {
    /// The reading end while no node reads it.
    receiver: Option<mpsc::Receiver<Envelope>>,
    /// How many readers were taken: which one a [`InboxRelease`] is for.
    readers: u64,
    /// The node reading now is stopping (its loop ended, or it crashed) and
    /// reads no more: a node starting on the inbox waits for it to hand the
    /// reading end back, rather than be refused. Its tasks are finishing or
    /// being dropped, so that is soon.
    stopping: bool,
}

impl Default for Inbox {
    /// An inbox of [`DEFAULT_INBOX_CAPACITY`] messages.
    fn default() -> Self {
        Self::new(DEFAULT_INBOX_CAPACITY)
    }
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("queued", &(self.sender.max_capacity() - self.sender.capacity()))
            .field("capacity", &self.sender.max_capacity())
            .finish_non_exhaustive()
    }
}

impl Inbox {
    /// An inbox that holds up to `capacity` messages (at least one) before
    /// [`Inbox::deliver`] drops and [`Inbox::deliver_or_wait`] waits.
    pub fn new(capacity: usize) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let slot = Slot { receiver: Some(receiver), readers: 0, stopping: false };
        Self { sender, shared: Arc::new(Shared { slot: Mutex::new(slot), returned: Notify::new() }) }
    }

    /// Queues `envelope` for the node, never waiting: when the inbox is full
    /// the envelope is dropped (Raft retries) and this returns false. What a
    /// transport without flow control calls.
    pub fn deliver(&self, envelope: Envelope) -> bool {
        self.sender.try_send(envelope).is_ok()
    }

    /// Queues `envelope`, waiting while the inbox is full: what a transport
    /// with flow control calls, so that a node that falls behind slows its
    /// peers down (QUIC's streams stop being read). Never fails: the inbox
    /// holds its own reading end while no node reads it.
    pub async fn deliver_or_wait(&self, envelope: Envelope) {
        let _ = self.sender.send(envelope).await;
    }

    /// The next envelope in the inbox, waiting for one: for a program that
    /// reads an inbox without a node (a transport's tests or benchmarks).
    /// `None` while a node reads this inbox.
    pub async fn recv(&self) -> Option<Envelope> {
        let mut reader = self.try_take()?;
        reader.receiver().recv().await
    }

    /// The next envelope if one is queued, without waiting (see
    /// [`Inbox::recv`]). `None` if none is, or while a node reads this inbox.
    pub fn try_recv(&self) -> Option<Envelope> {
        self.try_take()?.receiver().try_recv().ok()
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
    receiver: mpsc::Receiver<Envelope>,
    /// Which reader of the inbox this is.
    number: u64,
    shared: Arc<Shared>,
}

impl InboxReader {
    pub(super) fn receiver(&mut self) -> &mut mpsc::Receiver<Envelope> {
        &mut self.receiver
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
