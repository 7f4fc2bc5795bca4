//! Starting a node and its tasks: the swarm loop, the validation workers and the chain sync.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

mod services;

use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, Swarm, SwarmBuilder, gossipsub, identify, multiaddr::Protocol, noise,
    request_response, swarm::SwarmEvent, tcp, yamux,
};
use tokio::sync::{Mutex, broadcast, mpsc, watch};

use super::{
    Command, Delivered, MemberPaths, NodeConfig, NodeError, NodeEvent, NodeHandle, PeerInfo,
    SyncState,
    behaviour::{Behaviour, BehaviourEvent, Serves},
    keys,
    lending::LendingPool,
    metadata::Metadata,
    metrics::Metrics,
    publisher::{Member, MessageIdCounter, Publisher},
    validator::{Ignored, Rejection, Validator, Verdict, describe_spam},
};
use crate::{
    chain::{
        ChainClient,
        sync::{SyncConfig, Syncer},
    },
    credentials, filter,
    message::WakuMessage,
    rln::{prover::RlnProver, tree::RootWindow},
    store::{Archive, Retention},
    topics::{PubsubTopic, StaticShard},
};

/// Only messages this close to the local clock are archived.
const ARCHIVE_DRIFT_NS: u64 = 20_000_000_000;

/// Messages waiting for validation before new ones are ignored.
const VALIDATION_QUEUE: usize = 4_096;
/// Most messages validated in one batch.
const MAX_BATCH: usize = 64;

struct Job {
    id: gossipsub::MessageId,
    source: PeerId,
    topic: gossipsub::TopicHash,
    data: Vec<u8>,
}

struct Outcome {
    job: Job,
    verdict: Verdict,
    message: Option<WakuMessage>,
}

fn start_error(e: impl std::fmt::Display) -> NodeError {
    NodeError::Start(e.to_string())
}

