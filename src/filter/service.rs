//! The filter v2 service: who is subscribed to what, within limits, and the push of every
//! matching relayed message to its subscribers.
//!
//! Each subscriber has a bounded queue and a writer task that keeps one push stream open and
//! writes every frame on it. Delivery only ever `try_send`s into those queues, so a slow
//! subscriber loses its own messages (counted) and never holds up relay or other subscribers.
//! A subscriber whose stream cannot be reopened is dropped; one that stops pinging expires
//! after the TTL.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::AsyncWriteExt;
use libp2p::PeerId;
use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use tokio::sync::mpsc;

use super::protocol::{self, Criterion, Request, status};
use crate::{
    codec::encode_frame,
    proto::filter::{FilterSubscribeRequest, FilterSubscribeResponse, MessagePush},
    relay::Delivered,
};

/// Limits of the service. The defaults follow the reference node where it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Peers subscribed at once.
    pub max_subscribers: usize,
    /// (pubsub topic, content topic) pairs per peer.
    pub max_criteria_per_peer: usize,
    /// A subscription without a ping or subscribe for this long expires.
    pub ttl: Duration,
    /// Pushes queued per subscriber before new ones are dropped for it.
    pub queue_per_subscriber: usize,
    /// Requests a peer may make per minute; more get 429.
    pub requests_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_subscribers: 100,
            max_criteria_per_peer: 1_000,
            ttl: Duration::from_secs(300),
            queue_per_subscriber: 256,
            requests_per_minute: 120,
        }
    }
}

/// How long opening a push stream or writing one frame may take before the subscriber counts
/// as gone for this message.
const PUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages in a row that could not be pushed before the subscriber is dropped.
const MAX_FAILED_PUSHES: u32 = 3;

struct Subscriber {
    criteria: HashSet<Criterion>,
    last_seen: Instant,
    queue: mpsc::Sender<Bytes>,
}

/// Requests a peer made in the current minute.
struct RequestWindow {
    started: Instant,
    count: u32,
}

#[derive(Default)]
struct State {
    subscribers: HashMap<PeerId, Subscriber>,
    windows: HashMap<PeerId, RequestWindow>,
}

/// Counters of the service, exported as Prometheus metrics (`waku_filter_...`).
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Frames written to subscribers.
    pub pushed: Counter,
    /// Messages dropped because a subscriber's queue was full.
    pub dropped: Counter,
    /// Subscribers dropped because their push stream failed.
    pub vanished: Counter,
    /// Subscribers now.
    pub subscribers: Gauge,
}

/// The filter service of a node.
pub struct Service {
    limits: Limits,
    cluster: u16,
    shard_count: u16,
    control: libp2p_stream::Control,
    state: Mutex<State>,
    counters: Counters,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("filter::Service")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A service opening push streams through `control`, autosharding requests without a
    /// pubsub topic in `cluster` over `shard_count` shards, counting into `counters`.
    pub fn new(
        limits: Limits,
        cluster: u16,
        shard_count: u16,
        control: libp2p_stream::Control,
        counters: Counters,
    ) -> Arc<Self> {
        Arc::new(Self {
            limits,
            cluster,
            shard_count,
            control,
            state: Mutex::new(State::default()),
            counters,
        })
    }

    /// The service's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Subscribers now.
    pub fn subscriber_count(&self) -> usize {
        self.lock().subscribers.len()
    }

    /// Every subscriber with its criteria, sorted (for the admin API).
    pub fn subscriptions(&self) -> Vec<(PeerId, Vec<Criterion>)> {
        let mut out: Vec<_> = self
            .lock()
            .subscribers
            .iter()
            .map(|(peer, s)| {
                let mut criteria: Vec<_> = s.criteria.iter().cloned().collect();
                criteria.sort_by(|a, b| {
                    (a.0.as_str(), a.1.as_str()).cmp(&(b.0.as_str(), b.1.as_str()))
                });
                (*peer, criteria)
            })
            .collect();
        out.sort_by_key(|(peer, _)| *peer);
        out
    }

    /// Criteria of `peer` now.
    pub fn criteria_of(&self, peer: &PeerId) -> usize {
        self.lock()
            .subscribers
            .get(peer)
            .map_or(0, |s| s.criteria.len())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("never poisoned")
    }

