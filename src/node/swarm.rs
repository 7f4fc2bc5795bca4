//! The swarm loop: one task owns the libp2p swarm and reacts to its events, to the handle's
//! commands, to validation outcomes and to answers of the service protocols.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, Swarm, gossipsub, identify, multiaddr::Protocol, request_response,
    swarm::SwarmEvent,
};
use tokio::sync::{Notify, broadcast, mpsc, watch};

use super::{
    Command, NodeError, NodeEvent, NodeHandle, PeerInfo, SyncState,
    behaviour::{Behaviour, BehaviourEvent, Serves},
    gate,
    metrics::Metrics,
    peers::{self, Book, Direction, PeerFile},
};
use super::{
    services,
    validation::{Job, Jobs, Outcome},
};
use crate::{
    filter,
    message::WakuMessage,
    metadata::Metadata,
    relay::{Delivered, gossip},
    store::Archive,
    topics::PubsubTopic,
};

pub(super) struct StaticPeer {
    pub(super) address: Multiaddr,
    pub(super) peer: Option<PeerId>,
    pub(super) failures: u32,
    pub(super) next_dial: Option<Instant>,
}

#[derive(Default)]
pub(super) struct PeerState {
    pub(super) addresses: Vec<Multiaddr>,
    protocols: Vec<String>,
    metadata: Option<Metadata>,
    /// Whether the first connection was dialled by us.
    outbound: bool,
    agent: Option<String>,
}

pub(super) struct Runner {
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) jobs: Arc<Jobs>,
    pub(super) outcomes: mpsc::Receiver<Outcome>,
    pub(super) delivered: broadcast::Sender<Delivered>,
    pub(super) events: broadcast::Sender<NodeEvent>,
    pub(super) peers: HashMap<PeerId, PeerState>,
    pub(super) static_peers: Vec<StaticPeer>,
    pub(super) cluster: u16,
    pub(super) shards: Arc<RwLock<HashSet<u16>>>,
    /// The chain sync's progress, to release messages held on an unknown root.
    pub(super) sync: watch::Receiver<SyncState>,
    pub(super) sync_now: Arc<Notify>,
    /// Messages whose root was unknown, waiting for a sync step that started after them.
    pub(super) held: VecDeque<Job>,
    pub(super) stop: watch::Sender<bool>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) archive: Option<Arc<Archive>>,
    /// Answers to inbound requests, ready to be written.
    pub(super) replies: (
        mpsc::Sender<services::Reply>,
        mpsc::Receiver<services::Reply>,
    ),
    /// Our own requests waiting for answers.
    pub(super) pending: services::Pending,
    /// The filter service, when this node offers one.
    pub(super) filter_service: Option<Arc<filter::Service>>,
    /// The service protocols' request limits.
    pub(super) rate_limits: Arc<crate::rate_limit::RateLimits>,
    /// The records peer exchange hands out.
    pub(super) peer_exchange: Arc<crate::peer_exchange::Cache>,
    /// The services this node answers.
    pub(super) serves: Serves,
    /// The node's own handle, for services that publish (set right after start).
    pub(super) handle: Option<NodeHandle>,
    /// Every peer the node knows: the peer manager's book.
    pub(super) book: Book,
    /// Where the book is kept across restarts.
    pub(super) peer_file: Option<PeerFile>,
    /// How many peers the manager keeps connected.
    pub(super) targets: peers::Targets,
    /// With `relay_client`: the relays this node reserved slots on (or asked to).
    pub(super) relay_client: Option<Reservations>,
}

/// Relays a node behind a NAT holds reservations on.
#[derive(Debug, Default)]
pub(super) struct Reservations {
    asked: HashMap<PeerId, libp2p::core::transport::ListenerId>,
    /// The relayed addresses the node listens on.
    addresses: Vec<Multiaddr>,
    /// Where they go into the node's record (discv5), when it has one.
    pub(super) record: Option<mpsc::Sender<Vec<Multiaddr>>>,
}

impl Reservations {
    fn tell_record(&self) {
        if let Some(r) = &self.record {
            let _ = r.try_send(self.addresses.clone());
        }
    }
}

/// Relays reserved on at once.
const MAX_RELAYS: usize = 2;

/// The circuit relay v2 protocol a relay answers reservations on.
const HOP_PROTOCOL: &str = "/libp2p/circuit/relay/0.2.0/hop";

