//! Crash test: a child process writes to a store and reports each write it
//! saw acknowledged; the parent kills it with SIGKILL at a random moment,
//! reopens the store, and checks that every acknowledged entry, hard state
//! and snapshot is there, intact. Then again, on the same store.
//!
//! The child is this test binary run again with `RAFT_ROCKSDB_CRASH_CHILD`
//! set to the store's directory (`harness = false`: `main` picks the role).
//! Cycles: `RAFT_ROCKSDB_CRASH_CYCLES` (default 50); the random choices of
//! a run come from `RAFT_ROCKSDB_CRASH_SEED`, printed at the start (the
//! kill moments still depend on timing, so a seed does not replay a run
//! exactly). The verdict never depends on timing: it compares what the
//! child reported acknowledged with what the store loads.
//!
//! SIGKILL kills the process, not the machine: the operating system's page
//! cache survives, so this shows the store loses nothing to a process crash
//! and never loads a half-written write, not what a power loss would do.

use bytes::Bytes;
use raft_core::{
    Entry, EntryPayload, HardState, Index, LogId, LogStore, LogWrite, Membership, Snapshot, SnapshotMeta,
    StoredState,
};
use raft_storage_rocksdb::{RocksLogStore, RocksLogStoreOptions};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "RAFT_ROCKSDB_CRASH_CHILD";
const CYCLES_ENV: &str = "RAFT_ROCKSDB_CRASH_CYCLES";
const SEED_ENV: &str = "RAFT_ROCKSDB_CRASH_SEED";
const CLUSTER: u64 = 7;
/// How long a child may take to open the store: generous, never a verdict
/// on speed, only a bound on a hung test.
const READY_DEADLINE: Duration = Duration::from_secs(120);

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        println!("acknowledged_writes_survive_sigkill: test");
        return;
    }
    match std::env::var_os(CHILD_ENV) {
        Some(dir) => child(PathBuf::from(dir)),
        None => parent(),
    }
}

/// The payload of the entry at `index` written in `term`: recognisable, and
/// of varying length.
fn payload(index: Index, term: u64) -> Bytes {
    let mut bytes = format!("{index}:{term}:").into_bytes();
    bytes.resize(bytes.len() + (index as usize * 7919) % 300, b'a' + (index % 26) as u8);
    Bytes::from(bytes)
}

