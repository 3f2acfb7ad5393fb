//! The `raft-kv node` processes under test: their ports, their start
//! (founding, resuming or joining), SIGKILL, SIGSTOP and SIGCONT, and
//! questions asked of their APIs (who leads, is everyone ready).
//!
//! Every process is owned by a [`NodeProc`] that kills it when dropped
//! (the tool panicking or returning early too). Each runs in a process
//! group of its own, so a Ctrl-C at the terminal reaches only the tool,
//! which then kills them; and each is started with
//! `--exit-on-stdin-close` on a pipe the tool holds, so that even a tool
//! killed with SIGKILL takes its running nodes with it.

use crate::{Error, Storage, Transport};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

/// How many node ids each slot may have over a run: the founding one and
/// the replacements (`replace` faults) after it. Every node's `--peer-via`
/// and the QUIC certificates name them all in advance.
pub const IDS_PER_SLOT: u64 = 16;

/// Where each node and proxy listens: a block of 50 ports from `base`
/// (slots 1 to 5): API `base+SLOT`, Raft `base+10+SLOT`, and the proxy of
/// the link from slot `A` to slot `B` at `base+20+(A-1)*n+(B-1)`.
///
/// A slot is a place for one node: ports, proxies, a disk. It starts with
/// node id `SLOT`; a `replace` fault gives it a new id, `SLOT+k*n` for the
/// slot's `k`th replacement, at the same ports (the old node is gone and
/// out of the configuration by then).
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// The first port of the block.
    pub base: u16,
    /// How many nodes.
    pub nodes: u64,
}

impl Layout {
    /// The slots, `1..=nodes` (also the founding node ids).
    pub fn ids(&self) -> impl Iterator<Item = u64> + Clone {
        1..=self.nodes
    }

    /// Every node id slot `slot` may have, founding one first.
    pub fn slot_ids(&self, slot: u64) -> impl Iterator<Item = u64> + Clone {
        let n = self.nodes;
        (0..IDS_PER_SLOT).map(move |k| slot + k * n)
    }

    fn at(&self, offset: u64) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.base + offset as u16))
    }

    /// Node `id`'s HTTP API.
    pub fn api(&self, id: u64) -> SocketAddr {
        self.at(id)
    }

    /// Node `id`'s Raft transport (the address the configuration names).
    pub fn raft(&self, id: u64) -> SocketAddr {
        self.at(10 + id)
    }

    /// The proxy node `from` dials to reach node `to`.
    pub fn proxy(&self, from: u64, to: u64) -> SocketAddr {
        self.at(20 + (from - 1) * self.nodes + (to - 1))
    }

    /// `--initial-members` for every node.
    pub fn members(&self) -> String {
        let list: Vec<String> =
            self.ids().map(|id| format!("{id}={}@{}", self.raft(id), self.api(id))).collect();
        list.join(",")
    }

    /// `--peer-via` for the node in slot `slot`: each peer id any other
    /// slot may have, through the proxy of its link.
    pub fn peer_via(&self, slot: u64) -> String {
        let mut list = Vec::new();
        for p in self.ids().filter(|&p| p != slot) {
            list.extend(self.slot_ids(p).map(|id| format!("{id}={}", self.proxy(slot, p))));
        }
        list.join(",")
    }
}

/// Sends `signal` (`KILL`, `STOP`, `CONT`) to process `pid` with kill(1)
/// (the workspace forbids unsafe code, so no libc).
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A running node process, killed and reaped when dropped.
pub struct NodeProc {
    child: Child,
    /// Held so that the node sees its standard input close when the tool
    /// goes, however it goes.
    _stdin: Option<ChildStdin>,
    paused: bool,
}

