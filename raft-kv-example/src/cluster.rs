//! `raft-kv cluster`: a supervisor of separate `raft-kv node` processes on
//! loopback, and `raft-kv certs`.
//!
//! The directory holds `cluster.json` (the members and their ports, chosen
//! on the first run and kept, so a second run resumes the same cluster),
//! `certs/` for QUIC and `--secure`, and one `node-N/` per node with its data and its log,
//! `node.log`. Children run in their own process group, so a terminal's
//! Ctrl-C reaches only the supervisor, which stops them in turn with
//! SIGTERM (SIGKILL after 10 s); each child's stdin is a pipe from the
//! supervisor, and a child stops when it closes, so no node outlives the
//! supervisor even if it is killed outright.

use crate::api::types::NodeStatus;
use crate::cli::{CertsArgs, ClusterArgs, Storage, TransportKind};
use crate::member::MemberAddr;
use crate::node::{node_dir, Fatal};
use raft_core::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// What `cluster.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClusterFile {
    storage: Storage,
    transport: TransportKind,
    members: BTreeMap<NodeId, MemberAddr>,
    /// HTTPS with client certificates on the API, mutual TLS between nodes.
    #[serde(default)]
    secure: bool,
}

/// `raft-kv certs`: a cluster CA; per node a certificate for the Raft links
/// (`node-<id>.pem`) and one for its API (`api-<id>.pem`); and a client
/// certificate (`client.pem`).
pub fn certs(args: &CertsArgs) -> Result<(), Fatal> {
    let failed = |e: raft_net_tls::TlsError| {
        Fatal(format!("cannot make the certificates in {}: {e}", args.dir.display()))
    };
    let validity = raft_net_tls::Validity::days_from_now(args.days);
    let ca = raft_net_tls::ClusterCa::generate("raft-kv", validity).map_err(failed)?;
    ca.write_pem_files(&args.dir).map_err(failed)?;
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    hosts.extend(args.api_hosts.iter().cloned());
    for &id in &args.nodes {
        ca.issue(id, validity).and_then(|c| c.write_pem_files(&args.dir)).map_err(failed)?;
        let api = ca.issue_for_hosts(&format!("raft-kv node {id} API"), &hosts, validity).map_err(failed)?;
        api.write_pem_files(&args.dir, &crate::tls::api_stem(id)).map_err(failed)?;
    }
    let client = ca.issue_client("raft-kv client", validity).map_err(failed)?;
    client.write_pem_files(&args.dir, "client").map_err(failed)?;
    println!("CA and certificates for nodes {:?} written to {}", args.nodes, args.dir.display());
    println!("API certificates name {}; client certificate: client.pem", hosts.join(", "));
    println!("keep ca-key.pem away from the nodes: it can sign new ones");
    Ok(())
}

fn free_port(udp: bool) -> Result<u16, Fatal> {
    let io = |e: std::io::Error| Fatal(format!("cannot find a free port: {e}"));
    if udp {
        Ok(std::net::UdpSocket::bind("127.0.0.1:0").map_err(io)?.local_addr().map_err(io)?.port())
    } else {
        Ok(std::net::TcpListener::bind("127.0.0.1:0").map_err(io)?.local_addr().map_err(io)?.port())
    }
}

