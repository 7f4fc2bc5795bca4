//! [`NodeHandle`]: what the CLI, the REST API and the service protocols use to drive a
//! running node. Requests that need the swarm become [`Command`]s for the swarm task; proving
//! and validation run on the blocking pool.

use std::{
    collections::HashSet,
    sync::{Arc, RwLock},
};

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::{
    Answer, Command, NodeError, NodeEvent, PeerInfo, SyncState, metrics, random_request_id,
};
use crate::{
    enr,
    lightpush::{Refused, lending},
    message::{MessageHash, WakuMessage},
    peer_exchange,
    relay::{
        Delivered,
        pipeline::{Rejection, Validator, Verdict, describe_spam},
        publisher::{MemberPaths, PublishError, Publisher},
    },
    topics::PubsubTopic,
};

/// Controls a running node.
#[derive(Clone)]
pub struct NodeHandle {
    pub(crate) peer_id: PeerId,
    pub(crate) validator: Arc<Validator>,
    pub(crate) metrics: Arc<metrics::Metrics>,
    pub(crate) archive: Option<Arc<crate::store::Archive>>,
    /// Commits to the archive what the node acknowledges.
    pub(crate) writer: Option<crate::store::writer::Writer>,
    pub(crate) store_sync: Option<Arc<crate::store::sync::StoreSync>>,
    /// Turns true once the swarm loop has ended and its listeners are closed.
    pub(crate) stopped: watch::Receiver<bool>,
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) delivered: broadcast::Sender<Delivered>,
    pub(crate) events: broadcast::Sender<NodeEvent>,
    pub(crate) publisher: Option<Arc<Publisher>>,
    pub(crate) member_path: watch::Receiver<MemberPaths>,
    pub(crate) lending: Option<Arc<lending::LendingPool>>,
    pub(crate) filter_service: Option<Arc<crate::filter::Service>>,
    pub(crate) filter_client: crate::filter::Client,
    pub(crate) peer_exchange: Arc<peer_exchange::Cache>,
    pub(crate) sync: watch::Receiver<SyncState>,
    pub(crate) enforces_rln: bool,
    pub(crate) cluster: u16,
    pub(crate) shards: Arc<RwLock<HashSet<u16>>>,
    pub(crate) shard_count: u16,
    pub(crate) serves: super::behaviour::Serves,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

impl NodeHandle {
    /// The node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// The cluster id.
    pub fn cluster(&self) -> u16 {
        self.cluster
    }

    /// Shards per cluster for autosharding.
    pub fn shard_count(&self) -> u16 {
        self.shard_count
    }

    /// Whether RLN is enforced.
    pub fn enforces_rln(&self) -> bool {
        self.enforces_rln
    }

