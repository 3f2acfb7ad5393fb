//! Scenarios shared by the scenario tests and the mutation tests.

use raft_core::{Config, Message, MessageBody};
use raft_sim::{Cluster, Disk};
use std::collections::BTreeSet;

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
