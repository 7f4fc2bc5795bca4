//! Starting a node: its key, the chain sync and the validator, the membership it publishes
//! with and the pool it lends from, the swarm and its listeners, the node's own record, and
//! the tasks that run beside the swarm loop.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use futures::StreamExt;
use libp2p::{
    Multiaddr, Swarm, SwarmBuilder, multiaddr::Protocol, noise, swarm::SwarmEvent, tcp, yamux,
};
use tokio::sync::{Notify, broadcast, mpsc, watch};

use super::{
    MemberPaths, NodeConfig, NodeError, NodeHandle, SyncState,
    behaviour::{Behaviour, Serves},
    gate, keys,
    metrics::Metrics,
};
use super::{
    swarm::{Runner, StaticPeer, peer_of},
    tasks::{SyncOutputs, refresh_task, retention_task, sync_task},
    validation::{Jobs, Outcome, VALIDATION_QUEUE, ValidateFn, supervise_worker},
};
use crate::{
    chain::{
        ChainClient,
        sync::{Resume, SyncConfig, Syncer},
    },
    credentials, filter,
    lightpush::lending::LendingPool,
    rate_limit::RateLimits,
    relay::{
        pipeline::{RlnRules, Validator},
        publisher::{Member, MessageIdCounter, Publisher},
    },
    rln::{field::Fr, prover::RlnProver, tree::RootWindow},
    store::Archive,
    topics::StaticShard,
};

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// The node key could not be read or made.
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    /// The membership contract could not be reached or synced.
    #[error(transparent)]
    Chain(#[from] crate::chain::ChainError),
    /// A keystore could not be read.
    #[error(transparent)]
    Keystore(#[from] wakurln_keystore::KeystoreError),
    /// A credential could not be unlocked or read.
    #[error("cannot unlock {what} {key}: {source}")]
    Unlock {
        /// "credential" or "lending credential".
        what: &'static str,
        /// Its key in the keystore.
        key: String,
        /// Why.
        #[source]
        source: credentials::CredentialError,
    },
    /// The memberships configured cannot be used; the sentence says why and what to do.
    #[error("{0}")]
    Membership(String),
    /// The circuit keys could not be loaded.
    #[error("cannot load the circuit keys from {dir} ({source}); run `wakurln circuit install`")]
    CircuitKeys {
        /// Where they were looked for.
        dir: PathBuf,
        /// Why.
        #[source]
        source: crate::rln::prover::RlnProveError,
    },
    /// The message-id counter could not be opened.
    #[error(transparent)]
    Counter(#[from] crate::relay::publisher::PublishError),
    /// The nullifier log's file could not be opened.
    #[error(transparent)]
    Nullifiers(#[from] crate::relay::nullifier_store::StoreError),
    /// discv5 could not start.
    #[error(transparent)]
    Discovery(crate::discovery::DiscoveryError),
    /// The archive could not be opened.
    #[error(transparent)]
    Archive(#[from] crate::store::ArchiveError),
    /// The transports or the behaviour could not be built.
    #[error("cannot build the network stack: {0}")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An address could not be listened on.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: Multiaddr,
        /// Why.
        #[source]
        source: libp2p::TransportError<std::io::Error>,
    },
    /// A listener failed while starting.
    #[error("a listener failed: {0}")]
    Listener(#[source] std::io::Error),
    /// A start-up task did not finish.
    #[error("a start-up task did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn transport(e: impl std::error::Error + Send + Sync + 'static) -> StartError {
    StartError::Transport(Box::new(e))
}

/// Starts a node: loads or creates its key, syncs the membership tree (RLN), unlocks its
/// membership, listens, dials the static peers and subscribes to its shards.
pub async fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
    start_node(config).await.map_err(NodeError::Start)
}

async fn start_node(config: NodeConfig) -> Result<NodeHandle, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let key = match &config.key {
        Some(k) => k.clone(),
        None => keys::load_or_create(&config.data_dir.join("node.key"), config.key_kind)
            .map_err(StartError::from)?,
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
                    .map_err(StartError::from)?;
            if let Some(m) = &rln.membership {
                let p = load_publisher(m, &client, &config.data_dir, rln.rules, &metrics).await?;
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
            .map_err(StartError::from)?;
            let members = syncer
                .tree()
                .leaves()
                .iter()
                .filter(|l| **l != Fr::from(0u64))
                .count();
            match syncer.resumes_at().map_err(StartError::from)? {
                Some(Resume::Follow { block }) => tracing::info!(
                    block,
                    members,
                    "membership tree restored from the data directory; following the chain from there"
                ),
                Some(Resume::Initial { block, next }) => tracing::info!(
                    block,
                    next_leaf = next,
                    "an interrupted initial sync of the membership tree continues where it stopped"
                ),
                None => tracing::info!("no membership tree stored yet; reading it from the chain"),
            }
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
            let nullifiers = crate::relay::nullifier_store::NullifierStore::open(
                &config.data_dir.join("nullifiers.sqlite"),
            )
            .map_err(StartError::from)?;
            let (validator, synced) = Validator::rln(rln.rules, roots)
                .with_store(nullifiers)
                .map_err(StartError::from)?
                .until_synced();
            tokio::spawn(sync_task(
                syncer,
                ours,
                outputs,
                synced,
                rln.chain.poll_interval,
                stop_rx.clone(),
            ));
            if publisher.is_some() || lending.is_some() {
                tokio::spawn(refresh_task(
                    publisher.clone(),
                    lending.clone(),
                    path_rx.clone(),
                    metrics.clone(),
                    stop_rx.clone(),
                ));
            }
            validator
        }
    };
    let enforces_rln = validator.enforces_rln();
    let archive = match &config.store {
        None => None,
        Some(store) => {
            let archive = Archive::open(&store.backend).await?;
            tracing::info!(archive = archive.name(), "message archive open");
            Some(Arc::new(archive))
        }
    };
    let serves = Serves {
        store: archive.is_some(),
        filter: config.filter.is_some(),
        lightpush: config.lightpush,
        peer_exchange: config.peer_exchange,
        circuit_relay: config.circuit_relay,
        store_sync: archive.is_some() && config.store.as_ref().is_some_and(|s| s.sync.is_some()),
    };
    let key_for_record = key.clone();
    let limits = gate::Limits::of_total(config.max_connections, config.max_inbound_per_ip);
    let mut swarm = build_swarm(key, limits, serves, &metrics).await?;
    if config.circuit_relay {
        // Announced addresses are where the operator says the node is reachable.
        for address in &config.announce {
            swarm.add_external_address(address.clone());
        }
    }
    let sync_control = serves
        .store_sync
        .then(|| swarm.behaviour().streams.new_control());
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
            .map_err(|source| StartError::Listen {
                address: address.clone(),
                source,
            })?;
    }
    // Wait until every listener has an address, so callers can hand them out at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut listening = 0;
    while listening < config.listen.len() && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), swarm.select_next_some()).await {
            Ok(SwarmEvent::NewListenAddr { address, .. }) => {
                listening += 1;
                if config.circuit_relay {
                    // A relay's reservations carry its external addresses: an operator
                    // offering the service says the node is reachable where it listens.
                    swarm.add_external_address(address);
                }
            }
            Ok(SwarmEvent::ListenerError { error, .. }) => return Err(StartError::Listener(error)),
            Ok(SwarmEvent::ListenerClosed { reason: Err(e), .. }) => {
                return Err(StartError::Listener(e));
            }
            _ => {}
        }
    }
    let (commands_tx, commands_rx) = mpsc::channel(256);
    let (stopped_tx, stopped_rx) = watch::channel(false);
    let (delivered, _) = broadcast::channel(4_096);
    let (events, _) = broadcast::channel(4_096);
    let jobs = Arc::new(Jobs::new());
    let (outcomes_tx, outcomes_rx) = mpsc::channel::<Outcome>(VALIDATION_QUEUE.max_items);
    let validator = Arc::new(validator);
    let store_sync = match (
        &archive,
        config.store.as_ref().and_then(|s| s.sync),
        sync_control,
    ) {
        (Some(archive), Some(sync), Some(control)) => {
            let topics = config
                .shards
                .iter()
                .map(|s| {
                    StaticShard::new(config.cluster, *s)
                        .pubsub_topic()
                        .as_str()
                        .to_owned()
                })
                .collect();
            let service = Arc::new(crate::store::sync::StoreSync::new(
                sync,
                archive.clone(),
                validator.clone(),
                topics,
                control,
                metrics.store_sync.clone(),
            ));
            match service.fill().await {
                Ok(n) => tracing::info!(
                    messages = n,
                    "store sync: the set holds the archive's last range"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "store sync: cannot read the archive; the set starts empty")
                }
            }
            service.listen();
            Some(service)
        }
        _ => None,
    };
    let writer = archive.as_ref().map(|a| {
        let w = crate::store::writer::Writer::start(
            a.clone(),
            metrics.archive.clone(),
            stop_rx.clone(),
        );
        match &store_sync {
            Some(s) => w.with_sync(s.set()),
            None => w,
        }
    });
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
            writer.clone(),
            stop_rx.clone(),
        ));
    }
    if let (Some(archive), Some(store)) = (&archive, &config.store) {
        tokio::spawn(retention_task(
            archive.clone(),
            store.retention,
            store.retention_interval,
            (metrics.clone(), config.shards.clone()),
            stop_rx.clone(),
        ));
    }
    // The discv5 socket is bound before the record is made, so the record names its port.
    let discv5_socket = match &config.discv5 {
        Some(d) => {
            let ip = config
                .listen
                .iter()
                .find_map(|a| match a.iter().next() {
                    Some(Protocol::Ip4(ip)) => Some(ip),
                    _ => None,
                })
                .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
            Some(crate::discovery::bind(ip, d.udp_port).map_err(StartError::Discovery)?)
        }
        None => None,
    };
    let udp_port = discv5_socket
        .as_ref()
        .and_then(|s| s.local_addr().ok())
        .map(|a| a.port());
    let record = own_record(&key_for_record, &swarm, &config, serves, udp_port, false);
    // discv5 also runs without an address to announce: it finds peers, others cannot find it.
    let addressless = match (&record, &config.discv5) {
        (None, Some(_)) => own_record(&key_for_record, &swarm, &config, serves, udp_port, true),
        _ => None,
    };
    let peer_exchange = Arc::new(crate::peer_exchange::Cache::default());
    peer_exchange.set_own(record.clone());
    if let Some(service) = &filter_service {
        tokio::spawn(filter::service::run(service.clone(), delivered.subscribe()));
    }
    let shards = Arc::new(RwLock::new(HashSet::new()));
    let discovery_shards = shards.clone();
    let (book, peer_file) = open_peer_book(&config);
    let book_records = book.records(config.cluster, BOOK_BOOTSTRAP);
    let discovery_px = peer_exchange.clone();
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
        pending: super::services::Pending::default(),
        filter_service: filter_service.clone(),
        rate_limits: Arc::new(RateLimits::new(&config.rate_limits)),
        peer_exchange: peer_exchange.clone(),
        serves,
        handle: None,
        book,
        peer_file,
        relay_client: config
            .relay_client
            .then(super::swarm::Reservations::default),
        targets: super::peers::Targets {
            relay_per_shard: config.peer_manager.relay_peers_per_shard,
            per_service: config.peer_manager.service_peers,
            colocation: config.max_inbound_per_ip as usize,
        },
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
        writer,
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
        stopped: stopped_rx,
        serves,
        store_sync: store_sync.clone(),
    };
    if let Some(sync) = &store_sync {
        tokio::spawn(super::tasks::store_sync_task(
            handle.clone(),
            sync.clone(),
            stop_rx.clone(),
        ));
    }
    // DNS trees are read in the background: their records go to the peer manager and, with
    // discv5, bootstrap it.
    let (more_bootstrap, bootstrap_rx) = mpsc::channel(4);
    // Behind a NAT with discv5: the relayed addresses go into the record.
    let (relayed_tx, relayed_rx) = mpsc::channel(4);
    if let Some(r) = runner.relay_client.as_mut()
        && config.discv5.is_some()
    {
        r.record = Some(relayed_tx);
    }
    if !config.dns_discovery.is_empty() {
        tokio::spawn(read_dns_trees(
            config.dns_discovery.clone(),
            config.dns_name_servers.clone(),
            handle.clone(),
            config.discv5.is_some().then_some(more_bootstrap),
        ));
    }
    if let (Some(socket), Some(d)) = (discv5_socket, &config.discv5) {
        // Without an address to announce (listening on 0.0.0.0), discv5 still finds peers;
        // others find this node once it announces an address.
        let record = match record.clone() {
            Some(r) => Some(r),
            None => {
                let r = addressless;
                if r.is_some() {
                    tracing::warn!(
                        "discv5: no address to announce (the node listens on an unspecified \
                         address); it finds peers, but others cannot find it: set \
                         --ext-multiaddr or --listen-address"
                    );
                }
                r
            }
        };
        let Some(record) = record else {
            return Err(StartError::Discovery(
                crate::discovery::DiscoveryError::Start(
                    "discv5 needs a secp256k1 node key (--key-type secp256k1)".into(),
                ),
            ));
        };
        let secp = key_for_record
            .clone()
            .try_into_secp256k1()
            .expect("the record exists, so the key is secp256k1");
        let signing = crate::enr::signing_key(&secp).map_err(|e| {
            StartError::Discovery(crate::discovery::DiscoveryError::Start(e.to_string()))
        })?;
        // The records of the peer book too: a restarted node finds its network again without
        // any bootstrap record.
        let bootstrap: Vec<_> = d.bootstrap.iter().chain(&book_records).cloned().collect();
        let discovery = crate::discovery::Discovery::start(socket, &record, signing, &bootstrap)
            .await
            .map_err(StartError::Discovery)?;
        tracing::info!(
            udp = udp_port.unwrap_or_default(),
            record = %record.to_text(),
            bootstrap = bootstrap.len(),
            "discv5 discovery started"
        );
        let learner = handle.clone();
        let read_shards = discovery_shards;
        let px = discovery_px;
        let discovery_metrics = handle.metrics.clone();
        let table_metrics = handle.metrics.clone();
        tokio::spawn(discovery.run(
            crate::discovery::Hooks {
                cluster: config.cluster,
                shards: Box::new(move || {
                    let mut v: Vec<u16> = read_shards
                        .read()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .iter()
                        .copied()
                        .collect();
                    v.sort_unstable();
                    v
                }),
                found: Box::new(move |records| {
                    for r in &records {
                        if let Some((_, shards)) = r.shards() {
                            discovery_metrics.count_discovered(&shards);
                        }
                    }
                    let found = records.iter().map(super::Found::of_record).collect();
                    if !learner.learn(super::peers::Origin::Discv5, found) {
                        tracing::debug!("discv5 finds dropped: the node's command queue is full");
                    }
                }),
                record: Box::new(move |record| px.set_own(Some(record))),
                table: Box::new(move |records, seen| {
                    table_metrics.set_routing_table(records, seen)
                }),
                bootstrap: bootstrap_rx,
                relayed: relayed_rx,
            },
            d.interval,
            stop_rx.clone(),
        ));
    }
    runner.handle = Some(handle.clone());
    runner.redial_due();
    tokio::spawn(async move {
        runner.run().await;
        // The swarm and its listeners are gone now.
        let _ = stopped_tx.send(true);
    });
    Ok(handle)
}

