//! Field multiplication for BN254's base field Fq, its scalar field Fr and the quadratic
//! extension Fq2, for the prover's hot loops (bucket sums, batch inversion, transforms).
//!
//! On x86-64 with BMI2 and ADX enabled at compile time (see `.cargo/config.toml`), an Fq or
//! Fr product is one Montgomery multiplication in assembly: four rounds of "add `a·b_i`, then
//! add `m·p` and drop a limb", each with `mulx` products summed along two independent carry
//! chains (`adcx` for the low halves, `adox` for the high ones), and one conditional
//! subtraction at the end. Both moduli are below 2^254, so the running value always fits in
//! four limbs plus one and no carry word is kept between rounds. Elsewhere the arkworks
//! multiplication is used. Results are always fully reduced, so they mix freely with
//! arkworks' own arithmetic.
//!
//! An Fq2 product takes three Fq products (Karatsuba), a square two.

use ark_bn254::{Fq, Fq2, Fr};

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "bmi2",
    target_feature = "adx"
))]
mod x86;

/// Multiplication through this crate's routines.
pub trait MontMul: Copy {
    /// `self · rhs`.
    fn mont_mul(&self, rhs: &Self) -> Self;

    /// `self²`.
    fn mont_square(&self) -> Self {
        self.mont_mul(self)
    }
}

impl MontMul for Fq {
    #[inline(always)]
    fn mont_mul(&self, rhs: &Self) -> Self {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "bmi2",
            target_feature = "adx"
        ))]
        {
            Fq::new_unchecked(ark_ff::BigInt(x86::mul(&self.0.0, &rhs.0.0, &x86::FQ)))
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "bmi2",
            target_feature = "adx"
        )))]
        {
            *self * rhs
        }
    }
}

impl MontMul for Fr {
    #[inline(always)]
    fn mont_mul(&self, rhs: &Self) -> Self {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "bmi2",
            target_feature = "adx"
        ))]
        {
            Fr::new_unchecked(ark_ff::BigInt(x86::mul(&self.0.0, &rhs.0.0, &x86::FR)))
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "bmi2",
            target_feature = "adx"
        )))]
        {
            *self * rhs
        }
    }
}

impl MontMul for Fq2 {
    /// Karatsuba with `u² = -1`: `(a0·b0 - a1·b1) + ((a0 + a1)(b0 + b1) - a0·b0 - a1·b1)·u`.
    #[inline]
    fn mont_mul(&self, rhs: &Self) -> Self {
        let v0 = self.c0.mont_mul(&rhs.c0);
        let v1 = self.c1.mont_mul(&rhs.c1);
        let cross = (self.c0 + self.c1).mont_mul(&(rhs.c0 + rhs.c1));
        Fq2::new(v0 - v1, cross - v0 - v1)
    }

    /// `(a0 + a1)(a0 - a1) + 2·a0·a1·u`.
    #[inline]
    fn mont_square(&self) -> Self {
        let product = self.c0.mont_mul(&self.c1);
        Fq2::new(
            (self.c0 + self.c1).mont_mul(&(self.c0 - self.c1)),
            product + product,
        )
    }
}

#[cfg(test)]
mod tests {
    use ark_ff::{BigInteger, Field, PrimeField, UniformRand, Zero};
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    /// Values where carries and the final subtraction are most likely to go wrong: small and
    /// large values, and values whose Montgomery form (`x·2^256 mod p`, what the assembly
    /// sees) is extreme: 0, 1, all-ones limbs, p - 1.
    fn edges<F: PrimeField>() -> Vec<F> {
        let mut values = vec![
            F::zero(),
            F::one(),
            -F::one(),
            F::from(2u64),
            -F::from(2u64),
        ];
        values.extend([F::from(u64::MAX), -F::from(u64::MAX)]);
        let mut half = F::MODULUS;
        half.div2();
        let half = F::from_bigint(half).expect("(p - 1)/2 is below p");
        values.extend([half, half + F::one(), -half]);
        let unmont = F::from(2u64).pow([256]).inverse().expect("2 is invertible");
        let mut p_minus_one = F::MODULUS;
        p_minus_one.sub_with_borrow(&F::BigInt::from(1u64));
        for form in [
            F::BigInt::from(1u64),
            F::BigInt::from(u64::MAX),
            p_minus_one,
            F::MODULUS >> 1,
        ] {
            values.push(F::from_bigint(form).expect("below p") * unmont);
        }
        values
    }

    fn check<F: PrimeField + MontMul>(seed: u64) {
        let edges = edges::<F>();
        for a in &edges {
            for b in &edges {
                assert_eq!(a.mont_mul(b), *a * b, "{a} · {b}");
            }
            assert_eq!(a.mont_square(), a.square(), "{a}²");
        }
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        for _ in 0..20_000 {
            let (a, b) = (F::rand(&mut rng), F::rand(&mut rng));
            assert_eq!(a.mont_mul(&b), a * b);
        }
    }

    /// The build this runs in must take the assembly path where it can: without the target
    /// features (`.cargo/config.toml`), proving silently loses its fast multiplication.
    #[test]
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::assertions_on_constants)] // a failing test, not a build that cannot start
    fn x86_64_builds_use_the_assembly() {
        assert!(
            cfg!(all(target_feature = "bmi2", target_feature = "adx")),
            "built without BMI2/ADX: is .cargo/config.toml missing?"
        );
    }

    #[test]
    fn fq_products_match_arkworks() {
        check::<Fq>(1);
    }

    #[test]
    fn fr_products_match_arkworks() {
        check::<Fr>(2);
    }

    #[test]
    fn fq2_products_and_squares_match_arkworks() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let edges: Vec<Fq2> = edges::<Fq>()
            .into_iter()
            .flat_map(|a| edges::<Fq>().into_iter().map(move |b| Fq2::new(a, b)))
            .collect();
        for a in &edges {
            assert_eq!(a.mont_square(), a.square());
            assert_eq!(a.mont_mul(&edges[7]), *a * edges[7]);
        }
        for _ in 0..5_000 {
            let (a, b) = (Fq2::rand(&mut rng), Fq2::rand(&mut rng));
            assert_eq!(a.mont_mul(&b), a * b);
            assert_eq!(a.mont_square(), a.square());
        }
        assert!(Fq2::zero().mont_square().is_zero());
    }

    fn element<F: PrimeField>(limbs: [u64; 4]) -> F {
        F::from_le_bytes_mod_order(&ark_ff::BigInt(limbs).to_bytes_le())
    }

    proptest! {
        #[test]
        fn any_fq_product_matches(a in any::<[u64; 4]>(), b in any::<[u64; 4]>()) {
            let (a, b): (Fq, Fq) = (element(a), element(b));
            let product = a.mont_mul(&b);
            prop_assert!(product.0 < Fq::MODULUS);
            prop_assert_eq!(product, a * b);
        }

        #[test]
        fn any_fr_product_matches(a in any::<[u64; 4]>(), b in any::<[u64; 4]>()) {
            let (a, b): (Fr, Fr) = (element(a), element(b));
            let product = a.mont_mul(&b);
            prop_assert!(product.0 < Fr::MODULUS);
            prop_assert_eq!(product, a * b);
        }
    }
}
