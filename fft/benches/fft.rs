//! The prover's move of a vector from the roots of unity to circom's coset (n = 8,192, the
//! RLN circuit's domain): wakurln's coset transform against arkworks' inverse FFT followed by
//! its coset FFT. "three at once" runs three vectors in parallel, as a proof does.

#![allow(missing_docs)] // criterion_group! generates undocumented functions

use ark_bn254::Fr;
use ark_ff::{FftField, UniformRand};
use ark_poly::{EvaluationDomain, Radix2EvaluationDomain};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use wakurln_fft::CosetFft;

const N: usize = 8192;

fn three<F: Fn(&mut Vec<Fr>) + Sync>(vectors: &mut [Vec<Fr>; 3], f: F) {
    let [a, b, c] = vectors;
    rayon::join(|| f(a), || rayon::join(|| f(b), || f(c)));
}

fn fft(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let values: Vec<Fr> = (0..N).map(|_| Fr::rand(&mut rng)).collect();
    let shift = Fr::get_root_of_unity(2 * N as u64).unwrap();
    let domain = Radix2EvaluationDomain::<Fr>::new(N).unwrap();
    let coset = domain.get_coset(shift).unwrap();
    let ours = CosetFft::new(N, shift).unwrap();
    let arkworks = |v: &mut Vec<Fr>| {
        domain.ifft_in_place(v);
        coset.fft_in_place(v);
    };
    let wakurln = |v: &mut Vec<Fr>| ours.domain_to_coset(v);

    let mut group = c.benchmark_group("coset fft 8192");
    group.sample_size(30);
    group.bench_function("arkworks", |b| {
        b.iter_batched_ref(
            || values.clone(),
            arkworks,
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("wakurln", |b| {
        b.iter_batched_ref(|| values.clone(), wakurln, criterion::BatchSize::LargeInput)
    });
    let vectors = || [values.clone(), values.clone(), values.clone()];
    group.bench_function("arkworks, three at once", |b| {
        b.iter_batched_ref(
            vectors,
            |v| three(v, arkworks),
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("wakurln, three at once", |b| {
        b.iter_batched_ref(
            vectors,
            |v| three(v, wakurln),
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, fft);
criterion_main!(benches);