/// Starts a node: loads or creates its key, syncs the membership tree (RLN), unlocks its
/// membership, listens, dials the static peers and subscribes to its shards.
pub async fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        start_error(format!(
            "cannot create the data directory {}: {e}",
            config.data_dir.display()
        ))
    })?;
    let key = match &config.key {
        Some(k) => k.clone(),
        None => keys::load_or_create(&config.data_dir.join("node.key"), config.key_kind)
            .map_err(start_error)?,
    };
    let peer_id = key.public().to_peer_id();
    let metrics = Arc::new(Metrics::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (sync_tx, sync_rx) = watch::channel(SyncState::default());
    let (path_tx, path_rx) = watch::channel::<MemberPaths>(MemberPaths::new());
    let mut lending = None;
    let mut publisher = None;
    let validator = match &config.rln {
        None => Validator::without_rln(),
        Some(rln) => {
            let client =
                ChainClient::connect(&rln.chain.rpc, rln.chain.contract, rln.chain.chain_id, None)
                    .await
                    .map_err(start_error)?;
            if let Some(m) = &rln.membership {
                let p =
                    load_publisher(m, &client, &config.data_dir, rln.rules.epoch_period).await?;
                publisher = Some(Arc::new(p));
            }
            if let Some(l) = &rln.lending {
                let pool = load_pool(l, &client, &config.data_dir, rln.rules.epoch_period).await?;
                lending = Some(Arc::new(pool));
            }
            let roots = Arc::new(RwLock::new(RootWindow::new(rln.root_window)));
            let sync_config = SyncConfig {
                follow_distance: rln.chain.follow_distance,
                root_window: rln.root_window,
                ..SyncConfig::default()
            };
            let syncer = Syncer::open(
                client,
                &config.data_dir.join("membership-tree.sqlite"),
                sync_config,
            )
            .await
            .map_err(start_error)?;
            let mut ours: Vec<usize> = publisher
                .iter()
                .map(|p| p.member().index as usize)
                .collect();
            if let Some(pool) = &lending {
                ours.extend(pool.indices().into_iter().map(|i| i as usize));
            }
            let outputs = SyncOutputs {
                roots: roots.clone(),
                state: sync_tx,
                path: path_tx,
                metrics: metrics.clone(),
            };
            tokio::spawn(sync_task(
                syncer,
                ours,
                outputs,
                rln.chain.poll_interval,
                stop_rx.clone(),
            ));
            Validator::rln(rln.rules, roots)
        }
    };
    let enforces_rln = validator.enforces_rln();
    let archive = match &config.store {
        None => None,
        Some(store) => {
            let path = store.path.clone();
            let archive = tokio::task::spawn_blocking(move || Archive::open(&path))
                .await
                .map_err(start_error)?
                .map_err(start_error)?;
            Some(Arc::new(archive))
        }
    };
    let serves = Serves {
        store: archive.is_some(),
        filter: config.filter.is_some(),
        lightpush: config.lightpush,
        peer_exchange: config.peer_exchange,
    };
    let key_for_record = key.clone();
    let mut swarm = build_swarm(key, config.max_connections, serves).await?;
    let filter_client = filter::Client::default();
    filter_client.listen(swarm.behaviour().streams.new_control());
    let filter_service = config.filter.map(|limits| {
        filter::Service::new(
            limits,
            config.cluster,
            config.shard_count,
            swarm.behaviour().streams.new_control(),
            metrics.filter.clone(),
        )
    });
    for address in &config.listen {
        swarm
            .listen_on(address.clone())
            .map_err(|e| start_error(format!("cannot listen on {address}: {e}")))?;
    }
    // Wait until every listener has an address, so callers can hand them out at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut listening = 0;
    while listening < config.listen.len() && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), swarm.select_next_some()).await {
            Ok(SwarmEvent::NewListenAddr { .. }) => listening += 1,
            Ok(SwarmEvent::ListenerError { error, .. }) => return Err(start_error(error)),
            Ok(SwarmEvent::ListenerClosed { reason: Err(e), .. }) => {
                return Err(start_error(format!("a listener closed: {e}")));
            }
            _ => {}
        }
    }
    let (commands_tx, commands_rx) = mpsc::channel(256);
    let (delivered, _) = broadcast::channel(4_096);
    let (events, _) = broadcast::channel(4_096);
    let (jobs_tx, jobs_rx) = mpsc::channel::<Job>(VALIDATION_QUEUE);
    let (outcomes_tx, outcomes_rx) = mpsc::channel::<Outcome>(VALIDATION_QUEUE);
    let validator = Arc::new(validator);
    let jobs_rx = Arc::new(Mutex::new(jobs_rx));
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    for _ in 0..workers {
        tokio::spawn(validation_worker(
            validator.clone(),
            jobs_rx.clone(),
            outcomes_tx.clone(),
            metrics.clone(),
        ));
    }
    if let (Some(archive), Some(store)) = (&archive, &config.store) {
        tokio::spawn(archiver(archive.clone(), delivered.subscribe()));
        tokio::spawn(retention_task(
            archive.clone(),
            store.retention,
            store.retention_interval,
            stop_rx.clone(),
        ));
    }
    let peer_exchange = Arc::new(super::peer_exchange::Cache::default());
    peer_exchange.set_own(own_record(&key_for_record, &swarm, &config, serves));
    if let Some(service) = &filter_service {
        tokio::spawn(filter::service::run(service.clone(), delivered.subscribe()));
    }
    let shards = Arc::new(RwLock::new(HashSet::new()));
    let mut runner = Runner {
        swarm,
        commands: commands_rx,
        jobs: jobs_tx,
        outcomes: outcomes_rx,
        delivered: delivered.clone(),
        events: events.clone(),
        peers: HashMap::new(),
        static_peers: config
            .static_peers
            .iter()
            .map(|a| StaticPeer {
                address: a.clone(),
                peer: None,
                failures: 0,
                next_dial: Some(Instant::now()),
            })
            .collect(),
        cluster: config.cluster,
        shards: shards.clone(),
        stop: stop_tx,
        metrics: metrics.clone(),
        archive: archive.clone(),
        replies: mpsc::channel(256),
        pending: services::Pending::default(),
        filter_service: filter_service.clone(),
        peer_exchange: peer_exchange.clone(),
        serves,
        handle: None,
    };
    for shard in &config.shards {
        runner.subscribe(&StaticShard::new(config.cluster, *shard).pubsub_topic());
    }
    let handle = NodeHandle {
        peer_id,
        validator,
        metrics,
        archive,
        commands: commands_tx,
        delivered,
        events,
        publisher,
        member_path: path_rx,
        lending,
        filter_service,
        filter_client,
        peer_exchange,
        sync: sync_rx,
        enforces_rln,
        cluster: config.cluster,
        shards,
        shard_count: config.shard_count,
    };
    runner.handle = Some(handle.clone());
    runner.redial_due();
    tokio::spawn(runner.run());
    Ok(handle)
}

