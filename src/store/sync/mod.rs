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
//! one per peer and at most [`SESSIONS_PER_MINUTE`] a minute from each, each at most
//! [`MAX_ROUNDS`] rounds of [`codec::MAX_RECONCILIATION_FRAME`] bytes and [`SESSION_TIMEOUT`]
//! long. A pushed message is read only if the reconciliation told us the peer holds it and we
//! do not: each session grants exactly the items of its differences (at most
//! [`MAX_TRANSFERS`], and [`MAX_GRANTED`] over all peers), and anything in the ranges whose
//! items we listed first or said we hold none of (the peer pushes there as soon as it
//! compares, before its own list reaches us, and lists nothing where we hold nothing; at most
//! [`MAX_TRANSFERS`] such pushes a session), for [`TRANSFER_GRACE`] after it ends. A session that fails grants nothing, and after
//! [`MAX_UNEXPECTED`] pushes of anything else (over all its streams) the peer's grant is
//! withdrawn, before any proof is checked.

pub mod codec;
pub mod set;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard},
    time::{Duration, Instant},
};

use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream};
use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
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
/// Pushed messages one session grants at most.
pub const MAX_TRANSFERS: usize = 200_000;
/// Pushed messages granted at once over all peers.
pub const MAX_GRANTED: usize = 4 * MAX_TRANSFERS;
/// Sessions a peer may start with us in a minute.
pub const SESSIONS_PER_MINUTE: u32 = 4;
/// Ranges whose items we listed first that one session grants at most.
pub const MAX_OPEN_RANGES: usize = 10_000;
/// Pushes of items not granted (or not decodable) from one peer, after which its grant is
/// withdrawn until its next session.
pub const MAX_UNEXPECTED: usize = 16;
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

/// Counters, exported as Prometheus metrics (`waku_store_sync_...`) and read by tests.
#[derive(Debug, Default, Clone)]
pub struct SyncCounters {
    /// Sessions we started that completed.
    pub sessions_started: Counter,
    /// Sessions peers started that we answered to the end.
    pub sessions_answered: Counter,
    /// Sessions that failed, either side.
    pub sessions_failed: Counter,
    /// Sessions peers started that we refused (too many at once or in a minute, or one
    /// already under way).
    pub sessions_refused: Counter,
    /// Messages we pushed.
    pub pushed: Counter,
    /// Bytes of the messages we pushed (transfer frames).
    pub pushed_bytes: Counter,
    /// Pushed messages we stored.
    pub received: Counter,
    /// Pushed messages we refused (checks failed, not asked for, or over the bounds).
    pub refused: Counter,
    /// Reconciliation and transfer bytes, both ways.
    pub bytes: Counter,
    /// Messages in the set (updated as messages are added, and as it is filled and pruned).
    pub items: Gauge,
}

/// A peer's sessions: the one under way or the last, what it granted, and how many the peer
/// started lately.
#[derive(Debug)]
struct Session {
    /// When the session began, or ended if it is over.
    at: Instant,
    active: bool,
    /// The items the peer may push: those it listed and we lack.
    granted: HashSet<SyncId>,
    /// Ranges whose items we listed first (sorted, disjoint): the peer may push what it holds
    /// there, [`MAX_TRANSFERS`] in all.
    open: Vec<(SyncId, SyncId)>,
    /// Pushes read in `open` so far.
    unlisted: usize,
    /// Pushes of what was not granted, since the session began.
    unexpected: usize,
    /// Sessions the peer started since `minute`.
    started: u32,
    minute: Instant,
}

impl Session {
    /// A peer with no session yet.
    fn new(now: Instant) -> Self {
        Self {
            at: now,
            active: false,
            granted: HashSet::new(),
            open: Vec::new(),
            unlisted: 0,
            unexpected: 0,
            started: 0,
            minute: now,
        }
    }
}

/// Every peer's sessions, and the grants summed over them.
#[derive(Debug, Default)]
struct Sessions {
    peers: HashMap<PeerId, Session>,
    granted: usize,
}

