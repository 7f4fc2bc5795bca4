//! Our pairing beside arkworks': the multi-Miller loop of three pairs with prepared lines (a
//! Groth16 verification's), the final exponentiation, a G2 point's lines, G2's subgroup check,
//! the decompression of points and the batch verifier's weighted G1 products.

#![allow(missing_docs)] // criterion_group! generates undocumented functions

use std::hint::black_box;

use ark_bn254::{Bn254, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::{
    CurveGroup,
    pairing::{MillerLoopOutput, Pairing},
};
use ark_ff::UniformRand;
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
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
    group.bench_function("lines of a G2 point: wakurln, normalized", |b| {
        b.iter(|| Lines::fixed(black_box(&g2[0])))
    });
    group.bench_function("lines of a G2 point: arkworks", |b| {
        b.iter(|| <Bn254 as Pairing>::G2Prepared::from(black_box(g2[0])))
    });
    let many: Vec<_> = (0..32)
        .map(|_| G2Projective::rand(&mut rng).into_affine())
        .collect();
    group.bench_function("lines of 32 G2 points: wakurln, projective", |b| {
        b.iter(|| many.iter().map(Lines::new).collect::<Vec<_>>())
    });
    group.bench_function("lines of 32 G2 points: wakurln, affine batch", |b| {
        b.iter(|| Lines::batch(black_box(&many)))
    });
    let many_lines = Lines::batch(&many);
    let many_g1: Vec<_> = (0..32)
        .map(|_| G1Projective::rand(&mut rng).into_affine())
        .collect();
    let many_pairs: Vec<_> = many_g1.iter().copied().zip(&many_lines).collect();
    group.bench_function("multi-Miller loop, 32 batch-line pairs: wakurln", |b| {
        b.iter(|| multi_miller_loop(black_box(&many_pairs)))
    });
    let fixed: Vec<Lines> = g2.iter().map(Lines::fixed).collect();
    let fixed_pairs: Vec<_> = g1.iter().copied().zip(&fixed).collect();
    group.bench_function(
        "multi-Miller loop, 3 fixed (normalized) pairs: wakurln",
        |b| b.iter(|| multi_miller_loop(black_box(&fixed_pairs))),
    );
    group.bench_function("G2 subgroup check: wakurln", |b| {
        b.iter(|| wakurln_pairing::g2_in_subgroup(black_box(&g2[0])))
    });
    group.bench_function("G2 subgroup check: arkworks", |b| {
        b.iter(|| black_box(&g2[0]).is_in_correct_subgroup_assuming_on_curve())
    });
    let mut g1_bytes = [0u8; 32];
    g1[0].serialize_compressed(&mut g1_bytes[..]).unwrap();
    let mut g2_bytes = [0u8; 64];
    g2[0].serialize_compressed(&mut g2_bytes[..]).unwrap();
    group.bench_function("decompress G1: wakurln", |b| {
        b.iter(|| wakurln_pairing::g1_from_compressed(black_box(&g1_bytes)).unwrap())
    });
    group.bench_function("decompress G1: arkworks", |b| {
        b.iter(|| G1Affine::deserialize_compressed_unchecked(black_box(&g1_bytes[..])).unwrap())
    });
    group.bench_function("decompress G2: wakurln", |b| {
        b.iter(|| wakurln_pairing::g2_from_compressed(black_box(&g2_bytes)).unwrap())
    });
    group.bench_function("decompress G2: arkworks", |b| {
        b.iter(|| G2Affine::deserialize_compressed_unchecked(black_box(&g2_bytes[..])).unwrap())
    });
    let weights: (u64, u64) = rand::Rng::r#gen(&mut rng);
    let weight = ark_bn254::Fr::from(weights.0)
        + wakurln_pairing::glv_lambda() * ark_bn254::Fr::from(weights.1);
    group.bench_function("G1 product by w1 + λ·w2: wakurln", |b| {
        b.iter(|| wakurln_pairing::g1_weighted(black_box(&g1[0]), weights.0, weights.1))
    });
    group.bench_function("G1 product by w1 + λ·w2: arkworks", |b| {
        b.iter(|| *black_box(&g1[0]) * weight)
    });
    group.finish();
}

criterion_group!(benches, pairing);
criterion_main!(benches);
