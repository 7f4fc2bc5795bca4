//! RLN proof lending end to end: light clients push messages without proofs over lightpush v3
//! to a service node whose pool holds memberships with the contract's limits (20 to 600
//! messages per epoch); the service takes a durable message id, lends a proof, checks it as
//! every relayed message is checked and publishes it to its relay peer, which verifies it
//! again. A new membership is registered on the local chain every 10 s during the run, so the
//! root keeps changing and the pool keeps bringing its members up to date (in the background).
//!
//! Measured: messages lent and relayed per second with two light clients pushing at once.
//! After the run: how many registrations arrived during it, and the pool's background
//! refreshes (count and mean) from the service's metrics.

#![allow(missing_docs)] // criterion_group! generates undocumented functions

mod common;

use std::{
    path::Path,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use wakurln::{
    chain::{ChainClient, devnet::Devnet},
    clock::now_ns,
    credentials,
    lightpush::lending::LendingRules,
    message::WakuMessage,
    node::{self, LendingConfig, NodeConfig, NodeHandle, RlnConfig},
    rln::identity::Identity,
    topics::{ContentTopic, PubsubTopic, StaticShard},
};
use wakurln_keystore::{Kdf, Keystore};

/// Long epochs, so a run never crosses into the next one.
const EPOCH: u64 = 86_400;
const CLUSTER: u16 = 42;
/// Messages pushed per measured round, split between the two clients.
const ROUND: u64 = 20;
/// The pool's memberships: the contract's limits from its smallest to its largest, 4,080
/// messages per epoch in all.
const POOL_LIMITS: [u32; 16] = [
    20, 100, 300, 600, 20, 100, 300, 600, 20, 100, 300, 600, 20, 100, 300, 600,
];
const REGISTRATION_EVERY: Duration = Duration::from_secs(10);
const PASSWORD: &str = "lending bench";

fn message(i: u64) -> WakuMessage {
    WakuMessage::builder(
        ContentTopic::from_str("/bench/1/lending/proto").unwrap(),
        format!("pushed {i}").into_bytes(),
    )
    .timestamp(now_ns())
    .build()
    .unwrap()
}

fn topic() -> PubsubTopic {
    StaticShard::new(CLUSTER, 0).pubsub_topic()
}

/// Registers the pool's memberships and files them in one keystore.
async fn pool_keystore(client: &ChainClient, path: &Path) {
    for limit in POOL_LIMITS {
        let identity = Identity::generate();
        let r = Devnet::register(client, &identity, limit).await.unwrap();
        let credential = credentials::registered(&identity, client, r.index, limit);
        Keystore::add(
            path,
            &credential,
            PASSWORD.as_bytes(),
            Kdf::default(),
            &mut rand::rngs::OsRng,
        )
        .unwrap();
    }
}

fn rln_config(devnet: &Devnet) -> RlnConfig {
    common::rln_config(devnet, EPOCH, Duration::from_millis(500))
}

async fn address(node: &NodeHandle) -> Multiaddr {
    node.listen_addrs().await.unwrap()[0]
        .clone()
        .with(Protocol::P2p(node.peer_id()))
}

struct Setup {
    service: NodeHandle,
    service_id: PeerId,
    relay: NodeHandle,
    clients: Vec<NodeHandle>,
}

async fn setup(devnet: &Devnet, client: &ChainClient, dir: &Path) -> Setup {
    let keystore = dir.join("pool.keystore.json");
    pool_keystore(client, &keystore).await;
    // The service's relay peer, enforcing RLN as the network does.
    let mut config = NodeConfig::local(dir.join("relay"), CLUSTER);
    config.rln = Some(rln_config(devnet));
    let relay = node::start(config).await.unwrap();
    relay.wait_ready().await.unwrap();
    let mut config = NodeConfig::local(dir.join("service"), CLUSTER);
    config.static_peers = vec![address(&relay).await];
    config.lightpush = true;
    let mut rln = rln_config(devnet);
    rln.lending = Some(LendingConfig {
        keystore,
        keys: Vec::new(),
        password: PASSWORD.to_owned().into(),
        circuit_dir: common::circuit_dir(),
        rules: LendingRules {
            per_client_quota: 1_000_000,
            reserve: 0,
        },
    });
    config.rln = Some(rln);
    let service = node::start(config).await.unwrap();
    service.wait_ready().await.unwrap();
    let service_address = address(&service).await;
    // Light clients: no RLN and no membership; they only push.
    let mut clients = Vec::new();
    for i in 0..2 {
        let mut config = NodeConfig::local(dir.join(format!("client{i}")), CLUSTER);
        config.static_peers = vec![service_address.clone()];
        clients.push(node::start(config).await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while service.mesh_peers(topic()).await.unwrap() < 1
        || relay.mesh_peers(topic()).await.unwrap() < 1
    {
        assert!(Instant::now() < deadline, "the relay mesh never formed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Setup {
        service_id: service.peer_id(),
        service,
        relay,
        clients,
    }
}

/// `(count, sum)` of a histogram in the node's metrics.
fn histogram(node: &NodeHandle, name: &str) -> (u64, f64) {
    let text = node.metrics().encode();
    let value = |suffix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}_{suffix} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (value("count") as u64, value("sum"))
}

fn lending(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("wakurln-bench-lending-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let common::LocalChain { devnet, client } = rt.block_on(common::local_chain());
    let setup = rt.block_on(setup(&devnet, &client, &dir));
    // The pool prepares its members in the background once it has their paths: wait for it,
    // as a service that has been running would have.
    let deadline = Instant::now() + Duration::from_secs(120);
    while histogram(&setup.service, "waku_rln_member_refresh_seconds").0 == 0 {
        assert!(
            Instant::now() < deadline,
            "the pool was never prepared in the background"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let refreshes_before = histogram(&setup.service, "waku_rln_member_refresh_seconds");

    // Registrations arrive during the run.
    let running = Arc::new(AtomicBool::new(true));
    let registered = Arc::new(AtomicU64::new(0));
    let registrar = rt.spawn({
        let (running, registered) = (running.clone(), registered.clone());
        async move {
            let mut tick = tokio::time::interval(REGISTRATION_EVERY);
            tick.tick().await;
            while running.load(Ordering::Relaxed) {
                tick.tick().await;
                if Devnet::register(&client, &Identity::generate(), 20)
                    .await
                    .is_ok()
                {
                    registered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });

    let pushed = AtomicU64::new(0);
    let push_round = || {
        rt.block_on(async {
            let pushes = setup.clients.iter().map(|light| {
                let pushed = &pushed;
                let service = setup.service_id;
                async move {
                    for _ in 0..ROUND / 2 {
                        let i = pushed.fetch_add(1, Ordering::Relaxed);
                        let r = light
                            .lightpush(service, Some(topic()), &message(i))
                            .await
                            .unwrap();
                        assert_eq!(
                            r.status_code, 200,
                            "push {i} refused (the pool lends 4,080 proofs per epoch): {r:?}"
                        );
                    }
                }
            });
            futures::future::join_all(pushes).await;
        });
    };
    let started = Instant::now();
    let mut group = c.benchmark_group("lending end to end");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(ROUND));
    group.bench_function(
        "lightpush v3, 2 clients at once, a registration every 10 s",
        |b| {
            b.iter_custom(|rounds| {
                let started = Instant::now();
                for _ in 0..rounds {
                    push_round();
                }
                started.elapsed()
            });
        },
    );
    group.finish();
    running.store(false, Ordering::Relaxed);
    registrar.abort();
    let elapsed = started.elapsed();
    let (count, sum) = histogram(&setup.service, "waku_rln_member_refresh_seconds");
    let (count, sum) = (count - refreshes_before.0, sum - refreshes_before.1);
    println!(
        "lending end to end: {} messages in {:.1} s, {} registrations during the run; \
         {count} background refreshes of the pool's {} members, {:.1} ms each on average",
        pushed.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        registered.load(Ordering::Relaxed),
        POOL_LIMITS.len(),
        if count > 0 {
            sum * 1e3 / count as f64
        } else {
            0.0
        },
    );
    for n in setup.clients.iter().chain([&setup.service, &setup.relay]) {
        rt.block_on(n.shutdown());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, lending);
criterion_main!(benches);
