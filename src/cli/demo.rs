//! `wakurln demo`: a local network in one command. An anvil chain with the membership contract,
//! three members who register with deposits, a line of relay nodes on loopback enforcing RLN,
//! honest traffic delivered everywhere, one member who double-signals and has her secret
//! recovered, and a light client without a membership that subscribes through filter and
//! light-pushes through a service node lending it an RLN proof. Installs what it lacks (anvil
//! through npm, the circuit keys through cargo).

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    time::{Duration, Instant},
};

use alloy::primitives::U256;
use clap::Args;
use tokio::sync::broadcast;
use wakurln::{
    chain::{
        ChainClient, Endpoint,
        anvil::{Anvil, project_binary},
        devnet::Devnet,
        membership,
    },
    credentials,
    lightpush::lending::LendingRules,
    message::WakuMessage,
    node::{
        self, ChainConfig, LendingConfig, MembershipConfig, NodeConfig, NodeEvent, NodeHandle,
        RlnConfig,
    },
    relay::{Delivered, pipeline::RlnRules, publisher::attach_proof},
    rln::{
        field::{self, Fr},
        identity::Identity,
        prover::{MemberInputs, RlnProver},
        tree::MerkleTree,
    },
    topics::{ContentTopic, PubsubTopic, StaticShard},
};
use wakurln_keystore::{Kdf, Keystore};

use super::{CliError, circuit};

const CLUSTER: u16 = 66;
const EPOCH: u64 = 600;
const PASSWORD: &str = "demo password";

/// `wakurln demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Relay nodes in the line (at least 3).
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// Circuit files [default: ~/.wakurln/circuits/waku-rln-v2, installed from crates.io
    /// through cargo when missing].
    #[arg(long, value_name = "DIR", env = "WAKURLN_CIRCUIT_DIR")]
    circuit_dir: Option<PathBuf>,
    /// Keep the demo's files (keystores, node data) instead of deleting them.
    #[arg(long)]
    keep: bool,
}

fn failed(e: impl std::fmt::Display) -> CliError {
    CliError::failed(format!("error: {e}"))
}

fn step(n: usize, text: &str) {
    println!("\n[{n}/7] {text}");
}

/// anvil: WAKURLN_ANVIL, the project's npm install, `anvil` on PATH, or installed now.
fn find_anvil() -> Result<PathBuf, CliError> {
    if let Some(path) = std::env::var_os("WAKURLN_ANVIL") {
        return Ok(PathBuf::from(path));
    }
    let project = project_binary();
    if project.is_file() {
        return Ok(project);
    }
    if let Some(on_path) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("anvil"))
            .find(|p| p.is_file())
    }) {
        return Ok(on_path);
    }
    let contracts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contracts");
    if !contracts.join("package.json").is_file() {
        return Err(CliError::failed(
            "error: anvil is needed: install it (npm i @foundry-rs/anvil-linux-amd64) and set \
             WAKURLN_ANVIL to its path",
        ));
    }
    println!("      anvil is missing: installing it with npm (npm ci --prefix contracts)...");
    let status = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(&contracts)
        .status()
        .map_err(|e| failed(format!("cannot run npm ({e}); install Node.js and npm")))?;
    if !status.success() || !project.is_file() {
        return Err(failed("npm could not install anvil"));
    }
    Ok(project)
}

/// The circuit keys, installed from crates.io when missing.
fn circuit_keys(dir: Option<PathBuf>) -> Result<(PathBuf, RlnProver), CliError> {
    let dir = dir.unwrap_or_else(circuit::default_circuit_dir);
    if let Ok(prover) = RlnProver::load(&dir) {
        return Ok((dir, prover));
    }
    println!(
        "      circuit keys are missing in {}: installing them",
        dir.display()
    );
    let from = circuit::fetch_from_crates_io()?;
    circuit::install(&from, &dir)?;
    let prover = RlnProver::load(&dir).map_err(failed)?;
    Ok((dir, prover))
}

struct Member {
    name: &'static str,
    identity: Identity,
    index: u32,
    limit: u32,
    keystore: PathBuf,
}

async fn register(
    devnet: &Devnet,
    name: &'static str,
    account: usize,
    limit: u32,
    dir: &Path,
) -> Result<Member, CliError> {
    let client = devnet.client(account).await.map_err(failed)?;
    let identity = Identity::generate();
    let plan = membership::plan_register(&client, identity.commitment, limit)
        .await
        .map_err(failed)?;
    let r = membership::register(&client, &plan).await.map_err(failed)?;
    let credential = credentials::registered(&identity, &client, r.index, limit);
    let keystore = dir.join(format!("{name}.keystore.json"));
    Keystore::add(
        &keystore,
        &credential,
        PASSWORD.as_bytes(),
        Kdf::default(),
        &mut rand::rngs::OsRng,
    )
    .map_err(failed)?;
    println!(
        "      {name}: registered at index {} with {limit} message(s) per epoch, deposit {} \
         (tx {})",
        r.index, plan.deposit, r.transaction
    );
    Ok(Member {
        name,
        identity,
        index: r.index,
        limit,
        keystore,
    })
}

