//! The in-process network tests and benchmarks use.

use super::Transport;

/// An in-process network for tests and benchmarks: every node's transport
/// delivers straight into the other nodes' inbound queues, with fault hooks
/// (cut links, isolate a node, heal).
#[derive(Clone, Default)]
pub struct InProcessNetwork {
    inner: std::sync::Arc<std::sync::Mutex<NetworkInner>>,
}

#[derive(Default)]
struct NetworkInner {
    nodes: std::collections::HashMap<crate::NodeId, Box<dyn Fn(crate::Message) + Send + Sync>>,
    cut: std::collections::HashSet<(crate::NodeId, crate::NodeId)>,
}

impl InProcessNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects node `id`: messages to it are handed to `deliver` (usually
    /// [`super::Raft::receive`] of its handle).
    pub fn connect(&self, id: crate::NodeId, deliver: impl Fn(crate::Message) + Send + Sync + 'static) {
        self.lock().nodes.insert(id, Box::new(deliver));
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

    /// Restores every link.
    pub fn heal(&self) {
        self.lock().cut.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetworkInner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One node's side of an [`InProcessNetwork`].
pub struct InProcessTransport {
    network: InProcessNetwork,
    from: crate::NodeId,
}

impl Transport for InProcessTransport {
    fn send(&self, message: crate::Message) {
        let inner = self.network.lock();
        if inner.cut.contains(&(self.from, message.to)) {
            return;
        }
        if let Some(deliver) = inner.nodes.get(&message.to) {
            deliver(message);
        }
    }
}
