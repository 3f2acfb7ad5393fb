//! The core task: owns the `RawNode`, takes requests and messages, and hands
//! each `Ready`'s parts to the other tasks. It is the only task that touches
//! the protocol state, so nothing here takes a lock.

use super::clock::Clock;
use super::envelope::{Envelope, Forward, ForwardOutcome, Forwarded};
use super::forward::{ForwardFilter, ForwardIds, Refusal, Verdict};
use super::inputs::{task_failure, Inputs, Wake};
use super::*;
use std::ops::ControlFlow;
use tokio::time::Instant;

/// Why the core task's loop ended: the caller of a shutdown to tell once
/// the node has stopped, or the failure that stopped it (neither: every
/// handle is gone).
struct Stop {
    shutdown: Option<oneshot::Sender<()>>,
    failure: Option<Failure>,
}

/// What the core task shares with the other tasks and the handles.
pub(super) struct DriverLinks<SM: StateMachine> {
    pub writes: mpsc::UnboundedSender<WriteJob>,
    pub apply: mpsc::UnboundedSender<ApplyJob<SM>>,
    pub metrics: watch::Sender<Metrics>,
    pub counters: Counters,
    pub failure: Arc<std::sync::OnceLock<Failure>>,
    pub gate: PauseGate,
}

/// The core task's state: drives the `RawNode` (named apart from the
/// protocol's own `Core`, the state every role shares).
pub(super) struct Driver<SM: StateMachine, T: Transport> {
    raw: RawNode,
    transport: Arc<T>,
    writes: mpsc::UnboundedSender<WriteJob>,
    apply: mpsc::UnboundedSender<ApplyJob<SM>>,
    metrics: watch::Sender<Metrics>,
    counters: Counters,
    /// Proposals made here, by index, with the term they were made in.
    /// Keyed by index and term: a proposal displaced from this log by a
    /// later leader's entry may still be committed by a node that kept it
    /// (Figure 8), so it waits until its index commits to learn its fate.
    proposals: BTreeMap<(Index, Term), Responder<SM::Response>>,
    /// Proposals forwarded to the leader, by request id, with their deadline
    /// and the node they went to. Ordered maps, here and for reads: callers
    /// are answered in iteration order, which must not depend on a hasher's
    /// random seed (a simulator replays a run from its seed alone).
    forwarded: BTreeMap<u64, (Instant, NodeId, Reply<SM::Response>)>,
    /// Request ids (in a run drawn at random) and read contexts start at a
    /// random point on every start, so that a late answer to a request of an
    /// earlier run of this node cannot be taken for the answer to a new one.
    forward_ids: ForwardIds,
    forward_timeout: Duration,
    /// The forwarded proposals this node took as leader (see [`super::forward`]).
    forward_filter: ForwardFilter,
    /// Since when this node, holding undecided proposals and not leading,
    /// has heard nothing from a leader (see [`Driver::abandon_undecided`]).
    quiet_since: Option<Instant>,
    /// The term of the commit index when proposals of earlier terms beyond
    /// it were last ruled out (see [`Driver::reject_overtaken`]).
    overtaken_term: Term,
    /// Linearizable reads waiting for their read state, with their deadline.
    reads: BTreeMap<u64, (Instant, ReadJob<SM>)>,
    next_read: u64,
    /// The configuration version whose addresses the transport was last told.
    addresses_version: u64,
    /// Where the handles read why the node stopped.
    failure: Arc<std::sync::OnceLock<Failure>>,
    /// What the applier last reported applied.
    applied: Index,
    /// Where the task waits while the node is paused (tests only).
    gate: PauseGate,
    /// Which input queue the core task looks at first, each turn.
    rng: crate::rng::Rng,
}

