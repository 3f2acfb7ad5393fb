//! `raft-kv node`: one node, from its flags to a running Raft handle with
//! the HTTP API in front, until SIGINT or SIGTERM.
//!
//! A node's data directory holds `node.json` (its id, its cluster's id and,
//! for a founding member, the founding configuration) and `raft/` (the
//! RocksDB log store). `node.json` is written before the node first starts,
//! so a restart with none of `--init`, `--join` or `--initial-members`
//! resumes the same cluster: the founding configuration is passed to the
//! runtime again, which ignores it once the store holds one.

use crate::api::types::{AddLearner, ClusterStatus};
use crate::api::{self, ApiState, Limits};
use crate::cli::{NodeArgs, Storage, TransportKind};
use crate::member::{parse_members, parse_peer_via, Inner, KvTransport, MemberAddr};
use crate::state::KvState;
use crate::tls::{NodeTls, TlsListener};
use raft_core::runtime::{Inbox, Raft, RuntimeConfig};
use raft_core::{Config, LogStore, Membership, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why a node could not start or stopped badly; the message says what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(pub String);

fn fatal(context: &str) -> impl Fn(&dyn std::fmt::Display) -> Fatal + '_ {
    move |error| Fatal(format!("{context}: {error}"))
}

/// What `node.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFile {
    /// The node's id.
    pub id: NodeId,
    /// Its cluster's id.
    pub cluster_id: u64,
    /// The founding configuration, for a founding member.
    pub founding: Option<BTreeMap<NodeId, MemberAddr>>,
}

const NODE_FILE: &str = "node.json";

impl NodeFile {
    fn read(dir: &Path) -> Result<Option<Self>, Fatal> {
        let path = dir.join(NODE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Fatal(format!("{} is damaged: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Fatal(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// Writes the file durably: to a temporary name, synced, then renamed.
    fn write(&self, dir: &Path) -> Result<(), Fatal> {
        let io = fatal("cannot write node.json");
        let tmp = dir.join("node.json.tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| io(&e))?;
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&tmp).map_err(|e| io(&e))?;
            file.write_all(&bytes).map_err(|e| io(&e))?;
            file.sync_all().map_err(|e| io(&e))?;
        }
        std::fs::rename(&tmp, dir.join(NODE_FILE)).map_err(|e| io(&e))?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io(&e))
    }
}

/// A cluster id all founding members derive alike from their list (as
/// etcd's initial-cluster-token does): FNV-1a of the sorted members.
pub fn cluster_id_of(members: &BTreeMap<NodeId, MemberAddr>) -> u64 {
    let text: String = members.iter().map(|(id, addr)| format!("{id}={addr},")).collect();
    text.bytes()
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3))
}

/// How the node comes up: what it founds or joins.
struct Plan {
    file: NodeFile,
    /// The peers' Raft addresses to start the transport with.
    peers: BTreeMap<NodeId, SocketAddr>,
    /// Join through this API address once running.
    join: Option<String>,
}

