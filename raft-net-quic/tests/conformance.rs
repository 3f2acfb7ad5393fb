//! The QUIC transport keeps the whole `Transport` contract, over loopback
//! with mutual TLS.

mod common;

use common::{addr, bind, ca, config};
use raft_core::runtime::Inbox;
use raft_core::testing::{transport_conformance, TransportHarness};
use raft_core::NodeId;
use raft_net_quic::QuicTransport;
use raft_net_tls::ClusterCa;
use std::collections::HashMap;

/// Nodes on loopback; starting one tells every running node its address,
/// as an operator (or a membership change) would.
struct Harness {
    ca: ClusterCa,
    running: HashMap<NodeId, QuicTransport>,
}

#[async_trait::async_trait]
impl TransportHarness for Harness {
    type Transport = QuicTransport;

    async fn start(&mut self, id: NodeId) -> (QuicTransport, Inbox) {
        let (transport, inbox) = bind(&self.ca, id, config()).await;
        for (&other, running) in &self.running {
            running.set_peer(id, addr(&transport));
            transport.set_peer(other, addr(running));
        }
        self.running.insert(id, transport.clone());
        (transport, inbox)
    }

    async fn stop(&mut self, id: NodeId) {
        if let Some(transport) = self.running.remove(&id) {
            transport.close();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quic_transport_conforms() {
    transport_conformance(&mut Harness { ca: ca(), running: HashMap::new() }).await;
}
