//! Edge cases of snapshots, transfers and leases found in review, each a
//! script that failed before its fix: entries stepped right after a snapshot
//! install, a transfer completed by a snapshot, a lease promise broken by a
//! late higher-term reply, and snapshot chunk streams multiplying.

use raft_core::{Config, MessageBody, Role};
use raft_sim::{Cluster, Disk, NetModel};
use rand::SeedableRng;

fn small_snapshots(id: u64) -> Config {
    Config { snapshot_threshold: 10, snapshot_keep_entries: 5, ..Config::new(id) }
}

/// Every message takes exactly one step: what a node sends while handling
/// step `t` is delivered at step `t + 1`.
fn one_step_network() -> NetModel {
    NetModel::new(rand_chacha::ChaCha8Rng::seed_from_u64(0), 0.0, 0.0, 1)
}

/// Node 1 leads, with node 3 cut off, until the log reaches 20 entries and
/// the small snapshot threshold has compacted it.
fn lead_to_a_snapshot_without_node_3(c: &mut Cluster) {
    c.isolate(3);
    c.campaign(1);
    c.stabilize();
    while c.node(1).log().last_index() < 20 {
        c.propose(1, "x");
        c.stabilize();
    }
}

fn step(c: &mut Cluster) {
    c.now += 1;
    c.deliver_due();
    c.flush_all();
}

/// Before its fix, entries stepped right after a snapshot install were
/// acknowledged but never stored. Node 3's stored log (40 uncommitted term-1 entries) runs past the
/// leader's snapshot at 20@2. It installs the snapshot (log discarded,
/// `unstable_from` stays at 41) and, before the runtime calls `ready()`,
/// steps an earlier-sent append 21@3 whose prev is the snapshot's last entry.
/// `take_unstable` then starts at 41, so entry 21 is never handed to
/// storage, yet node 3 acknowledges it and the leader commits it.
#[test]
fn entries_appended_right_after_a_snapshot_install_are_written() {
    let disks =
        [(1, Disk::with_terms(1, &[1])), (2, Disk::with_terms(1, &[1])), (3, Disk::with_terms(1, &[1; 40]))];
    let mut c = Cluster::with_disks(disks.into_iter().collect(), small_snapshots, 1);
    lead_to_a_snapshot_without_node_3(&mut c);
    assert_eq!(c.disk(2).snapshot.as_ref().unwrap().meta.last.index, 20);
    c.heal();
    c.net = Some(one_step_network());
    // Node 2 takes over at "time 1000": its first append to node 3,
    // P1 = prev 20@2 + [21@3], is held in flight until time 1001.
    c.now = 1000;
    c.transfer_leadership(1, 2).unwrap();
    while c.node(2).role() != Role::Leader {
        step(&mut c);
    }
    c.partition(&[1], &[2, 3]); // entry 21 never reaches node 1
                                // Back at "time 100", a heartbeat probes node 3, which rejects twice and
                                // is sent the snapshot 20@2.
    c.now = 100;
    c.tick(2);
    c.tick(2);
    while !c.in_flight().any(|m| m.to == 3 && matches!(m.body, MessageBody::InstallSnapshot(_))) {
        step(&mut c);
    }
    // A runtime that steps all it has received before calling ready():
    // the snapshot, then P1.
    c.defer_ready = true;
    c.now = 2000;
    c.deliver_due();
    c.drain_all();
    c.defer_ready = false;
    c.stabilize();
    c.tick_all(2);
    c.check_durable();
    c.restart(3);
    assert!(c.is_up(3), "node 3 restarts from a consistent disk");
}

/// Before its fix: a transfer target that catches up through a snapshot (the leader's log
/// ends at its snapshot) is never sent TimeoutNow: `handle_snapshot_response`
/// moves its match to the leader's last index without calling
/// `maybe_send_timeout_now`, and the follow-up empty append does not move
/// the match, so the check in `handle_append_response` never runs either.
#[test]
fn a_transfer_target_caught_up_by_a_snapshot_gets_timeout_now() {
    let mut c = Cluster::with_config(3, small_snapshots);
    lead_to_a_snapshot_without_node_3(&mut c);
    assert_eq!(c.disk(1).snapshot.as_ref().unwrap().meta.last.index, 20);
    c.heal();
    c.transfer_leadership(1, 3).unwrap();
    c.stabilize();
    assert_eq!(c.node(3).log().first_index(), 21, "node 3 caught up via the snapshot");
    assert_eq!(c.leader(), Some(3), "the target never campaigned");
}

fn read_ready(c: &mut Cluster, node: u64, ctx: u64) -> bool {
    c.take_events().into_iter().any(|e| e == raft_sim::ClientEvent::ReadReady { node, ctx })
}