async fn plan(args: &NodeArgs, me: MemberAddr, tls: Option<&NodeTls>) -> Result<Plan, Fatal> {
    let existing = NodeFile::read(&args.data_dir)?;
    if let (Some(_), Some(backup)) = (&existing, &args.restore) {
        return Err(Fatal(format!(
            "{} already holds a node, so --restore {} cannot found a new cluster there: \
             remove the directory (a restore that stopped half-way leaves one too) and start again",
            args.data_dir.display(),
            backup.display()
        )));
    }
    if let Some(file) = existing {
        if file.id != args.id {
            return Err(Fatal(format!(
                "{} belongs to node {}, not {}",
                args.data_dir.display(),
                file.id,
                args.id
            )));
        }
        if args.storage == Storage::Mem {
            return Err(Fatal(format!(
                "{} holds a node that kept its log in memory, which is gone: remove the directory to start afresh",
                args.data_dir.display()
            )));
        }
        let peers = file.founding.iter().flatten().map(|(&id, a)| (id, a.raft)).collect();
        tracing::info!(id = file.id, cluster = %format!("{:016x}", file.cluster_id), "resuming from the data directory");
        return Ok(Plan { file, peers, join: None });
    }
    let (file, peers, join) = if args.init {
        let founding = BTreeMap::from([(args.id, me)]);
        (
            NodeFile { id: args.id, cluster_id: rand::random(), founding: Some(founding) },
            BTreeMap::new(),
            None,
        )
    } else if let Some(members) = &args.initial_members {
        let members = parse_members(members).map_err(|e| Fatal(format!("--initial-members: {e}")))?;
        match members.get(&args.id) {
            Some(addr) if *addr == me => {}
            Some(addr) => {
                return Err(Fatal(format!(
                    "--initial-members names node {} at {addr}, but it runs at {me}",
                    args.id
                )))
            }
            None => return Err(Fatal(format!("--initial-members does not list node {}", args.id))),
        }
        let peers = members.iter().map(|(&id, a)| (id, a.raft)).collect();
        (NodeFile { id: args.id, cluster_id: cluster_id_of(&members), founding: Some(members) }, peers, None)
    } else if let Some(target) = &args.join {
        let cluster = fetch_cluster(target, tls).await?;
        let cluster_id = u64::from_str_radix(&cluster.cluster_id, 16)
            .map_err(|_| Fatal(format!("{target} gave a malformed cluster id {:?}", cluster.cluster_id)))?;
        let peers = cluster
            .members
            .iter()
            .filter_map(|m| Some((m.id, m.raft_addr.as_ref()?.parse().ok()?)))
            .collect();
        (NodeFile { id: args.id, cluster_id, founding: None }, peers, Some(target.clone()))
    } else {
        return Err(Fatal(format!(
            "{} holds no node: pass --init (a new cluster), --initial-members (a new cluster of several) \
             or --join API_ADDR (an existing cluster)",
            args.data_dir.display()
        )));
    };
    if args.storage == Storage::Rocksdb {
        file.write(&args.data_dir)?;
    }
    Ok(Plan { file, peers, join })
}

/// How this node calls other nodes' APIs (`--join`): over HTTPS with its
/// API certificate when it serves its API over TLS.
fn peer_client(tls: Option<&NodeTls>) -> (reqwest::Client, &'static str) {
    match tls {
        Some(tls) => (crate::tls::http_client(Some(tls.client.clone()), Duration::from_secs(90)), "https"),
        None => (crate::tls::http_client(None, Duration::from_secs(90)), "http"),
    }
}

