//! The pause hook of tests (feature `testing`): [`super::Raft::pause`]
//! freezes a node's three tasks as SIGSTOP freezes a process, and
//! [`super::Raft::resume`] lets them take up their backlog.
//!
//! Each task passes its [`PauseGate`] after it takes an input from a channel
//! and before it acts on it (and the writer again before it releases what
//! waited on a write), so a paused node processes nothing: requests, inbound
//! messages and the tasks' reports to each other queue in their channels,
//! and time (tokio's, paused or not) goes on. A paused task awaits a `watch`
//! channel, so it never blocks its thread, and tokio's paused test clock
//! still auto-advances while every task waits.
//!
//! Without the feature the gate is an empty type and passing it compiles to
//! nothing.

#[cfg(feature = "testing")]
use tokio::sync::watch;

/// What a handle pauses and resumes its node with.
#[derive(Clone)]
pub(super) struct PauseSwitch {
    #[cfg(feature = "testing")]
    paused: std::sync::Arc<watch::Sender<bool>>,
}

impl PauseSwitch {
    /// A switch, not paused, and the gate it controls.
    pub(super) fn new() -> (Self, PauseGate) {
        #[cfg(feature = "testing")]
        {
            let (paused, gate) = watch::channel(false);
            (Self { paused: std::sync::Arc::new(paused) }, PauseGate { paused: gate })
        }
        #[cfg(not(feature = "testing"))]
        (Self {}, PauseGate {})
    }

    /// Pauses (`true`) or resumes (`false`) every task behind the gate.
    #[cfg(feature = "testing")]
    pub(super) fn set(&self, paused: bool) {
        self.paused.send_replace(paused);
    }
}

/// Where a task waits while its node is paused. Every task has its own clone.
#[derive(Clone)]
pub(super) struct PauseGate {
    #[cfg(feature = "testing")]
    paused: watch::Receiver<bool>,
}

impl PauseGate {
    /// Returns at once unless the node is paused; otherwise once it is
    /// resumed (or every handle is gone, since then nothing could resume it).
    #[inline]
    pub(super) async fn pass(&mut self) {
        #[cfg(feature = "testing")]
        if *self.paused.borrow() {
            tracing::debug!("paused");
            let _ = self.paused.wait_for(|paused| !paused).await;
            tracing::debug!("resumed");
        }
    }

    /// Whether the node is paused now: a task that takes several inputs in
    /// one go stops taking them.
    #[inline]
    pub(super) fn is_paused(&self) -> bool {
        #[cfg(feature = "testing")]
        return *self.paused.borrow();
        #[cfg(not(feature = "testing"))]
        false
    }
}
