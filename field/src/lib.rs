//! Field arithmetic for BN254's base field Fq, its scalar field Fr and the quadratic
//! extension Fq2, for the prover's hot loops (bucket sums, batch inversion, transforms).
//!
//! On x86-64 with BMI2 and ADX enabled at compile time (see `.cargo/config.toml`), an Fq or
//! Fr product is one Montgomery multiplication in assembly: four rounds of "add `a·b_i`, then
//! add `m·p` and drop a limb", each with `mulx` products summed along two independent carry
//! chains (`adcx` for the low halves, `adox` for the high ones), and one conditional
//! subtraction at the end. Both moduli are below 2^254, so the running value always fits in
//! four limbs plus one and no carry word is kept between rounds. Elsewhere the arkworks
//! multiplication is used.
//!
//! Additions and subtractions are branch-free: on random operands, the data-dependent branch
//! of a "reduce if needed" costs a misprediction every other time.
//!
//! Where the CPU has AVX-512 IFMA, [`ifma`] multiplies eight values at once in 52-bit limbs,
//! for the batches of the bucket sums (chord additions in G1 and G2, batch inversion) and the
//! coset move; it is chosen at run time (`WAKURLN_NO_IFMA` set keeps the 64-bit path).
//!
//! Results are always fully reduced, so they mix freely with arkworks' own arithmetic. An Fq2
//! product is Karatsuba's three Fq products, kept at 512 bits and combined there so that only
//! two Montgomery reductions run (lazy reduction: 48 + 32 `mulx` instead of 3 × 32); a square
//! is two Fq products.

use ark_bn254::{Fq, Fq2, FqConfig, Fr, FrConfig};
use ark_ff::{BigInt, MontConfig};

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "bmi2",
    target_feature = "adx"
))]
mod x86;

#[cfg(target_arch = "x86_64")]
pub mod ifma;

/// Arithmetic through this crate's routines.
pub trait FastField: Copy {
    /// `self · rhs`.
    fn fast_mul(&self, rhs: &Self) -> Self;

    /// `self²`.
    fn fast_square(&self) -> Self {
        self.fast_mul(self)
    }

    /// `self + rhs`.
    fn fast_add(&self, rhs: &Self) -> Self;

    /// `self - rhs`.
    fn fast_sub(&self, rhs: &Self) -> Self;

    /// `2·self`.
    fn fast_double(&self) -> Self {
        self.fast_add(self)
    }
}

/// Montgomery's trick: replaces every value of `values` by its inverse with one field
/// inversion and three products per value, `prefixes` giving space for the running products.
///
/// # Panics
/// If a value is zero.
pub fn invert_batch<F: ark_ff::Field + FastField>(values: &mut [F], prefixes: &mut Vec<F>) {
    prefixes.clear();
    let mut product = F::one();
    for value in values.iter() {
        prefixes.push(product);
        product = product.fast_mul(value);
    }
    let mut inverse = product
        .inverse()
        .expect("denominators are never zero: equal x only reach here as a doubling");
    for (value, prefix) in values.iter_mut().zip(prefixes.iter()).rev() {
        let original = *value;
        *value = inverse.fast_mul(prefix);
        inverse = inverse.fast_mul(&original);
    }
}

/// `a + b + carry` and the carry out (0 or 1).
///
/// On x86-64 through the carry-flag intrinsic, which the compiler chains into `adc`
/// instructions; the `u128` form it replaces compiled to flag-to-register round trips and
/// made every field addition about 40% slower.
#[inline(always)]
fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    #[cfg(target_arch = "x86_64")]
    {
        let mut sum = 0;
        let carry = std::arch::x86_64::_addcarry_u64(carry as u8, a, b, &mut sum);
        (sum, u64::from(carry))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let sum = u128::from(a) + u128::from(b) + u128::from(carry);
        (sum as u64, (sum >> 64) as u64)
    }
}

