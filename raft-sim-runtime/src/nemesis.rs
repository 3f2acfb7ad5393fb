//! The fault schedule: from its own seeded stream, the nemesis crashes and
//! restarts nodes (the leader among them, or a majority at once), pauses and resumes them (the
//! leader among them, for longer than an election timeout), partitions the
//! network (both ways, one way, around the leader), makes it lossy, slow and
//! duplicating, moves leadership, and removes voters and adds them back,
//! while the clients run. Then it heals everything.

use crate::cluster::Cluster;
use crate::net::Faults;
use raft_core::NodeId;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Injects faults until `until` (then see [`heal`]). Restarts happen in
/// tasks of their own, so the schedule goes on while a node is down.
pub async fn run(cluster: Arc<Cluster>, seed: u64, until: Instant) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    loop {
        let wait = rng.random_range(50..500);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if Instant::now() >= until {
            break;
        }
        step(&cluster, &mut rng).await;
    }
}

/// One fault, chosen at random.
async fn step(cluster: &Arc<Cluster>, rng: &mut ChaCha8Rng) {
    let ids = cluster.ids();
    let leader = cluster.leader().map(|(id, _)| id);
    let mut faults = cluster.network.faults();
    match rng.random_range(0..12) {
        0 | 1 => {
            // A crash: of the leader half the time.
            let victim = match leader {
                Some(leader) if rng.random_bool(0.5) => leader,
                _ => *ids.choose(rng).unwrap_or(&1),
            };
            cluster.crash(victim);
            let downtime = Duration::from_millis(rng.random_range(10..1500));
            let cluster = cluster.clone();
            tokio::spawn(async move {
                tokio::time::sleep(downtime).await;
                if let Err(error) = cluster.start(victim).await {
                    cluster.trace.log(error);
                }
            });
            return;
        }
        2 => {
            let mut shuffled = ids.clone();
            shuffled.shuffle(rng);
            let (side, other) = shuffled.split_at(rng.random_range(1..ids.len()));
            faults.cut = cut_between(side, other, true);
            cluster.trace.log(format_args!("partition {side:?} | {other:?}"));
        }
        3 => {
            let Some(leader) = leader else { return };
            let others: Vec<NodeId> = ids.iter().copied().filter(|&id| id != leader).collect();
            faults.cut = cut_between(&[leader], &others, true);
            cluster.trace.log(format_args!("leader {leader} isolated"));
        }
        4 => {
            // One-way cuts: a node that hears but is not heard, or the reverse.
            for _ in 0..rng.random_range(1..=3) {
                let from = *ids.choose(rng).unwrap_or(&1);
                let to = *ids.choose(rng).unwrap_or(&1);
                if from != to {
                    faults.cut.insert((from, to));
                    cluster.trace.log(format_args!("link {from} -> {to} cut"));
                }
            }
        }
        5 => {
            faults.loss = rng.random_range(0.0..0.3);
            faults.duplicate = rng.random_range(0.0..0.2);
            let slowest = rng.random_range(2..60);
            faults.delay = (Duration::from_millis(1), Duration::from_millis(slowest));
            cluster.trace.log(format_args!(
                "network: loss {:.2}, duplicates {:.2}, delay 1..{slowest}ms",
                faults.loss, faults.duplicate
            ));
        }
        6 => {
            faults = Faults::healthy();
            cluster.trace.log("network healed");
        }
        7 | 8 => {
            // A pause longer than an election timeout (100 to 200 ms), of
            // the leader half the time: the others elect a new leader while
            // the paused one still believes it leads.
            let victim = match leader {
                Some(leader) if rng.random_bool(0.5) => leader,
                _ => *ids.choose(rng).unwrap_or(&1),
            };
            let stall = Duration::from_millis(rng.random_range(50..1500));
            if cluster.pause(victim) {
                let cluster = cluster.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(stall).await;
                    cluster.resume(victim);
                });
            }
            return;
        }
        9 => {
            // A power cut: a majority (or everyone) crashes at the same
            // instant, losing every write its disks had not acknowledged, and
            // comes back together. Only correlated crashes lose what a
            // follower acknowledged before it was durable.
            let mut victims = ids.clone();
            victims.shuffle(rng);
            victims.truncate(rng.random_range(ids.len() / 2 + 1..=ids.len()));
            victims.sort_unstable();
            cluster.trace.log(format_args!("power cut: {victims:?}"));
            for &victim in &victims {
                cluster.crash(victim);
            }
            let downtime = Duration::from_millis(rng.random_range(10..500));
            let cluster = cluster.clone();
            tokio::spawn(async move {
                tokio::time::sleep(downtime).await;
                for victim in victims {
                    if let Err(error) = cluster.start(victim).await {
                        cluster.trace.log(error);
                    }
                }
            });
            return;
        }
        10 => {
            // A membership change: a voter out, and back in a while later.
            let victim = *ids.choose(rng).unwrap_or(&1);
            let gap = Duration::from_millis(rng.random_range(50..800));
            tokio::spawn(crate::membership::cycle(cluster.clone(), victim, gap));
            return;
        }
        _ => {
            let (Some(leader), Some(&target)) = (leader, ids.choose(rng)) else { return };
            if let Some(raft) = cluster.node(leader).filter(|_| target != leader) {
                let result = raft.transfer_leadership(target).await;
                cluster.trace.log(format_args!("leadership transfer {leader} -> {target}: {result:?}"));
            }
            return;
        }
    }
    cluster.network.set_faults(faults);
}

/// Every link from `side` to `other` (and back, if `both_ways`).
fn cut_between(
    side: &[NodeId],
    other: &[NodeId],
    both_ways: bool,
) -> std::collections::BTreeSet<(NodeId, NodeId)> {
    let mut cut = std::collections::BTreeSet::new();
    for &a in side {
        for &b in other {
            cut.insert((a, b));
            if both_ways {
                cut.insert((b, a));
            }
        }
    }
    cut
}

/// Ends every fault: a healthy network, every paused node resumed, and every
/// crashed node restarted.
pub async fn heal(cluster: &Cluster) -> Result<(), String> {
    cluster.network.set_faults(Faults::healthy());
    cluster.trace.log("healed: network healthy, resuming paused and restarting crashed nodes");
    for id in cluster.paused() {
        cluster.resume(id);
    }
    for id in cluster.crashed() {
        cluster.start(id).await?;
    }
    let deadline = tokio::time::Instant::now() + crate::sim::LIVENESS;
    while !crate::membership::restore(cluster).await {
        if tokio::time::Instant::now() >= deadline {
            let within = crate::sim::LIVENESS;
            return Err(format!(
                "liveness: not every node a voter again within {within:?}:{}",
                cluster.describe()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
