//! Poseidon and the membership tree: a single hash, one leaf update, and a batch build of
//! 1,000,000 leaves (the size The Waku Network's tree is heading for).

#![allow(missing_docs)] // criterion_group! generates undocumented functions

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use wakurln_rln::{
    field::Fr,
    poseidon::{poseidon, poseidon2},
    tree::MerkleTree,
};

fn hashes(c: &mut Criterion) {
    let (a, b) = (Fr::from(1u64), Fr::from(2u64));
    c.bench_function("poseidon/2 inputs", |bench| bench.iter(|| poseidon2(a, b)));
    c.bench_function("poseidon/3 inputs", |bench| {
        bench.iter(|| poseidon(&[a, b, a]))
    });
}

fn tree(c: &mut Criterion) {
    let leaves: Vec<Fr> = (1..=1_000_000u64).map(Fr::from).collect();
    let mut group = c.benchmark_group("tree");
    group.sample_size(10);
    group.bench_function("batch build 1,000,000 leaves", |bench| {
        bench.iter_batched(
            MerkleTree::new,
            |mut tree| {
                tree.set_range(0, &leaves).unwrap();
                tree
            },
            BatchSize::PerIteration,
        )
    });
    let mut full = MerkleTree::new();
    full.set_range(0, &leaves).unwrap();
    group.bench_function("set one leaf in a 1M tree", |bench| {
        let mut i = 0;
        bench.iter(|| {
            i = (i + 7919) % 1_000_000;
            full.set(i, Fr::from(i as u64)).unwrap();
        })
    });
    group.bench_function("proof in a 1M tree", |bench| {
        bench.iter(|| full.proof(123_456).unwrap())
    });
    group.finish();
}

criterion_group!(benches, hashes, tree);
criterion_main!(benches);
