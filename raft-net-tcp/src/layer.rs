//! What runs between a TCP connection and the Raft frames on it.
//!
//! The transport's connection code is generic over the stream it reads and
//! writes (any `AsyncRead + AsyncWrite + Unpin + Send`). A [`StreamLayer`]
//! turns each freshly connected or accepted TCP stream into that stream:
//! [`PlainTcp`] leaves it as it is; `TlsLayer` (feature `tls`) runs a
//! mutual TLS handshake here. The layer's work on an inbound connection
//! counts against the handshake timeout, and on an outbound one against the
//! connect timeout.
//!
//! A layer that authenticates peers also answers, for every accepted
//! connection, whether its peer may be the node it claims in the
//! transport's handshake ([`StreamLayer::verify_peer`]): the claim is only
//! known once the layer's own work is done, and it is checked before the
//! handshake is answered, so no message is read from a peer that failed it.

use async_trait::async_trait;
use raft_core::NodeId;
use std::net::SocketAddr;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Wraps TCP streams before the transport's own handshake runs on them.
#[async_trait]
pub trait StreamLayer: Send + Sync + 'static {
    /// The stream frames are read from and written to.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Wraps a connection this node opened to node `peer` at `addr`.
    async fn connect(&self, tcp: TcpStream, peer: NodeId, addr: SocketAddr) -> std::io::Result<Self::Stream>;

    /// Wraps a connection this node accepted from `addr`.
    async fn accept(&self, tcp: TcpStream, addr: SocketAddr) -> std::io::Result<Self::Stream>;

    /// The node this layer proves to be to its peers (with TLS: the node its
    /// certificate names), if it proves anything.
    /// [`TcpTransport::bind_with`](crate::TcpTransport::bind_with) refuses a
    /// configuration for another node, which every peer would refuse.
    ///
    /// The default is `None`: a layer without identity fits any node.
    fn node(&self) -> Option<NodeId> {
        None
    }

    /// Whether the peer of `stream`, a connection [`StreamLayer::accept`]
    /// returned, may be node `claimed`: the id its handshake `Hello` gives.
    /// A refusal closes the connection before any message is read from it
    /// (the dialer is told [`Refusal::Unauthenticated`]).
    ///
    /// The default accepts every claim: a layer that does not authenticate
    /// peers has nothing to check it against.
    ///
    /// [`Refusal::Unauthenticated`]: crate::handshake::Refusal::Unauthenticated
    fn verify_peer(&self, stream: &Self::Stream, claimed: NodeId) -> Result<(), PeerRejected> {
        let _ = (stream, claimed);
        Ok(())
    }
}

/// A [`StreamLayer`] refused the node id a peer claims.
#[derive(Debug, Error)]
#[error("the peer cannot be node {claimed}: {reason}")]
pub struct PeerRejected {
    /// The node id the peer claimed.
    pub claimed: NodeId,
    /// Why the layer refused it (with TLS: a certificate naming another
    /// node, say).
    #[source]
    pub reason: Box<dyn std::error::Error + Send + Sync>,
}

/// Plain TCP: streams are used as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainTcp;

#[async_trait]
impl StreamLayer for PlainTcp {
    type Stream = TcpStream;

    async fn connect(&self, tcp: TcpStream, _peer: NodeId, _addr: SocketAddr) -> std::io::Result<TcpStream> {
        Ok(tcp)
    }

    async fn accept(&self, tcp: TcpStream, _addr: SocketAddr) -> std::io::Result<TcpStream> {
        Ok(tcp)
    }
}
