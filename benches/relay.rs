//! The relay path: validated messages per second through the node's validator (batches, two
//! workers as a node on two cores runs them), and per-hop latency of a proved message across a
//! line of five RLN nodes on loopback, synced from a local anvil. However many iterations
//! criterion asks for, the latency bench registers a new membership (outside the timed part)
//! whenever the current one's 600 message ids of the epoch are spent.

#![allow(missing_docs)] // criterion_group! generates undocumented functions

mod common;

use std::{
    str::FromStr,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use alloy::providers::Provider;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use wakurln::{
    chain::devnet::Devnet,
    clock::now_ns,
    message::WakuMessage,
    node::{self, NodeConfig, NodeHandle},
    relay::{
        pipeline::{RlnRules, Validator, Verdict},
        publisher::attach_proof,
    },
    rln::{
        field::Fr,
        identity::Identity,
        prover::{MemberInputs, PreparedRln, RlnProver},
        tree::{MerkleTree, RootWindow},
    },
    topics::{ContentTopic, StaticShard},
};

const EPOCH: u64 = 86_400;

fn message(i: u64) -> WakuMessage {
    WakuMessage::builder(
        ContentTopic::from_str("/bench/1/relay/proto").unwrap(),
        format!("message {i}").into_bytes(),
    )
    .timestamp(now_ns())
    .build()
    .unwrap()
}

fn prepare(
    prover: &RlnProver,
    tree: &MerkleTree,
    identity: &Identity,
    index: usize,
    limit: u64,
) -> PreparedRln {
    let path = tree.proof(index).unwrap();
    prover
        .prepare(&MemberInputs {
            identity_secret: identity.secret_hash,
            user_message_limit: Fr::from(limit),
            path_elements: path.elements,
            identity_path_index: path.path_bits(),
        })
        .unwrap()
}

fn prove(prover: &RlnProver, prepared: &PreparedRln, id: u64, message: WakuMessage) -> WakuMessage {
    attach_proof(prover, prepared, message, EPOCH, id).unwrap()
}

fn validator_throughput(c: &mut Criterion) {
    let prover = RlnProver::load(&common::circuit_dir()).unwrap();
    let identity = Identity::from_seed(b"bench member");
    let mut tree = MerkleTree::new();
    tree.set(7, identity.rate_commitment(1000)).unwrap();
    let prepared = prepare(&prover, &tree, &identity, 7, 1000);
    let messages: Vec<Vec<u8>> = (0..128)
        .map(|i| prove(&prover, &prepared, i, message(i)).encode())
        .collect();
    let mut window = RootWindow::new(50);
    window.push(tree.root());
    let window = Arc::new(RwLock::new(window));
    // A fresh validator per iteration: one that has seen the messages ignores them as copies
    // before verifying anything, which is not what is measured here.
    let validator = || {
        Validator::rln(
            RlnRules {
                epoch_period: EPOCH,
                max_clock_drift: Duration::from_secs(3600),
            },
            window.clone(),
        )
    };
    let mut group = c.benchmark_group("validator");
    group.sample_size(10);
    for (workers, per_batch) in [(1usize, 64usize), (2, 64)] {
        group.throughput(Throughput::Elements((workers * per_batch) as u64));
        group.bench_function(format!("{workers} worker(s) x batch of {per_batch}"), |b| {
            b.iter_batched(
                validator,
                |v| {
                    std::thread::scope(|s| {
                        for w in 0..workers {
                            let refs: Vec<&[u8]> = messages[w * per_batch..(w + 1) * per_batch]
                                .iter()
                                .map(Vec::as_slice)
                                .collect();
                            let v = &v;
                            s.spawn(move || {
                                let verdicts = v.validate_batch(&refs);
                                assert!(
                                    verdicts.iter().all(|(v, _)| *v == Verdict::Accept),
                                    "every message is valid: {verdicts:?}"
                                );
                            });
                        }
                    });
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

/// Message ids per membership and epoch.
const LIMIT: u32 = 600;

struct Line {
    devnet: Devnet,
    client: wakurln::chain::ChainClient,
    dir: std::path::PathBuf,
    nodes: Vec<NodeHandle>,
    prover: RlnProver,
    prepared: PreparedRln,
    /// Message ids the current membership used.
    used: u64,
}

impl Line {
    /// Registers a new membership, waits until every node has synced it (so no message is
    /// held for an unknown root) and prepares it.
    async fn new_member(&mut self) {
        let identity = Identity::generate();
        let r = Devnet::register(&self.client, &identity, LIMIT)
            .await
            .unwrap();
        let tree = self
            .devnet
            .tree(&self.dir.join(format!("tree-{}.sqlite", r.index)))
            .await
            .unwrap();
        let head = self.client.provider().get_block_number().await.unwrap();
        for n in &self.nodes {
            n.wait_synced_to(head).await.unwrap();
        }
        self.prepared = prepare(
            &self.prover,
            &tree,
            &identity,
            r.index as usize,
            u64::from(LIMIT),
        );
        self.used = 0;
    }
}

async fn line() -> Line {
    let common::LocalChain { devnet, client } = common::local_chain().await;
    let identity = Identity::generate();
    let r = Devnet::register(&client, &identity, LIMIT).await.unwrap();
    let dir = std::env::temp_dir().join(format!("wakurln-relay-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let tree = devnet.tree(&dir.join("tree.sqlite")).await.unwrap();
    let prover = RlnProver::load(&common::circuit_dir()).unwrap();
    let prepared = prepare(
        &prover,
        &tree,
        &identity,
        r.index as usize,
        u64::from(LIMIT),
    );
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for i in 0..5 {
        let mut config = NodeConfig::local(dir.join(format!("node{i}")), 42);
        if let Some(prev) = nodes.last() {
            config.static_peers = vec![
                prev.listen_addrs().await.unwrap()[0]
                    .clone()
                    .with(libp2p::multiaddr::Protocol::P2p(prev.peer_id())),
            ];
        }
        config.rln = Some(common::rln_config(&devnet, EPOCH, Duration::from_secs(1)));
        let node = node::start(config).await.unwrap();
        node.wait_ready().await.unwrap();
        nodes.push(node);
    }
    let topic = StaticShard::new(42, 0).pubsub_topic();
    loop {
        let mut ok = true;
        for (i, n) in nodes.iter().enumerate() {
            let want = if i == 0 || i == 4 { 1 } else { 2 };
            ok &= n.mesh_peers(topic.clone()).await.unwrap() >= want;
        }
        if ok {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Line {
        devnet,
        client,
        dir,
        nodes,
        prover,
        prepared,
        used: 0,
    }
}

fn line_latency(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut line = rt.block_on(line());
    let topic = StaticShard::new(42, 0).pubsub_topic();
    let mut group = c.benchmark_group("relay line of 5 nodes");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.bench_function("per-hop latency of a proved message", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if line.used == u64::from(LIMIT) {
                    rt.block_on(line.new_member());
                }
                let id = line.used;
                let m = prove(&line.prover, &line.prepared, id, message(id));
                line.used += 1;
                total += rt.block_on(async {
                    let mut far = line.nodes[4].delivered();
                    let started = Instant::now();
                    line.nodes[0].publish(topic.clone(), m).await.unwrap();
                    far.recv().await.unwrap();
                    started.elapsed()
                }) / 4;
            }
            total
        });
    });
    group.finish();
    for n in &line.nodes {
        rt.block_on(n.shutdown());
    }
    let _ = std::fs::remove_dir_all(&line.dir);
}

criterion_group!(benches, validator_throughput, line_latency);
criterion_main!(benches);
