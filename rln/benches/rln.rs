//! RLN proving and verification with the network's keys: full proof, prepared-member proof,
//! single verification and batch verification.

#![allow(missing_docs)] // criterion_group! generates undocumented functions

use std::hint::black_box;

use ark_bn254::{Bn254, G1Projective};
use ark_ec::{CurveGroup, VariableBaseMSM, pairing::Pairing};
use ark_ff::UniformRand;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use wakurln_rln::{
    circuit::{graph::RlnInputs, vk::network_verifying_key},
    field::Fr,
    identity::Identity,
    prover::{MemberInputs, MessageInputs, RlnProver},
    tree::MerkleTree,
    verifier::{Verifier, decode_proof, decode_proof_on_curves},
};

/// The network's circuit keys under `../shared`; panics (never skips) when they are missing.
fn circuit_dir() -> std::path::PathBuf {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/circuits/waku-rln-v2");
    assert!(
        dir.is_dir(),
        "missing {}: benches need ../shared",
        dir.display()
    );
    dir
}

fn member(rng: &mut ChaCha20Rng) -> MemberInputs {
    let identity = Identity::random(rng);
    let mut tree = MerkleTree::new();
    tree.set(1234, identity.rate_commitment(100)).unwrap();
    let path = tree.proof(1234).unwrap();
    MemberInputs {
        identity_secret: identity.secret_hash,
        user_message_limit: Fr::from(100u64),
        path_elements: path.elements,
        identity_path_index: path.path_bits(),
    }
}

fn message(rng: &mut ChaCha20Rng) -> MessageInputs {
    MessageInputs {
        x: Fr::rand(rng),
        external_nullifier: Fr::rand(rng),
        message_id: Fr::from(3u64),
    }
}

fn inputs(member: &MemberInputs, msg: MessageInputs) -> RlnInputs {
    RlnInputs {
        identity_secret: member.identity_secret,
        user_message_limit: member.user_message_limit,
        message_id: msg.message_id,
        path_elements: member.path_elements,
        identity_path_index: member.identity_path_index,
        x: msg.x,
        external_nullifier: msg.external_nullifier,
    }
}

