//! The outbox: what the node has for its caller between two `Ready`s.
//!
//! Handlers never touch a [`crate::Ready`]; they put what they produce here
//! (messages, confirmed reads, a snapshot to install, a purge), and
//! [`crate::RawNode::ready`] drains it all at once. That keeps `Core` to
//! protocol state, and makes "does the caller have anything to do?" one
//! question ([`Outbox::is_empty`]).
//!
//! Invariants: a message is in exactly one of the two queues, chosen by the
//! durability gate when it was queued (`durability.rs`), and never moves
//! between them; everything queued leaves in the next `Ready`, in the order
//! it was queued.

use crate::{Index, LogAfterInstall, Message, ReadState, Ready, Snapshot, SnapshotInstall, SoftState};

/// What the next `Ready` hands out besides writes and committed entries.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// Messages that depend on nothing unpersisted.
    messages: Vec<Message>,
    /// Messages held until this `Ready`'s writes are durable.
    persisted_messages: Vec<Message>,
    /// Reads confirmed since the last `Ready`.
    read_states: Vec<ReadState>,
    /// A received snapshot for the caller to install, with what storage
    /// does to its log.
    snapshot_to_install: Option<SnapshotInstall>,
    /// Log entries up to here may be purged from storage.
    purge_to: Option<Index>,
    /// The soft state last reported, to report only changes.
    reported: SoftState,
}

impl Outbox {
    /// An empty outbox of a node that has reported `reported` (its role at
    /// start, so that only changes are reported).
    pub(crate) fn new(reported: SoftState) -> Self {
        Self {
            messages: Vec::new(),
            persisted_messages: Vec::new(),
            read_states: Vec::new(),
            snapshot_to_install: None,
            purge_to: None,
            reported,
        }
    }

    /// Queues `message`, behind this `Ready`'s writes if `held`.
    pub(crate) fn send(&mut self, message: Message, held: bool) {
        if held {
            self.persisted_messages.push(message);
        } else {
            self.messages.push(message);
        }
    }

    /// A read has become safe to serve here.
    pub(crate) fn read_ready(&mut self, state: ReadState) {
        self.read_states.push(state);
    }

    /// Hands `snapshot`, received from the leader, to the caller to install,
    /// doing `log` to the stored log. It replaces one queued earlier (which
    /// storage then never sees): if that one discarded the log, so must
    /// this one, since storage still holds what the core dropped then.
    pub(crate) fn install_snapshot(&mut self, snapshot: Snapshot, log: LogAfterInstall) {
        let log = match self.snapshot_to_install.take() {
            Some(SnapshotInstall { log: LogAfterInstall::Discard, .. }) => LogAfterInstall::Discard,
            _ => log,
        };
        self.snapshot_to_install = Some(SnapshotInstall { snapshot, log });
    }

    /// Lets storage purge the log up to and including `index`.
    pub(crate) fn purge_to(&mut self, index: Index) {
        self.purge_to = Some(index);
    }

    /// Whether nothing is queued and `soft_state` was already reported.
    pub(crate) fn is_empty(&self, soft_state: SoftState) -> bool {
        self.messages.is_empty()
            && self.persisted_messages.is_empty()
            && self.read_states.is_empty()
            && self.snapshot_to_install.is_none()
            && self.purge_to.is_none()
            && soft_state == self.reported
    }

    /// Moves everything queued into `ready`, and `soft_state` too if it
    /// changed since the last report.
    pub(crate) fn drain_into(&mut self, ready: &mut Ready, soft_state: SoftState) {
        ready.messages = std::mem::take(&mut self.messages);
        ready.persisted_messages = std::mem::take(&mut self.persisted_messages);
        ready.read_states = std::mem::take(&mut self.read_states);
        ready.snapshot = self.snapshot_to_install.take();
        ready.purge_to = self.purge_to.take();
        let reported = std::mem::replace(&mut self.reported, soft_state);
        ready.soft_state = (reported != soft_state).then_some(soft_state);
    }
}
