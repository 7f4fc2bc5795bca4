//! Validation off the swarm task: the fair queue of relayed messages, the workers that
//! validate them in batches on the blocking pool (supervised, so a panic never stops
//! validation), messages held while the chain sync catches up with their root, and what the
//! swarm loop does with each verdict.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use libp2p::{PeerId, gossipsub};
use tokio::sync::{Notify, mpsc, watch};

use super::swarm::Runner;
use super::{NodeEvent, metrics::Metrics};
use crate::{
    message::WakuMessage,
    relay::{
        Delivered,
        pipeline::{Ignored, Rejection, Verdict, describe_spam},
        queue::{FairQueue, QueueLimits},
    },
    store::writer::Writer,
    topics::PubsubTopic,
};

/// Messages and bytes waiting for validation, across all peers, before the heaviest sender's
/// are ignored.
pub(super) const VALIDATION_QUEUE: QueueLimits = QueueLimits {
    max_items: 4_096,
    max_bytes: 64 * 1024 * 1024,
};
/// Most messages validated in one batch.
const MAX_BATCH: usize = 64;

/// Most messages of one peer in one batch: a flooder's backlog never makes up a batch.
const MAX_PER_PEER_IN_BATCH: usize = 8;
/// How long a peer that sent an invalid message is verified apart from the others.
const SUSPECT_FOR: Duration = Duration::from_secs(60);
/// Peers remembered as suspects at most.
const MAX_SUSPECTS: usize = 10_000;

/// The validation queue, shared by the swarm task (which fills it) and the workers, and the
/// peers whose messages are verified apart.
pub(super) struct Jobs {
    queue: std::sync::Mutex<FairQueue<PeerId, Job>>,
    ready: Notify,
    suspects: std::sync::Mutex<HashMap<PeerId, Instant>>,
}

