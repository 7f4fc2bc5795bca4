//! The table MSM of the prover against arkworks' Pippenger MSM, on BN254 at the sizes of the
//! RLN circuit: 8,192 G1 points (the H query) and 505 points in G1 and G2 (the wires a
//! message changes).

#![allow(missing_docs)] // criterion_group! generates undocumented functions

use ark_bn254::{Fr, g1, g2};
use ark_ec::{
    CurveGroup, VariableBaseMSM,
    short_weierstrass::{Affine, Projective, SWCurveConfig},
};
use ark_ff::UniformRand;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use wakurln_msm::{BatchInvert, Table};

fn compare<P: SWCurveConfig<ScalarField = Fr, BaseField: BatchInvert>>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    curve: &str,
    n: usize,
) where
    Projective<P>: VariableBaseMSM<MulBase = Affine<P>, ScalarField = Fr>,
{
    let mut rng = ChaCha20Rng::seed_from_u64(n as u64);
    let points: Vec<Projective<P>> = (0..n).map(|_| Projective::rand(&mut rng)).collect();
    let bases = Projective::normalize_batch(&points);
    let scalars: Vec<Fr> = (0..n).map(|_| Fr::rand(&mut rng)).collect();
    let table = Table::new(&bases);
    group.bench_function(BenchmarkId::new(format!("{curve} arkworks"), n), |b| {
        b.iter(|| Projective::<P>::msm(&bases, &scalars).unwrap())
    });
    group.bench_function(BenchmarkId::new(format!("{curve} table"), n), |b| {
        b.iter(|| table.msm(&scalars))
    });
}

fn msm(c: &mut Criterion) {
    let mut group = c.benchmark_group("msm");
    group.sample_size(20);
    compare::<g1::Config>(&mut group, "G1", 8192);
    compare::<g1::Config>(&mut group, "G1", 505);
    compare::<g2::Config>(&mut group, "G2", 505);
    group.finish();
}

criterion_group!(benches, msm);
criterion_main!(benches);
