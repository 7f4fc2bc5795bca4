//! Groth16 verification of RLN proofs against the network's verifying key, one at a time or in
//! batches.
//!
//! A batch is checked with a random linear combination: for random 128-bit `r_i`,
//! `Π e(r_i·A_i, B_i) = e(Σr_i·α, β) · e(Σr_i·acc_i, γ) · e(Σr_i·C_i, δ)`, evaluated as one
//! multi-Miller loop and one final exponentiation. `Σr_i·acc_i` folds into a single six-point
//! MSM over the IC points, so each extra proof costs one Miller loop and one short scalar
//! multiplication. When a batch fails, halves are re-checked until every bad proof is found.
//!
//! The pairings are ours ([`wakurln_pairing`]), with the lines of the key's fixed G2 points
//! (`β`, `-γ`, `-δ`) computed and normalized once, and a batch's B lines computed side by side
//! in affine coordinates; the public inputs' MSM runs over window tables of the key's IC
//! points. A batch weighs proof i by `r_i = low_i + λ·high_i` with random 64-bit halves, so
//! `r_i·A_i` goes through G1's endomorphism.
//!
//! Malformed input is an `Err`; a well-formed proof that does not verify is `Ok(false)`.

use std::sync::OnceLock;

use ark_bn254::{Bn254, Fq12, Fr, G1Affine, G1Projective, G2Affine};
use ark_ec::{CurveGroup, VariableBaseMSM, scalar_mul::glv::GLVConfig};
use ark_ff::{AdditiveGroup, One, PrimeField, Zero};
use ark_groth16::Proof;
use rand::RngCore;
use rayon::prelude::*;
use wakurln_pairing::{
    Lines, final_exponentiation, g1_from_compressed, g1_sum, g1_weighted, g2_from_compressed,
    g2_in_subgroup, glv_lambda, multi_miller_loop,
};

use super::circuit::{NUM_PUBLIC, vk::network_verifying_key};

/// Byte length of a compressed Groth16 proof: A (32) | B (64) | C (32).
pub const PROOF_BYTES: usize = 128;

/// Public signals in the verifier's order: `[y, root, nullifier, x, externalNullifier]`.
pub type PublicInputs = [Fr; NUM_PUBLIC];

/// Below this size a batch is split across threads no further.
const MIN_PARALLEL_CHUNK: usize = 8;

/// Why proof bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Not 128 bytes.
    #[error("a compressed proof is {PROOF_BYTES} bytes, got {0}")]
    WrongLength(usize),
    /// The bytes do not encode valid curve points of the right subgroup.
    #[error("proof bytes are not valid curve points")]
    InvalidPoints,
}

/// Decodes a compressed proof (arkworks' layout: A, B, C compressed), checking that every
/// point is on the curve and in the right subgroup (an unchecked point would void the
/// soundness of the pairing check). Decompression puts the points on their curves; G1 is the
/// whole curve; B's G2 check is [`wakurln_pairing::g2_in_subgroup`], half the work of
/// arkworks' own. The square roots run on the assembly field ([`wakurln_pairing`]); the
/// result is what arkworks' checked decoding gives, and the same bytes are refused.
pub fn decode_proof(bytes: &[u8]) -> Result<Proof<Bn254>, ProofError> {
    let proof = decode_proof_on_curves(bytes)?;
    if !g2_in_subgroup(&proof.b) {
        return Err(ProofError::InvalidPoints);
    }
    Ok(proof)
}

/// [`decode_proof`] without B's G2 check: the points are on their curves, and B may still lie
/// outside G2. For proofs that go straight to [`Verifier::verify`] or
/// [`Verifier::verify_batch`], which read B's membership off B's lines at almost no cost
/// and refuse a proof whose B is outside G2; this spares a separate check of about a
/// sixth of a proof's verification.
pub fn decode_proof_on_curves(bytes: &[u8]) -> Result<Proof<Bn254>, ProofError> {
    let bytes: &[u8; PROOF_BYTES] = bytes
        .try_into()
        .map_err(|_| ProofError::WrongLength(bytes.len()))?;
    let (a, rest) = bytes.split_at(32);
    let (b, c) = rest.split_at(64);
    let g1 = |bytes: &[u8]| {
        g1_from_compressed(bytes.try_into().expect("32 bytes")).ok_or(ProofError::InvalidPoints)
    };
    let proof = Proof {
        a: g1(a)?,
        b: g2_from_compressed(b.try_into().expect("64 bytes")).ok_or(ProofError::InvalidPoints)?,
        c: g1(c)?,
    };
    Ok(proof)
}

