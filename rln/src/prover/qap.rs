//! circom's R1CS-to-QAP reduction (the one snarkjs uses), which the network's proving key was
//! made for: its H points are Lagrange values on the odd 2n-th roots of unity, so the prover
//! supplies `A(x)·B(x) - C(x)` evaluated on the coset `ω_2n·H` instead of the coefficients of
//! `h(X)`. On that coset `Z(x) = -2` is constant, which the key already absorbed, so no
//! division is needed. C's rows are `A_i·w · B_i·w`, which is why circom keys carry no C matrix.

use ark_ff::{FftField, Zero};
use rayon::prelude::*;
use wakurln_fft::CosetFft;
use wakurln_field::FastField;

use crate::{circuit::Matrices, field::Fr};

/// The transform of the reduction for `constraints + instance` rows: from the `n`-th roots of
/// unity to the coset `ω_2n·H`.
pub(super) fn coset_fft(rows: usize) -> CosetFft {
    let n = rows.next_power_of_two().max(2);
    let shift =
        Fr::get_root_of_unity(2 * n as u64).expect("BN254 supports twice the circuit's domain");
    CosetFft::new(n, shift).expect("BN254 supports the circuit's domain")
}

fn dot(row: &[(Fr, usize)], witness: &[Fr]) -> Fr {
    row.iter()
        .map(|(coeff, wire)| coeff.fast_mul(&witness[*wire]))
        .sum()
}

/// The H-query scalars for `witness`: `A·B - C` on the odd 2n-th roots of unity.
pub(super) fn witness_map(matrices: &Matrices, witness: &[Fr], fft: &CosetFft) -> Vec<Fr> {
    let n = fft.size();
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
    let mut c: Vec<Fr> = a.iter().zip(&b).map(|(a, b)| a.fast_mul(b)).collect();

    let to_coset = |values: &mut Vec<Fr>| fft.domain_to_coset(values);
    rayon::join(
        || to_coset(&mut a),
        || rayon::join(|| to_coset(&mut b), || to_coset(&mut c)),
    );
    a.par_iter_mut()
        .zip(&b)
        .zip(&c)
        .for_each(|((a, b), c)| *a = a.fast_mul(b) - c);
    a
}
