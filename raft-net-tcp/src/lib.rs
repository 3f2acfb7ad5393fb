//! # raft-net-tcp: a Raft transport over tokio TCP
//!
//! [`TcpTransport`] implements [`raft_core::runtime::Transport`]: it listens
//! for peers' connections and hands every message they send to the node,
//! and keeps connections to its peers, one per peer for ordinary messages
//! and one for snapshot chunks (so heartbeats are never stuck behind a
//! snapshot).
//!
//! - **Never blocks the node.** [`Transport::send`] puts the message on the
//!   peer's bounded queue and returns; when the queue is full the message is
//!   dropped (Raft retries). A peer that is down, slow, or reads nothing
//!   costs one full queue, never a stalled core.
//! - **Batched writes.** A link drains everything queued (up to
//!   [`TcpConfig::max_batch_bytes`]) into one buffer and writes it at once,
//!   with `TCP_NODELAY` set.
//! - **Reconnects** after a failure with jittered exponential backoff
//!   between [`TcpConfig::reconnect_backoff_min`] and `_max`, dialing only
//!   when there is something to send.
//! - **A handshake** ([`handshake`]) opens every connection: both sides
//!   check the cluster id and each other's node id before any message
//!   passes (a node accepts only its known peers), and every message must
//!   then be from the node the handshake named. A connection that does not complete it within
//!   [`TcpConfig::handshake_timeout`] is closed.
//! - **Hostile bytes end the connection**, never the node: a malformed,
//!   truncated or oversized frame ([`TcpConfig::max_frame_bytes`], checked
//!   from the frame's 4-byte header before its body is read) closes the
//!   connection with a logged error (`tracing`).
//! - **Addresses change at runtime**: [`TcpTransport::set_peer`] and
//!   [`TcpTransport::remove_peer`] follow membership changes (a removed
//!   peer's connections close, both ways).
//! - **Stopping**: [`TcpTransport::close`], or dropping every clone of the
//!   transport, stops its listener and every connection.
//!
//! Frames are the project codec's ([`raft_core::codec`]), each an
//! [`Envelope`]: a Raft message, or a client request the runtimes forward
//! between them, which travels like any message. The connection
//! code is generic over the stream: [`TcpTransport::bind_with`] takes a
//! [`StreamLayer`] that wraps each TCP stream before the handshake runs, and
//! may check the node id each dialer claims against what it learned of the
//! peer ([`StreamLayer::verify_peer`]).
//!
//! ## TLS (feature `tls`)
//!
//! The cluster id authenticates nobody: anyone who can reach the port and
//! knows it can talk. With the `tls` feature (off by default), `TlsLayer`
//! runs mutual TLS (rustls through tokio-rustls: TLS 1.3, ALPN `raft/1`, the
//! `ring` provider) with the cluster certificates `raft-net-tls` loads, the
//! same as the QUIC transport's (`cargo run -p raft-net-tls --example
//! gen-certs -- certs demo 1 2 3` makes a local cluster's):
//!
//! - a node dialing node `n` checks that the server's certificate names `n`;
//! - a node accepting a connection checks that the dialer's certificate
//!   names the node its handshake `Hello` claims, before answering it, so a
//!   member with a valid certificate cannot pass for another node: it is
//!   refused ([`handshake::Refusal::Unauthenticated`]) and nothing it sends
//!   is read;
//! - a peer without a certificate of the cluster CA, or without TLS, fails
//!   the TLS handshake, and a TLS node cannot reach a plain one either.
//!
//! Certificates that are expired, not yet valid, of another CA or
//! unreadable are refused when the identity is loaded
//! (`raft_net_tls::NodeIdentity::load`), with an error saying which and why.
//!
//! ## Example
//!
//! The transport exists before the node does (it is passed to
//! [`Raft::start`](raft_core::runtime::Raft::start)), so it delivers into an
//! [`Inbox`] made first and handed to the node as it starts; messages that
//! arrive before that wait in it.
//!
//! ```
//! use raft_core::runtime::{Inbox, Raft, RuntimeConfig};
//! use raft_core::{Config, Membership};
//! use raft_net_tcp::{TcpConfig, TcpTransport};
//! use raft_storage_mem::{MemKv, MemLogStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! const CLUSTER: u64 = 0x5eed;
//! let inbox = Inbox::default();
//! let config = TcpConfig::new(1, CLUSTER, "127.0.0.1:0".parse()?);
//! let transport = TcpTransport::bind(config, inbox.clone()).await?;
//! println!("node 1 listens on {}", transport.local_addr());
//! // Peers' addresses: given in `TcpConfig::peers`, or set at any time.
//! transport.set_peer(2, "127.0.0.1:7002".parse()?);
//! transport.set_peer(3, "127.0.0.1:7003".parse()?);
//!
//! let members = Membership::new([1, 2, 3], []);
//! let raft = Raft::start(Config::new(1), RuntimeConfig::default(), members, MemLogStore::new(), transport.clone(), inbox, MemKv::default()).await?;
//! // ... propose, read ...
//! raft.shutdown().await;
//! transport.close();
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod handshake;
mod inbound;
mod layer;
mod outbound;
#[cfg(feature = "tls")]
mod tls;