impl<SM: StateMachine, T: Transport> Driver<SM, T> {
    pub(super) fn new(
        raw: RawNode,
        transport: Arc<T>,
        links: DriverLinks<SM>,
        runtime: &RuntimeConfig,
        seed: u64,
    ) -> Self {
        let DriverLinks { writes, apply, metrics, counters, failure, gate } = links;
        let applied = raw.log().applied();
        let mut rng = crate::rng::Rng::new(seed ^ 0x5EED_F0A1_D5EE_D5EE);
        let addresses_version = raw.log().membership_version();
        let forward_filter = ForwardFilter::new(raw.term());
        Self {
            raw,
            transport,
            writes,
            apply,
            metrics,
            counters,
            proposals: BTreeMap::new(),
            forwarded: BTreeMap::new(),
            forward_ids: ForwardIds::new(rng.next_u64()),
            forward_timeout: runtime.forward_timeout,
            forward_filter,
            quiet_since: None,
            overtaken_term: 0,
            reads: BTreeMap::new(),
            next_read: rng.next_u64() >> 1,
            addresses_version,
            failure,
            applied,
            gate,
            rng,
        }
    }

    /// The core task: takes one input at a time (with what is queued behind
    /// it), acts on it, and hands the `Ready` it made to the other tasks,
    /// until a shutdown or a failure; then stops in order ([`Driver::stop`]).
    pub(super) async fn run(mut self, tick: Duration, mut inputs: Inputs<SM>) {
        let mut clock = Clock::new(tick, self.raw.config().election_timeout_max);
        let next_tick = tokio::time::sleep_until(clock.next_due());
        tokio::pin!(next_tick);
        let stop = loop {
            let first = self.rng.below(3);
            let wake = std::future::poll_fn(|cx| inputs.poll_next(next_tick.as_mut(), first, cx)).await;
            // Taken from its queue, the input waits here while the node is
            // paused, as it would in a stopped process.
            self.gate.pass().await;
            // Every tick due by now is delivered before the input is acted
            // on (a read checks its lease on a clock read after it was
            // dequeued), and again before each input taken with it.
            self.catch_up(&mut clock);
            if let ControlFlow::Break(stop) = self.on_wake(wake, &mut inputs, &mut clock) {
                break stop;
            }
            self.process_ready();
            if next_tick.deadline() != clock.next_due() {
                next_tick.as_mut().reset(clock.next_due());
            }
        };
        self.stop(inputs, stop).await;
    }

    /// Acts on one input, and on what is queued behind it of the same kind
    /// (batched into one `Ready`, but never so much that the other queues
    /// wait behind a busy one). Breaks when the node must stop.
    fn on_wake(&mut self, wake: Wake<SM>, inputs: &mut Inputs<SM>, clock: &mut Clock) -> ControlFlow<Stop> {
        match wake {
            Wake::Tick => {}
            Wake::Ended(task, ended) => {
                let failure = inputs.reported_failure().unwrap_or_else(|| task_failure(task, ended));
                return ControlFlow::Break(Stop { shutdown: None, failure: Some(failure) });
            }
            Wake::Envelope(envelope) => {
                self.receive(envelope);
                for _ in 0..MAX_BATCH {
                    if self.gate.is_paused() {
                        break;
                    }
                    let Some(envelope) = inputs.inbox.try_recv() else { break };
                    self.catch_up(clock);
                    self.receive(envelope);
                }
            }
            Wake::Request(request) => {
                let Some(request) = request else {
                    return ControlFlow::Break(Stop { shutdown: None, failure: None });
                };
                if let Some(done) = self.handle(request) {
                    return ControlFlow::Break(Stop { shutdown: Some(done), failure: None });
                }
                for _ in 0..MAX_BATCH {
                    if self.gate.is_paused() {
                        break;
                    }
                    let Ok(request) = inputs.requests.try_recv() else { break };
                    self.catch_up(clock);
                    if let Some(done) = self.handle(request) {
                        return ControlFlow::Break(Stop { shutdown: Some(done), failure: None });
                    }
                }
            }
            Wake::Event(event) => match event {
                Event::Persisted(number) => self.raw.on_persisted(number),
                Event::Applied(index) => self.applied = index,
                Event::SnapshotBuilt(snapshot) => {
                    if let Err(error) = self.raw.on_snapshot_built(snapshot) {
                        tracing::warn!(%error, "snapshot not used");
                    }
                }
                Event::Failed(error) => {
                    tracing::error!(%error, "stopping: storage failed");
                    return ControlFlow::Break(Stop { shutdown: None, failure: Some(error) });
                }
            },
        }
        ControlFlow::Continue(())
    }