    /// Answers one subscribe-protocol request from `peer`. Cheap: no I/O, so the swarm task
    /// may call it directly.
    pub fn handle(
        self: &Arc<Self>,
        peer: PeerId,
        req: &FilterSubscribeRequest,
    ) -> FilterSubscribeResponse {
        let response = self.answer(peer, req);
        self.count_subscribers();
        response
    }

    fn count_subscribers(&self) {
        let n = self.lock().subscribers.len();
        self.counters.subscribers.set(n as i64);
    }

    fn answer(
        self: &Arc<Self>,
        peer: PeerId,
        req: &FilterSubscribeRequest,
    ) -> FilterSubscribeResponse {
        let id = req.request_id.clone();
        let answer = |code, desc: &str| protocol::response_of(id.clone(), code, desc);
        if !self.admit(peer) {
            return answer(
                status::TOO_MANY_REQUESTS,
                &format!(
                    "more than {} filter requests in a minute; slow down",
                    self.limits.requests_per_minute
                ),
            );
        }
        let request = match protocol::parse(req, self.cluster, self.shard_count) {
            Ok(r) => r,
            Err(reason) => return answer(status::BAD_REQUEST, &reason.to_string()),
        };
        let mut state = self.lock();
        match request {
            Request::Ping => match state.subscribers.get_mut(&peer) {
                Some(s) => {
                    s.last_seen = Instant::now();
                    answer(status::OK, "OK")
                }
                None => answer(status::NOT_FOUND, "peer has no subscriptions"),
            },
            Request::UnsubscribeAll => match state.subscribers.remove(&peer) {
                Some(_) => answer(status::OK, "OK"),
                None => answer(status::NOT_FOUND, "peer has no subscriptions"),
            },
            Request::Unsubscribe(criteria) => {
                let Some(s) = state.subscribers.get_mut(&peer) else {
                    return answer(status::NOT_FOUND, "peer has no subscriptions");
                };
                let before = s.criteria.len();
                for c in &criteria {
                    s.criteria.remove(c);
                }
                let removed = before - s.criteria.len();
                s.last_seen = Instant::now();
                if s.criteria.is_empty() {
                    state.subscribers.remove(&peer);
                }
                if removed == 0 {
                    answer(
                        status::NOT_FOUND,
                        "peer is not subscribed to those content topics",
                    )
                } else {
                    answer(status::OK, "OK")
                }
            }
            Request::Subscribe(criteria) => {
                if !state.subscribers.contains_key(&peer)
                    && state.subscribers.len() >= self.limits.max_subscribers
                {
                    return answer(
                        status::SERVICE_UNAVAILABLE,
                        &format!(
                            "the service has its maximum of {} subscribers",
                            self.limits.max_subscribers
                        ),
                    );
                }
                let existing = state.subscribers.get(&peer).map(|s| &s.criteria);
                let new = criteria
                    .iter()
                    .filter(|c| existing.is_none_or(|e| !e.contains(*c)))
                    .collect::<HashSet<_>>()
                    .len();
                let total = existing.map_or(0, HashSet::len) + new;
                if total > self.limits.max_criteria_per_peer {
                    return answer(
                        status::SERVICE_UNAVAILABLE,
                        &format!(
                            "the subscription would hold {total} content filters; at most {} per peer",
                            self.limits.max_criteria_per_peer
                        ),
                    );
                }
                let subscriber = state
                    .subscribers
                    .entry(peer)
                    .or_insert_with(|| self.new_subscriber(peer));
                subscriber.criteria.extend(criteria);
                subscriber.last_seen = Instant::now();
                answer(status::OK, "OK")
            }
        }
    }

    /// Counts a request of `peer`; false when it is over its rate.
    fn admit(&self, peer: PeerId) -> bool {
        let mut state = self.lock();
        let now = Instant::now();
        let w = state.windows.entry(peer).or_insert(RequestWindow {
            started: now,
            count: 0,
        });
        if now.duration_since(w.started) >= Duration::from_secs(60) {
            *w = RequestWindow {
                started: now,
                count: 0,
            };
        }
        w.count += 1;
        w.count <= self.limits.requests_per_minute
    }