pub use layer::{PeerRejected, PlainTcp, StreamLayer};
#[cfg(feature = "tls")]
pub use tls::TlsLayer;

use outbound::{Links, PeerLink};
use raft_core::runtime::{Envelope, Inbox, Transport};
use raft_core::NodeId;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use thiserror::Error;
use tokio::task::AbortHandle;

/// Settings of a [`TcpTransport`]. Both ends of a connection should agree on
/// [`TcpConfig::max_frame_bytes`]: a frame over the receiver's limit ends the
/// connection.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// This node.
    pub id: NodeId,
    /// The cluster: connections from nodes of another cluster are refused,
    /// and so are peers answering with another one.
    pub cluster_id: u64,
    /// The address to listen on (port 0: any free port, see
    /// [`TcpTransport::local_addr`]).
    pub listen: SocketAddr,
    /// The peers' addresses at start.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Messages queued per peer before further ones are dropped.
    pub queue_capacity: usize,
    /// Snapshot chunks queued per peer before further ones are dropped.
    pub snapshot_queue_capacity: usize,
    /// The largest frame (version byte and encoded message) read or
    /// written; at most [`raft_core::codec::MAX_VALUE_BYTES`]. Keep it above
    /// the core's `max_bytes_per_msg` and `snapshot_chunk_bytes`, with room
    /// for one large entry: at least twice [`raft_core::MAX_MESSAGE_BYTES`]
    /// (16 MiB), the most those may be, holds any message within them. The
    /// default, 64 MiB, does.
    pub max_frame_bytes: usize,
    /// The most bytes written at once (a batch ends after the message that
    /// crosses it).
    pub max_batch_bytes: usize,
    /// How long an inbound connection may take to complete its handshake.
    pub handshake_timeout: Duration,
    /// How long connecting to a peer, handshake included, may take.
    pub connect_timeout: Duration,
    /// How long one batch may take to write before the connection is
    /// deemed dead (a peer that reads nothing).
    pub write_timeout: Duration,
    /// The first delay before reconnecting.
    pub reconnect_backoff_min: Duration,
    /// The longest delay before reconnecting.
    pub reconnect_backoff_max: Duration,
    /// Inbound connections open at once (handshaking ones included) before
    /// new ones are refused.
    pub max_inbound_connections: usize,
}

impl TcpConfig {
    /// Node `id` of cluster `cluster_id` listening on `listen`, with no peers
    /// yet and the default limits: queues of 4096 messages and 16 snapshot
    /// chunks per peer, frames of up to 64 MiB, batches of 1 MiB, a 5 s
    /// handshake and connect timeout, a 10 s write timeout, reconnects after
    /// 20 ms doubling to 2 s, and 1024 inbound connections.
    pub fn new(id: NodeId, cluster_id: u64, listen: SocketAddr) -> Self {
        Self {
            id,
            cluster_id,
            listen,
            peers: BTreeMap::new(),
            queue_capacity: 4096,
            snapshot_queue_capacity: 16,
            max_frame_bytes: raft_core::codec::MAX_VALUE_BYTES,
            max_batch_bytes: 1 << 20,
            handshake_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            reconnect_backoff_min: Duration::from_millis(20),
            reconnect_backoff_max: Duration::from_secs(2),
            max_inbound_connections: 1024,
        }
    }