    /// The membership this node publishes with, if any: `(index, rate limit)`.
    pub fn membership(&self) -> Option<(u64, u64)> {
        self.publisher
            .as_ref()
            .map(|p| (p.member().index, p.member().limit))
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Sends a request of `protocol` to a peer through the swarm task and waits for its answer.
    async fn request<T>(
        &self,
        protocol: &'static str,
        make: impl FnOnce(oneshot::Sender<Answer<T>>) -> Command,
    ) -> Result<T, NodeError> {
        self.ask(make)
            .await?
            .map_err(|source| NodeError::Request { protocol, source })
    }

    /// Subscribes to a pubsub topic; false if already subscribed.
    pub async fn subscribe(&self, topic: PubsubTopic) -> Result<bool, NodeError> {
        self.ask(|tx| Command::Subscribe(topic, tx)).await
    }

    /// Unsubscribes; false if not subscribed.
    pub async fn unsubscribe(&self, topic: PubsubTopic) -> Result<bool, NodeError> {
        self.ask(|tx| Command::Unsubscribe(topic, tx)).await
    }

    /// The subscribed pubsub topics.
    pub async fn topics(&self) -> Result<Vec<PubsubTopic>, NodeError> {
        self.ask(Command::Topics).await
    }

    /// The peers in our gossipsub mesh of `topic`.
    pub async fn mesh_peer_ids(&self, topic: PubsubTopic) -> Result<Vec<PeerId>, NodeError> {
        self.ask(|tx| Command::MeshPeerIds(topic, tx)).await
    }

    /// Whether the node archives messages and answers store queries.
    pub fn serves_store(&self) -> bool {
        self.serves.store
    }

    /// Whether the node serves lightpush (v3 and the legacy v2).
    pub fn serves_lightpush(&self) -> bool {
        self.serves.lightpush
    }

    /// Whether the node answers peer exchange.
    pub fn serves_peer_exchange(&self) -> bool {
        self.serves.peer_exchange
    }

    /// Peers in our mesh for `topic`.
    pub async fn mesh_peers(&self, topic: PubsubTopic) -> Result<usize, NodeError> {
        self.ask(|tx| Command::MeshPeers(topic, tx)).await
    }

    /// Publishes `message` on `topic`, as a REST client means it: when RLN is enforced, a
    /// message that brings its own proof is validated as a relayed one would be
    /// ([`Self::publish_proved`]), and one without is proved with our membership
    /// ([`Self::publish_own`]). Returns its hash.
    pub async fn publish(
        &self,
        topic: PubsubTopic,
        message: WakuMessage,
    ) -> Result<MessageHash, NodeError> {
        if !self.enforces_rln {
            return self.send(topic, message).await;
        }
        if message.rate_limit_proof().is_some() {
            self.publish_proved(topic, message).await
        } else {
            self.publish_own(topic, message).await
        }
    }

    /// Publishes a message that carries somebody else's proof, after the whole relay pipeline
    /// (proof included): spam is refused here, not sent on.
    pub async fn publish_proved(
        &self,
        topic: PubsubTopic,
        message: WakuMessage,
    ) -> Result<MessageHash, NodeError> {
        let validator = self.validator.clone();
        let data = message.encode();
        let verdict = tokio::task::spawn_blocking(move || validator.validate(&data).0)
            .await
            .map_err(|_| NodeError::Stopped)?;
        // Counted like relayed messages: a client pushing broken proofs shows on the same
        // dashboard as a peer relaying them.
        self.metrics.count_verdict(verdict.label());
        if let Verdict::Reject(Rejection::DoubleSignal { secret, commitment }) = &verdict {
            tracing::warn!(
                "double signalling refused at publish: {}",
                describe_spam(secret, commitment)
            );
            let _ = self.events.send(NodeEvent::Spam {
                from: self.peer_id,
                commitment: *commitment,
                secret: *secret,
            });
        }
        if verdict != Verdict::Accept {
            return Err(NodeError::Rejected(verdict.label()));
        }
        self.send(topic, message).await
    }

    /// Proves `message` with the node's own membership and publishes it.
    pub async fn publish_own(
        &self,
        topic: PubsubTopic,
        message: WakuMessage,
    ) -> Result<MessageHash, NodeError> {
        let Some(publisher) = self.publisher.clone() else {
            return Err(NodeError::NoMembership);
        };
        let index = publisher.member().index as usize;
        let path = self.member_path.borrow().get(&index).cloned();
        let validator = self.validator.clone();
        let started = std::time::Instant::now();
        let (proved, remaining) = tokio::task::spawn_blocking(move || {
            let now = crate::clock::now_ns();
            let proved = publisher.prove(message, path, now)?;
            record_own(&validator, &proved, now)?;
            Ok::<_, PublishError>((proved, publisher.remaining(now)))
        })
        .await
        .map_err(|_| NodeError::Stopped)??;
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.proof_generation.observe(seconds);
        self.metrics.last_proof_generation.set(seconds);
        self.metrics.generated_proofs.inc();
        if let Some(remaining) = remaining {
            self.metrics.remaining_proofs.set(remaining as i64);
        }
        self.send(topic, proved).await
    }

    /// Publishes a message whose proof this node lent: the proof is the node's own, so it is
    /// not verified again; its share is recorded so that it can never leave twice.
    pub async fn publish_lent(
        &self,
        topic: PubsubTopic,
        message: WakuMessage,
    ) -> Result<MessageHash, NodeError> {
        let validator = self.validator.clone();
        let message = tokio::task::spawn_blocking(move || {
            record_own(&validator, &message, crate::clock::now_ns()).map(|()| message)
        })
        .await
        .map_err(|_| NodeError::Stopped)??;
        self.send(topic, message).await
    }

    /// Hands `message` to gossipsub and to local consumers. A store node commits it to its
    /// archive first, so a message anyone saw leave is archived even if the process is killed
    /// right after (it stays archived if gossipsub then refuses it).
    async fn send(
        &self,
        topic: PubsubTopic,
        message: WakuMessage,
    ) -> Result<MessageHash, NodeError> {
        if let Some(writer) = &self.writer {
            writer
                .keep([(topic.clone(), message.clone())], crate::clock::now_ns())
                .await;
        }
        let (name, shard, bytes) = (
            topic.as_str().to_owned(),
            topic.static_shard().map(|s| s.shard),
            message.encoded_len(),
        );
        let hash = self
            .ask(|tx| Command::Publish(topic, Box::new(message), tx))
            .await??;
        self.metrics.count_published(&name, shard, bytes);
        Ok(hash)
    }

    /// Queries the store of `peer` (which must be connected or dialable from the peer
    /// store), checking every returned message against its hash.
    pub async fn store_query(
        &self,
        peer: PeerId,
        query: &crate::store::Query,
    ) -> Result<crate::store::Page, NodeError> {
        let request = crate::store::protocol::request_of(random_request_id(), query);
        let response = self
            .request("store", |tx| {
                Command::StoreQuery(peer, Box::new(request), tx)
            })
            .await?;
        Ok(crate::store::protocol::page_of(&response)?)
    }

    /// Pushes `message` to the lightpush service `peer` (on `topic`, or the content topic's
    /// shard when `None`) and returns its answer.
    pub async fn lightpush(
        &self,
        peer: PeerId,
        topic: Option<PubsubTopic>,
        message: &WakuMessage,
    ) -> Result<crate::proto::lightpush::LightpushResponse, NodeError> {
        let request = crate::proto::lightpush::LightpushRequest {
            request_id: random_request_id(),
            pubsub_topic: topic.map(|t| t.as_str().to_owned()),
            message: message.to_proto(),
        };
        self.request("lightpush", |tx| {
            Command::Lightpush(peer, Box::new(request), tx)
        })
        .await
    }

    /// Sends a filter request of `kind` to the filter service `peer` and returns its answer.
    /// A 200 to a subscribe makes this node accept that service's pushes (see
    /// [`Self::filter_messages`]); a 200 to an unsubscribe-all stops it.
    pub async fn filter_request(
        &self,
        peer: PeerId,
        kind: crate::filter::protocol::Kind,
        pubsub_topic: Option<&PubsubTopic>,
        content_topics: &[crate::topics::ContentTopic],
    ) -> Result<crate::proto::filter::FilterSubscribeResponse, NodeError> {
        use crate::filter::protocol::Kind;
        let request = crate::filter::protocol::request_of(
            random_request_id(),
            kind,
            pubsub_topic,
            content_topics,
        );
        if kind == Kind::Subscribe {
            // Pushes may arrive before the answer does.
            self.filter_client.subscribed_with(peer);
        }
        let response = self
            .request("filter", |tx| Command::Filter(peer, Box::new(request), tx))
            .await?;
        if kind == Kind::UnsubscribeAll && response.status_code == 200 {
            self.filter_client.unsubscribed_from(&peer);
        }
        Ok(response)
    }

    /// Messages pushed to us by the filter services we subscribed with, from now on.
    pub fn filter_messages(&self) -> broadcast::Receiver<crate::filter::Pushed> {
        self.filter_client.pushed()
    }

    /// The filter client's side: the services we subscribed with and their push streams.
    pub fn filter_client(&self) -> &crate::filter::Client {
        &self.filter_client
    }

    /// The filter service, when this node offers one.
    pub fn filter_service(&self) -> Option<&crate::filter::Service> {
        self.filter_service.as_deref()
    }

    /// This node's own record (ENR), when it has one.
    pub fn enr(&self) -> Option<enr::Enr> {
        self.peer_exchange.own()
    }

    /// The records this node's peer exchange hands out now (its own first).
    pub fn known_records(&self) -> Vec<enr::Enr> {
        self.peer_exchange.records()
    }

    /// Asks `peer` for up to `num_peers` records of other nodes; returns those that verify.
    pub async fn peer_exchange(
        &self,
        peer: PeerId,
        num_peers: u64,
    ) -> Result<Vec<enr::Enr>, NodeError> {
        let rpc = self
            .request("peer exchange", |tx| {
                Command::PeerExchange(peer, num_peers, tx)
            })
            .await?;
        let records = peer_exchange::records_of(&rpc)?;
        self.learn(
            super::peers::Origin::PeerExchange,
            records.iter().map(super::Found::of_record).collect(),
        );
        Ok(records)
    }

    /// Whether this node lends proofs.
    pub fn lends(&self) -> bool {
        self.lending.is_some()
    }

    /// Attaches a proof lent from the pool to `message`, pushed by `client`.
    pub async fn lend(
        &self,
        client: lending::Client,
        message: WakuMessage,
    ) -> Result<WakuMessage, lending::LendError> {
        let Some(pool) = self.lending.clone() else {
            return Err(lending::LendError::NoPool);
        };
        let paths = self.member_path.borrow().clone();
        let metrics = self.metrics.clone();
        tokio::task::spawn_blocking(move || pool.lend(client, message, &paths, &metrics.lending))
            .await
            .unwrap_or_else(|e| Err(PublishError::Task(e).into()))
    }

    /// Store sync, when the node runs it (its set, configuration and counters).
    pub fn store_sync(&self) -> Option<&Arc<crate::store::sync::StoreSync>> {
        self.store_sync.as_ref()
    }

    /// Reconciles the archive with `peer` now (store sync), and pushes what it lacks.
    pub async fn store_sync_with(
        &self,
        peer: PeerId,
    ) -> Result<crate::store::sync::SyncReport, NodeError> {
        let Some(sync) = &self.store_sync else {
            return Err(NodeError::BadMessage(
                "this node does not run store sync (--store --store-sync)".into(),
            ));
        };
        sync.sync_with(peer).await.map_err(NodeError::StoreSync)
    }

    /// Queries this node's own archive.
    pub async fn local_store_query(
        &self,
        query: crate::store::Query,
    ) -> Result<crate::store::Page, NodeError> {
        let Some(archive) = self.archive.clone() else {
            return Err(NodeError::NoArchive);
        };
        archive.query(&query).await.map_err(|e| match e {
            crate::store::ArchiveError::BadQuery(text) => NodeError::BadMessage(text),
            other => NodeError::Archive(other),
        })
    }

    /// Dials a peer.
    pub async fn dial(&self, address: Multiaddr) -> Result<(), NodeError> {
        self.ask(|tx| Command::Dial(address, tx))
            .await?
            .map_err(NodeError::Dial)
    }

    /// Connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NodeError> {
        self.ask(|tx| Command::Peers(false, tx)).await
    }

