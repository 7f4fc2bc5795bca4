//! The Groth16 prover for the RLN circuit, on arkworks curve arithmetic with circom's QAP
//! reduction.
//!
//! [`Prover::prepare_member`] sums, once, the MSM terms of the wires that depend only on the
//! member and its Merkle path; [`Prover::prove_prepared`] then pays per message only for the
//! wires the message changes (signal, epoch, message id and what follows from them) and for
//! the H term. [`Prover::prove_witness`] does both in turn, for a witness seen once.
//! [`Prover::update_member`] moves a prepared member to a new Merkle path by adding the
//! terms of the difference on the wires that changed: after a registration, only the path
//! levels above the point where the new leaf's path meets the member's.
//!
//! Every MSM runs over precomputed window tables ([`wakurln_msm::Table`]). The message's
//! tables are built when the prover is made; the member's, the first time a member is
//! prepared (a prover that only ever verifies or never proves does not pay for them). Every G1
//! term that only enters C (H, the message's L wires and its B wires times the blinding factor
//! `r`) is one MSM over one table, so they share one set of buckets.
//!
//! Proving is CPU-bound and synchronous: callers run it on a blocking pool, never on an async
//! runtime thread. Inside, the MSMs and FFTs use the rayon pool.

mod qap;
mod rln;

use std::sync::{Arc, OnceLock};

use ark_bn254::{Bn254, G1Projective, G2Projective, g1, g2};
use ark_ec::{
    CurveGroup,
    short_weierstrass::{Affine, Projective, SWCurveConfig},
};
use ark_ff::{UniformRand, Zero};
use ark_groth16::Proof;
use rand::RngCore;
use wakurln_fft::CosetFft;
use wakurln_msm::Table;

pub use rln::{MemberInputs, MessageInputs, PreparedRln, RlnProof, RlnProveError, RlnProver};

use crate::{
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
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedMember {
    /// The witness the sums were computed from.
    witness: Vec<Fr>,
    sums: Sums,
}

/// Makes RLN proofs with a proving key.
#[derive(Debug, Clone)]
pub struct Prover {
    key: Arc<ProvingKey>,
    /// The QAP reduction's transform to the coset.
    fft: Arc<CosetFft>,
    tables: Arc<Tables>,
}

/// Window tables of the bases every message pays for.
#[derive(Debug)]
struct Tables {
    /// The H points, then the L points of the message's private wires, then the B (G1) points
    /// of all the message's wires: everything of C that a message changes.
    c: Table<g1::Config>,
    /// How many H points lead `c`.
    h_points: usize,
    /// Wires whose value depends on the message.
    dynamic: Vec<usize>,
    /// Wires whose value does not: their sums are prepared once per member.
    fixed: Vec<usize>,
    /// The private ones among them, as indices into the L query.
    dynamic_private: Vec<usize>,
    a: Table<g1::Config>,
    b2: Table<g2::Config>,
    /// The member's tables, built on first use.
    member: OnceLock<MemberTables>,
}

/// A window table over some wires' bases: those whose base is not the identity.
struct Selected<P: SWCurveConfig> {
    wires: Vec<usize>,
    table: Table<P>,
}

impl<P: SWCurveConfig> std::fmt::Debug for Selected<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selected")
            .field("wires", &self.wires.len())
            .field("table", &self.table)
            .finish()
    }
}

impl<P: SWCurveConfig<BaseField: wakurln_msm::BatchInvert, ScalarField = Fr>> Selected<P> {
    /// The table of `bases[index(w)]` for every wire `w` that has a base there.
    fn new(bases: &[Affine<P>], wires: &[usize], index: impl Fn(usize) -> Option<usize>) -> Self {
        let (wires, picked): (Vec<usize>, Vec<Affine<P>>) = wires
            .iter()
            .filter_map(|&w| {
                let base = bases.get(index(w)?)?;
                (!base.infinity).then_some((w, *base))
            })
            .unzip();
        Self {
            table: Table::new(&picked),
            wires,
        }
    }

