//! The writer task (durability, group commit) and the applier task (the
//! state machine).

use super::core::respond;
use super::*;

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
            let snapshot = write.snapshot.clone();
            if !write.is_empty() {
                let (started, entries) = (std::time::Instant::now(), write.entries.len());
                let result = store.write(write).await;
                counters.log_writes.increment(1);
                counters.log_write_entries.record(entries as f64);
                counters.log_write_seconds.record(started.elapsed().as_secs_f64());
                if let Err(error) = result {
                    let _ = events.send(Event::Failed(error.to_string()));
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
                    transport.send(message);
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
        // Reads waiting for the state machine to catch up, by index.
        let mut waiting: BTreeMap<Index, Vec<ReadJob<SM>>> = BTreeMap::new();
        let mut reported = 0;
        while let Some(job) = jobs.recv().await {
            self.gate.pass().await;
            match job {
                ApplyJob::Entries(entries) => {
                    self.counters.entries_applied.increment(entries.len() as u64);
                    for (entry, reply) in entries {
                        self.apply(entry, reply);
                    }
                }
                ApplyJob::Restore(snapshot) => {
                    if let Err(error) = self.state_machine.restore(&snapshot.data) {
                        let _ = self.events.send(Event::Failed(error.to_string()));
                        return;
                    }
                    self.last = snapshot.meta.last;
                    self.membership = snapshot.meta.membership;
                }
                ApplyJob::Read(index, job) => waiting.entry(index).or_default().push(job),
                ApplyJob::BuildSnapshot(reply) => {
                    if self.last.index == 0 {
                        if let Some(reply) = reply {
                            let _ = reply.send(Ok(self.last));
                        }
                        continue;
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
                        }
                        Err(error) => {
                            let _ = self.events.send(Event::Failed(error.to_string()));
                            if let Some(reply) = reply {
                                let _ = reply.send(Err(RaftError::Storage(error.to_string())));
                            }
                            return;
                        }
                    }
                }
            }
            // Reported once the queue is drained, or every 1024 entries under
            // sustained load: the report only feeds the metrics, and waking
            // the core task after every batch costs more than the batches.
            if self.last.index != reported && (jobs.is_empty() || self.last.index >= reported + 1024) {
                reported = self.last.index;
                let _ = self.events.send(Event::Applied(reported));
            }
            let ready: Vec<Index> = waiting.range(..=self.last.index).map(|(&i, _)| i).collect();
            for index in ready {
                for job in waiting.remove(&index).unwrap_or_default() {
                    job(Ok(&self.state_machine));
                }
            }
        }
        for job in waiting.into_values().flatten() {
            job(Err(RaftError::ShutDown));
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