    /// Every peer the peer manager knows, connected or not (connected ones first).
    pub async fn known_peers(&self) -> Result<Vec<PeerInfo>, NodeError> {
        self.ask(|tx| Command::Peers(true, tx)).await
    }

    /// Hands peers found by discovery to the peer manager, which dials them when the node
    /// needs them. Returns false if the node stopped or its command queue is full.
    pub fn learn(&self, origin: super::peers::Origin, found: Vec<super::Found>) -> bool {
        self.commands
            .try_send(Command::Learn(origin, found))
            .is_ok()
    }

    /// The addresses the node listens on.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NodeError> {
        self.ask(Command::ListenAddrs).await
    }

    /// Messages delivered from now on.
    pub fn delivered(&self) -> broadcast::Receiver<Delivered> {
        self.delivered.subscribe()
    }

    /// Events from now on.
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// The chain sync's state.
    pub fn sync_state(&self) -> SyncState {
        self.sync.borrow().clone()
    }

    /// Waits until the chain sync has completed a step (immediately without RLN).
    pub async fn wait_ready(&self) -> Result<(), NodeError> {
        if !self.enforces_rln {
            return Ok(());
        }
        let mut sync = self.sync.clone();
        sync.wait_for(|s| s.ready)
            .await
            .map(drop)
            .map_err(|_| NodeError::Stopped)
    }

    /// Waits until the sync has reached `block` or later.
    pub async fn wait_synced_to(&self, block: u64) -> Result<(), NodeError> {
        let mut sync = self.sync.clone();
        sync.wait_for(|s| s.ready && s.block >= block)
            .await
            .map(drop)
            .map_err(|_| NodeError::Stopped)
    }

    /// Stops the node and returns once it has stopped: its connections and listeners are
    /// closed (its ports free) and, on a store node, what its archive queue held is written
    /// (for at most [`crate::store::writer::DRAIN_FOR`]); the answer says how that went.
    pub async fn shutdown(&self) -> Option<crate::store::writer::Drained> {
        let _ = self.commands.send(Command::Shutdown).await;
        let mut stopped = self.stopped.clone();
        // An error means the loop is gone already, which is stopped too.
        let _ = stopped.wait_for(|s| *s).await;
        match &self.writer {
            Some(writer) => Some(writer.drained().await),
            None => None,
        }
    }

    /// The static shards this node relays, sorted.
    pub fn shards(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self
            .shards
            .read()
            .expect("never poisoned")
            .iter()
            .copied()
            .collect();
        v.sort_unstable();
        v
    }

    /// Whether `shard` is among those this node serves.
    pub fn serves_shard(&self, shard: u16) -> bool {
        self.shards.read().expect("never poisoned").contains(&shard)
    }
}

