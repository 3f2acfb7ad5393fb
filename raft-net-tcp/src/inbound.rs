//! The listener and the connections peers opened to this node.
//!
//! One task accepts; each connection gets a task (in a `JoinSet` the
//! listener owns, so stopping the listener stops them all) that runs the
//! handshake under a timeout, then reads frames and hands each message to
//! the node. Anything malformed ends that connection with a logged error
//! and never reaches the node. Only known peers (see [`Registry`]) are
//! accepted, and at most one connection per peer and channel is kept: a
//! newer one (a peer that reconnected) replaces the older, so a half-open
//! connection cannot linger beside it; a peer's removal closes its
//! connections.

use crate::handshake::{self, Channel, Hello};
use crate::layer::StreamLayer;
use crate::TcpConfig;
use bytes::BytesMut;
use raft_core::codec::{FrameDecoder, FrameError};
use raft_core::runtime::{Envelope, Inbox};
use raft_core::NodeId;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// How much room a read makes in the buffer at a time: a frame's buffer
/// grows with the bytes that arrive, not with what its header claims.
const READ_CHUNK: usize = 64 * 1024;

/// Why an inbound connection ended with an error.
#[derive(Debug, Error)]
enum ReadError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("a message from node {from} to node {to} on a connection from node {peer}")]
    Misaddressed { from: NodeId, to: NodeId, peer: NodeId },
    #[error("the connection closed in the middle of a frame ({0} bytes pending)")]
    Truncated(usize),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// The peers this node accepts connections from, and the connection kept
/// per peer and channel. One lock over both, so that no connection of a
/// removed peer can register after its removal closed the others.
#[derive(Default)]
pub(crate) struct Registry(Mutex<RegistryInner>);

#[derive(Default)]
struct RegistryInner {
    known: HashSet<NodeId>,
    /// Per peer and channel: the connection's number, and how to tell it
    /// that it was replaced or its peer removed.
    current: HashMap<(NodeId, Channel), (u64, Arc<Notify>)>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, RegistryInner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Accepts connections from `id` from now on.
    pub(crate) fn add_peer(&self, id: NodeId) {
        self.lock().known.insert(id);
    }

    /// Refuses connections from `id` from now on, and closes its open ones.
    pub(crate) fn remove_peer(&self, id: NodeId) {
        let mut inner = self.lock();
        inner.known.remove(&id);
        inner.current.retain(|(peer, _), (_, close)| {
            if *peer == id {
                close.notify_one();
            }
            *peer != id
        });
    }

    fn is_known(&self, id: NodeId) -> bool {
        self.lock().known.contains(&id)
    }

    /// Keeps connection `number` for `key`, closing the one it replaces;
    /// `None` if the peer is no longer known.
    fn register(&self, key: (NodeId, Channel), number: u64) -> Option<Arc<Notify>> {
        let mut inner = self.lock();
        if !inner.known.contains(&key.0) {
            return None;
        }
        let close = Arc::new(Notify::new());
        if let Some((_, older)) = inner.current.insert(key, (number, close.clone())) {
            older.notify_one();
        }
        Some(close)
    }

    fn unregister(&self, key: (NodeId, Channel), number: u64) {
        let mut inner = self.lock();
        if inner.current.get(&key).is_some_and(|(n, _)| *n == number) {
            inner.current.remove(&key);
        }
    }
}

/// What every inbound connection task shares.
struct Inbound<L> {
    config: TcpConfig,
    layer: Arc<L>,
    inbox: Inbox,
    registry: Arc<Registry>,
}