    /// Stops the node in order: refuses new requests and answers every
    /// waiting caller, lets the writer finish what was acknowledged and
    /// then the applier, and only then reports the node stopped.
    async fn stop(mut self, inputs: Inputs<SM>, stop: Stop) {
        let Inputs { mut requests, inbox, writer, applier, .. } = inputs;
        // Nothing more is read: a restart on this inbox waits for it.
        inbox.stopping();
        let error = match stop.failure {
            Some(error) => {
                tracing::error!(%error, "stopping");
                let _ = self.failure.set(error.clone());
                RaftError::Failed(error)
            }
            None => RaftError::ShutDown,
        };
        // From here on handles are refused at once, before anything reports
        // the node stopped: no request can slip in and go unanswered.
        requests.close();
        self.fail_all(&error);
        // Let the writer finish what was acknowledged, then the applier.
        drop(self.writes);
        writer.finish().await;
        drop(self.apply);
        applier.finish().await;
        while let Ok(request) = requests.try_recv() {
            fail_request(request, &error);
        }
        tracing::info!("stopped");
        if let Some(done) = stop.shutdown {
            let _ = done.send(());
        }
    }

    /// Delivers every tick due by now (see [`Clock`]), then expires what
    /// waited too long.
    fn catch_up(&mut self, clock: &mut Clock) {
        let due = clock.due();
        if due == 0 {
            return;
        }
        for _ in 0..due {
            self.raw.tick();
        }
        self.expire_waiting();
    }

    /// Steps a peer's Raft message, or handles a forwarded request here
    /// (the protocol does not see those).
    fn receive(&mut self, envelope: Envelope) {
        self.counters.messages_received.increment(1);
        tracing::trace!(from = envelope.from(), term = envelope.term(), kind = envelope.kind(), "receive");
        let message = match envelope {
            Envelope::Raft(message) => message,
            Envelope::Forward(forwarded) => return self.handle_forwarded(forwarded),
        };
        let from = message.from;
        if let Err(error) = self.raw.step(message) {
            // A refused message changes nothing; peers cannot hurt us.
            tracing::debug!(%error, "message refused");
        } else if self.raw.leader() == Some(from) {
            self.quiet_since = None;
        }
    }

    /// Handles a forwarded proposal, or the answer to one this node forwarded.
    fn handle_forwarded(&mut self, forwarded: Forwarded) {
        let Forwarded { from, term, body, .. } = forwarded;
        match body {
            Forward::Proposal { id, command } => self.receive_forward(from, term, id, command),
            Forward::Response { id, outcome } => {
                // Only the node the forward went to can answer it; an answer
                // from anyone else leaves it waiting for the real one.
                let from_target = self.forwarded.get(&id).is_some_and(|&(_, to, _)| to == from);
                if let Some((_, _, reply)) = from_target.then(|| self.forwarded.remove(&id)).flatten() {
                    let result = outcome_to_result(outcome).map_err(|error| match error {
                        RaftError::NotLeader { leader, .. } => {
                            let address = leader.and_then(|l| self.raw.membership().address(l));
                            RaftError::NotLeader { leader, address: address.map(String::from) }
                        }
                        other => other,
                    });
                    let _ = reply.send(result);
                }
            }
        }
    }