fn topic() -> PubsubTopic {
    StaticShard::new(CLUSTER, 0).pubsub_topic()
}

fn message(text: &str) -> WakuMessage {
    let now = wakurln::clock::now_ns();
    WakuMessage::builder(
        ContentTopic::from_str("/demo/1/chat/proto").expect("a valid content topic"),
        text.as_bytes().to_vec(),
    )
    .timestamp(now)
    .build()
    .expect("a valid message")
}

/// What one node saw.
#[derive(Default)]
struct Seen {
    delivered: Vec<String>,
    spam: Vec<(Fr, Fr)>,
    rejected: usize,
}

fn drain(
    delivered: &mut broadcast::Receiver<Delivered>,
    events: &mut broadcast::Receiver<NodeEvent>,
    seen: &mut Seen,
) {
    while let Ok(d) = delivered.try_recv() {
        seen.delivered
            .push(String::from_utf8_lossy(d.message.payload()).into_owned());
    }
    while let Ok(e) = events.try_recv() {
        match e {
            NodeEvent::Spam {
                commitment, secret, ..
            } => seen.spam.push((commitment, secret)),
            NodeEvent::Validated { verdict, .. }
                if verdict != "valid" && verdict != "duplicate" =>
            {
                seen.rejected += 1;
            }
            _ => {}
        }
    }
}

/// Proves `message` for `member` with message id 0, as a client that lost its counter would.
fn forgetful_proof(
    prover: &RlnProver,
    tree: &MerkleTree,
    member: &Member,
    message: WakuMessage,
) -> Result<WakuMessage, CliError> {
    let path = tree.proof(member.index as usize).map_err(failed)?;
    let inputs = MemberInputs {
        identity_secret: member.identity.secret_hash,
        user_message_limit: Fr::from(u64::from(member.limit)),
        path_elements: path.elements,
        identity_path_index: path.path_bits(),
    };
    let prepared = prover.prepare(&inputs).map_err(failed)?;
    attach_proof(prover, &prepared, message, EPOCH, 0).map_err(failed)
}