fn layout(args: &ClusterArgs) -> Result<ClusterFile, Fatal> {
    let path = args.dir.join("cluster.json");
    if let Ok(bytes) = std::fs::read(&path) {
        let file: ClusterFile = serde_json::from_slice(&bytes)
            .map_err(|e| Fatal(format!("{} is damaged: {e}", path.display())))?;
        if file.members.len() as u64 != args.nodes
            || file.storage != args.storage
            || file.transport != args.transport
            || file.secure != args.secure
        {
            println!(
                "resuming the cluster in {} as it was made: {} nodes, {:?} storage, {:?} transport{}",
                args.dir.display(),
                file.members.len(),
                file.storage,
                file.transport,
                if file.secure { ", secure" } else { "" }
            );
        }
        return Ok(file);
    }
    if args.nodes == 0 || args.nodes > 99 {
        return Err(Fatal("--nodes must be 1 to 99".into()));
    }
    let mut members = BTreeMap::new();
    for id in 1..=args.nodes {
        let (api, raft) = if args.base_port == 0 {
            (free_port(false)?, free_port(args.transport == TransportKind::Quic)?)
        } else {
            let port = |offset: u64| {
                u16::try_from(u64::from(args.base_port) + offset).map_err(|_| {
                    Fatal(format!("--base-port {} leaves no room for {} nodes", args.base_port, args.nodes))
                })
            };
            (port(id)?, port(100 + id)?)
        };
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        members.insert(id, MemberAddr { raft: at(raft), api: at(api) });
    }
    let file = ClusterFile { storage: args.storage, transport: args.transport, members, secure: args.secure };
    let bytes = serde_json::to_vec_pretty(&file).map_err(|e| Fatal(e.to_string()))?;
    std::fs::write(&path, bytes).map_err(|e| Fatal(format!("cannot write {}: {e}", path.display())))?;
    Ok(file)
}

struct Node {
    id: NodeId,
    addr: MemberAddr,
    log: PathBuf,
    child: Option<Child>,
}

fn spawn(dir: &Path, file: &ClusterFile, id: NodeId, addr: MemberAddr) -> Result<Node, Fatal> {
    let data = node_dir(dir, id);
    std::fs::create_dir_all(&data).map_err(|e| Fatal(format!("cannot create {}: {e}", data.display())))?;
    let log = data.join("node.log");
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| Fatal(format!("cannot open {}: {e}", log.display())))?;
    let err = out.try_clone().map_err(|e| Fatal(e.to_string()))?;
    let exe = std::env::current_exe().map_err(|e| Fatal(format!("cannot find this program: {e}")))?;
    let members: Vec<String> = file.members.iter().map(|(id, a)| format!("{id}={a}")).collect();
    let mut command = Command::new(exe);
    command
        .arg("node")
        .args([
            "--id",
            &id.to_string(),
            "--raft-addr",
            &addr.raft.to_string(),
            "--api-addr",
            &addr.api.to_string(),
        ])
        .arg("--data-dir")
        .arg(&data)
        .args(["--storage", storage_name(file.storage), "--transport", transport_name(file.transport)])
        .args(["--initial-members", &members.join(","), "--exit-on-stdin-close"]);
    let certs = dir.join("certs");
    if file.transport == TransportKind::Quic || file.secure {
        command.arg("--tls-dir").arg(&certs);
    }
    if file.secure {
        command.arg("--api-tls-dir").arg(&certs).arg("--api-client-ca").arg(certs.join(crate::tls::CA_FILE));
    }
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RAFT_KV_") {
            command.env_remove(key);
        }
    }
    command.stdin(Stdio::piped()).stdout(out).stderr(err).process_group(0).kill_on_drop(true);
    let child = command.spawn().map_err(|e| Fatal(format!("cannot start node {id}: {e}")))?;
    Ok(Node { id, addr, log, child: Some(child) })
}

fn storage_name(storage: Storage) -> &'static str {
    match storage {
        Storage::Rocksdb => "rocksdb",
        Storage::Mem => "mem",
    }
}