/// Verifies RLN proofs; the prepared key is computed once.
pub struct Verifier {
    /// `e(α, β)`.
    alpha_beta: Fq12,
    alpha_g1: G1Affine,
    beta: Lines,
    neg_gamma: Lines,
    neg_delta: Lines,
    /// Window tables of the verifying key's input points: the public inputs' MSM over fixed
    /// bases.
    ic: FixedBase,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

impl Verifier {
    /// The verifier for The Waku Network's circuit (built on first use).
    pub fn network() -> &'static Self {
        static VERIFIER: OnceLock<Verifier> = OnceLock::new();
        VERIFIER.get_or_init(|| {
            let vk = network_verifying_key();
            let beta = Lines::fixed(&vk.beta_g2);
            Self {
                alpha_beta: final_exponentiation(&multi_miller_loop(&[(vk.alpha_g1, &beta)]))
                    .expect("e(α, β) ≠ 0"),
                alpha_g1: vk.alpha_g1,
                beta,
                neg_gamma: Lines::fixed(&-vk.gamma_g2),
                neg_delta: Lines::fixed(&-vk.delta_g2),
                ic: FixedBase::new(&vk.gamma_abc_g1),
            }
        })
    }

    /// Checks one proof; a proof whose B is outside G2 is invalid (its points must be on
    /// their curves, as the decoders leave them).
    pub fn verify(&self, proof: &Proof<Bn254>, inputs: &PublicInputs) -> bool {
        let b = Lines::new(&proof.b);
        if !b.in_g2() {
            return false;
        }
        self.verify_with(proof, &b, inputs)
    }

    /// [`Verifier::verify`] with B's lines made.
    fn verify_with(&self, proof: &Proof<Bn254>, b: &Lines, inputs: &PublicInputs) -> bool {
        let acc = self.accumulate_inputs(inputs, Fr::one());
        let f = multi_miller_loop(&[
            (proof.a, b),
            (acc.into_affine(), &self.neg_gamma),
            (proof.c, &self.neg_delta),
        ]);
        final_exponentiation(&f).is_some_and(|out| out == self.alpha_beta)
    }

    /// The public inputs' point `IC_0 + Σ input_j · IC_{j+1}` (what `verify` pairs with
    /// `-γ`).
    pub fn inputs_point(&self, inputs: &PublicInputs) -> G1Projective {
        self.accumulate_inputs(inputs, Fr::one())
    }

    /// `weight · (IC_0 + Σ input_j · IC_{j+1})`.
    fn accumulate_inputs(&self, inputs: &PublicInputs, weight: Fr) -> G1Projective {
        let mut scalars = [weight; NUM_PUBLIC + 1];
        for (s, x) in scalars[1..].iter_mut().zip(inputs) {
            *s = weight * x;
        }
        self.ic.msm(&scalars)
    }

    /// Checks many proofs; `result[i]` says whether proof `i` is valid. B's lines are made
    /// once, side by side, and say which B lie outside G2 (those proofs are invalid). All
    /// the rest valid costs one combined check; otherwise the failing halves are searched,
    /// with the same lines, until each bad proof is found, so one bad proof never condemns
    /// the others.
    pub fn verify_batch<R: RngCore>(
        &self,
        batch: &[(Proof<Bn254>, PublicInputs)],
        rng: &mut R,
    ) -> Vec<bool> {
        let lines: Vec<Lines> = batch
            .par_chunks(parallel_chunk(batch.len()))
            .flat_map_iter(|proofs| {
                let bs: Vec<G2Affine> = proofs.iter().map(|(p, _)| p.b).collect();
                Lines::batch(&bs)
            })
            .collect();
        let candidates: Vec<Candidate<'_>> = batch
            .iter()
            .zip(&lines)
            .enumerate()
            .filter(|(_, (_, lines))| lines.in_g2())
            .map(|(index, ((proof, inputs), lines))| Candidate {
                index,
                proof,
                inputs,
                lines,
                weight: Weight::random(rng),
            })
            .collect();
        let mut valid = vec![false; batch.len()];
        self.search(&candidates, &mut valid);
        valid
    }

