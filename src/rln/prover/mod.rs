//! The Groth16 prover for the RLN circuit, on arkworks curve arithmetic with circom's QAP
//! reduction.
//!
//! Two paths:
//! - [`Prover::prove_witness`] proves from a full witness;
//! - [`Prover::prepare_member`] sums, once, the MSM terms of the wires that depend only on
//!   the member and its Merkle path; [`Prover::prove_prepared`] then pays per message only
//!   for the wires the message changes (signal, epoch, message id and what follows from
//!   them) and for the H term.
//!
//! The per-message MSMs (H and the message's wires) run over precomputed window tables
//! ([`wakurln_msm::Table`]), built once when the prover is made; the rest uses arkworks'
//! Pippenger MSM.
//!
//! Proving is CPU-bound and synchronous: callers run it on a blocking pool, never on an async
//! runtime thread. Inside, the MSMs and FFTs use the rayon pool.

mod msm;
mod qap;
mod rln;

use std::sync::Arc;

use ark_bn254::{Bn254, G1Projective, G2Projective, g1, g2};
use ark_ec::CurveGroup;
use ark_ff::UniformRand;
use ark_groth16::Proof;
use rand::RngCore;
use wakurln_fft::CosetFft;
use wakurln_msm::Table;

pub use rln::{MemberInputs, MessageInputs, PreparedRln, RlnProof, RlnProveError, RlnProver};

use crate::rln::{
    circuit::{NUM_WIRES, ProvingKey},
    field::Fr,
};

/// Why a proof could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProveError {
    /// The witness does not have one value per wire.
    #[error("witness has {0} values, the circuit has {NUM_WIRES} wires")]
    WitnessLength(usize),
    /// A prepared member was used with a witness of another member or Merkle path.
    #[error("the witness does not belong to the prepared member (wire {0} differs)")]
    NotThisMember(usize),
}

/// MSM sums over the member-only wires, computed once per (member, Merkle path).
#[derive(Debug, Clone)]
pub struct PreparedMember {
    /// The witness the sums were computed from.
    witness: Vec<Fr>,
    a: G1Projective,
    b1: G1Projective,
    b2: G2Projective,
    l: G1Projective,
}

/// Makes RLN proofs with a proving key.
#[derive(Debug, Clone)]
pub struct Prover {
    key: Arc<ProvingKey>,
    /// The QAP reduction's transform to the coset.
    fft: CosetFft,
    tables: Arc<Tables>,
}

/// Window tables of the bases every message pays for.
#[derive(Debug)]
struct Tables {
    h: Table<g1::Config>,
    /// Wires whose value depends on the message.
    dynamic: Vec<usize>,
    /// Wires whose value does not: their sums are prepared once per member.
    fixed: Vec<usize>,
    /// The private ones among them, as indices into the L query.
    dynamic_private: Vec<usize>,
    a: Table<g1::Config>,
    b1: Table<g1::Config>,
    b2: Table<g2::Config>,
    l: Table<g1::Config>,
}

/// The bases of `wires`.
fn pick<T: Copy>(bases: &[T], wires: &[usize]) -> Vec<T> {
    wires.iter().map(|&w| bases[w]).collect()
}

impl Tables {
    fn new(key: &ProvingKey, dynamic: Vec<usize>) -> Self {
        let pk = &key.key;
        let instance = key.matrices.num_instance;
        let started = std::time::Instant::now();
        let dynamic_private: Vec<usize> = dynamic
            .iter()
            .filter_map(|&w| w.checked_sub(instance))
            .collect();
        let ((h, a), (b1, (b2, l))) = rayon::join(
            || {
                rayon::join(
                    || Table::new(&pk.h_query),
                    || Table::new(&pick(&pk.a_query, &dynamic)),
                )
            },
            || {
                rayon::join(
                    || Table::new(&pick(&pk.b_g1_query, &dynamic)),
                    || {
                        rayon::join(
                            || Table::new(&pick(&pk.b_g2_query, &dynamic)),
                            || Table::new(&pick(&pk.l_query, &dynamic_private)),
                        )
                    },
                )
            },
        );
        tracing::debug!(
            message_wires = dynamic.len(),
            h_window_bits = h.window_bits(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "prover window tables built"
        );
        let fixed = (0..NUM_WIRES)
            .filter(|i| dynamic.binary_search(i).is_err())
            .collect();
        Self {
            h,
            dynamic,
            fixed,
            dynamic_private,
            a,
            b1,
            b2,
            l,
        }
    }

    /// The MSM sums over the message's wires.
    fn sums(&self, witness: &[Fr], instance: usize) -> Sums {
        let values: Vec<Fr> = self.dynamic.iter().map(|&w| witness[w]).collect();
        let private: Vec<Fr> = self
            .dynamic_private
            .iter()
            .map(|&i| witness[instance + i])
            .collect();
        let ((a, b1), (b2, l)) = rayon::join(
            || rayon::join(|| self.a.msm(&values), || self.b1.msm(&values)),
            || rayon::join(|| self.b2.msm(&values), || self.l.msm(&private)),
        );
        Sums { a, b1, b2, l }
    }
}

/// The four MSM sums of a proof before randomisation.
#[derive(Clone, Copy)]
struct Sums {
    a: G1Projective,
    b1: G1Projective,
    b2: G2Projective,
    /// `Σ w_i·L_i` over the private wires.
    l: G1Projective,
}

impl Prover {
    /// A prover for `key` whose messages change the wires where `dynamic` is true (missing
    /// entries count as true). Builds the window tables, which takes a few tenths of a second.
    pub fn new(key: Arc<ProvingKey>, dynamic: &[bool]) -> Self {
        let rows = key.matrices.num_constraints + key.matrices.num_instance;
        let dynamic = (0..NUM_WIRES)
            .filter(|&i| dynamic.get(i).copied().unwrap_or(true))
            .collect();
        Self {
            fft: qap::coset_fft(rows),
            tables: Arc::new(Tables::new(&key, dynamic)),
            key,
        }
    }

