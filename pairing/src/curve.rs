//! Curve arithmetic beside the pairing, on the assembly field: points in Jacobian coordinates
//! over Fq (G1) or Fq2 (G2), G1 products split by the GLV endomorphism, and the decoding of
//! compressed points (square roots in Fq and Fq2).
//!
//! The batch verifier weighs every proof by a random `r = w1 + λ·w2` with 64-bit halves:
//! `r·A = w1·A + w2·φ(A)`, where `φ(x, y) = (β·x, y)` costs one Fq product, takes 64 shared
//! doublings instead of the 128 a 128-bit weight needs, and no scalar decomposition. The
//! weights are as many (2^128) and as uniformly spread over their set as 128-bit ones, which
//! is what the batch check's soundness counts on.

use std::sync::OnceLock;

use ark_bn254::{Fq, Fq2, Fr, G1Affine, G1Projective, G2Affine, g1, g2};
use ark_ec::{scalar_mul::glv::GLVConfig, short_weierstrass::SWCurveConfig};
use ark_ff::{BigInt, BigInteger, Field, One, PrimeField, Zero};
use wakurln_field::FastField;

/// A field the Jacobian formulas run over.
pub(crate) trait Coordinate: FastField + Zero + One + PartialEq {}

impl Coordinate for Fq {}
impl Coordinate for Fq2 {}

/// A point of a curve `y² = x³ + b` in Jacobian coordinates: `x = X/Z²`, `y = Y/Z³`; `Z = 0`
/// is the identity.
#[derive(Clone, Copy)]
pub(crate) struct Jacobian<F> {
    pub(crate) x: F,
    pub(crate) y: F,
    pub(crate) z: F,
}

impl<F: Coordinate> Jacobian<F> {
    pub(crate) fn identity() -> Self {
        Self {
            x: F::one(),
            y: F::one(),
            z: F::zero(),
        }
    }

    pub(crate) fn from_affine(x: F, y: F) -> Self {
        Self { x, y, z: F::one() }
    }

    /// `2·self` (the curves have `a = 0`); the identity stays the identity.
    pub(crate) fn double(&self) -> Self {
        let xx = self.x.fast_square();
        let yy = self.y.fast_square();
        let yyyy = yy.fast_square();
        let d = self
            .x
            .fast_add(&yy)
            .fast_square()
            .fast_sub(&xx)
            .fast_sub(&yyyy)
            .fast_double();
        let e = xx.fast_double().fast_add(&xx);
        let x = e.fast_square().fast_sub(&d.fast_double());
        let eight_yyyy = yyyy.fast_double().fast_double().fast_double();
        Self {
            x,
            y: e.fast_mul(&d.fast_sub(&x)).fast_sub(&eight_yyyy),
            z: self.y.fast_mul(&self.z).fast_double(),
        }
    }

    /// `self + (x2, y2)` for an affine point; `None` when `self` is `±(x2, y2)` (the formula
    /// divides by zero there).
    pub(crate) fn add_affine(&self, x2: &F, y2: &F) -> Option<Self> {
        if self.z.is_zero() {
            return Some(Self::from_affine(*x2, *y2));
        }
        let zz = self.z.fast_square();
        let u2 = x2.fast_mul(&zz);
        let s2 = y2.fast_mul(&self.z).fast_mul(&zz);
        let h = u2.fast_sub(&self.x);
        if h.is_zero() {
            return None;
        }
        let hh = h.fast_square();
        let i = hh.fast_double().fast_double();
        let j = h.fast_mul(&i);
        let r = s2.fast_sub(&self.y).fast_double();
        let v = self.x.fast_mul(&i);
        let x = r.fast_square().fast_sub(&j).fast_sub(&v.fast_double());
        Some(Self {
            x,
            y: r.fast_mul(&v.fast_sub(&x))
                .fast_sub(&self.y.fast_mul(&j).fast_double()),
            z: self
                .z
                .fast_add(&h)
                .fast_square()
                .fast_sub(&zz)
                .fast_sub(&hh),
        })
    }
}

