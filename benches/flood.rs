//! A flood against one validating node: three honest publishers at 2 messages/s each and one
//! attacker sending, as fast as its connection takes them, garbage, re-encoded copies of valid
//! messages it saw, and copies with the payload changed (valid points, a known root, the
//! current epoch), some with the share changed as well so that only a full verification can
//! refuse them. The node runs as its own process (`wakurln node`), so its peak memory is its
//! own; publishers, attacker and an observer peer are libp2p peers of this process.
//!
//! The attacker comes back under a new peer id each time the node bans it. A second attacker
//! sends only re-encoded copies of valid messages, which the node ignores without penalty, as
//! fast as its connection takes them.
//!
//! Reported, for a run without an attacker and one with each: honest delivery (at the
//! observer, through the node), honest latency p50/p99, the time until the node first
//! disconnected the attacker, the attacker's refused reconnections, and the node's peak RSS.
//!
//! `cargo bench --bench flood` runs 30 s per scenario (`FLOOD_SECONDS` to change it); the test
//! run (`cargo test --benches`) runs 6 s per scenario.

#![allow(missing_docs)]

mod common;

use std::{
    collections::HashMap,
    path::Path,
    process::{Child, Command, Stdio},
    str::FromStr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use libp2p::{Multiaddr, Swarm, gossipsub, noise, swarm::SwarmEvent, tcp, yamux};
use rand::{Rng, SeedableRng};
use wakurln::{
    chain::{anvil::Anvil, devnet::Devnet},
    clock,
    message::WakuMessage,
    relay::{gossip as relay, publisher::attach_proof},
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
const PUBLISHERS: usize = 3;
const INTERVAL: Duration = Duration::from_millis(500);

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
    let common::LocalChain { devnet, client } = common::local_chain().await;
    // Three honest members and the attacker's, which it uses for one valid message only.
    let mut identities = Vec::new();
    for _ in 0..=PUBLISHERS {
        let identity = Identity::generate();
        let r = Devnet::register(&client, &identity, 600).await.unwrap();
        identities.push((identity, r.index as usize));
    }
    let tree = devnet.tree(&dir.join("bench-tree.sqlite")).await.unwrap();
    let prover = Arc::new(RlnProver::load(&common::circuit_dir()).unwrap());
    let members = identities
        .iter()
        .map(|(identity, index)| {
            let path = tree.proof(*index).unwrap();
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
        contract: devnet.contract(),
        anvil: devnet.anvil,
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
        let mut child = child;
        let address = loop {
            if Instant::now() > deadline {
                // Not left running: it would hold the test run's output open.
                let _ = child.kill();
                panic!("the node did not come up");
            }
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
            if health["nodeHealth"] != "READY" {
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
/// Drives `swarm` until `topic` has a peer to publish to; false if `until` came first.
async fn wait_subscribed(swarm: &mut Swarm<gossipsub::Behaviour>, until: Instant) -> bool {
    let hash = topic().hash();
    while swarm
        .behaviour()
        .all_peers()
        .all(|(_, t)| !t.contains(&&hash))
    {
        if Instant::now() >= until {
            return false;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), swarm.select_next_some()).await;
    }
    true
}

#[derive(Default)]
struct Report {
    sent: usize,
    delivered: usize,
    latencies: Vec<Duration>,
    attack: Option<Attack>,
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
    assert!(
        wait_subscribed(&mut swarm, Instant::now() + Duration::from_secs(30)).await,
        "the node never subscribed"
    );
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

/// What the attacker achieved.
#[derive(Default)]
struct Attack {
    /// Messages it published.
    sent: usize,
    /// Peer identities it used (a new one after each ban).
    identities: usize,
    /// Time from its first message until the node first disconnected it.
    first_disconnect: Option<Duration>,
    /// Reconnections of a banned identity, and how many the node refused.
    redials: usize,
    refused: usize,
}

/// The attacker: floods under one peer identity until the node disconnects it, checks that
/// the same identity is refused, then comes back under a new one, until `until`.
/// What the attacker sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mix {
    /// Garbage, re-encoded copies, payload-changed and share-changed copies in turn.
    Invalid,
    /// Only re-encoded copies of valid messages: never rejected, so never banned.
    Copies,
}

async fn attacker(chain: Arc<Chain>, node: Multiaddr, until: Instant, mix: Mix) -> Attack {
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
    let mut seen: Vec<WakuMessage> = vec![own.clone()];
    let mut attack = Attack::default();
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut started = None;
    while Instant::now() < until {
        let mut swarm = relay_peer();
        attack.identities += 1;
        swarm.dial(node.clone()).unwrap();
        if !wait_subscribed(&mut swarm, until).await {
            break;
        }
        if attack.identities == 1 {
            let _ = swarm.behaviour_mut().publish(topic(), own.encode());
        }
        let started = *started.get_or_insert_with(Instant::now);
        let mut connected = true;
        while connected && Instant::now() < until {
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
                        connected = false;
                        attack.first_disconnect.get_or_insert(started.elapsed());
                    }
                    _ => {}
                }
            }
            let base = &seen[rng.gen_range(0..seen.len())];
            let kind = if mix == Mix::Copies {
                1
            } else {
                attack.sent % 4
            };
            let data = match kind {
                // Garbage.
                0 => (0..200).map(|_| rng.r#gen::<u8>()).collect(),
                // A valid message re-encoded with other meta.
                1 => rebuild(base, base.payload().to_vec(), None).encode(),
                // The payload changed under a valid proof.
                2 => rebuild(base, format!("spam {}", attack.sent).into_bytes(), None).encode(),
                // Payload and share changed: only a proof check refuses it.
                _ => rebuild(
                    base,
                    format!("spam {}", attack.sent).into_bytes(),
                    Some(Fr::from(attack.sent as u64)),
                )
                .encode(),
            };
            match swarm.behaviour_mut().publish(topic(), data) {
                Ok(_) => attack.sent += 1,
                Err(_) => {
                    let _ =
                        tokio::time::timeout(Duration::from_millis(1), swarm.select_next_some())
                            .await;
                }
            }
            if attack.sent.is_multiple_of(32) {
                tokio::task::yield_now().await;
            }
        }
        if connected {
            break;
        }
        // The same identity tries to come back: the node must close the door at once.
        attack.redials += 1;
        if swarm.dial(node.clone()).is_err() || !stays_out(&mut swarm).await {
            continue;
        }
        attack.refused += 1;
    }
    attack
}

/// Whether a dial of a banned identity ends without a lasting connection.
async fn stays_out(swarm: &mut Swarm<gossipsub::Behaviour>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match tokio::time::timeout_at(deadline.into(), swarm.select_next_some()).await {
            Err(_) => return swarm.connected_peers().count() == 0,
            Ok(SwarmEvent::OutgoingConnectionError { .. }) => return true,
            Ok(SwarmEvent::ConnectionClosed {
                num_established: 0, ..
            }) => return true,
            Ok(_) => {}
        }
    }
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

async fn scenario(chain: Arc<Chain>, dir: &Path, seconds: u64, attack: Option<Mix>) -> Report {
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
        attack.map(|mix| tokio::spawn(attacker(chain.clone(), node.address.clone(), until, mix)));
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
    let attack = match attacking {
        Some(a) => Some(a.await.unwrap()),
        None => None,
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
        attack,
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
    if let Some(a) = &r.attack {
        println!(
            "{label}: attacker sent {} messages under {} peer ids; first disconnected after {}; \
             {} of {} reconnections under a banned id refused",
            a.sent,
            a.identities,
            a.first_disconnect.map_or("never".to_owned(), |d| format!(
                "{:.0} ms",
                d.as_secs_f64() * 1e3
            )),
            a.refused,
            a.redials,
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
        let calm = scenario(chain.clone(), &dir.join("calm"), seconds, None).await;
        print("without attacker", &calm);
        let flood = scenario(
            chain.clone(),
            &dir.join("flood"),
            seconds,
            Some(Mix::Invalid),
        )
        .await;
        print("with attacker", &flood);
        let copies = scenario(
            chain.clone(),
            &dir.join("copies"),
            seconds,
            Some(Mix::Copies),
        )
        .await;
        print("with a copying attacker", &copies);
        assert_eq!(
            calm.delivered, calm.sent,
            "honest messages lost without an attacker"
        );
        assert!(
            flood
                .attack
                .as_ref()
                .is_some_and(|a| a.first_disconnect.is_some()),
            "the attacker was never disconnected"
        );
    });
    let _ = std::fs::remove_dir_all(&dir);
}