/// Seconds between two saves of the peer book.
const SAVE_PEERS_EVERY: u32 = 2;

impl Runner {
    pub(super) async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ticks: u32 = 0;
        // Without RLN nothing syncs: the sender is gone and `changed` would fire at once.
        let sync_alive = self.sync.has_changed().is_ok();
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm(event),
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown) | None => break,
                    Some(c) => self.on_command(c),
                },
                Some(outcome) = self.outcomes.recv() => self.on_outcome(outcome),
                Some(reply) = self.replies.1.recv() => reply(self.swarm.behaviour_mut()),
                Ok(()) = self.sync.changed(), if sync_alive => self.release_held(),
                _ = tick.tick() => {
                    self.redial_due();
                    self.check_scores();
                    self.release_held();
                    self.dial_wanted();
                    ticks = ticks.wrapping_add(1);
                    if ticks.is_multiple_of(SAVE_PEERS_EVERY) {
                        self.save_peers();
                    }
                }
            }
        }
        self.save_peers();
        let _ = self.stop.send(true);
    }

    fn my_metadata(&self) -> Metadata {
        let mut shards: Vec<u32> = self
            .shards
            .read()
            .expect("never poisoned")
            .iter()
            .map(|s| u32::from(*s))
            .collect();
        shards.sort_unstable();
        Metadata {
            cluster_id: Some(u32::from(self.cluster)),
            shards,
        }
    }

    pub(super) fn subscribe(&mut self, topic: &PubsubTopic) -> bool {
        let t = gossipsub::IdentTopic::new(topic.as_str());
        let relay = &mut self.swarm.behaviour_mut().relay;
        let new = relay.subscribe(&t).unwrap_or(false);
        self.metrics
            .pubsub_topics
            .set(relay.topics().count() as i64);
        if new && let Err(e) = relay.set_topic_params(t, gossip::topic_score_params()) {
            tracing::warn!(%topic, error = e, "peer scoring is off on this topic");
        }
        if let Some(shard) = topic.static_shard() {
            self.shards
                .write()
                .expect("never poisoned")
                .insert(shard.shard);
        }
        new
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Subscribe(topic, reply) => {
                let _ = reply.send(self.subscribe(&topic));
            }
            Command::Unsubscribe(topic, reply) => {
                let t = gossipsub::IdentTopic::new(topic.as_str());
                let was = self.swarm.behaviour_mut().relay.unsubscribe(&t);
                let topics = self.swarm.behaviour().relay.topics().count();
                self.metrics.pubsub_topics.set(topics as i64);
                if let Some(shard) = topic.static_shard() {
                    self.shards
                        .write()
                        .expect("never poisoned")
                        .remove(&shard.shard);
                }
                let _ = reply.send(was);
            }
            Command::Publish(topic, message, reply) => {
                let _ = reply.send(self.publish(topic, *message));
            }
            Command::Dial(address, reply) => {
                let _ = reply.send(self.swarm.dial(address));
            }
            Command::Peers(all, reply) => {
                let _ = reply.send(self.peer_infos(all));
            }
            Command::Learn(origin, found) => {
                for f in found {
                    self.book
                        .learn(origin, f.peer, f.addresses, f.record.as_ref());
                }
                self.metrics.peer_book.set(self.book.len() as i64);
                self.dial_wanted();
            }
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Topics(reply) => {
                let topics = self
                    .swarm
                    .behaviour()
                    .relay
                    .topics()
                    .filter_map(|t| t.as_str().parse().ok())
                    .collect();
                let _ = reply.send(topics);
            }
            Command::MeshPeers(topic, reply) => {
                let hash = gossipsub::TopicHash::from_raw(topic.as_str());
                let _ = reply.send(self.swarm.behaviour().relay.mesh_peers(&hash).count());
            }
            Command::MeshPeerIds(topic, reply) => {
                let hash = gossipsub::TopicHash::from_raw(topic.as_str());
                let _ = reply.send(
                    self.swarm
                        .behaviour()
                        .relay
                        .mesh_peers(&hash)
                        .copied()
                        .collect(),
                );
            }
            Command::StoreQuery(peer, request, reply) => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .store
                    .send_request(&peer, *request);
                self.pending.store.insert(id, reply);
            }
            Command::Lightpush(peer, request, reply) => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .lightpush
                    .send_request(&peer, *request);
                self.pending.lightpush.insert(id, reply);
            }
            Command::Filter(peer, request, reply) => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .filter
                    .send_request(&peer, *request);
                self.pending.filter.insert(id, reply);
            }
            Command::PeerExchange(peer, num_peers, reply) => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .peer_exchange
                    .send_request(&peer, crate::peer_exchange::request_of(num_peers));
                self.pending.peer_exchange.insert(id, reply);
            }
            Command::Shutdown => {}
        }
    }

    fn publish(
        &mut self,
        topic: PubsubTopic,
        message: WakuMessage,
    ) -> Result<crate::message::MessageHash, NodeError> {
        let hash = message.hash(topic.as_str());
        let data = message.encode();
        let t = gossipsub::IdentTopic::new(topic.as_str());
        match self.swarm.behaviour_mut().relay.publish(t, data) {
            Ok(_) => {}
            // Alone on the topic: the message is still ours to deliver locally.
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                tracing::debug!(%topic, "published with no peer on the topic");
            }
            Err(e) => return Err(NodeError::Relay(e)),
        }
        let _ = self.delivered.send(Delivered {
            topic,
            message,
            hash,
        });
        Ok(hash)
    }
}

