//! The fault schedule: from the seed (ChaCha8), a fault, held for a while,
//! healed, logged with its start and end times, then a quiet gap; the
//! kinds are drawn from those the flags enable. With chance `--overlap` a
//! second fault starts while the first holds, so that the cluster meets
//! compound faults (a partition and a kill, a pause and a transfer).
//!
//! What keeps a run recoverable: the two faults of a pair are of
//! different classes ([`Class`]: the network, one node, a leadership
//! transfer), so at most one node is down or rebuilding at a time, a
//! memory node's lost state included; the second is never a membership
//! change (its removal could wait on a partition that only heals after
//! it); the network fault heals first, then the others, the later first.

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
    /// `POST /cluster/transfer-leader` to a random voter other than the
    /// leader.
    TransferLeader,
    /// Remove a node from the configuration, stop it, wipe its directory,
    /// start it again with `--join`, promote it once it caught up.
    RemoveRejoin,
    /// Remove a node for good and add a new node id in its slot (fresh
    /// directory, through `--join`), promoted once it caught up.
    Replace,
    /// Fill one node's filesystem (RocksDB, disks available): the node
    /// must stop on the storage error; healed, it resumes from its
    /// directory.
    DiskFull,
    /// Make one node's filesystem fail every write (as above).
    DiskReadOnly,
}

/// What a fault acts on, for pairing two at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The links between nodes.
    Network,
    /// One node's process, directory or membership.
    Node,
    /// A leadership transfer (over when it answers).
    Transfer,
    /// Every node (never paired).
    All,
}

impl FaultKind {
    /// Every kind the store allows: a memory node cannot survive a crash
    /// of every node at once (the data is gone), and disk faults need
    /// RocksDB and disks of their own (`disks`, see [`crate::disk`]).
    pub fn all_for(storage: Storage, disks: bool) -> Vec<FaultKind> {
        FaultKind::value_variants()
            .iter()
            .copied()
            .filter(|k| *k != FaultKind::KillAll || storage == Storage::Rocksdb)
            .filter(|k| !k.is_disk() || (storage == Storage::Rocksdb && disks))
            .collect()
    }

    /// A disk fault.
    pub fn is_disk(self) -> bool {
        matches!(self, FaultKind::DiskFull | FaultKind::DiskReadOnly)
    }

    /// What it acts on.
    pub fn class(self) -> Class {
        use FaultKind::*;
        match self {
            IsolateLeader | Split | OneWay | Bridge | Flaky => Class::Network,
            TransferLeader => Class::Transfer,
            KillAll => Class::All,
            KillLeader | Kill | PauseLeader | Pause | RemoveRejoin | Replace | DiskFull | DiskReadOnly => {
                Class::Node
            }
        }
    }