    /// Handles one request; returns the shutdown responder if it asks to stop.
    fn handle(&mut self, request: Request<SM>) -> Option<oneshot::Sender<()>> {
        match request {
            Request::Propose { command, forward, reply } => match self.raw.leader() {
                Some(leader) if forward && leader != self.raw.id() && self.raw.role() != Role::Leader => {
                    self.forward(leader, command, reply);
                }
                _ => self.propose(command, Responder::Local(reply)),
            },
            Request::Read(ReadConsistency::Stale, deadline, job) => {
                let _ = self.apply.send(ApplyJob::Read(0, deadline, job));
            }
            Request::Read(consistency, deadline, job) => {
                let mode =
                    if consistency == ReadConsistency::Lease { ReadMode::Lease } else { ReadMode::ReadIndex };
                self.next_read = self.next_read.wrapping_add(1);
                match self.raw.read_index(self.next_read, mode) {
                    Ok(()) => {
                        self.reads.insert(self.next_read, (deadline, job));
                    }
                    Err(ReadError::NoLeader) => job(Err(self.not_leader())),
                    Err(error) => job(Err(RaftError::Read(error))),
                }
            }
            Request::Reconfigure(change, reply) => {
                let _ = reply.send(self.reconfigure(change));
            }
            Request::Transfer(target, reply) => {
                let _ = reply.send(self.raw.transfer_leadership(target).map_err(RaftError::from));
            }
            Request::Snapshot(reply) => {
                let _ = self.apply.send(ApplyJob::BuildSnapshot(Some(reply)));
            }
            Request::Shutdown(done) => return Some(done),
        }
        None
    }

    fn propose(&mut self, command: Bytes, responder: Responder<SM::Response>) {
        match self.raw.propose(command) {
            Ok(id) => {
                self.counters.proposals.increment(1);
                // A proposal of an earlier term at this index stays: the
                // entry that replaced it here may lose to one that kept it.
                self.proposals.insert((id.index, id.term), responder);
            }
            Err(crate::ProposeError::NotLeader { .. } | crate::ProposeError::TransferInProgress { .. }) => {
                let error = self.not_leader();
                self.respond(responder, Err(error));
            }
            // Refused at the handle already; a forwarded one may get here.
            Err(error @ crate::ProposeError::CommandTooLarge { .. }) => {
                self.respond(responder, Err(RaftError::Encode(error.to_string())));
            }
        }
    }

    fn forward(&mut self, leader: NodeId, command: Bytes, reply: Reply<SM::Response>) {
        let id = self.forward_ids.next_id();
        self.forwarded.insert(id, (Instant::now() + self.forward_timeout, leader, reply));
        self.counters.forwarded.increment(1);
        self.send(Envelope::Forward(Forwarded {
            from: self.raw.id(),
            to: leader,
            term: self.raw.term(),
            body: Forward::Proposal { id, command },
        }));
    }

    /// Proposes a forwarded proposal if it is valid here and the first copy
    /// seen (see [`super::forward`]), drops a copy of one taken, and answers
    /// any other.
    fn receive_forward(&mut self, from: NodeId, term: Term, id: u64, command: Bytes) {
        let leading = self.raw.role() == Role::Leader;
        let responder = Responder::Remote { node: from, id };
        match self.forward_filter.check(from, id, term, self.raw.term(), leading) {
            Verdict::Accept => self.propose(command, responder),
            Verdict::Duplicate => tracing::debug!(from, id, "duplicate forwarded proposal dropped"),
            Verdict::Refuse(refusal) => {
                tracing::debug!(from, id, term, ?refusal, "forwarded proposal refused");
                let error = match refusal {
                    Refusal::NotLeader => self.not_leader(),
                    Refusal::NotApplied => RaftError::NotApplied,
                    Refusal::Unknown => RaftError::OutcomeUnknown,
                };
                self.respond(responder, Err(error));
            }
        }
    }

