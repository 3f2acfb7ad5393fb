//! The TCP transport over mutual TLS (`TlsLayer`): the whole transport
//! contract, and the peers it must refuse: a certificate of another CA, a
//! valid certificate claiming another node's id, a server that is another
//! node than the one dialed, no TLS at all; and a node configured with
//! another node's identity, refused at start.

use raft_core::runtime::Inbox;
use raft_core::runtime::{Envelope, Transport};
use raft_core::testing::{transport_conformance, TransportHarness};
use raft_core::{Heartbeat, Message, MessageBody, NodeId};
use raft_net_tcp::handshake::{self, Channel, HandshakeError, Hello, Refusal};
use raft_net_tcp::{StreamLayer, TcpConfig, TcpError, TcpTransport, TlsLayer};
use raft_net_tls::{ClusterCa, NodeCertificate, NodeIdentity, Validity};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const CLUSTER: u64 = 77;
const DEADLINE: Duration = Duration::from_secs(20);

fn cluster_ca() -> ClusterCa {
    ClusterCa::generate("tls-test", Validity::days_from_now(30)).expect("a CA")
}

fn identity(ca: &ClusterCa, node: NodeId) -> NodeIdentity {
    let cert = ca.issue(node, Validity::days_from_now(30)).expect("a certificate");
    NodeIdentity::from_pem(node, ca.cert_pem().as_bytes(), cert.cert_pem.as_bytes(), cert.key_pem.as_bytes())
        .expect("a valid identity")
}

fn layer(ca: &ClusterCa, node: NodeId) -> TlsLayer {
    TlsLayer::new(&identity(ca, node)).expect("a TLS layer")
}

fn heartbeat(from: NodeId, to: NodeId, round: u64) -> Envelope {
    Message { from, to, term: 1, body: MessageBody::Heartbeat(Heartbeat { commit: 0, round }) }.into()
}

fn config(id: NodeId) -> TcpConfig {
    TcpConfig::new(id, CLUSTER, "127.0.0.1:0".parse().unwrap())
}

async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    raft_core::testing::within(DEADLINE, what, future).await
}

/// A node whose inbox is a channel.
async fn node<L: StreamLayer>(config: TcpConfig, layer: L) -> (TcpTransport<L>, Inbox) {
    let inbox = Inbox::new(1 << 16);
    let transport = TcpTransport::bind_with(config, layer, inbox.clone()).await.expect("the transport binds");
    (transport, inbox)
}