/// The sum of affine G1 points (none at infinity) by mixed additions on the assembly field;
/// an addition the formula cannot do (the running sum at `±p`) goes through arkworks.
pub fn g1_sum(points: impl IntoIterator<Item = G1Affine>) -> G1Projective {
    let mut acc = Jacobian::<Fq>::identity();
    for p in points {
        debug_assert!(!p.infinity, "table points are never the identity");
        acc = match acc.add_affine(&p.x, &p.y) {
            Some(next) => next,
            None => {
                let sum = G1Projective::new_unchecked(acc.x, acc.y, acc.z) + p;
                Jacobian {
                    x: sum.x,
                    y: sum.y,
                    z: sum.z,
                }
            }
        };
    }
    G1Projective::new_unchecked(acc.x, acc.y, acc.z)
}

/// `λ`, the scalar `φ` multiplies G1 by: `w1 + λ·w2` is the weight [`g1_weighted`] applies.
pub fn glv_lambda() -> Fr {
    <g1::Config as GLVConfig>::LAMBDA
}

/// `w1·p + w2·φ(p) = (w1 + λ·w2)·p`, by a joint double-and-add over the two 64-bit halves.
pub fn g1_weighted(p: &G1Affine, w1: u64, w2: u64) -> G1Projective {
    if p.infinity {
        return G1Projective::zero();
    }
    let beta = <g1::Config as GLVConfig>::ENDO_COEFFS[0];
    let phi_x = p.x.fast_mul(&beta);
    let mut acc = Jacobian::<Fq>::identity();
    for bit in (0..64).rev() {
        acc = acc.double();
        if (w1 >> bit) & 1 == 1 {
            let Some(next) = acc.add_affine(&p.x, &p.y) else {
                return slow_weighted(p, w1, w2);
            };
            acc = next;
        }
        if (w2 >> bit) & 1 == 1 {
            let Some(next) = acc.add_affine(&phi_x, &p.y) else {
                return slow_weighted(p, w1, w2);
            };
            acc = next;
        }
    }
    G1Projective::new_unchecked(acc.x, acc.y, acc.z)
}

/// The same product by arkworks, for the additions the fast formula cannot do (a partial
/// sum meeting `±p` or `±φ(p)`, which the shortness of the halves rules out for points of
/// order r; kept so that no input can make the result wrong).
#[cold]
fn slow_weighted(p: &G1Affine, w1: u64, w2: u64) -> G1Projective {
    *p * (Fr::from(w1) + glv_lambda() * Fr::from(w2))
}

/// `a^e` for an exponent given as little-endian limbs, by 4-bit windows.
fn pow(a: &Fq, e: &[u64; 4]) -> Fq {
    let mut table = [Fq::one(); 16];
    for i in 1..16 {
        table[i] = table[i - 1].fast_mul(a);
    }
    let mut acc = Fq::one();
    for limb in e.iter().rev() {
        for shift in (0..16).rev() {
            for _ in 0..4 {
                acc = acc.fast_square();
            }
            let nibble = ((limb >> (4 * shift)) & 15) as usize;
            if nibble != 0 {
                acc = acc.fast_mul(&table[nibble]);
            }
        }
    }
    acc
}

/// `(p + 1)/4` and `(p - 3)/4` (`p ≡ 3 mod 4`).
fn sqrt_exponents() -> &'static ([u64; 4], [u64; 4]) {
    static EXPONENTS: OnceLock<([u64; 4], [u64; 4])> = OnceLock::new();
    EXPONENTS.get_or_init(|| {
        let p = Fq::MODULUS;
        let mut plus_one = p;
        plus_one.add_with_carry(&BigInt::from(1u64));
        plus_one.div2();
        plus_one.div2();
        let mut minus_three = plus_one;
        minus_three.sub_with_borrow(&BigInt::from(1u64));
        (plus_one.0, minus_three.0)
    })
}

/// A square root of `a` in Fq, if it has one: `a^((p+1)/4)`.
fn sqrt_fq(a: &Fq) -> Option<Fq> {
    let root = pow(a, &sqrt_exponents().0);
    (root.fast_square() == *a).then_some(root)
}