async fn load_publisher(
    m: &super::MembershipConfig,
    client: &ChainClient,
    data_dir: &Path,
    rules: RlnRules,
    metrics: &Metrics,
) -> Result<Publisher, StartError> {
    let key = match &m.key {
        Some(k) => k.clone(),
        None => pick_credential(&m.keystore, client)?,
    };
    let started = Instant::now();
    let credential = credentials::unlock(m.keystore.clone(), key.clone(), m.password.clone())
        .await
        .map_err(|source| StartError::Unlock {
            what: "credential",
            key: key.clone(),
            source,
        })?;
    let identity = credentials::from_stored(&credential.identity_credential).map_err(|source| {
        StartError::Unlock {
            what: "credential",
            key: key.clone(),
            source,
        }
    })?;
    if credential.is_pending() {
        return Err(StartError::Membership(format!(
            "credential {key} is not registered yet; run `wakurln membership register`"
        )));
    }
    metrics
        .credentials_import
        .set(started.elapsed().as_secs_f64());
    let limit = credential.user_message_limit.unwrap_or(0);
    if limit == 0 {
        return Err(StartError::Membership(format!(
            "credential {key} has no rate limit (written before RLN v2); register a new membership"
        )));
    }
    let prover = load_prover(&m.circuit_dir).await?;
    let counter =
        MessageIdCounter::open(&data_dir.join("message-ids.sqlite")).map_err(StartError::from)?;
    tracing::info!(%key, index = credential.tree_index, limit, "publishing with membership");
    let publisher = Publisher::new(
        prover,
        Member {
            identity,
            index: credential.tree_index,
            limit,
        },
        rules,
        counter,
    );
    if let Some(remaining) = publisher.remaining(crate::clock::now_ns()) {
        metrics.remaining_proofs.set(remaining as i64);
    }
    Ok(publisher)
}

