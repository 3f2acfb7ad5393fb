//! What the QUIC tests share: certificates, transports on loopback port 0,
//! raw QUIC clients for playing an intruder, and deadlines.

#![allow(dead_code)] // Each test file uses its own part.

use raft_core::runtime::{Envelope, Inbox};
use raft_core::{Heartbeat, Message, MessageBody, NodeId};
use raft_net_quic::{QuicConfig, QuicTransport};
use raft_net_tls::{ClusterCa, NodeIdentity, Validity};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long a test waits for what should happen.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The cluster id the tests' nodes share.
pub const CLUSTER: &str = "test-cluster";

/// Awaits `future`, failing the test if it takes longer than the deadline.
pub async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    raft_core::testing::within(DEADLINE, what, future).await
}

pub fn ca() -> ClusterCa {
    ClusterCa::generate(CLUSTER, Validity::days_from_now(30)).expect("a CA")
}

pub fn identity(ca: &ClusterCa, node: NodeId) -> NodeIdentity {
    let cert = ca.issue(node, Validity::days_from_now(30)).expect("a node certificate");
    NodeIdentity::from_pem(node, ca.cert_pem().as_bytes(), cert.cert_pem.as_bytes(), cert.key_pem.as_bytes())
        .expect("a valid identity")
}

/// Settings for loopback: port 0, and reconnects capped at half a second so
/// restarts are noticed quickly.
pub fn config() -> QuicConfig {
    let mut config = QuicConfig::new(CLUSTER, "127.0.0.1:0".parse().unwrap());
    config.reconnect_max = Duration::from_millis(500);
    config
}

/// Node `node`'s transport, bound on loopback, and its inbox.
pub async fn bind(ca: &ClusterCa, node: NodeId, config: QuicConfig) -> (QuicTransport, Inbox) {
    let inbox = Inbox::new(1 << 16);
    let transport =
        QuicTransport::bind(config, &identity(ca, node), inbox.clone()).await.expect("the transport binds");
    (transport, inbox)
}

pub fn addr(transport: &QuicTransport) -> SocketAddr {
    transport.local_addr()
}

pub fn heartbeat_message(from: NodeId, to: NodeId, round: u64) -> Message {
    Message { from, to, term: 1, body: MessageBody::Heartbeat(Heartbeat { commit: round, round }) }
}

pub fn heartbeat(from: NodeId, to: NodeId, round: u64) -> Envelope {
    heartbeat_message(from, to, round).into()
}

/// The next envelope in `inbox`, within the deadline.
pub async fn receive(inbox: &Inbox) -> Envelope {
    within("a message", inbox.recv()).await.expect("no node reads the inbox")
}

/// A bare QUIC client endpoint speaking with `tls`: what an intruder uses.
pub fn raw_client(tls: rustls::ClientConfig) -> quinn::Endpoint {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).expect("a client endpoint");
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("a QUIC client configuration");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
}

/// How a connection attempt ended for the client.
#[derive(Debug)]
pub enum Outcome {
    /// The handshake failed.
    HandshakeFailed(quinn::ConnectionError),
    /// The connection opened, then the server closed it.
    Closed(quinn::ConnectionError),
}

/// Dials node `node` at `at` from `endpoint`, runs `then` on the
/// connection, and waits (keeping what `then` returns, say its streams,
/// alive) for the server to end the connection.
pub async fn attempt<F, Fut, T>(endpoint: &quinn::Endpoint, at: SocketAddr, node: NodeId, then: F) -> Outcome
where
    F: FnOnce(quinn::Connection) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let connecting = endpoint.connect(at, &raft_net_tls::node_name(node)).expect("a connection attempt");
    match within("the handshake", connecting).await {
        Err(error) => Outcome::HandshakeFailed(error),
        Ok(connection) => {
            let kept = within("the client's part", then(connection.clone())).await;
            let closed = within("the server closing the connection", connection.closed()).await;
            drop(kept);
            Outcome::Closed(closed)
        }
    }
}

/// The application close code in `outcome`, if the server closed it so.
pub fn close_code(outcome: &Outcome) -> Option<u32> {
    match outcome {
        Outcome::Closed(quinn::ConnectionError::ApplicationClosed(close)) => {
            Some(u32::try_from(close.error_code.into_inner()).unwrap_or(u32::MAX))
        }
        _ => None,
    }
}

/// A rustls client configuration presenting `chain` and `key` (or nothing)
/// and trusting `ca`: to make the server, not the client, do the refusing.
pub fn client_tls(
    ca: &ClusterCa,
    certificate: Option<&raft_net_tls::NodeCertificate>,
) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.certificate().clone()).unwrap();
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(Arc::new(roots));
    let mut config = match certificate {
        None => builder.with_no_client_auth(),
        Some(certificate) => {
            let chain = rustls::pki_types::CertificateDer::pem_slice_iter(certificate.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key =
                rustls::pki_types::PrivateKeyDer::from_pem_slice(certificate.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = vec![raft_net_tls::ALPN_PROTOCOL.to_vec()];
    config
}
