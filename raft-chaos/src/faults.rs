//! The fault schedule: from the seed (ChaCha8), one fault at a time, each
//! held for a while, healed, logged with its start and end times, then a
//! quiet gap. One at a time keeps each fault's effect readable in the
//! history; the kinds are drawn from those the flags enable.

use crate::cluster::{Cluster, Start};
use crate::proxy::{LinkState, Proxies};
use crate::{Error, Storage};
use clap::ValueEnum;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL the leader and restart it (memory store: removed, then back
    /// with an empty directory through `--join`).
    KillLeader,
    /// SIGKILL a random node and restart it (as above).
    Kill,
    /// SIGKILL every node at once and restart them (RocksDB only).
    KillAll,
    /// SIGSTOP the leader for several election timeouts, then SIGCONT.
    PauseLeader,
    /// SIGSTOP a random node, then SIGCONT.
    Pause,
    /// Cut every link to and from the leader.
    IsolateLeader,
    /// A minority and a majority that cannot reach each other.
    Split,
    /// One node's outgoing (or incoming) links cut, the other way open.
    OneWay,
    /// Two halves that cannot reach each other, and one node that reaches
    /// both.
    Bridge,
    /// Every link delayed and lossy.
    Flaky,
}

impl FaultKind {
    /// Every kind the store allows: a memory node cannot survive a crash
    /// of every node at once (the data is gone).
    pub fn all_for(storage: Storage) -> Vec<FaultKind> {
        FaultKind::value_variants()
            .iter()
            .copied()
            .filter(|k| *k != FaultKind::KillAll || storage == Storage::Rocksdb)
            .collect()
    }

    /// The name used in logs and the report.
    pub fn name(self) -> String {
        self.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
    }
}

/// One injected fault, as `faults.jsonl` records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultLog {
    /// Its kind.
    pub kind: FaultKind,
    /// What exactly (which nodes, links).
    pub detail: String,
    /// When it began, µs since the run began.
    pub start_us: u64,
    /// When it was healed, µs since the run began.
    pub end_us: u64,
}

/// What the schedule works on.
pub struct Chaos<'a> {
    /// The nodes.
    pub cluster: &'a mut Cluster,
    /// The links.
    pub proxies: &'a Proxies,
    /// The schedule's randomness.
    pub rng: ChaCha8Rng,
    /// The store (which restarts are possible).
    pub storage: Storage,
    /// One election timeout at most, in milliseconds (20 ticks).
    pub election_ms: u64,
    /// The history's clock.
    pub clock: crate::client::Clock,
}