impl Jobs {
    pub(super) fn new() -> Self {
        Self {
            queue: std::sync::Mutex::new(FairQueue::new(VALIDATION_QUEUE)),
            ready: Notify::new(),
            suspects: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, FairQueue<PeerId, Job>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn suspects(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, Instant>> {
        self.suspects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `peer` sent an invalid message within the last [`SUSPECT_FOR`].
    fn is_suspect(&self, peer: &PeerId) -> bool {
        self.suspects()
            .get(peer)
            .is_some_and(|at| at.elapsed() < SUSPECT_FOR)
    }

    fn suspect(&self, peer: PeerId) {
        let mut suspects = self.suspects();
        if suspects.len() >= MAX_SUSPECTS {
            suspects.retain(|_, at| at.elapsed() < SUSPECT_FOR);
            if suspects.len() >= MAX_SUSPECTS {
                suspects.clear();
            }
        }
        suspects.insert(peer, Instant::now());
    }
}

pub(super) struct Job {
    pub(super) id: gossipsub::MessageId,
    pub(super) source: PeerId,
    pub(super) topic: gossipsub::TopicHash,
    pub(super) data: Vec<u8>,
    pub(super) arrived: Instant,
    /// Whether the job waited once for the chain sync (its root was unknown).
    pub(super) held: bool,
}

/// Messages waiting for the chain sync because their root is unknown, at most.
const MAX_HELD: usize = 1_024;
/// ... and at most this many from one peer, so a peer sending made-up roots cannot take the
/// room honest peers need during a burst of registrations.
const MAX_HELD_PER_PEER: usize = 256;
/// Longest wait for the chain sync: gossipsub forgets a message after its history length (6
/// heartbeats of 1 s), and a verdict reported after that is lost.
const MAX_HOLD: Duration = Duration::from_secs(4);

/// What a validation worker runs on each batch (the validator; a stand-in in tests).
pub(super) type ValidateFn = dyn Fn(&[&[u8]]) -> Vec<(Verdict, Option<WakuMessage>)> + Send + Sync;

pub(super) struct Outcome {
    pub(super) job: Job,
    pub(super) verdict: Verdict,
    pub(super) message: Option<WakuMessage>,
}

/// Runs a validation worker, and a new one in its place whenever it panics: validation must
/// never die silently.
pub(super) async fn supervise_worker(
    validate: Arc<ValidateFn>,
    jobs: Arc<Jobs>,
    outcomes: mpsc::Sender<Outcome>,
    metrics: Arc<Metrics>,
    archive: Option<Writer>,
    stop: watch::Receiver<bool>,
) {
    loop {
        let worker = tokio::spawn(validation_worker(
            validate.clone(),
            jobs.clone(),
            outcomes.clone(),
            metrics.clone(),
            archive.clone(),
            stop.clone(),
        ));
        match worker.await {
            Err(e) if e.is_panic() => {
                metrics.validation_panics.inc();
                tracing::error!(
                    "a validation worker panicked; starting a new one (please report this)"
                );
            }
            _ => return,
        }
    }
}

/// Takes queued messages in batches, round robin across peers, and validates them on the
/// blocking pool. A batch whose validation panics is ignored (no peer is penalised for the
/// node's own failure), logged and counted. On a store node, the accepted messages of a batch
/// are committed to the archive before their verdicts go out: a message peers saw us accept
/// is in the archive even if the process is killed right after.
async fn validation_worker(
    validate: Arc<ValidateFn>,
    jobs: Arc<Jobs>,
    outcomes: mpsc::Sender<Outcome>,
    metrics: Arc<Metrics>,
    archive: Option<Writer>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let batch = jobs.queue().pop_batch(MAX_BATCH, MAX_PER_PEER_IN_BATCH);
        if batch.is_empty() {
            tokio::select! {
                () = jobs.ready.notified() => continue,
                _ = stop.changed() => return,
            }
        }
        if !jobs.queue().is_empty() {
            // Let another worker start on the rest while this batch is verified.
            jobs.ready.notify_one();
        }
        // Peers that sent invalid messages lately are verified apart, after the others: a
        // batch holding a bad proof is searched by halves, and honest messages must not pay
        // for that search nor wait for it.
        let (suspect, clean): (Vec<Job>, Vec<Job>) = batch
            .into_iter()
            .partition(|job| jobs.is_suspect(&job.source));
        for group in [clean, suspect] {
            if group.is_empty() {
                continue;
            }
            let verdicts = validate_group(&validate, &group, &metrics).await;
            if let Some(writer) = &archive {
                let accepted = group.iter().zip(&verdicts).filter_map(|(job, (v, m))| {
                    let topic = job.topic.as_str().parse().ok()?;
                    (*v == Verdict::Accept).then(|| Some((topic, m.clone()?)))?
                });
                writer.keep(accepted, crate::clock::now_ns()).await;
            }
            for (job, (verdict, message)) in group.into_iter().zip(verdicts) {
                if matches!(verdict, Verdict::Reject(_)) {
                    jobs.suspect(job.source);
                }
                let outcome = Outcome {
                    job,
                    verdict,
                    message,
                };
                if outcomes.send(outcome).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Validates `group` on the blocking pool; a panic gives every message of the group an
/// `Internal` ignore, and is logged and counted.
async fn validate_group(
    validate: &Arc<ValidateFn>,
    group: &[Job],
    metrics: &Metrics,
) -> Vec<(Verdict, Option<WakuMessage>)> {
    // A copy (messages are small): a job held on an unknown root goes back to the queue.
    let data: Vec<Vec<u8>> = group.iter().map(|job| job.data.clone()).collect();
    let v = validate.clone();
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        v(&refs)
    })
    .await;
    let per_proof = started.elapsed().as_secs_f64() / group.len() as f64;
    metrics.batch_size.observe(group.len() as f64);
    metrics.proofs_verified.inc_by(group.len() as u64);
    metrics.last_proof_verification.set(per_proof);
    for _ in 0..group.len() {
        metrics.proof_verification.observe(per_proof);
    }
    result.unwrap_or_else(|e| {
        metrics.validation_panics.inc();
        tracing::error!(
            error = %e,
            messages = group.len(),
            "validating a batch failed inside the node; its messages are ignored"
        );
        group
            .iter()
            .map(|_| (Verdict::Ignore(Ignored::Internal), None))
            .collect()
    })
}

impl Jobs {
    /// Queues a job for validation. A full queue drops the newest jobs of its heaviest sender:
    /// their outcomes (ignored as overloaded, without penalty) are returned.
    pub(super) fn enqueue(&self, job: Job) -> Vec<Outcome> {
        let size = job.data.len();
        let dropped = self.queue().push(job.source, job, size);
        self.ready.notify_one();
        dropped
            .into_iter()
            .map(|job| Outcome {
                job,
                verdict: Verdict::Ignore(Ignored::Overloaded),
                message: None,
            })
            .collect()
    }
}

impl Runner {
    /// Queues a job for validation; what the full queue drops is ignored.
    pub(super) fn enqueue(&mut self, job: Job) {
        for outcome in self.jobs.enqueue(job) {
            self.on_outcome(outcome);
        }
    }

    /// Holds a message whose root is unknown until a sync step that started after it
    /// arrived: the sender may have seen a block our sync had not reached yet, and a reject
    /// would score an honest peer. Returns the outcome when it cannot be held.
    fn hold(&mut self, outcome: Outcome) -> Option<Outcome> {
        let unknown_root = matches!(outcome.verdict, Verdict::Reject(Rejection::UnknownRoot));
        if !unknown_root || outcome.job.held {
            return Some(outcome);
        }
        let from_source = self
            .held
            .iter()
            .filter(|j| j.source == outcome.job.source)
            .count();
        if self.held.len() >= MAX_HELD || from_source >= MAX_HELD_PER_PEER {
            return Some(Outcome {
                verdict: Verdict::Ignore(Ignored::Overloaded),
                ..outcome
            });
        }
        let mut job = outcome.job;
        job.held = true;
        self.held.push_back(job);
        self.metrics.held_unknown_root.inc();
        self.sync_now.notify_one();
        None
    }

    /// Sends held messages back to validation once a sync step that started after their
    /// arrival has completed; ignores those that waited too long (the sync is failing, which
    /// is not the sender's fault).
    pub(super) fn release_held(&mut self) {
        let step_started = self.sync.borrow().step_started;
        let now = Instant::now();
        let mut waiting = VecDeque::new();
        while let Some(job) = self.held.pop_front() {
            if step_started.is_some_and(|s| s > job.arrived) {
                self.enqueue(job);
            } else if now.duration_since(job.arrived) > MAX_HOLD {
                self.on_outcome(Outcome {
                    job,
                    verdict: Verdict::Ignore(Ignored::NotSynced),
                    message: None,
                });
            } else {
                waiting.push_back(job);
            }
        }
        self.held = waiting;
    }

    pub(super) fn on_outcome(&mut self, outcome: Outcome) {
        let Some(outcome) = self.hold(outcome) else {
            return;
        };
        let Outcome {
            job,
            verdict,
            message,
        } = outcome;
        let acceptance = match &verdict {
            Verdict::Accept => gossipsub::MessageAcceptance::Accept,
            Verdict::Reject(_) => gossipsub::MessageAcceptance::Reject,
            Verdict::Ignore(_) => gossipsub::MessageAcceptance::Ignore,
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .relay
            .report_message_validation_result(&job.id, &job.source, acceptance);
        let topic: Option<PubsubTopic> = job.topic.as_str().parse().ok();
        self.metrics.count_relayed(
            job.topic.as_str(),
            topic
                .as_ref()
                .and_then(|t| t.static_shard())
                .map(|s| s.shard),
            job.data.len(),
            matches!(verdict, Verdict::Accept),
        );
        let hash = match (&message, &topic) {
            (Some(m), Some(t)) => Some(m.hash(t.as_str())),
            _ => None,
        };
        match &verdict {
            Verdict::Accept => {}
            Verdict::Reject(Rejection::DoubleSignal { secret, commitment }) => {
                tracing::warn!(
                    peer = %job.source,
                    "double signalling: {}",
                    describe_spam(secret, commitment)
                );
                let _ = self.events.send(NodeEvent::Spam {
                    from: job.source,
                    commitment: *commitment,
                    secret: *secret,
                });
            }
            Verdict::Reject(r) => {
                tracing::debug!(peer = %job.source, reason = ?r, "rejected a relayed message");
            }
            Verdict::Ignore(Ignored::Overloaded) => {
                tracing::debug!(
                    peer = %job.source,
                    "validation queue full; ignoring a message of its heaviest sender"
                );
            }
            Verdict::Ignore(_) => {}
        }
        if matches!(verdict, Verdict::Reject(_)) {
            // The reject above lowered the sender's score; act on it at once.
            self.disconnect_if_scored_out(job.source);
        }
        self.metrics.count_verdict(verdict.label());
        let _ = self.events.send(NodeEvent::Validated {
            from: job.source,
            hash,
            verdict: verdict.label(),
        });
        if let (Verdict::Accept, Some(message), Some(topic), Some(hash)) =
            (verdict, message, topic, hash)
        {
            let _ = self.delivered.send(Delivered {
                topic,
                message,
                hash,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A job of `source` with message id `id` and `data`.
    fn job_with(source: PeerId, id: &[u8], data: Vec<u8>) -> Job {
        Job {
            id: gossipsub::MessageId::new(id),
            source,
            topic: gossipsub::TopicHash::from_raw("/waku/2/rs/1/0"),
            data,
            arrived: Instant::now(),
            held: false,
        }
    }

    fn job(source: PeerId, n: u8) -> Job {
        job_with(source, &[n], vec![n])
    }

    fn job_of(source: PeerId, n: u32, size: usize) -> Job {
        job_with(source, &n.to_be_bytes(), vec![0; size])
    }

    /// The overload path: a flooder fills the validation queue while the workers are busy;
    /// its newest messages are ignored as overloaded (no penalty for anyone), an honest
    /// peer's are all validated, and the queue never holds more than its bounds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_beyond_the_queue_is_ignored_as_overload_and_honest_messages_pass() {
        // Workers that take a while per batch, so the queue fills.
        let validate: Arc<ValidateFn> = Arc::new(|batch: &[&[u8]]| {
            std::thread::sleep(Duration::from_millis(5));
            batch.iter().map(|_| (Verdict::Accept, None)).collect()
        });
        let jobs = Arc::new(Jobs::new());
        let (outcomes_tx, mut outcomes) = mpsc::channel(VALIDATION_QUEUE.max_items);
        let metrics = Arc::new(Metrics::new());
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(supervise_worker(
            validate,
            jobs.clone(),
            outcomes_tx,
            metrics.clone(),
            None,
            stop_rx,
        ));
        let (flooder, honest) = (PeerId::random(), PeerId::random());
        let mut overloaded = Vec::new();
        let flood = VALIDATION_QUEUE.max_items as u32 * 2;
        for n in 0..flood {
            overloaded.extend(jobs.enqueue(job_of(flooder, n, 100)));
            if n % 100 == 0 {
                overloaded.extend(jobs.enqueue(job_of(honest, n, 100)));
            }
            assert!(jobs.queue().len() <= VALIDATION_QUEUE.max_items);
        }
        assert!(!overloaded.is_empty(), "the flood never filled the queue");
        assert!(
            overloaded
                .iter()
                .all(|o| o.job.source == flooder
                    && o.verdict == Verdict::Ignore(Ignored::Overloaded))
        );
        // Everything queued comes out validated, the honest peer's included.
        let queued = flood as usize + (flood as usize).div_ceil(100) - overloaded.len();
        let mut honest_done = 0;
        // Every flooder message is accounted for: validated or ignored, none lost.
        for _ in 0..queued {
            let o = tokio::time::timeout(Duration::from_secs(60), outcomes.recv())
                .await
                .expect("every queued job is validated")
                .unwrap();
            assert_eq!(o.verdict, Verdict::Accept);
            honest_done += usize::from(o.job.source == honest);
        }
        assert_eq!(
            honest_done,
            (flood as usize).div_ceil(100),
            "no honest message was dropped"
        );
        stop_tx.send(true).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_validation_is_counted_and_the_worker_goes_on() {
        let calls = Arc::new(AtomicUsize::new(0));
        let validate: Arc<ValidateFn> = {
            let calls = calls.clone();
            Arc::new(move |batch: &[&[u8]]| {
                assert!(
                    calls.fetch_add(1, Ordering::SeqCst) > 0,
                    "the first batch panics"
                );
                batch.iter().map(|_| (Verdict::Accept, None)).collect()
            })
        };
        let jobs = Arc::new(Jobs::new());
        let (outcomes_tx, mut outcomes) = mpsc::channel(16);
        let metrics = Arc::new(Metrics::new());
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(supervise_worker(
            validate,
            jobs.clone(),
            outcomes_tx,
            metrics.clone(),
            None,
            stop_rx,
        ));
        let peer = PeerId::random();
        for n in 0..2 {
            let dropped = jobs.queue().push(peer, job(peer, n), 1);
            assert!(dropped.is_empty());
            jobs.ready.notify_one();
            let outcome = tokio::time::timeout(Duration::from_secs(10), outcomes.recv())
                .await
                .expect("an outcome for every job")
                .expect("the worker is alive");
            let expected = if n == 0 {
                Verdict::Ignore(Ignored::Internal)
            } else {
                Verdict::Accept
            };
            assert_eq!(outcome.verdict, expected, "job {n}");
            assert_eq!(outcome.job.id, gossipsub::MessageId::new(&[n]));
        }
        assert_eq!(metrics.validation_panics.get(), 1);
        stop_tx.send(true).unwrap();
    }
}