    /// Whether it may start while `first` holds.
    pub fn pairs_after(self, first: FaultKind) -> bool {
        let change = matches!(self, FaultKind::RemoveRejoin | FaultKind::Replace);
        self.class() != first.class() && self.class() != Class::All && first.class() != Class::All && !change
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
    /// The chance that a second fault starts while one holds.
    pub overlap: f64,
}

/// How a fault that began is undone.
#[derive(Debug)]
enum Heal {
    /// Nothing to undo (a transfer).
    Nothing,
    /// Every link back to normal.
    Links,
    /// SIGCONT the slot's node.
    Resume(u64),
    /// Start the slot's node from its directory (RocksDB).
    Restart(u64),
    /// Remove the slot's node (a memory node that crashed) and join it
    /// back empty.
    Rejoin(u64),
    /// Join the slot's node, removed already, back empty; under a new id
    /// when `true`.
    Join(u64, bool),
    /// Undo the slot's disk fault, then restart its node.
    Disk(u64, FaultKind),
}

/// A fault that began and is not healed yet.
#[derive(Debug)]
struct Active {
    kind: FaultKind,
    detail: String,
    start_us: u64,
    hold: Duration,
    heal: Heal,
    slot: Option<u64>,
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
            let first = self.begin(kind, None).await?;
            let mut active = vec![first];
            let partners: Vec<FaultKind> = kinds.iter().copied().filter(|k| k.pairs_after(kind)).collect();
            if !partners.is_empty() && self.rng.random_bool(self.overlap) {
                // The second starts somewhere in the first half of the hold.
                let lead = active[0].hold.mul_f64(self.rng.random_range(0.0..0.5));
                tokio::time::sleep(lead).await;
                active[0].hold = active[0].hold.saturating_sub(lead);
                let second = partners[self.rng.random_range(0..partners.len())];
                let busy = active[0].slot;
                active.push(self.begin(second, busy).await?);
            }
            let hold = active.iter().map(|a| a.hold).max().unwrap_or_default();
            tokio::time::sleep(hold).await;
            // The network first (a rejoin needs a majority that can talk),
            // then the rest, the later first.
            let (network, mut rest): (Vec<Active>, Vec<Active>) =
                active.into_iter().partition(|a| matches!(a.heal, Heal::Links));
            rest.reverse();
            let pair = network.len() + rest.len() > 1;
            for fault in network.into_iter().chain(rest) {
                let detail = self
                    .heal(fault.heal)
                    .await?
                    .map_or(fault.detail.clone(), |more| format!("{}, {more}", fault.detail));
                let end_us = self.clock.now_us();
                let detail = if pair { format!("{detail} (overlapping)") } else { detail };
                let start = fault.start_us as f64 / 1e6;
                eprintln!("raft-chaos: {start:>9.3}s {} {detail}", fault.kind.name());
                log.push(FaultLog { kind: fault.kind, detail, start_us: fault.start_us, end_us });
            }
        }
    }

    fn hold(&mut self) -> Duration {
        Duration::from_millis(self.rng.random_range(1000..=4000))
    }

    /// A slot: the leader's if `leader` (when one answers), else any; never
    /// `busy` (the slot another fault holds).
    async fn target(&mut self, leader: bool, busy: Option<u64>) -> u64 {
        let nodes = self.cluster.layout.nodes;
        let free: Vec<u64> = self.cluster.layout.ids().filter(|&s| Some(s) != busy).collect();
        let any = free[self.rng.random_range(0..free.len())];
        if !leader {
            return any;
        }
        match self.cluster.leader().await {
            Some(slot) if Some(slot) != busy && slot <= nodes => slot,
            _ => any,
        }
    }

    /// Begins one fault of `kind`, sparing slot `busy`; says how to heal it.
    async fn begin(&mut self, kind: FaultKind, busy: Option<u64>) -> Result<Active, Error> {
        use FaultKind::*;
        let start_us = self.clock.now_us();
        let down = Duration::from_millis(self.rng.random_range(200..=2000));
        let (detail, hold, heal, slot) = match kind {
            KillLeader | Kill => {
                let slot = self.target(kind == KillLeader, busy).await;
                let id = self.cluster.id(slot);
                self.cluster.kill(slot);
                let heal =
                    if self.storage == Storage::Rocksdb { Heal::Restart(slot) } else { Heal::Rejoin(slot) };
                (format!("node {id} killed and restarted"), down, heal, Some(slot))
            }
            KillAll => {
                self.kill_all().await?;
                ("every node killed and restarted".into(), Duration::ZERO, Heal::Nothing, None)
            }
            PauseLeader | Pause => {
                let slot = self.target(kind == PauseLeader, busy).await;
                let pause = self.election_ms * self.rng.random_range(3..=10);
                self.cluster.set_paused(slot, true);
                let detail = format!("node {} paused {pause} ms", self.cluster.id(slot));
                (detail, Duration::from_millis(pause), Heal::Resume(slot), Some(slot))
            }
            TransferLeader => {
                let leader = self.cluster.leader().await;
                let others: Vec<u64> =
                    self.cluster.layout.ids().filter(|&s| Some(s) != leader && Some(s) != busy).collect();
                let to = others[self.rng.random_range(0..others.len())];
                let via = leader.filter(|&l| Some(l) != busy).unwrap_or(to);
                let detail = crate::membership::transfer_leader(self.cluster, via, to).await;
                (detail, Duration::ZERO, Heal::Nothing, None)
            }
            RemoveRejoin | Replace => {
                let slot = self.target(false, busy).await;
                let id = self.cluster.id(slot);
                crate::membership::remove(self.cluster, slot).await?;
                self.cluster.kill(slot);
                let detail = match kind {
                    Replace => format!("node {id} removed for good"),
                    _ => format!("node {id} removed, wiped"),
                };
                (detail, down, Heal::Join(slot, kind == Replace), Some(slot))
            }
            DiskFull | DiskReadOnly => {
                let slot = self.target(false, busy).await;
                let detail = self.break_disk(slot, kind)?;
                (detail, down, Heal::Disk(slot, kind), Some(slot))
            }
            _ => {
                let detail = self.partition(kind).await;
                let hold = self.hold();
                let detail = format!("{detail} for {} ms", hold.as_millis());
                (detail, hold, Heal::Links, None)
            }
        };
        Ok(Active { kind, detail, start_us, hold, heal, slot })
    }

    /// Undoes what [`Chaos::begin`] did; says anything worth adding.
    async fn heal(&mut self, heal: Heal) -> Result<Option<String>, Error> {
        match heal {
            Heal::Nothing => {}
            Heal::Links => self.proxies.heal_all(),
            Heal::Resume(slot) => self.cluster.set_paused(slot, false),
            Heal::Restart(slot) => self.cluster.start(slot, Start::Resume)?,
            Heal::Rejoin(slot) => crate::membership::rejoin_empty(self.cluster, slot).await?,
            Heal::Join(slot, new_id) => {
                let id = crate::membership::join_empty(self.cluster, slot, new_id).await?;
                return Ok(Some(format!("node {id} joined and promoted")));
            }
            Heal::Disk(slot, kind) => {
                let stopped = self.wait_stopped(slot).await?;
                let disk = self
                    .cluster
                    .disk(slot)
                    .ok_or_else(|| Error::Cluster(format!("slot {slot} has no disk")))?;
                let undone = if kind == FaultKind::DiskFull { disk.unfill() } else { disk.repair() };
                undone.map_err(|e| Error::Cluster(format!("undoing {} on slot {slot}: {e}", kind.name())))?;
                self.cluster.start(slot, Start::Resume)?;
                self.cluster.wait_ready(Duration::from_secs(60)).await?;
                return Ok(Some(format!("{stopped}; restarted on its directory")));
            }
        }
        Ok(None)
    }

    /// Fills or fails slot `slot`'s disk; says how.
    fn break_disk(&mut self, slot: u64, kind: FaultKind) -> Result<String, Error> {
        let id = self.cluster.id(slot);
        let disk =
            self.cluster.disk(slot).ok_or_else(|| Error::Cluster(format!("slot {slot} has no disk")))?;
        let what = match kind {
            FaultKind::DiskFull => {
                disk.fill().map(|bytes| format!("filled ({} MiB of ballast)", bytes >> 20))
            }
            _ => disk.fail().map(|()| "failed (every write refused)".to_string()),
        };
        let what = what.map_err(|e| Error::Cluster(format!("{} on slot {slot}: {e}", kind.name())))?;
        Ok(format!("node {id}'s disk {what}"))
    }

    /// Waits for the node in slot `slot`, whose disk broke, to stop on the
    /// storage error; one that keeps running, or exits as if all was well,
    /// is an error of the run. Called once the network healed: the
    /// clients keep writing, so the node writes and meets the error.
    async fn wait_stopped(&mut self, slot: u64) -> Result<String, Error> {
        let id = self.cluster.id(slot);
        let within = Duration::from_secs(60);
        match self.cluster.wait_exit(slot, within).await {
            Some(status) if !status.success() => Ok(format!("it stopped, {status}")),
            Some(status) => Err(Error::Cluster(format!(
                "node {id} stopped on a broken disk but reported success, {status}"
            ))),
            None => Err(Error::Cluster(format!(
                "node {id} still runs {within:?} after its disk broke (see {})",
                self.cluster.log_path(id).display()
            ))),
        }
    }

    /// Cuts the links of a partition of `kind`; says which.
    async fn partition(&mut self, kind: FaultKind) -> String {
        let mut ids: Vec<u64> = self.cluster.layout.ids().collect();
        ids.shuffle(&mut self.rng);
        match kind {
            FaultKind::IsolateLeader => {
                let leader = self.target(true, None).await;
                for &other in ids.iter().filter(|&&o| o != leader) {
                    self.proxies.cut_both(leader, other);
                }
                format!("node {} isolated", self.cluster.id(leader))
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