    fn new_subscriber(self: &Arc<Self>, peer: PeerId) -> Subscriber {
        let (tx, rx) = mpsc::channel(self.limits.queue_per_subscriber);
        tokio::spawn(push_writer(
            peer,
            self.control.clone(),
            rx,
            Arc::downgrade(self),
        ));
        Subscriber {
            criteria: HashSet::new(),
            last_seen: Instant::now(),
            queue: tx,
        }
    }

    /// Queues `d` for every subscriber that wants it; never waits.
    pub fn dispatch(&self, d: &Delivered) {
        let state = self.lock();
        let criterion = (d.topic.clone(), d.message.content_topic().clone());
        let mut frame = None;
        for s in state.subscribers.values() {
            if !s.criteria.contains(&criterion) {
                continue;
            }
            let frame = frame
                .get_or_insert_with(|| {
                    Bytes::from(encode_frame(&MessagePush {
                        waku_message: d.message.to_proto(),
                        pubsub_topic: d.topic.as_str().to_owned(),
                    }))
                })
                .clone();
            if s.queue.try_send(frame).is_err() {
                self.counters.dropped.inc();
            }
        }
    }

    /// Drops subscriptions not refreshed within the TTL and forgets idle request windows.
    pub fn expire(&self) -> usize {
        let mut state = self.lock();
        let now = Instant::now();
        let ttl = self.limits.ttl;
        let before = state.subscribers.len();
        state
            .subscribers
            .retain(|_, s| now.duration_since(s.last_seen) < ttl);
        state
            .windows
            .retain(|_, w| now.duration_since(w.started) < Duration::from_secs(60));
        let expired = before - state.subscribers.len();
        self.counters
            .subscribers
            .set(state.subscribers.len() as i64);
        expired
    }

    fn drop_vanished(&self, peer: &PeerId) {
        let removed = self.lock().subscribers.remove(peer).is_some();
        self.count_subscribers();
        if removed {
            self.counters.vanished.inc();
            tracing::info!(%peer, "dropped a filter subscriber whose push stream failed");
        }
    }
}

/// Writes queued frames to `peer` on one push stream, reopening it once when it breaks. Ends
/// when the subscription is removed (the queue's sender is dropped) or the peer is gone.
async fn push_writer(
    peer: PeerId,
    mut control: libp2p_stream::Control,
    mut queue: mpsc::Receiver<Bytes>,
    service: std::sync::Weak<Service>,
) {
    let mut stream: Option<libp2p::Stream> = None;
    let mut failures = 0;
    while let Some(frame) = queue.recv().await {
        let mut delivered = false;
        for _attempt in 0..2 {
            if stream.is_none() {
                match tokio::time::timeout(
                    PUSH_TIMEOUT,
                    control.open_stream(peer, protocol::PUSH_PROTOCOL),
                )
                .await
                {
                    Ok(Ok(s)) => stream = Some(s),
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "cannot open a filter push stream");
                        break;
                    }
                    Err(_) => break,
                }
            }
            let s = stream.as_mut().expect("opened above");
            let written = tokio::time::timeout(PUSH_TIMEOUT, async {
                s.write_all(&frame).await?;
                s.flush().await
            })
            .await;
            if matches!(written, Ok(Ok(()))) {
                delivered = true;
                break;
            }
            stream = None;
        }
        let Some(service) = service.upgrade() else {
            return;
        };
        if delivered {
            failures = 0;
            service.counters.pushed.inc();
        } else {
            failures += 1;
            if failures >= MAX_FAILED_PUSHES {
                service.drop_vanished(&peer);
                return;
            }
        }
    }
    if let Some(mut s) = stream {
        let _ = s.close().await;
    }
}

/// Feeds relayed messages to the service and expires old subscriptions until `delivered`
/// closes.
pub async fn run(
    service: Arc<Service>,
    mut delivered: tokio::sync::broadcast::Receiver<Delivered>,
) {
    let sweep = (service.limits.ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
    let mut ticker = tokio::time::interval(sweep);
    loop {
        tokio::select! {
            received = delivered.recv() => match received {
                Ok(d) => service.dispatch(&d),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "the filter service fell behind relay; messages were not pushed");
                }
                Err(_) => return,
            },
            _ = ticker.tick() => {
                let expired = service.expire();
                if expired > 0 {
                    tracing::debug!(expired, "filter subscriptions expired");
                }
            }
        }
    }
}