fn snapshot(last: LogId) -> Snapshot {
    let mut data = format!("state at {}/{}", last.index, last.term).into_bytes();
    data.resize(4096 + (last.index as usize % 1000), (last.index % 251) as u8);
    Snapshot {
        meta: SnapshotMeta { last, membership: Membership::new([1, 2, 3], []) },
        data: Bytes::from(data).into(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime")
}

/// Writes until killed, printing what each acknowledged write made durable:
/// `ack <first> <last> <term> <vote>`, `snap <index> <term>`, `purge <to>`.
fn child(dir: PathBuf) {
    let seed: u64 = std::env::var(SEED_ENV).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let result: Result<(), Box<dyn std::error::Error>> = runtime().block_on(async {
        let store =
            RocksLogStore::open(&dir, RocksLogStoreOptions::new(CLUSTER).compact_after_purging(64)).await?;
        let stored = store.load().await?;
        let term = stored.hard_state.term + 1;
        let snapshot_index = stored.snapshot.as_ref().map_or(0, |s| s.meta.last.index);
        let mut next = stored.entries.last().map_or(snapshot_index, |e| e.index) + 1;
        println!("ready");
        for vote in 1.. {
            let count = rng.random_range(1..=16);
            let entries: Vec<Entry> = (next..next + count)
                .map(|index| Entry { index, term, payload: EntryPayload::Command(payload(index, term)) })
                .collect();
            let hard_state = Some(HardState { term, vote: Some(vote) });
            store.write(LogWrite { hard_state, entries, ..Default::default() }).await?;
            println!("ack {next} {} {term} {vote}", next + count - 1);
            next += count;
            if rng.random_ratio(1, 6) && next > 40 {
                let index = next - 1 - rng.random_range(0..8);
                let entry = store.entries(index..index + 1, 0).await?;
                let last = LogId::new(entry.first().ok_or("the entry is stored")?.term, index);
                store.save_snapshot(snapshot(last)).await?;
                println!("snap {index} {}", last.term);
                let purge_to = index - 16;
                store.write(LogWrite { purge_to: Some(purge_to), ..Default::default() }).await?;
                println!("purge {purge_to}");
            }
        }
        Ok(())
    });
    if let Err(error) = result {
        eprintln!("crash-test child failed: {error}");
        std::process::exit(2);
    }
}

/// What the parent knows is durable.
#[derive(Debug, Default)]
struct Model {
    /// The last acknowledged (term, vote).
    hard_state: Option<(u64, u64)>,
    /// The snapshot acknowledged last, at least.
    snapshot: Option<LogId>,
    /// Entries that must be in the log (unless a snapshot covers them).
    log: BTreeMap<Index, u64>,
}

impl Model {
    fn acknowledge(&mut self, line: &str) {
        let fields: Vec<u64> = line.split(' ').skip(1).map(|f| f.parse().expect("a number")).collect();
        match (line.split(' ').next(), fields.as_slice()) {
            (Some("ack"), &[first, last, term, vote]) => {
                self.log.split_off(&first);
                self.log.extend((first..=last).map(|index| (index, term)));
                self.hard_state = Some((term, vote));
            }
            (Some("snap"), &[index, term]) => self.snapshot = Some(LogId::new(term, index)),
            (Some("purge"), &[to]) => self.log.retain(|&index, _| index > to),
            _ => panic!("the child reported something unknown: {line:?}"),
        }
    }

    /// Checks what the store loads against what was acknowledged, then
    /// takes it as the new durable state.
    fn check(&mut self, stored: StoredState, cycle: u64) {
        if let Some((term, vote)) = self.hard_state {
            let loaded = (stored.hard_state.term, stored.hard_state.vote.unwrap_or(0));
            assert!(
                loaded >= (term, vote),
                "cycle {cycle}: hard state {loaded:?} is older than acknowledged {:?}",
                (term, vote)
            );
        }
        let snapshot_index = stored.snapshot.as_ref().map_or(0, |s| s.meta.last.index);
        if let Some(acknowledged) = self.snapshot {
            let loaded = stored.snapshot.as_ref().map(|s| s.meta.last);
            assert!(
                loaded.is_some_and(|l| l.index >= acknowledged.index),
                "cycle {cycle}: snapshot {loaded:?} is older than acknowledged {acknowledged:?}"
            );
        }
        if let Some(loaded) = &stored.snapshot {
            assert_eq!(loaded, &snapshot(loaded.meta.last), "cycle {cycle}: the snapshot must load intact");
        }
        let by_index: BTreeMap<Index, &Entry> = stored.entries.iter().map(|e| (e.index, e)).collect();
        for (&index, &term) in self.log.range(snapshot_index + 1..) {
            let entry = by_index.get(&index);
            assert!(
                entry.is_some_and(|e| e.term == term),
                "cycle {cycle}: acknowledged entry {index} (term {term}) is lost: loaded {entry:?}"
            );
        }
        for entry in &stored.entries {
            assert_eq!(
                entry.payload,
                EntryPayload::Command(payload(entry.index, entry.term)),
                "cycle {cycle}: entry {} must load intact",
                entry.index
            );
        }
        self.hard_state = Some((stored.hard_state.term, stored.hard_state.vote.unwrap_or(0)));
        self.snapshot = stored.snapshot.map(|s| s.meta.last);
        self.log = stored.entries.iter().map(|e| (e.index, e.term)).collect();
    }
}

fn parent() {
    let started = Instant::now();
    let cycles: u64 = std::env::var(CYCLES_ENV).ok().and_then(|s| s.parse().ok()).unwrap_or(50);
    let seed: u64 = std::env::var(SEED_ENV).ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("crash test: {cycles} cycles, seed {seed} ({SEED_ENV}={seed}, {CYCLES_ENV}=N for more)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store_dir = dir.path().join("store");
    let runtime = runtime();
    let mut model = Model::default();
    let mut acknowledged = 0;
    for cycle in 0..cycles {
        let lines = run_and_kill(&store_dir, rng.random(), &mut rng, cycle);
        for line in lines.iter().filter(|line| line.as_str() != "ready") {
            model.acknowledge(line);
            acknowledged += 1;
        }
        runtime.block_on(async {
            let store = RocksLogStore::open(&store_dir, RocksLogStoreOptions::new(CLUSTER))
                .await
                .unwrap_or_else(|e| panic!("cycle {cycle}: the store must reopen after a kill: {e}"));
            let stored =
                store.load().await.unwrap_or_else(|e| panic!("cycle {cycle}: the store must load: {e}"));
            model.check(stored, cycle);
            store.close().await;
        });
    }
    println!(
        "crash test passed: {cycles} kills, {acknowledged} acknowledged writes checked, log at {:?}, in {:.1?}",
        model.log.last_key_value().map(|(index, _)| index),
        started.elapsed()
    );
}

/// Runs a child on `store` until a random moment, kills it, and returns
/// the complete lines it printed.
fn run_and_kill(store: &Path, seed: u64, rng: &mut impl Rng, cycle: u64) -> Vec<String> {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .env(CHILD_ENV, store)
        .env(SEED_ENV, seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the child starts");
    let stdout = child.stdout.take().expect("the child's stdout");
    let (lines_tx, lines_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        // Only complete lines: the kill may cut the last one short.
        while reader.read_line(&mut line).is_ok_and(|read| read > 0) && line.ends_with('\n') {
            if lines_tx.send(line.trim_end().to_owned()).is_err() {
                break;
            }
            line.clear();
        }
    });
    let mut lines = Vec::new();
    // Sometimes kill it while it opens the store; usually while it writes.
    if !rng.random_ratio(1, 8) {
        let ready = lines_rx.recv_timeout(READY_DEADLINE);
        assert_eq!(ready.as_deref(), Ok("ready"), "cycle {cycle}: the child must open the store");
        lines.push("ready".to_owned());
        std::thread::sleep(Duration::from_millis(rng.random_range(0..150)));
    }
    let exited = child.try_wait().expect("the child's status");
    assert!(exited.is_none(), "cycle {cycle}: the child must write until killed, but exited: {exited:?}");
    child.kill().expect("SIGKILL the child");
    child.wait().expect("the killed child is reaped");
    reader.join().expect("the reader thread ends with the child's stdout");
    lines.extend(lines_rx.try_iter());
    lines
}
