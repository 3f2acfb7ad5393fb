//! A [`Transport`] for raft-core over QUIC ([quinn]), with mandatory mutual
//! TLS ([`raft_net_tls`]).
//!
//! # Connections and streams
//!
//! Each node dials each of its peers once and sends to it over that
//! connection; what a peer sends back arrives on the peer's own connection
//! to this node. On a connection, in both directions the client is the
//! sender:
//!
//! - the first unidirectional stream carries a [`Hello`] frame, then every
//!   ordinary message (each an [`Envelope`]: a Raft message, or a client
//!   request the runtimes forward between them), framed with raft-core's
//!   codec ([`raft_core::codec::encode_frame`]) and written in batches (all
//!   that is queued, up to [`QuicConfig::max_batch_bytes`], in one write);
//! - each snapshot chunk ([`raft_core::MessageBody::InstallSnapshot`]) travels on a
//!   stream of its own, so heartbeats never wait behind a snapshot. There is
//!   no order between a chunk and ordinary messages; Raft needs none.
//!
//! # Who may talk
//!
//! Both sides present a certificate signed by the cluster CA, or the TLS
//! handshake fails. The client dials node `n` under the server name
//! `node-<n>`, so it checks it reached `n`. The server reads the client's
//! [`Hello`] (within [`QuicConfig::hello_timeout`]) and refuses the
//! connection unless its cluster id is this cluster's, it is addressed to
//! this node, and the client's certificate names the node it claims to be.
//! Every later message must come from that node and be addressed to this
//! one. A frame that is garbage, truncated, oversized (refused from its
//! 4-byte header, before anything is allocated for it) or misaddressed ends
//! the connection with a logged error: the stream can no longer be trusted,
//! and the peer reconnects if it is honest.
//!
//! # Sending never blocks
//!
//! [`Transport::send`] puts a message on its peer's bounded queue, or drops
//! it if the queue is full or the peer unknown: Raft retries. A task per peer
//! empties the queue into the connection, reconnecting with jittered
//! exponential backoff ([`QuicConfig::reconnect_min`] to
//! [`QuicConfig::reconnect_max`]) when it fails.
//!
//! # QUIC settings
//!
//! Idle timeout [`QuicConfig::idle_timeout`], keep-alive
//! [`QuicConfig::keep_alive`]; connection migration allowed (a client whose
//! address changes keeps its connection); 0-RTT off on both sides (no early
//! data is accepted or sent, so nothing can be replayed); bidirectional
//! streams and datagrams refused.
//!
//! # Example
//!
//! The transport delivers into an [`Inbox`] made before it, which the node
//! is then started on, as with every transport:
//!
//! ```no_run
//! use raft_core::runtime::{Inbox, Raft, RuntimeConfig};
//! use raft_core::{Config, Membership};
//! use raft_net_quic::{QuicConfig, QuicTransport};
//! use raft_net_tls::{IdentityPaths, NodeIdentity};
//! use raft_storage_mem::{MemKv, MemLogStore};
//! use std::path::Path;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let identity = NodeIdentity::load(&IdentityPaths::in_dir(Path::new("certs"), 1), 1)?;
//! let mut config = QuicConfig::new("my-cluster", "127.0.0.1:7001".parse()?);
//! config.peers.insert(2, "127.0.0.1:7002".parse()?);
//! config.peers.insert(3, "127.0.0.1:7003".parse()?);
//! let inbox = Inbox::default();
//! let transport = QuicTransport::bind(config, &identity, inbox.clone()).await?;
//! let members = Membership::new([1, 2, 3], []);
//! let raft = Raft::start(Config::new(1), RuntimeConfig::default(), members, MemLogStore::new(), transport.clone(), inbox, MemKv::default()).await?;
//! # let _ = raft;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod inbound;
mod outbound;

use raft_core::runtime::{Envelope, Inbox, Transport};
use raft_core::NodeId;
use raft_net_tls::{NodeIdentity, TlsError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, watch};