impl Runner {
    fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Relay(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                self.enqueue(Job {
                    id: message_id,
                    source: propagation_source,
                    topic: message.topic,
                    data: message.data,
                    arrived: Instant::now(),
                    held: false,
                });
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                let state = self.peers.entry(peer_id).or_default();
                let first = state.protocols.is_empty();
                state.protocols = info.protocols.iter().map(ToString::to_string).collect();
                // Bounded: a peer's agent string becomes a label value.
                state.agent = Some(info.agent_version.chars().take(64).collect());
                self.book
                    .identified(peer_id, state.protocols.clone(), info.listen_addrs.clone());
                if info.protocols.iter().any(|p| p.as_ref() == HOP_PROTOCOL) {
                    self.reserve_on(peer_id, &info.listen_addrs);
                }
                self.refresh_peer_gauges();
                if first
                    && self.serves.peer_exchange
                    && info.protocols.contains(&crate::peer_exchange::PROTOCOL)
                {
                    self.fill_peer_exchange_cache(peer_id);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Metadata(event)) => self.on_metadata(event),
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(event)) => {
                if let libp2p::relay::client::Event::ReservationReqAccepted {
                    relay_peer_id,
                    renewal: false,
                    ..
                } = event
                {
                    tracing::info!(relay = %relay_peer_id, "a relay accepted our reservation");
                } else {
                    tracing::debug!(?event, "circuit relay client");
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(event)) => match event.result {
                Ok(_) => tracing::info!(
                    peer = %event.remote_peer_id,
                    "hole punching succeeded: a direct connection replaces the relayed one"
                ),
                Err(e) => tracing::info!(
                    peer = %event.remote_peer_id,
                    "hole punching failed, the connection stays relayed: {e}"
                ),
            },
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(
                libp2p::autonat::Event::StatusChanged { new, .. },
            )) => {
                let reachability = match new {
                    libp2p::autonat::NatStatus::Public(_) => "Reachable",
                    libp2p::autonat::NatStatus::Private => "NotReachable",
                    libp2p::autonat::NatStatus::Unknown => "Unknown",
                };
                let confidence = self.swarm.behaviour().autonat.confidence();
                self.metrics
                    .set_reachability(reachability, f64::from(confidence as u32));
                if new == libp2p::autonat::NatStatus::Private && self.relay_client.is_none() {
                    tracing::warn!(
                        "AutoNAT: this node is not reachable from outside, so only the peers \
                         it dials connect to it; --relay-client makes it reachable through \
                         relays"
                    );
                } else {
                    tracing::info!(status = ?new, "AutoNAT: reachability changed");
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                if address.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
                    tracing::info!(%address, "reachable through a relay");
                    if let Some(r) = &mut self.relay_client
                        && !r.addresses.contains(&address)
                        && r.addresses.len() < MAX_RELAYS
                    {
                        r.addresses.push(address);
                        r.tell_record();
                    }
                } else if self.serves.circuit_relay {
                    // Later listeners (0.0.0.0 on a new interface): see `start`.
                    self.swarm.add_external_address(address);
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                if let Some(r) = &mut self.relay_client
                    && r.addresses.contains(&address)
                {
                    r.addresses.retain(|a| *a != address);
                    r.tell_record();
                }
            }
            SwarmEvent::ListenerClosed { listener_id, .. }
            | SwarmEvent::ListenerError { listener_id, .. } => {
                if let Some(r) = &mut self.relay_client {
                    r.asked.retain(|_, id| *id != listener_id);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Store(event)) => self.on_store(event),
            SwarmEvent::Behaviour(BehaviourEvent::Lightpush(event)) => self.on_lightpush(event),
            SwarmEvent::Behaviour(BehaviourEvent::LightpushV2(event)) => {
                self.on_lightpush_v2(event);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Filter(event)) => self.on_filter(event),
            SwarmEvent::Behaviour(BehaviourEvent::PeerExchange(event)) => {
                self.on_peer_exchange(event);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                let address = endpoint.get_remote_address().clone();
                for s in &mut self.static_peers {
                    if endpoint.is_dialer() && same_address(&s.address, &address) {
                        s.peer = Some(peer_id);
                        s.failures = 0;
                        s.next_dial = None;
                        self.swarm.behaviour_mut().gate.reserve(peer_id);
                        self.book.learn_static(peer_id, s.address.clone());
                    }
                }
                let direction = if endpoint.is_dialer() {
                    Direction::Outbound
                } else {
                    Direction::Inbound
                };
                self.book.connected(
                    peer_id,
                    direction,
                    endpoint.is_dialer().then(|| address.clone()),
                );
                self.metrics.peer_book.set(self.book.len() as i64);
                let state = self.peers.entry(peer_id).or_default();
                if !state.addresses.contains(&address) {
                    state.addresses.push(address);
                }
                if num_established.get() == 1 {
                    state.outbound = endpoint.is_dialer();
                    self.metrics.peers.set(self.peers.len() as i64);
                    self.refresh_peer_gauges();
                    let ours = self.my_metadata();
                    self.swarm
                        .behaviour_mut()
                        .metadata
                        .send_request(&peer_id, ours);
                    let _ = self.events.send(NodeEvent::PeerConnected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.peers.remove(&peer_id);
                self.book.disconnected(peer_id, Instant::now());
                self.metrics.peers.set(self.peers.len() as i64);
                self.refresh_peer_gauges();
                let _ = self.events.send(NodeEvent::PeerDisconnected(peer_id));
                for s in &mut self.static_peers {
                    if s.peer == Some(peer_id) && s.failures != u32::MAX {
                        s.next_dial = Some(Instant::now() + backoff(s.failures));
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, %error, "dial failed");
                let now = Instant::now();
                if let Some(p) = peer_id
                    && !self.swarm.is_connected(&p)
                {
                    self.book.dial_failed(p, now);
                }
                for s in &mut self.static_peers {
                    let matches = match peer_id {
                        Some(p) => s.peer == Some(p) || peer_of(&s.address) == Some(p),
                        None => s.next_dial.is_none() && s.peer.is_none(),
                    };
                    if matches && !self.swarm.is_connected(&s.peer.unwrap_or(PeerId::random())) {
                        s.failures = s.failures.saturating_add(1);
                        s.next_dial = Some(now + backoff(s.failures));
                    }
                }
            }
            _ => {}
        }
    }

    fn on_metadata(&mut self, event: request_response::Event<Metadata, Metadata>) {
        let (peer, theirs) = match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let ours = self.my_metadata();
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .metadata
                    .send_response(channel, ours);
                (peer, request)
            }
            request_response::Event::Message {
                peer,
                message: request_response::Message::Response { response, .. },
                ..
            } => (peer, response),
            request_response::Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "metadata request failed");
                return;
            }
            _ => return,
        };
        if theirs
            .cluster_id
            .is_some_and(|c| c != u32::from(self.cluster))
        {
            tracing::info!(
                %peer,
                their_cluster = ?theirs.cluster_id,
                our_cluster = self.cluster,
                "disconnecting a peer of another cluster"
            );
            let _ = self.events.send(NodeEvent::ClusterMismatch {
                peer,
                cluster: theirs.cluster_id,
            });
            let _ = self.swarm.disconnect_peer_id(peer);
            self.book.refuse(peer);
            for s in &mut self.static_peers {
                if s.peer == Some(peer) {
                    // Do not keep redialling a peer that will be refused again.
                    s.next_dial = None;
                    s.failures = u32::MAX;
                }
            }
            return;
        }
        self.book.metadata(
            peer,
            theirs.cluster_id.and_then(|c| u16::try_from(c).ok()),
            theirs
                .shards
                .iter()
                .filter_map(|s| u16::try_from(*s).ok())
                .collect(),
        );
        if let Some(state) = self.peers.get_mut(&peer) {
            state.metadata = Some(theirs);
            self.refresh_peer_gauges();
        }
    }

    /// Disconnects and bans every connected peer whose relay score fell below the disconnect
    /// threshold (scores also fall by decay and behaviour penalties, not only by rejects), and
    /// counts the connections the gate refused.
    fn check_scores(&mut self) {
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for peer in peers {
            self.disconnect_if_scored_out(peer);
        }
        for refused in self.swarm.behaviour_mut().gate.take_refused() {
            self.metrics.count_refused_connection(refused.label());
        }
    }

    /// Disconnects and bans `peer` if its relay score is below the disconnect threshold. Static
    /// peers are scored like any other: they are redialled only after the ban.
    pub(super) fn disconnect_if_scored_out(&mut self, peer: PeerId) {
        let Some(score) = self.swarm.behaviour().relay.peer_score(&peer) else {
            return;
        };
        if score >= gossip::DISCONNECT_THRESHOLD || self.swarm.behaviour().gate.is_banned(&peer) {
            return;
        }
        let ip = self
            .peers
            .get(&peer)
            .and_then(|s| s.addresses.iter().find_map(gate::ip_of));
        let address_banned = self.swarm.behaviour_mut().gate.ban(peer, ip, gossip::BAN);
        tracing::warn!(
            %peer,
            score,
            ban_secs = gossip::BAN.as_secs(),
            address_banned,
            "disconnecting a peer whose relay score fell below the threshold (it sent invalid \
             messages)"
        );
        self.metrics.score_disconnects.inc();
        let _ = self.events.send(NodeEvent::ScoredOut { peer, score });
        let _ = self.swarm.disconnect_peer_id(peer);
        let until = Instant::now() + gossip::BAN;
        self.book.hold_until(peer, until);
        for s in &mut self.static_peers {
            if s.peer == Some(peer) {
                s.next_dial = Some(until);
            }
        }
    }

    pub(super) fn redial_due(&mut self) {
        let now = Instant::now();
        for i in 0..self.static_peers.len() {
            let s = &self.static_peers[i];
            let due = s.next_dial.is_some_and(|t| t <= now) && s.failures != u32::MAX;
            if !due {
                continue;
            }
            if s.peer.is_some_and(|p| self.swarm.is_connected(&p)) {
                self.static_peers[i].next_dial = None;
                continue;
            }
            let address = s.address.clone();
            let failures = s.failures;
            self.static_peers[i].next_dial = Some(now + backoff(failures.saturating_add(1)));
            if let Err(e) = self.swarm.dial(address.clone()) {
                tracing::debug!(%address, error = %e, "cannot dial a static peer");
            }
        }
    }
}