/// Accepts connections until the task is aborted (which aborts every
/// connection task with it).
pub(crate) async fn listen<L: StreamLayer>(
    listener: TcpListener,
    config: TcpConfig,
    layer: Arc<L>,
    inbox: Inbox,
    registry: Arc<Registry>,
) {
    let limit = Arc::new(Semaphore::new(config.max_inbound_connections));
    let inbound = Arc::new(Inbound { config, layer, inbox, registry });
    let mut connections = JoinSet::new();
    let mut number = 0u64;
    loop {
        tokio::select! {
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, addr)) => {
                    let Ok(permit) = limit.clone().try_acquire_owned() else {
                        tracing::warn!(%addr, "refused an inbound connection: too many open");
                        continue;
                    };
                    number += 1;
                    connections.spawn(serve(inbound.clone(), tcp, addr, number, permit));
                }
                Err(error) => {
                    // Out of file descriptors, typically: wait for some to close
                    // rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// Runs one inbound connection to its end.
async fn serve<L: StreamLayer>(
    inbound: Arc<Inbound<L>>,
    tcp: TcpStream,
    addr: SocketAddr,
    number: u64,
    _permit: OwnedSemaphorePermit,
) {
    let config = &inbound.config;
    let _ = tcp.set_nodelay(true);
    let opened = tokio::time::timeout(config.handshake_timeout, async {
        let mut stream = inbound.layer.accept(tcp, addr).await?;
        let known = |id| inbound.registry.is_known(id);
        let verify = |stream: &L::Stream, claimed| inbound.layer.verify_peer(stream, claimed);
        let (hello, buffer) =
            handshake::accept_verified(&mut stream, config.cluster_id, config.id, known, verify).await?;
        Ok::<_, handshake::HandshakeError>((stream, hello, buffer))
    })
    .await
    .unwrap_or(Err(handshake::HandshakeError::TimedOut));
    let (stream, hello, buffer) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            tracing::warn!(%addr, %error, node = config.id, "refused an inbound connection");
            return;
        }
    };
    tracing::debug!(%addr, peer = hello.from, channel = ?hello.channel, "accepted a connection");

    let key = (hello.from, hello.channel);
    let Some(close) = inbound.registry.register(key, number) else {
        tracing::warn!(%addr, peer = hello.from, "closed a connection from a peer removed during its handshake");
        return;
    };
    let outcome = tokio::select! {
        outcome = read_messages(stream, buffer, &hello, config, &inbound.inbox) => outcome,
        () = close.notified() => {
            tracing::debug!(%addr, peer = hello.from, "closed a connection replaced by a newer one, or of a removed peer");
            Ok(())
        }
    };
    inbound.registry.unregister(key, number);
    match outcome {
        Ok(()) => tracing::debug!(%addr, peer = hello.from, "connection closed"),
        Err(error) => tracing::warn!(%addr, peer = hello.from, %error, "closed an inbound connection"),
    }
}

/// Reads frames until the peer closes (`Ok`) or sends something invalid.
async fn read_messages<S: AsyncRead + Unpin>(
    mut stream: S,
    mut buffer: BytesMut,
    hello: &Hello,
    config: &TcpConfig,
    inbox: &Inbox,
) -> Result<(), ReadError> {
    let decoder = FrameDecoder::new(config.max_frame_bytes);
    loop {
        while let Some(envelope) = decoder.decode::<Envelope>(&mut buffer)? {
            let (from, to) = (envelope.from(), envelope.to());
            if from != hello.from || to != config.id {
                return Err(ReadError::Misaddressed { from, to, peer: hello.from });
            }
            // Never waits: a node that falls behind loses messages (Raft
            // retries) rather than stall this connection's reads.
            inbox.deliver(envelope);
        }
        if buffer.capacity() - buffer.len() < READ_CHUNK / 4 {
            buffer.reserve(READ_CHUNK);
        }
        let read = match stream.read_buf(&mut buffer).await {
            Ok(read) => read,
            // A TLS peer that went away without a close_notify (a node
            // stopping, a link redialing): the frames say whether anything
            // was cut short, so this is an end like any other.
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(error) => return Err(error.into()),
        };
        if read == 0 {
            return if buffer.is_empty() { Ok(()) } else { Err(ReadError::Truncated(buffer.len())) };
        }
    }
}
