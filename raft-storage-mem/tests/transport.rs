//! The in-process network keeps the whole `Transport` contract.

use raft_core::runtime::{InProcessNetwork, InProcessTransport, Inbox};
use raft_core::testing::{transport_conformance, TransportHarness};
use raft_core::{Message, NodeId};

struct Harness(InProcessNetwork);

#[async_trait::async_trait]
impl TransportHarness for Harness {
    type Transport = InProcessTransport;

    async fn start(&mut self, id: NodeId) -> (InProcessTransport, Inbox) {
        let inbox = Inbox::new(1 << 16);
        self.0.connect(id, inbox.clone());
        (self.0.transport(id), inbox)
    }

    async fn stop(&mut self, id: NodeId) {
        self.0.disconnect(id);
    }
}

#[tokio::test]
async fn the_in_process_network_conforms() {
    transport_conformance(&mut Harness(InProcessNetwork::new())).await;
}

/// A transport that loses every other message, to show the suite catches it.
struct Lossy(InProcessTransport, std::sync::atomic::AtomicBool);

impl raft_core::runtime::Transport for Lossy {
    fn send(&self, message: Message) {
        if self.1.fetch_xor(true, std::sync::atomic::Ordering::Relaxed) {
            self.0.send(message);
        }
    }
}

struct LossyHarness(Harness);

#[async_trait::async_trait]
impl TransportHarness for LossyHarness {
    type Transport = Lossy;

    async fn start(&mut self, id: NodeId) -> (Lossy, Inbox) {
        let (transport, received) = self.0.start(id).await;
        (Lossy(transport, std::sync::atomic::AtomicBool::new(false)), received)
    }

    async fn stop(&mut self, id: NodeId) {
        self.0.stop(id).await;
    }
}

#[tokio::test]
#[should_panic(expected = "messages to a peer must arrive in order, intact")]
async fn the_suite_catches_a_transport_that_loses_messages() {
    transport_conformance(&mut LossyHarness(Harness(InProcessNetwork::new()))).await;
}
