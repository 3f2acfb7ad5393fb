//! In-process clusters for the benchmarks: `n` nodes in one process, on the
//! memory store or (feature `rocksdb`) RocksDB, talking over the in-process
//! network or over TCP or QUIC on loopback.
//!
//! Every node is a whole `Raft` runtime with its own store and transport, so
//! what differs from a cluster of processes is only that they share one
//! tokio runtime and one address space.

use raft_core::runtime::{InProcessNetwork, Inbox, Raft, RuntimeConfig, Transport};
use raft_core::{Config, Membership, NodeId, Role};
use raft_storage_mem::{MemKv, MemLogStore};
use std::net::SocketAddr;
use std::time::Duration;

/// The log store of every node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StorageKind {
    /// `raft-storage-mem`: nothing reaches a disk.
    Mem,
    /// `raft-storage-rocksdb`, synced writes, in a temporary directory
    /// (needs this crate's `rocksdb` feature).
    Rocksdb,
}

/// How the nodes reach each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportKind {
    /// raft-core's in-process network: messages move through channels.
    Inproc,
    /// `raft-net-tcp` on loopback, plain TCP.
    Tcp,
    /// `raft-net-quic` on loopback, with mutual TLS (certificates made for
    /// the run).
    Quic,
}

/// Why a cluster did not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `--storage rocksdb` in a build without the `rocksdb` feature.
    #[error("this build has no RocksDB: rebuild benches with `--features rocksdb`, or use --storage mem")]
    NoRocksdb,
    /// No leader was elected within a minute of the start.
    #[error("no leader elected within 60 s")]
    NoLeader,
    /// A node, its store or its transport failed to start.
    #[error("node {id} did not start: {why}")]
    Start {
        /// The node.
        id: NodeId,
        /// What failed.
        why: String,
    },
}

/// A cluster of nodes in this process.
pub struct Cluster {
    /// The nodes, node `i + 1` at index `i`.
    pub nodes: Vec<Raft<MemKv>>,
    /// Where the RocksDB stores live; removed when the cluster is dropped.
    _dir: Option<tempfile::TempDir>,
}

const LOOPBACK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

impl Cluster {
    /// Starts `n` nodes on the in-process network and memory stores and
    /// waits for a leader.
    pub async fn start(n: u64) -> Self {
        Self::start_with(n, StorageKind::Mem, TransportKind::Inproc)
            .await
            .expect("an in-memory cluster starts")
    }

    /// Starts `n` nodes on `storage` and `transport` and waits for a leader.
    pub async fn start_with(
        n: u64,
        storage: StorageKind,
        transport: TransportKind,
    ) -> Result<Self, ClusterError> {
        let stores = Stores::new(storage)?;
        let voters: Vec<NodeId> = (1..=n).collect();
        // Each node's inbox exists before its transport is bound, so messages
        // that arrive before the node has started wait in it.
        let inboxes: Vec<Inbox> = voters.iter().map(|_| Inbox::default()).collect();
        let inbox = |id: NodeId| inboxes[id as usize - 1].clone();
        let start_error = |id: NodeId| move |e: String| ClusterError::Start { id, why: e };
        let mut nodes = Vec::new();
        match transport {
            TransportKind::Inproc => {
                let network = InProcessNetwork::new();
                for &id in &voters {
                    network.connect(id, inbox(id));
                }
                for &id in &voters {
                    nodes.push(stores.start_node(id, &voters, network.transport(id), inbox(id)).await?);
                }
            }
            TransportKind::Tcp => {
                let mut links = Vec::new();
                for &id in &voters {
                    let config = raft_net_tcp::TcpConfig::new(id, 1, LOOPBACK);
                    let bound = raft_net_tcp::TcpTransport::bind(config, inbox(id)).await;
                    links.push(bound.map_err(|e| start_error(id)(e.to_string()))?);
                }
                for a in &links {
                    for b in links.iter().filter(|b| b.id() != a.id()) {
                        a.set_peer(b.id(), b.local_addr());
                    }
                }
                for (&id, link) in voters.iter().zip(links) {
                    nodes.push(stores.start_node(id, &voters, link, inbox(id)).await?);
                }
            }
            TransportKind::Quic => {
                let links = quic_links(&voters, &inboxes).await?;
                for (&id, link) in voters.iter().zip(links) {
                    nodes.push(stores.start_node(id, &voters, link, inbox(id)).await?);
                }
            }
        }
        let cluster = Self { nodes, _dir: stores.dir };
        tokio::time::timeout(Duration::from_secs(60), cluster.leader())
            .await
            .map_err(|_| ClusterError::NoLeader)?;
        Ok(cluster)
    }