    /// The proving key in use.
    pub fn key(&self) -> &ProvingKey {
        &self.key
    }

    fn check_len(witness: &[Fr]) -> Result<(), ProveError> {
        if witness.len() != NUM_WIRES {
            return Err(ProveError::WitnessLength(witness.len()));
        }
        Ok(())
    }

    /// The MSM sums over the given wires.
    fn sums(&self, witness: &[Fr], wires: &[usize]) -> Sums {
        let pk = &self.key.key;
        let instance = self.key.matrices.num_instance;
        let private: Vec<usize> = wires.iter().copied().filter(|&w| w >= instance).collect();
        let l_scalars = &witness[instance..];
        let ((a, b1), (b2, l)) = rayon::join(
            || {
                rayon::join(
                    || msm::msm_selected(&pk.a_query, witness, wires.iter().copied()),
                    || msm::msm_selected(&pk.b_g1_query, witness, wires.iter().copied()),
                )
            },
            || {
                rayon::join(
                    || msm::msm_selected(&pk.b_g2_query, witness, wires.iter().copied()),
                    || {
                        msm::msm_selected(
                            &pk.l_query,
                            l_scalars,
                            private.iter().map(|w| w - instance),
                        )
                    },
                )
            },
        );
        Sums { a, b1, b2, l }
    }

    /// The H term: `Σ h_i·H_i` for the QAP values of `witness`.
    fn h_sum(&self, witness: &[Fr]) -> G1Projective {
        let h = qap::witness_map(&self.key.matrices, witness, &self.fft);
        self.tables.h.msm(&h[..self.tables.h.len()])
    }

    /// Combines the sums with the H term and the blinding factors into a proof.
    fn finish<R: RngCore>(&self, sums: Sums, h_sum: G1Projective, rng: &mut R) -> Proof<Bn254> {
        let pk = &self.key.key;
        let r = Fr::rand(rng);
        let s = Fr::rand(rng);
        let a = sums.a + pk.vk.alpha_g1 + pk.delta_g1 * r;
        let b1 = sums.b1 + pk.beta_g1 + pk.delta_g1 * s;
        let b2 = sums.b2 + pk.vk.beta_g2 + pk.vk.delta_g2 * s;
        let c = sums.l + h_sum + a * s + b1 * r - pk.delta_g1 * (r * s);
        Proof {
            a: a.into_affine(),
            b: b2.into_affine(),
            c: c.into_affine(),
        }
    }

    /// Proves from a full witness (one value per wire, wire 0 = 1).
    pub fn prove_witness<R: RngCore>(
        &self,
        witness: &[Fr],
        rng: &mut R,
    ) -> Result<Proof<Bn254>, ProveError> {
        Self::check_len(witness)?;
        let all: Vec<usize> = (0..NUM_WIRES).collect();
        let (sums, h_sum) = rayon::join(|| self.sums(witness, &all), || self.h_sum(witness));
        Ok(self.finish(sums, h_sum, rng))
    }

    /// Precomputes the member-only part of the MSMs; `witness` is any full witness of this
    /// member and path.
    pub fn prepare_member(&self, witness: &[Fr]) -> Result<PreparedMember, ProveError> {
        Self::check_len(witness)?;
        let sums = self.sums(witness, &self.tables.fixed);
        Ok(PreparedMember {
            witness: witness.to_vec(),
            a: sums.a,
            b1: sums.b1,
            b2: sums.b2,
            l: sums.l,
        })
    }

    /// Proves a message for a prepared member: only the message's wires and the H term are
    /// computed now.
    pub fn prove_prepared<R: RngCore>(
        &self,
        member: &PreparedMember,
        witness: &[Fr],
        rng: &mut R,
    ) -> Result<Proof<Bn254>, ProveError> {
        Self::check_len(witness)?;
        if let Some(&wire) = self
            .tables
            .fixed
            .iter()
            .find(|&&i| witness[i] != member.witness[i])
        {
            return Err(ProveError::NotThisMember(wire));
        }
        let instance = self.key.matrices.num_instance;
        let (fresh, h_sum) = rayon::join(
            || self.tables.sums(witness, instance),
            || self.h_sum(witness),
        );
        let sums = Sums {
            a: fresh.a + member.a,
            b1: fresh.b1 + member.b1,
            b2: fresh.b2 + member.b2,
            l: fresh.l + member.l,
        };
        Ok(self.finish(sums, h_sum, rng))
    }
}
