//! The core task: owns the `RawNode`, takes requests and messages, and hands
//! each `Ready`'s parts to the other tasks. It is the only task that touches
//! the protocol state, so nothing here takes a lock.

use super::*;
use crate::{Forward, ForwardOutcome, MessageBody};
use tokio::time::Instant;

/// The core task's state.
pub(super) struct Core<SM: StateMachine, T: Transport> {
    raw: RawNode,
    transport: Arc<T>,
    writes: mpsc::UnboundedSender<WriteJob>,
    apply: mpsc::UnboundedSender<ApplyJob<SM>>,
    metrics: watch::Sender<Metrics>,
    counters: Counters,
    /// Proposals made here, by index, with the term they were made in.
    proposals: BTreeMap<Index, (Term, Responder<SM::Response>)>,
    /// Proposals forwarded to the leader, by request id, with their deadline.
    forwarded: HashMap<u64, (Instant, Reply<SM::Response>)>,
    next_forward: u64,
    forward_timeout: Duration,
    /// Linearizable reads waiting for their read state.
    reads: HashMap<u64, ReadJob<SM>>,
    next_read: u64,
    /// What the applier last reported applied.
    applied: Index,
}

impl<SM: StateMachine, T: Transport> Core<SM, T> {
    pub(super) fn new(
        raw: RawNode,
        transport: Arc<T>,
        writes: mpsc::UnboundedSender<WriteJob>,
        apply: mpsc::UnboundedSender<ApplyJob<SM>>,
        metrics: watch::Sender<Metrics>,
        counters: Counters,
        forward_timeout: Duration,
    ) -> Self {
        let applied = raw.log().applied();
        Self {
            raw,
            transport,
            writes,
            apply,
            metrics,
            counters,
            proposals: BTreeMap::new(),
            forwarded: HashMap::new(),
            next_forward: 0,
            forward_timeout,
            reads: HashMap::new(),
            next_read: 0,
            applied,
        }
    }

    pub(super) async fn run(
        mut self,
        tick: Duration,
        mut requests: mpsc::Receiver<Request<SM>>,
        mut inbound: mpsc::Receiver<Message>,
        mut events: mpsc::UnboundedReceiver<Event>,
        writer: tokio::task::JoinHandle<()>,
        applier: tokio::task::JoinHandle<()>,
    ) {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failure = None;
        let shutdown = loop {
            tokio::select! {
                _ = ticker.tick() => {
                    self.raw.tick();
                    self.expire_forwarded();
                }
                Some(message) = inbound.recv() => {
                    self.receive(message);
                    // Batch what is queued, but never so much that requests,
                    // ticks and completions wait behind a busy network.
                    for _ in 0..MAX_BATCH {
                        let Ok(message) = inbound.try_recv() else { break };
                        self.receive(message);
                    }
                }
                request = requests.recv() => {
                    let Some(request) = request else { break None };
                    if let Some(done) = self.handle(request) {
                        break Some(done);
                    }
                    // Batch queued requests into one Ready.
                    let mut done = None;
                    for _ in 0..MAX_BATCH {
                        let Ok(request) = requests.try_recv() else { break };
                        if let Some(d) = self.handle(request) {
                            done = Some(d);
                            break;
                        }
                    }
                    if done.is_some() {
                        break done;
                    }
                }
                Some(event) = events.recv() => match event {
                    Event::Persisted(number) => self.raw.on_persisted(number),
                    Event::Applied(index) => self.applied = index,
                    Event::SnapshotBuilt(snapshot) => {
                        if let Err(error) = self.raw.on_snapshot_built(snapshot) {
                            tracing::warn!(%error, "snapshot not used");
                        }
                    }
                    Event::Failed(error) => {
                        tracing::error!(%error, "stopping: storage failed");
                        failure = Some(error);
                        break None;
                    }
                },
            }
            self.process_ready();
        };
        let error = match failure {
            Some(error) => RaftError::Storage(error),
            None => RaftError::ShutDown,
        };
        // From here on handles are refused at once, before anything reports
        // the node stopped: no request can slip in and go unanswered.
        requests.close();
        self.fail_all(&error);
        // Let the writer finish what was acknowledged, then the applier.
        drop(self.writes);
        let _ = writer.await;
        drop(self.apply);
        let _ = applier.await;
        while let Ok(request) = requests.try_recv() {
            fail_request(request, &error);
        }
        tracing::info!("stopped");
        if let Some(done) = shutdown {
            let _ = done.send(());
        }
    }

