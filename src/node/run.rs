//! Starting a node and its tasks: the swarm loop, the validation workers and the chain sync.

use std::{
    collections::{HashMap, HashSet, VecDeque},
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
use tokio::sync::{Notify, broadcast, mpsc, watch};

use super::{
    Command, Delivered, MemberPaths, NodeConfig, NodeError, NodeEvent, NodeHandle, PeerInfo,
    SyncState,
    behaviour::{Behaviour, BehaviourEvent, Serves},
    gate, keys,
    lending::LendingPool,
    metadata::Metadata,
    metrics::Metrics,
    publisher::{Member, MessageIdCounter, Publisher},
    relay,
    validation_queue::{FairQueue, QueueLimits},
    validator::{Ignored, Rejection, RlnRules, Validator, Verdict, describe_spam},
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

/// Messages and bytes waiting for validation, across all peers, before the heaviest sender's
/// are ignored.
const VALIDATION_QUEUE: QueueLimits = QueueLimits {
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
struct Jobs {
    queue: std::sync::Mutex<FairQueue<PeerId, Job>>,
    ready: Notify,
    suspects: std::sync::Mutex<HashMap<PeerId, Instant>>,
}

impl Jobs {
    fn new() -> Self {
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

struct Job {
    id: gossipsub::MessageId,
    source: PeerId,
    topic: gossipsub::TopicHash,
    data: Vec<u8>,
    arrived: Instant,
    /// Whether the job waited once for the chain sync (its root was unknown).
    held: bool,
}

/// Messages waiting for the chain sync because their root is unknown, at most.
const MAX_HELD: usize = 1_024;
/// ... and at most this many from one peer, so a peer sending made-up roots cannot take the
/// room honest peers need during a burst of registrations.
const MAX_HELD_PER_PEER: usize = 256;
/// Longest wait for the chain sync: gossipsub forgets a message after its history length (6
/// heartbeats of 1 s), and a verdict reported after that is lost.
const MAX_HOLD: Duration = Duration::from_secs(4);
/// Fewest time between two sync steps forced by unknown roots.
const FORCED_SYNC_GAP: Duration = Duration::from_secs(1);

/// What a validation worker runs on each batch (the validator; a stand-in in tests).
type ValidateFn = dyn Fn(&[&[u8]]) -> Vec<(Verdict, Option<WakuMessage>)> + Send + Sync;

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
    let sync_now = Arc::new(Notify::new());
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
                let p = load_publisher(m, &client, &config.data_dir, rln.rules).await?;
                // Peers poll the chain as often as we do: give them a poll and a second to
                // reach a new root before proving against it.
                let grace = rln.chain.poll_interval + Duration::from_secs(1);
                publisher = Some(Arc::new(p.with_root_grace(grace)));
            }
            if let Some(l) = &rln.lending {
                let pool = load_pool(l, &client, &config.data_dir, rln.rules).await?;
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
                state: sync_tx.clone(),
                path: path_tx,
                metrics: metrics.clone(),
                sync_now: sync_now.clone(),
            };
            let nullifiers = crate::rln::nullifier_store::NullifierStore::open(
                &config.data_dir.join("nullifiers.sqlite"),
            )
            .map_err(start_error)?;
            let (validator, synced) = Validator::rln(rln.rules, roots)
                .with_store(nullifiers)
                .map_err(start_error)?
                .until_synced();
            tokio::spawn(sync_task(
                syncer,
                ours,
                outputs,
                synced,
                rln.chain.poll_interval,
                stop_rx.clone(),
            ));
            validator
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
    let limits = gate::Limits::of_total(config.max_connections, config.max_inbound_per_ip);
    let mut swarm = build_swarm(key, limits, serves).await?;
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
    let jobs = Arc::new(Jobs::new());
    let (outcomes_tx, outcomes_rx) = mpsc::channel::<Outcome>(VALIDATION_QUEUE.max_items);
    let validator = Arc::new(validator);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let validate: Arc<ValidateFn> = {
        let v = validator.clone();
        Arc::new(move |batch: &[&[u8]]| v.validate_batch(batch))
    };
    for _ in 0..workers {
        tokio::spawn(supervise_worker(
            validate.clone(),
            jobs.clone(),
            outcomes_tx.clone(),
            metrics.clone(),
            stop_rx.clone(),
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
        jobs,
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
        sync: sync_rx.clone(),
        sync_now,
        held: VecDeque::new(),
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
    for s in &runner.static_peers {
        if let Some(peer) = peer_of(&s.address) {
            runner.swarm.behaviour_mut().gate.reserve(peer);
        }
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
    rules: RlnRules,
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
        rules,
        counter,
    ))
}

/// Loads the lending pool: its credentials, a prover and the durable id counter.
async fn load_pool(
    l: &super::LendingConfig,
    client: &ChainClient,
    data_dir: &Path,
    rules: RlnRules,
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
    Ok(LendingPool::new(prover, members, counter, rules, l.rules))
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
    limits: gate::Limits,
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
        .with_behaviour(|key| Behaviour::new(key, limits, serves))
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
    /// Asks for a step now (a message waits on an unknown root).
    sync_now: Arc<Notify>,
}

async fn sync_task(
    mut syncer: Syncer,
    ours: Vec<usize>,
    outputs: SyncOutputs,
    synced: Arc<std::sync::atomic::AtomicBool>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let SyncOutputs {
        roots,
        state,
        path,
        metrics,
        sync_now,
    } = outputs;
    loop {
        let started = Instant::now();
        match syncer.step().await {
            Ok(status) => {
                *roots
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = syncer.roots().clone();
                synced.store(true, std::sync::atomic::Ordering::Release);
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
                    step_started: Some(started),
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
            // A message with an unknown root is waiting: step early, but not more often than
            // FORCED_SYNC_GAP however many such messages arrive.
            () = async {
                sync_now.notified().await;
                tokio::time::sleep_until((started + FORCED_SYNC_GAP).into()).await;
            } => {}
        }
    }
}

/// Runs a validation worker, and a new one in its place whenever it panics: validation must
/// never die silently.
async fn supervise_worker(
    validate: Arc<ValidateFn>,
    jobs: Arc<Jobs>,
    outcomes: mpsc::Sender<Outcome>,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) {
    loop {
        let worker = tokio::spawn(validation_worker(
            validate.clone(),
            jobs.clone(),
            outcomes.clone(),
            metrics.clone(),
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
/// node's own failure), logged and counted.
async fn validation_worker(
    validate: Arc<ValidateFn>,
    jobs: Arc<Jobs>,
    outcomes: mpsc::Sender<Outcome>,
    metrics: Arc<Metrics>,
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
    jobs: Arc<Jobs>,
    outcomes: mpsc::Receiver<Outcome>,
    delivered: broadcast::Sender<Delivered>,
    events: broadcast::Sender<NodeEvent>,
    peers: HashMap<PeerId, PeerState>,
    static_peers: Vec<StaticPeer>,
    cluster: u16,
    shards: Arc<RwLock<HashSet<u16>>>,
    /// The chain sync's progress, to release messages held on an unknown root.
    sync: watch::Receiver<SyncState>,
    sync_now: Arc<Notify>,
    /// Messages whose root was unknown, waiting for a sync step that started after them.
    held: VecDeque<Job>,
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
                }
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
        let relay = &mut self.swarm.behaviour_mut().relay;
        let new = relay.subscribe(&t).unwrap_or(false);
        if new && let Err(e) = relay.set_topic_params(t, relay::topic_score_params()) {
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

    /// Queues a job for validation; what the full queue drops is ignored.
    fn enqueue(&mut self, job: Job) {
        let size = job.data.len();
        let dropped = self.jobs.queue().push(job.source, job, size);
        self.jobs.ready.notify_one();
        for job in dropped {
            self.on_outcome(Outcome {
                job,
                verdict: Verdict::Ignore(Ignored::Overloaded),
                message: None,
            });
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
    fn release_held(&mut self) {
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

    fn on_outcome(&mut self, outcome: Outcome) {
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
                        self.swarm.behaviour_mut().gate.reserve(peer_id);
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
    fn disconnect_if_scored_out(&mut self, peer: PeerId) {
        let Some(score) = self.swarm.behaviour().relay.peer_score(&peer) else {
            return;
        };
        if score >= relay::DISCONNECT_THRESHOLD || self.swarm.behaviour().gate.is_banned(&peer) {
            return;
        }
        let ip = self
            .peers
            .get(&peer)
            .and_then(|s| s.addresses.iter().find_map(gate::ip_of));
        let address_banned = self.swarm.behaviour_mut().gate.ban(peer, ip, relay::BAN);
        tracing::warn!(
            %peer,
            score,
            ban_secs = relay::BAN.as_secs(),
            address_banned,
            "disconnecting a peer whose relay score fell below the threshold (it sent invalid \
             messages)"
        );
        self.metrics.score_disconnects.inc();
        let _ = self.events.send(NodeEvent::ScoredOut { peer, score });
        let _ = self.swarm.disconnect_peer_id(peer);
        let until = Instant::now() + relay::BAN;
        for s in &mut self.static_peers {
            if s.peer == Some(peer) {
                s.next_dial = Some(until);
            }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn job(source: PeerId, n: u8) -> Job {
        Job {
            id: gossipsub::MessageId::new(&[n]),
            source,
            topic: gossipsub::TopicHash::from_raw("/waku/2/rs/1/0"),
            data: vec![n],
            arrived: Instant::now(),
            held: false,
        }
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
