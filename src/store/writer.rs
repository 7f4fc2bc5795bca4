//! The archive's writer: every message the node accepts or publishes is committed here before
//! the node acknowledges it (reports it valid to gossipsub, answers the publisher), so a
//! process killed at any moment loses nothing that anyone saw acknowledged.
//!
//! Commits are batched: callers that arrive while a transaction runs share the next one. A
//! failed transaction is retried with a growing pause, its messages kept in order; callers
//! wait for their commit at most [`ACK_WAIT`] and then go on (relaying must not stop because
//! the disk did), their messages still queued. The queue holds at most [`MAX_PENDING`]
//! messages; only a database that refuses writes for that long makes it drop its oldest ones,
//! and that is logged and counted. A stopping node writes what is queued (for at most
//! [`DRAIN_FOR`]) and says how it went.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use tokio::{
    sync::{mpsc, oneshot, watch},
    time::Instant,
};

use super::Archive;
use crate::{message::WakuMessage, topics::PubsubTopic};

/// Only messages this close to the local clock are archived, as the store protocol asks.
pub const DRIFT_NS: u64 = 20_000_000_000;
/// Messages waiting to be written, at most.
pub const MAX_PENDING: usize = 100_000;
/// Longest a caller waits for its messages to be committed before it goes on.
pub const ACK_WAIT: Duration = Duration::from_secs(2);
/// Longest a stopping node tries to write what is queued.
pub const DRAIN_FOR: Duration = Duration::from_secs(10);
/// Messages per transaction, at most.
const PER_TRANSACTION: usize = 1_000;
/// The first pause after a failed write; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Requests waiting in the channel before callers wait for room.
const CHANNEL: usize = 1_024;

/// Whether the archive keeps `message` seen at `now_ns`: not ephemeral, and its timestamp
/// within [`DRIFT_NS`] of the clock.
pub fn archivable(message: &WakuMessage, now_ns: i64) -> bool {
    !message.ephemeral()
        && message
            .timestamp()
            .is_some_and(|t| t.abs_diff(now_ns) <= DRIFT_NS)
}

/// The writer's counters, exported as Prometheus metrics (`waku_archive_...`).
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Messages committed (a message already stored counts too).
    pub written: Counter,
    /// Messages queued and not yet committed.
    pub pending: Gauge,
    /// Transactions that failed (and were retried).
    pub failures: Counter,
    /// Messages dropped because the queue was full.
    pub dropped: Counter,
}

/// What became of messages handed to [`Writer::keep`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Committed, or none of them is for the archive.
    Committed,
    /// Not committed within [`ACK_WAIT`]: still queued, and retried.
    Queued,
    /// Not committed and never will be: the writer stopped, or dropped them for room.
    Lost,
}

/// How a stopping writer left its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Messages written while stopping.
    pub written: usize,
    /// Messages that could not be written in [`DRAIN_FOR`].
    pub left: usize,
}

struct Request {
    messages: Vec<(PubsubTopic, WakuMessage)>,
    committed: oneshot::Sender<()>,
}

/// A handle on the archive's writer task.
#[derive(Debug, Clone)]
pub struct Writer {
    requests: mpsc::Sender<Request>,
    drained: watch::Receiver<Option<Drained>>,
    sync: Option<super::sync::SharedSet>,
}

impl Writer {
    /// Starts the writer task of `archive`; it stops, writing what is queued, when `stop`
    /// turns true.
    pub fn start(archive: Arc<Archive>, counters: Counters, stop: watch::Receiver<bool>) -> Self {
        Self::start_bounded(archive, counters, stop, MAX_PENDING)
    }

    /// [`Self::start`] with a queue of `max_pending` messages.
    pub(crate) fn start_bounded(
        archive: Arc<Archive>,
        counters: Counters,
        stop: watch::Receiver<bool>,
        max_pending: usize,
    ) -> Self {
        let (requests, rx) = mpsc::channel(CHANNEL);
        let (report, drained) = watch::channel(None);
        let task = Task {
            archive,
            counters,
            pending: VecDeque::new(),
            queued: 0,
            max_pending,
        };
        tokio::spawn(task.run(rx, stop, report));
        Self {
            requests,
            drained,
            sync: None,
        }
    }

