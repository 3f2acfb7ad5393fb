//! What the core task waits on ([`Inputs`]): its clock, the three queues
//! that feed it (handles' requests, peers' envelopes, the I/O tasks'
//! events), and the I/O tasks themselves, which must not end before it
//! does. One call, [`Inputs::poll_next`], says which comes first.

use super::inbox::InboxReader;
use super::{Envelope, Event, Failure, Request, StateMachine, Task, TaskEnd};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Sleep;

/// What woke the core task: one input, taken from its queue.
pub(super) enum Wake<SM: StateMachine> {
    Tick,
    /// An I/O task ended on its own (its name, and how).
    Ended(Task, Result<(), JoinError>),
    Envelope(Envelope),
    /// A request, or `None` once every handle is gone.
    Request(Option<Request<SM>>),
    Event(Event),
}

/// The core task's queues and the I/O tasks it watches.
pub(super) struct Inputs<SM: StateMachine> {
    pub requests: mpsc::Receiver<Request<SM>>,
    pub inbox: InboxReader,
    pub events: mpsc::UnboundedReceiver<Event>,
    pub writer: IoTask,
    pub applier: IoTask,
}

impl<SM: StateMachine> Inputs<SM> {
    pub fn new(
        requests: mpsc::Receiver<Request<SM>>,
        inbox: InboxReader,
        events: mpsc::UnboundedReceiver<Event>,
        writer: JoinHandle<()>,
        applier: JoinHandle<()>,
    ) -> Self {
        Self { requests, inbox, events, writer: IoTask::new(writer), applier: IoTask::new(applier) }
    }

    /// Handles that abort the writer and the applier (for [`super::Raft::crash`]).
    #[cfg(feature = "testing")]
    pub fn abort_handles(&self) -> [tokio::task::AbortHandle; 2] {
        [self.writer.handle.abort_handle(), self.applier.handle.abort_handle()]
    }

    /// The next input: a due tick first, then an I/O task that ended, then
    /// the three queues, looked at from the one `first` names (0 events, 1
    /// envelopes, 2 requests) on. The caller draws `first` from the node's
    /// seeded RNG instead of letting tokio::select! draw from tokio's, which
    /// is seeded per runtime and cannot be set (without tokio_unstable): as
    /// fair, and a simulator on one thread replays a seed exactly.
    pub fn poll_next(
        &mut self,
        next_tick: Pin<&mut Sleep>,
        first: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Wake<SM>> {
        if next_tick.poll(cx).is_ready() {
            return Poll::Ready(Wake::Tick);
        }
        if let Poll::Ready(ended) = self.writer.poll_end(cx) {
            return Poll::Ready(Wake::Ended(Task::LogWriter, ended));
        }
        if let Poll::Ready(ended) = self.applier.poll_end(cx) {
            return Poll::Ready(Wake::Ended(Task::Applier, ended));
        }
        for turn in 0..3 {
            let wake = match (first + turn) % 3 {
                0 => match self.events.poll_recv(cx) {
                    Poll::Ready(Some(event)) => Some(Wake::Event(event)),
                    _ => None,
                },
                1 => match self.inbox.poll_recv(cx) {
                    Poll::Ready(Some(envelope)) => Some(Wake::Envelope(envelope)),
                    _ => None,
                },
                _ => match self.requests.poll_recv(cx) {
                    Poll::Ready(request) => Some(Wake::Request(request)),
                    Poll::Pending => None,
                },
            };
            if let Some(wake) = wake {
                return Poll::Ready(wake);
            }
        }
        Poll::Pending
    }

    /// The failure a task reported before it ended, if it did (a storage
    /// error says more than "the task stopped").
    pub fn reported_failure(&mut self) -> Option<Failure> {
        while let Ok(event) = self.events.try_recv() {
            if let Event::Failed(error) = event {
                return Some(error);
            }
        }
        None
    }
}

/// An I/O task the core task watches: one that ends on its own has failed
/// (a panic in the state machine or the store), and the node must not run
/// on without it.
pub(super) struct IoTask {
    handle: JoinHandle<()>,
    ended: bool,
}

impl IoTask {
    fn new(handle: JoinHandle<()>) -> Self {
        Self { handle, ended: false }
    }

    /// How the task ended, once, when it does.
    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), JoinError>> {
        if self.ended {
            return Poll::Pending;
        }
        let ended = Pin::new(&mut self.handle).poll(cx);
        self.ended = ended.is_ready();
        ended
    }

    /// Waits for the task to finish, unless it already has.
    pub async fn finish(self) {
        if !self.ended {
            let _ = self.handle.await;
        }
    }
}

/// Why an I/O task that ended on its own stopped the node.
pub(super) fn task_failure(task: Task, ended: Result<(), JoinError>) -> Failure {
    let end = match ended {
        Err(error) if error.is_panic() => TaskEnd::Panicked,
        Err(_) => TaskEnd::Cancelled,
        Ok(()) => TaskEnd::Stopped,
    };
    Failure::TaskEnded { task, end }
}