impl NodeProc {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if self.paused {
            signal(self.child.id(), "CONT");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a node comes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A founding member (`--initial-members`).
    Found,
    /// From its data directory (RocksDB: after a crash).
    Resume,
    /// Empty, joining through node `via`'s API (`--join`).
    Join(u64),
}

/// The cluster of node processes.
pub struct Cluster {
    /// The ports.
    pub layout: Layout,
    bin: PathBuf,
    out: PathBuf,
    transport: Transport,
    storage: Storage,
    tick_ms: u64,
    unsafe_local_reads: bool,
    tls_dir: Option<PathBuf>,
    procs: BTreeMap<u64, NodeProc>,
    /// Each slot's node id now (its slot number until a replacement).
    ids: BTreeMap<u64, u64>,
    /// Each slot's incarnation with an empty directory.
    generation: BTreeMap<u64, u32>,
    /// Each slot's own filesystem, when disk faults are on.
    disks: BTreeMap<u64, crate::disk::Disk>,
    http: reqwest::Client,
}

/// What [`Cluster::new`] needs.
pub struct ClusterSpec {
    /// The `raft-kv` binary.
    pub bin: PathBuf,
    /// Where data and logs go.
    pub out: PathBuf,
    /// The ports.
    pub layout: Layout,
    /// The transport.
    pub transport: Transport,
    /// The store.
    pub storage: Storage,
    /// `--tick-ms`.
    pub tick_ms: u64,
    /// Start the nodes with the deliberate read bug.
    pub unsafe_local_reads: bool,
}

impl Cluster {
    /// A cluster of no running nodes yet; makes certificates for QUIC.
    pub fn new(spec: ClusterSpec) -> Result<Self, Error> {
        let tls_dir = match spec.transport {
            Transport::Quic => Some(make_certs(&spec.bin, &spec.out, spec.layout)?),
            Transport::Tcp => None,
        };
        Ok(Self {
            layout: spec.layout,
            bin: spec.bin,
            out: spec.out,
            transport: spec.transport,
            storage: spec.storage,
            tick_ms: spec.tick_ms,
            unsafe_local_reads: spec.unsafe_local_reads,
            tls_dir,
            procs: BTreeMap::new(),
            ids: spec.layout.ids().map(|slot| (slot, slot)).collect(),
            generation: BTreeMap::new(),
            disks: BTreeMap::new(),
            http: crate::http_client(Duration::from_secs(2)),
        })
    }

    /// Gives every slot a filesystem of its own ([`crate::disk`]), for
    /// disk faults; call before any node starts.
    pub fn make_disks(&mut self) -> Result<(), crate::disk::DiskError> {
        for slot in self.layout.ids() {
            let disk = crate::disk::Disk::create(&self.out, slot)?;
            self.disks.insert(slot, disk);
        }
        Ok(())
    }

    /// Slot `slot`'s filesystem, if disk faults are on.
    pub fn disk(&self, slot: u64) -> Option<&crate::disk::Disk> {
        self.disks.get(&slot)
    }

    /// The node id in slot `slot` now.
    pub fn id(&self, slot: u64) -> u64 {
        self.ids.get(&slot).copied().unwrap_or(slot)
    }

    /// Every slot's node id now: the configuration the run keeps.
    pub fn voters(&self) -> Vec<u64> {
        self.ids.values().copied().collect()
    }

    /// Gives slot `slot` its next node id (for a node joining anew); says
    /// which, or `None` when the slot has used all of [`IDS_PER_SLOT`].
    pub fn next_id(&mut self, slot: u64) -> Option<u64> {
        let now = self.id(slot);
        let next = self.layout.slot_ids(slot).skip_while(|&id| id != now).nth(1)?;
        self.ids.insert(slot, next);
        Some(next)
    }

    fn data_dir(&self, slot: u64) -> PathBuf {
        let generation = self.generation.get(&slot).copied().unwrap_or(0);
        let base = match self.disks.get(&slot) {
            Some(disk) => disk.path().to_path_buf(),
            None => self.out.join("data"),
        };
        base.join(format!("node-{}-{generation}", self.id(slot)))
    }

    fn args(&self, slot: u64, start: Start) -> Vec<String> {
        let l = self.layout;
        let mut args: Vec<String> = vec!["node".into(), "--id".into(), self.id(slot).to_string()];
        let pairs = [
            ("--raft-addr", l.raft(slot).to_string()),
            ("--api-addr", l.api(slot).to_string()),
            ("--data-dir", self.data_dir(slot).display().to_string()),
            ("--storage", self.storage.as_str().into()),
            ("--transport", self.transport.as_str().into()),
            ("--tick-ms", self.tick_ms.to_string()),
            ("--peer-via", l.peer_via(slot)),
        ];
        for (flag, value) in pairs {
            args.push(flag.into());
            args.push(value);
        }
        if let Some(dir) = &self.tls_dir {
            args.extend(["--tls-dir".into(), dir.display().to_string()]);
        }
        match start {
            Start::Found => args.extend(["--initial-members".into(), l.members()]),
            Start::Resume => {}
            Start::Join(via) => args.extend(["--join".into(), l.api(via).to_string()]),
        }
        if self.unsafe_local_reads {
            args.push("--unsafe-local-reads-for-testing".into());
        }
        args.push("--exit-on-stdin-close".into());
        args
    }