    /// The same writer, adding what it archives to store sync's set as well.
    pub fn with_sync(mut self, set: super::sync::SharedSet) -> Self {
        self.sync = Some(set);
        self
    }

    /// Queues the archivable ones of `messages` (seen at `now_ns`) and waits until they are
    /// committed, at most [`ACK_WAIT`].
    pub async fn keep(
        &self,
        messages: impl IntoIterator<Item = (PubsubTopic, WakuMessage)>,
        now_ns: i64,
    ) -> Kept {
        let messages: Vec<_> = messages
            .into_iter()
            .filter(|(_, m)| archivable(m, now_ns))
            .collect();
        if messages.is_empty() {
            return Kept::Committed;
        }
        if let Some(set) = &self.sync {
            set.note(&messages);
        }
        let (committed, done) = oneshot::channel();
        let request = Request {
            messages,
            committed,
        };
        if self.requests.send(request).await.is_err() {
            return Kept::Lost;
        }
        match tokio::time::timeout(ACK_WAIT, done).await {
            Ok(Ok(())) => Kept::Committed,
            Ok(Err(_)) => Kept::Lost,
            Err(_) => Kept::Queued,
        }
    }

    /// Waits until the stopped writer has written what was queued, and says how it went.
    pub async fn drained(&self) -> Drained {
        let mut drained = self.drained.clone();
        match drained.wait_for(Option::is_some).await {
            Ok(d) => d.expect("waited for Some"),
            // The task ended without a report: it panicked, and its queue is gone.
            Err(_) => Drained {
                written: 0,
                left: 0,
            },
        }
    }
}

struct Task {
    archive: Arc<Archive>,
    counters: Counters,
    pending: VecDeque<Request>,
    /// Messages in `pending`.
    queued: usize,
    max_pending: usize,
}

