//! The client side: one task per peer empties the peer's queue into a
//! connection, reconnecting with jittered exponential backoff.
//!
//! Ordinary messages are framed into one buffer and written in one call
//! (everything queued, up to the batch size); each snapshot chunk gets a
//! stream of its own, written by a task tied to the connection.

use crate::{Hello, CLOSE_PROTOCOL, CLOSE_REFUSED, CLOSE_SHUTDOWN};
use raft_core::codec::encode_frame;
use raft_core::runtime::Envelope;
use raft_core::NodeId;
use rand::Rng;
use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// What every peer task shares.
pub(crate) struct Context {
    pub(crate) id: NodeId,
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) client: quinn::ClientConfig,
    pub(crate) cluster_id: String,
    pub(crate) max_frame_bytes: usize,
    pub(crate) max_batch_bytes: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
}

/// The most messages framed into one write.
const MAX_BATCH_MESSAGES: usize = 1024;

/// Why a connection attempt, or a connection, ended.
enum End {
    /// The transport dropped this peer: stop.
    Stopped,
    /// The peer moved: dial its new address now.
    Moved,
    /// The connection failed. After a connection that worked, the next
    /// attempt comes quickly (`reset`); after a refusal or a failed dial, it
    /// backs off further.
    Failed { error: SendError, reset: bool },
}

#[derive(Debug, Error)]
enum SendError {
    #[error(transparent)]
    Connect(#[from] quinn::ConnectError),
    #[error(transparent)]
    Connection(#[from] quinn::ConnectionError),
    #[error(transparent)]
    Write(#[from] quinn::WriteError),
}

impl SendError {
    /// The peer refused this node: its TLS handshake failed, or the peer
    /// closed the connection over its hello or its frames. Retrying soon
    /// will not help, and an operator should hear of it.
    fn refused(&self) -> bool {
        let connection = match self {
            SendError::Connect(_) => return false,
            SendError::Connection(error) => error,
            SendError::Write(quinn::WriteError::ConnectionLost(error)) => error,
            SendError::Write(_) => return false,
        };
        match connection {
            quinn::ConnectionError::ApplicationClosed(close) => {
                let code = close.error_code.into_inner();
                code == u64::from(CLOSE_REFUSED) || code == u64::from(CLOSE_PROTOCOL)
            }
            // TLS failures (an unknown CA, a certificate naming another
            // node) close the connection with a crypto error.
            quinn::ConnectionError::ConnectionClosed(_) | quinn::ConnectionError::TransportError(_) => true,
            _ => false,
        }
    }
}

/// Sends `messages` to `peer` at the address `address` holds, until the
/// transport drops the peer.
pub(crate) async fn run(
    context: std::sync::Arc<Context>,
    peer: NodeId,
    mut messages: mpsc::Receiver<Envelope>,
    mut address: watch::Receiver<SocketAddr>,
) {
    let mut backoff = Backoff::new(context.reconnect_min, context.reconnect_max);
    loop {
        let target = *address.borrow_and_update();
        match connect_and_send(&context, peer, target, &mut messages, &mut address).await {
            End::Stopped => return,
            End::Moved => backoff.reset(),
            End::Failed { error, reset } => {
                if reset {
                    backoff.reset();
                }
                let delay = backoff.next();
                // What waited for this connection is stale by the time the
                // next one opens: Raft will have sent fresher messages.
                let mut dropped = 0usize;
                while dropped < context.queue_capacity && messages.try_recv().is_ok() {
                    dropped += 1;
                }
                if error.refused() {
                    tracing::warn!(node = context.id, peer, %target, %error, ?delay, dropped, "refused by the peer; retrying");
                } else {
                    tracing::debug!(node = context.id, peer, %target, %error, ?delay, dropped, "connection failed; retrying");
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    changed = address.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        backoff.reset();
                    }
                }
            }
        }
    }
}

async fn connect_and_send(
    context: &Context,
    peer: NodeId,
    target: SocketAddr,
    messages: &mut mpsc::Receiver<Envelope>,
    address: &mut watch::Receiver<SocketAddr>,
) -> End {
    let failed = |error: SendError| End::Failed { error, reset: false };
    let connecting =
        match context.endpoint.connect_with(context.client.clone(), target, &raft_net_tls::node_name(peer)) {
            Ok(connecting) => connecting,
            Err(error) => return failed(error.into()),
        };
    let connection = tokio::select! {
        connection = connecting => match connection {
            Ok(connection) => connection,
            Err(error) => return failed(error.into()),
        },
        changed = address.changed() => return if changed.is_ok() { End::Moved } else { End::Stopped },
    };
    let end = send(context, peer, &connection, messages, address).await;
    let reason: &[u8] = if matches!(end, End::Moved) { b"peer moved" } else { b"shutdown" };
    connection.close(quinn::VarInt::from_u32(CLOSE_SHUTDOWN), reason);
    end
}

async fn send(
    context: &Context,
    peer: NodeId,
    connection: &quinn::Connection,
    messages: &mut mpsc::Receiver<Envelope>,
    address: &mut watch::Receiver<SocketAddr>,
) -> End {
    let failed = |error: SendError| End::Failed { reset: !error.refused(), error };
    let mut stream = match connection.open_uni().await {
        Ok(stream) => stream,
        Err(error) => return failed(error.into()),
    };
    let mut buffer = Vec::with_capacity(64 << 10);
    let hello = Hello { cluster_id: context.cluster_id.clone(), from: context.id, to: peer };
    if let Err(error) = encode_frame(&hello, &mut buffer) {
        tracing::error!(node = context.id, %error, "cannot encode the hello");
        return End::Stopped;
    }
    let mut chunks = JoinSet::new();
    loop {
        if let Err(error) = stream.write_all(&buffer).await {
            return failed(error.into());
        }
        buffer.clear();
        let first = tokio::select! {
            message = messages.recv() => match message {
                Some(message) => message,
                None => return End::Stopped,
            },
            error = connection.closed() => return failed(error.into()),
            changed = address.changed() => return if changed.is_ok() { End::Moved } else { End::Stopped },
            Some(_) = chunks.join_next() => continue,
        };
        let mut next = Some(first);
        let mut framed = 0;
        while let Some(message) = next.take() {
            if message.is_snapshot_chunk() {
                let mut chunk = Vec::new();
                if frame_into(context, &message, &mut chunk) {
                    chunks.spawn(send_chunk(connection.clone(), chunk));
                }
            } else if frame_into(context, &message, &mut buffer) {
                framed += 1;
            }
            if buffer.len() >= context.max_batch_bytes || framed >= MAX_BATCH_MESSAGES {
                break;
            }
            next = messages.try_recv().ok();
        }
    }
}

/// Appends `message` to `buffer` as a frame; false (logged, `buffer`
/// unchanged) if it cannot be sent.
fn frame_into(context: &Context, message: &Envelope, buffer: &mut Vec<u8>) -> bool {
    let start = buffer.len();
    match encode_frame(message, buffer) {
        Ok(len) if len - raft_core::codec::FRAME_LENGTH_BYTES <= context.max_frame_bytes => true,
        Ok(len) => {
            buffer.truncate(start);
            tracing::warn!(
                node = context.id,
                to = message.to(),
                kind = message.kind(),
                len,
                max = context.max_frame_bytes,
                "message larger than the frame limit: dropped"
            );
            false
        }
        Err(error) => {
            tracing::warn!(node = context.id, to = message.to(), kind = message.kind(), %error, "cannot encode a message: dropped");
            false
        }
    }
}

/// Writes one snapshot chunk on a stream of its own.
async fn send_chunk(connection: quinn::Connection, frame: Vec<u8>) {
    let result = async {
        let mut stream = connection.open_uni().await?;
        stream.write_all(&frame).await?;
        stream.finish().map_err(|_| quinn::WriteError::ClosedStream)?;
        Ok::<_, SendError>(())
    };
    if let Err(error) = result.await {
        tracing::debug!(%error, "a snapshot chunk was not sent");
    }
}

/// Exponential backoff with jitter: each delay is drawn from the upper half
/// of a window that doubles from `min` up to `max`, so peers that failed
/// together do not retry together.
struct Backoff {
    min: Duration,
    max: Duration,
    window: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Self { min, max, window: min }
    }

    fn reset(&mut self) {
        self.window = self.min;
    }

    fn next(&mut self) -> Duration {
        let window = self.window;
        self.window = (self.window * 2).min(self.max);
        rand::rng().random_range(window / 2..=window)
    }
}

#[cfg(test)]
mod tests {
    use super::{Backoff, SendError};
    use crate::{CLOSE_PROTOCOL, CLOSE_REFUSED, CLOSE_SHUTDOWN};
    use std::time::Duration;