async fn load_publisher(
    m: &super::MembershipConfig,
    client: &ChainClient,
    data_dir: &Path,
    epoch_period: u64,
) -> Result<Publisher, NodeError> {
    let key = match &m.key {
        Some(k) => k.clone(),
        None => pick_credential(&m.keystore, client)?,
    };
    let credential = credentials::unlock(m.keystore.clone(), key.clone(), m.password.clone())
        .await
        .map_err(|e| start_error(format!("cannot unlock credential {key}: {e}")))?;
    let identity = credentials::from_stored(&credential.identity_credential)
        .map_err(|e| start_error(format!("credential {key}: {e}")))?;
    if credential.is_pending() {
        return Err(start_error(format!(
            "credential {key} is not registered yet; run `wakurln membership register`"
        )));
    }
    let limit = credential.user_message_limit.unwrap_or(0);
    if limit == 0 {
        return Err(start_error(format!(
            "credential {key} has no rate limit (written before RLN v2); register a new membership"
        )));
    }
    let dir = m.circuit_dir.clone();
    let prover = tokio::task::spawn_blocking(move || RlnProver::load(&dir))
        .await
        .map_err(start_error)?
        .map_err(|e| {
            start_error(format!(
                "cannot load the circuit keys from {} ({e}); run `wakurln circuit install`",
                m.circuit_dir.display()
            ))
        })?;
    let counter =
        MessageIdCounter::open(&data_dir.join("message-ids.sqlite")).map_err(start_error)?;
    tracing::info!(%key, index = credential.tree_index, limit, "publishing with membership");
    Ok(Publisher::new(
        prover,
        Member {
            identity,
            index: credential.tree_index,
            limit,
        },
        epoch_period,
        counter,
    ))
}

/// Loads the lending pool: its credentials, a prover and the durable id counter.
async fn load_pool(
    l: &super::LendingConfig,
    client: &ChainClient,
    data_dir: &Path,
    epoch_period: u64,
) -> Result<LendingPool, NodeError> {
    let keys = if l.keys.is_empty() {
        credentials_of_contract(&l.keystore, client)?
    } else {
        l.keys.clone()
    };
    if keys.is_empty() {
        return Err(start_error(format!(
            "the lending keystore {} holds no membership of this contract",
            l.keystore.display()
        )));
    }
    let mut members = Vec::new();
    for key in keys {
        let credential = credentials::unlock(l.keystore.clone(), key.clone(), l.password.clone())
            .await
            .map_err(|e| start_error(format!("cannot unlock lending credential {key}: {e}")))?;
        let identity = credentials::from_stored(&credential.identity_credential)
            .map_err(|e| start_error(format!("lending credential {key}: {e}")))?;
        let limit = credential.user_message_limit.unwrap_or(0);
        if credential.is_pending() || limit == 0 {
            return Err(start_error(format!(
                "lending credential {key} is not a registered RLN v2 membership"
            )));
        }
        members.push(Member {
            identity,
            index: credential.tree_index,
            limit,
        });
    }
    let dir = l.circuit_dir.clone();
    let prover = tokio::task::spawn_blocking(move || RlnProver::load(&dir))
        .await
        .map_err(start_error)?
        .map_err(|e| {
            start_error(format!(
                "cannot load the circuit keys from {} ({e}); run `wakurln circuit install`",
                l.circuit_dir.display()
            ))
        })?;
    let counter =
        MessageIdCounter::open(&data_dir.join("message-ids.sqlite")).map_err(start_error)?;
    tracing::info!(
        members = members.len(),
        capacity = members.iter().map(|m| m.limit).sum::<u64>(),
        "lending RLN proofs to light clients"
    );
    Ok(LendingPool::new(
        prover,
        members,
        counter,
        epoch_period,
        l.rules,
    ))
}