/// Loads the lending pool: its credentials, a prover and the durable id counter.
async fn load_pool(
    l: &super::LendingConfig,
    client: &ChainClient,
    data_dir: &Path,
    rules: RlnRules,
) -> Result<LendingPool, StartError> {
    let keys = if l.keys.is_empty() {
        credentials_of_contract(&l.keystore, client)?
    } else {
        l.keys.clone()
    };
    if keys.is_empty() {
        return Err(StartError::Membership(format!(
            "the lending keystore {} holds no membership of this contract",
            l.keystore.display()
        )));
    }
    let mut members = Vec::new();
    for key in keys {
        let credential = credentials::unlock(l.keystore.clone(), key.clone(), l.password.clone())
            .await
            .map_err(|source| StartError::Unlock {
                what: "lending credential",
                key: key.clone(),
                source,
            })?;
        let identity =
            credentials::from_stored(&credential.identity_credential).map_err(|source| {
                StartError::Unlock {
                    what: "lending credential",
                    key: key.clone(),
                    source,
                }
            })?;
        let limit = credential.user_message_limit.unwrap_or(0);
        if credential.is_pending() || limit == 0 {
            return Err(StartError::Membership(format!(
                "lending credential {key} is not a registered RLN v2 membership"
            )));
        }
        members.push(Member {
            identity,
            index: credential.tree_index,
            limit,
        });
    }
    let prover = load_prover(&l.circuit_dir).await?;
    let counter =
        MessageIdCounter::open(&data_dir.join("message-ids.sqlite")).map_err(StartError::from)?;
    tracing::info!(
        members = members.len(),
        capacity = members.iter().map(|m| m.limit).sum::<u64>(),
        "lending RLN proofs to light clients"
    );
    Ok(LendingPool::new(prover, members, counter, rules, l.rules))
}