impl Chaos<'_> {
    /// Injects faults of `kinds` until `until`, a mean gap of `gap_ms`
    /// between them; returns the log.
    pub async fn run(
        &mut self,
        kinds: &[FaultKind],
        until: Instant,
        gap_ms: u64,
    ) -> Result<Vec<FaultLog>, Error> {
        let mut log = Vec::new();
        loop {
            let gap = self.rng.random_range(gap_ms / 2..=gap_ms * 3 / 2);
            tokio::time::sleep(Duration::from_millis(gap)).await;
            if Instant::now() >= until || kinds.is_empty() {
                return Ok(log);
            }
            let kind = kinds[self.rng.random_range(0..kinds.len())];
            let start_us = self.clock.now_us();
            let detail = self.inject(kind).await?;
            let end_us = self.clock.now_us();
            eprintln!("raft-chaos: {:>9.3}s {} {detail}", start_us as f64 / 1e6, kind.name());
            log.push(FaultLog { kind, detail, start_us, end_us });
        }
    }

    fn hold(&mut self) -> Duration {
        Duration::from_millis(self.rng.random_range(1000..=4000))
    }

    async fn target(&mut self, leader: bool) -> u64 {
        let nodes = self.cluster.layout.nodes;
        let any = self.rng.random_range(1..=nodes);
        if leader {
            self.cluster.leader().await.unwrap_or(any)
        } else {
            any
        }
    }

    /// Injects one fault, holds it, heals it; says what it did.
    async fn inject(&mut self, kind: FaultKind) -> Result<String, Error> {
        match kind {
            FaultKind::KillLeader | FaultKind::Kill => {
                let id = self.target(kind == FaultKind::KillLeader).await;
                self.kill_restart(id).await?;
                Ok(format!("node {id} killed and restarted"))
            }
            FaultKind::KillAll => {
                self.kill_all().await?;
                Ok("every node killed and restarted".into())
            }
            FaultKind::PauseLeader | FaultKind::Pause => {
                let id = self.target(kind == FaultKind::PauseLeader).await;
                let pause = self.election_ms * self.rng.random_range(3..=10);
                self.cluster.set_paused(id, true);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                self.cluster.set_paused(id, false);
                Ok(format!("node {id} paused {pause} ms"))
            }
            _ => {
                let detail = self.partition(kind).await;
                let hold = self.hold();
                tokio::time::sleep(hold).await;
                self.proxies.heal_all();
                Ok(format!("{detail} for {} ms", hold.as_millis()))
            }
        }
    }

    /// Cuts the links of a partition of `kind`; says which.
    async fn partition(&mut self, kind: FaultKind) -> String {
        let mut ids: Vec<u64> = self.cluster.layout.ids().collect();
        ids.shuffle(&mut self.rng);
        match kind {
            FaultKind::IsolateLeader => {
                let leader = self.target(true).await;
                for &other in ids.iter().filter(|&&o| o != leader) {
                    self.proxies.cut_both(leader, other);
                }
                format!("node {leader} isolated")
            }
            FaultKind::Split | FaultKind::Bridge => {
                // Bridge: the first node reaches both halves of the rest.
                let (bridge, rest) =
                    if kind == FaultKind::Bridge { ids.split_at(1) } else { ids.split_at(0) };
                let (a, b) = rest.split_at(rest.len() / 2);
                for &x in a {
                    for &y in b {
                        self.proxies.cut_both(x, y);
                    }
                }
                format!("{a:?} | {b:?} split, bridge {bridge:?}")
            }
            FaultKind::OneWay => {
                let node = ids[0];
                let outgoing = self.rng.random_bool(0.5);
                let cut = LinkState { cut: true, ..LinkState::default() };
                for &other in &ids[1..] {
                    let (from, to) = if outgoing { (node, other) } else { (other, node) };
                    self.proxies.set(from, to, cut);
                }
                format!("node {node}'s {} links cut", if outgoing { "outgoing" } else { "incoming" })
            }
            _ => {
                let delay_ms = self.rng.random_range(0..=50);
                let drop_per_mille = self.rng.random_range(0..=150);
                let links: Vec<(u64, u64)> = self.proxies.links().collect();
                for (from, to) in links {
                    self.proxies.set(from, to, LinkState { cut: false, delay_ms, drop_per_mille });
                }
                format!("every link delayed {delay_ms} ms, {drop_per_mille}/1000 dropped")
            }
        }
    }

    /// SIGKILLs node `id` and brings it back. RocksDB: from its directory.
    /// Memory: its log is gone, and a voter that forgot its vote is unsafe,
    /// so it is removed from the configuration, started empty with
    /// `--join`, and made a voter again once caught up.
    async fn kill_restart(&mut self, id: u64) -> Result<(), Error> {
        self.cluster.kill(id);
        let down = Duration::from_millis(self.rng.random_range(200..=2000));
        tokio::time::sleep(down).await;
        match self.storage {
            Storage::Rocksdb => self.cluster.start(id, Start::Resume),
            Storage::Mem => crate::membership::rejoin_empty(self.cluster, id).await,
        }
    }

    /// SIGKILLs every node at once and restarts them from their
    /// directories (RocksDB only), waiting until they are ready.
    pub async fn kill_all(&mut self) -> Result<(), Error> {
        let ids: Vec<u64> = self.cluster.layout.ids().collect();
        for &id in &ids {
            self.cluster.kill(id);
        }
        for &id in &ids {
            self.cluster.start(id, Start::Resume)?;
        }
        self.cluster.wait_ready(Duration::from_secs(60)).await
    }
}
