//! The listener and the connections peers opened to this node.
//!
//! One task accepts; each connection gets a task (in a `JoinSet` the
//! listener owns, so stopping the listener stops them all) that runs the
//! handshake under a timeout, then reads frames and hands each message to
//! the node. Anything malformed ends that connection with a logged error
//! and never reaches the node. At most one connection per peer and channel
//! is kept: a newer one (a peer that reconnected) replaces the older, so a
//! half-open connection cannot linger beside it.

use crate::handshake::{self, Channel, Hello};
use crate::layer::StreamLayer;
use crate::{Deliver, TcpConfig};
use bytes::BytesMut;
use raft_core::codec::{FrameDecoder, FrameError};
use raft_core::{Message, NodeId};
use std::collections::HashMap;
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

/// The connection kept per peer and channel: its number, and how to tell
/// it a newer one replaced it.
type Current = HashMap<(NodeId, Channel), (u64, Arc<Notify>)>;

/// What every inbound connection task shares.
struct Inbound<L> {
    config: TcpConfig,
    layer: Arc<L>,
    deliver: Deliver,
    /// The connection currently kept per peer and channel, by number.
    current: Mutex<Current>,
}

/// Accepts connections until the task is aborted (which aborts every
/// connection task with it).
pub(crate) async fn listen<L: StreamLayer>(
    listener: TcpListener,
    config: TcpConfig,
    layer: Arc<L>,
    deliver: Deliver,
) {
    let limit = Arc::new(Semaphore::new(config.max_inbound_connections));
    let inbound = Arc::new(Inbound { config, layer, deliver, current: Mutex::new(HashMap::new()) });
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
        let (hello, buffer) = handshake::accept(&mut stream, config.cluster_id, config.id).await?;
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
    let replaced = Arc::new(Notify::new());
    let older = inbound.lock().insert(key, (number, replaced.clone()));
    if let Some((_, older)) = older {
        older.notify_one();
    }
    let outcome = tokio::select! {
        outcome = read_messages(stream, buffer, &hello, config, &inbound.deliver) => outcome,
        () = replaced.notified() => {
            tracing::debug!(%addr, peer = hello.from, "a newer connection from the peer replaced this one");
            Ok(())
        }
    };
    {
        let mut current = inbound.lock();
        if current.get(&key).is_some_and(|(n, _)| *n == number) {
            current.remove(&key);
        }
    }
    match outcome {
        Ok(()) => tracing::debug!(%addr, peer = hello.from, "connection closed"),
        Err(error) => tracing::warn!(%addr, peer = hello.from, %error, "closed an inbound connection"),
    }
}

impl<L> Inbound<L> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads frames until the peer closes (`Ok`) or sends something invalid.
async fn read_messages<S: AsyncRead + Unpin>(
    mut stream: S,
    mut buffer: BytesMut,
    hello: &Hello,
    config: &TcpConfig,
    deliver: &Deliver,
) -> Result<(), ReadError> {
    let decoder = FrameDecoder::new(config.max_frame_bytes);
    loop {
        while let Some(message) = decoder.decode::<Message>(&mut buffer)? {
            if message.from != hello.from || message.to != config.id {
                return Err(ReadError::Misaddressed { from: message.from, to: message.to, peer: hello.from });
            }
            deliver(message);
        }
        if buffer.capacity() - buffer.len() < READ_CHUNK / 4 {
            buffer.reserve(READ_CHUNK);
        }
        if stream.read_buf(&mut buffer).await? == 0 {
            return if buffer.is_empty() { Ok(()) } else { Err(ReadError::Truncated(buffer.len())) };
        }
    }
}
