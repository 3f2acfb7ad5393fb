//! The server side: accepts connections, checks each client's hello against
//! its certificate, and delivers what its streams carry.
//!
//! A connection's first stream is its hello and message stream; every later
//! one carries a snapshot chunk. Every stream is read the same way: frames,
//! each refused from its header if oversized, each message checked to come
//! from the client's node and to be addressed to this one. The first bad
//! frame on any stream closes the whole connection.

use crate::{Hello, CLOSE_PROTOCOL, CLOSE_REFUSED, HELLO_MAX_BYTES};
use bytes::BytesMut;
use raft_core::codec::{FrameDecoder, FrameError};
use raft_core::runtime::Envelope;
use raft_core::NodeId;
use raft_net_tls::NodeIdentity;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::task::JoinSet;

/// What every inbound connection shares.
pub(crate) struct Context {
    pub(crate) id: NodeId,
    pub(crate) identity: NodeIdentity,
    pub(crate) cluster_id: String,
    pub(crate) max_frame_bytes: usize,
    pub(crate) hello_timeout: Duration,
    pub(crate) inbox: raft_core::runtime::Inbox,
}

/// Why a connection was cut off.
#[derive(Debug, Error)]
enum Refusal {
    #[error("no hello within {0:?}")]
    HelloTimeout(Duration),
    #[error("the hello is for cluster `{0}`")]
    WrongCluster(String),
    #[error("the hello is addressed to node {0}")]
    WrongNode(NodeId),
    #[error("the client's certificate does not prove it is node {node}: {error}")]
    Certificate { node: NodeId, error: String },
    #[error("the stream ended before the hello")]
    NoHello,
    #[error("cannot read the stream: {0}")]
    Read(#[from] quinn::ReadError),
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    #[error("the stream ended inside a frame")]
    Truncated,
    #[error("a message from {from} to {to} on node {peer}'s connection to node {us}")]
    Misaddressed { from: NodeId, to: NodeId, peer: NodeId, us: NodeId },
}

/// Accepts connections until the endpoint closes.
pub(crate) async fn accept(endpoint: quinn::Endpoint, context: Arc<Context>) {
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(serve(incoming, context.clone()));
    }
}

async fn serve(incoming: quinn::Incoming, context: Arc<Context>) {
    let remote = incoming.remote_address();
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(error) => {
            tracing::warn!(node = context.id, %remote, %error, "refused a connection: the TLS handshake failed");
            return;
        }
    };
    let hello = tokio::time::timeout(context.hello_timeout, hello(&connection, &context)).await;
    let (peer, stream, buffer) = match hello {
        Ok(Ok(accepted)) => accepted,
        Ok(Err(refusal)) => return refuse(&connection, &context, CLOSE_REFUSED, &refusal),
        Err(_) => {
            return refuse(
                &connection,
                &context,
                CLOSE_REFUSED,
                &Refusal::HelloTimeout(context.hello_timeout),
            )
        }
    };
    tracing::debug!(node = context.id, peer, %remote, "accepted a connection");
    let mut streams = JoinSet::new();
    streams.spawn(read_frames(stream, buffer, peer, context.clone()));
    loop {
        tokio::select! {
            accepted = connection.accept_uni() => match accepted {
                Ok(stream) => {
                    streams.spawn(read_frames(stream, BytesMut::new(), peer, context.clone()));
                }
                Err(error) => {
                    tracing::debug!(node = context.id, peer, %error, "connection closed");
                    return;
                }
            },
            Some(finished) = streams.join_next() => {
                if let Ok(Err(refusal)) = finished {
                    return refuse(&connection, &context, CLOSE_PROTOCOL, &refusal);
                }
            }
        }
    }
}

fn refuse(connection: &quinn::Connection, context: &Context, code: u32, refusal: &Refusal) {
    tracing::warn!(
        node = context.id,
        remote = %connection.remote_address(),
        error = %refusal,
        "cutting off a peer"
    );
    connection.close(quinn::VarInt::from_u32(code), refusal.to_string().as_bytes());
}

/// Reads and checks the hello on the first stream; returns the peer's id,
/// the stream, and what was read after the hello.
async fn hello(
    connection: &quinn::Connection,
    context: &Context,
) -> Result<(NodeId, quinn::RecvStream, BytesMut), Refusal> {
    let mut stream = connection.accept_uni().await.map_err(|e| Refusal::Read(e.into()))?;
    let decoder = FrameDecoder::new(HELLO_MAX_BYTES);
    let mut buffer = BytesMut::new();
    let hello: Hello = loop {
        if let Some(hello) = decoder.decode(&mut buffer)? {
            break hello;
        }
        match stream.read_chunk(HELLO_MAX_BYTES, true).await? {
            Some(chunk) => buffer.extend_from_slice(&chunk.bytes),
            None => return Err(Refusal::NoHello),
        }
    };
    if hello.cluster_id != context.cluster_id {
        return Err(Refusal::WrongCluster(hello.cluster_id));
    }
    if hello.to != context.id {
        return Err(Refusal::WrongNode(hello.to));
    }
    let chain = connection
        .peer_identity()
        .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or_else(|| Refusal::Certificate { node: hello.from, error: "no certificate".into() })?;
    context
        .identity
        .verify_peer(&chain, hello.from)
        .map_err(|e| Refusal::Certificate { node: hello.from, error: e.to_string() })?;
    Ok((hello.from, stream, buffer))
}

/// Delivers the frames of one stream until it ends. A stream may end only
/// between frames; a connection lost ends it quietly (the connection's own
/// task reports that).
async fn read_frames(
    mut stream: quinn::RecvStream,
    mut buffer: BytesMut,
    peer: NodeId,
    context: Arc<Context>,
) -> Result<(), Refusal> {
    let decoder = FrameDecoder::new(context.max_frame_bytes);
    loop {
        while let Some(envelope) = decoder.decode::<Envelope>(&mut buffer)? {
            let (from, to) = (envelope.from(), envelope.to());
            if from != peer || to != context.id {
                return Err(Refusal::Misaddressed { from, to, peer, us: context.id });
            }
            // Waits while the inbox is full: the stream is not read
            // meanwhile, and QUIC's flow control slows the peer down.
            context.inbox.deliver_or_wait(envelope).await;
        }
        // The header has passed the size check, so the buffer grows only to
        // an accepted frame's size (plus one read).
        match stream.read_chunk(64 << 10, true).await {
            Ok(Some(chunk)) => buffer.extend_from_slice(&chunk.bytes),
            Ok(None) if buffer.is_empty() => return Ok(()),
            Ok(None) => return Err(Refusal::Truncated),
            Err(quinn::ReadError::ConnectionLost(_)) => return Ok(()),
            Err(error) => return Err(error.into()),
        }
    }
}