/// Settings of a [`QuicTransport`].
#[derive(Debug, Clone)]
pub struct QuicConfig {
    /// The cluster's id: a node refuses connections from another cluster's.
    pub cluster_id: String,
    /// The UDP address to listen on (port 0 for any; see
    /// [`QuicTransport::local_addr`]).
    pub listen: SocketAddr,
    /// The peers to send to, and their addresses. Change them at run time
    /// with [`QuicTransport::set_peer`] and [`QuicTransport::remove_peer`].
    pub peers: HashMap<NodeId, SocketAddr>,
    /// The largest frame (version byte and message) sent or accepted; a
    /// frame claiming more is refused from its header. Must hold the largest
    /// AppendEntries and snapshot chunk Raft sends (see raft-core's
    /// `Config::max_bytes_per_msg` and `Config::snapshot_chunk_bytes`). Those
    /// are at most [`raft_core::MAX_MESSAGE_BYTES`] (8 MiB); a frame limit of
    /// twice that, the default 16 MiB, holds any message within them.
    pub max_frame_bytes: usize,
    /// Messages queued per peer before further ones are dropped.
    pub queue_capacity: usize,
    /// The most bytes of ordinary messages written in one go.
    pub max_batch_bytes: usize,
    /// Snapshot chunk streams a peer may have open at once.
    pub max_snapshot_streams: u32,
    /// A connection silent this long is closed.
    pub idle_timeout: Duration,
    /// How often an otherwise idle connection sends a keep-alive (less than
    /// [`QuicConfig::idle_timeout`]).
    pub keep_alive: Duration,
    /// The first delay before reconnecting to a peer.
    pub reconnect_min: Duration,
    /// The longest delay before reconnecting to a peer.
    pub reconnect_max: Duration,
    /// How long a connecting peer has to send its [`Hello`].
    pub hello_timeout: Duration,
}

impl QuicConfig {
    /// Defaults: frames up to 16 MiB, queues of 4096 messages, batches up to
    /// 1 MiB, 16 snapshot streams, idle timeout 10 s with keep-alives every
    /// 2 s, reconnecting after 50 ms doubling up to 5 s, 10 s for the hello.
    pub fn new(cluster_id: impl Into<String>, listen: SocketAddr) -> Self {
        Self {
            cluster_id: cluster_id.into(),
            listen,
            peers: HashMap::new(),
            max_frame_bytes: 16 << 20,
            queue_capacity: 4096,
            max_batch_bytes: 1 << 20,
            max_snapshot_streams: 16,
            idle_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(2),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(5),
            hello_timeout: Duration::from_secs(10),
        }
    }

    fn validate(&self) -> Result<(), QuicError> {
        let invalid = |why: &str| Err(QuicError::Config(why.to_owned()));
        if self.max_frame_bytes < HELLO_MAX_BYTES || self.max_frame_bytes > raft_core::codec::MAX_VALUE_BYTES
        {
            return invalid("max_frame_bytes must be between 1 KiB and 64 MiB");
        }
        if self.queue_capacity == 0 || self.max_batch_bytes == 0 || self.max_snapshot_streams == 0 {
            return invalid("queue_capacity, max_batch_bytes and max_snapshot_streams must be positive");
        }
        if self.keep_alive.is_zero() || self.keep_alive >= self.idle_timeout {
            return invalid("keep_alive must be positive and shorter than idle_timeout");
        }
        if self.reconnect_min.is_zero() || self.reconnect_min > self.reconnect_max {
            return invalid("reconnect_min must be positive and at most reconnect_max");
        }
        if self.hello_timeout.is_zero() {
            return invalid("hello_timeout must be positive");
        }
        Ok(())
    }
}

/// Why a transport could not start.
#[derive(Debug, Error)]
pub enum QuicError {
    /// The node's TLS identity could not be turned into a configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The TLS configuration does not suit QUIC.
    #[error("the TLS configuration does not suit QUIC: {0}")]
    QuicTls(String),
    /// A setting is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The UDP socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not called within a tokio runtime.
    #[error("QuicTransport::bind must be called within a tokio runtime")]
    NoRuntime,
}

/// What a client sends first, on its message stream: who it is, whom it
/// means to reach, and in which cluster. The server checks all three (the
/// first against the client's certificate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The cluster the client belongs to.
    pub cluster_id: String,
    /// The client's node id; its certificate must name it.
    pub from: NodeId,
    /// The node the client means to reach.
    pub to: NodeId,
}