    /// Where the node of id `id` logs.
    pub fn log_path(&self, id: u64) -> PathBuf {
        self.out.join(format!("node-{id}.log"))
    }

    /// Starts the node in slot `id` (its output appended to
    /// `OUT/node-ID.log`, by its node id).
    pub fn start(&mut self, id: u64, start: Start) -> Result<(), Error> {
        use std::os::unix::process::CommandExt;
        let log_path = self.log_path(self.id(id));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::Io(log_path.display().to_string(), e))?;
        let log_err = log.try_clone().map_err(|e| Error::Io(log_path.display().to_string(), e))?;
        let mut command = Command::new(&self.bin);
        command
            .args(self.args(id, start))
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        if self.unsafe_local_reads {
            command.env("RAFT_KV_UNSAFE_TESTING", "1");
        }
        let mut child = command.spawn().map_err(|e| Error::Io(self.bin.display().to_string(), e))?;
        let stdin = child.stdin.take();
        self.procs.insert(id, NodeProc { child, _stdin: stdin, paused: false });
        Ok(())
    }

    /// SIGKILLs node `id` and reaps it.
    pub fn kill(&mut self, id: u64) {
        drop(self.procs.remove(&id));
    }

    /// Whether node `id` runs (paused or not).
    pub fn is_up(&self, id: u64) -> bool {
        self.procs.contains_key(&id)
    }

    /// Waits up to `within` for the node in slot `slot` to exit on its
    /// own; its exit status, or `None` if it still runs (or never ran).
    pub async fn wait_exit(&mut self, slot: u64, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            let node = self.procs.get_mut(&slot)?;
            if let Ok(Some(status)) = node.child.try_wait() {
                self.procs.remove(&slot);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGSTOPs (`pause`) or SIGCONTs node `id`.
    pub fn set_paused(&mut self, id: u64, pause: bool) {
        if let Some(node) = self.procs.get_mut(&id) {
            signal(node.pid(), if pause { "STOP" } else { "CONT" });
            node.paused = pause;
        }
    }

    /// Resumes every paused node.
    pub fn resume_all(&mut self) {
        for id in self.layout.ids() {
            self.set_paused(id, false);
        }
    }

    /// The next incarnation of node `id` gets a fresh, empty directory.
    pub fn wipe(&mut self, id: u64) {
        *self.generation.entry(id).or_default() += 1;
    }

    /// The HTTP client the tool's own questions use.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The leader's slot, as a node that says it leads reports it (the
    /// highest term wins), if any answers so within the client timeout.
    pub async fn leader(&self) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for id in self.layout.ids().filter(|&id| self.is_up(id)) {
            let url = format!("http://{}/status", self.layout.api(id));
            let Ok(response) = self.http.get(url).send().await else { continue };
            let Ok(status) = response.json::<serde_json::Value>().await else { continue };
            let term = status["term"].as_u64().unwrap_or(0);
            let leads = status["leader"].as_u64() == Some(self.id(id));
            if leads && best.is_none_or(|(t, _)| term > t) {
                best = Some((term, id));
            }
        }
        best.map(|(_, id)| id)
    }

    /// Waits until every running node answers `/ready`.
    pub async fn wait_ready(&self, within: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + within;
        for id in self.layout.ids().filter(|&id| self.is_up(id)) {
            let url = format!("http://{}/ready", self.layout.api(id));
            loop {
                let ready = self.http.get(&url).send().await.is_ok_and(|r| r.status().is_success());
                if ready {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(Error::Cluster(format!("node {id} not ready within {within:?}")));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}

/// Runs `raft-kv certs` into `OUT/tls` (QUIC needs mutual TLS).
fn make_certs(bin: &Path, out: &Path, layout: Layout) -> Result<PathBuf, Error> {
    let dir = out.join("tls");
    let nodes: Vec<String> =
        layout.ids().flat_map(|slot| layout.slot_ids(slot)).map(|id| id.to_string()).collect();
    let status = Command::new(bin)
        .args(["certs", "--dir", &dir.display().to_string(), "--nodes", &nodes.join(",")])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| Error::Io(bin.display().to_string(), e))?;
    if !status.success() {
        return Err(Error::Cluster(format!("raft-kv certs failed: {status}")));
    }
    Ok(dir)
}