    /// The same, with `peers` as the peers' addresses.
    pub fn with_peers(mut self, peers: impl IntoIterator<Item = (NodeId, SocketAddr)>) -> Self {
        self.peers = peers.into_iter().collect();
        self
    }

    /// Checks the settings, naming the first problem found.
    pub fn validate(&self) -> Result<(), TcpError> {
        let invalid = |what: &'static str| Err(TcpError::InvalidConfig(what));
        if self.id == 0 {
            return invalid("the node id must not be 0");
        }
        if self.queue_capacity == 0 || self.snapshot_queue_capacity == 0 {
            return invalid("queue capacities must be at least 1");
        }
        if self.max_frame_bytes == 0 || self.max_frame_bytes > raft_core::codec::MAX_VALUE_BYTES {
            return invalid("max_frame_bytes must be between 1 and raft_core::codec::MAX_VALUE_BYTES");
        }
        if self.reconnect_backoff_min < Duration::from_millis(1)
            || self.reconnect_backoff_max < self.reconnect_backoff_min
            || self.reconnect_backoff_max > Duration::from_secs(3600)
        {
            return invalid("reconnect backoffs must satisfy 1 ms <= min <= max <= 1 hour");
        }
        if self.handshake_timeout.is_zero() || self.connect_timeout.is_zero() || self.write_timeout.is_zero()
        {
            return invalid("timeouts must not be zero");
        }
        if self.max_inbound_connections == 0 {
            return invalid("max_inbound_connections must be at least 1");
        }
        if self.peers.contains_key(&self.id) {
            return invalid("the peers must not include this node");
        }
        Ok(())
    }
}

