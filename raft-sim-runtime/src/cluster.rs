//! A cluster of runtime nodes on the simulated network and disks, and the
//! run's trace: start, crash and restart nodes, find the leader.

use crate::kv::{Recorder, SimKv};
use crate::net::SimNetwork;
use crate::store::SimStore;
use raft_core::runtime::{Inbox, Raft, RuntimeConfig};
use raft_core::{Config, Membership, NodeId, Role};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// The protocol and runtime settings a run draws from its seed.
#[derive(Debug, Clone)]
pub struct Params {
    /// Voters, numbered `1..=nodes`.
    pub nodes: u64,
    /// Whether leaders serve lease reads (and clients ask for them).
    pub lease_reads: bool,
    /// Entries applied between snapshots (small, so that snapshots are built,
    /// the log compacted and lagging nodes sent snapshots).
    pub snapshot_threshold: u64,
    /// The longest a disk write takes.
    pub max_write_latency: Duration,
}

/// Lines of what happened, stamped with simulated time. Clones share them.
#[derive(Clone)]
pub struct Trace {
    start: Instant,
    lines: Arc<Mutex<Vec<String>>>,
    echo: bool,
}

impl Trace {
    /// An empty trace starting now; with `echo`, lines are also printed as
    /// they are logged.
    pub fn new(echo: bool) -> Self {
        Self { start: Instant::now(), lines: Arc::default(), echo }
    }

    /// Logs `line` at the current simulated time.
    pub fn log(&self, line: impl std::fmt::Display) {
        let at = Instant::now().duration_since(self.start);
        let line = format!("{:>6}ms {line}", at.as_millis());
        if self.echo {
            println!("{line}");
        }
        self.lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line);
    }

    /// Every line logged so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Simulated time since the run started.
    pub fn elapsed(&self) -> Duration {
        Instant::now().duration_since(self.start)
    }
}

struct Slot {
    store: SimStore,
    raft: Option<Raft<SimKv>>,
    incarnation: u32,
    /// Between taking the disk and having a handle (so that two restarts of
    /// the same node do not race).
    starting: bool,
    /// Frozen by [`Cluster::pause`].
    paused: bool,
}

/// The nodes of one run and what they share.
pub struct Cluster {
    /// The run's settings.
    pub params: Params,
    /// The network every node sends through.
    pub network: SimNetwork,
    /// What every node applied.
    pub recorder: Recorder,
    /// What happened.
    pub trace: Trace,
    seed: u64,
    slots: Mutex<BTreeMap<NodeId, Slot>>,
    /// A logical clock for client histories: on one thread, the order of its
    /// readings is the real order of events.
    clock: AtomicU64,
    values: AtomicU64,
}

impl Cluster {
    /// A cluster of `params.nodes` nodes, not yet started.
    pub fn new(seed: u64, params: Params, trace: Trace) -> Arc<Self> {
        let slots = (1..=params.nodes)
            .map(|id| {
                let store = SimStore::new(derive(seed, 0x5702_0000 + id), params.max_write_latency);
                (id, Slot { store, raft: None, incarnation: 0, starting: false, paused: false })
            })
            .collect();
        Arc::new(Self {
            network: SimNetwork::start(derive(seed, 0x4E37)),
            recorder: Recorder::new(),
            trace,
            params,
            seed,
            slots: Mutex::new(slots),
            clock: AtomicU64::new(0),
            values: AtomicU64::new(0),
        })
    }

    fn slots(&self) -> MutexGuard<'_, BTreeMap<NodeId, Slot>> {
        self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every node's id.
    pub fn ids(&self) -> Vec<NodeId> {
        (1..=self.params.nodes).collect()
    }

