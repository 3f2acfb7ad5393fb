//! Lease reads in the runtime are judged on a monotonic clock (issue 10,
//! bug 2): a leader that stalled longer than its lease, while the others
//! elected a new leader that committed a write, must not serve a lease read
//! from before the stall. The stall is `Raft::pause` under tokio's paused
//! clock, so every run is the same and takes milliseconds.

mod common;

use common::*;
use raft_core::runtime::{InProcessNetwork, Raft, RaftError, ReadConsistency};
use raft_core::{Config, NodeId, Role};
use raft_storage_mem::{MemKv, MemLogStore};
use std::time::Duration;

fn lease_config(id: NodeId) -> Config {
    Config { lease_reads: true, check_quorum: true, ..config(id) }
}

fn value_of_x(kv: &MemKv) -> Option<String> {
    kv.get("x").map(String::from)
}

/// What the two lease reads at the old leader returned after it resumed:
/// one asked while it was stalled (after `x = 2` was acknowledged), one
/// asked after it resumed.
struct Served {
    queued: Result<Option<String>, RaftError>,
    fresh: Result<Option<String>, RaftError>,
}

/// The leader (holding a fresh lease, `x = 1`) stalls for 3 s and is
/// isolated; the others elect a new leader and commit `x = 2`; the old
/// leader resumes and is asked for lease reads.
async fn stalled_leader_scenario() -> Served {
    let net = InProcessNetwork::new();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start_with(&net, lease_config(id), &[1, 2, 3], MemLogStore::new()).await);
    }
    let l = leader(&nodes).await;
    let old = nodes[l].clone();
    assert_eq!(within("x = 1", old.propose(set("x", "1"))).await, Ok(None));
    // A read confirmed by a quorum just now: the leader holds a lease.
    assert_eq!(
        within("a read", old.read(ReadConsistency::Linearizable, value_of_x)).await,
        Ok(Some("1".into()))
    );
    assert_eq!(
        within("a lease read", old.read(ReadConsistency::Lease, value_of_x)).await,
        Ok(Some("1".into()))
    );

    old.pause();
    net.isolate(l as NodeId + 1);
    let others: Vec<Raft<MemKv>> =
        nodes.iter().enumerate().filter(|(i, _)| *i != l).map(|(_, n)| n.clone()).collect();
    let new = within("a new leader", async {
        loop {
            let new = leader(&others).await;
            match others[new].propose(set("x", "2")).await {
                Ok(_) => return new,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await;
    assert_eq!(others[new].metrics().borrow().role, Role::Leader);
    // A read asked of the stalled leader after x = 2 was acknowledged.
    let queued = tokio::spawn({
        let old = old.clone();
        async move { old.read(ReadConsistency::Lease, value_of_x).await }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!queued.is_finished(), "a paused node answered a read");

    old.resume();
    let queued = within("the queued lease read", queued).await.expect("the task completes");
    let fresh = within("a lease read after the stall", old.read(ReadConsistency::Lease, value_of_x)).await;
    for node in &nodes {
        within("a shutdown", node.shutdown()).await;
    }
    Served { queued, fresh }
}

#[tokio::test(start_paused = true)]
async fn a_leader_stalled_past_its_lease_serves_no_stale_lease_read() {
    let served = stalled_leader_scenario().await;
    for (which, result) in [("queued", served.queued), ("fresh", served.fresh)] {
        // It may refuse (it is no longer leader, or cannot confirm), or
        // serve what the cluster holds; never the value overwritten while
        // it stalled.
        assert_ne!(result, Ok(Some("1".into())), "the {which} lease read at the stalled leader was stale");
    }
}

/// The check above is not vacuous: with the runtime counting timer firings
/// as ticks (the old behaviour), the stalled leader serves `x = 1`. Run with
/// `RUSTFLAGS="--cfg raft_mutation"`. (Mutations are per thread: the
/// current-thread runtime runs every node on this one.)
#[cfg(raft_mutation)]
#[tokio::test(start_paused = true)]
async fn counting_timer_firings_as_ticks_is_caught() {
    use raft_core::mutation::{self, Mutation};
    mutation::set(Some(Mutation::LeaseOnLogicalTicksOnly));
    let served = stalled_leader_scenario().await;
    mutation::set(None);
    let stale = [&served.queued, &served.fresh].iter().any(|r| **r == Ok(Some("1".into())));
    assert!(stale, "the mutation survived: {:?} {:?}", served.queued, served.fresh);
}