    /// Forwarded proposals unanswered for too long may have been lost on
    /// the way there or back: their outcome is unknown. Reads not confirmed
    /// in time fail, and nothing happened.
    fn expire_waiting(&mut self) {
        if self.forwarded.is_empty() && self.reads.is_empty() {
            return;
        }
        let now = Instant::now();
        let expired: Vec<u64> =
            self.forwarded.iter().filter(|(_, (deadline, ..))| *deadline <= now).map(|(&id, _)| id).collect();
        for id in expired {
            if let Some((_, _, reply)) = self.forwarded.remove(&id) {
                let _ = reply.send(Err(RaftError::OutcomeUnknown));
            }
        }
        let expired: Vec<u64> =
            self.reads.iter().filter(|(_, (deadline, _))| *deadline <= now).map(|(&ctx, _)| ctx).collect();
        for ctx in expired {
            if let Some((_, job)) = self.reads.remove(&ctx) {
                job(Err(RaftError::Timeout));
            }
        }
    }

    fn reconfigure(&mut self, change: MembershipChange) -> Result<LogId, RaftError> {
        let current = self.raw.membership();
        if self.raw.role() != Role::Leader {
            return Err(self.not_leader());
        }
        if current.is_joint() {
            return Err(MembershipChangeError::ChangeInProgress.into());
        }
        let target = match change {
            MembershipChange::Set { voters, learners } => {
                Membership { voters, learners, ..Membership::default() }
            }
            MembershipChange::AddLearner { id, address } => {
                let mut target = current.clone();
                if !target.is_voter(id) {
                    target.learners.insert(id);
                }
                if let Some(address) = address {
                    target.addresses.insert(id, address);
                }
                target
            }
            MembershipChange::Remove(id) => {
                let mut target = current.clone();
                target.voters.remove(&id);
                target.learners.remove(&id);
                target
            }
        };
        tracing::info!(voters = ?target.voters, learners = ?target.learners, "changing membership");
        Ok(self.raw.reconfigure(target)?)
    }

    fn not_leader(&self) -> RaftError {
        let leader = self.raw.leader().filter(|&l| l != self.raw.id());
        let address = leader.and_then(|l| self.raw.membership().address(l)).map(String::from);
        RaftError::NotLeader { leader, address }
    }

    fn respond(&self, responder: Responder<SM::Response>, result: Result<SM::Response, RaftError>) {
        respond(&*self.transport, self.raw.id(), responder, result);
    }

    fn send(&self, envelope: Envelope) {
        self.counters.messages_sent.increment(1);
        tracing::trace!(to = envelope.to(), term = envelope.term(), kind = envelope.kind(), "send");
        self.transport.send(envelope);
    }