fn transport_name(transport: TransportKind) -> &'static str {
    match transport {
        TransportKind::Tcp => "tcp",
        TransportKind::Quic => "quic",
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A child that has exited: what to tell the user.
fn exited(node: &mut Node) -> Option<String> {
    let status = node.child.as_mut()?.try_wait().ok()??;
    node.child = None;
    Some(format!(
        "node {} exited ({status}); its log is {}; its last lines:\n{}",
        node.id,
        node.log.display(),
        tail(&node.log, 15)
    ))
}

/// How the supervisor reaches the nodes' APIs.
struct Api {
    http: reqwest::Client,
    scheme: &'static str,
}

impl Api {
    fn new(dir: &Path, secure: bool) -> Result<Self, Fatal> {
        if !secure {
            return Ok(Self { http: crate::tls::http_client(None, Duration::from_secs(30)), scheme: "http" });
        }
        let certs = dir.join("certs");
        let tls = crate::tls::ClientTls {
            cacert: Some(certs.join(crate::tls::CA_FILE)),
            cert: Some(certs.join(crate::tls::CLIENT_CERT_FILE)),
            key: Some(certs.join(crate::tls::CLIENT_KEY_FILE)),
        };
        let config =
            tls.config().map_err(|e| Fatal(format!("the client certificate in {}: {e}", certs.display())))?;
        Ok(Self { http: crate::tls::http_client(config, Duration::from_secs(30)), scheme: "https" })
    }
}

async fn ready(api: &Api, addr: MemberAddr) -> Result<(), String> {
    let url = format!("{}://{}/ready", api.scheme, addr.api);
    let answer = api.http.get(url).timeout(Duration::from_secs(6)).send().await;
    match answer {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(response.text().await.unwrap_or_default()),
        Err(error) if error.is_connect() => Err("not listening yet".into()),
        Err(error) => Err(error.to_string()),
    }
}

/// Waits until every node is ready (a leader, and the founding
/// configuration applied), showing progress.
async fn wait_ready(nodes: &mut [Node], api: &Api) -> Result<(), Fatal> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(90);
    let mut shown = String::new();
    loop {
        for node in nodes.iter_mut() {
            if let Some(message) = exited(node) {
                return Err(Fatal(message));
            }
        }
        let mut waiting = Vec::new();
        for node in nodes.iter() {
            if let Err(why) = ready(api, node.addr).await {
                waiting.push(format!("node {}: {}", node.id, why.chars().take(100).collect::<String>()));
            }
        }
        if waiting.is_empty() {
            println!(
                "all {} nodes are up and agree on a leader ({:.1} s)",
                nodes.len(),
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        let line = format!("waiting for {} of {} nodes: {}", waiting.len(), nodes.len(), waiting.join("; "));
        if line != shown {
            println!("{line}");
            shown = line;
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> =
                nodes.iter().map(|n| format!("node {}: {}", n.id, n.log.display())).collect();
            return Err(Fatal(format!(
                "the cluster did not come up in 90 s; {shown}\nlogs:\n{}",
                logs.join("\n")
            )));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn leader(api: &Api, nodes: &[Node]) -> Option<NodeId> {
    let url = format!("{}://{}/status", api.scheme, nodes.first()?.addr.api);
    let status: NodeStatus = api.http.get(url).send().await.ok()?.json().await.ok()?;
    status.leader
}

fn print_help(dir: &Path, nodes: &[Node], leader: Option<NodeId>, scheme: &str) {
    let exe = std::env::current_exe().map_or("raft-kv".to_string(), |p| p.display().to_string());
    let endpoints: Vec<String> = nodes.iter().map(|n| n.addr.api.to_string()).collect();
    println!();
    for node in nodes {
        let mark = if Some(node.id) == leader { "  (leader)" } else { "" };
        println!(
            "node {}: API {scheme}://{}  raft {}  log {}{mark}",
            node.id,
            node.addr.api,
            node.addr.raft,
            node.log.display()
        );
    }
    let first = &endpoints[0];
    let last = endpoints.last().unwrap_or(first);
    let (flags, curl) = if scheme == "https" {
        let certs = std::path::absolute(dir.join("certs")).unwrap_or_else(|_| dir.join("certs"));
        let (ca, cert, key) = (
            certs.join(crate::tls::CA_FILE).display().to_string(),
            certs.join(crate::tls::CLIENT_CERT_FILE).display().to_string(),
            certs.join(crate::tls::CLIENT_KEY_FILE).display().to_string(),
        );
        (
            format!(" --cacert {ca} --cert {cert} --key {key}"),
            format!(" --cacert {ca} --cert {cert} --key {key}"),
        )
    } else {
        (String::new(), String::new())
    };
    println!("\nTry, in another terminal:");
    println!("  {exe} put hello world --endpoints {first}{flags}");
    println!("  {exe} get hello --endpoints {last}{flags}");
    println!("  {exe} status --endpoints {}{flags}", endpoints.join(","));
    println!("  curl{curl} -X PUT --data-binary world {scheme}://{first}/kv/hello");
    println!("  curl{curl} {scheme}://{last}/kv/hello");
    println!("\nCtrl-C stops every node; run the same command again to resume with the data.");
}

/// Stops every child: SIGTERM, then SIGKILL after 10 s.
async fn stop_all(nodes: &mut [Node]) {
    for node in nodes.iter() {
        if let Some(pid) = node.child.as_ref().and_then(Child::id) {
            send_signal(pid, "TERM");
        }
    }
    for node in nodes.iter_mut() {
        let Some(child) = node.child.as_mut() else { continue };
        match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
            Ok(Ok(status)) => println!("node {} stopped ({status})", node.id),
            _ => {
                let _ = child.kill().await;
                println!("node {} did not stop in 10 s: killed", node.id);
            }
        }
        node.child = None;
    }
}

/// Sends `signal` (`TERM`, `KILL`, ...) to process `pid` with kill(1): the
/// workspace forbids unsafe code, and the crates wrapping kill(2) safely
/// change libc's features, which would rebuild RocksDB's C++ for this crate
/// alone.
pub fn send_signal(pid: u32, signal: &str) {
    let sent = std::process::Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
    if !sent.is_ok_and(|s| s.success()) {
        tracing::warn!(pid, signal, "kill failed");
    }
}

/// Runs `raft-kv cluster` until SIGINT or SIGTERM.
pub async fn run(args: ClusterArgs) -> Result<(), Fatal> {
    use tokio::signal::unix::{signal, SignalKind};
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| Fatal(format!("cannot create {}: {e}", args.dir.display())))?;
    let file = layout(&args)?;
    let certs_dir = args.dir.join("certs");
    if (file.transport == TransportKind::Quic || file.secure) && !certs_dir.join("client.pem").exists() {
        let ids: Vec<NodeId> = file.members.keys().copied().collect();
        certs(&CertsArgs { dir: certs_dir, nodes: ids, days: 365, api_hosts: Vec::new() })?;
    }
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        return Err(Fatal("cannot listen for signals".into()));
    };
    let mut nodes = Vec::new();
    for (&id, &addr) in &file.members {
        println!("starting node {id}: API {} raft {}", addr.api, addr.raft);
        nodes.push(spawn(&args.dir, &file, id, addr)?);
    }
    let api = match Api::new(&args.dir, file.secure) {
        Ok(api) => api,
        Err(error) => {
            stop_all(&mut nodes).await;
            return Err(error);
        }
    };
    let up = tokio::select! {
        up = wait_ready(&mut nodes, &api) => up,
        _ = term.recv() => Err(Fatal("SIGTERM while starting".into())),
        _ = int.recv() => Err(Fatal("interrupted while starting".into())),
    };
    if let Err(error) = up {
        stop_all(&mut nodes).await;
        return Err(error);
    }
    print_help(&args.dir, &nodes, leader(&api, &nodes).await, api.scheme);
    let mut check = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = term.recv() => { println!("SIGTERM: stopping the nodes"); break }
            _ = int.recv() => { println!("stopping the nodes"); break }
            _ = check.tick() => {
                for node in nodes.iter_mut() {
                    if let Some(message) = exited(node) {
                        println!("{message}");
                    }
                }
            }
        }
    }
    stop_all(&mut nodes).await;
    Ok(())
}