/// Every credential of the keystore registered with `client`'s contract.
fn credentials_of_contract(
    keystore: &Path,
    client: &ChainClient,
) -> Result<Vec<String>, NodeError> {
    let store = wakurln_keystore::Keystore::open(keystore).map_err(start_error)?;
    let chain = client.chain_id();
    let contract = client.contract_address();
    Ok(store
        .entries()
        .into_iter()
        .filter(|e| {
            matches!(&e.membership, Some((c, a, _))
                if wakurln_keystore::ChainId(c.clone()).value() == Some(chain)
                    && a.parse::<alloy::primitives::Address>().ok() == Some(contract))
        })
        .map(|e| e.key)
        .collect())
}

/// The one credential of the keystore registered with `client`'s contract.
fn pick_credential(keystore: &Path, client: &ChainClient) -> Result<String, NodeError> {
    let chain = client.chain_id();
    let contract = client.contract_address();
    let mine = credentials_of_contract(keystore, client)?;
    match mine.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(start_error(format!(
            "the keystore {} holds no membership of contract {contract} on chain {chain}",
            keystore.display()
        ))),
        many => Err(start_error(format!(
            "the keystore holds {} memberships of this contract; pick one with --rln-key ({})",
            many.len(),
            many.join(", ")
        ))),
    }
}

async fn build_swarm(
    key: libp2p::identity::Keypair,
    max_connections: u32,
    serves: Serves,
) -> Result<Swarm<Behaviour>, NodeError> {
    let swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            (yamux::Config::default, libp2p_mplex::Config::default),
        )
        .map_err(start_error)?
        .with_websocket(
            noise::Config::new,
            (yamux::Config::default, libp2p_mplex::Config::default),
        )
        .await
        .map_err(start_error)?
        .with_behaviour(|key| Behaviour::new(key, max_connections, serves))
        .map_err(start_error)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();
    Ok(swarm)
}

/// The node's own record: its secp256k1 key, its dialable TCP and WebSocket addresses, its
/// services and shards. `None` for an Ed25519 key or without a concrete address.
fn own_record(
    key: &libp2p::identity::Keypair,
    swarm: &Swarm<Behaviour>,
    config: &NodeConfig,
    serves: Serves,
) -> Option<super::enr::Enr> {
    use super::enr::{Content, Enr, services};
    let secp = key.clone().try_into_secp256k1().ok()?;
    let mut content = Content {
        seq: 1,
        shards: Some((config.cluster, config.shards.clone())),
        ..Content::default()
    };
    let addresses: Vec<Multiaddr> = if config.announce.is_empty() {
        swarm.listeners().cloned().collect()
    } else {
        config.announce.clone()
    };
    for address in addresses {
        let parts: Vec<Protocol<'_>> = address.iter().collect();
        match parts.as_slice() {
            [Protocol::Ip4(ip), Protocol::Tcp(port)] if !ip.is_unspecified() => {
                content.ip_tcp.get_or_insert((*ip, *port));
            }
            [Protocol::Ip4(ip), Protocol::Tcp(_), Protocol::Ws(_)] if !ip.is_unspecified() => {
                content.multiaddrs.push(address.clone());
            }
            _ => {}
        }
    }
    if content.ip_tcp.is_none() && content.multiaddrs.is_empty() {
        return None;
    }
    content.services = services::RELAY
        | if serves.store { services::STORE } else { 0 }
        | if serves.filter { services::FILTER } else { 0 }
        | if serves.lightpush {
            services::LIGHTPUSH
        } else {
            0
        };
    match Enr::sign(&secp, &content) {
        Ok(enr) => Some(enr),
        Err(e) => {
            tracing::warn!(error = %e, "cannot make the node's record");
            None
        }
    }
}

/// Steps the chain sync, publishing the root window, our Merkle path and the sync state.
/// Where the sync task publishes what it learns.
struct SyncOutputs {
    roots: Arc<RwLock<RootWindow>>,
    state: watch::Sender<SyncState>,
    path: watch::Sender<MemberPaths>,
    metrics: Arc<Metrics>,
}

