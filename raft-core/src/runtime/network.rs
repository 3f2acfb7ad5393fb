//! The in-process network tests and benchmarks use.

use super::Transport;
use std::sync::Arc;
use std::time::Duration;

/// An in-process network for tests and benchmarks: every node's transport
/// delivers straight into the other nodes' inbound queues, with fault hooks:
/// cut one link or every link of a node, lose a share of all messages, delay
/// them (which may reorder them), and heal.
#[derive(Clone, Default)]
pub struct InProcessNetwork {
    /// Read by every send, written only by the fault hooks: senders on
    /// different threads do not wait for each other.
    inner: Arc<std::sync::RwLock<NetworkInner>>,
    /// How many loss decisions were drawn (each from a hash of the count).
    draws: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Default)]
struct NetworkInner {
    nodes: std::collections::HashMap<crate::NodeId, super::Inbox>,
    cut: std::collections::HashSet<(crate::NodeId, crate::NodeId)>,
    /// Messages lost, per 2^32 sent.
    loss: u64,
    delay: Duration,
}

impl InProcessNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects node `id`: messages to it go to `inbox` (the one its node
    /// is started on), replacing the inbox it had.
    pub fn connect(&self, id: crate::NodeId, inbox: super::Inbox) {
        self.lock().nodes.insert(id, inbox);
    }

    /// Disconnects node `id` (as when it stops); messages to it are dropped.
    pub fn disconnect(&self, id: crate::NodeId) {
        self.lock().nodes.remove(&id);
    }

    /// The transport node `id` sends through.
    pub fn transport(&self, id: crate::NodeId) -> InProcessTransport {
        InProcessTransport { network: self.clone(), from: id }
    }

    /// Drops everything between `id` and every other node, both ways.
    pub fn isolate(&self, id: crate::NodeId) {
        let mut inner = self.lock();
        let others: Vec<crate::NodeId> = inner.nodes.keys().copied().filter(|&o| o != id).collect();
        for other in others {
            inner.cut.insert((id, other));
            inner.cut.insert((other, id));
        }
    }

    /// Drops what `from` sends to `to` (one way: replies still flow back).
    pub fn cut(&self, from: crate::NodeId, to: crate::NodeId) {
        self.lock().cut.insert((from, to));
    }

    /// Loses each message with probability `probability` (0 to 1).
    pub fn set_loss(&self, probability: f64) {
        self.lock().loss = (probability.clamp(0.0, 1.0) * (1u64 << 32) as f64) as u64;
    }

    /// Delivers each message `delay` after it is sent (from a timer task, so
    /// messages may overtake each other). Needs a tokio runtime when nonzero.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Restores every link, and ends losses and delays.
    pub fn heal(&self) {
        let mut inner = self.lock();
        inner.cut.clear();
        inner.loss = 0;
        inner.delay = Duration::ZERO;
    }

    fn lock(&self) -> std::sync::RwLockWriteGuard<'_, NetworkInner> {
        self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, NetworkInner> {
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the next message is lost, at the loss rate `loss` per 2^32.
    fn lose(&self, loss: u64) -> bool {
        let draw = self.draws.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::rng::Rng::new(draw).next_u64() >> 32 < loss
    }
}

/// One node's side of an [`InProcessNetwork`].
pub struct InProcessTransport {
    network: InProcessNetwork,
    from: crate::NodeId,
}

impl Transport for InProcessTransport {
    fn send(&self, envelope: super::Envelope) {
        let to = envelope.to();
        let (deliver, delay) = {
            let inner = self.network.read();
            if inner.cut.contains(&(self.from, to)) {
                return;
            }
            if inner.loss > 0 && self.network.lose(inner.loss) {
                return;
            }
            let Some(deliver) = inner.nodes.get(&to) else { return };
            (deliver.clone(), inner.delay)
        };
        if delay.is_zero() {
            deliver.deliver(envelope);
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                deliver.deliver(envelope);
            });
        }
    }
}
