//! Scenarios shared by the scenario tests, the regression tests and the
//! mutation tests.

// Each test crate that includes this module uses only some of it.
#![allow(dead_code)]

use raft_core::{Config, Message, MessageBody, NodeId, ReadMode, Role};
use raft_sim::kv::{self, KvStore};
use raft_sim::{ClientEvent, Cluster, Disk};
use std::collections::{BTreeMap, BTreeSet};

/// Whether `m` is an AppendEntries carrying the entry at `index`.
pub fn carries_entry(m: &Message, index: u64) -> bool {
    matches!(&m.body, MessageBody::AppendEntries(a) if a.entries.iter().any(|e| e.index == index))
}

/// Figure 8 of the Raft paper, played to the point where the rule matters.
///
/// Five servers; S1 holds an entry of term 2 at index 2 that nobody else has,
/// S5 an entry of term 3 at index 2. With S5 down and S4 cut off, S1 wins
/// term 4 and replicates its term-2 entry to S2 and S3 (a majority with
/// itself), but its own term-4 entry at index 3 is lost on the way. Returns
/// the cluster there, with S1 as leader.
pub fn figure_8_old_entry_on_a_majority(panic_on_violation: bool) -> Cluster {
    // One entry per message, so the old entry and the new one travel apart.
    let config =
        |id| Config { max_entries_per_msg: 1, pre_vote: false, check_quorum: false, ..Config::new(id) };
    let disks = [
        (1, Disk::with_terms(3, &[1, 2])),
        (2, Disk::with_terms(3, &[1])),
        (3, Disk::with_terms(3, &[1])),
        (4, Disk::with_terms(3, &[1])),
        (5, Disk::with_terms(3, &[1, 3])),
    ];
    let mut c = Cluster::with_disks(disks.into_iter().collect(), config, 8);
    c.enable_trace(); // for the scenario tests' golden traces
    c.panic_on_violation = panic_on_violation;
    c.crash(5);
    c.partition(&[1], &[4]);
    c.campaign(1);
    // S1's first probe to each follower carries index 3 too, but is refused
    // (they lack index 2); every later message carrying index 3 is lost.
    let mut probed = BTreeSet::new();
    c.stabilize_dropping(|m| carries_entry(m, 3) && !probed.insert(m.to));
    c
}

/// Figure 8, continued: S1 crashes, and S5, whose last entry has the higher
/// term 3, is elected by S2, S3 and S4 and overwrites index 2 everywhere.
pub fn figure_8_s5_takes_over(c: &mut Cluster) {
    c.crash(1);
    c.heal();
    c.restart(5);
    // Time passes: S2, S3 and S4 stop counting on S1 (a restart makes them
    // forget it at once, where ticks would race their own election timers).
    for id in [2, 3, 4] {
        c.restart(id);
    }
    // S5 restarts in term 3; its first attempt only teaches it term 4 (S2 and
    // S3 voted for S1 in term 4), the second wins term 5.
    c.campaign(5);
    c.stabilize();
    c.campaign(5);
    c.stabilize();
}

/// The key the lease race reads and writes.
pub const LEASE_KEY: u64 = 7;

/// Where the partitioned old leader's lease read is made, in steps after
/// the lease's heartbeat went out: two steps after the followers' tenth tick.
fn lease_read_at(follower_period: u64) -> u64 {
    2 + 9 * follower_period
}

/// What became of the lease race of [`lease_read_by_a_partitioned_old_leader`].
pub struct LeaseRace {
    /// The cluster after the race.
    pub cluster: Cluster,
    /// When the new leader acknowledged `put(LEASE_KEY, 2)`.
    pub write_acked_at: u64,
    /// When the old leader was asked for the lease read.
    pub read_at: u64,
    /// What the old leader's lease read returned, if it was served at once.
    pub served: Option<Option<u64>>,
}

/// Nodes whose ticks come at their own pace: node `id` ticks at `next[id]`,
/// then every `period[id]` steps after.
pub struct Clocks {
    next: BTreeMap<NodeId, u64>,
    period: BTreeMap<NodeId, u64>,
}

impl Clocks {
    /// Ticks every node whose tick falls at or before `until`, in time order
    /// (ties in id order), delivering everything after each tick.
    pub fn run_until(&mut self, c: &mut Cluster, until: u64) {
        loop {
            let Some((&id, &at)) = self.next.iter().min_by_key(|&(&id, &at)| (at, id)) else { return };
            if at > until {
                break;
            }
            c.now = at;
            c.tick(id);
            c.stabilize();
            self.next.insert(id, at + self.period[&id]);
        }
        c.now = until;
    }
}