fn steps(c: &mut Cluster, n: u64) {
    for _ in 0..n {
        step(c);
    }
}

/// A lease promise survives a change of term: follower 2, in lease under
/// leader 1, receives a late answer (term 3) to a heartbeat it sent long ago
/// as leader of term 1 and adopts term 3 with no leader. It used to vote for
/// node 3 at once, so node 3 could lead and commit a write while node 1 still
/// served lease reads. Stickiness now counts ticks since it last heard from
/// any leader.
#[test]
fn a_late_higher_term_reply_does_not_break_a_followers_lease_promise() {
    let config = |id| Config { lease_reads: true, pre_vote: false, ..Config::new(id) };
    let mut c = Cluster::with_config(3, config);
    c.campaign(2);
    c.stabilize();
    assert_eq!(c.leader(), Some(2));
    c.propose(2, raft_sim::kv::put(7, 1));
    c.stabilize();
    // Node 2's heartbeat of term 1 to node 3 is delayed in the network.
    c.net = Some(one_step_network());
    c.now = 1000;
    c.tick(2);
    c.tick(2);
    c.now = 10;
    // Leadership moves to node 1 (term 2), which establishes its lease.
    c.transfer_leadership(2, 1).unwrap();
    steps(&mut c, 6);
    assert_eq!(c.leader(), Some(1));
    c.read_index(1, 1, raft_core::ReadMode::ReadIndex).unwrap();
    steps(&mut c, 4);
    assert!(read_ready(&mut c, 1, 1));
    // Node 3 loses contact with node 1; its election timer fires (term 3);
    // node 2 is in lease and ignores its vote request.
    c.partition(&[1], &[3]);
    c.campaign(3);
    steps(&mut c, 4);
    assert_eq!((c.node(2).term(), c.node(2).leader()), (2, Some(1)));
    // The delayed term-1 heartbeat reaches node 3, whose reply (term 3)
    // makes node 2 drop its leader. Node 2's replies to node 1 are lost.
    c.cut_link(2, 1);
    c.now = 1001;
    c.deliver_due();
    c.flush_all();
    steps(&mut c, 2);
    // Node 2 moved to term 3 but still heard from node 1 within the minimum
    // election timeout: it keeps refusing votes, so node 3 cannot be elected
    // and node 1's lease reads stay linearizable.
    assert_eq!(c.node(2).term(), 3);
    c.campaign(3);
    steps(&mut c, 6);
    assert_ne!(c.node(3).role(), raft_core::Role::Leader, "node 2 broke its lease promise");
    assert_eq!(c.node(1).role(), raft_core::Role::Leader);
    c.read_index(1, 2, raft_core::ReadMode::Lease).unwrap();
    assert!(read_ready(&mut c, 1, 2), "served from the lease");
    assert_eq!(c.kv(1).get(7), Some(1));
}

/// Before its fix: every heartbeat response in Snapshot state resent a chunk, even when the
/// last one is merely in flight; every response (including the "wanted X"
/// answer to a duplicate) triggers another send, so each heartbeat adds a
/// parallel stream that never dies until the transfer completes.
#[test]
fn snapshot_chunks_flow_one_at_a_time() {
    let config = |id| Config {
        snapshot_threshold: 100,
        snapshot_keep_entries: 0,
        snapshot_chunk_bytes: 8,
        ..Config::new(id)
    };
    let mut c = Cluster::with_config(3, config);
    c.campaign(1);
    c.stabilize();
    c.isolate(3);
    for i in 0..200u64 {
        c.propose(1, raft_sim::kv::put(i, i));
        c.stabilize();
    }
    let size = c.disk(1).snapshot.as_ref().unwrap().data.len();
    c.heal();
    c.net = Some(one_step_network());
    let mut chunks_sent = 0;
    let mut max_in_flight = 0;
    for _ in 0..2000 {
        c.now += 1;
        c.tick(1);
        c.tick(2);
        c.tick(3);
        c.deliver_due();
        c.flush_all();
        let n = c.in_flight().filter(|m| matches!(m.body, MessageBody::InstallSnapshot(_))).count();
        chunks_sent += n;
        max_in_flight = max_in_flight.max(n);
        if c.node(3).log().first_index() > 1 {
            break;
        }
    }
    assert!(
        (chunks_sent as u64) < 4 * size / 8,
        "{chunks_sent} chunks sent for {} in the snapshot",
        size / 8
    );
    assert!(c.node(3).log().first_index() > 1, "installed");
    assert!(max_in_flight <= 2, "{max_in_flight} chunks in flight at once");
}
