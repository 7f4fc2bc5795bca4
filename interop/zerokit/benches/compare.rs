//! zerokit (crate `rln` 3.0.0) and wakurln side by side on one machine, with the same keys,
//! member and message: a full proof, a proof finished from per-member precomputation, the
//! precomputation itself, bringing the precomputation to a new root after a registration
//! (zerokit redoes it; we update the levels that changed), and one verification from the 128
//! compressed proof bytes.
//!
//! The member is leaf 1,234. The registrations: leaf 4,096 (a tree of 4,096 members: the
//! paths meet at level 13, so the 8 levels above change) and the member's neighbour's leaf
//! 1,235 (every level changes, the worst case).
//!
//! Criterion measures each pair first. Then, under `cargo bench` only, an interleaved timing
//! loop (zerokit and ours alternately, so drift hits both) takes the median of each and prints
//! a table with the ratio zerokit / ours: above 1 means we are faster.

#![allow(missing_docs)] // criterion's macros and our bench functions need no docs

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use ark_ff::UniformRand;
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use criterion::{Criterion, SamplingMode};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rln::prelude::{PartialProof, Proof, RLNPartialWitnessInput, RLNProofValues, RLNWitnessInput};
use wakurln::rln::{
    circuit::graph::RlnInputs,
    field::Fr,
    prover::{MemberInputs, MessageInputs, PreparedRln},
    verifier::{Verifier, decode_proof_on_curves},
    waku::ProofValues,
};
use wakurln_zerokit_interop::{
    Member, our_prover, random_message, rln_inputs, to_zerokit_values, zerokit,
};

/// Everything both sides need, built once outside the timed code.
struct Fixture {
    member_inputs: MemberInputs,
    partial_witness: RLNPartialWitnessInput,
    message: MessageInputs,
    inputs: RlnInputs,
    witness: RLNWitnessInput,
    prepared: PreparedRln,
    partial: PartialProof,
    /// After a registration far away (leaf 4,096) and beside the member (leaf 1,235): our
    /// inputs and zerokit's partial witness.
    registrations: Vec<(MemberInputs, RLNPartialWitnessInput)>,
    proof_bytes: Vec<u8>,
    values: ProofValues,
    zerokit_values: RLNProofValues,
}

impl Fixture {
    fn new() -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let member = Member::random(&mut rng, 100, 1234);
        let message = random_message(&mut rng, 3);
        let ours = member.our_inputs();
        let inputs = rln_inputs(&ours, message);
        let proof = our_prover().prove(&inputs, &mut rng).unwrap();
        let mut proof_bytes = Vec::new();
        proof.proof.serialize_compressed(&mut proof_bytes).unwrap();
        let far = member.after_registration(4096, Fr::rand(&mut rng));
        let mut beside = member.clone();
        beside.leaves[1235] = Fr::rand(&mut rng);
        let registrations = [far, beside]
            .iter()
            .map(|m| (m.our_inputs(), m.zerokit_partial_witness()))
            .collect();
        Self {
            registrations,
            witness: member.zerokit_witness(message),
            partial_witness: member.zerokit_partial_witness(),
            prepared: our_prover().prepare(&ours).unwrap(),
            partial: zerokit()
                .generate_partial_proof(&member.zerokit_partial_witness())
                .unwrap(),
            zerokit_values: to_zerokit_values(&proof.values),
            values: proof.values,
            member_inputs: ours,
            message,
            inputs,
            proof_bytes,
        }
    }
}

/// One operation measured on both sides.
struct Pair<'a> {
    name: &'static str,
    zerokit: Box<dyn FnMut() + 'a>,
    ours: Box<dyn FnMut() + 'a>,
    /// Rounds of the interleaved loop behind the printed medians.
    rounds: usize,
}

