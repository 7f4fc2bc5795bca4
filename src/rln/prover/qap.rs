//! circom's R1CS-to-QAP reduction (the one snarkjs uses), which the network's proving key was
//! made for: its H points are Lagrange values on the odd 2n-th roots of unity, so the prover
//! supplies `A(x)·B(x) - C(x)` evaluated on the coset `ω_2n·H` instead of the coefficients of
//! `h(X)`. On that coset `Z(x) = -2` is constant, which the key already absorbed, so no
//! division is needed. C's rows are `A_i·w · B_i·w`, which is why circom keys carry no C matrix.

use ark_ff::Zero;
use ark_poly::{EvaluationDomain, Radix2EvaluationDomain};
use rayon::prelude::*;

use crate::rln::{circuit::Matrices, field::Fr};

/// The FFT domains of the reduction.
#[derive(Debug, Clone)]
pub(super) struct Domains {
    domain: Radix2EvaluationDomain<Fr>,
    coset: Radix2EvaluationDomain<Fr>,
}

impl Domains {
    /// Domains for `constraints + instance` rows.
    pub(super) fn new(rows: usize) -> Self {
        let domain =
            Radix2EvaluationDomain::new(rows).expect("BN254 supports the circuit's domain");
        let double = Radix2EvaluationDomain::<Fr>::new(2 * domain.size())
            .expect("BN254 supports twice the circuit's domain");
        let coset = domain
            .get_coset(double.group_gen())
            .expect("a coset by a 2n-th root of unity exists");
        Self { domain, coset }
    }

    pub(super) fn size(&self) -> usize {
        self.domain.size()
    }
}

fn dot(row: &[(Fr, usize)], witness: &[Fr]) -> Fr {
    row.iter()
        .map(|(coeff, wire)| *coeff * witness[*wire])
        .sum()
}

/// The H-query scalars for `witness`: `A·B - C` on the odd 2n-th roots of unity.
pub(super) fn witness_map(matrices: &Matrices, witness: &[Fr], domains: &Domains) -> Vec<Fr> {
    let n = domains.size();
    let m = matrices.num_constraints;
    let mut a = vec![Fr::zero(); n];
    let mut b = vec![Fr::zero(); n];
    a[..m]
        .par_iter_mut()
        .zip(b[..m].par_iter_mut())
        .zip(matrices.a.par_iter().zip(&matrices.b))
        .for_each(|((a, b), (row_a, row_b))| {
            *a = dot(row_a, witness);
            *b = dot(row_b, witness);
        });
    // The public-input rows make every instance wire appear in A, as snarkjs' setup assumed.
    a[m..m + matrices.num_instance].copy_from_slice(&witness[..matrices.num_instance]);
    let mut c: Vec<Fr> = a.iter().zip(&b).map(|(a, b)| *a * b).collect();

    let to_coset = |values: &mut Vec<Fr>| {
        domains.domain.ifft_in_place(values);
        domains.coset.fft_in_place(values);
    };
    rayon::join(
        || to_coset(&mut a),
        || rayon::join(|| to_coset(&mut b), || to_coset(&mut c)),
    );
    a.par_iter_mut()
        .zip(&b)
        .zip(&c)
        .for_each(|((a, b), c)| *a = *a * b - c);
    a
}
