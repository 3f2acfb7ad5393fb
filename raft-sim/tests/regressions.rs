//! Seeds that once failed, kept as named tests. Each names what went wrong;
//! the scenario tests hold deterministic scripts of the same situations, so
//! the cases stay covered even if a change to the simulator's schedule makes
//! a seed play out differently.

use raft_sim::run_seed;

fn passes(seed: u64) {
    if let Err(failure) = run_seed(seed) {
        panic!("{failure}");
    }
}

/// A leader demoted itself and lost leadership before C_new committed; the
/// remaining voter needed its vote under the joint configuration, and it did
/// not campaign (thesis 4.2.2). Script:
/// `a_removed_leader_still_campaigns_until_the_new_configuration_commits`.
#[test]
fn seed_1179_removed_leader_campaigns_until_c_new_commits() {
    passes(1179);
}

/// The durability checker judged entries committed under a just-appended
/// C_new by the older, committed joint configuration: a checker bug.
#[test]
fn seed_2960_entries_committed_under_an_appended_configuration() {
    passes(2960);
}

/// Tiny message budgets and a slow network offered more load than the
/// cluster could replicate, so no recovery bound could hold: clients now
/// propose only while the leader's uncommitted backlog is bounded.
#[test]
fn seed_160_overload_with_one_entry_per_message() {
    passes(160);
}

/// After membership changes left a single voter, it led term 5 on its own
/// vote before that vote was durable, crashed, forgot it, and voted for
/// another node in term 5. Script:
/// `a_single_voter_leads_only_once_its_own_vote_is_durable`.
#[test]
fn seed_3980_single_voter_leads_only_once_its_vote_is_durable() {
    passes(3980);
}

/// The durability checker asked whether the holders of a committed entry
/// formed a quorum of the joint configuration, where what matters is that
/// they meet every quorum of it (and of every newer configuration, including
/// one on a crashed leader's disk: seed 1107).
#[test]
fn seed_685_holders_meet_every_quorum_of_a_joint_configuration() {
    passes(685);
}

/// See `seed_685_holders_meet_every_quorum_of_a_joint_configuration`.
#[test]
fn seed_1107_configuration_on_a_crashed_leaders_disk() {
    passes(1107);
}