impl Task {
    async fn run(
        mut self,
        mut requests: mpsc::Receiver<Request>,
        mut stop: watch::Receiver<bool>,
        report: watch::Sender<Option<Drained>>,
    ) {
        let mut pause = None;
        loop {
            if self.pending.is_empty() {
                tokio::select! {
                    request = requests.recv() => match request {
                        Some(r) => self.push(r),
                        None => break,
                    },
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
            if let Some(wait) = pause {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
            while let Ok(r) = requests.try_recv() {
                self.push(r);
            }
            pause = match self.write_some().await {
                Ok(_) => None,
                Err(error) => {
                    let next = pause.map_or(RETRY_FIRST, |p: Duration| (p * 2).min(RETRY_MAX));
                    tracing::warn!(
                        %error,
                        queued = self.queued,
                        retry_in = ?next,
                        "cannot write to the archive; its messages stay queued and are retried"
                    );
                    Some(next)
                }
            };
        }
        requests.close();
        while let Ok(r) = requests.try_recv() {
            self.push(r);
        }
        let drained = self.drain().await;
        if drained.left == 0 {
            tracing::info!(
                written = drained.written,
                "archive: every queued message was written before stopping"
            );
        } else {
            tracing::error!(
                written = drained.written,
                lost = drained.left,
                "archive: queued messages could not be written before stopping"
            );
        }
        let _ = report.send(Some(drained));
    }

    fn push(&mut self, request: Request) {
        self.queued += request.messages.len();
        self.pending.push_back(request);
        let mut dropped = 0;
        while self.queued > self.max_pending {
            let oldest = self.pending.pop_front().expect("queued > 0");
            self.queued -= oldest.messages.len();
            dropped += oldest.messages.len();
        }
        if dropped > 0 {
            self.counters.dropped.inc_by(dropped as u64);
            tracing::error!(
                dropped,
                "the archive has refused writes for too long; its oldest queued messages were dropped"
            );
        }
        self.counters.pending.set(self.queued as i64);
    }

    /// Writes the oldest requests (up to [`PER_TRANSACTION`] messages) in one transaction;
    /// on failure they stay at the front of the queue. Returns the messages written.
    async fn write_some(&mut self) -> Result<usize, super::ArchiveError> {
        let mut batch = Vec::new();
        let mut size = 0;
        while let Some(front) = self.pending.front() {
            if size > 0 && size + front.messages.len() > PER_TRANSACTION {
                break;
            }
            size += front.messages.len();
            batch.push(self.pending.pop_front().expect("checked"));
        }
        if batch.is_empty() {
            return Ok(0);
        }
        let refs: Vec<(&str, &WakuMessage)> = batch
            .iter()
            .flat_map(|r| r.messages.iter().map(|(t, m)| (t.as_str(), m)))
            .collect();
        let result = self.archive.insert(&refs).await;
        drop(refs);
        match result {
            Ok(_) => {
                self.queued -= size;
                self.counters.written.inc_by(size as u64);
                self.counters.pending.set(self.queued as i64);
                for request in batch {
                    let _ = request.committed.send(());
                }
                Ok(size)
            }
            Err(e) => {
                self.counters.failures.inc();
                for request in batch.into_iter().rev() {
                    self.pending.push_front(request);
                }
                Err(e)
            }
        }
    }

    /// Writes what is queued, retrying failures, for at most [`DRAIN_FOR`].
    async fn drain(&mut self) -> Drained {
        let deadline = Instant::now() + DRAIN_FOR;
        let mut written = 0;
        let mut pause = RETRY_FIRST;
        while !self.pending.is_empty() {
            match self.write_some().await {
                Ok(n) => written += n,
                Err(error) => {
                    if Instant::now() + pause > deadline {
                        tracing::error!(%error, "cannot write to the archive while stopping");
                        break;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
        Drained {
            written,
            left: self.queued,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(timestamp: Option<i64>, ephemeral: bool, n: u8) -> WakuMessage {
        let mut b = WakuMessage::builder("/app/1/chat/proto".parse().unwrap(), vec![n; 8])
            .ephemeral(ephemeral);
        if let Some(t) = timestamp {
            b = b.timestamp(t);
        }
        b.build().unwrap()
    }

    fn topic() -> PubsubTopic {
        "/waku/2/rs/66/0".parse().unwrap()
    }

    #[test]
    fn only_messages_close_to_the_clock_and_not_ephemeral_are_archived() {
        let now = 1_700_000_000_000_000_000_i64;
        let drift = DRIFT_NS as i64;
        assert!(archivable(&message(Some(now), false, 0), now));
        assert!(archivable(&message(Some(now - drift), false, 0), now));
        assert!(archivable(&message(Some(now + drift), false, 0), now));
        assert!(!archivable(&message(Some(now - drift - 1), false, 0), now));
        assert!(!archivable(&message(Some(now + drift + 1), false, 0), now));
        assert!(!archivable(&message(Some(now), true, 0), now));
        assert!(!archivable(&message(None, false, 0), now));
    }

    fn temp_archive(name: &str) -> (std::path::PathBuf, Arc<Archive>) {
        let dir =
            std::env::temp_dir().join(format!("wakurln-writer-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let archive = Archive::open_sqlite(&dir.join("archive.sqlite")).unwrap();
        (dir, Arc::new(archive))
    }

    /// Makes every insert into the archive at `dir` fail (a real SQLite error) until
    /// [`heal`].
    fn break_inserts(dir: &std::path::Path) {
        rusqlite::Connection::open(dir.join("archive.sqlite"))
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON messages \
                 BEGIN SELECT RAISE(ABORT, 'the disk says no'); END;",
            )
            .unwrap();
    }

    fn heal(dir: &std::path::Path) {
        rusqlite::Connection::open(dir.join("archive.sqlite"))
            .unwrap()
            .execute_batch("DROP TRIGGER refuse")
            .unwrap();
    }

    async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done().await {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_failed_write_is_retried_and_a_stop_drains_the_queue() {
        let (dir, archive) = temp_archive("retry");
        let counters = Counters::default();
        let (stop, stop_rx) = watch::channel(false);
        let writer = Writer::start(archive.clone(), counters.clone(), stop_rx);
        let now = crate::clock::now_ns();

        break_inserts(&dir);
        let kept = writer
            .keep([(topic(), message(Some(now), false, 1))], now)
            .await;
        assert_eq!(kept, Kept::Queued, "nothing can be committed");
        assert!(counters.failures.get() >= 2, "the write was retried");
        assert_eq!(counters.pending.get(), 1);
        assert_eq!(archive.count().await.unwrap(), 0);
        heal(&dir);
        // The retry lands without anything new arriving (the gauge follows the commit).
        until("the retry lands", async || {
            archive.count().await.unwrap() == 1 && counters.pending.get() == 0
        })
        .await;
        let kept = writer
            .keep([(topic(), message(Some(now), false, 2))], now)
            .await;
        assert_eq!(kept, Kept::Committed);
        assert_eq!(archive.count().await.unwrap(), 2);

        // Queued while inserts fail, then written by the stop once they work again.
        break_inserts(&dir);
        let kept = writer
            .keep([(topic(), message(Some(now), false, 3))], now)
            .await;
        assert_eq!(kept, Kept::Queued);
        stop.send(true).unwrap();
        let failed = counters.failures.get();
        until("the drain has failed once", async || {
            counters.failures.get() > failed
        })
        .await;
        heal(&dir);
        let drained = writer.drained().await;
        assert_eq!(
            drained,
            Drained {
                written: 1,
                left: 0
            }
        );
        assert_eq!(archive.count().await.unwrap(), 3);
        assert_eq!(
            writer
                .keep([(topic(), message(Some(now), false, 4))], now)
                .await,
            Kept::Lost,
            "a stopped writer takes nothing"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_full_queue_drops_its_oldest_and_says_so() {
        let (dir, archive) = temp_archive("full");
        let counters = Counters::default();
        let (stop, stop_rx) = watch::channel(false);
        let cap = 5_000;
        let writer = Writer::start_bounded(archive.clone(), counters.clone(), stop_rx, cap);
        let now = crate::clock::now_ns();
        break_inserts(&dir);
        // One request more than the queue holds, in requests of 1,000 distinct messages.
        let per = 1_000;
        let requests = cap / per + 1;
        let mut waiting = Vec::new();
        for r in 0..requests {
            let batch: Vec<_> = (0..per)
                .map(|i| {
                    let t = now - (r * per + i) as i64;
                    (topic(), message(Some(t), false, 0))
                })
                .collect();
            let w = writer.clone();
            waiting.push(tokio::spawn(async move { w.keep(batch, now).await }));
        }
        let kept: Vec<Kept> = futures::future::join_all(waiting)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            kept.iter().filter(|k| **k == Kept::Lost).count(),
            1,
            "{kept:?}"
        );
        assert_eq!(counters.dropped.get(), per as u64);
        assert_eq!(counters.pending.get(), cap as i64);
        heal(&dir);
        stop.send(true).unwrap();
        let drained = writer.drained().await;
        assert_eq!(drained.left, 0);
        assert_eq!(archive.count().await.unwrap(), cap as u64);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn what_the_archive_does_not_keep_is_not_queued() {
        let (dir, archive) = temp_archive("skip");
        let (_stop, stop_rx) = watch::channel(false);
        let counters = Counters::default();
        let writer = Writer::start(archive.clone(), counters.clone(), stop_rx);
        let now = crate::clock::now_ns();
        let kept = writer
            .keep(
                [
                    (topic(), message(Some(now), true, 1)),
                    (topic(), message(Some(now - 60_000_000_000), false, 2)),
                ],
                now,
            )
            .await;
        assert_eq!(kept, Kept::Committed);
        assert_eq!(counters.written.get(), 0);
        assert_eq!(archive.count().await.unwrap(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }
}