    /// The leader, once there is one.
    pub async fn leader(&self) -> Raft<MemKv> {
        loop {
            if let Some(leader) = self.nodes.iter().find(|n| n.metrics().borrow().role == Role::Leader) {
                return leader.clone();
            }
            let mut metrics = self.nodes[0].metrics();
            let _ = tokio::time::timeout(Duration::from_millis(50), metrics.changed()).await;
        }
    }

    /// Stops every node.
    pub async fn shutdown(&self) {
        for node in &self.nodes {
            node.shutdown().await;
        }
    }
}

/// QUIC transports for `voters`, each knowing the others' addresses, with a
/// CA and node certificates made for this cluster only.
async fn quic_links(
    voters: &[NodeId],
    inboxes: &[Inbox],
) -> Result<Vec<raft_net_quic::QuicTransport>, ClusterError> {
    let failed = |id: NodeId| move |e: &dyn std::fmt::Display| ClusterError::Start { id, why: e.to_string() };
    let validity = raft_net_tls::Validity::days_from_now(1);
    let ca = raft_net_tls::ClusterCa::generate("benches", validity).map_err(|e| failed(0)(&e))?;
    let mut links = Vec::new();
    for &id in voters {
        let cert = ca.issue(id, validity).map_err(|e| failed(id)(&e))?;
        let identity = raft_net_tls::NodeIdentity::from_pem(
            id,
            ca.cert_pem().as_bytes(),
            cert.cert_pem.as_bytes(),
            cert.key_pem.as_bytes(),
        )
        .map_err(|e| failed(id)(&e))?;
        let config = raft_net_quic::QuicConfig::new("benches", LOOPBACK);
        let link = raft_net_quic::QuicTransport::bind(config, &identity, inboxes[id as usize - 1].clone())
            .await
            .map_err(|e| failed(id)(&e))?;
        links.push(link);
    }
    for a in &links {
        for b in links.iter().filter(|b| b.id() != a.id()) {
            a.set_peer(b.id(), b.local_addr());
        }
    }
    Ok(links)
}

/// Makes each node's log store.
struct Stores {
    storage: StorageKind,
    dir: Option<tempfile::TempDir>,
}

impl Stores {
    fn new(storage: StorageKind) -> Result<Self, ClusterError> {
        match storage {
            StorageKind::Mem => Ok(Self { storage, dir: None }),
            #[cfg(feature = "rocksdb")]
            StorageKind::Rocksdb => {
                let dir = tempfile::Builder::new().prefix("cluster-bench-").tempdir().map_err(|e| {
                    ClusterError::Start { id: 0, why: format!("no temporary directory: {e}") }
                })?;
                Ok(Self { storage, dir: Some(dir) })
            }
            #[cfg(not(feature = "rocksdb"))]
            StorageKind::Rocksdb => Err(ClusterError::NoRocksdb),
        }
    }

    async fn start_node<T: Transport>(
        &self,
        id: NodeId,
        voters: &[NodeId],
        transport: T,
        inbox: Inbox,
    ) -> Result<Raft<MemKv>, ClusterError> {
        let config = Config::new(id);
        let runtime = RuntimeConfig { tick: Duration::from_millis(10), ..Default::default() };
        let membership = Membership::new(voters.to_vec(), []);
        let failed = |e: &dyn std::fmt::Display| ClusterError::Start { id, why: e.to_string() };
        match self.storage {
            StorageKind::Mem => Raft::start(
                config,
                runtime,
                membership,
                MemLogStore::new(),
                transport,
                inbox,
                MemKv::default(),
            )
            .await
            .map_err(|e| failed(&e)),
            #[cfg(feature = "rocksdb")]
            StorageKind::Rocksdb => {
                let dir = self.dir.as_ref().ok_or(ClusterError::NoRocksdb)?.path().join(format!("node-{id}"));
                let options = raft_storage_rocksdb::RocksLogStoreOptions::new(1);
                let store =
                    raft_storage_rocksdb::RocksLogStore::open(&dir, options).await.map_err(|e| failed(&e))?;
                Raft::start(config, runtime, membership, store, transport, inbox, MemKv::default())
                    .await
                    .map_err(|e| failed(&e))
            }
            #[cfg(not(feature = "rocksdb"))]
            StorageKind::Rocksdb => Err(ClusterError::NoRocksdb),
        }
    }
}