    /// `Σ value(w)·base(w)` over the table's wires.
    fn msm(&self, value: &(impl Fn(usize) -> Fr + Sync)) -> Projective<P> {
        let scalars: Vec<Fr> = self.wires.iter().map(|&w| value(w)).collect();
        if scalars.iter().all(Zero::is_zero) {
            return Projective::zero();
        }
        self.table.msm(&scalars)
    }

    /// Table points held.
    fn points(&self) -> usize {
        self.table.len() * self.table.windows()
    }
}

/// Window tables of the member's wires, one per query.
#[derive(Debug)]
struct MemberTables {
    a: Selected<g1::Config>,
    b1: Selected<g1::Config>,
    b2: Selected<g2::Config>,
    /// Over the private member wires (the L query starts after the public inputs).
    l: Selected<g1::Config>,
}

impl MemberTables {
    fn new(key: &ProvingKey, fixed: &[usize]) -> Self {
        let pk = &key.key;
        let instance = key.matrices.num_instance;
        let started = std::time::Instant::now();
        let ((a, b1), (b2, l)) = rayon::join(
            || {
                rayon::join(
                    || Selected::new(&pk.a_query, fixed, Some),
                    || Selected::new(&pk.b_g1_query, fixed, Some),
                )
            },
            || {
                rayon::join(
                    || Selected::new(&pk.b_g2_query, fixed, Some),
                    || Selected::new(&pk.l_query, fixed, |w| w.checked_sub(instance)),
                )
            },
        );
        let tables = Self { a, b1, b2, l };
        tracing::debug!(
            g1_points = tables.a.points() + tables.b1.points() + tables.l.points(),
            g2_points = tables.b2.points(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "prover member tables built"
        );
        tables
    }

    /// The four sums of `value` over the member's wires.
    fn sums(&self, value: &(impl Fn(usize) -> Fr + Sync)) -> Sums {
        let ((a, b1), (b2, l)) = rayon::join(
            || rayon::join(|| self.a.msm(value), || self.b1.msm(value)),
            || rayon::join(|| self.b2.msm(value), || self.l.msm(value)),
        );
        Sums { a, b1, b2, l }
    }
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
        let c_bases: Vec<_> = pk
            .h_query
            .iter()
            .copied()
            .chain(pick(&pk.l_query, &dynamic_private))
            .chain(pick(&pk.b_g1_query, &dynamic))
            .collect();
        let (c, (a, b2)) = rayon::join(
            || Table::new(&c_bases),
            || {
                rayon::join(
                    || Table::new(&pick(&pk.a_query, &dynamic)),
                    || Table::new(&pick(&pk.b_g2_query, &dynamic)),
                )
            },
        );
        tracing::debug!(
            message_wires = dynamic.len(),
            c_window_bits = c.window_bits(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "prover window tables built"
        );
        let fixed = (0..NUM_WIRES)
            .filter(|i| dynamic.binary_search(i).is_err())
            .collect();
        Self {
            c,
            h_points: pk.h_query.len(),
            dynamic,
            fixed,
            dynamic_private,
            a,
            b2,
            member: OnceLock::new(),
        }
    }

    fn member(&self, key: &ProvingKey) -> &MemberTables {
        self.member
            .get_or_init(|| MemberTables::new(key, &self.fixed))
    }

    /// The message's share of A and B (G2).
    fn a_b2(&self, values: &[Fr]) -> (G1Projective, G2Projective) {
        rayon::join(|| self.a.msm(values), || self.b2.msm(values))
    }

    /// The message's share of C: `Σ h_i·H_i + Σ w_i·L_i + r·Σ w_i·B_i`, the last two over the
    /// message's (private) wires.
    fn c(&self, h: &[Fr], witness: &[Fr], values: &[Fr], instance: usize, r: Fr) -> G1Projective {
        let scalars: Vec<Fr> = h[..self.h_points]
            .iter()
            .copied()
            .chain(self.dynamic_private.iter().map(|&i| witness[instance + i]))
            .chain(values.iter().map(|v| *v * r))
            .collect();
        self.c.msm(&scalars)
    }
}

/// The four MSM sums of a proof before randomisation.
#[derive(Debug, Clone, Copy, PartialEq)]
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
            fft: Arc::new(qap::coset_fft(rows)),
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

