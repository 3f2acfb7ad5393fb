//! Mutual TLS between nodes (feature `tls`): [`TlsLayer`], a
//! [`StreamLayer`] running rustls (through tokio-rustls) with the cluster
//! certificates `raft-net-tls` loads, the same ones the QUIC transport uses.
//!
//! Both ends present a certificate signed by the cluster CA, and each checks
//! that the other is the node it means to talk to:
//!
//! - **dialing** node `n`, the layer asks rustls to check that the server's
//!   certificate names `n` ([`raft_net_tls::server_name`]);
//! - **accepting**, the dialer's certificate only says which node it is: the
//!   id it claims in the transport's handshake is checked against it
//!   ([`StreamLayer::verify_peer`], with [`NodeIdentity::verify_peer`])
//!   before the handshake is answered, so a node with a valid certificate
//!   cannot speak for another node.
//!
//! TLS 1.3 only, ALPN `raft/1`, the `ring` provider, no 0-RTT: the
//! configurations [`NodeIdentity::server_config`] and
//! [`NodeIdentity::client_config`] build. A peer without TLS, or with a
//! certificate of another CA, fails the TLS handshake and never reaches the
//! transport's.

use crate::layer::{PeerRejected, StreamLayer};
use async_trait::async_trait;
use raft_core::NodeId;
use raft_net_tls::{server_name, NodeIdentity, TlsError};
use std::net::SocketAddr;
use std::sync::Arc;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

/// Mutual TLS under the transport, as the node its identity is for: pass it
/// to [`TcpTransport::bind_with`](crate::TcpTransport::bind_with) with a
/// [`TcpConfig`](crate::TcpConfig) whose `id` is that node (its peers check
/// its certificate against that id; `bind_with` refuses another id with
/// [`TcpError::LayerForAnotherNode`](crate::TcpError::LayerForAnotherNode)).
///
/// ```no_run
/// use raft_core::runtime::Inbox;
/// use raft_net_tcp::{TcpConfig, TcpTransport, TlsLayer};
/// use raft_net_tls::{IdentityPaths, NodeIdentity};
/// use std::path::Path;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// // Made by `cargo run -p raft-net-tls --example gen-certs -- certs demo 1 2 3`.
/// let identity = NodeIdentity::load(&IdentityPaths::in_dir(Path::new("certs"), 1), 1)?;
/// let config = TcpConfig::new(1, 0x5eed, "0.0.0.0:7001".parse()?)
///     .with_peers([(2, "10.0.0.2:7001".parse()?), (3, "10.0.0.3:7001".parse()?)]);
/// let inbox = Inbox::default(); // then `Raft::start(.., transport.clone(), inbox, ..)`
/// let transport = TcpTransport::bind_with(config, TlsLayer::new(&identity)?, inbox.clone()).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TlsLayer {
    identity: NodeIdentity,
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl TlsLayer {
    /// The layer of the node `identity` is for: it presents that node's
    /// certificate and accepts only peers whose certificate the cluster CA
    /// signed. Fails only if rustls refuses the identity's configurations.
    pub fn new(identity: &NodeIdentity) -> Result<Self, TlsError> {
        Ok(Self {
            identity: identity.clone(),
            acceptor: TlsAcceptor::from(Arc::new(identity.server_config()?)),
            connector: TlsConnector::from(Arc::new(identity.client_config()?)),
        })
    }
}

impl std::fmt::Debug for TlsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsLayer").field("node", &self.identity.node()).finish_non_exhaustive()
    }
}

/// An accepted TLS connection without a client certificate (the server
/// configuration requires one, so rustls should never let it through).
#[derive(Debug, Error)]
#[error("the peer presented no certificate")]
struct NoCertificate;

#[async_trait]
impl StreamLayer for TlsLayer {
    /// A TLS stream, client side on connections this node opened and server
    /// side on those it accepted.
    type Stream = TlsStream<TcpStream>;

    async fn connect(
        &self,
        tcp: TcpStream,
        peer: NodeId,
        _addr: SocketAddr,
    ) -> std::io::Result<Self::Stream> {
        Ok(self.connector.connect(server_name(peer), tcp).await?.into())
    }

    async fn accept(&self, tcp: TcpStream, _addr: SocketAddr) -> std::io::Result<Self::Stream> {
        Ok(self.acceptor.accept(tcp).await?.into())
    }

    /// The node whose certificate this layer presents.
    fn node(&self) -> Option<NodeId> {
        Some(self.identity.node())
    }

    /// Checks the peer's certificate chain names node `claimed` (and is the
    /// cluster CA's, valid now).
    fn verify_peer(&self, stream: &Self::Stream, claimed: NodeId) -> Result<(), PeerRejected> {
        let rejected = |reason: Box<dyn std::error::Error + Send + Sync>| PeerRejected { claimed, reason };
        let (_, tls) = stream.get_ref();
        let chain = tls.peer_certificates().ok_or_else(|| rejected(Box::new(NoCertificate)))?;
        self.identity.verify_peer(chain, claimed).map_err(|error| rejected(Box::new(error)))
    }
}