impl Runner {
    /// With `--relay-client`, asks `relay` (a peer that offers circuit relay) for a
    /// reservation, up to [`MAX_RELAYS`] relays: the node then listens on a relayed address,
    /// which identify tells its peers.
    fn reserve_on(&mut self, relay: PeerId, listen: &[Multiaddr]) {
        let Some(r) = &self.relay_client else {
            return;
        };
        if r.asked.len() >= MAX_RELAYS || r.asked.contains_key(&relay) {
            return;
        }
        let direct = |a: &&Multiaddr| {
            !a.iter().any(|p| matches!(p, Protocol::P2pCircuit))
                && gate::ip_of(a).is_some_and(|ip| !ip.is_unspecified())
        };
        let Some(base) = listen.iter().find(direct).cloned().or_else(|| {
            self.peers
                .get(&relay)
                .and_then(|s| s.addresses.iter().find(direct).cloned())
        }) else {
            return;
        };
        let base: Multiaddr = base
            .into_iter()
            .filter(|p| !matches!(p, Protocol::P2p(_)))
            .collect();
        let address = base.with(Protocol::P2p(relay)).with(Protocol::P2pCircuit);
        match self.swarm.listen_on(address.clone()) {
            Ok(id) => {
                tracing::info!(%address, "asking a relay for a reservation");
                if let Some(r) = &mut self.relay_client {
                    r.asked.insert(relay, id);
                }
            }
            Err(e) => tracing::warn!(%address, "cannot listen through a relay: {e}"),
        }
    }