impl Sessions {
    /// Forgets the peers with nothing active, granted or counted any more.
    fn expire(&mut self, now: Instant) {
        let keep = TRANSFER_GRACE.max(Duration::from_secs(60));
        let mut released = 0;
        self.peers.retain(|_, s| {
            let kept = s.active || now.duration_since(s.at) < keep;
            if !kept {
                released += s.granted.len();
            } else if !s.active && now.duration_since(s.at) >= TRANSFER_GRACE {
                released += s.granted.len();
                s.granted = HashSet::new();
                s.open = Vec::new();
            }
            kept
        });
        self.granted -= released;
    }

    /// Ends `peer`'s session; one that failed takes back what it granted.
    fn end(&mut self, peer: &PeerId, completed: bool) {
        if let Some(s) = self.peers.get_mut(peer) {
            s.active = false;
            s.at = Instant::now();
            if !completed {
                self.granted -= s.granted.len();
                s.granted = HashSet::new();
                s.open = Vec::new();
            }
        }
    }

    /// Lets `peer` push `items` (within the bounds); returns how many were granted.
    fn grant(&mut self, peer: &PeerId, items: &[SyncId]) -> usize {
        let Some(s) = self.peers.get_mut(peer) else {
            return 0;
        };
        let room = MAX_TRANSFERS
            .saturating_sub(s.granted.len())
            .min(MAX_GRANTED.saturating_sub(self.granted));
        let before = s.granted.len();
        s.granted.extend(items.iter().take(room).copied());
        let added = s.granted.len() - before;
        self.granted += added;
        added
    }

    /// Counts a push from `peer` of what was not granted; at [`MAX_UNEXPECTED`] its grant is
    /// withdrawn. Returns whether it was.
    fn strike(&mut self, peer: &PeerId) -> bool {
        let Some(s) = self.peers.get_mut(peer) else {
            return true;
        };
        s.unexpected += 1;
        if s.unexpected < MAX_UNEXPECTED {
            return false;
        }
        self.granted -= s.granted.len();
        s.granted = HashSet::new();
        s.open = Vec::new();
        true
    }

    /// Lets `peer` push what it holds in `ranges`, whose items we listed first (at most
    /// [`MAX_OPEN_RANGES`] ranges a session).
    fn grant_ranges(&mut self, peer: &PeerId, ranges: &[(SyncId, SyncId)]) {
        let Some(s) = self.peers.get_mut(peer) else {
            return;
        };
        s.open.extend_from_slice(ranges);
        s.open.sort_unstable();
        let mut merged: Vec<(SyncId, SyncId)> = Vec::with_capacity(s.open.len());
        for &(lower, upper) in &s.open {
            match merged.last_mut() {
                Some(last) if lower <= last.1 => last.1 = last.1.max(upper),
                _ => merged.push((lower, upper)),
            }
        }
        merged.truncate(MAX_OPEN_RANGES);
        s.open = merged;
    }

    /// Takes `id` from `peer`'s grant: whether it was listed, or lies in a range whose items
    /// we listed first (never for a message without an id). `None` if the peer has no
    /// session to push for.
    fn take(&mut self, peer: &PeerId, id: Option<&SyncId>) -> Option<bool> {
        let s = self.peers.get_mut(peer)?;
        if (!s.active && s.at.elapsed() >= TRANSFER_GRACE) || s.unexpected >= MAX_UNEXPECTED {
            return None;
        }
        let Some(id) = id else {
            return Some(false);
        };
        if s.granted.remove(id) {
            self.granted -= 1;
            return Some(true);
        }
        let in_open = s
            .open
            .partition_point(|(lower, _)| lower <= id)
            .checked_sub(1)
            .is_some_and(|i| *id < s.open[i].1);
        if in_open && s.unlisted < MAX_TRANSFERS {
            s.unlisted += 1;
            return Some(true);
        }
        Some(false)
    }
}

/// The set shared with the archive writer, which adds what the node archives.
pub type SharedSet = Arc<SetCell>;

/// Items noted while the set was busy, past which the writer waits for it.
const MAX_QUEUED: usize = 100_000;

/// The set behind a read-write lock, with a queue for what the archive writer notes while a
/// session reads the set: answering a payload holds the set for up to a few hundred
/// milliseconds at a million items, and the relay's archiving must not wait for it.
#[derive(Debug, Default)]
pub struct SetCell {
    set: RwLock<SyncSet>,
    queued: Mutex<Vec<(SyncId, String, String)>>,
    /// The set's size, set whenever queued items are added (and by filling and pruning).
    size: Gauge,
}