/// Why a transport could not start.
#[derive(Debug, Error)]
pub enum TcpError {
    /// The configuration is invalid.
    #[error("invalid transport configuration: {0}")]
    InvalidConfig(&'static str),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The stream layer proves another node than the configuration's (a TLS
    /// certificate for another node, say): every peer would refuse it.
    #[error("the transport is configured as node {config}, but its stream layer is node {layer}'s")]
    LayerForAnotherNode {
        /// [`TcpConfig::id`].
        config: NodeId,
        /// [`StreamLayer::node`].
        layer: NodeId,
    },
    /// [`TcpTransport::bind`] was called outside a tokio runtime.
    #[error("the transport must be started within a tokio runtime")]
    NoRuntime,
}

/// A Raft transport over TCP. Cheap to clone: every clone is the same
/// transport, which stops when [`TcpTransport::close`] is called or the last
/// clone is dropped.
pub struct TcpTransport<L: StreamLayer = PlainTcp> {
    shared: Arc<Shared<L>>,
}

impl<L: StreamLayer> Clone for TcpTransport<L> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

struct Shared<L> {
    id: NodeId,
    local_addr: SocketAddr,
    runtime: tokio::runtime::Handle,
    links: Arc<Links<L>>,
    peers: RwLock<HashMap<NodeId, PeerLink>>,
    registry: Arc<inbound::Registry>,
    listener: AbortHandle,
    closed: AtomicBool,
}

impl<L> Drop for Shared<L> {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl TcpTransport<PlainTcp> {
    /// Listens on `config.listen` and starts the links to `config.peers`;
    /// every message a peer sends is delivered to `inbox` (the one the node
    /// is then started on), or dropped if it is full. Must be called within
    /// a tokio runtime.
    pub async fn bind(config: TcpConfig, inbox: Inbox) -> Result<Self, TcpError> {
        Self::bind_with(config, PlainTcp, inbox).await
    }
}

impl<L: StreamLayer> TcpTransport<L> {
    /// [`TcpTransport::bind`], with `layer` wrapping every connection (TLS,
    /// for instance) before the handshake.
    pub async fn bind_with(config: TcpConfig, layer: L, inbox: Inbox) -> Result<Self, TcpError> {
        config.validate()?;
        if let Some(layer_node) = layer.node().filter(|&node| node != config.id) {
            return Err(TcpError::LayerForAnotherNode { config: config.id, layer: layer_node });
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| TcpError::NoRuntime)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| TcpError::Bind { addr: config.listen, source })?;
        let local_addr =
            listener.local_addr().map_err(|source| TcpError::Bind { addr: config.listen, source })?;
        let layer = Arc::new(layer);
        let registry = Arc::new(inbound::Registry::default());
        let listener = runtime
            .spawn(inbound::listen(listener, config.clone(), layer.clone(), inbox, registry.clone()))
            .abort_handle();
        tracing::info!(node = config.id, cluster = config.cluster_id, %local_addr, "listening");
        let peers = config.peers.clone();
        let links = Arc::new(Links { config, layer, dropped: Arc::new(AtomicU64::new(0)) });
        let transport = Self {
            shared: Arc::new(Shared {
                id: links.config.id,
                local_addr,
                runtime,
                links,
                peers: RwLock::new(HashMap::new()),
                registry,
                listener,
                closed: AtomicBool::new(false),
            }),
        };
        for (id, addr) in peers {
            transport.set_peer(id, addr);
        }
        Ok(transport)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.shared.id
    }

    /// The address the transport listens on (with the port chosen when
    /// [`TcpConfig::listen`] asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Sets the address of peer `id`, adding the peer if it is new: from now
    /// on this node sends to it, and accepts its connections (a node only
    /// accepts peers it can answer). A changed address takes effect at once:
    /// the peer's connections move to it. Setting this node's own address,
    /// or any after [`TcpTransport::close`], does nothing.
    pub fn set_peer(&self, id: NodeId, addr: SocketAddr) {
        if id == self.shared.id {
            return;
        }
        let mut peers = self.write_peers();
        // Checked under the lock, so that no link starts after `close`.
        if self.is_closed() {
            return;
        }
        self.shared.registry.add_peer(id);
        match peers.get(&id) {
            Some(link) => {
                link.address.send_if_modified(|current| std::mem::replace(current, addr) != addr);
            }
            None => {
                peers.insert(id, PeerLink::start(&self.shared.links, &self.shared.runtime, id, addr));
            }
        }
    }

    /// Forgets peer `id` (removed from the cluster): its connections, both
    /// ways, close; messages to it are dropped and its new connections
    /// refused. Returns whether it was known.
    pub fn remove_peer(&self, id: NodeId) -> bool {
        let mut peers = self.write_peers();
        self.shared.registry.remove_peer(id);
        peers.remove(&id).is_some()
    }

    /// The peers' addresses.
    pub fn peers(&self) -> BTreeMap<NodeId, SocketAddr> {
        self.read_peers().iter().map(|(&id, link)| (id, *link.address.borrow())).collect()
    }

    /// How many messages were dropped so far: queues full, peers unknown or
    /// unreachable, writes failed, messages over the frame limit.
    pub fn dropped(&self) -> u64 {
        self.shared.links.dropped.load(Ordering::Relaxed)
    }

    /// Stops the transport: the listener, every connection, every link.
    /// Messages sent afterwards are dropped.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.listener.abort();
        let links = std::mem::take(&mut *self.write_peers());
        drop(links);
    }

    /// Whether [`TcpTransport::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    fn read_peers(&self) -> std::sync::RwLockReadGuard<'_, HashMap<NodeId, PeerLink>> {
        self.shared.peers.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_peers(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<NodeId, PeerLink>> {
        self.shared.peers.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<L: StreamLayer> Transport for TcpTransport<L> {
    fn send(&self, envelope: Envelope) {
        let peers = self.read_peers();
        let Some(link) = peers.get(&envelope.to()) else {
            self.shared.links.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(
                to = envelope.to(),
                kind = envelope.kind(),
                "dropped a message to a peer with no address"
            );
            return;
        };
        let queue = if envelope.is_snapshot_chunk() { &link.snapshots } else { &link.messages };
        if queue.try_send(envelope).is_err() {
            self.shared.links.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adopts the addresses the cluster configuration records (as
    /// `ip:port`): a member added with an address becomes a known peer on
    /// every node, and a moved one is redialed. Peers the configuration
    /// gives no address keep theirs; an address that does not parse is
    /// logged and ignored.
    fn update_addresses(&self, addresses: &std::collections::BTreeMap<NodeId, String>) {
        for (&peer, address) in addresses {
            if peer == self.shared.id {
                continue;
            }
            match address.parse::<SocketAddr>() {
                Ok(address) => self.set_peer(peer, address),
                Err(error) => tracing::warn!(peer, address, %error, "configuration address ignored"),
            }
        }
    }
}

impl<L: StreamLayer> std::fmt::Debug for TcpTransport<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("id", &self.shared.id)
            .field("local_addr", &self.shared.local_addr)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}
