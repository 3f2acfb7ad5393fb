//! The queue a node's inbound [`Envelope`]s wait in ([`Inbox`]). It exists
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

use super::Envelope;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::mpsc;

/// How many envelopes an [`Inbox::default`] holds.
pub const DEFAULT_INBOX_CAPACITY: usize = 4096;

/// Where a transport delivers the [`Envelope`]s peers send, for the node
/// started on it ([`super::Raft::start`]). Cheap to clone: every clone is
/// the same queue. Envelopes delivered before the node starts wait in it.
#[derive(Clone)]
pub struct Inbox {
    sender: mpsc::Sender<Envelope>,
    /// The reading end while no node reads it.
    receiver: Arc<Mutex<Option<mpsc::Receiver<Envelope>>>>,
}

impl Default for Inbox {
    /// An inbox of [`DEFAULT_INBOX_CAPACITY`] envelopes.
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
    /// An inbox that holds up to `capacity` envelopes (at least one) before
    /// [`Inbox::deliver`] drops and [`Inbox::deliver_or_wait`] waits.
    pub fn new(capacity: usize) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        Self { sender, receiver: Arc::new(Mutex::new(Some(receiver))) }
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
        let mut reader = self.take()?;
        reader.receiver().recv().await
    }

    /// The next envelope if one is queued, without waiting (see
    /// [`Inbox::recv`]). `None` if none is, or while a node reads this inbox.
    pub fn try_recv(&self) -> Option<Envelope> {
        self.take()?.receiver().try_recv().ok()
    }

    /// Takes the reading end for a node, if no node has it.
    pub(super) fn take(&self) -> Option<InboxReader> {
        let receiver = self.slot().take()?;
        Some(InboxReader { receiver, slot: self.receiver.clone() })
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<mpsc::Receiver<Envelope>>> {
        self.receiver.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A node's reading end of its [`Inbox`], handed back when dropped (the
/// node stopped, or its task was aborted), so the inbox can be read again.
pub(super) struct InboxReader {
    receiver: mpsc::Receiver<Envelope>,
    slot: Arc<Mutex<Option<mpsc::Receiver<Envelope>>>>,
}

impl InboxReader {
    pub(super) fn receiver(&mut self) -> &mut mpsc::Receiver<Envelope> {
        &mut self.receiver
    }
}

impl Drop for InboxReader {
    fn drop(&mut self) {
        // A closed stand-in takes the receiver's place for the last moment
        // of this reader's life.
        let (_, closed) = mpsc::channel(1);
        let receiver = std::mem::replace(&mut self.receiver, closed);
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(receiver);
    }
}
