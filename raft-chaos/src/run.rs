//! One run, from the flags to the report: start, load, faults, heal,
//! full restart, final reads, check.

use crate::client::{self, Clock, Mix, Plan, Workload};
use crate::cluster::{Cluster, ClusterSpec, Start};
use crate::faults::{Chaos, FaultKind, FaultLog};
use crate::history::{self, Counts, Kind, Record, Status};
use crate::proxy::Proxies;
use crate::shrink::{self, Window};
use crate::timeline::{self, Band};
use crate::{Error, Layout, Storage, Transport};
use raft_sim::linearizability::{check_counted, Verdict};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The flags of `raft-chaos`.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "raft-chaos", version = concat!(env!("CARGO_PKG_VERSION"), " (Timber)"), about)]
pub struct Options {
    /// Seeds the fault schedule and the clients' choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seconds of clients and faults (then heal, restart, final reads).
    #[arg(long, env = "RAFT_CHAOS_DURATION", default_value_t = 30)]
    pub duration: u64,
    /// How many nodes (3 or 5).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(3..=5))]
    pub nodes: u64,
    /// The transport between nodes.
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    pub transport: Transport,
    /// The nodes' store.
    #[arg(long, value_enum, default_value_t = Storage::Mem)]
    pub storage: Storage,
    /// The `raft-kv` binary (default: beside this one).
    #[arg(long, env = "RAFT_KV_BIN")]
    pub raft_kv: Option<PathBuf>,
    /// Where the history, the fault log and the nodes' data and logs go
    /// (default: `raft-chaos-out/seed-SEED`); emptied first.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The first of the 50 ports the run uses (APIs, Raft, proxies).
    #[arg(long, default_value_t = 25900)]
    pub base_port: u16,
    /// Concurrent client workers.
    #[arg(long, default_value_t = 6)]
    pub workers: u64,
    /// Keys the clients share.
    #[arg(long, default_value_t = 3)]
    pub keys: u64,
    /// Longest pause between one worker's operations, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub think_ms: u64,
    /// The nodes' `--tick-ms` (elections after 10 to 20 ticks).
    #[arg(long, default_value_t = 10)]
    pub tick_ms: u64,
    /// The faults to draw from, comma-separated (default: every kind the
    /// store allows; `none` for none).
    #[arg(long, value_delimiter = ',')]
    pub faults: Vec<String>,
    /// The chance (0 to 1) that a second fault starts while one holds.
    #[arg(long, default_value_t = 0.3)]
    pub overlap: f64,
    /// Leave out the disk faults even when disks can be made (they need
    /// root with CAP_SYS_ADMIN: loop devices and mounts).
    #[arg(long)]
    pub no_disks: bool,
    /// The mean quiet gap between faults, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    pub fault_gap_ms: u64,
    /// Issue linearizable reads only (no `consistency=lease`): the lease
    /// reads' weight goes to linearizable gets.
    #[arg(long)]
    pub no_lease_reads: bool,
    /// The operations' weights, `kind=weight,...` over put, get,
    /// lease-get, cas, delete and txn (unnamed kinds keep their default,
    /// 0 leaves one out).
    #[arg(long, default_value = "put=3,get=2,lease-get=2,cas=1,delete=1,txn=1")]
    pub mix: String,
    /// Start the nodes with the deliberate bug of serving linearizable
    /// reads locally (`--unsafe-local-reads-for-testing`): the run must
    /// then report a violation. Shows the tool is not vacuous.
    #[arg(long)]
    pub unsafe_local_reads: bool,
    /// Configurations the checker may visit per key before giving up.
    #[arg(long, default_value_t = 2_000_000)]
    pub check_budget: usize,
}