impl SetCell {
    /// An empty set whose size `size` follows.
    pub fn with_size_gauge(size: Gauge) -> Self {
        Self {
            size,
            ..Self::default()
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<(SyncId, String, String)>> {
        self.queued.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The set for reading, with what was queued added first if the set is free.
    fn read(&self) -> RwLockReadGuard<'_, SyncSet> {
        if let Ok(set) = self.set.try_write() {
            drop(self.apply(set));
        }
        self.set.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The set for writing, with what was queued added first; waits for readers.
    fn write(&self) -> RwLockWriteGuard<'_, SyncSet> {
        let set = self.set.write().unwrap_or_else(PoisonError::into_inner);
        self.apply(set)
    }

    fn apply<'a>(&self, mut set: RwLockWriteGuard<'a, SyncSet>) -> RwLockWriteGuard<'a, SyncSet> {
        let queued = std::mem::take(&mut *self.queue());
        for (id, pubsub, content) in &queued {
            set.insert(*id, pubsub, content);
        }
        if set.len() > MAX_ITEMS {
            // Time order: forget the oldest tenth at once, not one item per message.
            let cut = set.nth_time(set.len() / 10);
            set.prune(cut);
        }
        if !queued.is_empty() {
            self.size.set(set.len() as i64);
        }
        set
    }

    /// Adds archivable messages: at once if the set is free, else at its next use. Waits
    /// only when [`MAX_QUEUED`] items are already queued.
    pub fn note(&self, messages: &[(PubsubTopic, WakuMessage)]) {
        let items = messages.iter().filter_map(|(topic, m)| {
            let id = SyncId {
                time: m.timestamp()?,
                hash: *m.hash(topic.as_str()).as_bytes(),
            };
            Some((id, topic.to_string(), m.content_topic().to_string()))
        });
        let backlog = {
            let mut queue = self.queue();
            queue.extend(items);
            queue.len()
        };
        if let Ok(set) = self.set.try_write() {
            drop(self.apply(set));
        } else if backlog > MAX_QUEUED {
            drop(self.write());
        }
    }

