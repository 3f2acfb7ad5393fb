//! The core task: owns the `RawNode`, takes requests and messages, and hands
//! each `Ready`'s parts to the other tasks.

use super::*;

/// The core task's state.
pub(super) struct Core<SM: StateMachine, T: Transport> {
    pub(super) raw: RawNode,
    pub(super) transport: Arc<T>,
    pub(super) writes: mpsc::UnboundedSender<WriteJob>,
    pub(super) apply: mpsc::UnboundedSender<ApplyJob<SM>>,
    pub(super) metrics: watch::Sender<Metrics>,
    /// Proposals made here, by index, with the term they were made in.
    pub(super) proposals: BTreeMap<Index, (Term, Reply<SM::Response>)>,
    /// Linearizable reads waiting for their read state.
    pub(super) reads: HashMap<u64, ReadJob<SM>>,
    pub(super) next_read: u64,
    /// What the applier last reported applied.
    pub(super) applied: Index,
}

impl<SM: StateMachine, T: Transport> Core<SM, T> {
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
                _ = ticker.tick() => self.raw.tick(),
                Some(message) = inbound.recv() => {
                    // A refused message changes nothing; peers cannot hurt us.
                    let _ = self.raw.step(message);
                    // Batch what is queued, but never so much that requests,
                    // ticks and completions wait behind a busy network.
                    for _ in 0..MAX_BATCH {
                        let Ok(message) = inbound.try_recv() else { break };
                        let _ = self.raw.step(message);
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
                        let _ = self.raw.on_snapshot_built(snapshot);
                    }
                    Event::Failed(error) => {
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
        if let Some(done) = shutdown {
            let _ = done.send(());
        }
    }

    /// Handles one request; returns the shutdown responder if it asks to stop.
    fn handle(&mut self, request: Request<SM>) -> Option<oneshot::Sender<()>> {
        match request {
            Request::Propose(command, reply) => match self.raw.propose(command) {
                Ok(id) => {
                    self.proposals.insert(id.index, (id.term, reply));
                }
                Err(crate::ProposeError::NotLeader { leader }) => {
                    let _ = reply.send(Err(RaftError::NotLeader { leader }));
                }
                Err(crate::ProposeError::TransferInProgress { .. }) => {
                    let _ = reply.send(Err(RaftError::NotLeader { leader: None }));
                }
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
                    Err(_) => job(Err(RaftError::NotLeader { leader: self.raw.leader() })),
                }
            }
            Request::ChangeMembership(target, reply) => {
                let result = self.raw.change_membership(target.voters, target.learners);
                let _ = reply.send(result.map_err(RaftError::from));
            }
            Request::Transfer(target, reply) => {
                let _ = reply.send(self.raw.transfer_leadership(target).map_err(RaftError::from));
            }
            Request::Shutdown(done) => return Some(done),
        }
        None
    }

    /// Hands everything the node produced to the tasks that act on it.
    fn process_ready(&mut self) {
        while self.raw.has_ready() {
            let ready = self.raw.ready();
            for message in ready.messages {
                self.transport.send(message);
            }
            if let Some(snapshot) = &ready.snapshot {
                // Proposals the snapshot covers were decided elsewhere, unseen here.
                let covered: Vec<Index> =
                    self.proposals.range(..=snapshot.meta.last.index).map(|(&i, _)| i).collect();
                for index in covered {
                    if let Some((_, reply)) = self.proposals.remove(&index) {
                        let _ = reply.send(Err(RaftError::OutcomeUnknown));
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
                let entries = ready.committed_entries.into_iter().map(|entry| {
                    let reply = self.proposals.remove(&entry.index).and_then(|(term, reply)| {
                        if term == entry.term {
                            Some(reply)
                        } else {
                            let _ = reply.send(Err(RaftError::NotApplied));
                            None
                        }
                    });
                    (entry, reply)
                });
                let _ = self.apply.send(ApplyJob::Entries(entries.collect()));
            }
            for state in ready.read_states {
                if let Some(job) = self.reads.remove(&state.ctx) {
                    let _ = self.apply.send(ApplyJob::Read(state.index, job));
                }
            }
            if ready.request_snapshot {
                let _ = self.apply.send(ApplyJob::BuildSnapshot);
            }
            if ready.soft_state.is_some() {
                // Reads waiting on a leadership that changed may never be confirmed.
                let leader = self.raw.leader();
                for (_, job) in self.reads.drain() {
                    job(Err(RaftError::NotLeader { leader }));
                }
            }
        }
        // Updated in place: this runs after every input, and rebuilding the
        // metrics would clone the membership each time.
        let (raw, applied) = (&self.raw, self.applied);
        self.metrics.send_if_modified(|metrics| {
            let before =
                (metrics.role, metrics.term, metrics.leader, metrics.commit_index, metrics.last_log_index);
            (metrics.role, metrics.term, metrics.leader) = (raw.role(), raw.term(), raw.leader());
            (metrics.commit_index, metrics.last_log_index) = (raw.log().committed(), raw.log().last_index());
            let mut changed = before
                != (metrics.role, metrics.term, metrics.leader, metrics.commit_index, metrics.last_log_index)
                || metrics.applied_index != applied;
            metrics.applied_index = applied;
            if metrics.membership != *raw.membership() {
                metrics.membership = raw.membership().clone();
                changed = true;
            }
            changed
        });
    }

    fn fail_all(&mut self, error: &RaftError) {
        let unknown = if *error == RaftError::ShutDown { RaftError::OutcomeUnknown } else { error.clone() };
        for (_, (_, reply)) in std::mem::take(&mut self.proposals) {
            let _ = reply.send(Err(unknown.clone()));
        }
        for (_, job) in self.reads.drain() {
            job(Err(error.clone()));
        }
    }
}

fn fail_request<SM: StateMachine>(request: Request<SM>, error: &RaftError) {
    match request {
        Request::Propose(_, reply) => {
            let _ = reply.send(Err(error.clone()));
        }
        Request::Read(_, job) => job(Err(error.clone())),
        Request::ChangeMembership(_, reply) => {
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