impl Options {
    fn fault_kinds(&self) -> Result<Vec<FaultKind>, Error> {
        use clap::ValueEnum;
        if !(0.0..=1.0).contains(&self.overlap) {
            return Err(Error::Usage("--overlap is a chance, from 0 to 1".into()));
        }
        if self.faults.is_empty() {
            return Ok(FaultKind::all_for(self.storage, !self.no_disks));
        }
        let mut kinds = Vec::new();
        for name in self.faults.iter().filter(|n| n.as_str() != "none") {
            let kind =
                FaultKind::from_str(name, false).map_err(|e| Error::Usage(format!("--faults: {e}")))?;
            if kind == FaultKind::KillAll && self.storage != Storage::Rocksdb {
                return Err(Error::Usage("--faults kill-all needs --storage rocksdb".into()));
            }
            if kind.is_disk() && self.storage != Storage::Rocksdb {
                return Err(Error::Usage(format!("--faults {name} needs --storage rocksdb")));
            }
            kinds.push(kind);
        }
        Ok(kinds)
    }

    /// The mix the flags describe.
    pub fn mix(&self) -> Result<Mix, Error> {
        let mut mix = Mix::parse(&self.mix).map_err(|e| Error::Usage(format!("--mix: {e}")))?;
        if self.no_lease_reads {
            mix.set(Kind::Get, mix.weight(Kind::Get) + mix.weight(Kind::LeaseGet));
            mix.set(Kind::LeaseGet, 0);
        }
        if self.keys < 2 && mix.weight(Kind::Txn) > 0 {
            return Err(Error::Usage("transactions take two keys: --keys 2 or more, or --mix txn=0".into()));
        }
        Ok(mix)
    }