/// `a - b - borrow` and the borrow out (0 or 1).
#[inline(always)]
fn sbb(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    #[cfg(target_arch = "x86_64")]
    {
        let mut difference = 0;
        let borrow = std::arch::x86_64::_subborrow_u64(borrow as u8, a, b, &mut difference);
        (difference, u64::from(borrow))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let difference = u128::from(a)
            .wrapping_sub(u128::from(b))
            .wrapping_sub(u128::from(borrow));
        (difference as u64, (difference >> 127) as u64)
    }
}

/// `a - b`, and whether it borrowed (as an all-ones mask).
#[inline(always)]
fn sub_limbs(a: &[u64; 4], b: &[u64; 4]) -> ([u64; 4], u64) {
    let mut out = [0; 4];
    let mut borrow = 0;
    for i in 0..4 {
        (out[i], borrow) = sbb(a[i], b[i], borrow);
    }
    (out, borrow.wrapping_neg())
}

/// `a + b mod p` for `a, b < p < 2^255`.
#[inline(always)]
fn add_mod(a: &[u64; 4], b: &[u64; 4], p: &[u64; 4]) -> [u64; 4] {
    let mut sum = [0; 4];
    let mut carry = 0;
    for i in 0..4 {
        (sum[i], carry) = adc(a[i], b[i], carry);
    }
    // The sum is below 2p < 2^256, so it has no carry out.
    subtract_once(&sum, p)
}

/// `v mod p` for `v < 2p`: `v - p`, or `v` if that borrows (branch-free).
#[inline(always)]
fn subtract_once(v: &[u64; 4], p: &[u64; 4]) -> [u64; 4] {
    let (reduced, borrowed) = sub_limbs(v, p);
    std::array::from_fn(|i| (v[i] & borrowed) | (reduced[i] & !borrowed))
}

/// `a - b mod p` for `a, b < p`.
#[inline(always)]
fn sub_mod(a: &[u64; 4], b: &[u64; 4], p: &[u64; 4]) -> [u64; 4] {
    let (difference, borrowed) = sub_limbs(a, b);
    let mut out = [0; 4];
    let mut carry = 0;
    for i in 0..4 {
        (out[i], carry) = adc(difference[i], p[i] & borrowed, carry);
    }
    out
}

/// `9·a` in Fq, the product by the real part of the tower's non-residue `ξ = 9 + u`: the
/// five-limb integer `9·a` less `q·p` for the quotient read off its top bits, then at most one
/// subtraction of `p`, instead of three doublings and an addition, each reduced.
pub fn nine_times(a: &Fq) -> Fq {
    /// `floor(k·2^253 / p)·p` for every `k` that the top bits of `9·a < 9p` can take.
    const MULTIPLES: [[u64; 5]; 14] = {
        let p = <FqConfig as MontConfig<4>>::MODULUS.0;
        let mut table = [[0u64; 5]; 14];
        let mut k = 0;
        while k < 14 {
            // q = floor(k·2^253 / p): the largest q with q·p ≤ k·2^253 (at most 9).
            let mut q = 0u64;
            loop {
                let next = small_multiple(&p, q + 1);
                if !below_or_equal(&next, k as u64) {
                    break;
                }
                q += 1;
            }
            table[k] = small_multiple(&p, q);
            k += 1;
        }
        table
    };
    let x = &a.0.0;
    // 9·a = 8·a + a as five limbs (a < p < 2^254, so 9·a < 2^258).
    let eight = [
        x[0] << 3,
        (x[1] << 3) | (x[0] >> 61),
        (x[2] << 3) | (x[1] >> 61),
        (x[3] << 3) | (x[2] >> 61),
        x[3] >> 61,
    ];
    let mut t = [0u64; 5];
    let mut carry = 0;
    for i in 0..4 {
        (t[i], carry) = adc(eight[i], x[i], carry);
    }
    t[4] = eight[4] + carry;
    // k = floor(t / 2^253) and q·p ≤ k·2^253 ≤ t, so t - q·p ≥ 0; and k·2^253 - q·p < p
    // gives t - q·p < 2^253 + p < 2p: one more conditional subtraction reduces it.
    let k = ((t[4] << 3) | (t[3] >> 61)) as usize;
    let multiple = &MULTIPLES[k];
    let mut r = [0u64; 4];
    let mut borrow = 0;
    for i in 0..4 {
        (r[i], borrow) = sbb(t[i], multiple[i], borrow);
    }
    // Below 2p < 2^256, the fifth limbs cancel: the four low ones hold the difference.
    Fq::new_unchecked(BigInt(subtract_once(
        &r,
        &<FqConfig as MontConfig<4>>::MODULUS.0,
    )))
}