    /// How many messages the set holds (not counting those queued).
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    sessions: Arc<Mutex<Sessions>>,
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
        counters: SyncCounters,
    ) -> Self {
        Self {
            config,
            set: Arc::new(SetCell::with_size_gauge(counters.items.clone())),
            archive,
            validator,
            pubsub_topics,
            control: Mutex::new(control),
            sessions: Arc::new(Mutex::new(Sessions::default())),
            answering: Semaphore::new(MAX_SESSIONS),
            counters,
        }
    }

    /// The set, for the archive writer to add to.
    pub fn set(&self) -> SharedSet {
        self.set.clone()
    }

    /// How many messages the set holds.
    pub fn len(&self) -> usize {
        self.set.len()
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
            let mut set = self.set.write();
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
            self.counters.items.set(set.len() as i64);
            if (rows.len() as u64) < CHUNK {
                return Ok(added);
            }
        }
    }

    /// Forgets what left the sync range (on the blocking pool: it waits for readers).
    pub async fn prune(&self) -> usize {
        let floor = now_ns().saturating_sub(self.config.range.as_nanos() as i64);
        let set = self.set.clone();
        let items = self.counters.items.clone();
        tokio::task::spawn_blocking(move || {
            let mut set = set.write();
            let gone = set.prune(floor);
            items.set(set.len() as i64);
            gone
        })
        .await
        .unwrap_or(0)
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

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a session with `peer`; `answering` when the peer started it, which counts
    /// against its [`SESSIONS_PER_MINUTE`].
    fn begin(&self, peer: PeerId, answering: bool) -> Result<(), &'static str> {
        let mut sessions = self.sessions();
        let now = Instant::now();
        sessions.expire(now);
        let session = sessions
            .peers
            .entry(peer)
            .or_insert_with(|| Session::new(now));
        if session.active {
            return Err("a session with this peer is under way");
        }
        if answering {
            if now.duration_since(session.minute) >= Duration::from_secs(60) {
                session.started = 0;
                session.minute = now;
            }
            if session.started >= SESSIONS_PER_MINUTE {
                return Err("the peer started too many sessions this minute");
            }
            session.started += 1;
        }
        session.active = true;
        session.at = now;
        session.unlisted = 0;
        session.unexpected = 0;
        Ok(())
    }

    async fn answer_session(self: Arc<Self>, peer: PeerId, mut stream: Stream) {
        let Ok(_permit) = self.answering.try_acquire() else {
            self.counters.sessions_refused.inc();
            tracing::debug!(%peer, "store sync: too many sessions at once, refused one");
            let _ = stream.close().await;
            return;
        };
        if let Err(why) = self.begin(peer, true) {
            self.counters.sessions_refused.inc();
            tracing::debug!(%peer, why, "store sync: a session refused");
            let _ = stream.close().await;
            return;
        }
        let result = tokio::time::timeout(SESSION_TIMEOUT, self.converse(peer, &mut stream, None))
            .await
            .unwrap_or(Err(SyncError::Timeout));
        let _ = stream.close().await;
        self.sessions().end(&peer, result.is_ok());
        match result {
            Ok((report, to_send)) => {
                self.counters.sessions_answered.inc();
                let pushed = self.push(peer, to_send).await;
                tracing::debug!(%peer, ?report, ?pushed, "store sync: answered a session");
            }
            Err(e) => {
                self.counters.sessions_failed.inc();
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
        if let Err(why) = self.begin(peer, false) {
            return Err(SyncError::Open {
                protocol: "reconciliation",
                detail: why.into(),
            });
        }
        let (from, to) = self.window();
        let (set, ours) = (self.set.clone(), self.pubsub_topics.clone());
        let initial = tokio::task::spawn_blocking(move || set.read().initial(from, to, &ours, &[]))
            .await
            .map_err(|e| CodecError::Io(std::io::Error::other(e)))?;
        let result = tokio::time::timeout(
            SESSION_TIMEOUT,
            self.converse(peer, &mut stream, Some(initial)),
        )
        .await
        .unwrap_or(Err(SyncError::Timeout));
        let _ = stream.close().await;
        self.sessions().end(&peer, result.is_ok());
        let (mut report, to_send) = match result {
            Ok(r) => r,
            Err(e) => {
                self.counters.sessions_failed.inc();
                return Err(e);
            }
        };
        self.counters.sessions_started.inc();
        let (sent, bytes) = self.push(peer, to_send).await?;
        report.sent = sent;
        report.sent_bytes = bytes;
        Ok(report)
    }

    /// The exchange of payloads, from our first (when we start) to a final one; returns what
    /// the peer lacks. What we lack is granted to the peer's pushes as the rounds find it.
    async fn converse(
        &self,
        peer: PeerId,
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
            let sessions = self.sessions.clone();
            // The answer and its grant (up to a reply's 100,000 ids) on the blocking pool.
            let (answer, granted) = tokio::task::spawn_blocking(move || {
                let answer = set.read().answer(&payload, (&ours, &[]), window_start);
                let mut sessions = sessions.lock().unwrap_or_else(PoisonError::into_inner);
                let granted = sessions.grant(&peer, &answer.to_receive);
                sessions.grant_ranges(&peer, &answer.open);
                (answer, granted)
            })
            .await
            .map_err(|e| CodecError::Io(std::io::Error::other(e)))?;
            to_send.extend(answer.to_send);
            report.expected += granted;
            let bytes = frame(&codec::encode(&answer.reply));
            stream.write_all(&bytes).await.map_err(CodecError::from)?;
            stream.flush().await.map_err(CodecError::from)?;
            report.reconciliation_bytes += bytes.len() as u64;
            if answer.reply.is_final() {
                break;
            }
        }
        self.counters.bytes.inc_by(report.reconciliation_bytes);
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
        self.counters.pushed.inc_by(sent as u64);
        self.counters.pushed_bytes.inc_by(bytes);
        self.counters.bytes.inc_by(bytes);
        Ok((sent, bytes))
    }

    /// Reads the messages `peer` pushes, checks and stores those it was granted.
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
            self.counters.bytes.inc_by(frame.len() as u64);
            let pushed = codec::decode_transfer(&frame).map_err(|e| e.to_string());
            let id = pushed.as_ref().ok().and_then(|(topic, m)| {
                Some(SyncId {
                    time: m.timestamp()?,
                    hash: *m.hash(topic).as_bytes(),
                })
            });
            let granted = self.sessions().take(&peer, id.as_ref());
            let Some(granted) = granted else {
                self.counters.refused.inc();
                tracing::debug!(%peer, "store sync: a push without a session, stream closed");
                break;
            };
            let accepted = match pushed {
                Ok((topic, m)) if granted => match topic.parse::<PubsubTopic>() {
                    Ok(t) => {
                        batch.push((t, m));
                        true
                    }
                    Err(_) => false,
                },
                Ok(_) => false,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "store sync: an undecodable push");
                    false
                }
            };
            if !accepted {
                self.counters.refused.inc();
                if self.sessions().strike(&peer) {
                    tracing::debug!(%peer, "store sync: pushes of what was not asked for, grant withdrawn");
                    break;
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
        let ids: Vec<Option<SyncId>> = batch
            .iter()
            .map(|(t, m)| {
                Some(SyncId {
                    time: m.timestamp()?,
                    hash: *m.hash(t.as_str()).as_bytes(),
                })
            })
            .collect();
        let (set, n) = (self.set.clone(), ids.len());
        // On the blocking pool: a session may hold the set for a while.
        let known = tokio::task::spawn_blocking(move || {
            let set = set.read();
            ids.iter()
                .map(|id| id.is_some_and(|id| set.contains(&id)))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_else(|_| vec![false; n]);
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
                    self.counters.refused.inc();
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
                    self.counters.refused.inc();
                    tracing::debug!(%peer, verdict = ?v, "store sync: a pushed message failed its checks");
                }
            }
        }
        let refs: Vec<(&str, &WakuMessage)> =
            accepted.iter().map(|(t, m)| (t.as_str(), m)).collect();
        match self.archive.insert(&refs).await {
            Ok(_) => {
                self.counters.received.inc_by(accepted.len() as u64);
                self.set.note(&accepted);
            }
            Err(e) => {
                tracing::warn!(error = %e, "store sync: cannot store pushed messages; the next session brings them again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> SyncId {
        SyncId {
            time: i64::from(n),
            hash: [n; 32],
        }
    }

    fn open(sessions: &mut Sessions, peer: PeerId) {
        let now = Instant::now();
        let session = sessions
            .peers
            .entry(peer)
            .or_insert_with(|| Session::new(now));
        session.active = true;
        session.at = now;
    }

    #[test]
    fn a_session_grants_exactly_its_differences_once_and_a_failed_one_nothing() {
        let mut sessions = Sessions::default();
        let (peer, stranger) = (PeerId::random(), PeerId::random());
        assert_eq!(sessions.take(&stranger, Some(&id(1))), None);
        open(&mut sessions, peer);
        assert_eq!(sessions.grant(&peer, &[id(1), id(2)]), 2);
        assert_eq!(
            sessions.grant(&stranger, &[id(3)]),
            0,
            "no session, no grant"
        );
        sessions.end(&peer, true);
        assert_eq!(sessions.take(&peer, Some(&id(3))), Some(false));
        assert_eq!(sessions.take(&peer, None), Some(false));
        assert_eq!(sessions.take(&peer, Some(&id(1))), Some(true));
        assert_eq!(sessions.take(&peer, Some(&id(1))), Some(false), "once");
        assert_eq!(sessions.granted, 1);

        open(&mut sessions, peer);
        sessions.grant(&peer, &[id(4)]);
        sessions.end(&peer, false);
        assert_eq!(sessions.take(&peer, Some(&id(4))), Some(false));
        assert_eq!(sessions.granted, 0, "a failed session takes back its grant");
    }

    #[test]
    fn a_range_whose_items_we_listed_first_takes_what_lies_in_it() {
        let mut sessions = Sessions::default();
        let peer = PeerId::random();
        open(&mut sessions, peer);
        let at = |t: i64| SyncId::at(t);
        sessions.grant_ranges(
            &peer,
            &[(at(20), at(30)), (at(10), at(15)), (at(15), at(18))],
        );
        assert_eq!(
            sessions.peers[&peer].open,
            vec![(at(10), at(18)), (at(20), at(30))]
        );
        sessions.end(&peer, true);
        for (t, inside) in [
            (9, false),
            (10, true),
            (17, true),
            (18, false),
            (25, true),
            (30, false),
        ] {
            let id = SyncId {
                time: t,
                hash: [1; 32],
            };
            assert_eq!(sessions.take(&peer, Some(&id)), Some(inside), "time {t}");
        }
        open(&mut sessions, peer);
        sessions.end(&peer, false);
        assert_eq!(
            sessions.take(&peer, Some(&at(25))),
            Some(false),
            "taken back"
        );
    }

    #[test]
    fn pushes_of_what_was_not_granted_withdraw_the_grant() {
        let mut sessions = Sessions::default();
        let peer = PeerId::random();
        open(&mut sessions, peer);
        sessions.grant(&peer, &[id(1), id(2)]);
        sessions.end(&peer, true);
        for _ in 1..MAX_UNEXPECTED {
            assert_eq!(sessions.take(&peer, Some(&id(9))), Some(false));
            assert!(!sessions.strike(&peer));
        }
        assert_eq!(sessions.take(&peer, Some(&id(1))), Some(true));
        assert!(sessions.strike(&peer), "the last straw");
        assert_eq!(sessions.take(&peer, Some(&id(2))), None);
        assert_eq!(sessions.granted, 0);
    }

    #[test]
    fn grants_stay_within_their_bounds() {
        let mut sessions = Sessions::default();
        let items: Vec<SyncId> = (0..MAX_TRANSFERS + 10)
            .map(|i| SyncId {
                time: i as i64,
                hash: [0; 32],
            })
            .collect();
        let peers: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
        for peer in &peers[..4] {
            open(&mut sessions, *peer);
            assert_eq!(sessions.grant(peer, &items), MAX_TRANSFERS);
        }
        open(&mut sessions, peers[4]);
        assert_eq!(sessions.grant(&peers[4], &items), 0, "all peers together");
        assert_eq!(sessions.granted, MAX_GRANTED);
        // Past the grace, a peer's grant is released and its pushes are not read.
        let long_ago = Instant::now() - TRANSFER_GRACE - Duration::from_secs(1);
        let first = sessions.peers.get_mut(&peers[0]).unwrap();
        first.active = false;
        first.at = long_ago;
        assert_eq!(sessions.take(&peers[0], Some(&items[0])), None);
        sessions.expire(Instant::now());
        assert_eq!(sessions.granted, MAX_GRANTED - MAX_TRANSFERS);
        assert_eq!(sessions.grant(&peers[4], &items[..5]), 5);
    }

    #[test]
    fn noted_messages_wait_while_the_set_is_read_and_are_added_after() {
        const T0: i64 = 1_700_000_000_000_000_000;
        let size = Gauge::default();
        let cell = SetCell::with_size_gauge(size.clone());
        let topic: PubsubTopic = "/waku/2/rs/1/0".parse().unwrap();
        let message = |i: i64| {
            WakuMessage::builder("/app/1/chat/proto".parse().unwrap(), vec![i as u8])
                .timestamp(T0 + i)
                .build()
                .unwrap()
        };
        cell.note(&[(topic.clone(), message(0))]);
        assert_eq!(cell.len(), 1);
        assert_eq!(size.get(), 1);
        let reading = cell.read();
        // The writer does not wait for the reader: the message is queued (and not counted).
        cell.note(&[(topic.clone(), message(1)), (topic.clone(), message(2))]);
        assert_eq!(reading.len(), 1);
        assert_eq!(cell.queue().len(), 2);
        assert_eq!(size.get(), 1);
        drop(reading);
        assert_eq!(cell.len(), 3);
        assert!(cell.queue().is_empty());
        assert_eq!(size.get(), 3);
        let id = SyncId {
            time: T0 + 2,
            hash: *message(2).hash(topic.as_str()).as_bytes(),
        };
        assert!(cell.read().contains(&id));
    }
}