    fn raft_kv_bin(&self) -> Result<PathBuf, Error> {
        if let Some(bin) = &self.raft_kv {
            return Ok(bin.clone());
        }
        let me = std::env::current_exe().map_err(|e| Error::Io("the current executable".into(), e))?;
        let beside = me.with_file_name("raft-kv");
        if beside.exists() {
            return Ok(beside);
        }
        Err(Error::Usage(format!(
            "no raft-kv beside {}: pass --raft-kv PATH or set RAFT_KV_BIN",
            me.display()
        )))
    }
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// The operations by outcome.
    pub counts: Counts,
    /// How many operations the checker saw (those that constrain it).
    pub checked: usize,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Fault kinds asked for but left out, and why (disk faults where
    /// disks cannot be made).
    pub left_out: Option<String>,
    /// The checker's verdict.
    pub verdict: Verdict,
    /// What [`history::txn_atomicity`] found, if anything: a violation the
    /// per-key verdict cannot see.
    pub atomicity: Option<String>,
    /// On a refuted key, the smallest window that shows it.
    pub window: Option<Window>,
    /// Where everything was written.
    pub out: PathBuf,
    /// How long the run took.
    pub elapsed: Duration,
}

impl Report {
    /// Whether the history was linearizable.
    pub fn linearizable(&self) -> bool {
        self.verdict.is_linearizable() && self.atomicity.is_none()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.counts;
        let faults: Vec<String> = self.faults.iter().map(|(k, n)| format!("{k}={n}")).collect();
        let verdict = match &self.verdict {
            Verdict::Linearizable if self.atomicity.is_some() => "NOT ATOMIC (a txn's gets)".to_string(),
            Verdict::Linearizable => "linearizable".to_string(),
            Verdict::NotLinearizable { key, .. } => match &self.window {
                Some(window) => {
                    let (start, end) = window.span();
                    format!(
                        "NOT LINEARIZABLE (key k{key}, its operations in violation-k{key}.jsonl; the smallest \
                         window, {} ops from {start} to {end} µs, in violation-k{key}-window.jsonl)",
                        window.records.len()
                    )
                }
                None => format!("NOT LINEARIZABLE (key k{key}, its operations in violation-k{key}.jsonl)"),
            },
            Verdict::GaveUp { key } => format!("UNDECIDED (checker gave up on key k{key})"),
        };
        write!(
            f,
            "raft-chaos seed={} ops={} checked={} ok={} unknown={} failed={} faults[{}]{} {verdict} in {:.0}s; \
             history, faults and node logs in {}",
            self.seed,
            c.ops,
            self.checked,
            c.ok,
            c.unknown,
            c.failed,
            faults.join(" "),
            self.left_out.as_ref().map(|why| format!(" left out[{why}]")).unwrap_or_default(),
            self.elapsed.as_secs_f64(),
            self.out.display()
        )
    }
}

/// Runs the test the options describe.
pub async fn run(opts: Options) -> Result<Report, Error> {
    let began = Instant::now();
    let mut kinds = opts.fault_kinds()?;
    opts.mix()?;
    let out = opts.out.clone().unwrap_or_else(|| PathBuf::from(format!("raft-chaos-out/seed-{}", opts.seed)));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).map_err(|e| Error::Io(out.display().to_string(), e))?;
    let layout = Layout { base: opts.base_port, nodes: opts.nodes };
    let proxies = Proxies::start(&layout, opts.transport == Transport::Quic, opts.seed)
        .await
        .map_err(|e| Error::Io(format!("proxies on ports from {}", opts.base_port), e))?;
    let mut cluster = Cluster::new(ClusterSpec {
        bin: opts.raft_kv_bin()?,
        out: out.clone(),
        layout,
        transport: opts.transport,
        storage: opts.storage,
        tick_ms: opts.tick_ms,
        unsafe_local_reads: opts.unsafe_local_reads,
    })?;
    let mut left_out = None;
    if kinds.iter().any(|k| k.is_disk()) {
        if let Err(error) = cluster.make_disks() {
            let names: Vec<String> = kinds.iter().filter(|k| k.is_disk()).map(|k| k.name()).collect();
            let why = format!("{}: cannot make disks: {error}", names.join(","));
            eprintln!("raft-chaos: disk faults left out ({why})");
            left_out = Some(why);
            kinds.retain(|k| !k.is_disk());
        }
    }
    for id in layout.ids() {
        cluster.start(id, Start::Found)?;
    }
    cluster.wait_ready(Duration::from_secs(60)).await?;
    let clock = Clock::start();
    let (mut records, log) = load_and_faults(&opts, &kinds, &mut cluster, &proxies, clock).await?;
    settle(&opts, &mut cluster, &proxies, clock).await?;
    records.extend(final_reads(&opts, layout, clock).await?);
    write(&out, &records, &log)?;
    let bands: Vec<Band> =
        log.iter().map(|f| Band { name: f.kind.name(), start_us: f.start_us, end_us: f.end_us }).collect();
    let picture = out.join("timeline.png");
    timeline::draw(&picture, &records, &bands)
        .map_err(|e| Error::Io(picture.display().to_string(), std::io::Error::other(e)))?;
    let history = history::to_history(&records);
    let (verdict, _) = check_counted(&history, opts.check_budget);
    let atomicity = history::txn_atomicity(&records);
    let mut window = None;
    if let Verdict::NotLinearizable { key, .. } = &verdict {
        write_key(&out, &records, *key)?;
        window = shrink::smallest_window(&records, *key, opts.check_budget);
        if let Some(window) = &window {
            let mut lines: Vec<&Record> = window.context.iter().chain(&window.records).collect();
            lines.sort_by_key(|r| (r.invoke_us, r.complete_us));
            let path = out.join(format!("violation-k{key}-window.jsonl"));
            history::write_jsonl(&path, &lines).map_err(|e| Error::Io(path.display().to_string(), e))?;
        }
    }
    let mut faults = BTreeMap::new();
    for fault in &log {
        *faults.entry(fault.kind.name()).or_insert(0) += 1;
    }
    Ok(Report {
        seed: opts.seed,
        counts: history::count(&records),
        checked: history.len(),
        faults,
        left_out,
        verdict,
        atomicity,
        window,
        out,
        elapsed: began.elapsed(),
    })
}