/// `q·p` as five limbs, at compile time.
const fn small_multiple(p: &[u64; 4], q: u64) -> [u64; 5] {
    let mut out = [0u64; 5];
    let mut carry = 0u128;
    let mut i = 0;
    while i < 4 {
        let t = (p[i] as u128) * (q as u128) + carry;
        out[i] = t as u64;
        carry = t >> 64;
        i += 1;
    }
    out[4] = carry as u64;
    out
}

/// Whether the five-limb `v` is at most `k·2^253`, at compile time.
const fn below_or_equal(v: &[u64; 5], k: u64) -> bool {
    // k·2^253 has limb 3 = (k << 61) mod 2^64 and limb 4 = k >> 3.
    let bound = [0, 0, 0, k << 61, k >> 3];
    let mut i = 5;
    while i > 0 {
        i -= 1;
        if v[i] != bound[i] {
            return v[i] < bound[i];
        }
    }
    true
}

/// [`FastField`] for a 4-limb Montgomery field of arkworks.
macro_rules! prime_field {
    ($field:ty, $config:ty, $modulus:ident) => {
        impl FastField for $field {
            #[inline(always)]
            fn fast_mul(&self, rhs: &Self) -> Self {
                #[cfg(all(
                    target_arch = "x86_64",
                    target_feature = "bmi2",
                    target_feature = "adx"
                ))]
                {
                    <$field>::new_unchecked(BigInt(x86::mul(&self.0.0, &rhs.0.0, &x86::$modulus)))
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

            #[inline(always)]
            fn fast_add(&self, rhs: &Self) -> Self {
                let p = &<$config as MontConfig<4>>::MODULUS.0;
                <$field>::new_unchecked(BigInt(add_mod(&self.0.0, &rhs.0.0, p)))
            }

            #[inline(always)]
            fn fast_sub(&self, rhs: &Self) -> Self {
                let p = &<$config as MontConfig<4>>::MODULUS.0;
                <$field>::new_unchecked(BigInt(sub_mod(&self.0.0, &rhs.0.0, p)))
            }
        }
    };
}

prime_field!(Fq, FqConfig, FQ);
prime_field!(Fr, FrConfig, FR);

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "bmi2",
    target_feature = "adx"
))]
/// The 512-bit product of two 256-bit values, at compile time.
const fn wide_product(a: &[u64; 4], b: &[u64; 4]) -> [u64; 8] {
    let mut out = [0u64; 8];
    let mut i = 0;
    while i < 4 {
        let mut carry = 0u128;
        let mut j = 0;
        while j < 4 {
            let t = (a[i] as u128) * (b[j] as u128) + (out[i + j] as u128) + carry;
            out[i + j] = t as u64;
            carry = t >> 64;
            j += 1;
        }
        out[i + 4] = carry as u64;
        i += 1;
    }
    out
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "bmi2",
    target_feature = "adx"
))]
/// `p²` for Fq: added to `a0·b0 - a1·b1` to keep it positive before the reduction.
const FQ_MODULUS_SQUARED: [u64; 8] = wide_product(
    &<FqConfig as MontConfig<4>>::MODULUS.0,
    &<FqConfig as MontConfig<4>>::MODULUS.0,
);

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "bmi2",
    target_feature = "adx"
))]
/// `a + b - c` on 512-bit values (the caller knows it neither overflows nor goes below 0).
#[inline(always)]
fn add_sub_wide(a: &[u64; 8], b: &[u64; 8], c: &[u64; 8]) -> [u64; 8] {
    let mut out = [0u64; 8];
    let (mut carry, mut borrow) = (0, 0);
    for i in 0..8 {
        let sum;
        (sum, carry) = adc(a[i], b[i], carry);
        (out[i], borrow) = sbb(sum, c[i], borrow);
    }
    out
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "bmi2",
    target_feature = "adx"
))]
/// `a + b` on 256-bit values below 2^255 (no reduction: the sum stays below 2^256).
#[inline(always)]
fn add_plain(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let mut out = [0u64; 4];
    let mut carry = 0;
    for i in 0..4 {
        (out[i], carry) = adc(a[i], b[i], carry);
    }
    out
}