/// A line of `/proc/self/status` in MiB (Linux only).
fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn proving(c: &mut Criterion) {
    let before = status_mib("VmRSS:");
    let prover = RlnProver::load(&circuit_dir()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let member = member(&mut rng);
    let prepared = prover.prepare(&member).unwrap();
    let proof = prover
        .prove_prepared(&prepared, message(&mut rng), &mut rng)
        .unwrap();
    black_box(proof);
    // The prover's resident memory with every table built (the key, the message's and the
    // member's window tables, one prepared member), as this process measures it.
    if let (Some(before), Some(rss), Some(peak)) =
        (before, status_mib("VmRSS:"), status_mib("VmHWM:"))
    {
        println!(
            "prover memory: resident {rss:.0} MiB after loading, preparing and proving \
             ({:.0} MiB more than before loading), peak {peak:.0} MiB",
            rss - before
        );
    }
    let mut group = c.benchmark_group("rln prove");
    group.sample_size(20);
    group.bench_function("full proof", |b| {
        b.iter(|| {
            prover
                .prove(&inputs(&member, message(&mut rng)), &mut rng)
                .unwrap()
        })
    });
    group.bench_function("prepared member proof", |b| {
        b.iter(|| {
            prover
                .prove_prepared(&prepared, message(&mut rng), &mut rng)
                .unwrap()
        })
    });
    group.finish();
}

fn verifying(c: &mut Criterion) {
    let prover = RlnProver::load(&circuit_dir()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let member = member(&mut rng);
    let prepared = prover.prepare(&member).unwrap();
    let proofs: Vec<_> = (0..64)
        .map(|_| {
            let p = prover
                .prove_prepared(&prepared, message(&mut rng), &mut rng)
                .unwrap();
            (p.to_layout().proof, p.values.public_inputs())
        })
        .collect();
    let verifier = Verifier::network();
    let mut group = c.benchmark_group("rln verify");
    group.bench_function("single (decode + verify)", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % proofs.len();
            // B's G2 check is the verifier's, from B's lines.
            let proof = decode_proof_on_curves(&proofs[i].0).unwrap();
            assert!(verifier.verify(&proof, &proofs[i].1));
        })
    });
    // Where a single verification's time goes, with arkworks' pairing.
    let vk = network_verifying_key();
    let pvk = ark_groth16::prepare_verifying_key(vk);
    let proof = decode_proof(&proofs[0].0).unwrap();
    let mut scalars = vec![Fr::from(1u64)];
    scalars.extend(proofs[0].1);
    let acc = G1Projective::msm(&vk.gamma_abc_g1, &scalars)
        .unwrap()
        .into_affine();
    group.bench_function("part: decode 128 bytes (with subgroup checks)", |b| {
        b.iter(|| decode_proof(black_box(&proofs[0].0)).unwrap())
    });
    group.bench_function("part: decode 128 bytes on the curves (no G2 check)", |b| {
        b.iter(|| decode_proof_on_curves(black_box(&proofs[0].0)).unwrap())
    });
    group.bench_function("part: public inputs MSM (6 points)", |b| {
        b.iter(|| G1Projective::msm(&vk.gamma_abc_g1, black_box(&scalars)).unwrap())
    });
    group.bench_function("part: public inputs MSM over window tables (ours)", |b| {
        b.iter(|| verifier.inputs_point(black_box(&proofs[0].1)))
    });
    group.bench_function("part: line coefficients of B", |b| {
        b.iter(|| <Bn254 as Pairing>::G2Prepared::from(black_box(proof.b)))
    });
    let pairs = || {
        (
            [proof.a, acc, proof.c],
            [
                <Bn254 as Pairing>::G2Prepared::from(proof.b),
                pvk.gamma_g2_neg_pc.clone(),
                pvk.delta_g2_neg_pc.clone(),
            ],
        )
    };
    group.bench_function("part: multi-Miller loop of 3 prepared pairs", |b| {
        b.iter_batched(
            pairs,
            |(g1, g2)| Bn254::multi_miller_loop(g1, g2),
            BatchSize::SmallInput,
        )
    });
    let (g1, g2) = pairs();
    let miller = Bn254::multi_miller_loop(g1, g2);
    group.bench_function("part: final exponentiation", |b| {
        b.iter(|| Bn254::final_exponentiation(black_box(miller)).unwrap())
    });
    // Where a batch's time goes, per proof of a batch of 64 (one thread each).
    let decoded: Vec<_> = proofs
        .iter()
        .map(|(b, _)| decode_proof(b).unwrap())
        .collect();
    let weights: Vec<Fr> = (0..64).map(|_| Fr::from(u128::rand(&mut rng))).collect();
    let halves: Vec<(u64, u64)> = (0..64).map(|_| rand::Rng::r#gen(&mut rng)).collect();
    group.bench_function("batch part: 64 decodes on the curves", |b| {
        b.iter(|| {
            for (bytes, _) in &proofs {
                black_box(decode_proof_on_curves(bytes).unwrap());
            }
        })
    });
    group.bench_function("batch part: 64 products r·A (128-bit r, arkworks)", |b| {
        b.iter(|| {
            decoded
                .iter()
                .zip(&weights)
                .map(|(p, w)| p.a * w)
                .collect::<Vec<G1Projective>>()
        })
    });
    group.bench_function(
        "batch part: 64 products r·A (r = w1 + λ·w2, ours)",
        |b| {
            b.iter(|| {
                decoded
                    .iter()
                    .zip(&halves)
                    .map(|(p, (w1, w2))| wakurln_pairing::g1_weighted(&p.a, *w1, *w2))
                    .collect::<Vec<G1Projective>>()
            })
        },
    );
    let cs: Vec<_> = decoded.iter().map(|p| p.c).collect();
    group.bench_function("batch part: Σ r·C over 64 (arkworks MSM)", |b| {
        b.iter(|| G1Projective::msm(&cs, &weights).unwrap())
    });
    group.bench_function("batch part: lines of 64 B", |b| {
        b.iter(|| {
            decoded
                .iter()
                .map(|p| wakurln_pairing::Lines::new(&p.b))
                .collect::<Vec<_>>()
        })
    });
    let lines: Vec<_> = decoded
        .iter()
        .map(|p| wakurln_pairing::Lines::new(&p.b))
        .collect();
    let miller_pairs: Vec<_> = decoded.iter().map(|p| p.a).zip(&lines).collect();
    group.bench_function("batch part: Miller loop of 64 pairs", |b| {
        b.iter(|| wakurln_pairing::multi_miller_loop(black_box(&miller_pairs)))
    });
    for size in [16usize, 64] {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(
            BenchmarkId::new("batch (decode + verify)", size),
            &size,
            |b, &n| {
                b.iter(|| {
                    // Decoded on the rayon pool, as the relay validator does (B's G2 check
                    // is the batch's, from B's lines).
                    let batch: Vec<_> = proofs[..n]
                        .par_iter()
                        .map(|(bytes, inputs)| (decode_proof_on_curves(bytes).unwrap(), *inputs))
                        .collect();
                    assert!(verifier.verify_batch(&batch, &mut rng).iter().all(|ok| *ok));
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, proving, verifying);
criterion_main!(benches);
