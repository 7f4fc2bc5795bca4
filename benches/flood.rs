//! A flood against one validating node: three honest publishers at 2 messages/s each and one
//! attacker sending, as fast as its connection takes them, garbage, re-encoded copies of valid
//! messages it saw, and copies with the payload changed (valid points, a known root, the
//! current epoch), some with the share changed as well so that only a full verification can
//! refuse them. The node runs as its own process (`wakurln node`), so its peak memory is its
//! own; publishers, attacker and an observer peer are libp2p peers of this process.
//!
//! Reported, for a run without the attacker and one with it: honest delivery (at the observer,
//! through the node), honest latency p50/p99, the time until the node disconnected the
//! attacker, the attacker's refused reconnections, and the node's peak RSS.
//!
//! `cargo bench --bench flood` runs 30 s per scenario (`FLOOD_SECONDS` to change it); the test
//! run (`cargo test --benches`) runs 6 s per scenario.

#![allow(missing_docs)]

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    str::FromStr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use alloy::{primitives::U256, signers::local::PrivateKeySigner};
use futures::StreamExt;
use libp2p::{Multiaddr, Swarm, gossipsub, noise, swarm::SwarmEvent, tcp, yamux};
use rand::{Rng, SeedableRng};
use wakurln::{
    chain::{
        ChainClient, Endpoint,
        anvil::{Anvil, project_binary},
        deploy::{self, Terms, Variant},
        membership,
        sync::{SyncConfig, Syncer},
    },
    clock,
    message::WakuMessage,
    node::{publisher::attach_proof, relay},
    rln::{
        field::Fr,
        identity::Identity,
        prover::{MemberInputs, PreparedRln, RlnProver},
        waku::RlnProofData,
    },
    topics::{ContentTopic, StaticShard},
};

const EPOCH: u64 = 86_400;
const CLUSTER: u16 = 42;
const DEV_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const PUBLISHERS: usize = 3;
const INTERVAL: Duration = Duration::from_millis(500);

fn circuit_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/circuits/waku-rln-v2");
    assert!(
        dir.is_dir(),
        "missing {}: benches need ../shared",
        dir.display()
    );
    dir
}

fn topic() -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(StaticShard::new(CLUSTER, 0).pubsub_topic().as_str())
}

fn content_topic() -> ContentTopic {
    ContentTopic::from_str("/bench/1/flood/proto").unwrap()
}

/// A plain gossipsub peer speaking Waku relay, validating nothing.
fn relay_peer() -> Swarm<gossipsub::Behaviour> {
    let config = gossipsub::ConfigBuilder::default()
        .protocol_id(relay::PROTOCOL, gossipsub::Version::V1_1)
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .message_id_fn(|m: &gossipsub::Message| relay::message_id(&m.data))
        .max_transmit_size(1 << 20)
        .heartbeat_interval(Duration::from_millis(500))
        .build()
        .unwrap();
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config).unwrap()
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
        .build();
    swarm.behaviour_mut().subscribe(&topic()).unwrap();
    swarm
}

struct Chain {
    anvil: Anvil,
    contract: alloy::primitives::Address,
    prover: Arc<RlnProver>,
    members: Vec<Arc<PreparedRln>>,
}

async fn chain(dir: &Path) -> Chain {
    let anvil =
        Anvil::start(&project_binary(), &[]).expect("anvil from `npm ci --prefix contracts`");
    let signer = PrivateKeySigner::from_str(DEV_KEY).unwrap();
    let d = deploy::deploy(
        &Endpoint(anvil.url.clone()),
        signer.clone(),
        Terms {
            min_rate_limit: 1,
            ..Terms::waku_network(U256::ZERO)
        },
        Variant::Standard,
        &[],
        U256::ZERO,
    )
    .await
    .unwrap();
    let client = ChainClient::connect(
        &[Endpoint(anvil.url.clone())],
        d.contract,
        None,
        Some(signer),
    )
    .await
    .unwrap();
    // Three honest members and the attacker's, which it uses for one valid message only.
    let mut identities = Vec::new();
    for _ in 0..=PUBLISHERS {
        let identity = Identity::generate();
        let plan = membership::plan_register(&client, identity.commitment, 600)
            .await
            .unwrap();
        let r = membership::register(&client, &plan).await.unwrap();
        identities.push((identity, r.index as usize));
    }
    let mut syncer = Syncer::open(
        client,
        &dir.join("bench-tree.sqlite"),
        SyncConfig {
            follow_distance: 0,
            ..SyncConfig::default()
        },
    )
    .await
    .unwrap();
    syncer.step().await.unwrap();
    let prover = Arc::new(RlnProver::load(&circuit_dir()).unwrap());
    let members = identities
        .iter()
        .map(|(identity, index)| {
            let path = syncer.tree().proof(*index).unwrap();
            Arc::new(
                prover
                    .prepare(&MemberInputs {
                        identity_secret: identity.secret_hash,
                        user_message_limit: Fr::from(600u64),
                        path_elements: path.elements,
                        identity_path_index: path.path_bits(),
                    })
                    .unwrap(),
            )
        })
        .collect();
    Chain {
        anvil,
        contract: d.contract,
        prover,
        members,
    }
}