/// Fq2 products by three fully reduced Fq products: the reference for the lazy one.
pub fn karatsuba(a: &Fq2, b: &Fq2) -> Fq2 {
    let v0 = a.c0.fast_mul(&b.c0);
    let v1 = a.c1.fast_mul(&b.c1);
    let cross = a.c0.fast_add(&a.c1).fast_mul(&b.c0.fast_add(&b.c1));
    Fq2::new(v0.fast_sub(&v1), cross.fast_sub(&v0).fast_sub(&v1))
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "bmi2",
    target_feature = "adx"
))]
/// `(a0 + a1·u)(b0 + b1·u)` with lazy reduction: the three Karatsuba products are kept at 512
/// bits and combined there (`a0·b0 - a1·b1 + p²` and `a0·b1 + a1·b0`, both in `[0, 2p²)`),
/// and only the two results are reduced, each with one Montgomery reduction.
pub fn lazy_mul(a: &Fq2, b: &Fq2) -> Fq2 {
    let (a0, a1) = (&a.c0.0.0, &a.c1.0.0);
    let (b0, b1) = (&b.c0.0.0, &b.c1.0.0);
    let v0 = x86::mul_wide(a0, b0);
    let v1 = x86::mul_wide(a1, b1);
    let cross = x86::mul_wide(&add_plain(a0, a1), &add_plain(b0, b1));
    let zero = [0u64; 8];
    let real = add_sub_wide(&v0, &FQ_MODULUS_SQUARED, &v1);
    let imaginary = add_sub_wide(&cross, &zero, &add_sub_wide(&v0, &v1, &zero));
    Fq2::new(
        Fq::new_unchecked(BigInt(x86::reduce_wide(&real, &x86::FQ))),
        Fq::new_unchecked(BigInt(x86::reduce_wide(&imaginary, &x86::FQ))),
    )
}

impl FastField for Fq2 {
    /// Karatsuba with `u² = -1`: `(a0·b0 - a1·b1) + ((a0 + a1)(b0 + b1) - a0·b0 - a1·b1)·u`,
    /// lazily reduced with the assembly ([`lazy_mul`]).
    #[inline]
    fn fast_mul(&self, rhs: &Self) -> Self {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "bmi2",
            target_feature = "adx"
        ))]
        {
            lazy_mul(self, rhs)
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "bmi2",
            target_feature = "adx"
        )))]
        {
            karatsuba(self, rhs)
        }
    }

    /// `(a0 + a1)(a0 - a1) + 2·a0·a1·u`.
    #[inline]
    fn fast_square(&self) -> Self {
        let product = self.c0.fast_mul(&self.c1);
        Fq2::new(
            self.c0
                .fast_add(&self.c1)
                .fast_mul(&self.c0.fast_sub(&self.c1)),
            product.fast_double(),
        )
    }

    #[inline(always)]
    fn fast_add(&self, rhs: &Self) -> Self {
        Fq2::new(self.c0.fast_add(&rhs.c0), self.c1.fast_add(&rhs.c1))
    }

    #[inline(always)]
    fn fast_sub(&self, rhs: &Self) -> Self {
        Fq2::new(self.c0.fast_sub(&rhs.c0), self.c1.fast_sub(&rhs.c1))
    }
}

#[cfg(test)]
mod tests {
    use ark_ff::{AdditiveGroup, BigInteger, Field, PrimeField, UniformRand, Zero};
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