    /// Dials what the peer manager wants dialled now: relay peers for shards short of their
    /// target, service peers for protocols without one.
    pub(super) fn dial_wanted(&mut self) {
        let mut shards: Vec<u16> = self
            .shards
            .read()
            .expect("never poisoned")
            .iter()
            .copied()
            .collect();
        shards.sort_unstable();
        let room = self.swarm.behaviour().gate.outbound_room();
        let dials = self
            .book
            .to_dial(Instant::now(), self.cluster, &shards, &self.targets, room);
        for (peer, addresses) in dials {
            let options = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                .addresses(addresses)
                .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(options) {
                tracing::debug!(%peer, error = %e, "cannot dial a known peer");
                self.book.dial_failed(peer, Instant::now());
            }
        }
    }

    /// Writes the book's changes to its file, if it has one. A failure is logged; the book
    /// stays in memory and the next save tries again with what changed since.
    fn save_peers(&mut self) {
        let Some(file) = self.peer_file.as_mut() else {
            return;
        };
        let changes = self.book.take_changes();
        if changes.is_empty() {
            return;
        }
        if let Err(e) = file.save(&changes) {
            tracing::warn!(error = %e, "cannot save the peer book; it is kept in memory");
        }
    }

    /// Connected peers, and with `all` every other peer of the book after them.
    /// Sets the connected-peer gauges (by direction and protocol, shard, agent).
    fn refresh_peer_gauges(&self) {
        let views: Vec<crate::node::metrics::PeerView> = self
            .peers
            .values()
            .map(|s| crate::node::metrics::PeerView {
                direction: if s.outbound { "out" } else { "in" },
                protocols: s.protocols.clone(),
                agent: s.agent.clone(),
                shards: s
                    .metadata
                    .as_ref()
                    .map(|m| m.shards.clone())
                    .unwrap_or_default(),
            })
            .collect();
        self.metrics.set_connected_peers(views.iter());
    }