/// A square root of `a = a0 + a1·u` in Fq2, if it has one, by the complex method: with
/// `λ = √(a0² + a1²)` and `δ = (a0 + λ)/2`, the root is `√δ + a1/(2√δ)·u`. One power
/// `y = δ^((p-3)/4)` gives both `√δ = y·δ` and `1/√δ = y`; when δ is not a square, `(a0 - λ)/2`
/// is, and its root `(a1/2)·y` and the other coordinate `-δ·y` come from the same `y`.
fn sqrt_fq2(a: &Fq2) -> Option<Fq2> {
    if a.c1.is_zero() {
        return match sqrt_fq(&a.c0) {
            Some(root) => Some(Fq2::new(root, Fq::zero())),
            // -1 is not a square in Fq, so -a0 is: (√(-a0)·u)² = a0.
            None => sqrt_fq(&-a.c0).map(|root| Fq2::new(Fq::zero(), root)),
        };
    }
    let lambda = sqrt_fq(&a.c0.fast_square().fast_add(&a.c1.fast_square()))?;
    let half = half();
    let delta = a.c0.fast_add(&lambda).fast_mul(&half);
    let y = pow(&delta, &sqrt_exponents().1);
    let x0 = y.fast_mul(&delta);
    let root = if x0.fast_square() == delta {
        Fq2::new(x0, a.c1.fast_mul(&half).fast_mul(&y))
    } else {
        Fq2::new(a.c1.fast_mul(&half).fast_mul(&y), -delta.fast_mul(&y))
    };
    (root.fast_square() == *a).then_some(root)
}

fn half() -> Fq {
    static HALF: OnceLock<Fq> = OnceLock::new();
    *HALF.get_or_init(|| Fq::from(2u64).inverse().expect("2 ≠ 0"))
}

/// An Fq element from 32 little-endian bytes whose top two bits carry arkworks' point flags:
/// the value (refused unless below p) and whether the flags say "infinity" or "the larger y".
/// Both flags at once are refused, as arkworks refuses them.
fn read_flagged(bytes: &[u8; 32]) -> Option<(Fq, Flag)> {
    let mut limbs = read_limbs(bytes);
    let top = limbs[3] >> 62;
    limbs[3] &= (1 << 62) - 1;
    let flag = match top {
        0 => Flag::Smaller,
        1 => Flag::Infinity,
        2 => Flag::Larger,
        _ => return None,
    };
    Some((Fq::from_bigint(BigInt(limbs))?, flag))
}

fn read_limbs(bytes: &[u8; 32]) -> [u64; 4] {
    std::array::from_fn(|i| {
        u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().expect("8 bytes"))
    })
}

/// arkworks' flags on a compressed point.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flag {
    Smaller,
    Larger,
    Infinity,
}

/// The root of the pair `±y` the flag names, in arkworks' order (for Fq2: by `c1`, then
/// `c0`).
fn pick<F: Ord + Copy + std::ops::Neg<Output = F>>(y: F, flag: Flag) -> F {
    let (smaller, larger) = if y < -y { (y, -y) } else { (-y, y) };
    if flag == Flag::Larger {
        larger
    } else {
        smaller
    }
}

/// A G1 point from arkworks' 32-byte compressed form, as `deserialize_compressed_unchecked`
/// reads it (on the curve by construction; G1 has no cofactor); `None` where arkworks fails.
pub fn g1_from_compressed(bytes: &[u8; 32]) -> Option<G1Affine> {
    let (x, flag) = read_flagged(bytes)?;
    if flag == Flag::Infinity {
        return Some(G1Affine::identity());
    }
    let rhs = x.fast_square().fast_mul(&x).fast_add(&g1::Config::COEFF_B);
    let y = sqrt_fq(&rhs)?;
    Some(G1Affine::new_unchecked(x, pick(y, flag)))
}

/// A point of the twist from arkworks' 64-byte compressed form (`c0` of x, then `c1` with the
/// flags), as `deserialize_compressed_unchecked` reads it: on the twist, not yet checked for
/// G2 membership (see [`crate::g2_in_subgroup`]).
pub fn g2_from_compressed(bytes: &[u8; 64]) -> Option<G2Affine> {
    let c0 = Fq::from_bigint(BigInt(read_limbs(
        bytes[..32].try_into().expect("32 bytes"),
    )))?;
    let (c1, flag) = read_flagged(bytes[32..].try_into().expect("32 bytes"))?;
    if flag == Flag::Infinity {
        return Some(G2Affine::identity());
    }
    let x = Fq2::new(c0, c1);
    let rhs = x.fast_square().fast_mul(&x).fast_add(&g2::Config::COEFF_B);
    let y = sqrt_fq2(&rhs)?;
    Some(G2Affine::new_unchecked(x, pick(y, flag)))
}