async fn sync_task(
    mut syncer: Syncer,
    ours: Vec<usize>,
    outputs: SyncOutputs,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let SyncOutputs {
        roots,
        state,
        path,
        metrics,
    } = outputs;
    loop {
        match syncer.step().await {
            Ok(status) => {
                *roots.write().expect("never poisoned") = syncer.roots().clone();
                metrics.root_window.set(syncer.roots().len() as i64);
                metrics.sync_block.set(status.block as i64);
                metrics.members.set(status.members as i64);
                let tree = syncer.tree();
                let paths: MemberPaths = ours
                    .iter()
                    .filter_map(|&index| {
                        let proof = tree.proof(index).ok()?;
                        Some((index, (tree.root(), proof, tree.leaf(index))))
                    })
                    .collect();
                path.send_replace(paths);
                state.send_replace(SyncState {
                    ready: true,
                    block: status.block,
                    members: status.members,
                    error: None,
                });
            }
            // A node that is stopping has no use for the step, nor for a warning about it.
            Err(_) if *stop.borrow() => return,
            Err(e) => {
                tracing::warn!(error = %e, "membership sync step failed; retrying");
                state.send_modify(|s| s.error = Some(e.to_string()));
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Takes queued messages in batches and validates them on the blocking pool.
async fn validation_worker(
    validator: Arc<Validator>,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    outcomes: mpsc::Sender<Outcome>,
    metrics: Arc<Metrics>,
) {
    loop {
        let batch = {
            let mut rx = jobs.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        let v = validator.clone();
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let data: Vec<&[u8]> = batch.iter().map(|j| j.data.as_slice()).collect();
            let verdicts = v.validate_batch(&data);
            (batch, verdicts)
        })
        .await;
        let Ok((batch, verdicts)) = result else {
            return;
        };
        let per_proof = started.elapsed().as_secs_f64() / batch.len() as f64;
        metrics.batch_size.observe(batch.len() as f64);
        for _ in 0..batch.len() {
            metrics.proof_verification.observe(per_proof);
        }
        for (job, (verdict, message)) in batch.into_iter().zip(verdicts) {
            if outcomes
                .send(Outcome {
                    job,
                    verdict,
                    message,
                })
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

struct StaticPeer {
    address: Multiaddr,
    peer: Option<PeerId>,
    failures: u32,
    next_dial: Option<Instant>,
}

#[derive(Default)]
struct PeerState {
    addresses: Vec<Multiaddr>,
    protocols: Vec<String>,
    metadata: Option<Metadata>,
}

struct Runner {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    jobs: mpsc::Sender<Job>,
    outcomes: mpsc::Receiver<Outcome>,
    delivered: broadcast::Sender<Delivered>,
    events: broadcast::Sender<NodeEvent>,
    peers: HashMap<PeerId, PeerState>,
    static_peers: Vec<StaticPeer>,
    cluster: u16,
    shards: Arc<RwLock<HashSet<u16>>>,
    stop: watch::Sender<bool>,
    metrics: Arc<Metrics>,
    archive: Option<Arc<Archive>>,
    /// Answers to inbound requests, ready to be written.
    replies: (
        mpsc::Sender<services::Reply>,
        mpsc::Receiver<services::Reply>,
    ),
    /// Our own requests waiting for answers.
    pending: services::Pending,
    /// The filter service, when this node offers one.
    filter_service: Option<Arc<filter::Service>>,
    /// The records peer exchange hands out.
    peer_exchange: Arc<super::peer_exchange::Cache>,
    /// The services this node answers.
    serves: Serves,
    /// The node's own handle, for services that publish (set right after start).
    handle: Option<NodeHandle>,
}

/// Archives delivered messages in batches: non-ephemeral ones whose timestamp is within 20 s of
/// the local clock, as the protocol asks.
async fn archiver(archive: Arc<Archive>, mut delivered: broadcast::Receiver<Delivered>) {
    loop {
        let first = match delivered.recv().await {
            Ok(d) => d,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "the archiver fell behind; messages were not archived"
                );
                continue;
            }
            Err(_) => return,
        };
        let mut batch = vec![first];
        while batch.len() < 1_000 {
            match delivered.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        batch.retain(|d| {
            !d.message.ephemeral()
                && d.message
                    .timestamp()
                    .is_some_and(|t| t.abs_diff(now) <= ARCHIVE_DRIFT_NS)
        });
        if batch.is_empty() {
            continue;
        }
        let a = archive.clone();
        let result = tokio::task::spawn_blocking(move || {
            let refs: Vec<(&str, &WakuMessage)> = batch
                .iter()
                .map(|d| (d.topic.as_str(), &d.message))
                .collect();
            a.insert(&refs)
        })
        .await;
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "archiving failed"),
            Err(_) => return,
        }
    }
}

/// Deletes what the retention limits exclude, in small batches so queries are not held up.
async fn retention_task(
    archive: Arc<Archive>,
    retention: Retention,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let a = archive.clone();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        match tokio::task::spawn_blocking(move || a.enforce(retention, now, 5_000)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(deleted = n, "archive retention"),
            Ok(Err(e)) => tracing::warn!(error = %e, "archive retention failed"),
            Err(_) => return,
        }
    }
}

impl Runner {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm(event),
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown) | None => break,
                    Some(c) => self.on_command(c),
                },
                Some(outcome) = self.outcomes.recv() => self.on_outcome(outcome),
                Some(reply) = self.replies.1.recv() => reply(self.swarm.behaviour_mut()),
                _ = tick.tick() => self.redial_due(),
            }
        }
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

    fn subscribe(&mut self, topic: &PubsubTopic) -> bool {
        let t = gossipsub::IdentTopic::new(topic.as_str());
        let new = self
            .swarm
            .behaviour_mut()
            .relay
            .subscribe(&t)
            .unwrap_or(false);
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
                let _ = reply.send(self.swarm.dial(address).map_err(|e| e.to_string()));
            }
            Command::Peers(reply) => {
                let peers = self
                    .peers
                    .iter()
                    .map(|(peer, s)| PeerInfo {
                        peer: *peer,
                        addresses: s.addresses.clone(),
                        protocols: s.protocols.clone(),
                        cluster: s.metadata.as_ref().and_then(|m| m.cluster_id),
                        shards: s
                            .metadata
                            .as_ref()
                            .map(|m| m.shards.clone())
                            .unwrap_or_default(),
                    })
                    .collect();
                let _ = reply.send(peers);
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
                    .send_request(&peer, super::peer_exchange::request_of(num_peers));
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
            Err(e) => return Err(NodeError::Relay(e.to_string())),
        }
        let _ = self.delivered.send(Delivered {
            topic,
            message,
            hash,
        });
        Ok(hash)
    }

    fn on_outcome(&mut self, outcome: Outcome) {
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
                tracing::warn!("validation queue full; ignoring a relayed message");
            }
            Verdict::Ignore(_) => {}
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

    fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Relay(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let job = Job {
                    id: message_id,
                    source: propagation_source,
                    topic: message.topic,
                    data: message.data,
                };
                if let Err(mpsc::error::TrySendError::Full(job)) = self.jobs.try_send(job) {
                    self.on_outcome(Outcome {
                        job,
                        verdict: Verdict::Ignore(Ignored::Overloaded),
                        message: None,
                    });
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                let state = self.peers.entry(peer_id).or_default();
                let first = state.protocols.is_empty();
                state.protocols = info.protocols.iter().map(ToString::to_string).collect();
                if first
                    && self.serves.peer_exchange
                    && info.protocols.contains(&super::peer_exchange::PROTOCOL)
                {
                    self.fill_peer_exchange_cache(peer_id);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Metadata(event)) => self.on_metadata(event),
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
                    }
                }
                let state = self.peers.entry(peer_id).or_default();
                if !state.addresses.contains(&address) {
                    state.addresses.push(address);
                }
                if num_established.get() == 1 {
                    self.metrics.peers.set(self.peers.len() as i64);
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
                self.metrics.peers.set(self.peers.len() as i64);
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
            for s in &mut self.static_peers {
                if s.peer == Some(peer) {
                    // Do not keep redialling a peer that will be refused again.
                    s.next_dial = None;
                    s.failures = u32::MAX;
                }
            }
            return;
        }
        if let Some(state) = self.peers.get_mut(&peer) {
            state.metadata = Some(theirs);
        }
    }

    fn redial_due(&mut self) {
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

/// 1 s, 2 s, 4 s ... up to a minute.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(6)).min(Duration::from_secs(60))
}

/// The peer id at the end of an address, if any.
fn peer_of(address: &Multiaddr) -> Option<PeerId> {
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