    fn peer_infos(&self, all: bool) -> Vec<PeerInfo> {
        let relay = &self.swarm.behaviour().relay;
        let mut out: Vec<PeerInfo> = self
            .peers
            .iter()
            .map(|(peer, s)| {
                let known = self.book.get(peer);
                PeerInfo {
                    peer: *peer,
                    addresses: s.addresses.clone(),
                    protocols: s.protocols.clone(),
                    cluster: s.metadata.as_ref().and_then(|m| m.cluster_id),
                    shards: s
                        .metadata
                        .as_ref()
                        .map(|m| m.shards.clone())
                        .unwrap_or_default(),
                    origin: known.map(|k| k.origin),
                    connected: known.and_then(|k| k.connected),
                    score: relay.peer_score(peer),
                    failures: known.map_or(0, |k| k.failures),
                    agent: s.agent.clone(),
                }
            })
            .collect();
        if all {
            out.extend(
                self.book
                    .iter()
                    .filter(|(p, _)| !self.peers.contains_key(p))
                    .map(|(peer, k)| PeerInfo {
                        peer: *peer,
                        addresses: k.addresses.clone(),
                        protocols: k.protocols.clone(),
                        cluster: k.cluster.map(u32::from),
                        shards: k.shards.iter().map(|s| u32::from(*s)).collect(),
                        origin: Some(k.origin),
                        connected: None,
                        score: None,
                        failures: k.failures,
                        agent: None,
                    }),
            );
        }
        out
    }
}

/// 1 s, 2 s, 4 s ... up to a minute.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(6)).min(Duration::from_secs(60))
}

/// The peer id at the end of an address, if any.
pub(super) fn peer_of(address: &Multiaddr) -> Option<PeerId> {
    address.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

/// Whether two addresses name the same place, ignoring a trailing `/p2p/<id>`.
fn same_address(a: &Multiaddr, b: &Multiaddr) -> bool {
    let strip = |m: &Multiaddr| -> Multiaddr {
        m.iter()
            .filter(|p| !matches!(p, Protocol::P2p(_)))
            .collect()
    };
    strip(a) == strip(b)
}
