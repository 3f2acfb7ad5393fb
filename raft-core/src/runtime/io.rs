//! The writer task (durability, group commit) and the applier task (the
//! state machine).

use super::core::respond;
use super::*;
use tokio::time::Instant;

/// The writer task: group commit, then release what waited on the write.
pub(super) async fn run_writer<S: LogStore, T: Transport, SM: StateMachine>(
    store: Arc<S>,
    transport: Arc<T>,
    mut jobs: mpsc::UnboundedReceiver<WriteJob>,
    apply: mpsc::UnboundedSender<ApplyJob<SM>>,
    events: mpsc::UnboundedSender<Event>,
    counters: Counters,
    mut gate: PauseGate,
) {
    let mut pending = Vec::new();
    while let Some(job) = jobs.recv().await {
        gate.pass().await;
        pending.push(job);
        while let Ok(job) = jobs.try_recv() {
            pending.push(job);
        }
        // Merge consecutive writes; a snapshot starts a new write.
        let mut batches: Vec<(LogWrite, Vec<WriteJob>)> = Vec::new();
        for mut job in pending.drain(..) {
            let write = std::mem::take(&mut job.write);
            match batches.last_mut() {
                Some((merged, jobs)) => match merged.merge(write) {
                    None => jobs.push(job),
                    Some(write) => batches.push((write, vec![job])),
                },
                None => batches.push((write, vec![job])),
            }
        }
        for (write, jobs) in batches {
            let snapshot = write.snapshot.as_ref().map(|install| install.snapshot.clone());
            if !write.is_empty() {
                let (started, entries) = (std::time::Instant::now(), write.entries.len());
                let result = store.write(write).await;
                counters.log_writes.increment(1);
                counters.log_write_entries.record(entries as f64);
                counters.log_write_seconds.record(started.elapsed().as_secs_f64());
                if let Err(error) = result {
                    let _ = events.send(Event::Failed(Failure::store(StoreCall::Write, error)));
                    return;
                }
            }
            // A pause that came during the write holds back what it releases.
            gate.pass().await;
            if let Some(snapshot) = snapshot {
                let _ = apply.send(ApplyJob::Restore(snapshot));
            }
            let last = jobs.last().map_or(0, |j| j.number);
            for job in jobs {
                for message in job.messages {
                    transport.send(Envelope::Raft(message));
                }
            }
            let _ = events.send(Event::Persisted(last));
        }
    }
}

/// The applier task's state.
pub(super) struct Applier<SM: StateMachine, S: LogStore, T: Transport> {
    pub(super) id: NodeId,
    pub(super) state_machine: SM,
    /// The last entry applied.
    pub(super) last: LogId,
    /// The configuration as of `last`.
    pub(super) membership: Membership,
    pub(super) store: Arc<S>,
    /// For answering proposals forwarded from other nodes.
    pub(super) transport: Arc<T>,
    pub(super) events: mpsc::UnboundedSender<Event>,
    pub(super) counters: Counters,
    /// Where the task waits while the node is paused (tests only).
    pub(super) gate: PauseGate,
}