/// The prover with the circuit keys in `dir` (loading builds its tables: off the async
/// threads). A process loads each directory once: a node that publishes and lends, or the
/// nodes of one test process, share the keys and the window tables (tens of megabytes).
async fn load_prover(dir: &Path) -> Result<RlnProver, StartError> {
    type Loaded = std::sync::Mutex<HashMap<PathBuf, RlnProver>>;
    static LOADED: std::sync::OnceLock<Loaded> = std::sync::OnceLock::new();
    let owned = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let key = owned.canonicalize().unwrap_or_else(|_| owned.clone());
        // Held while loading, so that two nodes starting together load once.
        let mut loaded = LOADED
            .get_or_init(Loaded::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(prover) = loaded.get(&key) {
            return Ok(prover.clone());
        }
        let prover = RlnProver::load(&owned)?;
        loaded.insert(key, prover.clone());
        Ok(prover)
    })
    .await?
    .map_err(|source| StartError::CircuitKeys {
        dir: dir.to_path_buf(),
        source,
    })
}

/// Every credential of the keystore registered with `client`'s contract.
fn credentials_of_contract(
    keystore: &Path,
    client: &ChainClient,
) -> Result<Vec<String>, StartError> {
    let store = wakurln_keystore::Keystore::open(keystore).map_err(StartError::from)?;
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
fn pick_credential(keystore: &Path, client: &ChainClient) -> Result<String, StartError> {
    let chain = client.chain_id();
    let contract = client.contract_address();
    let mine = credentials_of_contract(keystore, client)?;
    match mine.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(StartError::Membership(format!(
            "the keystore {} holds no membership of contract {contract} on chain {chain}",
            keystore.display()
        ))),
        many => Err(StartError::Membership(format!(
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
    metrics: &Metrics,
) -> Result<Swarm<Behaviour>, StartError> {
    let swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            (yamux::Config::default, libp2p_mplex::Config::default),
        )
        .map_err(transport)?
        .with_websocket(
            noise::Config::new,
            (yamux::Config::default, libp2p_mplex::Config::default),
        )
        .await
        .map_err(transport)?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(transport)?
        .with_bandwidth_metrics(&mut metrics.transport.lock().expect("never poisoned"))
        .with_behaviour(|key, relay_client| Behaviour::new(key, limits, serves, relay_client))
        .map_err(transport)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();
    Ok(swarm)
}

/// The node's own record: its secp256k1 key, its dialable TCP and WebSocket addresses, its
/// services and shards. `None` for an Ed25519 key or without a concrete address.
/// Reads the DNS trees one after the other, hands the records of this node's cluster and
/// shards to the peer manager, and every record to discv5 as bootstrap.
async fn read_dns_trees(
    urls: Vec<crate::dns_discovery::TreeUrl>,
    name_servers: Vec<std::net::SocketAddr>,
    node: NodeHandle,
    discv5: Option<mpsc::Sender<Vec<crate::enr::Enr>>>,
) {
    for url in &urls {
        let read = tokio::time::timeout(
            DNS_TREE_TIMEOUT,
            crate::dns_discovery::resolve(url, &name_servers),
        )
        .await;
        let records = match read {
            Ok(Ok(records)) => records,
            Ok(Err(e)) => {
                tracing::warn!(domain = %url.domain, "DNS discovery failed: {e}");
                continue;
            }
            Err(_) => {
                tracing::warn!(
                    domain = %url.domain,
                    "DNS discovery gave no answer within {DNS_TREE_TIMEOUT:?}"
                );
                continue;
            }
        };
        let cluster = node.cluster;
        let shards: Vec<u16> = node.shards();
        let wanted: Vec<super::Found> = records
            .iter()
            .filter(|r| crate::discovery::wanted(r, cluster, &shards))
            .map(super::Found::of_record)
            .collect();
        tracing::info!(
            domain = %url.domain,
            records = records.len(),
            of_our_shards = wanted.len(),
            "DNS tree read"
        );
        node.learn(super::peers::Origin::Dns, wanted);
        if let Some(d) = &discv5 {
            let _ = d.send(records).await;
        }
    }
}

/// The peer book, from the data directory's file when the node keeps one. A file that cannot
/// be opened or read is left as it is: the node starts with an empty book and says why.
fn open_peer_book(config: &NodeConfig) -> (super::peers::Book, Option<super::peers::PeerFile>) {
    use super::peers::{Book, FILE, PeerFile};
    let capacity = match config.peer_manager.capacity {
        0 => (config.max_connections as usize).saturating_mul(5).max(50),
        n => n,
    };
    if !config.peer_manager.persist {
        return (Book::new(capacity), None);
    }
    let path = config.data_dir.join(FILE);
    let file = match PeerFile::open(&path) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(
                "the peer book {} cannot be opened, so peers are not remembered: {e}",
                path.display()
            );
            return (Book::new(capacity), None);
        }
    };
    match file.load(capacity) {
        Ok((book, skipped)) => {
            if !book.is_empty() || skipped > 0 {
                tracing::info!(
                    peers = book.len(),
                    skipped,
                    "peer book read from {}",
                    path.display()
                );
            }
            (book, Some(file))
        }
        Err(e) => {
            tracing::warn!(
                "the peer book {} cannot be read, so peers are not remembered: {e}",
                path.display()
            );
            (Book::new(capacity), None)
        }
    }
}

/// Records of the peer book given to discv5 at start, at most.
const BOOK_BOOTSTRAP: usize = 64;

/// Longest a DNS tree may take to read at start.
const DNS_TREE_TIMEOUT: Duration = Duration::from_secs(15);

fn own_record(
    key: &libp2p::identity::Keypair,
    swarm: &Swarm<Behaviour>,
    config: &NodeConfig,
    serves: Serves,
    udp: Option<u16>,
    without_address: bool,
) -> Option<crate::enr::Enr> {
    use crate::enr::{Content, Enr, services};
    let secp = key.clone().try_into_secp256k1().ok()?;
    // The sequence number is the time: a restarted node's record (new ports perhaps) must
    // replace the one others remember from its last run.
    let seq = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut content = Content {
        seq,
        udp,
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
    if content.ip_tcp.is_none() && content.multiaddrs.is_empty() && !without_address {
        return None;
    }
    content.services = services::RELAY
        | if serves.store { services::STORE } else { 0 }
        | if serves.filter { services::FILTER } else { 0 }
        | if serves.lightpush {
            services::LIGHTPUSH
        } else {
            0
        }
        | if serves.store_sync { services::SYNC } else { 0 };
    match Enr::sign(&secp, &content) {
        Ok(enr) => Some(enr),
        Err(e) => {
            tracing::warn!(error = %e, "cannot make the node's record");
            None
        }
    }
}
