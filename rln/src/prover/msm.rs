//! Multi-scalar multiplication tuned for circom witnesses, where most scalars are 0 or 1 (path
//! bits, range-check bits, unused wires): zeros are skipped, ones are plain additions, and
//! only the rest go through Pippenger.

use ark_ec::{AffineRepr, CurveGroup, VariableBaseMSM};
use ark_ff::{One, PrimeField, Zero};

use crate::field::Fr;

/// `Σ scalars[i] · bases[index(i)]` over the selected wires.
pub(super) fn msm_selected<P>(
    bases: &[P::Affine],
    scalars: &[Fr],
    selected: impl Iterator<Item = usize>,
) -> P
where
    P: CurveGroup<ScalarField = Fr> + VariableBaseMSM<MulBase = <P as CurveGroup>::Affine>,
{
    let mut ones = P::zero();
    let mut dense_bases = Vec::new();
    let mut dense_scalars = Vec::new();
    for i in selected {
        let Some(base) = bases.get(i) else { continue };
        let scalar = scalars[i];
        if scalar.is_zero() || base.is_zero() {
            continue;
        }
        if scalar.is_one() {
            ones += base;
        } else {
            dense_bases.push(*base);
            dense_scalars.push(scalar.into_bigint());
        }
    }
    ones + P::msm_bigint(&dense_bases, &dense_scalars)
}