/// The largest [`Hello`] frame a server accepts.
pub const HELLO_MAX_BYTES: usize = 1024;

/// Application close code: the closing side is shutting down, or dropped the
/// peer.
pub const CLOSE_SHUTDOWN: u32 = 0;
/// Application close code: the hello was refused (wrong cluster, wrong node,
/// a certificate that does not name the claimed node, or no hello in time).
pub const CLOSE_REFUSED: u32 = 1;
/// Application close code: a stream carried a frame that is garbage,
/// truncated, oversized, or misaddressed.
pub const CLOSE_PROTOCOL: u32 = 2;

/// A node's QUIC transport: one endpoint that listens for its peers and
/// dials them. Cheap to clone; every clone is the same transport, which
/// stops when the last clone is dropped or on [`QuicTransport::close`].
#[derive(Clone)]
pub struct QuicTransport {
    shared: Arc<Shared>,
}

struct Shared {
    id: NodeId,
    local_addr: SocketAddr,
    endpoint: quinn::Endpoint,
    runtime: tokio::runtime::Handle,
    outbound: Arc<outbound::Context>,
    peers: Mutex<HashMap<NodeId, Peer>>,
    accept: tokio::task::JoinHandle<()>,
}

/// A peer this node sends to: its queue, its address, and the task that
/// empties the queue into a connection.
struct Peer {
    queue: mpsc::Sender<Envelope>,
    address: watch::Sender<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for QuicTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicTransport")
            .field("id", &self.shared.id)
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.accept.abort();
        self.endpoint.close(quinn::VarInt::from_u32(CLOSE_SHUTDOWN), b"shutdown");
    }
}

