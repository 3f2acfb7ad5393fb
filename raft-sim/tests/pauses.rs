//! Paused nodes (SIGSTOP): alive, neither ticking nor receiving, then
//! resuming with all their volatile state and a backlog of messages. The
//! classic lease-read failure is a leader paused for longer than the
//! election timeout that, on resuming, serves a read under a lease another
//! leader has long since outlived.

use raft_core::{Config, ReadMode, Role};
use raft_sim::{kv, ClientEvent, Cluster};

fn with_leases(id: u64) -> Config {
    Config { lease_reads: true, ..Config::new(id) }
}

/// The value node `id` serves for read `ctx` on key 0, if it served it.
fn served(c: &mut Cluster, id: u64, ctx: u64) -> Option<Option<u64>> {
    let ready = c.take_events().iter().any(|e| *e == ClientEvent::ReadReady { node: id, ctx });
    ready.then(|| c.kv(id).get(0))
}

/// Node 1 leads with a fresh lease, is paused for four election timeouts
/// (and cut off, so no backlog tells it of the new term) while nodes 2 and 3
/// elect a leader and overwrite key 0, then resumes. It gets its missed
/// ticks first, so it knows its lease is gone (and, with check-quorum, that
/// it no longer leads): a lease read there must not see the old value.
/// Resumed without its missed ticks (`c.resume(1, 0)`), it serves 1.
#[test]
fn a_leader_paused_past_the_election_timeout_serves_no_stale_lease_read() {
    let mut c = Cluster::with_config(3, with_leases);
    c.campaign(1);
    c.stabilize();
    c.propose(1, kv::put(0, 1));
    c.stabilize();
    c.tick_all(4); // heartbeats answered: node 1 holds a lease
    assert!(c.read_index(1, 10, ReadMode::Lease).is_ok());
    c.stabilize();
    assert_eq!(served(&mut c, 1, 10), Some(Some(1)), "the lease serves at once");

    c.pause(1);
    c.isolate(1);
    let paused_ticks = 4 * c.node(2).config().election_timeout_max;
    c.tick_all(paused_ticks);
    let leader = c.leader().expect("nodes 2 and 3 elect a leader");
    assert_ne!(leader, 1);
    assert!(c.propose(leader, kv::put(0, 2)).is_some());
    c.stabilize();
    assert_eq!(c.node(1).role(), Role::Leader, "paused, node 1 still believes it leads");

    c.resume(1, paused_ticks);
    let _ = c.read_index(1, 11, ReadMode::Lease);
    c.stabilize();
    match served(&mut c, 1, 11) {
        None => {}
        stale => panic!("node 1 served {stale:?} after another leader wrote 2"),
    }
    assert_ne!(c.node(1).role(), Role::Leader, "with its missed ticks, node 1 lost its quorum");
    c.heal();
    c.tick_all(30);
    assert_eq!(c.kv(1).get(0), Some(2), "healed, node 1 catches up");
}

/// A follower paused while the leader commits receives the backlog in order
/// on resuming and catches up; its disk writes wait while it is stopped.
#[test]
fn a_paused_follower_catches_up_from_its_backlog() {
    let mut c = Cluster::new(3);
    c.campaign(1);
    c.stabilize();
    c.pause(3);
    for value in 0..5 {
        c.propose(1, kv::put(0, value));
    }
    c.stabilize();
    assert!(c.is_paused(3));
    assert_eq!(c.node(3).log().last_index(), 1, "paused, node 3 received nothing");
    c.resume(3, 0);
    c.stabilize();
    assert_eq!(c.node(3).log().committed(), c.node(1).log().committed());
    assert_eq!(c.kv(3).get(0), Some(4));
}
