//! The TCP transport keeps the whole `Transport` contract, hostile peers
//! included.

use raft_core::runtime::Inbox;
use raft_core::testing::{transport_conformance, TransportHarness};
use raft_core::NodeId;
use raft_net_tcp::handshake::{self, Channel, Hello};
use raft_net_tcp::{TcpConfig, TcpTransport};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

const CLUSTER: u64 = 42;

/// Nodes on loopback, each on a port of its own choosing; a node that
/// (re)starts gets a new port, and every other node learns it through
/// `set_peer`, as after a membership change.
#[derive(Default)]
struct Harness {
    addresses: BTreeMap<NodeId, SocketAddr>,
    transports: BTreeMap<NodeId, TcpTransport>,
}

impl Harness {
    fn announce(&self, id: NodeId, addr: SocketAddr) {
        for (other, transport) in &self.transports {
            if *other != id {
                transport.set_peer(id, addr);
            }
        }
    }
}

/// A task aborted when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[async_trait::async_trait]
impl TransportHarness for Harness {
    type Transport = TcpTransport;

    async fn start(&mut self, id: NodeId) -> (TcpTransport, Inbox) {
        let inbox = Inbox::new(1 << 16);
        let config = TcpConfig::new(id, CLUSTER, "127.0.0.1:0".parse().unwrap())
            .with_peers(self.addresses.iter().filter(|(&other, _)| other != id).map(|(&i, &a)| (i, a)));
        let transport = TcpTransport::bind(config, inbox.clone()).await.expect("the transport binds");
        self.addresses.insert(id, transport.local_addr());
        self.transports.insert(id, transport.clone());
        self.announce(id, transport.local_addr());
        (transport, inbox)
    }

    async fn stop(&mut self, id: NodeId) {
        if let Some(transport) = self.transports.remove(&id) {
            transport.close();
        }
    }

    /// A listener that completes the handshake of every connection and then
    /// never reads from it: the sender's socket buffers fill and its writes
    /// stall.
    async fn start_unresponsive(&mut self, id: NodeId) -> Box<dyn std::any::Any + Send> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                if handshake::accept(&mut stream, CLUSTER, id, |_| true).await.is_ok() {
                    held.push(stream);
                }
            }
        });
        self.addresses.insert(id, addr);
        self.announce(id, addr);
        Box::new(AbortOnDrop(silent))
    }

    async fn hostile_connection(
        &mut self,
        from: NodeId,
        to: NodeId,
    ) -> Option<Box<dyn tokio::io::AsyncWrite + Unpin + Send>> {
        // The hostile node is a member: `to` knows it (at an address where
        // nothing listens; nothing is sent to it).
        self.transports[&to].set_peer(from, "127.0.0.1:9".parse().unwrap());
        let mut stream = TcpStream::connect(self.addresses[&to]).await.expect("connect");
        let hello = Hello::new(CLUSTER, from, to, Channel::Messages);
        tokio::time::timeout(Duration::from_secs(20), handshake::dial(&mut stream, hello))
            .await
            .expect("the handshake finishes")
            .expect("the handshake succeeds");
        Some(Box::new(stream))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_conforms() {
    transport_conformance(&mut Harness::default()).await;
}