    fn closed_by_peer(code: u32) -> SendError {
        SendError::Connection(quinn::ConnectionError::ApplicationClosed(quinn::ApplicationClose {
            error_code: quinn::VarInt::from_u32(code),
            reason: bytes::Bytes::new(),
        }))
    }

    #[test]
    fn refusals_are_told_from_ordinary_failures() {
        assert!(closed_by_peer(CLOSE_REFUSED).refused());
        assert!(closed_by_peer(CLOSE_PROTOCOL).refused());
        assert!(!closed_by_peer(CLOSE_SHUTDOWN).refused(), "a peer shutting down did not refuse us");
        assert!(!SendError::Connection(quinn::ConnectionError::TimedOut).refused());
        assert!(!SendError::Connect(quinn::ConnectError::EndpointStopping).refused());
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_maximum_and_resets() {
        let (min, max) = (Duration::from_millis(50), Duration::from_secs(1));
        let mut backoff = Backoff::new(min, max);
        let mut windows = Vec::new();
        for _ in 0..10 {
            windows.push(backoff.window);
            let delay = backoff.next();
            let window = *windows.last().unwrap();
            assert!(delay >= window / 2 && delay <= window, "{delay:?} outside {window:?}");
        }
        assert_eq!(windows[..6].to_vec(), [50, 100, 200, 400, 800, 1000].map(Duration::from_millis));
        assert_eq!(backoff.window, max);
        backoff.reset();
        assert_eq!(backoff.window, min);
    }
}