fn pairs(fx: &Fixture) -> Vec<Pair<'_>> {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut rng2 = ChaCha20Rng::seed_from_u64(3);
    vec![
        Pair {
            name: "full proof",
            zerokit: Box::new(|| {
                black_box(zerokit().generate_proof(&fx.witness).unwrap());
            }),
            ours: Box::new(move || {
                black_box(our_prover().prove(&fx.inputs, &mut rng).unwrap());
            }),
            rounds: 15,
        },
        Pair {
            name: "proof from member precomputation",
            zerokit: Box::new(|| {
                black_box(zerokit().finish_proof(&fx.partial, &fx.witness).unwrap());
            }),
            ours: Box::new(move || {
                black_box(
                    our_prover()
                        .prove_prepared(&fx.prepared, fx.message, &mut rng2)
                        .unwrap(),
                );
            }),
            rounds: 15,
        },
        Pair {
            name: "member precomputation",
            zerokit: Box::new(|| {
                black_box(
                    zerokit()
                        .generate_partial_proof(&fx.partial_witness)
                        .unwrap(),
                );
            }),
            ours: Box::new(|| {
                black_box(our_prover().prepare(&fx.member_inputs).unwrap());
            }),
            rounds: 11,
        },
        Pair {
            name: "refresh after registration 4096",
            zerokit: Box::new(|| {
                black_box(
                    zerokit()
                        .generate_partial_proof(&fx.registrations[0].1)
                        .unwrap(),
                );
            }),
            ours: Box::new(|| {
                black_box(
                    our_prover()
                        .refresh(&fx.prepared, &fx.registrations[0].0)
                        .unwrap(),
                );
            }),
            rounds: 11,
        },
        Pair {
            name: "refresh after neighbour's leaf",
            zerokit: Box::new(|| {
                black_box(
                    zerokit()
                        .generate_partial_proof(&fx.registrations[1].1)
                        .unwrap(),
                );
            }),
            ours: Box::new(|| {
                black_box(
                    our_prover()
                        .refresh(&fx.prepared, &fx.registrations[1].0)
                        .unwrap(),
                );
            }),
            rounds: 11,
        },
        Pair {
            name: "verify 128 bytes",
            zerokit: Box::new(|| {
                let proof = Proof::deserialize_compressed(&fx.proof_bytes[..]).unwrap();
                assert!(zerokit().verify(&proof, &fx.zerokit_values).unwrap());
            }),
            ours: Box::new(|| {
                // B's G2 check is the verifier's, read off B's lines.
                let proof = decode_proof_on_curves(&fx.proof_bytes).unwrap();
                assert!(Verifier::network().verify(&proof, &fx.values.public_inputs()));
            }),
            rounds: 101,
        },
    ]
}

fn criterion_runs(c: &mut Criterion, pairs: &mut [Pair<'_>]) {
    for pair in pairs {
        let mut group = c.benchmark_group(pair.name);
        group.sample_size(10).sampling_mode(SamplingMode::Flat);
        group.bench_function("zerokit", |b| b.iter(&mut pair.zerokit));
        group.bench_function("wakurln", |b| b.iter(&mut pair.ours));
        group.finish();
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time(f: &mut dyn FnMut()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// Medians of an interleaved loop; the order alternates each round.
fn medians(pair: &mut Pair<'_>) -> (Duration, Duration) {
    let (mut theirs, mut ours) = (Vec::new(), Vec::new());
    for round in 0..pair.rounds {
        if round % 2 == 0 {
            theirs.push(time(&mut pair.zerokit));
            ours.push(time(&mut pair.ours));
        } else {
            ours.push(time(&mut pair.ours));
            theirs.push(time(&mut pair.zerokit));
        }
    }
    (median(theirs), median(ours))
}

fn print_table(pairs: &mut [Pair<'_>]) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\nMedians of an interleaved loop ({threads} threads), zerokit rln 3.0.0 vs wakurln:\n"
    );
    println!(
        "| {:<34} | {:>7} | {:>11} | {:>11} | {:>15} |",
        "operation", "rounds", "zerokit", "wakurln", "zerokit / ours"
    );
    println!(
        "|{:-<36}|{:->9}|{:->13}|{:->13}|{:->17}|",
        "", "", "", "", ""
    );
    for pair in pairs {
        let (theirs, ours) = medians(pair);
        println!(
            "| {:<34} | {:>7} | {:>8.3} ms | {:>8.3} ms | {:>14.2}x |",
            pair.name,
            pair.rounds,
            theirs.as_secs_f64() * 1e3,
            ours.as_secs_f64() * 1e3,
            theirs.as_secs_f64() / ours.as_secs_f64()
        );
    }
}

/// True under `cargo bench`; false under `cargo test --benches`, `--list` and `--profile-time`,
/// where criterion does not benchmark either.
fn benchmarking() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench")
        && !args
            .iter()
            .any(|a| a == "--test" || a == "--list" || a.starts_with("--profile-time"))
}

fn main() {
    let fx = Fixture::new();
    let mut pairs = pairs(&fx);
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    criterion_runs(&mut c, &mut pairs);
    c.final_summary();
    if benchmarking() {
        print_table(&mut pairs);
    }
}
