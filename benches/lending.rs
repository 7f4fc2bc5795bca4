//! RLN proof lending: proofs lent per second by a service's pool on this machine, with two
//! clients pushing at once (as a service node's blocking pool runs them), each lend taking a
//! durable message id and a proof from the member's cached precomputation.

#![allow(missing_docs)] // criterion_group! generates undocumented functions

mod common;

use std::{
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use libp2p::PeerId;
use wakurln::{
    clock::now_ns,
    lightpush::lending::{Client, Counters, LendingPool, LendingRules},
    message::WakuMessage,
    relay::{
        pipeline::RlnRules,
        publisher::{Member, MemberPaths, MessageIdCounter},
    },
    rln::{identity::Identity, prover::RlnProver, tree::MerkleTree},
    topics::ContentTopic,
};

/// Long epochs, so a run never crosses into the next one.
const EPOCH: u64 = 86_400;
/// Proofs lent per measured round, split between two clients.
const ROUND: u64 = 20;

fn message(i: u64) -> WakuMessage {
    let now = now_ns();
    WakuMessage::builder(
        ContentTopic::from_str("/bench/1/lending/proto").unwrap(),
        format!("pushed {i}").into_bytes(),
    )
    .timestamp(now)
    .build()
    .unwrap()
}

fn lending(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("wakurln-bench-lending-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let prover = RlnProver::load(&common::circuit_dir()).unwrap();
    let mut tree = MerkleTree::new();
    let members: Vec<Member> = (0..2u64)
        .map(|i| {
            let identity = Identity::from_seed(format!("lending bench {i}").as_bytes());
            tree.set(i as usize * 3, identity.rate_commitment(60_000))
                .unwrap();
            Member {
                identity,
                index: i * 3,
                limit: 60_000,
            }
        })
        .collect();
    let paths: MemberPaths = members
        .iter()
        .map(|m| {
            let i = m.index as usize;
            (i, (tree.root(), tree.proof(i).unwrap(), tree.leaf(i)))
        })
        .collect();
    let counter = MessageIdCounter::open(&dir.join("ids.sqlite")).unwrap();
    let rules = LendingRules {
        per_client_quota: 1_000_000,
        reserve: 0,
    };
    let rln = RlnRules {
        epoch_period: EPOCH,
        ..RlnRules::default()
    };
    let pool = Arc::new(LendingPool::new(prover, members, counter, rln, rules));
    let paths = Arc::new(paths);
    let metrics = Arc::new(Counters::default());
    let clients = [
        Client::Peer(PeerId::random()),
        Client::Peer(PeerId::random()),
    ];
    // The first lend makes the member's precomputation (the pool takes its members in
    // order); it is not what a running service pays per message.
    pool.lend(clients[0], message(0), &paths, &metrics).unwrap();

    let mut group = c.benchmark_group("lending");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(ROUND));
    group.bench_function("lend 20 proofs, 2 clients at once", |b| {
        b.iter_custom(|rounds| {
            let started = Instant::now();
            for _ in 0..rounds {
                std::thread::scope(|s| {
                    for client in clients {
                        let (pool, paths, metrics) = (&pool, &paths, &metrics);
                        s.spawn(move || {
                            for i in 0..ROUND / 2 {
                                pool.lend(client, message(i), paths, metrics).unwrap();
                            }
                        });
                    }
                });
            }
            started.elapsed()
        });
    });
    group.bench_function("lend 20 proofs, one client after another", |b| {
        b.iter_custom(|rounds| {
            let started = Instant::now();
            for _ in 0..rounds {
                for i in 0..ROUND {
                    pool.lend(clients[0], message(i), &paths, &metrics).unwrap();
                }
            }
            started.elapsed()
        });
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, lending);
criterion_main!(benches);
