//! Store sync: store nodes fill each other's gaps, wire compatible with the reference node.
//!
//! Every `interval` a node picks a peer that serves store sync on its shards and reconciles the
//! messages of the last `range` (ending `relay_jitter` before now, so that messages still in
//! flight on relay are not taken for missing) over `/vac/waku/reconciliation/1.0.0`: range
//! fingerprints, narrowed until the ranges that differ are small enough to list ([`set`]).
//! Each side then pushes what the other lacks over `/vac/waku/transfer/1.0.0`.
//!
//! A pushed message is stored only if it passes this node's own checks: one of its shards, not
//! ephemeral, a timestamp within the sync range, and with RLN on, a valid proof against a root
//! of the node's root window (the chain's last roots; [`crate::relay::pipeline::Validator`]).
//! The specification trusts sync peers and leaves the proof check as future work; the
//! reference node stores pushed messages unchecked. We do not: a peer must not be able to fill
//! our archive with what relay would have refused. The nullifier log is not consulted (these
//! messages are up to an hour old, past the epochs it keeps), so a synced message is never
//! taken for spam.
//!
//! What a peer can make us do is bounded: at most [`MAX_SESSIONS`] sessions answered at once,
//! one per peer, each at most [`MAX_ROUNDS`] rounds of [`codec::MAX_RECONCILIATION_FRAME`]
//! bytes and [`SESSION_TIMEOUT`] long; pushes are read only from a peer we reconciled with in
//! the last [`TRANSFER_GRACE`], at most [`MAX_TRANSFERS`] per session, each frame at most the
//! network's message size.

pub mod codec;
pub mod set;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream};
use tokio::sync::Semaphore;

use self::{
    codec::{Payload, SyncId},
    set::SyncSet,
};
use super::{Archive, Query};
use crate::{
    codec::{CodecError, read_frame},
    message::WakuMessage,
    relay::pipeline::Validator,
    topics::PubsubTopic,
};

/// Sessions answered at once.
pub const MAX_SESSIONS: usize = 4;
/// Rounds of one session.
pub const MAX_ROUNDS: usize = 64;
/// Longest session.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(120);
/// How long after a session a peer's pushes are read.
pub const TRANSFER_GRACE: Duration = Duration::from_secs(120);
/// Pushed messages read from one peer per session.
pub const MAX_TRANSFERS: u64 = 200_000;
/// Items the set holds at most; past it, the oldest are forgotten.
pub const MAX_ITEMS: usize = 5_000_000;
/// Pushed messages checked and stored together.
const TRANSFER_BATCH: usize = 64;

/// When and over what to sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncConfig {
    /// Between two sessions this node starts (0: it only answers).
    pub interval: Duration,
    /// How far back the reconciled window reaches.
    pub range: Duration,
    /// How long before now the window ends.
    pub relay_jitter: Duration,
    /// The peer to sync with (`--storenode`); else one that serves sync on our shards.
    pub peer: Option<PeerId>,
}

impl Default for SyncConfig {
    /// The reference node's defaults.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(300),
            range: Duration::from_secs(3600),
            relay_jitter: Duration::from_secs(20),
            peer: None,
        }
    }
}

/// What a session with one peer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Rounds of payloads (each way counts once).
    pub rounds: usize,
    /// Reconciliation bytes written and read, length prefixes included.
    pub reconciliation_bytes: u64,
    /// Messages we pushed to the peer.
    pub sent: usize,
    /// Bytes of the pushed frames.
    pub sent_bytes: u64,
    /// Messages the peer will push to us.
    pub expected: usize,
}