    /// Hands everything the node produced to the tasks that act on it.
    fn process_ready(&mut self) {
        while self.raw.has_ready() {
            let ready = self.raw.ready();
            for message in ready.messages {
                self.send(Envelope::Raft(message));
            }
            if let Some(install) = &ready.snapshot {
                // Proposals the snapshot covers were decided elsewhere, unseen here.
                while let Some(first) = self.proposals.first_entry() {
                    if first.key().0 > install.last().index {
                        break;
                    }
                    let responder = first.remove();
                    self.respond(responder, Err(RaftError::OutcomeUnknown));
                }
            }
            let write = LogWrite {
                hard_state: ready.hard_state,
                snapshot: ready.snapshot,
                entries: ready.entries,
                purge_to: ready.purge_to,
            };
            let job = WriteJob { number: ready.number, write, messages: ready.persisted_messages };
            let _ = self.writes.send(job);
            if !ready.committed_entries.is_empty() {
                let mut entries = Vec::with_capacity(ready.committed_entries.len());
                for entry in ready.committed_entries {
                    // Entries commit in order, so the proposals up to this
                    // index are the first ones. All but the committed entry
                    // itself can never be applied now (Log Matching).
                    let mut responder = None;
                    while let Some(first) = self.proposals.first_entry() {
                        let key = *first.key();
                        if key.0 > entry.index {
                            break;
                        }
                        let proposal = first.remove();
                        if key == (entry.index, entry.term) {
                            responder = Some(proposal);
                        } else {
                            self.respond(proposal, Err(RaftError::NotApplied));
                        }
                    }
                    entries.push((entry, responder));
                }
                let _ = self.apply.send(ApplyJob::Entries(entries));
            }
            for state in ready.read_states {
                if let Some((deadline, job)) = self.reads.remove(&state.ctx) {
                    let _ = self.apply.send(ApplyJob::Read(state.index, deadline, job));
                }
            }
            if ready.request_snapshot {
                let _ = self.apply.send(ApplyJob::BuildSnapshot(None));
            }
            if let Some(soft) = ready.soft_state {
                self.counters.role_changes.increment(1);
                tracing::info!(role = ?soft.role, term = self.raw.term(), leader = ?soft.leader, "role changed");
                // Reads waiting on a leadership that changed may never be confirmed.
                for (_, (_, job)) in std::mem::take(&mut self.reads) {
                    job(Err(self.not_leader()));
                }
            }
        }
        self.reject_overtaken();
        self.abandon_undecided();
        let (raw, applied) = (&self.raw, self.applied);
        self.metrics.send_if_modified(|metrics| metrics.refresh(raw, applied));
        let version = self.raw.log().membership_version();
        if version != self.addresses_version {
            self.addresses_version = version;
            self.transport.update_addresses(&self.raw.membership().addresses);
        }
    }

    /// Answers "not applied" to the proposals beyond the commit index whose
    /// term is earlier than the committed entry's. Every leader from now on
    /// holds that entry (Leader Completeness) and terms never decrease along
    /// a log, so no entry of an earlier term can commit after it: such a
    /// proposal (displaced from this log, say) is decided, though its own
    /// index, which it would otherwise wait for, may not commit for as long
    /// as the cluster stays idle. Proposals are made in the proposer's
    /// current term, never below a committed one, so each commit term needs
    /// checking once.
    fn reject_overtaken(&mut self) {
        let committed = self.raw.log().committed();
        let Some(term) = self.raw.log().term(committed) else { return };
        if term <= self.overtaken_term {
            return;
        }
        self.overtaken_term = term;
        let overtaken: Vec<(Index, Term)> = self
            .proposals
            .range((committed + 1, 0)..)
            .map(|(&key, _)| key)
            .filter(|&(_, proposed_in)| proposed_in < term)
            .collect();
        for key in overtaken {
            if let Some(responder) = self.proposals.remove(&key) {
                self.respond(responder, Err(RaftError::NotApplied));
            }
        }
    }

    /// Answers the proposals waiting here once this node may never learn
    /// their fate. A proposal waits for its index to commit in this node's
    /// log, which only a leader replicating to this node can bring about:
    ///
    /// - A node outside the configuration in force that does not lead (a
    ///   leader that removed itself and stepped down, say) is sent no more of
    ///   the log, since leaders replicate only to members.
    /// - A node that has heard nothing from a leader for `forward_timeout`
    ///   may have been removed without learning it: a deposed leader whose
    ///   successor finished removing it (the entry that removes it goes only
    ///   to the remaining members), or that was cut off while it happened.
    ///   Nothing here can tell that apart from a long election or partition,
    ///   so it gives up as a forwarding follower does after the same time.
    ///
    /// Each proposal beyond the commit index may still be committed by the
    /// members that hold it, so its outcome is unknown, never "not applied";
    /// but its caller (or the follower that forwarded it, which would
    /// otherwise wait out its forward timeout) hears so rather than never.
    /// Those up to the commit index are decided and still answered when
    /// applied.
    fn abandon_undecided(&mut self) {
        let committed = self.raw.log().committed();
        let undecided = self.proposals.last_key_value().is_some_and(|(&(index, _), _)| index > committed);
        if !undecided || self.raw.role() == Role::Leader {
            self.quiet_since = None;
            return;
        }
        let quiet_since = *self.quiet_since.get_or_insert_with(Instant::now);
        let removed = !self.raw.membership().contains(self.raw.id());
        if !removed && quiet_since.elapsed() < self.forward_timeout {
            return;
        }
        self.quiet_since = None;
        let undecided = self.proposals.split_off(&(committed + 1, 0));
        tracing::info!(
            waiting = undecided.len(),
            removed,
            "no leader to decide them: proposals' outcome unknown"
        );
        for (_, responder) in undecided {
            self.respond(responder, Err(RaftError::OutcomeUnknown));
        }
    }