    /// Steps a peer's message, or handles it here if it is a forwarded
    /// request (the protocol does not see those).
    fn receive(&mut self, message: Message) {
        self.counters.messages_received.increment(1);
        tracing::trace!(from = message.from, term = message.term, kind = message.body.kind(), "receive");
        match message.body {
            MessageBody::Forward(Forward::Proposal { id, command }) => {
                let responder = Responder::Remote { node: message.from, id };
                self.propose(command, responder);
            }
            MessageBody::Forward(Forward::Response { id, outcome }) => {
                if let Some((_, reply)) = self.forwarded.remove(&id) {
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
            _ => {
                if let Err(error) = self.raw.step(message) {
                    // A refused message changes nothing; peers cannot hurt us.
                    tracing::debug!(%error, "message refused");
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
            Request::Read(ReadConsistency::Stale, job) => {
                let _ = self.apply.send(ApplyJob::Read(0, job));
            }
            Request::Read(consistency, job) => {
                let mode =
                    if consistency == ReadConsistency::Lease { ReadMode::Lease } else { ReadMode::ReadIndex };
                self.next_read += 1;
                match self.raw.read_index(self.next_read, mode) {
                    Ok(()) => {
                        self.reads.insert(self.next_read, job);
                    }
                    Err(_) => job(Err(self.not_leader())),
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
                self.proposals.insert(id.index, (id.term, responder));
            }
            Err(crate::ProposeError::NotLeader { .. } | crate::ProposeError::TransferInProgress { .. }) => {
                let error = self.not_leader();
                self.respond(responder, Err(error));
            }
        }
    }

    fn forward(&mut self, leader: NodeId, command: Bytes, reply: Reply<SM::Response>) {
        self.next_forward += 1;
        let id = self.next_forward;
        self.forwarded.insert(id, (Instant::now() + self.forward_timeout, reply));
        self.counters.forwarded.increment(1);
        self.send(Message {
            from: self.raw.id(),
            to: leader,
            term: self.raw.term(),
            body: MessageBody::Forward(Forward::Proposal { id, command }),
        });
    }

    /// Forwarded proposals unanswered for too long may have been lost on
    /// the way there or back: their outcome is unknown.
    fn expire_forwarded(&mut self) {
        if self.forwarded.is_empty() {
            return;
        }
        let now = Instant::now();
        let expired: Vec<u64> =
            self.forwarded.iter().filter(|(_, (deadline, _))| *deadline <= now).map(|(&id, _)| id).collect();
        for id in expired {
            if let Some((_, reply)) = self.forwarded.remove(&id) {
                let _ = reply.send(Err(RaftError::OutcomeUnknown));
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

    fn send(&self, message: Message) {
        self.counters.messages_sent.increment(1);
        tracing::trace!(to = message.to, term = message.term, kind = message.body.kind(), "send");
        self.transport.send(message);
    }

    /// Hands everything the node produced to the tasks that act on it.
    fn process_ready(&mut self) {
        while self.raw.has_ready() {
            let ready = self.raw.ready();
            for message in ready.messages {
                self.send(message);
            }
            if let Some(snapshot) = &ready.snapshot {
                // Proposals the snapshot covers were decided elsewhere, unseen here.
                let covered: Vec<Index> =
                    self.proposals.range(..=snapshot.meta.last.index).map(|(&i, _)| i).collect();
                for index in covered {
                    if let Some((_, responder)) = self.proposals.remove(&index) {
                        self.respond(responder, Err(RaftError::OutcomeUnknown));
                    }
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
                    let responder = match self.proposals.remove(&entry.index) {
                        Some((term, responder)) if term == entry.term => Some(responder),
                        Some((_, responder)) => {
                            self.respond(responder, Err(RaftError::NotApplied));
                            None
                        }
                        None => None,
                    };
                    entries.push((entry, responder));
                }
                let _ = self.apply.send(ApplyJob::Entries(entries));
            }
            for state in ready.read_states {
                if let Some(job) = self.reads.remove(&state.ctx) {
                    let _ = self.apply.send(ApplyJob::Read(state.index, job));
                }
            }
            if ready.request_snapshot {
                let _ = self.apply.send(ApplyJob::BuildSnapshot(None));
            }
            if let Some(soft) = ready.soft_state {
                self.counters.role_changes.increment(1);
                tracing::info!(role = ?soft.role, term = self.raw.term(), leader = ?soft.leader, "role changed");
                // Reads waiting on a leadership that changed may never be confirmed.
                for (_, job) in std::mem::take(&mut self.reads) {
                    job(Err(self.not_leader()));
                }
            }
        }
        let (raw, applied, transport) = (&self.raw, self.applied, &self.transport);
        self.metrics.send_if_modified(|metrics| {
            let membership_index = metrics.membership_index;
            let changed = metrics.refresh(raw, applied);
            if metrics.membership_index != membership_index {
                transport.update_addresses(&metrics.membership.addresses);
            }
            changed
        });
    }

    fn fail_all(&mut self, error: &RaftError) {
        let unknown = if *error == RaftError::ShutDown { RaftError::OutcomeUnknown } else { error.clone() };
        for (_, (_, responder)) in std::mem::take(&mut self.proposals) {
            self.respond(responder, Err(unknown.clone()));
        }
        for (_, (_, reply)) in self.forwarded.drain() {
            let _ = reply.send(Err(unknown.clone()));
        }
        for (_, job) in self.reads.drain() {
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
                    Err(error) => ForwardOutcome::Refused(error.to_string()),
                },
                Err(RaftError::NotLeader { leader, .. }) => ForwardOutcome::NotLeader { leader },
                Err(RaftError::NotApplied) => ForwardOutcome::NotApplied,
                Err(RaftError::Encode(reason)) => ForwardOutcome::Refused(reason),
                Err(_) => ForwardOutcome::OutcomeUnknown,
            };
            let body = MessageBody::Forward(Forward::Response { id, outcome });
            transport.send(Message { from, to: node, term: 0, body });
        }
    }
}

/// What a forwarded proposal's outcome means to its caller.
fn outcome_to_result<R: DeserializeOwned>(outcome: ForwardOutcome) -> Result<R, RaftError> {
    match outcome {
        ForwardOutcome::Applied(bytes) => {
            crate::codec::decode(&bytes).map_err(|e| RaftError::Encode(format!("the leader's response: {e}")))
        }
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
        Request::Read(_, job) => job(Err(error.clone())),
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
