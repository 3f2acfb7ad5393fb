//! The in-process network keeps the whole `Transport` contract.

use raft_core::runtime::{Envelope, InProcessNetwork, InProcessTransport, Inbox};
use raft_core::testing::{transport_conformance, TransportHarness};
use raft_core::NodeId;

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

/// A transport that loses envelopes: every other one, or (`forwards_only`)
/// every forwarded request, to show the suite catches either.
struct Lossy {
    inner: InProcessTransport,
    flip: std::sync::atomic::AtomicBool,
    forwards_only: bool,
}

impl raft_core::runtime::Transport for Lossy {
    fn send(&self, envelope: Envelope) {
        let lost = if self.forwards_only {
            matches!(envelope, Envelope::Forward(_))
        } else {
            !self.flip.fetch_xor(true, std::sync::atomic::Ordering::Relaxed)
        };
        if !lost {
            self.inner.send(envelope);
        }
    }
}

struct LossyHarness {
    inner: Harness,
    forwards_only: bool,
}

#[async_trait::async_trait]
impl TransportHarness for LossyHarness {
    type Transport = Lossy;

    async fn start(&mut self, id: NodeId) -> (Lossy, Inbox) {
        let (inner, received) = self.inner.start(id).await;
        let flip = std::sync::atomic::AtomicBool::new(false);
        (Lossy { inner, flip, forwards_only: self.forwards_only }, received)
    }

    async fn stop(&mut self, id: NodeId) {
        self.inner.stop(id).await;
    }
}

#[tokio::test]
#[should_panic(expected = "messages to a peer must arrive in order, intact")]
async fn the_suite_catches_a_transport_that_loses_messages() {
    let mut harness = LossyHarness { inner: Harness(InProcessNetwork::new()), forwards_only: false };
    transport_conformance(&mut harness).await;
}

#[tokio::test]
#[should_panic(expected = "a forwarded request must arrive intact")]
async fn the_suite_catches_a_transport_that_loses_forwarded_requests() {
    let mut harness = LossyHarness { inner: Harness(InProcessNetwork::new()), forwards_only: true };
    transport_conformance(&mut harness).await;
}
