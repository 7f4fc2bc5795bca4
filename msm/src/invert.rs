//! Batch inversion for the base fields of BN254's G1 and G2 (Montgomery's trick: one field
//! inversion and three multiplications per value).
//!
//! An element `a + b·u` of Fq2 is inverted through its norm `a² + b²`, which lies in Fq:
//! `1/(a + b·u) = (a - b·u) / (a² + b²)`. The norms are inverted as a batch in Fq, so a G2
//! bucket addition pays about seven Fq multiplications for its inverse instead of three Fq2
//! multiplications.

use ark_bn254::{Fq, Fq2};
use ark_ff::Field;
use wakurln_field::FastField;
#[cfg(target_arch = "x86_64")]
use wakurln_field::ifma;

/// A field whose values the bucket sums invert in batches (and multiply with
/// [`FastField`]).
pub trait BatchInvert: Field + FastField {
    /// Buffers kept between batches.
    type Space: Default + Send;

    /// Replaces every value by its inverse.
    ///
    /// # Panics
    /// If a value is zero.
    fn invert_all(values: &mut [Self], space: &mut Self::Space);

    /// Adds `count` pairs of affine points in general position (neither point the identity,
    /// distinct x), `pair(i)` giving `[x1, y1, x2, y2]` and `out(i, x, y)` taking the sum,
    /// if the field has a faster way than one addition after another. Returns whether it
    /// did.
    fn add_general_pairs(
        count: usize,
        pair: impl Fn(usize) -> [Self; 4],
        out: impl FnMut(usize, Self, Self),
        space: &mut Self::Space,
    ) -> bool {
        let _ = (count, pair, out, space);
        false
    }
}

/// Fq's buffers: the 64-bit path's running products, and the eight-lane path's.
#[derive(Debug, Default)]
pub struct FqSpace {
    prefixes: Vec<Fq>,
    #[cfg(target_arch = "x86_64")]
    lanes: (ifma::InvertSpace, ifma::AddSpace),
}

impl FqSpace {
    /// Inverts `values`, in eight lanes where the CPU can.
    fn invert(&mut self, values: &mut [Fq]) {
        #[cfg(target_arch = "x86_64")]
        if values.len() >= ifma::MIN_BATCH && ifma::invert(values, &mut self.lanes.0) {
            return;
        }
        wakurln_field::invert_batch(values, &mut self.prefixes);
    }
}

impl BatchInvert for Fq {
    type Space = FqSpace;

    fn invert_all(values: &mut [Self], space: &mut Self::Space) {
        space.invert(values);
    }

    #[cfg(target_arch = "x86_64")]
    fn add_general_pairs(
        count: usize,
        pair: impl Fn(usize) -> [Self; 4],
        out: impl FnMut(usize, Self, Self),
        space: &mut Self::Space,
    ) -> bool {
        ifma::add_pairs::<Self, 1>(count, pair, out, &mut space.lanes.1)
    }
}

impl BatchInvert for Fq2 {
    type Space = (Vec<Fq>, FqSpace);

    fn invert_all(values: &mut [Self], (norms, space): &mut Self::Space) {
        norms.clear();
        norms.extend(
            values
                .iter()
                .map(|v| v.c0.fast_square().fast_add(&v.c1.fast_square())),
        );
        space.invert(norms);
        for (value, norm) in values.iter_mut().zip(norms.iter()) {
            *value = Fq2::new(value.c0.fast_mul(norm), -value.c1.fast_mul(norm));
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn add_general_pairs(
        count: usize,
        pair: impl Fn(usize) -> [Self; 4],
        out: impl FnMut(usize, Self, Self),
        (_, space): &mut Self::Space,
    ) -> bool {
        ifma::add_pairs::<Self, 2>(count, pair, out, &mut space.lanes.1)
    }
}

#[cfg(test)]
mod tests {
    use ark_ff::{UniformRand, Zero};
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    fn check<F: BatchInvert + UniformRand>() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let mut space = F::Space::default();
        for len in [0, 1, 2, 7, 100] {
            let values: Vec<F> = (0..len)
                .map(|_| F::rand(&mut rng))
                .filter(|v| !v.is_zero())
                .collect();
            let mut inverted = values.clone();
            F::invert_all(&mut inverted, &mut space);
            for (value, inverse) in values.iter().zip(&inverted) {
                assert_eq!(*value * inverse, F::one());
            }
        }
        // Values that are their own inverses, and one: the trick must not reorder them.
        let mut ones = vec![F::one(), -F::one(), F::one()];
        F::invert_all(&mut ones, &mut space);
        assert_eq!(ones, vec![F::one(), -F::one(), F::one()]);
    }

    #[test]
    fn fq_values_are_inverted() {
        check::<Fq>();
    }

    #[test]
    fn fq2_values_are_inverted_through_the_norm() {
        check::<Fq2>();
    }

    #[test]
    #[should_panic(expected = "denominators are never zero")]
    fn a_zero_panics() {
        Fq2::invert_all(&mut [Fq2::ONE, Fq2::zero()], &mut Default::default());
    }
}