impl<SM: StateMachine, S: LogStore, T: Transport> Applier<SM, S, T> {
    pub(super) async fn run(mut self, mut jobs: mpsc::UnboundedReceiver<ApplyJob<SM>>) {
        let mut waiting = WaitingReads::default();
        let mut reported = 0;
        // Wakes the task when the earliest waiting read's deadline passes.
        let expiry = tokio::time::sleep_until(Instant::now());
        tokio::pin!(expiry);
        loop {
            let job = tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => Some(job),
                    None => break,
                },
                () = &mut expiry, if waiting.next_deadline.is_some() => None,
            };
            self.gate.pass().await;
            if let Some(job) = job {
                if !self.handle(job, &mut waiting).await {
                    return;
                }
            }
            // Reported once the queue is drained, or every 1024 entries under
            // sustained load: the report only feeds the metrics, and waking
            // the core task after every batch costs more than the batches.
            if self.last.index != reported && (jobs.is_empty() || self.last.index >= reported + 1024) {
                reported = self.last.index;
                let _ = self.events.send(Event::Applied(reported));
            }
            waiting.serve(self.last.index, &self.state_machine);
            waiting.expire();
            if let Some(deadline) = waiting.next_deadline.filter(|&d| d != expiry.deadline()) {
                expiry.as_mut().reset(deadline);
            }
        }
        waiting.fail_all();
    }

    /// Acts on one job; returns false if the task must stop (the state
    /// machine or the store failed, and the core task was told).
    async fn handle(&mut self, job: ApplyJob<SM>, waiting: &mut WaitingReads<SM>) -> bool {
        match job {
            ApplyJob::Entries(entries) => {
                self.counters.entries_applied.increment(entries.len() as u64);
                for (entry, reply) in entries {
                    self.apply(entry, reply);
                }
            }
            ApplyJob::Restore(snapshot) => {
                if let Err(error) = self.state_machine.restore(&snapshot.data) {
                    let _ = self.events.send(Event::Failed(Failure::Restore(error)));
                    return false;
                }
                self.last = snapshot.meta.last;
                self.membership = snapshot.meta.membership;
            }
            ApplyJob::Read(index, deadline, job) => waiting.push(index, deadline, job),
            ApplyJob::BuildSnapshot(reply) => return self.build_snapshot(reply).await,
        }
        true
    }

    /// Builds a snapshot of what is applied and saves it; returns false if
    /// the store failed.
    async fn build_snapshot(&mut self, reply: Option<Reply<LogId>>) -> bool {
        if self.last.index == 0 {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(self.last));
            }
            return true;
        }
        let meta = SnapshotMeta { last: self.last, membership: self.membership.clone() };
        let snapshot = Snapshot { meta, data: self.state_machine.snapshot() };
        match self.store.save_snapshot(snapshot.clone()).await {
            Ok(()) => {
                self.counters.snapshots_built.increment(1);
                tracing::debug!(last = ?self.last, "snapshot built");
                let _ = self.events.send(Event::SnapshotBuilt(snapshot));
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(self.last));
                }
                true
            }
            Err(error) => {
                let failure = Failure::store(StoreCall::SaveSnapshot, error);
                if let Some(reply) = reply {
                    let _ = reply.send(Err(RaftError::Failed(failure.clone())));
                }
                let _ = self.events.send(Event::Failed(failure));
                false
            }
        }
    }

    fn apply(&mut self, entry: Entry, responder: Option<Responder<SM::Response>>) {
        if entry.index <= self.last.index {
            return; // covered by a restored snapshot
        }
        self.last = entry.log_id();
        match entry.payload {
            EntryPayload::Command(bytes) => match crate::codec::decode(&bytes) {
                Ok(command) => {
                    let response = self.state_machine.apply(self.last, command);
                    if let Some(responder) = responder {
                        respond(&*self.transport, self.id, responder, Ok(response));
                    }
                }
                Err(error) => {
                    // Every node skips it alike, so states stay equal.
                    if let Some(responder) = responder {
                        respond(
                            &*self.transport,
                            self.id,
                            responder,
                            Err(RaftError::Encode(error.to_string())),
                        );
                    }
                }
            },
            EntryPayload::Membership(membership) => self.membership = *membership,
            EntryPayload::Blank => {}
        }
    }
}

/// Reads whose read index has arrived, waiting for the state machine to
/// apply that far, each with the instant its caller gives up.
struct WaitingReads<SM: StateMachine> {
    by_index: BTreeMap<Index, Vec<(Instant, ReadJob<SM>)>>,
    /// No later than the earliest deadline of a waiting read (it may be
    /// earlier, once that read was served: the task then wakes once for
    /// nothing), or `None` if none waits.
    next_deadline: Option<Instant>,
}

impl<SM: StateMachine> Default for WaitingReads<SM> {
    fn default() -> Self {
        Self { by_index: BTreeMap::new(), next_deadline: None }
    }
}

impl<SM: StateMachine> WaitingReads<SM> {
    fn push(&mut self, index: Index, deadline: Instant, job: ReadJob<SM>) {
        self.by_index.entry(index).or_default().push((deadline, job));
        self.next_deadline = Some(self.next_deadline.map_or(deadline, |d| d.min(deadline)));
    }

    /// Runs every read the state machine has applied far enough for, unless
    /// its caller has given up already (it was told `Timeout`, so the read
    /// must not run: its closure may have effects).
    fn serve(&mut self, applied: Index, state_machine: &SM) {
        let now = Instant::now();
        while let Some(entry) = self.by_index.first_entry() {
            if *entry.key() > applied {
                break;
            }
            for (deadline, job) in entry.remove() {
                if deadline <= now {
                    job(Err(RaftError::Timeout));
                } else {
                    job(Ok(state_machine));
                }
            }
        }
        if self.by_index.is_empty() {
            self.next_deadline = None;
        }
    }

    /// Fails every read whose deadline has passed (its caller has given up).
    fn expire(&mut self) {
        let now = Instant::now();
        if self.next_deadline.is_none_or(|d| d > now) {
            return;
        }
        let mut next = None;
        for jobs in self.by_index.values_mut() {
            for (deadline, job) in std::mem::take(jobs) {
                if deadline <= now {
                    job(Err(RaftError::Timeout));
                } else {
                    next = Some(next.map_or(deadline, |d: Instant| d.min(deadline)));
                    jobs.push((deadline, job));
                }
            }
        }
        self.by_index.retain(|_, jobs| !jobs.is_empty());
        self.next_deadline = next;
    }

    /// Fails every waiting read: the node stopped.
    fn fail_all(self) {
        for (_, job) in self.by_index.into_values().flatten() {
            job(Err(RaftError::ShutDown));
        }
    }
}