    /// Proves from a full witness (one value per wire, wire 0 = 1): the member-only sums
    /// first, as [`Prover::prepare_member`] makes them, then the message's part.
    pub fn prove_witness<R: RngCore>(
        &self,
        witness: &[Fr],
        rng: &mut R,
    ) -> Result<Proof<Bn254>, ProveError> {
        Self::check_len(witness)?;
        let tables = self.tables.member(&self.key);
        // The member's sums run beside the message's part, filling the gaps its coset
        // transforms leave on the pool.
        Ok(self.prove_with(|| tables.sums(&|w| witness[w]), witness, rng))
    }

    /// Precomputes the member-only part of the MSMs; `witness` is any full witness of this
    /// member and path. The first call builds the member's window tables (about a second).
    pub fn prepare_member(&self, witness: &[Fr]) -> Result<PreparedMember, ProveError> {
        Self::check_len(witness)?;
        let tables = self.tables.member(&self.key);
        Ok(PreparedMember {
            witness: witness.to_vec(),
            sums: tables.sums(&|w| witness[w]),
        })
    }

    /// `member` moved to the witness of its new Merkle path (or any other change of its
    /// wires): the sums gain the terms of the difference on the wires that changed, so the
    /// cost follows how many did. The result equals what [`Prover::prepare_member`] makes
    /// from `witness`.
    pub fn update_member(
        &self,
        member: &PreparedMember,
        witness: &[Fr],
    ) -> Result<PreparedMember, ProveError> {
        Self::check_len(witness)?;
        let old = &member.witness;
        if self.tables.fixed.iter().all(|&w| witness[w] == old[w]) {
            return Ok(member.clone());
        }
        let delta = self.tables.member(&self.key).sums(&|w| witness[w] - old[w]);
        let sums = member.sums;
        Ok(PreparedMember {
            witness: witness.to_vec(),
            sums: Sums {
                a: sums.a + delta.a,
                b1: sums.b1 + delta.b1,
                b2: sums.b2 + delta.b2,
                l: sums.l + delta.l,
            },
        })
    }

    /// How many of the member's wires differ between `member` and `witness`.
    pub fn changed_member_wires(&self, member: &PreparedMember, witness: &[Fr]) -> usize {
        self.tables
            .fixed
            .iter()
            .filter(|&&w| witness.get(w) != member.witness.get(w))
            .count()
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
        Ok(self.prove_with(|| member.sums, witness, rng))
    }

    /// A proof of `witness`, whose member sums `member` gives (computed beside the message's
    /// part).
    fn prove_with<R: RngCore>(
        &self,
        member: impl FnOnce() -> Sums + Send,
        witness: &[Fr],
        rng: &mut R,
    ) -> Proof<Bn254> {
        let instance = self.key.matrices.num_instance;
        let r = Fr::rand(rng);
        let s = Fr::rand(rng);
        let values: Vec<Fr> = self.tables.dynamic.iter().map(|&w| witness[w]).collect();
        let (((a, b2), member), c_fresh) = rayon::join(
            || rayon::join(|| self.tables.a_b2(&values), member),
            || {
                let h = qap::witness_map(&self.key.matrices, witness, &self.fft);
                self.tables.c(&h, witness, &values, instance, r)
            },
        );
        // C = L + H + s·A + r·B1 - r·s·δ with B1 = B1_message + B1_member + β + s·δ: the r·s·δ
        // terms cancel, and the message's part of L + H + r·B1 is `c_fresh`.
        let pk = &self.key.key;
        let member = &member;
        let a = a + member.a + pk.vk.alpha_g1 + pk.delta_g1 * r;
        let b2 = b2 + member.b2 + pk.vk.beta_g2 + pk.vk.delta_g2 * s;
        let c = c_fresh + member.l + a * s + (member.b1 + pk.beta_g1) * r;
        Proof {
            a: a.into_affine(),
            b: b2.into_affine(),
            c: c.into_affine(),
        }
    }
}