/// The clients and the fault schedule, side by side, for `--duration`.
async fn load_and_faults(
    opts: &Options,
    kinds: &[FaultKind],
    cluster: &mut Cluster,
    proxies: &Proxies,
    clock: Clock,
) -> Result<(Vec<Record>, Vec<FaultLog>), Error> {
    let work = Arc::new(Workload::new(cluster.layout, opts.keys, opts.mix()?, opts.think_ms, clock));
    let workers: Vec<_> =
        (0..opts.workers).map(|w| tokio::spawn(client::worker(work.clone(), w, opts.seed))).collect();
    let until = Instant::now() + Duration::from_secs(opts.duration);
    let mut chaos = Chaos {
        cluster,
        proxies,
        rng: ChaCha8Rng::seed_from_u64(opts.seed),
        storage: opts.storage,
        election_ms: 20 * opts.tick_ms,
        clock,
        overlap: opts.overlap,
    };
    let log = chaos.run(kinds, until, opts.fault_gap_ms).await;
    tokio::time::sleep_until(until).await;
    work.stop.store(true, Ordering::Relaxed);
    let mut records = Vec::new();
    for worker in workers {
        records.extend(worker.await.map_err(|e| Error::Cluster(format!("a client worker failed: {e}")))?);
    }
    Ok((records, log?))
}

/// Heals every link and pause, waits until every node is ready; then with
/// RocksDB kills every node at once and restarts them.
async fn settle(opts: &Options, cluster: &mut Cluster, proxies: &Proxies, clock: Clock) -> Result<(), Error> {
    proxies.heal_all();
    cluster.resume_all();
    cluster.wait_ready(Duration::from_secs(60)).await?;
    if opts.storage == Storage::Rocksdb {
        let mut chaos = Chaos {
            cluster,
            proxies,
            rng: ChaCha8Rng::seed_from_u64(opts.seed),
            storage: opts.storage,
            election_ms: 20 * opts.tick_ms,
            clock,
            overlap: 0.0,
        };
        chaos.kill_all().await?;
    }
    Ok(())
}

/// A linearizable read of every key after everything healed, retried until
/// one succeeds: they join the history, so a lost acknowledged write (or a
/// value that came back from the dead) is a violation.
async fn final_reads(opts: &Options, layout: Layout, clock: Clock) -> Result<Vec<Record>, Error> {
    let work = Workload::new(layout, opts.keys, Mix::default(), 0, clock);
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for key in 0..opts.keys {
        let node = 1 + key % layout.nodes;
        loop {
            let record = client::run_op(&work, u64::MAX, node, Plan::on(Kind::FinalGet, key)).await;
            let done = record.status == Status::Ok;
            records.push(record);
            if done {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::Cluster(format!("no final read of k{key} succeeded within 60 s")));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(records)
}

/// Writes the operations on `key` (transactions too), in order of invocation, to
/// `violation-kKEY.jsonl`: the sub-history the checker refuted.
fn write_key(out: &std::path::Path, records: &[Record], key: u64) -> Result<(), Error> {
    let mut on_key: Vec<&Record> = records.iter().filter(|r| r.key == key || r.key2 == Some(key)).collect();
    on_key.sort_by_key(|r| (r.invoke_us, r.complete_us));
    let path = out.join(format!("violation-k{key}.jsonl"));
    history::write_jsonl(&path, &on_key).map_err(|e| Error::Io(path.display().to_string(), e))
}

fn write(out: &std::path::Path, records: &[Record], log: &[FaultLog]) -> Result<(), Error> {
    let history = out.join("history.jsonl");
    history::write_jsonl(&history, records).map_err(|e| Error::Io(history.display().to_string(), e))?;
    let faults = out.join("faults.jsonl");
    history::write_jsonl(&faults, log).map_err(|e| Error::Io(faults.display().to_string(), e))
}