    fn search(&self, candidates: &[Candidate<'_>], valid: &mut [bool]) {
        match candidates {
            [] => {}
            [one] => valid[one.index] = self.verify_with(one.proof, one.lines, one.inputs),
            _ => {
                if self.combined_check(candidates) {
                    for candidate in candidates {
                        valid[candidate.index] = true;
                    }
                    return;
                }
                let (left, right) = candidates.split_at(candidates.len() / 2);
                self.search(left, valid);
                self.search(right, valid);
            }
        }
    }

    /// The random-linear-combination check of a whole batch.
    fn combined_check(&self, batch: &[Candidate<'_>]) -> bool {
        // The proofs' Miller loops in twice as many tasks as threads (a task's extra cost is
        // its share of the loop's squares), beside the key's part, which runs on whichever
        // thread is free first.
        let tasks = batch
            .len()
            .div_ceil(2 * rayon::current_num_threads())
            .max(MIN_PARALLEL_CHUNK);
        let (partial, rest) = rayon::join(
            || {
                batch
                    .par_chunks(tasks)
                    .map(Self::proofs_part)
                    .reduce(Fq12::one, |x, y| x * y)
            },
            || self.key_part(batch),
        );
        final_exponentiation(&(partial * rest)).is_some_and(|out| out.is_one())
    }

    /// `Π f(r_i·A_i, B_i)` over `chunk`: the Miller loops of the proofs' own pairs.
    fn proofs_part(chunk: &[Candidate<'_>]) -> Fq12 {
        let scaled: Vec<G1Projective> = chunk
            .iter()
            .map(|c| g1_weighted(&c.proof.a, c.weight.low, c.weight.high))
            .collect();
        let a = G1Projective::normalize_batch(&scaled);
        let pairs: Vec<(G1Affine, &Lines)> =
            a.into_iter().zip(chunk.iter().map(|c| c.lines)).collect();
        multi_miller_loop(&pairs)
    }

    /// The Miller loop of the pairs with the key's points: `-Σr_i·α` with β, the weighted
    /// inputs' point with `-γ` and `Σr_i·C_i` with `-δ`.
    fn key_part(&self, batch: &[Candidate<'_>]) -> Fq12 {
        // Σ r_i·C_i = Σ low_i·C_i + Σ high_i·φ(C_i): an MSM of 64-bit scalars.
        let beta = <ark_bn254::g1::Config as GLVConfig>::ENDO_COEFFS[0];
        let (c_points, c_scalars): (Vec<G1Affine>, Vec<Fr>) = batch
            .iter()
            .flat_map(|candidate| {
                let (c, w) = (candidate.proof.c, candidate.weight);
                let phi_c = G1Affine::new_unchecked(c.x * beta, c.y);
                let phi_c = if c.infinity { c } else { phi_c };
                [(c, Fr::from(w.low)), (phi_c, Fr::from(w.high))]
            })
            .unzip();
        let c_sum = G1Projective::msm_unchecked(&c_points, &c_scalars);
        let weight_sum: Fr = batch.iter().map(|c| c.weight.value).sum();
        let mut combined_inputs = [Fr::zero(); NUM_PUBLIC + 1];
        combined_inputs[0] = weight_sum;
        for candidate in batch {
            for (acc, x) in combined_inputs[1..].iter_mut().zip(candidate.inputs) {
                *acc += candidate.weight.value * x;
            }
        }
        let acc_sum = self.ic.msm(&combined_inputs);
        multi_miller_loop(&[
            ((-self.alpha_g1 * weight_sum).into_affine(), &self.beta),
            (acc_sum.into_affine(), &self.neg_gamma),
            (c_sum.into_affine(), &self.neg_delta),
        ])
    }
}

/// How many proofs of a batch of `len` each rayon task takes.
fn parallel_chunk(len: usize) -> usize {
    len.div_ceil(rayon::current_num_threads())
        .max(MIN_PARALLEL_CHUNK)
}

/// A proof of a batch whose B is in G2, with its lines and random weight.
struct Candidate<'a> {
    /// Its place in the batch.
    index: usize,
    proof: &'a Proof<Bn254>,
    inputs: &'a PublicInputs,
    lines: &'a Lines,
    weight: Weight,
}

/// A proof's random weight in a batch: `value = low + λ·high` with random 64-bit halves, so
/// `value·A` costs 64 doublings through the endomorphism ([`g1_weighted`]). There are 2^128
/// such weights, so a bad proof slips through with probability 2^-128.
#[derive(Debug, Clone, Copy)]
struct Weight {
    low: u64,
    high: u64,
    value: Fr,
}

impl Weight {
    fn random<R: RngCore>(rng: &mut R) -> Self {
        loop {
            let (low, high) = (rng.next_u64(), rng.next_u64());
            let value = Fr::from(low) + glv_lambda() * Fr::from(high);
            if !value.is_zero() {
                return Self { low, high, value };
            }
        }
    }
}

/// Bits per window of [`FixedBase`]: 37 windows of 64 points per base.
const WINDOW_BITS: usize = 7;

/// A multi-scalar multiplication over a few fixed bases, for the public inputs: every window
/// of every base has its odd and even multiples `d·2^(7j)·P` (`d` up to 64) in affine
/// coordinates, so a product is one mixed addition per non-zero signed digit, with no
/// doublings, no buckets and no inversions (a few points do not pay for those).
struct FixedBase {
    windows: usize,
    /// `points[(base · windows + j) · HALF + (d - 1)] = d·2^(7j)·base`.
    points: Vec<G1Affine>,
}

const HALF: usize = 1 << (WINDOW_BITS - 1);

impl FixedBase {
    fn new(bases: &[G1Affine]) -> Self {
        let windows = 256usize.div_ceil(WINDOW_BITS);
        let mut projective = Vec::with_capacity(bases.len() * windows * HALF);
        for base in bases {
            let mut start = G1Projective::from(*base);
            for _ in 0..windows {
                let mut multiple = start;
                for _ in 0..HALF {
                    projective.push(multiple);
                    multiple += start;
                }
                // The next window starts at 2^7 times this one's base.
                for _ in 0..WINDOW_BITS {
                    start.double_in_place();
                }
            }
        }
        Self {
            windows,
            points: G1Projective::normalize_batch(&projective),
        }
    }

    /// `Σ scalars[i]·bases[i]`: one table point per non-zero signed window, summed by
    /// [`g1_sum`].
    fn msm(&self, scalars: &[Fr]) -> G1Projective {
        g1_sum(scalars.iter().enumerate().flat_map(|(base, scalar)| {
            let limbs = scalar.into_bigint().0;
            let bits = move |start: usize| -> u64 {
                let (limb, shift) = (start / 64, start % 64);
                let mut v = limbs.get(limb).map_or(0, |l| l >> shift);
                if shift + WINDOW_BITS > 64
                    && let Some(next) = limbs.get(limb + 1)
                {
                    v |= next << (64 - shift);
                }
                v & ((1 << WINDOW_BITS) - 1)
            };
            let mut carry = 0u64;
            (0..self.windows).filter_map(move |j| {
                let raw = bits(j * WINDOW_BITS) + carry;
                carry = u64::from(raw > HALF as u64);
                debug_assert!(
                    j + 1 < self.windows || carry == 0,
                    "scalars are below 2^254"
                );
                let table = &self.points[(base * self.windows + j) * HALF..][..HALF];
                if raw == 0 || raw == 1 << WINDOW_BITS {
                    None
                } else if raw > HALF as u64 {
                    Some(-table[(1 << WINDOW_BITS) - raw as usize - 1])
                } else {
                    Some(table[raw as usize - 1])
                }
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use ark_ec::AffineRepr;
    use ark_ff::UniformRand;
    use ark_serialize::CanonicalDeserialize;
    use rand::Rng;

    use super::*;

    #[test]
    fn decode_rejects_wrong_lengths_and_junk() {
        assert_eq!(decode_proof(&[0; 10]), Err(ProofError::WrongLength(10)));
        assert_eq!(decode_proof(&[0xff; 128]), Err(ProofError::InvalidPoints));
    }

    /// A B on the twist but outside G2 is refused, as arkworks' checked decoding refuses it;
    /// proofs with points in their groups decode as arkworks decodes them.
    #[test]
    fn decode_checks_the_subgroups_as_arkworks_does() {
        use ark_bn254::{G1Projective, G2Projective};
        use ark_serialize::CanonicalSerialize;
        let mut rng = rand::rngs::OsRng;
        let encode = |proof: &Proof<Bn254>| {
            let mut bytes = Vec::new();
            proof.serialize_compressed(&mut bytes).unwrap();
            bytes
        };
        for _ in 0..20 {
            let good = Proof::<Bn254> {
                a: G1Projective::rand(&mut rng).into_affine(),
                b: G2Projective::rand(&mut rng).into_affine(),
                c: G1Projective::rand(&mut rng).into_affine(),
            };
            assert_eq!(decode_proof(&encode(&good)), Ok(good.clone()));
            let outside = loop {
                let x = ark_bn254::Fq2::rand(&mut rng);
                if let Some(p) = G2Affine::get_point_from_x_unchecked(x, true) {
                    break p;
                }
            };
            let bad = Proof { b: outside, ..good };
            let bytes = encode(&bad);
            assert!(Proof::<Bn254>::deserialize_compressed(&bytes[..]).is_err());
            assert_eq!(decode_proof(&bytes), Err(ProofError::InvalidPoints));
        }
        // Junk and near-junk: refused exactly where arkworks refuses.
        for i in 0..400 {
            let mut bytes = [0u8; PROOF_BYTES];
            rng.fill(&mut bytes[..]);
            if i % 2 == 0 {
                for top in [31, 63, 95, 127] {
                    bytes[top] &= 0x3f;
                }
            }
            assert_eq!(
                decode_proof(&bytes).ok(),
                Proof::<Bn254>::deserialize_compressed(&bytes[..]).ok(),
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn the_inputs_msm_matches_arkworks() {
        let vk = network_verifying_key();
        let table = FixedBase::new(&vk.gamma_abc_g1);
        let mut rng = rand::rngs::OsRng;
        let mut cases: Vec<Vec<Fr>> = (0..20)
            .map(|_| (0..6).map(|_| Fr::rand(&mut rng)).collect())
            .collect();
        cases.push(vec![Fr::zero(); 6]);
        cases.push(vec![-Fr::one(); 6]);
        cases.push(vec![
            Fr::one(),
            Fr::from(64u64),
            Fr::from(65u64),
            Fr::from(127u64),
            Fr::from(128u64),
            -Fr::from(64u64),
        ]);
        for scalars in cases {
            assert_eq!(
                table.msm(&scalars),
                G1Projective::msm(&vk.gamma_abc_g1, &scalars).unwrap(),
                "{scalars:?}"
            );
        }
    }

    #[test]
    fn the_key_pairing_is_the_one_arkworks_computes() {
        let pvk = ark_groth16::prepare_verifying_key(network_verifying_key());
        assert_eq!(Verifier::network().alpha_beta, pvk.alpha_g1_beta_g2);
    }

    #[test]
    fn a_random_proof_does_not_verify() {
        let mut rng = rand::rngs::OsRng;
        let g1 = G1Affine::generator();
        let proof = Proof {
            a: g1,
            b: G2Affine::generator(),
            c: g1,
        };
        let inputs = [Fr::rand(&mut rng); NUM_PUBLIC];
        assert!(!Verifier::network().verify(&proof, &inputs));
        let batch = vec![(proof.clone(), inputs); 3];
        assert_eq!(
            Verifier::network().verify_batch(&batch, &mut rng),
            vec![false; 3]
        );
    }
}