/// Why a session failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// No stream to the peer.
    #[error("cannot open a {protocol} stream: {detail}")]
    Open {
        /// Which protocol.
        protocol: &'static str,
        /// Why.
        detail: String,
    },
    /// Reading or writing failed.
    #[error("{0}")]
    Stream(#[from] CodecError),
    /// The peer's payload is malformed.
    #[error("the peer's payload: {0}")]
    Wire(#[from] codec::SyncWireError),
    /// More rounds than allowed.
    #[error("no agreement after {MAX_ROUNDS} rounds")]
    TooManyRounds,
    /// Longer than allowed.
    #[error("the session took longer than {SESSION_TIMEOUT:?}")]
    Timeout,
    /// Our archive failed.
    #[error("the archive: {0}")]
    Archive(#[from] super::ArchiveError),
}

/// Counters, for metrics and tests.
#[derive(Debug, Default)]
pub struct SyncCounters {
    /// Sessions we started that completed.
    pub sessions_started: AtomicU64,
    /// Sessions peers started that we answered to the end.
    pub sessions_answered: AtomicU64,
    /// Sessions that failed, either side.
    pub sessions_failed: AtomicU64,
    /// Messages we pushed.
    pub pushed: AtomicU64,
    /// Bytes of the messages we pushed (transfer frames).
    pub pushed_bytes: AtomicU64,
    /// Pushed messages we stored.
    pub received: AtomicU64,
    /// Pushed messages we refused (checks failed, not asked for, or over the bounds).
    pub refused: AtomicU64,
    /// Reconciliation and transfer bytes, both ways.
    pub bytes: AtomicU64,
}

/// A peer's last session, for reading its pushes.
#[derive(Debug, Clone, Copy)]
struct Session {
    at: Instant,
    active: bool,
    pushes: u64,
}

/// The set shared with the archive writer, which adds what the node archives.
pub type SharedSet = Arc<Mutex<SyncSet>>;

/// Adds archivable messages to the set.
pub fn note(set: &SharedSet, messages: &[(PubsubTopic, WakuMessage)]) {
    let mut set = set.lock().unwrap_or_else(PoisonError::into_inner);
    for (topic, m) in messages {
        if let Some(time) = m.timestamp() {
            let id = SyncId {
                time,
                hash: *m.hash(topic.as_str()).as_bytes(),
            };
            set.insert(id, topic.as_str(), m.content_topic().as_str());
        }
    }
    if set.len() > MAX_ITEMS {
        // Time order: forget the oldest tenth at once, not one item per message.
        let cut = set.nth_time(set.len() / 10);
        set.prune(cut);
    }
}

/// The store sync service of a node.
pub struct StoreSync {
    config: SyncConfig,
    set: SharedSet,
    archive: Arc<Archive>,
    validator: Arc<Validator>,
    pubsub_topics: Vec<String>,
    control: Mutex<libp2p_stream::Control>,
    sessions: Mutex<HashMap<PeerId, Session>>,
    answering: Semaphore,
    /// What it did so far.
    pub counters: SyncCounters,
}

impl std::fmt::Debug for StoreSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSync")
            .field("config", &self.config)
            .field("pubsub_topics", &self.pubsub_topics)
            .field("items", &self.len())
            .finish_non_exhaustive()
    }
}