async fn fetch_cluster(target: &str, tls: Option<&NodeTls>) -> Result<ClusterStatus, Fatal> {
    let (http, scheme) = peer_client(tls);
    let url = format!("{scheme}://{target}/cluster");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let answer = http.get(&url).timeout(Duration::from_secs(5)).send().await;
        match answer {
            Ok(response) if response.status().is_success() => {
                return response.json().await.map_err(|e| Fatal(format!("{url} answered badly: {e}")));
            }
            Ok(response) if tokio::time::Instant::now() >= deadline => {
                return Err(Fatal(format!("{url} answered {}", response.status())));
            }
            Err(error) if tokio::time::Instant::now() >= deadline => {
                return Err(Fatal(format!("cannot reach {url}: {error}")));
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Binds the transport chosen by the flags; what it receives waits in
/// `inbox` for the node started on it.
async fn bind_transport(
    args: &NodeArgs,
    file: &NodeFile,
    peers: &BTreeMap<NodeId, SocketAddr>,
    inbox: &Inbox,
) -> Result<KvTransport, Fatal> {
    let via = match &args.peer_via {
        Some(text) => parse_peer_via(text).map_err(|e| Fatal(format!("--peer-via: {e}")))?,
        None => BTreeMap::new(),
    };
    let peers = peers
        .iter()
        .filter(|(&id, _)| id != args.id)
        .map(|(&id, &a)| (id, via.get(&id).copied().unwrap_or(a)))
        .collect::<Vec<_>>();
    let identity = match &args.tls_dir {
        Some(dir) => Some(
            raft_net_tls::NodeIdentity::load(&raft_net_tls::IdentityPaths::in_dir(dir, args.id), args.id)
                .map_err(|e| Fatal(format!("TLS identity in {}: {e}", dir.display())))?,
        ),
        None => None,
    };
    let inner =
        match (args.transport, identity) {
            (TransportKind::Tcp, identity) => {
                let tcp =
                    raft_net_tcp::TcpConfig::new(args.id, file.cluster_id, args.raft_addr).with_peers(peers);
                match identity {
                    None => {
                        Inner::Tcp(raft_net_tcp::TcpTransport::bind(tcp, inbox.clone()).await.map_err(
                            |e| Fatal(format!("cannot listen for Raft on {}: {e}", args.raft_addr)),
                        )?)
                    }
                    Some(identity) => {
                        let layer =
                            raft_net_tcp::TlsLayer::new(&identity).map_err(|e| Fatal(format!("TLS: {e}")))?;
                        let bound = raft_net_tcp::TcpTransport::bind_with(tcp, layer, inbox.clone()).await;
                        Inner::TcpTls(bound.map_err(|e| {
                            Fatal(format!("cannot listen for Raft on {}: {e}", args.raft_addr))
                        })?)
                    }
                }
            }
            (TransportKind::Quic, None) => {
                return Err(Fatal("--transport quic needs --tls-dir (make one with `raft-kv certs`)".into()))
            }
            (TransportKind::Quic, Some(identity)) => {
                let mut quic =
                    raft_net_quic::QuicConfig::new(format!("{:016x}", file.cluster_id), args.raft_addr);
                quic.peers.extend(peers);
                let transport = raft_net_quic::QuicTransport::bind(quic, &identity, inbox.clone())
                    .await
                    .map_err(|e| Fatal(format!("cannot listen for Raft on {}: {e}", args.raft_addr)))?;
                Inner::Quic(transport)
            }
        };
    Ok(KvTransport::new(inner, via))
}

fn raft_config(args: &NodeArgs) -> (Config, RuntimeConfig) {
    let mut config = Config::new(args.id);
    config.lease_reads = true;
    config.snapshot_threshold = args.snapshot_threshold;
    let runtime =
        RuntimeConfig { tick: Duration::from_millis(args.tick_ms.max(1)), ..RuntimeConfig::default() };
    (config, runtime)
}

async fn start_raft(
    args: &NodeArgs,
    file: &NodeFile,
    transport: KvTransport,
    inbox: Inbox,
) -> Result<Raft<KvState>, Fatal> {
    let membership = match &file.founding {
        Some(members) => {
            members.iter().fold(Membership::new(members.keys().copied(), []), |m, (&id, addr)| {
                m.with_address(id, addr.to_string())
            })
        }
        None => Membership::default(),
    };
    let (config, runtime) = raft_config(args);
    async fn go<S: LogStore>(
        c: Config,
        r: RuntimeConfig,
        m: Membership,
        s: S,
        t: KvTransport,
        i: Inbox,
    ) -> Result<Raft<KvState>, Fatal> {
        Raft::start(c, r, m, s, t, i, KvState::new())
            .await
            .map_err(|e| Fatal(format!("cannot start the node: {e}")))
    }
    match args.storage {
        Storage::Mem => {
            go(config, runtime, membership, raft_storage_mem::MemLogStore::new(), transport, inbox).await
        }
        #[cfg(not(feature = "rocksdb"))]
        Storage::Rocksdb => Err(Fatal("this raft-kv was built without RocksDB: use --storage mem".into())),
        #[cfg(feature = "rocksdb")]
        Storage::Rocksdb => {
            let options = raft_storage_rocksdb::RocksLogStoreOptions::new(file.cluster_id);
            let path = args.data_dir.join("raft");
            let store = raft_storage_rocksdb::RocksLogStore::open(&path, options)
                .await
                .map_err(|e| Fatal(format!("cannot open the store in {}: {e}", path.display())))?;
            go(config, runtime, membership, store, transport, inbox).await
        }
    }
}

/// Loads `backup` into the cluster this node has just founded alone, once
/// it leads, through the log like `POST /restore`.
async fn restore(raft: &Raft<KvState>, backup: Vec<u8>) -> Result<(), Fatal> {
    use crate::state::{Command, Op, Outcome};
    let mut metrics = raft.metrics();
    let leads = tokio::time::timeout(Duration::from_secs(30), metrics.wait_for(|m| m.leader == Some(m.id)));
    if !matches!(leads.await, Ok(Ok(_))) {
        return Err(Fatal("the new cluster elected no leader in 30 s; nothing was restored".into()));
    }
    let command = Command { request: None, op: Op::Restore(backup.into()) };
    match raft.propose(command).await {
        Ok(Outcome::Restored { keys, revision }) => {
            tracing::info!(keys, revision, "restored the backup into the new cluster");
            Ok(())
        }
        Ok(Outcome::RestoreRefused { reason }) => Err(Fatal(format!("backup not restored: {reason}"))),
        Ok(other) => Err(Fatal(format!("backup not restored: unexpected outcome {other:?}"))),
        Err(error) => Err(Fatal(format!("backup not restored: {error}"))),
    }
}

/// Asks `target` (any member) to add this node as a learner, retrying
/// while the cluster is unavailable, until it has caught up.
async fn join(target: &str, id: NodeId, me: MemberAddr, tls: Option<&NodeTls>) -> Result<(), Fatal> {
    let body = AddLearner { id, raft_addr: me.raft.to_string(), api_addr: me.api.to_string() };
    let (http, scheme) = peer_client(tls);
    let url = format!("{scheme}://{target}/cluster/learners");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let answer = http.post(&url).json(&body).timeout(Duration::from_secs(90)).send().await;
        let retry = match answer {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) if response.status().is_server_error() => {
                format!("{}: {}", response.status(), response.text().await.unwrap_or_default())
            }
            Ok(response) => {
                let status = response.status();
                return Err(Fatal(format!(
                    "{url} refused: {status} {}",
                    response.text().await.unwrap_or_default()
                )));
            }
            Err(error) => error.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(Fatal(format!("could not join through {target}: {retry}")));
        }
        tracing::info!(%retry, "joining: retrying");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Logs one line per change of role, term or leader, per configuration
/// change and per snapshot.
fn log_changes(raft: &Raft<KvState>) {
    let mut metrics = raft.metrics();
    tokio::spawn(async move {
        let mut last: Option<raft_core::runtime::Metrics> = None;
        loop {
            let now = metrics.borrow_and_update().clone();
            if let Some(before) = &last {
                if (before.role, before.term, before.leader) != (now.role, now.term, now.leader) {
                    tracing::info!(role = ?now.role, term = now.term, leader = ?now.leader, "role changed");
                }
                if before.membership != now.membership {
                    tracing::info!(voters = ?now.membership.voters, learners = ?now.membership.learners,
                        joint = now.membership.is_joint(), "configuration changed");
                }
                if before.snapshot != now.snapshot {
                    tracing::info!(index = now.snapshot.index, term = now.snapshot.term, "snapshot taken");
                }
            }
            last = Some(now);
            if metrics.changed().await.is_err() {
                return;
            }
        }
    });
}

/// Resolves once the Raft node stopped on its own (a storage error: the
/// runtime then refuses every request), with why. Serving on would answer
/// every request with an error and keep the process looking alive to a
/// supervisor; exiting non-zero lets it see the failure and restart the
/// node once the disk is fixed.
async fn raft_stopped(raft: &Raft<KvState>) -> Fatal {
    let mut metrics = raft.metrics();
    // The core task drops the metrics sender as it finishes.
    while metrics.changed().await.is_ok() {}
    // The core closed its request queue before it finished, so this is
    // refused at once, with the stored reason.
    let why = match raft.trigger_snapshot().await {
        Err(error) => error.to_string(),
        Ok(_) => "the Raft node stopped".to_string(),
    };
    Fatal(format!("the Raft node stopped, so the node exits: {why}"))
}

/// Resolves on SIGINT or SIGTERM, or (when asked) when stdin closes.
async fn stop_signal(stdin: bool) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        return std::future::pending().await;
    };
    let stdin_closed = async {
        if !stdin {
            return std::future::pending().await;
        }
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 64];
        let mut input = tokio::io::stdin();
        while matches!(input.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
        () = stdin_closed => tracing::info!("standard input closed: stopping"),
    }
}

/// The environment variable that must be `1` for
/// `--unsafe-local-reads-for-testing` to be accepted: the deliberate bug is
/// never one flag away.
pub const UNSAFE_TESTING_ENV: &str = "RAFT_KV_UNSAFE_TESTING";

/// Refuses the unsafe test flag unless its environment variable agrees.
fn check_unsafe(args: &NodeArgs) -> Result<(), Fatal> {
    if args.unsafe_local_reads_for_testing {
        if std::env::var(UNSAFE_TESTING_ENV).as_deref() != Ok("1") {
            return Err(Fatal(format!(
                "--unsafe-local-reads-for-testing breaks linearizability on purpose; \
                 it is refused unless {UNSAFE_TESTING_ENV}=1"
            )));
        }
        tracing::warn!("UNSAFE: linearizable reads are served locally without ReadIndex (fault-test mode)");
    }
    Ok(())
}

/// Runs `raft-kv node` until a stop signal.
pub async fn run(args: NodeArgs) -> Result<(), Fatal> {
    check_unsafe(&args)?;
    let tls = match &args.api_tls_dir {
        Some(dir) => Some(NodeTls::load(dir, args.id, args.api_client_ca.as_deref())?),
        None => None,
    };
    if !args.api_addr.ip().is_loopback() {
        if tls.is_none() && !args.allow_public_api {
            return Err(Fatal(format!(
                "the API would listen in the clear on {}: bind it to loopback, serve it over TLS with \
                 --api-tls-dir, or pass --allow-public-api",
                args.api_addr
            )));
        }
        if tls.is_none() {
            tracing::warn!(api = %args.api_addr, "the API listens in the clear on a non-loopback address");
        } else if args.api_client_ca.is_none() {
            tracing::warn!(api = %args.api_addr, "the API takes any client: require certificates with --api-client-ca");
        }
    }
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| Fatal(format!("cannot create {}: {e}", args.data_dir.display())))?;
    // Before the node starts: raft-core takes its counters' handles then.
    let prometheus = install_prometheus();
    let api_listener = tokio::net::TcpListener::bind(args.api_addr)
        .await
        .map_err(|e| Fatal(format!("cannot listen for the API on {}: {e}", args.api_addr)))?;
    let me = MemberAddr { raft: args.raft_addr, api: args.api_addr };
    let backup = match &args.restore {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| Fatal(format!("cannot read the backup {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let plan = plan(&args, me, tls.as_ref()).await?;
    let inbox = Inbox::default();
    let transport = bind_transport(&args, &plan.file, &plan.peers, &inbox).await?;
    let closer = transport.clone();
    let raft = start_raft(&args, &plan.file, transport, inbox).await?;
    log_changes(&raft);
    if let Some(backup) = backup {
        if let Err(error) = restore(&raft, backup).await {
            raft.shutdown().await;
            return Err(error);
        }
    }
    let limits = Limits {
        max_key_bytes: args.max_key_bytes,
        max_value_bytes: args.max_value_bytes,
        max_body_bytes: args.max_body_bytes,
        max_concurrent: args.max_concurrent,
        ..Limits::default()
    };
    let mut state = ApiState::new(raft.clone(), args.id, plan.file.cluster_id, limits);
    if let Some(tls) = &tls {
        state = state.with_tls(tls.client.clone());
    }
    state.prometheus = prometheus;
    state.unsafe_local_reads = args.unsafe_local_reads_for_testing;
    let router = api::router(Arc::new(state));
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let stopped = async {
        let _ = api_stopped.await;
    };
    let server = match &tls {
        Some(tls) => {
            let listener = TlsListener::new(api_listener, tls.acceptor.clone())
                .map_err(|e| Fatal(format!("cannot serve the API over TLS: {e}")))?;
            let server = axum::serve(listener, router).with_graceful_shutdown(stopped);
            tokio::spawn(async move { server.await })
        }
        None => {
            let server = axum::serve(api_listener, router).with_graceful_shutdown(stopped);
            tokio::spawn(async move { server.await })
        }
    };
    tracing::info!(id = args.id, raft = %args.raft_addr, api = %args.api_addr,
        cluster = %format!("{:016x}", plan.file.cluster_id), "node running");
    let outcome = match plan.join {
        Some(target) => tokio::select! {
            joined = join(&target, args.id, me, tls.as_ref()) => joined.map(|()| tracing::info!("joined as a learner and caught up")),
            () = stop_signal(args.exit_on_stdin_close) => Err(Fatal("stopped while joining".into())),
        },
        None => Ok(()),
    };
    let outcome = match outcome {
        Ok(()) => tokio::select! {
            () = stop_signal(args.exit_on_stdin_close) => Ok(()),
            error = raft_stopped(&raft) => Err(error),
        },
        Err(error) => Err(error),
    };
    let _ = stop_api.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    raft.shutdown().await;
    closer.close();
    tracing::info!("stopped");
    outcome
}

/// Installs the process's Prometheus recorder (once: a process runs one
/// node), with histogram buckets from 100 µs to 10 s.
fn install_prometheus() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    let buckets = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];
    let builder = metrics_exporter_prometheus::PrometheusBuilder::new().set_buckets(&buckets);
    match builder.and_then(|b| b.install_recorder()) {
        Ok(handle) => Some(handle),
        Err(error) => {
            tracing::warn!(%error, "metrics are not recorded");
            None
        }
    }
}

/// Where `raft-kv node` keeps its data for a node of a local cluster.
pub fn node_dir(base: &Path, id: NodeId) -> PathBuf {
    base.join(format!("node-{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn node_args(extra: &[&str]) -> NodeArgs {
        let mut args = vec![
            "raft-kv",
            "node",
            "--id",
            "1",
            "--raft-addr",
            "127.0.0.1:1",
            "--api-addr",
            "127.0.0.1:2",
            "--data-dir",
            "d",
        ];
        args.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(args).expect("valid flags").command {
            crate::cli::Command::Node(args) => args,
            other => panic!("not a node: {other:?}"),
        }
    }

    #[test]
    fn the_unsafe_read_flag_is_refused_unless_its_environment_variable_is_set() {
        assert!(check_unsafe(&node_args(&[])).is_ok());
        let unsafe_args = node_args(&["--unsafe-local-reads-for-testing"]);
        // The only test that touches this variable.
        std::env::remove_var(UNSAFE_TESTING_ENV);
        assert!(check_unsafe(&unsafe_args).is_err());
        std::env::set_var(UNSAFE_TESTING_ENV, "yes");
        assert!(check_unsafe(&unsafe_args).is_err(), "only 1 enables it");
        std::env::set_var(UNSAFE_TESTING_ENV, "1");
        assert!(check_unsafe(&unsafe_args).is_ok());
        std::env::remove_var(UNSAFE_TESTING_ENV);
    }
}