impl QuicTransport {
    /// Listens on `config.listen` as `identity`'s node and starts sending to
    /// `config.peers`; messages from peers are delivered to `inbox` (the one
    /// the node is then started on). Must be called within a tokio runtime.
    ///
    /// When `inbox` is full, reading from peers waits: QUIC's flow control
    /// then slows them down.
    pub async fn bind(config: QuicConfig, identity: &NodeIdentity, inbox: Inbox) -> Result<Self, QuicError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| QuicError::NoRuntime)?;
        let transport = Arc::new(transport_config(&config)?);

        let server_tls = quinn::crypto::rustls::QuicServerConfig::try_from(identity.server_config()?)
            .map_err(|e| QuicError::QuicTls(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_tls));
        server.transport_config(transport.clone());
        // Allowed (quinn's default, stated here on purpose): a peer whose
        // address changes keeps its connection; TLS, not the address, says
        // who it is.
        server.migration(true);

        let client_tls = quinn::crypto::rustls::QuicClientConfig::try_from(identity.client_config()?)
            .map_err(|e| QuicError::QuicTls(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(client_tls));
        client.transport_config(transport);

        let endpoint = {
            let _guard = runtime.enter();
            quinn::Endpoint::server(server, config.listen)
                .map_err(|source| QuicError::Bind { addr: config.listen, source })?
        };
        let local_addr =
            endpoint.local_addr().map_err(|source| QuicError::Bind { addr: config.listen, source })?;
        let id = identity.node();
        let inbound = Arc::new(inbound::Context {
            id,
            identity: identity.clone(),
            cluster_id: config.cluster_id.clone(),
            max_frame_bytes: config.max_frame_bytes,
            hello_timeout: config.hello_timeout,
            inbox,
        });
        let accept = runtime.spawn(inbound::accept(endpoint.clone(), inbound));
        let outbound = Arc::new(outbound::Context {
            id,
            endpoint: endpoint.clone(),
            client,
            cluster_id: config.cluster_id.clone(),
            max_frame_bytes: config.max_frame_bytes,
            max_batch_bytes: config.max_batch_bytes,
            queue_capacity: config.queue_capacity,
            reconnect_min: config.reconnect_min,
            reconnect_max: config.reconnect_max,
        });
        let shared = Arc::new(Shared {
            id,
            local_addr,
            endpoint,
            runtime,
            outbound,
            peers: Mutex::new(HashMap::new()),
            accept,
        });
        let transport = Self { shared };
        for (&peer, &address) in &config.peers {
            transport.set_peer(peer, address);
        }
        Ok(transport)
    }

    /// The node this transport speaks for.
    pub fn id(&self) -> NodeId {
        self.shared.id
    }

    /// The address this transport listens on (with the port chosen when
    /// [`QuicConfig::listen`] asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Adds peer `peer` at `address`, or moves it there: an open connection
    /// to its old address is closed and the next message dials the new one.
    /// This node's own id is ignored.
    pub fn set_peer(&self, peer: NodeId, address: SocketAddr) {
        if peer == self.shared.id {
            return;
        }
        let mut peers = self.lock_peers();
        if let Some(existing) = peers.get(&peer) {
            existing.address.send_if_modified(|current| std::mem::replace(current, address) != address);
            return;
        }
        let (queue, messages) = mpsc::channel(self.shared.outbound.queue_capacity);
        let (address, addresses) = watch::channel(address);
        let task =
            self.shared.runtime.spawn(outbound::run(self.shared.outbound.clone(), peer, messages, addresses));
        peers.insert(peer, Peer { queue, address, task });
    }

    /// Stops sending to `peer` and closes the connection to it; returns
    /// whether it was known. Its connections to this node are not affected:
    /// they end when it stops.
    pub fn remove_peer(&self, peer: NodeId) -> bool {
        let removed = self.lock_peers().remove(&peer);
        removed.is_some()
    }

    /// The peers this transport sends to, and their addresses.
    pub fn peers(&self) -> BTreeMap<NodeId, SocketAddr> {
        self.lock_peers().iter().map(|(&id, peer)| (id, *peer.address.borrow())).collect()
    }

    /// Stops the transport: closes every connection and the endpoint, and
    /// drops every queued message. Later sends are dropped.
    pub fn close(&self) {
        let peers = std::mem::take(&mut *self.lock_peers());
        drop(peers);
        self.shared.accept.abort();
        self.shared.endpoint.close(quinn::VarInt::from_u32(CLOSE_SHUTDOWN), b"shutdown");
    }

    fn lock_peers(&self) -> MutexGuard<'_, HashMap<NodeId, Peer>> {
        self.shared.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Transport for QuicTransport {
    /// Queues `envelope` for [`Envelope::to`]; drops it if that peer is
    /// unknown or its queue is full.
    fn send(&self, envelope: Envelope) {
        let peers = self.lock_peers();
        let Some(peer) = peers.get(&envelope.to()) else {
            tracing::trace!(
                to = envelope.to(),
                kind = envelope.kind(),
                "no address for the peer: message dropped"
            );
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(envelope)) = peer.queue.try_send(envelope) {
            tracing::trace!(to = envelope.to(), kind = envelope.kind(), "peer queue full: message dropped");
        }
    }

    /// Adopts the addresses the cluster configuration records (as
    /// `ip:port`), so members added later are reached without the
    /// application telling each node. Peers the configuration gives no
    /// address keep the one they have; an address that does not parse is
    /// logged and ignored.
    fn update_addresses(&self, addresses: &std::collections::BTreeMap<NodeId, String>) {
        for (&peer, address) in addresses {
            match address.parse::<SocketAddr>() {
                Ok(address) => self.set_peer(peer, address),
                Err(error) => tracing::warn!(peer, address, %error, "configuration address ignored"),
            }
        }
    }
}

fn transport_config(config: &QuicConfig) -> Result<quinn::TransportConfig, QuicError> {
    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(config.idle_timeout)
        .map_err(|_| QuicError::Config("idle_timeout is too long".into()))?;
    transport.max_idle_timeout(Some(idle));
    transport.keep_alive_interval(Some(config.keep_alive));
    // The message stream, and the snapshot chunk streams.
    transport
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(config.max_snapshot_streams.saturating_add(1)));
    transport.max_concurrent_bidi_streams(quinn::VarInt::from_u32(0));
    // Nothing here uses datagrams: buffer none a peer might send.
    transport.datagram_receive_buffer_size(None);
    Ok(transport)
}