    fn fail_all(&mut self, error: &RaftError) {
        let unknown = if *error == RaftError::ShutDown { RaftError::OutcomeUnknown } else { error.clone() };
        for (_, responder) in std::mem::take(&mut self.proposals) {
            self.respond(responder, Err(unknown.clone()));
        }
        for (_, (_, _, reply)) in std::mem::take(&mut self.forwarded) {
            let _ = reply.send(Err(unknown.clone()));
        }
        for (_, (_, job)) in std::mem::take(&mut self.reads) {
            job(Err(error.clone()));
        }
    }
}

/// Tells whoever waits for a proposal what became of it: a local caller
/// directly, a node that forwarded it by a message.
pub(super) fn respond<R: Serialize>(
    transport: &impl Transport,
    from: NodeId,
    responder: Responder<R>,
    result: Result<R, RaftError>,
) {
    match responder {
        Responder::Local(reply) => {
            let _ = reply.send(result);
        }
        Responder::Remote { node, id } => {
            let outcome = match result {
                Ok(response) => match crate::codec::encode(&response) {
                    Ok(bytes) => ForwardOutcome::Applied(Bytes::from(bytes)),
                    Err(error) => ForwardOutcome::ResponseLost(error.to_string()),
                },
                Err(RaftError::NotLeader { leader, .. }) => ForwardOutcome::NotLeader { leader },
                Err(RaftError::NotApplied) => ForwardOutcome::NotApplied,
                Err(RaftError::Encode(reason)) => ForwardOutcome::Refused(reason),
                Err(_) => ForwardOutcome::OutcomeUnknown,
            };
            let body = Forward::Response { id, outcome };
            transport.send(Envelope::Forward(Forwarded { from, to: node, term: 0, body }));
        }
    }
}

/// What a forwarded proposal's outcome means to its caller.
fn outcome_to_result<R: DeserializeOwned>(outcome: ForwardOutcome) -> Result<R, RaftError> {
    match outcome {
        ForwardOutcome::Applied(bytes) => {
            crate::codec::decode(&bytes).map_err(|e| RaftError::Response(e.to_string()))
        }
        ForwardOutcome::ResponseLost(reason) => Err(RaftError::Response(reason)),
        ForwardOutcome::NotLeader { leader } => Err(RaftError::NotLeader { leader, address: None }),
        ForwardOutcome::NotApplied => Err(RaftError::NotApplied),
        ForwardOutcome::OutcomeUnknown => Err(RaftError::OutcomeUnknown),
        ForwardOutcome::Refused(reason) => Err(RaftError::Encode(reason)),
    }
}

fn fail_request<SM: StateMachine>(request: Request<SM>, error: &RaftError) {
    match request {
        Request::Propose { reply, .. } => {
            let _ = reply.send(Err(error.clone()));
        }
        Request::Read(_, _, job) => job(Err(error.clone())),
        Request::Reconfigure(_, reply) | Request::Snapshot(reply) => {
            let _ = reply.send(Err(error.clone()));
        }
        Request::Transfer(_, reply) => {
            let _ = reply.send(Err(error.clone()));
        }
        Request::Shutdown(done) => {
            let _ = done.send(());
        }
    }
}
