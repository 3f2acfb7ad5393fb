//! What runs between a TCP connection and the Raft frames on it.
//!
//! The transport's connection code is generic over the stream it reads and
//! writes (any `AsyncRead + AsyncWrite + Unpin + Send`). A [`StreamLayer`]
//! turns each freshly connected or accepted TCP stream into that stream:
//! [`PlainTcp`] leaves it as it is; a TLS layer (e.g. tokio-rustls with the
//! configurations `raft-net-tls` builds) would run its handshake here. The
//! layer's work on an inbound connection counts against the handshake
//! timeout, and on an outbound one against the connect timeout.

use async_trait::async_trait;
use raft_core::NodeId;
use std::net::SocketAddr;
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
