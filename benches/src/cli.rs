//! `cluster-bench` (also installed as `raft-load`, its earlier name): the
//! load generator's flags and its run.
//!
//! Three systems under load, one client loop:
//! - an in-process cluster (the default): `--members`, `--storage`,
//!   `--transport`, proposals and linearizable reads through the leader's
//!   handle, next to an echo baseline measured just before;
//! - a running `raft-kv` cluster: `--target http://HOST:PORT,...`;
//! - etcd through its v3 JSON gateway: `--etcd http://HOST:PORT,...`.
//!
//! The last line of output is the result (`result: R ops/s  p50 ..  p99 ..
//! p99.9 ..`), or with `--json` that result as one JSON object
//! ([`crate::load::Report`]). `--floors` measures the physical floors
//! instead ([`crate::floor`]).

use crate::cluster::{Cluster, StorageKind, TransportKind};
use crate::load::{closed_loop, is_read, key, Outcome, Report, Until, Workload};
use crate::target::{parse_endpoints, Api, HttpClient};
use clap::Parser;
use raft_core::runtime::ReadConsistency;
use raft_storage_mem::KvCommand;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The flags of `cluster-bench`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "cluster-bench",
    version = concat!(env!("CARGO_PKG_VERSION"), " (Timber)"),
    about = "Closed-loop load against a Raft cluster: in process, a running raft-kv, or etcd"
)]
pub struct Args {
    /// Members of the in-process cluster.
    #[arg(long, visible_alias = "nodes", default_value_t = 3)]
    pub members: u64,
    /// Concurrent clients, each with one operation outstanding (over HTTP,
    /// each with a connection of its own).
    #[arg(long, visible_alias = "proposers", default_value_t = 256)]
    pub clients: usize,
    /// Stop after this many operations in all, instead of after `--seconds`.
    #[arg(long, visible_alias = "operations")]
    pub ops: Option<u64>,
    /// How long a measurement runs, without `--ops`.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Bytes of each value written (in process, 0 proposes an empty command).
    #[arg(long, default_value_t = 0)]
    pub payload: usize,
    /// The in-process cluster's log store.
    #[arg(long, value_enum, default_value_t = StorageKind::Mem, conflicts_with_all = ["target", "etcd"])]
    pub storage: StorageKind,
    /// The in-process cluster's transport.
    #[arg(long, value_enum, default_value_t = TransportKind::Inproc, conflicts_with_all = ["target", "etcd"])]
    pub transport: TransportKind,
    /// Measure a running raft-kv cluster at these API endpoints
    /// (`http://HOST:PORT`, comma-separated; clients take them in turn).
    #[arg(long, conflicts_with = "etcd")]
    pub target: Option<String>,
    /// Measure etcd through its v3 JSON gateway at these endpoints.
    #[arg(long)]
    pub etcd: Option<String>,
    /// Percent of operations that are linearizable reads (of a key the
    /// client wrote before the measurement); the rest are writes, each of a
    /// key of its own.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub reads: u8,
    /// Tokio worker threads of the load generator (and the in-process
    /// cluster).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// In process: run the clients on a tokio runtime of their own with
    /// this many worker threads, apart from the cluster's `--threads` (0,
    /// the default: one runtime for both). openraft's benchmark has the
    /// same shape (`--client-workers`, `--server-workers`).
    #[arg(long, default_value_t = 0, conflicts_with_all = ["target", "etcd"])]
    pub client_threads: usize,
    /// Skip the echo baseline of an in-process run.
    #[arg(long)]
    pub no_baseline: bool,
    /// Seconds between progress lines on stderr (0: none).
    #[arg(long, default_value_t = 5.0)]
    pub progress: f64,
    /// Print the result as one JSON line after the result line.
    #[arg(long)]
    pub json: bool,
    /// Succeed even if some operations failed (they are counted, never in
    /// the latencies); without it, any failure makes the exit status 1.
    #[arg(long)]
    pub allow_errors: bool,
    /// Measure the physical floors (4 KiB fdatasync in `--dir`, loopback
    /// round trip) instead of a cluster.
    #[arg(long, conflicts_with_all = ["target", "etcd"])]
    pub floors: bool,
    /// Where `--floors` syncs its file (the disk the clusters' data is on).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Print this many distinct free TCP ports on loopback, space-separated,
    /// and exit (for scripts that start clusters).
    #[arg(long, conflicts_with_all = ["target", "etcd", "floors"])]
    pub free_ports: Option<usize>,
}