/// Waits until `transport` has dropped at least `count` messages: every one
/// it was given, when they were `count` and none can get through.
async fn all_dropped<L: StreamLayer>(transport: &TcpTransport<L>, count: u64) {
    within("dropping every message", async {
        while transport.dropped() < count {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Sends `from`'s marker heartbeat until `inbox` receives it, and fails if
/// anything from `intruder` arrives first (a node delivers in the order it
/// reads, so what the intruder got through would come before the marker
/// sent after it was refused).
async fn good_peer_delivers<L: StreamLayer>(
    from: &TcpTransport<L>,
    to: NodeId,
    inbox: &Inbox,
    marker: u64,
    intruder: NodeId,
) {
    within("the good peer's marker arriving", async {
        loop {
            from.send(heartbeat(from.id(), to, marker));
            if let Ok(Some(message)) = tokio::time::timeout(Duration::from_millis(100), inbox.recv()).await {
                assert_ne!(message.from(), intruder, "the intruder's message was delivered: {message:?}");
                if message == heartbeat(from.id(), to, marker) {
                    return;
                }
            }
        }
    })
    .await;
}

/// TLS nodes on loopback, all with certificates of one CA.
struct Harness {
    ca: ClusterCa,
    addresses: BTreeMap<NodeId, SocketAddr>,
    transports: BTreeMap<NodeId, TcpTransport<TlsLayer>>,
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
    type Transport = TcpTransport<TlsLayer>;

    async fn start(&mut self, id: NodeId) -> (TcpTransport<TlsLayer>, Inbox) {
        let config = config(id)
            .with_peers(self.addresses.iter().filter(|(&other, _)| other != id).map(|(&i, &a)| (i, a)));
        let (transport, inbox) = node(config, layer(&self.ca, id)).await;
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

    /// Completes the TLS handshake and the transport's of every connection,
    /// then never reads.
    async fn start_unresponsive(&mut self, id: NodeId) -> Box<dyn std::any::Any + Send> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let layer = layer(&self.ca, id);
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, peer)) = listener.accept().await {
                let Ok(mut stream) = layer.accept(tcp, peer).await else { continue };
                if handshake::accept(&mut stream, CLUSTER, id, |_| true).await.is_ok() {
                    held.push(stream);
                }
            }
        });
        self.addresses.insert(id, addr);
        self.announce(id, addr);
        Box::new(AbortOnDrop(silent))
    }

    /// A TLS connection with a valid certificate for `from`, past both
    /// handshakes: what a compromised member could send.
    async fn hostile_connection(
        &mut self,
        from: NodeId,
        to: NodeId,
    ) -> Option<Box<dyn tokio::io::AsyncWrite + Unpin + Send>> {
        self.transports[&to].set_peer(from, "127.0.0.1:9".parse().unwrap());
        let addr = self.addresses[&to];
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let mut stream = within("the TLS handshake", layer(&self.ca, from).connect(tcp, to, addr))
            .await
            .expect("the TLS handshake succeeds");
        let hello = Hello::new(CLUSTER, from, to, Channel::Messages);
        within("the handshake", handshake::dial(&mut stream, hello)).await.expect("the handshake succeeds");
        Some(Box::new(stream))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_conforms() {
    let mut harness = Harness { ca: cluster_ca(), addresses: BTreeMap::new(), transports: BTreeMap::new() };
    transport_conformance(&mut harness).await;
}

#[tokio::test]
async fn a_certificate_of_another_ca_is_refused_both_ways_and_the_good_peer_keeps_delivering() {
    let ca = cluster_ca();
    let (two, two_inbox) = node(config(2), layer(&ca, 2)).await;
    let (one, _one_inbox) = node(config(1).with_peers([(2, two.local_addr())]), layer(&ca, 1)).await;
    // Node 3's certificate is well-formed and names node 3, but another CA
    // signed it.
    let stranger = cluster_ca();
    let (three, three_inbox) = node(config(3).with_peers([(2, two.local_addr())]), layer(&stranger, 3)).await;
    two.set_peer(1, one.local_addr());
    two.set_peer(3, three.local_addr());

    // The link works before the stranger tries: the check is not vacuous.
    good_peer_delivers(&one, 2, &two_inbox, 1, 3).await;
    for round in 0..20 {
        three.send(heartbeat(3, 2, round));
        two.send(heartbeat(2, 3, round));
    }
    all_dropped(&three, 20).await;
    all_dropped(&two, 20).await;

    // Above, each dialer refused the other's server certificate first. A
    // dialer that trusts this cluster's CA but presents the stranger's
    // certificate must be refused by the acceptor.
    let addr = two.local_addr();
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let stranger_cert = stranger.issue(3, Validity::days_from_now(30)).expect("a certificate");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(&ca, &stranger_cert)));
    // TLS 1.3: the client may finish before the server has judged its
    // certificate, so the refusal can surface in the transport's handshake.
    let outcome = within("the stranger's handshakes", async {
        let mut stream = connector.connect(raft_net_tls::server_name(2), tcp).await?;
        handshake::dial(&mut stream, Hello::new(CLUSTER, 3, 2, Channel::Messages)).await?;
        write_frame(&mut stream, &heartbeat(3, 2, 999)).await?;
        Ok::<_, HandshakeError>(())
    })
    .await;
    assert!(outcome.is_err(), "the acceptor took a certificate of another CA");

    good_peer_delivers(&one, 2, &two_inbox, 2, 3).await;
    assert!(three_inbox.try_recv().is_none(), "node 2 reached the stranger");
}

/// A client configuration trusting `ca` and presenting `cert`, whoever
/// signed it.
fn client_config(ca: &ClusterCa, cert: &NodeCertificate) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.certificate().clone()).expect("the CA is a valid root");
    let chain = CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM certificates");
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).expect("a PEM key");
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .expect("a client certificate");
    config.alpn_protocols = vec![raft_net_tls::ALPN_PROTOCOL.to_vec()];
    config
}

/// A TLS layer that does not say which node its certificate names, as a
/// modified node would not.
struct Impostor(TlsLayer);

#[async_trait::async_trait]
impl StreamLayer for Impostor {
    type Stream = <TlsLayer as StreamLayer>::Stream;

    async fn connect(&self, tcp: TcpStream, peer: NodeId, addr: SocketAddr) -> std::io::Result<Self::Stream> {
        self.0.connect(tcp, peer, addr).await
    }

    async fn accept(&self, tcp: TcpStream, addr: SocketAddr) -> std::io::Result<Self::Stream> {
        self.0.accept(tcp, addr).await
    }
}