    /// The next reading of the history clock.
    pub fn now(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// A value no put of this run wrote before.
    pub fn next_value(&self) -> u64 {
        self.values.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The protocol settings of node `id`.
    fn config(&self, id: NodeId) -> Config {
        let mut config = Config::new(id);
        config.lease_reads = self.params.lease_reads;
        config.snapshot_threshold = self.params.snapshot_threshold;
        config.snapshot_keep_entries = self.params.snapshot_threshold / 2;
        config.max_entries_per_msg = 64;
        config
    }

    /// The runtime settings of incarnation `incarnation` of node `id`.
    fn runtime_config(&self, id: NodeId, incarnation: u32) -> RuntimeConfig {
        RuntimeConfig {
            tick: Duration::from_millis(10),
            forward_timeout: Duration::from_millis(600),
            read_timeout: Duration::from_millis(400),
            // A fresh stream per incarnation, as a restarted process would
            // draw, but fixed by the run's seed.
            rng_seed: Some(self.derive(0x7A4D_0000 + (id << 16) + u64::from(incarnation))),
            ..RuntimeConfig::default()
        }
    }

    /// Starts node `id` (again) from what its disk holds, unless it runs.
    pub async fn start(&self, id: NodeId) -> Result<(), String> {
        let (store, incarnation) = {
            let mut slots = self.slots();
            let Some(slot) = slots.get_mut(&id) else { return Err(format!("no node {id}")) };
            if slot.raft.is_some() || slot.starting {
                return Ok(());
            }
            slot.starting = true;
            slot.incarnation += 1;
            (slot.store.clone(), slot.incarnation)
        };
        let state_machine = SimKv::new(id, incarnation, self.recorder.clone());
        let members = Membership::new(self.ids(), []);
        // A fresh inbox per incarnation: what was sent to the crashed one is
        // lost with it, as with a process's socket buffers.
        let inbox = Inbox::default();
        let raft = Raft::start(
            self.config(id),
            self.runtime_config(id, incarnation),
            members,
            store,
            self.network.transport(id),
            inbox.clone(),
            state_machine,
        )
        .await;
        let raft = match raft {
            Ok(raft) => raft,
            Err(error) => {
                if let Some(slot) = self.slots().get_mut(&id) {
                    slot.starting = false;
                }
                return Err(format!("node {id} did not start: {error}"));
            }
        };
        self.network.connect(id, inbox);
        if let Some(slot) = self.slots().get_mut(&id) {
            slot.raft = Some(raft);
            slot.starting = false;
        }
        self.trace.log(format_args!("node {id} started (incarnation {incarnation})"));
        Ok(())
    }

    /// Crashes node `id`: its tasks are aborted, and it keeps only what its
    /// disk acknowledged.
    pub fn crash(&self, id: NodeId) {
        let raft = self.slots().get_mut(&id).and_then(|slot| {
            slot.paused = false;
            slot.raft.take()
        });
        if let Some(raft) = raft {
            raft.crash();
            self.network.disconnect(id);
            self.trace.log(format_args!("node {id} crashed"));
        }
    }

    /// Freezes node `id` as SIGSTOP would, while time and the others go on.
    pub fn pause(&self, id: NodeId) -> bool {
        let raft = self.slots().get_mut(&id).filter(|slot| !slot.paused).and_then(|slot| {
            slot.paused = slot.raft.is_some();
            slot.raft.clone()
        });
        match raft {
            Some(raft) => {
                raft.pause();
                self.trace.log(format_args!("node {id} paused"));
                true
            }
            None => false,
        }
    }

    /// Lets node `id` go on, if it is paused.
    pub fn resume(&self, id: NodeId) {
        let raft = self.slots().get_mut(&id).filter(|slot| slot.paused).and_then(|slot| {
            slot.paused = false;
            slot.raft.clone()
        });
        if let Some(raft) = raft {
            raft.resume();
            self.trace.log(format_args!("node {id} resumed"));
        }
    }

    /// The nodes that are paused.
    pub fn paused(&self) -> Vec<NodeId> {
        self.slots().iter().filter(|(_, slot)| slot.paused).map(|(&id, _)| id).collect()
    }

    /// The handle of node `id`, if it runs.
    pub fn node(&self, id: NodeId) -> Option<Raft<SimKv>> {
        self.slots().get(&id).and_then(|slot| slot.raft.clone())
    }

    /// The nodes that run.
    pub fn running(&self) -> Vec<(NodeId, Raft<SimKv>)> {
        self.slots().iter().filter_map(|(&id, slot)| slot.raft.clone().map(|raft| (id, raft))).collect()
    }

    /// The nodes that crashed and have not restarted.
    pub fn crashed(&self) -> Vec<NodeId> {
        self.slots()
            .iter()
            .filter(|(_, slot)| slot.raft.is_none() && !slot.starting)
            .map(|(&id, _)| id)
            .collect()
    }

    /// The running node that believes it leads in the highest term, if any.
    pub fn leader(&self) -> Option<(NodeId, Raft<SimKv>)> {
        let mut best: Option<(u64, NodeId, Raft<SimKv>)> = None;
        for (id, raft) in self.running() {
            let (role, term) = {
                let metrics = raft.metrics();
                let metrics = metrics.borrow();
                (metrics.role, metrics.term)
            };
            if role == Role::Leader && best.as_ref().is_none_or(|(t, ..)| term > *t) {
                best = Some((term, id, raft));
            }
        }
        best.map(|(_, id, raft)| (id, raft))
    }

    /// Each running node's view: role, term, leader, log, configuration (for
    /// a liveness failure's report).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (id, raft) in self.running() {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            out.push_str(&format!(
                "\n  node {id}: {:?} term {} leader {:?} commit {} last {} applied {} voters {:?} learners {:?}{}",
                m.role,
                m.term,
                m.leader,
                m.commit_index,
                m.last_log_index,
                m.applied_index,
                m.membership.voters,
                m.membership.learners,
                if m.membership.is_joint() { " (joint)" } else { "" }
            ));
        }
        out
    }

    /// The seed for stream `stream` of this run.
    pub fn derive(&self, stream: u64) -> u64 {
        derive(self.seed, stream)
    }
}

/// Independent seeds for the parts of a run, from the run's seed
/// (SplitMix64's finalizer over the seed and a stream number).
pub fn derive(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