/// The validating node, as its own process.
struct Node {
    child: Child,
    address: Multiaddr,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    async fn start(chain: &Chain, dir: &Path) -> Self {
        let tcp = free_port();
        let rest = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_wakurln"))
            .args(["node", "--data-dir"])
            .arg(dir)
            .args(["--tcp-port", &tcp.to_string()])
            .args(["--cluster-id", &CLUSTER.to_string(), "--shard", "0"])
            .args(["--rln-rpc", &chain.anvil.url])
            .args(["--rln-contract", &chain.contract.to_string()])
            .args(["--rln-epoch-period", &EPOCH.to_string()])
            .args(["--rln-follow-distance", "0", "--rln-poll-interval", "1"])
            .args(["--rest-port", &rest.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("the wakurln binary starts");
        let http = alloy::transports::http::reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let address = loop {
            assert!(Instant::now() < deadline, "the node did not come up");
            tokio::time::sleep(Duration::from_millis(200)).await;
            let Ok(res) = http
                .get(format!("http://127.0.0.1:{rest}/debug/v1/info"))
                .send()
                .await
            else {
                continue;
            };
            let info: serde_json::Value = res.json().await.unwrap();
            let health: serde_json::Value = http
                .get(format!("http://127.0.0.1:{rest}/health"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if health["nodeHealth"] != "Ready" {
                continue;
            }
            break info["listenAddresses"][0]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
        };
        Self { child, address }
    }

    /// Peak resident memory, from the kernel's high-water mark.
    fn peak_rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Drives `swarm` until `topic` has a peer to publish to.
async fn wait_subscribed(swarm: &mut Swarm<gossipsub::Behaviour>) {
    let hash = topic().hash();
    let deadline = Instant::now() + Duration::from_secs(30);
    while swarm
        .behaviour()
        .all_peers()
        .all(|(_, t)| !t.contains(&&hash))
    {
        assert!(Instant::now() < deadline, "the node never subscribed");
        let _ = tokio::time::timeout(Duration::from_millis(100), swarm.select_next_some()).await;
    }
}

#[derive(Default)]
struct Report {
    sent: usize,
    delivered: usize,
    latencies: Vec<Duration>,
    disconnected_after: Option<Duration>,
    attacker_sent: usize,
    refused_reconnects: usize,
    peak_rss_mb: f64,
}

/// An honest publisher: member `member`, a message every INTERVAL.
async fn publisher(
    chain: Arc<Chain>,
    member: usize,
    node: Multiaddr,
    sent: Arc<Mutex<HashMap<Vec<u8>, Instant>>>,
    until: Instant,
) {
    let mut swarm = relay_peer();
    swarm.dial(node).unwrap();
    wait_subscribed(&mut swarm).await;
    let mut tick = tokio::time::interval(INTERVAL);
    // Each scenario runs a fresh node, so message ids start at 0 in each.
    let mut n = 0u64;
    while Instant::now() < until {
        tokio::select! {
            _ = tick.tick() => {
                let payload = format!("honest {member} {n}").into_bytes();
                let message = WakuMessage::builder(content_topic(), payload.clone())
                    .timestamp(clock::now_ns())
                    .build()
                    .unwrap();
                let c = chain.clone();
                let id = n;
                let proved = tokio::task::spawn_blocking(move || {
                    attach_proof(&c.prover, &c.members[member], message, EPOCH, id).unwrap()
                })
                .await
                .unwrap();
                sent.lock().unwrap().insert(payload, Instant::now());
                let _ = swarm.behaviour_mut().publish(topic(), proved.encode());
                n += 1;
            }
            _ = swarm.select_next_some() => {}
        }
    }
    // Let the last message leave before the connection goes.
    let flush = Instant::now() + Duration::from_secs(1);
    while Instant::now() < flush {
        let _ = tokio::time::timeout(Duration::from_millis(100), swarm.select_next_some()).await;
    }
}

/// The observer: records when each honest message reaches it through the node.
async fn observer(
    node: Multiaddr,
    received: Arc<Mutex<HashMap<Vec<u8>, Instant>>>,
    until: Instant,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut swarm = relay_peer();
    swarm.dial(node).unwrap();
    let mut ready = Some(ready);
    while Instant::now() < until {
        if ready.is_some() && swarm.behaviour().mesh_peers(&topic().hash()).count() > 0 {
            let _ = ready.take().expect("checked").send(());
        }
        let event =
            tokio::time::timeout(Duration::from_millis(100), swarm.select_next_some()).await;
        if let Ok(SwarmEvent::Behaviour(gossipsub::Event::Message { message, .. })) = event
            && let Ok(m) = WakuMessage::decode(&message.data)
            && m.payload().starts_with(b"honest ")
        {
            received
                .lock()
                .unwrap()
                .entry(m.payload().to_vec())
                .or_insert_with(Instant::now);
        }
    }
}

/// The attacker. Returns (messages sent, time until disconnected, refused reconnections).
async fn attacker(
    chain: Arc<Chain>,
    node: Multiaddr,
    until: Instant,
) -> (usize, Option<Duration>, usize) {
    let mut swarm = relay_peer();
    swarm.dial(node.clone()).unwrap();
    wait_subscribed(&mut swarm).await;
    // Its one valid message, and the honest messages it sees, are its material.
    let own = {
        let c = chain.clone();
        let message = WakuMessage::builder(content_topic(), b"attacker".to_vec())
            .timestamp(clock::now_ns())
            .build()
            .unwrap();
        tokio::task::spawn_blocking(move || {
            attach_proof(&c.prover, &c.members[PUBLISHERS], message, EPOCH, 0).unwrap()
        })
        .await
        .unwrap()
    };
    let _ = swarm.behaviour_mut().publish(topic(), own.encode());
    let mut seen: Vec<WakuMessage> = vec![own];
    let started = Instant::now();
    let mut disconnected = None;
    let mut refused = 0;
    let mut sent = 0usize;
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut next_redial = Instant::now();
    while Instant::now() < until {
        // Drain what the connection reports without waiting.
        while let Ok(Some(event)) = tokio::time::timeout(Duration::ZERO, swarm.next()).await {
            match event {
                SwarmEvent::Behaviour(gossipsub::Event::Message { message, .. }) => {
                    if let Ok(m) = WakuMessage::decode(&message.data)
                        && seen.len() < 64
                    {
                        seen.push(m);
                    }
                }
                SwarmEvent::ConnectionClosed {
                    num_established: 0, ..
                } => {
                    if disconnected.is_some() {
                        // A reconnection the node closed at once.
                        refused += 1;
                    }
                    disconnected.get_or_insert(started.elapsed());
                }
                SwarmEvent::OutgoingConnectionError { .. } if disconnected.is_some() => {
                    refused += 1;
                }
                _ => {}
            }
        }
        if disconnected.is_some() {
            // Banned: try to come back now and then.
            if Instant::now() >= next_redial && swarm.connected_peers().count() == 0 {
                let _ = swarm.dial(node.clone());
                next_redial = Instant::now() + Duration::from_millis(500);
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), swarm.select_next_some()).await;
            continue;
        }
        let base = &seen[rng.gen_range(0..seen.len())];
        let data = match sent % 4 {
            // Garbage.
            0 => (0..200).map(|_| rng.r#gen::<u8>()).collect(),
            // A valid message re-encoded with other meta.
            1 => rebuild(base, base.payload().to_vec(), None).encode(),
            // The payload changed under a valid proof.
            2 => rebuild(base, format!("spam {sent}").into_bytes(), None).encode(),
            // Payload and share changed: only a proof check refuses it.
            _ => rebuild(
                base,
                format!("spam {sent}").into_bytes(),
                Some(Fr::from(sent as u64)),
            )
            .encode(),
        };
        match swarm.behaviour_mut().publish(topic(), data) {
            Ok(_) => sent += 1,
            Err(_) => {
                let _ =
                    tokio::time::timeout(Duration::from_millis(1), swarm.select_next_some()).await;
            }
        }
        if sent.is_multiple_of(32) {
            tokio::task::yield_now().await;
        }
    }
    (sent, disconnected, refused)
}

/// `m` with another payload and meta, and optionally another share `y`.
fn rebuild(m: &WakuMessage, payload: Vec<u8>, y: Option<Fr>) -> WakuMessage {
    let mut proof = RlnProofData::decode(m.rate_limit_proof().unwrap()).unwrap();
    if let Some(y) = y {
        proof.share_y = y;
    }
    WakuMessage::builder(m.content_topic().clone(), payload)
        .timestamp(m.timestamp().unwrap())
        .meta(rand::random::<[u8; 8]>().to_vec())
        .build()
        .unwrap()
        .with_rate_limit_proof(proof.encode())
        .unwrap()
}

async fn scenario(chain: Arc<Chain>, dir: &Path, seconds: u64, attack: bool) -> Report {
    let node = Node::start(&chain, dir).await;
    let sent = Arc::new(Mutex::new(HashMap::new()));
    let received = Arc::new(Mutex::new(HashMap::new()));
    let until = Instant::now() + Duration::from_secs(seconds) + Duration::from_secs(3);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let observing = tokio::spawn(observer(
        node.address.clone(),
        received.clone(),
        until + Duration::from_secs(3),
        ready_tx,
    ));
    // Publishing starts once the node forwards to the observer.
    ready_rx.await.expect("the observer joins the node's mesh");
    let attacking =
        attack.then(|| tokio::spawn(attacker(chain.clone(), node.address.clone(), until)));
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|member| {
            tokio::spawn(publisher(
                chain.clone(),
                member,
                node.address.clone(),
                sent.clone(),
                until,
            ))
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    let (attacker_sent, disconnected_after, refused_reconnects) = match attacking {
        Some(a) => a.await.unwrap(),
        None => (0, None, 0),
    };
    observing.await.unwrap();
    let sent = sent.lock().unwrap();
    let received = received.lock().unwrap();
    let mut latencies: Vec<Duration> = sent
        .iter()
        .filter_map(|(payload, at)| {
            received
                .get(payload)
                .map(|r| r.saturating_duration_since(*at))
        })
        .collect();
    latencies.sort();
    Report {
        sent: sent.len(),
        delivered: latencies.len(),
        latencies,
        disconnected_after,
        attacker_sent,
        refused_reconnects,
        peak_rss_mb: node.peak_rss_mb(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn print(label: &str, r: &Report) {
    println!(
        "{label}: honest delivery {}/{} ({:.1}%), latency p50 {:.1} ms, p99 {:.1} ms, \
         node peak RSS {:.0} MB",
        r.delivered,
        r.sent,
        100.0 * r.delivered as f64 / r.sent.max(1) as f64,
        percentile(&r.latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&r.latencies, 0.99).as_secs_f64() * 1e3,
        r.peak_rss_mb,
    );
    if r.attacker_sent > 0 {
        println!(
            "{label}: attacker sent {} messages; disconnected after {}; {} reconnections refused",
            r.attacker_sent,
            r.disconnected_after
                .map_or("never".to_owned(), |d| format!("{:.2} s", d.as_secs_f64())),
            r.refused_reconnects,
        );
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let seconds: u64 = std::env::var("FLOOD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 30 } else { 6 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("wakurln-flood-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    rt.block_on(async {
        let chain = Arc::new(chain(&dir).await);
        let calm = scenario(chain.clone(), &dir.join("calm"), seconds, false).await;
        print("without attacker", &calm);
        let flood = scenario(chain.clone(), &dir.join("flood"), seconds, true).await;
        print("with attacker", &flood);
        assert_eq!(
            calm.delivered, calm.sent,
            "honest messages lost without an attacker"
        );
        assert!(
            flood.disconnected_after.is_some(),
            "the attacker was never disconnected"
        );
    });
    let _ = std::fs::remove_dir_all(&dir);
}