#[tokio::test]
async fn a_valid_certificate_claiming_another_node_is_refused() {
    let ca = cluster_ca();
    let (two, two_inbox) = node(config(2), layer(&ca, 2)).await;
    let (one, _one_inbox) = node(config(1).with_peers([(2, two.local_addr())]), layer(&ca, 1)).await;
    two.set_peer(1, one.local_addr());
    two.set_peer(3, "127.0.0.1:9".parse().unwrap());
    let addr = two.local_addr();
    let three = layer(&ca, 3);

    // Node 3 claiming to be node 3 gets through, and its messages arrive:
    // the refusal below is about the claim, not the rig.
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let mut honest = within("TLS", three.connect(tcp, 2, addr)).await.expect("TLS handshake");
    within("handshake", handshake::dial(&mut honest, Hello::new(CLUSTER, 3, 2, Channel::Messages)))
        .await
        .expect("node 3 may be node 3");
    write_frame(&mut honest, &heartbeat(3, 2, 0)).await.expect("write");
    let first = within("node 3's message", two_inbox.recv()).await;
    assert_eq!(first, Some(heartbeat(3, 2, 0)));

    // Node 3's certificate claiming node 1 is refused, and says why.
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let mut impostor = within("TLS", three.connect(tcp, 2, addr)).await.expect("TLS handshake");
    let refused =
        within("handshake", handshake::dial(&mut impostor, Hello::new(CLUSTER, 1, 2, Channel::Messages)))
            .await;
    assert!(
        matches!(refused, Err(HandshakeError::Refused(Refusal::Unauthenticated))),
        "expected a refusal, got {refused:?}"
    );
    let _ = write_frame(&mut impostor, &heartbeat(1, 2, 666)).await;

    // So is a whole transport doing the same: it is node 1 to itself, with
    // node 3's certificate (under a layer that hides it from `bind_with`).
    let (impostor_node, _inbox) = node(config(1).with_peers([(2, addr)]), Impostor(three)).await;
    for round in 0..20 {
        impostor_node.send(heartbeat(1, 2, 1000 + round));
    }
    all_dropped(&impostor_node, 20).await;

    // The real node 1 still gets through, and nothing the impostors sent
    // was delivered.
    within("the real node 1's marker", async {
        loop {
            one.send(heartbeat(1, 2, 5000));
            if let Ok(Some(message)) =
                tokio::time::timeout(Duration::from_millis(100), two_inbox.recv()).await
            {
                assert!(
                    message == heartbeat(1, 2, 5000),
                    "only the real node 1's marker may arrive, got {message:?}"
                );
                return;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_plain_tcp_peer_cannot_talk_to_a_tls_node() {
    let ca = cluster_ca();
    let (tls, tls_inbox) = node(config(2), layer(&ca, 2)).await;
    let (plain, plain_inbox) =
        node(config(1).with_peers([(2, tls.local_addr())]), raft_net_tcp::PlainTcp).await;
    tls.set_peer(1, plain.local_addr());
    for round in 0..20 {
        plain.send(heartbeat(1, 2, round));
        tls.send(heartbeat(2, 1, round));
    }
    all_dropped(&plain, 20).await;
    all_dropped(&tls, 20).await;
    assert!(tls_inbox.try_recv().is_none(), "a plain message reached the TLS node");
    assert!(plain_inbox.try_recv().is_none(), "a TLS node's message reached the plain node");
}

async fn write_frame<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    message: &Envelope,
) -> std::io::Result<()> {
    let mut frame = Vec::new();
    raft_core::codec::encode_frame(message, &mut frame).expect("a heartbeat encodes");
    stream.write_all(&frame).await?;
    stream.flush().await
}

#[tokio::test]
async fn a_configuration_for_another_node_than_the_certificate_is_refused_at_bind() {
    let ca = cluster_ca();
    let refused = TcpTransport::bind_with(config(1), layer(&ca, 2), Inbox::default()).await;
    assert!(
        matches!(refused, Err(TcpError::LayerForAnotherNode { config: 1, layer: 2 })),
        "expected a refusal, got {refused:?}"
    );
}

#[tokio::test]
async fn a_dialer_refuses_a_server_whose_certificate_names_another_node() {
    let ca = cluster_ca();
    let (three, _three_inbox) = node(config(3), layer(&ca, 3)).await;
    let addr = three.local_addr();
    let one = layer(&ca, 1);
    // Dialing node 3 as node 3 works: the refusal below is about the name.
    let tcp = TcpStream::connect(addr).await.expect("connect");
    within("TLS", one.connect(tcp, 3, addr)).await.expect("node 3 is node 3");
    // Node 3 answering where node 2 was expected fails the TLS handshake,
    // before the transport's.
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let refused = within("TLS", one.connect(tcp, 2, addr)).await;
    assert!(refused.is_err(), "a dialer expecting node 2 took node 3's certificate");
}
