//! Connections this node opens to its peers.
//!
//! Each peer has two links, one per [`Channel`], each a bounded queue that
//! [`crate::TcpTransport::send`] fills without waiting and a task that
//! drains it. A link dials only once it has something to send, writes
//! everything queued as one batch of frames (one write per batch), and on
//! any failure reconnects after a jittered exponential backoff, dropping
//! what was queued meanwhile: by then it is stale, and Raft retries.

use crate::handshake::{self, Channel, Hello};
use crate::layer::StreamLayer;
use crate::TcpConfig;
use raft_core::codec::{encode_frame, FRAME_LENGTH_BYTES};
use raft_core::runtime::Envelope;
use raft_core::NodeId;
use rand::Rng;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

/// What every link of a transport shares.
pub(crate) struct Links<L> {
    pub(crate) config: TcpConfig,
    pub(crate) layer: Arc<L>,
    pub(crate) dropped: Arc<AtomicU64>,
}

/// The queues to one peer and the tasks draining them. Dropping it stops
/// the tasks.
pub(crate) struct PeerLink {
    pub(crate) messages: mpsc::Sender<Envelope>,
    pub(crate) snapshots: mpsc::Sender<Envelope>,
    pub(crate) address: watch::Sender<SocketAddr>,
    tasks: [AbortHandle; 2],
}

impl Drop for PeerLink {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl PeerLink {
    /// Starts the links to `peer` at `addr` on `runtime`.
    pub(crate) fn start<L: StreamLayer>(
        links: &Arc<Links<L>>,
        runtime: &tokio::runtime::Handle,
        peer: NodeId,
        addr: SocketAddr,
    ) -> Self {
        let (address, watched) = watch::channel(addr);
        let (messages, queue) = mpsc::channel(links.config.queue_capacity);
        let (snapshots, snapshot_queue) = mpsc::channel(links.config.snapshot_queue_capacity);
        let tasks = [
            runtime.spawn(run(links.clone(), peer, Channel::Messages, queue, watched.clone())).abort_handle(),
            runtime
                .spawn(run(links.clone(), peer, Channel::Snapshots, snapshot_queue, watched))
                .abort_handle(),
        ];
        Self { messages, snapshots, address, tasks }
    }
}

/// Why a connection to a peer failed.
#[derive(Debug, Error)]
enum LinkError {
    #[error("connecting timed out")]
    ConnectTimedOut,
    #[error("writing timed out")]
    WriteTimedOut,
    #[error(transparent)]
    Handshake(#[from] handshake::HandshakeError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// How a connection ended.
enum End {
    /// The transport dropped the link.
    Closed,
    /// The peer's address changed: dial the new one at once.
    Moved,
    Failed(LinkError),
}

/// Bounded exponential backoff with jitter: each delay is drawn from the
/// upper half of the current step, so peers that lost each other at the
/// same moment do not redial in lockstep.
struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        Self { min, max, step: min }
    }

    fn reset(&mut self) {
        self.step = self.min;
    }