async fn wait_mesh(nodes: &[NodeHandle]) -> Result<(), CliError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut ok = true;
        for (i, n) in nodes.iter().enumerate() {
            let want = if i == 0 || i == nodes.len() - 1 { 1 } else { 2 };
            ok &= n.mesh_peers(topic()).await.map_err(failed)? >= want;
        }
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(failed("the relay mesh did not form within 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A light client (a node that relays nothing) subscribes through filter at the last node,
/// then light-pushes `text` without a proof through node0, which lends one. Returns whether
/// the message came back through filter.
async fn light_client(nodes: &[NodeHandle], text: &str) -> Result<bool, CliError> {
    let dir = std::env::temp_dir().join(format!("wakurln-demo-light-{}", std::process::id()));
    let mut config = NodeConfig::local(dir, CLUSTER);
    config.shards = Vec::new();
    config.lightpush = false;
    let light = node::start(config).await.map_err(failed)?;
    let (first, last) = (&nodes[0], &nodes[nodes.len() - 1]);
    for service in [first, last] {
        let addr = service.listen_addrs().await.map_err(failed)?[0]
            .clone()
            .with(libp2p::multiaddr::Protocol::P2p(service.peer_id()));
        light.dial(addr).await.map_err(failed)?;
    }
    let content = message(text).content_topic().clone();
    let mut pushed = light.filter_messages();
    let r = light
        .filter_request(
            last.peer_id(),
            wakurln::filter::protocol::Kind::Subscribe,
            Some(&topic()),
            std::slice::from_ref(&content),
        )
        .await
        .map_err(failed)?;
    println!(
        "      subscribed to {content} at node{}: {} {}",
        nodes.len() - 1,
        r.status_code,
        r.status_desc.unwrap_or_default()
    );
    let started = Instant::now();
    let r = light
        .lightpush(first.peer_id(), Some(topic()), &message(text))
        .await
        .map_err(failed)?;
    println!(
        "      pushed {text:?} without a proof through node0: {} {} ({} relay peers, {} ms)",
        r.status_code,
        r.status_desc.unwrap_or_default(),
        r.relay_peer_count.unwrap_or(0),
        started.elapsed().as_millis()
    );
    let back = tokio::time::timeout(Duration::from_secs(10), pushed.recv()).await;
    let got_back = match back {
        Ok(Ok(p)) if p.message.payload().as_ref() == text.as_bytes() => {
            println!(
                "      it came back through filter from node{}, carrying the proof node0 lent",
                nodes.len() - 1
            );
            p.message.rate_limit_proof().is_some()
        }
        _ => {
            println!("      NOTHING came back through filter (unexpected)");
            false
        }
    };
    light.shutdown().await;
    Ok(got_back)
}

impl DemoArgs {
    /// Runs the demo.
    pub fn run(self) -> Result<(), CliError> {
        if self.nodes < 3 {
            return Err(CliError::bad_input("--nodes must be at least 3"));
        }
        let dir = std::env::temp_dir().join(format!("wakurln-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(failed)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(failed)?;
        let result = rt.block_on(self.demo(&dir));
        if self.keep {
            println!("\nthe demo's files are in {}", dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    async fn demo(&self, dir: &Path) -> Result<(), CliError> {
        println!("wakurln demo: a local Waku network enforcing RLN v2");
        step(1, "local chain and circuit keys");
        let bin = find_anvil()?;
        let anvil = Anvil::start(&bin, &[]).map_err(failed)?;
        println!("      anvil on {}", anvil.url);
        let circuit_dir = self.circuit_dir.clone();
        let (circuit_dir, prover) = tokio::task::spawn_blocking(move || circuit_keys(circuit_dir))
            .await
            .map_err(failed)??;
        println!("      circuit keys in {}", circuit_dir.display());

        step(2, "membership contract");
        let devnet = Devnet::deploy(
            anvil,
            U256::from(10u64).pow(U256::from(15u64)),
            U256::from(10u64).pow(U256::from(21u64)),
        )
        .await
        .map_err(failed)?;
        let d = devnet.deployment.clone();
        println!(
            "      contract {} (deposit token {}), members funded with test tokens",
            d.contract, d.token
        );

        step(
            3,
            "members register (approve the deposit, register, keystore)",
        );
        let alice = register(&devnet, "alice", 1, 10, dir).await?;
        let bob = register(&devnet, "bob", 2, 10, dir).await?;
        let mallory = register(&devnet, "mallory", 3, 1, dir).await?;
        // The lending pool of node0, registered by alice's account for light clients.
        let pool = register(&devnet, "pool", 1, 5, dir).await?;

        step(
            4,
            "relay nodes in a line on loopback, each syncing the tree from the chain",
        );
        let n = self.nodes;
        let mut nodes: Vec<NodeHandle> = Vec::new();
        for i in 0..n {
            let mut config = NodeConfig::local(dir.join(format!("node{i}")), CLUSTER);
            if let Some(prev) = nodes.last() {
                let addr = prev.listen_addrs().await.map_err(failed)?[0]
                    .clone()
                    .with(libp2p::multiaddr::Protocol::P2p(prev.peer_id()));
                config.static_peers = vec![addr];
            }
            let member = match i {
                0 => Some(&alice),
                x if x == n - 1 => Some(&bob),
                _ => None,
            };
            config.rln = Some(RlnConfig {
                rules: RlnRules {
                    epoch_period: EPOCH,
                    max_clock_drift: Duration::from_secs(20),
                },
                root_window: 50,
                chain: ChainConfig {
                    rpc: vec![Endpoint(devnet.anvil.url.clone())],
                    contract: d.contract,
                    chain_id: None,
                    poll_interval: Duration::from_millis(500),
                    follow_distance: 0,
                },
                lending: (i == 0).then(|| LendingConfig {
                    keystore: pool.keystore.clone(),
                    keys: Vec::new(),
                    password: PASSWORD.to_owned().into(),
                    circuit_dir: circuit_dir.clone(),
                    rules: LendingRules {
                        per_client_quota: 2,
                        reserve: 0,
                    },
                }),
                membership: member.map(|m| MembershipConfig {
                    keystore: m.keystore.clone(),
                    key: None,
                    password: PASSWORD.to_owned().into(),
                    circuit_dir: circuit_dir.clone(),
                }),
            });
            if i == n - 1 {
                config.filter = Some(wakurln::filter::Limits::default());
            }
            let node = node::start(config).await.map_err(failed)?;
            node.wait_ready().await.map_err(failed)?;
            let mut role =
                member.map_or("relays".to_owned(), |m| format!("publishes as {}", m.name));
            if i == 0 {
                role.push_str(", lends proofs from the pool");
            }
            if i == n - 1 {
                role.push_str(", serves filter");
            }
            println!("      node{i} {} ({role})", node.peer_id());
            nodes.push(node);
        }
        wait_mesh(&nodes).await?;
        let mut delivered: Vec<_> = nodes.iter().map(NodeHandle::delivered).collect();
        let mut events: Vec<_> = nodes.iter().map(NodeHandle::events).collect();
        let mut seen: Vec<Seen> = (0..n).map(|_| Seen::default()).collect();

        step(
            5,
            "honest traffic: every message carries an RLN proof and is validated at each hop",
        );
        let mut honest = Vec::new();
        for (who, node, text) in [
            ("alice", 0, "hello from alice"),
            ("bob", n - 1, "hi alice, bob here"),
            ("alice", 0, "RLN keeps this network spam-free"),
        ] {
            let started = Instant::now();
            nodes[node]
                .publish(topic(), message(text))
                .await
                .map_err(failed)?;
            println!(
                "      {who} published {text:?} (proof made in {} ms)",
                started.elapsed().as_millis()
            );
            honest.push(text);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        for (i, s) in seen.iter_mut().enumerate() {
            drain(&mut delivered[i], &mut events[i], s);
        }

        step(
            6,
            "mallory (1 message per epoch) sends two messages with the same message id",
        );
        let tree = {
            let client = ChainClient::connect(
                &[Endpoint(devnet.anvil.url.clone())],
                d.contract,
                None,
                None,
            )
            .await
            .map_err(failed)?;
            let mut syncer = wakurln::chain::sync::Syncer::open(
                client,
                &dir.join("mallory-tree.sqlite"),
                wakurln::chain::sync::SyncConfig {
                    follow_distance: 0,
                    ..Default::default()
                },
            )
            .await
            .map_err(failed)?;
            syncer.step().await.map_err(failed)?;
            syncer.tree().clone()
        };
        let middle = n / 2;
        for text in ["mallory's first message", "mallory's second message"] {
            let m = forgetful_proof(&prover, &tree, &mallory, message(text))?;
            match nodes[middle].publish(topic(), m).await {
                Ok(_) => println!("      mallory sent {text:?} through node{middle}: relayed"),
                Err(e) => {
                    println!("      mallory sent {text:?} through node{middle}: refused ({e})")
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        for (i, s) in seen.iter_mut().enumerate() {
            drain(&mut delivered[i], &mut events[i], s);
        }

        step(
            7,
            "a light client without a membership: filter at the last node, lightpush through node0",
        );
        let lent = "pushed by a light client with a lent proof";
        let got_back = light_client(&nodes, lent).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        for (i, s) in seen.iter_mut().enumerate() {
            drain(&mut delivered[i], &mut events[i], s);
        }

        println!("\nwhat each node did:");
        let mut caught = false;
        for (i, s) in seen.iter().enumerate() {
            let got_honest = honest
                .iter()
                .filter(|h| s.delivered.iter().any(|d| d == *h))
                .count();
            let spam_delivered = s.delivered.iter().filter(|d| d.contains("second")).count();
            print!(
                "  node{i}: delivered {got_honest}/{} honest messages",
                honest.len()
            );
            if s.delivered.iter().any(|d| d.contains("first")) {
                print!(", mallory's first");
            }
            if spam_delivered > 0 {
                print!(", MALLORY'S SPAM (unexpected)");
            }
            if s.delivered.iter().any(|d| d == lent) {
                print!(", the light client's message");
            }
            for (commitment, secret) in &s.spam {
                let matches = *commitment == mallory.identity.commitment
                    && *secret == mallory.identity.secret_hash;
                caught |= matches;
                print!(
                    "; rejected spam from member {}…, recovered her secret {}… ({})",
                    &field::to_decimal(commitment)[..12],
                    &field::to_decimal(secret)[..12],
                    if matches {
                        "it is mallory's"
                    } else {
                        "UNEXPECTED"
                    }
                );
            }
            println!();
        }
        for n in &nodes {
            n.shutdown().await;
        }
        drop(devnet);
        let all_honest = seen
            .iter()
            .all(|s| honest.iter().all(|h| s.delivered.iter().any(|d| d == h)));
        let all_lent = seen.iter().all(|s| s.delivered.iter().any(|d| d == lent));
        if !all_honest || !caught || !all_lent || !got_back {
            return Err(failed(
                "the demo did not go as expected (see above): honest delivery, spam detection \
                 or the light client's lent proof failed",
            ));
        }
        println!(
            "\ndone: honest messages reached every node; the double signal was rejected and mallory's secret recovered; \
             the light client's message went out with a lent proof and came back through filter"
        );
        Ok(())
    }
}
