//! Our pairing beside arkworks': the multi-Miller loop of three pairs with prepared lines (a
//! Groth16 verification's), the final exponentiation, and a G2 point's lines.

#![allow(missing_docs)] // criterion_group! generates undocumented functions

use std::hint::black_box;

use ark_bn254::{Bn254, G1Projective, G2Projective};
use ark_ec::{
    CurveGroup,
    pairing::{MillerLoopOutput, Pairing},
};
use ark_ff::UniformRand;
use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use wakurln_pairing::{Lines, final_exponentiation, multi_miller_loop};

fn pairing(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let g1: Vec<_> = (0..3)
        .map(|_| G1Projective::rand(&mut rng).into_affine())
        .collect();
    let g2: Vec<_> = (0..3)
        .map(|_| G2Projective::rand(&mut rng).into_affine())
        .collect();
    let lines: Vec<Lines> = g2.iter().map(Lines::new).collect();
    let prepared: Vec<<Bn254 as Pairing>::G2Prepared> = g2.iter().map(|q| (*q).into()).collect();
    let pairs: Vec<_> = g1.iter().copied().zip(&lines).collect();
    let miller = multi_miller_loop(&pairs);

    let mut group = c.benchmark_group("pairing");
    group.bench_function("multi-Miller loop, 3 prepared pairs: wakurln", |b| {
        b.iter(|| multi_miller_loop(black_box(&pairs)))
    });
    group.bench_function("multi-Miller loop, 3 prepared pairs: arkworks", |b| {
        b.iter(|| Bn254::multi_miller_loop(black_box(g1.clone()), prepared.clone()))
    });
    group.bench_function("final exponentiation: wakurln", |b| {
        b.iter(|| final_exponentiation(black_box(&miller)).unwrap())
    });
    group.bench_function("final exponentiation: arkworks", |b| {
        b.iter(|| Bn254::final_exponentiation(MillerLoopOutput(black_box(miller))).unwrap())
    });
    group.bench_function("lines of a G2 point: wakurln", |b| {
        b.iter(|| Lines::new(black_box(&g2[0])))
    });
    group.bench_function("lines of a G2 point: arkworks", |b| {
        b.iter(|| <Bn254 as Pairing>::G2Prepared::from(black_box(g2[0])))
    });
    group.bench_function("G2 subgroup check: wakurln", |b| {
        b.iter(|| wakurln_pairing::g2_in_subgroup(black_box(&g2[0])))
    });
    group.bench_function("G2 subgroup check: arkworks", |b| {
        b.iter(|| black_box(&g2[0]).is_in_correct_subgroup_assuming_on_curve())
    });
    group.finish();
}

criterion_group!(benches, pairing);
criterion_main!(benches);