/// Issue 10, bug 1: the race between a lease and the followers' promise.
///
/// Node 1 leads a cluster of three configured by `config` and has written
/// `put(LEASE_KEY, 1)`. At step 1000 it ticks, and right after sends the
/// heartbeat of a read round, which nodes 2 and 3 answer at once: its lease
/// starts. Then it is cut off. From then on it ticks every `leader_period`
/// steps (its next tick one period after the send), while nodes 2 and 3 tick
/// every `follower_period` steps from the step right after they answered,
/// which is the worst quantization for the promise. Once they have ticked
/// `election_timeout_min` times their promise has ended: they elect a new
/// leader (node 2 is made to campaign if no timer fired), which commits and
/// acknowledges `put(LEASE_KEY, 2)`. A step later the old leader, still
/// leading term 1, is asked for a lease read of `LEASE_KEY`.
pub fn lease_read_by_a_partitioned_old_leader(
    config: impl Fn(NodeId) -> Config,
    leader_period: u64,
    follower_period: u64,
) -> LeaseRace {
    let mut c = Cluster::with_config(3, config);
    c.campaign(1);
    c.stabilize();
    assert_eq!(c.leader(), Some(1));
    c.propose(1, kv::put(LEASE_KEY, 1));
    c.stabilize();

    let sent = 1000;
    c.now = sent;
    c.tick(1);
    c.stabilize();
    c.read_index(1, 1, ReadMode::ReadIndex).expect("node 1 leads");
    c.stabilize();
    assert!(read_ready(&mut c, 1, 1), "the round is confirmed and the lease starts");
    c.isolate(1);

    let mut clocks = Clocks {
        next: BTreeMap::from([(1, sent + leader_period), (2, sent + 1), (3, sent + 1)]),
        period: BTreeMap::from([(1, leader_period), (2, follower_period), (3, follower_period)]),
    };
    let read_at = sent + lease_read_at(follower_period);
    clocks.run_until(&mut c, read_at - 1);
    if c.leader() == Some(1) {
        c.campaign(2);
        c.stabilize();
    }
    let new_leader = c.leader().filter(|&l| l != 1).expect("nodes 2 and 3 elect a new leader");
    c.propose(new_leader, kv::put(LEASE_KEY, 2)).expect("the new leader takes the write");
    c.stabilize();
    assert_eq!(c.kv(new_leader).get(LEASE_KEY), Some(2), "the write is applied and acknowledged");
    let write_acked_at = c.now;

    clocks.run_until(&mut c, read_at);
    assert_eq!(c.node(1).role(), Role::Leader, "the old leader still leads term 1");
    c.take_events();
    c.read_index(1, 2, ReadMode::Lease).expect("node 1 leads");
    let served = read_ready(&mut c, 1, 2).then(|| c.kv(1).get(LEASE_KEY));
    LeaseRace { cluster: c, write_acked_at, read_at, served }
}

/// Whether read `ctx` became ready at `node` since events were last taken.
pub fn read_ready(c: &mut Cluster, node: NodeId, ctx: u64) -> bool {
    c.take_events().into_iter().any(|e| e == ClientEvent::ReadReady { node, ctx })
}

/// The configuration with lease reads on and the smallest clock-drift bound
/// that `Config::validate` accepts: the least margin a deployment can ask for.
pub fn minimum_lease_config(id: NodeId) -> Config {
    let base = Config { lease_reads: true, ..Config::new(id) };
    (0..base.election_timeout_min)
        .map(|drift| Config { max_clock_drift_ticks: drift, ..base.clone() })
        .find(|config| config.validate().is_ok())
        .expect("some drift bound is valid")
}

/// Issue 10, bug 3: two leaders send the same follower snapshots with the
/// same metadata but different bytes.
///
/// Node 2 encodes its state machine in descending key order, node 1 in
/// ascending order; both snapshot at index 10 (one blank entry, nine puts of
/// distinct keys) while node 3 is cut off. Node 1 then sends node 3 the first
/// 32-byte chunk of its snapshot and is cut off before the rest arrives;
/// nodes 2 and 3 elect node 2, which sends node 3 its own snapshot from
/// offset 0. Returns the cluster once that has played out.
pub fn snapshots_from_two_leaders(panic_on_violation: bool) -> Cluster {
    let config = |id| Config {
        snapshot_threshold: 10,
        snapshot_keep_entries: 0,
        snapshot_chunk_bytes: 32,
        ..Config::new(id)
    };
    let mut c = Cluster::with_config(3, config);
    c.panic_on_violation = panic_on_violation;
    c.set_snapshot_encoding(2, KvStore::encode_descending);
    c.isolate(3);
    c.campaign(1);
    c.stabilize();
    for key in 0..9 {
        c.propose(1, kv::put(key, 100 + key));
        c.stabilize();
    }
    let (one, two) = (c.disk(1).snapshot.clone(), c.disk(2).snapshot.clone());
    let (one, two) = (one.expect("node 1 snapshots"), two.expect("node 2 snapshots"));
    assert_eq!((one.meta.last.index, &one.meta), (10, &two.meta), "the same metadata");
    assert_ne!(one.data, two.data, "different bytes");

    c.heal();
    let mut first_chunk_delivered = false;
    for _ in 0..20 {
        c.now += 1;
        c.tick(1);
        c.stabilize_dropping(|m| match &m.body {
            MessageBody::InstallSnapshot(chunk) if m.to == 3 => {
                first_chunk_delivered |= chunk.offset == 0;
                chunk.offset > 0
            }
            _ => false,
        });
        if first_chunk_delivered {
            break;
        }
    }
    assert!(first_chunk_delivered, "node 1 sends node 3 its snapshot");
    c.isolate(1);
    c.drop_in_flight();
    for _ in 0..100 {
        c.now += 1;
        c.tick(2);
        c.tick(3);
        c.stabilize();
        // Node 3 may have been stopped by a checker: the splice was caught.
        let node_3_done = c.try_node(3).is_none_or(|n| n.log().last_index() > 10);
        if c.leader() == Some(2) && node_3_done {
            break;
        }
    }
    assert_eq!(c.leader(), Some(2), "nodes 2 and 3 elect node 2");
    c
}