/// Records the share of a proof this node made before the message leaves. The last guard of a
/// membership's secret: whatever happened to the counter, a second share of a nullifier this
/// node sent never leaves.
fn record_own(validator: &Validator, message: &WakuMessage, now: i64) -> Result<(), PublishError> {
    validator.record_own(message, now).map_err(|verdict| {
        let error = PublishError::reused(message, verdict);
        tracing::error!(%error, "own message not sent");
        error
    })
}

impl crate::lightpush::Relay for NodeHandle {
    fn cluster(&self) -> u16 {
        self.cluster
    }

    fn shard_count(&self) -> u16 {
        self.shard_count
    }

    fn serves_shard(&self, shard: u16) -> bool {
        NodeHandle::serves_shard(self, shard)
    }

    fn enforces_rln(&self) -> bool {
        self.enforces_rln
    }

    fn lends(&self) -> bool {
        self.lending.is_some()
    }

    async fn mesh_peers(&self, topic: PubsubTopic) -> usize {
        NodeHandle::mesh_peers(self, topic).await.unwrap_or(0)
    }

    async fn lend(
        &self,
        client: lending::Client,
        message: WakuMessage,
    ) -> Result<WakuMessage, lending::LendError> {
        NodeHandle::lend(self, client, message).await
    }

    async fn relay(
        &self,
        topic: PubsubTopic,
        message: WakuMessage,
        lent: bool,
    ) -> Result<(), Refused> {
        let result = if lent {
            self.publish_lent(topic, message).await
        } else {
            self.publish(topic, message).await
        };
        match result {
            Ok(_) => Ok(()),
            Err(NodeError::Rejected(reason)) => Err(Refused::Invalid(reason.to_owned())),
            Err(NodeError::Publish(PublishError::NotSynced { .. })) => Err(Refused::NotSynced),
            Err(NodeError::Publish(e @ PublishError::WouldDoubleSignal { .. })) => {
                Err(Refused::Invalid(e.to_string()))
            }
            Err(e) => Err(Refused::Failed(e.to_string())),
        }
    }
}