    fn next(&mut self) -> Duration {
        let step = self.step;
        self.step = self.step.checked_mul(2).unwrap_or(self.max).min(self.max);
        step.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

/// Runs one link until the transport drops it.
async fn run<L: StreamLayer>(
    links: Arc<Links<L>>,
    peer: NodeId,
    channel: Channel,
    mut queue: mpsc::Receiver<Envelope>,
    mut address: watch::Receiver<SocketAddr>,
) {
    let config = &links.config;
    let mut backoff = Backoff::new(config.reconnect_backoff_min, config.reconnect_backoff_max);
    let mut buffer = Vec::new();
    let mut failures = 0u32;
    loop {
        // Dial only with something to send.
        let Some(first) = queue.recv().await else { return };
        let addr = *address.borrow_and_update();
        // A peer that moved while this link dialed its old address (which may
        // take the whole connect timeout) is dialed at its new one at once.
        let connected = tokio::select! {
            connected = connect(&links, peer, addr, channel) => connected,
            changed = address.changed() => {
                if changed.is_err() {
                    return;
                }
                links.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let failure = match connected {
            Ok(stream) => {
                if failures > 0 {
                    tracing::info!(peer, %addr, ?channel, "reconnected");
                }
                failures = 0;
                backoff.reset();
                match write_batches(&links, stream, first, &mut queue, &mut address, &mut buffer).await {
                    End::Closed => return,
                    End::Moved => continue,
                    End::Failed(error) => error,
                }
            }
            Err(error) => {
                links.dropped.fetch_add(1, Ordering::Relaxed);
                error
            }
        };
        failures = failures.saturating_add(1);
        // Every failure of a healthy link is worth a warning; repeated ones
        // of a peer that stays down are not.
        if failures == 1 {
            tracing::warn!(peer, %addr, ?channel, error = %failure, "connection to peer failed");
        } else {
            tracing::debug!(peer, %addr, ?channel, error = %failure, failures, "connection to peer failed");
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next()) => {}
            changed = address.changed() => {
                if changed.is_err() {
                    return;
                }
                backoff.reset();
            }
        }
        let mut stale = 0;
        while queue.try_recv().is_ok() {
            stale += 1;
        }
        links.dropped.fetch_add(stale, Ordering::Relaxed);
    }
}

/// Opens a connection to `peer` at `addr` and runs the handshake.
async fn connect<L: StreamLayer>(
    links: &Links<L>,
    peer: NodeId,
    addr: SocketAddr,
    channel: Channel,
) -> Result<L::Stream, LinkError> {
    let config = &links.config;
    let connecting = async {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let mut stream = links.layer.connect(tcp, peer, addr).await?;
        handshake::dial(&mut stream, Hello::new(config.cluster_id, config.id, peer, channel)).await?;
        Ok(stream)
    };
    tokio::time::timeout(config.connect_timeout, connecting).await.unwrap_or(Err(LinkError::ConnectTimedOut))
}

/// Writes what the queue holds, a batch at a time, until the connection
/// fails, the address changes or the link is dropped.
async fn write_batches<L: StreamLayer>(
    links: &Links<L>,
    mut stream: L::Stream,
    first: Envelope,
    queue: &mut mpsc::Receiver<Envelope>,
    address: &mut watch::Receiver<SocketAddr>,
    buffer: &mut Vec<u8>,
) -> End {
    let config = &links.config;
    let mut next = Some(first);
    loop {
        let first = match next.take() {
            Some(message) => message,
            None => tokio::select! {
                message = queue.recv() => match message {
                    Some(message) => message,
                    None => return End::Closed,
                },
                changed = address.changed() => return if changed.is_ok() { End::Moved } else { End::Closed },
            },
        };
        buffer.clear();
        let mut batch = 1;
        encode(links, &first, buffer);
        while buffer.len() < config.max_batch_bytes {
            match queue.try_recv() {
                Ok(message) => {
                    encode(links, &message, buffer);
                    batch += 1;
                }
                Err(_) => break,
            }
        }
        if buffer.is_empty() {
            continue;
        }
        match tokio::time::timeout(config.write_timeout, write_all(&mut stream, buffer)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                links.dropped.fetch_add(batch, Ordering::Relaxed);
                return End::Failed(error.into());
            }
            Err(_) => {
                links.dropped.fetch_add(batch, Ordering::Relaxed);
                return End::Failed(LinkError::WriteTimedOut);
            }
        }
        // A snapshot batch can leave a large buffer behind; do not keep it.
        if buffer.capacity() > 4 * config.max_batch_bytes {
            *buffer = Vec::new();
        }
    }
}

async fn write_all<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Appends `message` to `buffer` as a frame, or drops it (logged) if it
/// cannot be encoded or exceeds the frame limit (a peer would refuse it).
fn encode<L>(links: &Links<L>, message: &Envelope, buffer: &mut Vec<u8>) {
    let start = buffer.len();
    match encode_frame(message, buffer) {
        Ok(len) if len - FRAME_LENGTH_BYTES <= links.config.max_frame_bytes => {}
        Ok(len) => {
            buffer.truncate(start);
            links.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                kind = message.kind(),
                to = message.to(),
                len,
                max = links.config.max_frame_bytes,
                "dropped a message larger than the frame limit"
            );
        }
        Err(error) => {
            links.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(kind = message.kind(), to = message.to(), %error, "dropped a message that does not encode");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_bound_with_jitter_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(100));
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next()).collect();
        for (i, delay) in delays.iter().enumerate() {
            let step = Duration::from_millis(10 * (1 << i.min(4))).min(Duration::from_millis(100));
            assert!(
                *delay >= step / 2 && *delay <= step,
                "delay {i}: {delay:?} outside {step:?}/2..={step:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next() <= Duration::from_millis(10));
    }
}
