//! Leader election (section 5.2) with pre-vote (thesis section 9.6).
//!
//! A follower whose election timer fires first asks, without changing its term,
//! whether a quorum would vote for it (the pre-vote round); only if so does it
//! increment its term and ask for real votes. A node that was cut off therefore
//! cannot force the cluster into a new term when it returns: its pre-votes are
//! refused by nodes that still hear from the leader.
//!
//! A vote is granted at most once per term (the vote is persisted before the
//! response is sent) and only to a candidate whose log is at least as up to
//! date as the voter's (section 5.4.1), which is what gives Leader Completeness.

use crate::mutation::{mutated, Mutation};
use crate::protocol::{Campaign, Core, Transition};
use crate::quorum::VoteResult;
use crate::{MessageBody, NodeId, Term, VoteRequest, VoteResponse};
use std::collections::BTreeMap;

/// The state of a node campaigning, in a pre-vote round or a real election.
#[derive(Debug)]
pub(crate) struct Candidate {
    /// Responses so far, including the candidate's own vote for itself.
    votes: BTreeMap<NodeId, bool>,
    /// Whether this is a pre-vote round (the term has not been incremented).
    pre_vote: bool,
}

impl Candidate {
    /// Starts a round: asks every other voter for its (pre-)vote. The caller
    /// has already incremented the term and voted for itself for a real
    /// election. Returns the transition if the round is already decided (a
    /// single-voter cluster).
    pub(crate) fn start(core: &mut Core, campaign: Campaign) -> (Self, Option<Transition>) {
        let pre_vote = campaign == Campaign::PreVote;
        core.leader = None;
        core.reset_election_timer();
        let request = VoteRequest {
            last_log_index: core.log.last_index(),
            last_log_term: core.log.last_term(),
            leadership_transfer: campaign == Campaign::Transfer,
        };
        let term = if pre_vote { core.term() + 1 } else { core.term() };
        // Sorted order, so runs are deterministic.
        let peers: Vec<NodeId> = core.quorum.ids().filter(|&id| id != core.id).collect();
        for peer in peers {
            let body = if pre_vote { MessageBody::PreVote(request) } else { MessageBody::Vote(request) };
            core.send_with_term(peer, term, body);
        }
        let candidate = Self { votes: BTreeMap::from([(core.id, true)]), pre_vote };
        let transition = candidate.outcome(core);
        (candidate, transition)
    }

    /// Records a pre-vote response. A grant counts only if it is for the term
    /// this round campaigns for; a refusal always counts (at worst it ends the
    /// round early, and the node tries again at its next timeout).
    pub(crate) fn record_pre_vote(
        &mut self,
        core: &Core,
        from: NodeId,
        term: Term,
        response: VoteResponse,
    ) -> Option<Transition> {
        debug_assert!(self.pre_vote);
        if response.granted && term != core.term() + 1 {
            return None;
        }
        self.record(core, from, response.granted)
    }

    /// Records a vote response of the current term.
    pub(crate) fn record_vote(
        &mut self,
        core: &Core,
        from: NodeId,
        response: VoteResponse,
    ) -> Option<Transition> {
        debug_assert!(!self.pre_vote);
        self.record(core, from, response.granted)
    }

    fn record(&mut self, core: &Core, from: NodeId, granted: bool) -> Option<Transition> {
        if !core.quorum.contains(from) {
            return None;
        }
        self.votes.entry(from).or_insert(granted);
        self.outcome(core)
    }

    /// Won: move on to the election (or leadership). Lost: back to follower.
    ///
    /// A candidate takes leadership only once its own term and vote are
    /// durable. Other voters' grants arrive only after that (the requests wait
    /// for the write), but a candidate whose own vote is a quorum (a single
    /// voter) could otherwise lead a term it may forget in a crash, and then
    /// vote for another node in the same term.
    pub(crate) fn outcome(&self, core: &Core) -> Option<Transition> {
        match core.quorum.vote_result(|id| self.votes.get(&id).copied()) {
            VoteResult::Won if self.pre_vote => Some(Transition::Candidate(Campaign::Election)),
            VoteResult::Won if !core.gate.hard_state_durable() => None,
            VoteResult::Won => Some(Transition::Leader),
            VoteResult::Lost => Some(Transition::Follower { term: core.term(), leader: None }),
            VoteResult::Pending => None,
        }
    }
}

/// Answers a (pre-)vote request of a term at least our own (the caller has
/// handled newer terms and leader stickiness).
///
/// A node may vote for `from` if it already did in this term, or has voted
/// for nobody and knows no leader in this term; a pre-vote for a later term is
/// granted on the log check alone, since it commits the voter to nothing. A
/// granted pre-vote echoes the requested term so the pre-candidate can tell it
/// from stale grants; a refusal carries our own term.
pub(crate) fn handle_vote_request(
    core: &mut Core,
    from: NodeId,
    term: Term,
    request: VoteRequest,
    pre_vote: bool,
) {
    let can_vote = core.vote() == Some(from)
        || (core.vote().is_none() && core.leader.is_none())
        || (pre_vote && term > core.term());
    // The promise to a leader holds whatever happened to the term since: a
    // follower that adopted a newer term from a stray reply, and so knows no
    // leader and has no vote in it, must still refuse a new vote until the
    // promise ends (the caller checked only requests of newer terms).
    let promised =
        !pre_vote && !request.leadership_transfer && core.vote() != Some(from) && core.in_promise();
    let granted = can_vote && !promised && vote_allowed_by_log(core, request);
    if pre_vote {
        let response_term = if granted { term } else { core.term() };
        core.send_with_term(from, response_term, MessageBody::PreVoteResponse(VoteResponse { granted }));
    } else {
        if granted {
            core.vote_for(from);
            core.reset_election_timer();
        }
        core.send(from, MessageBody::VoteResponse(VoteResponse { granted }));
    }
}

/// The up-to-date check of section 5.4.1.
fn vote_allowed_by_log(core: &Core, request: VoteRequest) -> bool {
    core.log.is_up_to_date(request.last_log_index, request.last_log_term)
        || mutated(Mutation::VoteWithoutLogCheck)
}