/// `n` distinct TCP ports free on 127.0.0.1 at this moment (all bound at
/// once, then released).
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners =
        (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<std::io::Result<Vec<_>>>()?;
    listeners.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// Why a run gave no result.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The in-process cluster did not start.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// A bad endpoint list.
    #[error(transparent)]
    Target(#[from] crate::target::TargetError),
    /// The keys that reads read could not be written.
    #[error("writing the keys to read failed: {0}")]
    Preload(String),
    /// Operations failed, without `--allow-errors`.
    #[error("{errors} of {total} operations failed; the first: {first}")]
    Failed {
        /// Failed operations.
        errors: u64,
        /// All operations.
        total: u64,
        /// The first failure.
        first: String,
    },
    /// The clients' own runtime lost them (a client panicked).
    #[error("the clients' runtime failed: {0}")]
    Clients(String),
    /// Measuring the floors failed.
    #[error("measuring the floors: {0}")]
    Floors(#[from] std::io::Error),
}

impl Args {
    fn until(&self) -> Until {
        match self.ops {
            Some(n) => Until::Operations(n),
            None => Until::Elapsed(Duration::from_secs_f64(self.seconds.max(0.0))),
        }
    }

    fn progress(&self) -> Option<Duration> {
        (self.progress > 0.0).then(|| Duration::from_secs_f64(self.progress))
    }

    fn value(&self) -> Arc<Vec<u8>> {
        Arc::new(vec![b'x'; self.payload])
    }

    fn workload(&self, system: &str) -> Workload {
        let in_process = system == "inproc";
        Workload {
            system: system.to_string(),
            members: if in_process { self.members } else { 0 },
            storage: if in_process { flag_name(&self.storage) } else { String::new() },
            transport: if in_process { flag_name(&self.transport) } else { String::new() },
            clients: self.clients,
            payload: self.payload,
            read_percent: self.reads,
        }
    }

    /// What the run is, in one line (printed first).
    pub fn describe(&self) -> String {
        let until = match self.ops {
            Some(n) => format!("{n} operations"),
            None => format!("{:.1} s", self.seconds),
        };
        let system = match (&self.target, &self.etcd) {
            (Some(t), _) => format!("raft-kv at {t}"),
            (_, Some(e)) => format!("etcd at {e}"),
            _ => format!(
                "in-process {} nodes, {:?} store, {:?} transport",
                self.members, self.storage, self.transport
            ),
        };
        format!(
            "{system}: {} clients, {} B values, {} % reads, {until}",
            self.clients, self.payload, self.reads
        )
    }
}

/// How `value` is spelled on the command line.
fn flag_name<V: clap::ValueEnum>(value: &V) -> String {
    value.to_possible_value().map(|p| p.get_name().to_string()).unwrap_or_default()
}

/// Runs the measurement `args` asks for (not `--floors`), printing progress
/// and, in process, the echo baseline; returns the result.
pub async fn run(args: &Args) -> Result<Report, RunError> {
    run_on(args, None).await
}

/// [`run`], with the in-process clients on the runtime `clients` if given
/// (see [`Args::client_threads`]).
pub async fn run_on(args: &Args, clients: Option<tokio::runtime::Handle>) -> Result<Report, RunError> {
    let (report, outcome) = match (&args.target, &args.etcd) {
        (Some(list), _) => http(args, Api::RaftKv, list).await?,
        (_, Some(list)) => http(args, Api::Etcd, list).await?,
        _ => in_process(args, clients).await?,
    };
    if outcome.errors > 0 && !args.allow_errors {
        return Err(RunError::Failed {
            errors: outcome.errors,
            total: outcome.errors + outcome.operations,
            first: outcome.first_error.unwrap_or_default(),
        });
    }
    if let Some(first) = &outcome.first_error {
        eprintln!("{} operations failed; the first: {first}", outcome.errors);
    }
    Ok(report)
}

async fn http(args: &Args, api: Api, list: &str) -> Result<(Report, Outcome), RunError> {
    let endpoints = parse_endpoints(list)?;
    let clients: Vec<HttpClient> =
        (0..args.clients).map(|c| HttpClient::new(api, &endpoints, c)).collect::<Result<_, _>>()?;
    let clients = Arc::new(clients);
    if args.reads > 0 {
        preload(args, {
            let clients = clients.clone();
            move |c, value| {
                let clients = clients.clone();
                async move { clients[c].put(&key(c, 0), &value).await }
            }
        })
        .await?;
    }
    let (value, reads) = (args.value(), args.reads);
    let before = if api == Api::RaftKv { crate::target::scrape(&endpoints).await } else { Vec::new() };
    let outcome = closed_loop(args.clients, args.until(), args.progress(), move |c, n| {
        let (client, value) = (clients[c].clone(), value.clone());
        async move {
            if is_read(reads, n) {
                client.get(&key(c, 0)).await
            } else {
                client.put(&key(c, n), &value).await
            }
        }
    })
    .await;
    let mut report = outcome.report(args.workload(api.name()));
    if api == Api::RaftKv {
        report.group_commit = crate::target::group_commit(&before, &crate::target::scrape(&endpoints).await);
    }
    Ok((report, outcome))
}

/// Writes each client's key 0 (untimed), so reads find it.
async fn preload<F, Fut>(args: &Args, put: F) -> Result<(), RunError>
where
    F: Fn(usize, Arc<Vec<u8>>) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let value = args.value();
    let mut writes = tokio::task::JoinSet::new();
    for c in 0..args.clients {
        writes.spawn(put(c, value.clone()));
    }
    while let Some(result) = writes.join_next().await {
        result.map_err(|e| RunError::Preload(e.to_string()))?.map_err(RunError::Preload)?;
    }
    Ok(())
}

async fn in_process(
    args: &Args,
    clients: Option<tokio::runtime::Handle>,
) -> Result<(Report, Outcome), RunError> {
    let until = args.until();
    let baseline = if args.no_baseline { None } else { Some(echo_baseline(args.clients, until).await) };
    let cluster = Cluster::start_with(args.members, args.storage, args.transport).await?;
    let leader = cluster.leader().await;
    let value = String::from_utf8(args.value().to_vec()).expect("the value is ASCII");
    let set = |c: usize, n: u64, value: &str| KvCommand::Set { key: key(c, n), value: value.to_string() };
    if args.reads > 0 {
        let (leader, value) = (leader.clone(), value.clone());
        preload(args, move |c, _| {
            let (leader, command) = (leader.clone(), set(c, 0, &value));
            async move { leader.propose_or_forward(command).await.map(drop).map_err(|e| e.to_string()) }
        })
        .await?;
    }
    let reads = args.reads;
    let load = closed_loop(args.clients, until, args.progress(), move |c, n| {
        let leader = leader.clone();
        let command = if is_read(reads, n) {
            None
        } else if value.is_empty() {
            Some(KvCommand::Noop)
        } else {
            Some(set(c, n, &value))
        };
        async move {
            match command {
                // Forwarded if the leader has changed since the run began.
                Some(command) => {
                    leader.propose_or_forward(command).await.map(drop).map_err(|e| e.to_string())
                }
                None => {
                    let k = key(c, 0);
                    match leader.read(ReadConsistency::Linearizable, move |kv| kv.get(&k).is_some()).await {
                        Ok(true) => Ok(()),
                        Ok(false) => Err("a read found no key".to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                }
            }
        }
    });
    let outcome = match clients {
        Some(runtime) => runtime.spawn(load).await.map_err(|e| RunError::Clients(e.to_string()))?,
        None => load.await,
    };
    cluster.shutdown().await;
    let report = outcome.report(args.workload("inproc"));
    if let Some(baseline) = baseline {
        println!("raft / echo_baseline: {:.3}", report.ops_per_sec / baseline.ops_per_sec);
    }
    Ok((report, outcome))
}

/// The same clients doing a request/response round trip through one task,
/// without Raft: what the in-process figures are read against.
async fn echo_baseline(clients: usize, until: Until) -> Report {
    let (tx, mut rx) = mpsc::channel::<oneshot::Sender<()>>(4096);
    tokio::spawn(async move {
        while let Some(reply) = rx.recv().await {
            let _ = reply.send(());
        }
    });
    let outcome = closed_loop(clients, until, None, move |_, _| {
        let tx = tx.clone();
        async move {
            let (reply, done) = oneshot::channel();
            tx.send(reply).await.map_err(|_| "the echo task stopped".to_string())?;
            done.await.map_err(|_| "the echo task stopped".to_string())
        }
    })
    .await;
    let report = outcome.report(Workload {
        system: "echo_baseline".into(),
        members: 0,
        storage: String::new(),
        transport: String::new(),
        clients,
        payload: 0,
        read_percent: 0,
    });
    println!("echo_baseline {}", report.line().trim_start_matches("result:"));
    report
}

/// The binaries' `main`: parses the flags, runs, prints; exit status 1 on
/// any failure.
pub fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(n) = args.free_ports {
        return match free_ports(n) {
            Ok(ports) => {
                println!("{}", ports.iter().map(u16::to_string).collect::<Vec<_>>().join(" "));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cluster-bench: no free ports: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cluster-bench: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.floors {
        return match crate::floor::measure(&args.dir, 200, 2000) {
            Ok(floors) => {
                println!("{}", floors.line());
                if args.json {
                    println!("{}", serde_json::to_string(&floors).expect("floors serialize"));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cluster-bench: {}", RunError::Floors(e));
                ExitCode::FAILURE
            }
        };
    }
    // Built outside the cluster's runtime, and dropped outside it too.
    let clients = match args.client_threads {
        0 => None,
        n => match tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build() {
            Ok(runtime) => Some(runtime),
            Err(e) => {
                eprintln!("cluster-bench: cannot start the clients' tokio runtime: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    println!("{}", args.describe());
    let result = runtime.block_on(run_on(&args, clients.as_ref().map(|r| r.handle().clone())));
    drop(clients);
    match result {
        Ok(report) => {
            println!("{}", report.line());
            if args.json {
                println!("{}", report.json());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cluster-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