fn now_ns() -> i64 {
    crate::clock::now_ns()
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    prost::encoding::encode_varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

impl StoreSync {
    /// The service over `archive`, for the shards of `pubsub_topics`.
    pub fn new(
        config: SyncConfig,
        archive: Arc<Archive>,
        validator: Arc<Validator>,
        pubsub_topics: Vec<String>,
        control: libp2p_stream::Control,
    ) -> Self {
        Self {
            config,
            set: Arc::new(Mutex::new(SyncSet::new())),
            archive,
            validator,
            pubsub_topics,
            control: Mutex::new(control),
            sessions: Mutex::new(HashMap::new()),
            answering: Semaphore::new(MAX_SESSIONS),
            counters: SyncCounters::default(),
        }
    }

    /// The set, for the archive writer to add to.
    pub fn set(&self) -> SharedSet {
        self.set.clone()
    }

    /// How many messages the set holds.
    pub fn len(&self) -> usize {
        self.set
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The configuration.
    pub fn config(&self) -> SyncConfig {
        self.config
    }

    fn control(&self) -> libp2p_stream::Control {
        self.control
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The window a session covers now: `[now - jitter - range, now - jitter)`.
    fn window(&self) -> (i64, i64) {
        let end = now_ns().saturating_sub(self.config.relay_jitter.as_nanos() as i64);
        (end.saturating_sub(self.config.range.as_nanos() as i64), end)
    }

    /// Fills the set from the archive: the messages of the sync range.
    pub async fn fill(&self) -> Result<usize, super::ArchiveError> {
        const CHUNK: u64 = 20_000;
        let floor = now_ns().saturating_sub(self.config.range.as_nanos() as i64);
        let mut after = (floor.saturating_sub(1), [0xff; 32]);
        let mut added = 0;
        loop {
            let rows = self.archive.ids_after(after, CHUNK).await?;
            let Some(last) = rows.last() else {
                return Ok(added);
            };
            after = (last.time, last.hash);
            added += rows.len();
            let mut set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
            for r in &rows {
                set.insert(
                    SyncId {
                        time: r.time,
                        hash: r.hash,
                    },
                    &r.pubsub_topic,
                    &r.content_topic,
                );
            }
            if (rows.len() as u64) < CHUNK {
                return Ok(added);
            }
        }
    }

    /// Forgets what left the sync range.
    pub fn prune(&self) -> usize {
        let floor = now_ns().saturating_sub(self.config.range.as_nanos() as i64);
        self.set
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .prune(floor)
    }

    /// Answers sessions and reads pushes until the node stops.
    pub fn listen(self: &Arc<Self>) {
        let mut control = self.control();
        for (protocol, transfer) in [(codec::RECONCILIATION, false), (codec::TRANSFER, true)] {
            let mut incoming = match control.accept(protocol.clone()) {
                Ok(i) => i,
                Err(e) => {
                    tracing::error!(error = %e, %protocol, "cannot accept store sync streams");
                    return;
                }
            };
            let me = self.clone();
            tokio::spawn(async move {
                while let Some((peer, stream)) = incoming.next().await {
                    let me = me.clone();
                    if transfer {
                        tokio::spawn(async move { me.receive(peer, stream).await });
                    } else {
                        tokio::spawn(async move { me.answer_session(peer, stream).await });
                    }
                }
            });
        }
    }

    fn begin(&self, peer: PeerId) -> bool {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        sessions.retain(|_, s| s.active || now.duration_since(s.at) < TRANSFER_GRACE);
        if sessions.get(&peer).is_some_and(|s| s.active) {
            return false;
        }
        sessions.insert(
            peer,
            Session {
                at: now,
                active: true,
                pushes: 0,
            },
        );
        true
    }

    fn end(&self, peer: PeerId) {
        if let Some(s) = self
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&peer)
        {
            s.active = false;
            s.at = Instant::now();
        }
    }

    async fn answer_session(self: Arc<Self>, peer: PeerId, mut stream: Stream) {
        let Ok(_permit) = self.answering.try_acquire() else {
            tracing::debug!(%peer, "store sync: too many sessions at once, refused one");
            let _ = stream.close().await;
            return;
        };
        if !self.begin(peer) {
            tracing::debug!(%peer, "store sync: a second session at once, refused");
            let _ = stream.close().await;
            return;
        }
        let result = tokio::time::timeout(SESSION_TIMEOUT, self.converse(&mut stream, None))
            .await
            .unwrap_or(Err(SyncError::Timeout));
        let _ = stream.close().await;
        self.end(peer);
        match result {
            Ok((report, to_send)) => {
                self.counters
                    .sessions_answered
                    .fetch_add(1, Ordering::Relaxed);
                let pushed = self.push(peer, to_send).await;
                tracing::debug!(%peer, ?report, ?pushed, "store sync: answered a session");
            }
            Err(e) => {
                self.counters
                    .sessions_failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, error = %e, "store sync: a session failed");
            }
        }
    }

    /// Reconciles with `peer` now, then pushes what it lacks.
    pub async fn sync_with(&self, peer: PeerId) -> Result<SyncReport, SyncError> {
        let mut stream = self
            .control()
            .open_stream(peer, codec::RECONCILIATION)
            .await
            .map_err(|e| SyncError::Open {
                protocol: "reconciliation",
                detail: e.to_string(),
            })?;
        if !self.begin(peer) {
            return Err(SyncError::Open {
                protocol: "reconciliation",
                detail: "a session with this peer is under way".into(),
            });
        }
        let (from, to) = self.window();
        let initial = self
            .set
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .initial(from, to, &self.pubsub_topics, &[]);
        let result =
            tokio::time::timeout(SESSION_TIMEOUT, self.converse(&mut stream, Some(initial)))
                .await
                .unwrap_or(Err(SyncError::Timeout));
        let _ = stream.close().await;
        self.end(peer);
        let (mut report, to_send) = match result {
            Ok(r) => r,
            Err(e) => {
                self.counters
                    .sessions_failed
                    .fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        self.counters
            .sessions_started
            .fetch_add(1, Ordering::Relaxed);
        let (sent, bytes) = self.push(peer, to_send).await?;
        report.sent = sent;
        report.sent_bytes = bytes;
        Ok(report)
    }

    /// The exchange of payloads, from our first (when we start) to a final one; returns what
    /// the peer lacks.
    async fn converse(
        &self,
        stream: &mut Stream,
        first: Option<Payload>,
    ) -> Result<(SyncReport, Vec<SyncId>), SyncError> {
        let mut report = SyncReport::default();
        let mut to_send = Vec::new();
        if let Some(first) = first {
            let bytes = frame(&codec::encode(&first));
            stream.write_all(&bytes).await.map_err(CodecError::from)?;
            stream.flush().await.map_err(CodecError::from)?;
            report.reconciliation_bytes += bytes.len() as u64;
            report.rounds += 1;
        }
        loop {
            let Some(body) = read_frame(stream, codec::MAX_RECONCILIATION_FRAME).await? else {
                break;
            };
            report.reconciliation_bytes += frame(&body).len() as u64;
            report.rounds += 1;
            if report.rounds > MAX_ROUNDS {
                return Err(SyncError::TooManyRounds);
            }
            let payload = codec::decode(&body)?;
            if payload.is_final() {
                break;
            }
            let set = self.set.clone();
            let ours = self.pubsub_topics.clone();
            let (window_start, _) = self.window();
            let answer = tokio::task::spawn_blocking(move || {
                set.lock().unwrap_or_else(PoisonError::into_inner).answer(
                    &payload,
                    (&ours, &[]),
                    window_start,
                )
            })
            .await
            .map_err(|e| CodecError::Io(std::io::Error::other(e)))?;
            to_send.extend(answer.to_send);
            report.expected += answer.to_receive.len();
            let bytes = frame(&codec::encode(&answer.reply));
            stream.write_all(&bytes).await.map_err(CodecError::from)?;
            stream.flush().await.map_err(CodecError::from)?;
            report.reconciliation_bytes += bytes.len() as u64;
            if answer.reply.is_final() {
                break;
            }
        }
        self.counters
            .bytes
            .fetch_add(report.reconciliation_bytes, Ordering::Relaxed);
        Ok((report, to_send))
    }

    /// Pushes the messages of `ids` to `peer`; returns how many and their bytes.
    async fn push(&self, peer: PeerId, ids: Vec<SyncId>) -> Result<(usize, u64), SyncError> {
        if ids.is_empty() {
            return Ok((0, 0));
        }
        let mut stream = self
            .control()
            .open_stream(peer, codec::TRANSFER)
            .await
            .map_err(|e| SyncError::Open {
                protocol: "transfer",
                detail: e.to_string(),
            })?;
        let (mut sent, mut bytes) = (0usize, 0u64);
        for chunk in ids.chunks(super::archive::MAX_CRITERIA) {
            let page = self
                .archive
                .query(&Query {
                    include_data: true,
                    message_hashes: chunk
                        .iter()
                        .map(|id| crate::message::MessageHash(id.hash))
                        .collect(),
                    limit: Some(super::archive::MAX_PAGE),
                    ..Query::default()
                })
                .await?;
            let mut out = Vec::new();
            for e in page.entries {
                let (Some(topic), Some(m)) = (e.pubsub_topic, e.message) else {
                    continue;
                };
                out.extend(frame(&codec::encode_transfer(&topic, &m)));
                sent += 1;
            }
            bytes += out.len() as u64;
            stream.write_all(&out).await.map_err(CodecError::from)?;
        }
        stream.flush().await.map_err(CodecError::from)?;
        let _ = stream.close().await;
        self.counters
            .pushed
            .fetch_add(sent as u64, Ordering::Relaxed);
        self.counters
            .pushed_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        self.counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok((sent, bytes))
    }

    /// Whether a push from `peer` may be read now; counts it.
    fn may_receive(&self, peer: &PeerId) -> bool {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        match sessions.get_mut(peer) {
            Some(s)
                if (s.active || s.at.elapsed() < TRANSFER_GRACE) && s.pushes < MAX_TRANSFERS =>
            {
                s.pushes += 1;
                true
            }
            _ => false,
        }
    }

    /// Reads the messages `peer` pushes, checks and stores them.
    async fn receive(self: Arc<Self>, peer: PeerId, mut stream: Stream) {
        let mut batch: Vec<(PubsubTopic, WakuMessage)> = Vec::new();
        loop {
            let frame = match read_frame(&mut stream, codec::MAX_TRANSFER_FRAME).await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "store sync: a transfer stream failed");
                    break;
                }
            };
            self.counters
                .bytes
                .fetch_add(frame.len() as u64, Ordering::Relaxed);
            if !self.may_receive(&peer) {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "store sync: a push without a session, stream closed");
                break;
            }
            match codec::decode_transfer(&frame) {
                Ok((topic, m)) => match topic.parse::<PubsubTopic>() {
                    Ok(t) => batch.push((t, m)),
                    Err(_) => {
                        self.counters.refused.fetch_add(1, Ordering::Relaxed);
                    }
                },
                Err(e) => {
                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, error = %e, "store sync: an undecodable push");
                }
            }
            if batch.len() >= TRANSFER_BATCH {
                self.store(peer, std::mem::take(&mut batch)).await;
            }
        }
        self.store(peer, batch).await;
        let _ = stream.close().await;
    }

    /// Checks pushed messages and stores those that pass.
    async fn store(&self, peer: PeerId, batch: Vec<(PubsubTopic, WakuMessage)>) {
        if batch.is_empty() {
            return;
        }
        let now = now_ns();
        let drift = 20_000_000_000i64;
        let floor = now
            .saturating_sub(self.config.range.as_nanos() as i64)
            .saturating_sub(self.config.relay_jitter.as_nanos() as i64)
            .saturating_sub(drift);
        let known = {
            let set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
            batch
                .iter()
                .map(|(t, m)| {
                    m.timestamp().is_some_and(|time| {
                        set.contains(&SyncId {
                            time,
                            hash: *m.hash(t.as_str()).as_bytes(),
                        })
                    })
                })
                .collect::<Vec<_>>()
        };
        let candidates: Vec<(PubsubTopic, WakuMessage)> = batch
            .into_iter()
            .zip(known)
            .filter_map(|((t, m), known)| {
                let fits = !known
                    && !m.ephemeral()
                    && self.pubsub_topics.iter().any(|ours| ours == t.as_str())
                    && m.timestamp()
                        .is_some_and(|ts| ts >= floor && ts <= now + drift);
                if !fits {
                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                }
                fits.then_some((t, m))
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let validator = self.validator.clone();
        let (candidates, verdicts) = tokio::task::spawn_blocking(move || {
            let messages: Vec<&WakuMessage> = candidates.iter().map(|(_, m)| m).collect();
            let verdicts = validator.check_synced(&messages);
            (candidates, verdicts)
        })
        .await
        .expect("checks do not panic");
        let mut accepted = Vec::with_capacity(candidates.len());
        for ((t, m), verdict) in candidates.into_iter().zip(verdicts) {
            match verdict {
                Ok(()) => accepted.push((t, m)),
                Err(v) => {
                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, verdict = ?v, "store sync: a pushed message failed its checks");
                }
            }
        }
        let refs: Vec<(&str, &WakuMessage)> =
            accepted.iter().map(|(t, m)| (t.as_str(), m)).collect();
        match self.archive.insert(&refs).await {
            Ok(_) => {
                self.counters
                    .received
                    .fetch_add(accepted.len() as u64, Ordering::Relaxed);
                note(&self.set, &accepted);
            }
            Err(e) => {
                tracing::warn!(error = %e, "store sync: cannot store pushed messages; the next session brings them again");
            }
        }
    }
}