    fn check<F: PrimeField + FastField>(seed: u64) {
        let edges = edges::<F>();
        for a in &edges {
            for b in &edges {
                assert_eq!(a.fast_mul(b), *a * b, "{a} · {b}");
                assert_eq!(a.fast_add(b), *a + b, "{a} + {b}");
                assert_eq!(a.fast_sub(b), *a - b, "{a} - {b}");
            }
            assert_eq!(a.fast_square(), a.square(), "{a}²");
            assert_eq!(a.fast_double(), a.double(), "2·{a}");
        }
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        for _ in 0..20_000 {
            let (a, b) = (F::rand(&mut rng), F::rand(&mut rng));
            assert_eq!(a.fast_mul(&b), a * b);
            assert_eq!(a.fast_add(&b), a + b);
            assert_eq!(a.fast_sub(&b), a - b);
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
    fn fq_arithmetic_matches_arkworks() {
        check::<Fq>(1);
    }

    #[test]
    fn nine_times_matches_arkworks() {
        let nine = Fq::from(9u64);
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let mut values = edges::<Fq>();
        values.extend((0..20_000).map(|_| Fq::rand(&mut rng)));
        for a in values {
            assert_eq!(nine_times(&a), a * nine, "9·{a}");
        }
    }

    #[test]
    fn fr_arithmetic_matches_arkworks() {
        check::<Fr>(2);
    }

    #[test]
    fn fq2_arithmetic_matches_arkworks() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let edges: Vec<Fq2> = edges::<Fq>()
            .into_iter()
            .flat_map(|a| edges::<Fq>().into_iter().map(move |b| Fq2::new(a, b)))
            .collect();
        for a in &edges {
            assert_eq!(a.fast_square(), a.square());
            for b in &edges {
                assert_eq!(a.fast_mul(b), *a * b, "{a} · {b}");
                assert_eq!(karatsuba(a, b), *a * b, "{a} · {b}");
            }
            assert_eq!(a.fast_sub(&edges[7]), *a - edges[7]);
            assert_eq!(a.fast_add(&edges[7]), *a + edges[7]);
        }
        for _ in 0..5_000 {
            let (a, b) = (Fq2::rand(&mut rng), Fq2::rand(&mut rng));
            assert_eq!(a.fast_mul(&b), a * b);
            assert_eq!(a.fast_square(), a.square());
            assert_eq!(a.fast_add(&b), a + b);
            assert_eq!(a.fast_sub(&b), a - b);
            assert_eq!(a.fast_double(), a.double());
        }
        assert!(Fq2::zero().fast_square().is_zero());
    }

    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "bmi2",
        target_feature = "adx"
    ))]
    #[test]
    fn wide_products_reduce_to_the_montgomery_product() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let mut values = edges::<Fq>();
        values.extend((0..200).map(|_| Fq::rand(&mut rng)));
        for a in &values {
            for b in values.iter().step_by(7) {
                let wide = x86::mul_wide(&a.0.0, &b.0.0);
                assert_eq!(wide, wide_product(&a.0.0, &b.0.0), "{a} · {b}");
                let reduced = Fq::new_unchecked(BigInt(x86::reduce_wide(&wide, &x86::FQ)));
                assert_eq!(reduced, *a * b, "{a} · {b}");
            }
        }
    }

    fn element<F: PrimeField>(limbs: [u64; 4]) -> F {
        F::from_le_bytes_mod_order(&BigInt(limbs).to_bytes_le())
    }

    proptest! {
        #[test]
        fn any_fq_result_matches(a in any::<[u64; 4]>(), b in any::<[u64; 4]>()) {
            let (a, b): (Fq, Fq) = (element(a), element(b));
            let product = a.fast_mul(&b);
            prop_assert!(product.0 < Fq::MODULUS);
            prop_assert_eq!(product, a * b);
            prop_assert_eq!(a.fast_add(&b), a + b);
            prop_assert_eq!(a.fast_sub(&b), a - b);
        }

        #[test]
        fn any_fr_result_matches(a in any::<[u64; 4]>(), b in any::<[u64; 4]>()) {
            let (a, b): (Fr, Fr) = (element(a), element(b));
            let product = a.fast_mul(&b);
            prop_assert!(product.0 < Fr::MODULUS);
            prop_assert_eq!(product, a * b);
            prop_assert_eq!(a.fast_add(&b), a + b);
            prop_assert_eq!(a.fast_sub(&b), a - b);
        }
    }
}
