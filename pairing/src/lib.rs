//! The BN254 pairing on this project's field arithmetic ([`wakurln_field`]): the optimal ate
//! Miller loop over many pairs at once, and the final exponentiation.
//!
//! Values are arkworks' types (`Fq2`, `Fq6`, `Fq12`, affine points), so results compare with
//! arkworks' pairing directly; the arithmetic on them is ours: Fq2 products in assembly,
//! Fq6 and Fq12 products by Karatsuba, Fq12 squares by the complex method, products by the sparse line values without their zero coefficients, and squares in the
//! cyclotomic subgroup by Granger and Scott's formula (three Fq4 squares).
//!
//! **Lines.** G2 points enter as [`Lines`]: the line coefficients of the Miller loop, in
//! homogeneous projective coordinates on the D-type twist (`y² = x³ + 3/ξ`, `ξ = 9 + u`). A
//! fixed point (the verifying key's) is prepared once; a proof's point is prepared per proof.
//! Each coefficient triple `(c0, c1, c2)` is evaluated at a G1 point `P` as the sparse Fq12
//! element with `c0·y_P` at `1`, `c1·x_P` at `w` and `c2` at `v·w`. A point used in many
//! pairings ([`Lines::fixed`]) and the points of a batch ([`Lines::batch`], in affine
//! coordinates with one shared inversion per step) get normalized lines, divided by `c0·y_P`:
//! the Fq2 and Fq factors this drops vanish in the final exponentiation, and a product by a
//! line with 1 at `1` costs ten Fq2 products instead of thirteen.
//!
//! **Loop.** The loop runs over the signed digits of `6x + 2` (`x = 4965661367192848881`),
//! most significant first: a square of the running value (shared by every pair), a doubling
//! line per pair, and an addition line per pair where the digit is `±1`; then two more
//! addition lines per pair with the Frobenius images `π(Q)` and `-π²(Q)`.
//!
//! **Final exponentiation.** `f^((p^12 - 1)/r)` as `f^((p^6 - 1)(p^2 + 1))` (a conjugate,
//! one inversion and a Frobenius map) followed by the hard part `(p^4 - p^2 + 1)/r` in the
//! addition chain of Fuentes-Castañeda, Knapp and Rodríguez-Henríquez, which costs three
//! exponentiations by `x` (cyclotomic squares) and a dozen products.
//!
//! **No AVX-512 lanes here.** Two uses of the IFMA lanes of `wakurln_field::ifma` were tried
//! and dropped. The cyclotomic squares' nine Fq2 squares, four per pass, were 13% faster per
//! square in a tight loop: about 2% of a verification, not worth a second code path. The
//! tower's Fq2 products, two per pass, lost more to gathering their operands into the lanes
//! than the lanes saved (an Fq12 product took 1.67 µs against 1.33 µs). The lanes pay where
//! values stay in them across many operations, as in the prover's MSM and transforms.

use std::sync::OnceLock;

use ark_bn254::{Fq, Fq2, Fq6, Fq12, G1Affine, G2Affine, G2Projective};
use ark_ff::{Field, One, PrimeField, Zero};
use wakurln_field::{FastField, nine_times};

mod curve;

use curve::Jacobian;
pub use curve::{g1_from_compressed, g1_sum, g1_weighted, g2_from_compressed, glv_lambda};

/// `x`, the BN parameter of BN254.
const X: u64 = 4_965_661_367_192_848_881;

/// `ξ = 9 + u`: `v³ = ξ`.
#[inline(always)]
fn mul_by_xi(a: &Fq2) -> Fq2 {
    // (a0 + a1·u)(9 + u) = (9·a0 - a1) + (9·a1 + a0)·u
    Fq2::new(
        nine_times(&a.c0).fast_sub(&a.c1),
        nine_times(&a.c1).fast_add(&a.c0),
    )
}

#[inline(always)]
fn mul_by_fq(a: &Fq2, s: &Fq) -> Fq2 {
    Fq2::new(a.c0.fast_mul(s), a.c1.fast_mul(s))
}

#[inline(always)]
fn add6(a: &Fq6, b: &Fq6) -> Fq6 {
    Fq6::new(
        a.c0.fast_add(&b.c0),
        a.c1.fast_add(&b.c1),
        a.c2.fast_add(&b.c2),
    )
}

#[inline(always)]
fn sub6(a: &Fq6, b: &Fq6) -> Fq6 {
    Fq6::new(
        a.c0.fast_sub(&b.c0),
        a.c1.fast_sub(&b.c1),
        a.c2.fast_sub(&b.c2),
    )
}

/// `a·v`.
#[inline(always)]
fn mul6_by_v(a: &Fq6) -> Fq6 {
    Fq6::new(mul_by_xi(&a.c2), a.c0, a.c1)
}

/// Karatsuba over the three coefficients: six Fq2 products.
#[inline]
fn mul6(a: &Fq6, b: &Fq6) -> Fq6 {
    let v0 = a.c0.fast_mul(&b.c0);
    let v1 = a.c1.fast_mul(&b.c1);
    let v2 = a.c2.fast_mul(&b.c2);
    let t12 =
        a.c1.fast_add(&a.c2)
            .fast_mul(&b.c1.fast_add(&b.c2))
            .fast_sub(&v1)
            .fast_sub(&v2);
    let t01 =
        a.c0.fast_add(&a.c1)
            .fast_mul(&b.c0.fast_add(&b.c1))
            .fast_sub(&v0)
            .fast_sub(&v1);
    let t02 =
        a.c0.fast_add(&a.c2)
            .fast_mul(&b.c0.fast_add(&b.c2))
            .fast_sub(&v0)
            .fast_sub(&v2);
    Fq6::new(
        mul_by_xi(&t12).fast_add(&v0),
        t01.fast_add(&mul_by_xi(&v2)),
        t02.fast_add(&v1),
    )
}

/// `a·(b0 + b1·v)`: five Fq2 products.
#[inline]
fn mul6_by_01(a: &Fq6, b0: &Fq2, b1: &Fq2) -> Fq6 {
    let v0 = a.c0.fast_mul(b0);
    let v1 = a.c1.fast_mul(b1);
    let cross = a.c0.fast_add(&a.c1).fast_mul(&b0.fast_add(b1));
    Fq6::new(
        mul_by_xi(&a.c2.fast_mul(b1)).fast_add(&v0),
        cross.fast_sub(&v0).fast_sub(&v1),
        v1.fast_add(&a.c2.fast_mul(b0)),
    )
}

/// Karatsuba over `w`: three Fq6 products.
#[inline]
fn mul12(a: &Fq12, b: &Fq12) -> Fq12 {
    let t0 = mul6(&a.c0, &b.c0);
    let t1 = mul6(&a.c1, &b.c1);
    let cross = mul6(&add6(&a.c0, &a.c1), &add6(&b.c0, &b.c1));
    Fq12::new(add6(&t0, &mul6_by_v(&t1)), sub6(&sub6(&cross, &t0), &t1))
}

/// `(a0 + a1·w)² = (a0 + a1)(a0 + v·a1) - a0·a1 - v·a0·a1 + 2·a0·a1·w`: two Fq6 products.
#[inline]
fn square12(a: &Fq12) -> Fq12 {
    let ab = mul6(&a.c0, &a.c1);
    let vab = mul6_by_v(&ab);
    let product = mul6(&add6(&a.c0, &a.c1), &add6(&a.c0, &mul6_by_v(&a.c1)));
    Fq12::new(sub6(&sub6(&product, &ab), &vab), add6(&ab, &ab))
}

/// `f·(c0 + c3·w + c4·v·w)`, a line value: thirteen Fq2 products instead of eighteen.
#[inline]
fn mul12_by_034(f: &Fq12, c0: &Fq2, c3: &Fq2, c4: &Fq2) -> Fq12 {
    let t0 = Fq6::new(
        f.c0.c0.fast_mul(c0),
        f.c0.c1.fast_mul(c0),
        f.c0.c2.fast_mul(c0),
    );
    let t1 = mul6_by_01(&f.c1, c3, c4);
    let cross = mul6_by_01(&add6(&f.c0, &f.c1), &c0.fast_add(c3), c4);
    Fq12::new(add6(&t0, &mul6_by_v(&t1)), sub6(&sub6(&cross, &t0), &t1))
}

/// The inverse of an element of the cyclotomic subgroup (norm 1 over Fq6): its conjugate.
#[inline]
fn conjugate(a: &Fq12) -> Fq12 {
    Fq12::new(a.c0, -a.c1)
}

/// `(a + b·s)²` in `Fq4 = Fq2[s]/(s² - ξ)`.
#[inline(always)]
fn square4(a: &Fq2, b: &Fq2) -> (Fq2, Fq2) {
    let a2 = a.fast_square();
    let b2 = b.fast_square();
    let c0 = mul_by_xi(&b2).fast_add(&a2);
    let c1 = a.fast_add(b).fast_square().fast_sub(&a2).fast_sub(&b2);
    (c0, c1)
}

/// `3·t - 2·z` and `3·t + 2·z`: how the Fq4 squares become the cyclotomic square.
#[inline(always)]
fn minus(t: &Fq2, z: &Fq2) -> Fq2 {
    t.fast_sub(z).fast_double().fast_add(t)
}

#[inline(always)]
fn plus(t: &Fq2, z: &Fq2) -> Fq2 {
    t.fast_add(z).fast_double().fast_add(t)
}

/// The square of an element of the cyclotomic subgroup (Granger-Scott): Fq12 seen as `Fq4³`,
/// three Fq4 squares (six Fq2 squares).
#[inline]
fn cyclotomic_square(f: &Fq12) -> Fq12 {
    // The three Fq4 elements: (g0, h1), (h0, g2), (g1, h2).
    let (g, h) = (&f.c0, &f.c1);
    let (a0, a1) = square4(&g.c0, &h.c1);
    let (b0, b1) = square4(&h.c0, &g.c2);
    let (c0, c1) = square4(&g.c1, &h.c2);
    let xi_c1 = mul_by_xi(&c1);
    Fq12::new(
        Fq6::new(minus(&a0, &g.c0), minus(&b0, &g.c1), minus(&c0, &g.c2)),
        Fq6::new(plus(&xi_c1, &h.c0), plus(&a1, &h.c1), plus(&b1, &h.c2)),
    )
}

/// The signed binary digits of `n` (no two adjacent non-zero), least significant first.
fn naf(mut n: u128) -> Vec<i8> {
    let mut digits = Vec::new();
    while n > 0 {
        if n & 1 == 1 {
            let digit = 2 - (n & 3) as i8;
            digits.push(digit);
            if digit == 1 {
                n -= 1;
            } else {
                n += 1;
            }
        } else {
            digits.push(0);
        }
        n >>= 1;
    }
    digits
}

fn x_digits() -> &'static [i8] {
    static DIGITS: OnceLock<Vec<i8>> = OnceLock::new();
    DIGITS.get_or_init(|| naf(u128::from(X)))
}

/// The Miller loop's signed digits of `6x + 2`, least significant first.
fn loop_digits() -> &'static [i8] {
    static DIGITS: OnceLock<Vec<i8>> = OnceLock::new();
    DIGITS.get_or_init(|| {
        // The NAF starts 1, 0, -1 (4 - 1); writing that 3 as 1, 1 saves a doubling.
        let mut digits = naf(6 * u128::from(X) + 2);
        let top = digits.len() - 1;
        if digits[top - 2..] == [-1, 0, 1] {
            digits.truncate(top);
            digits[top - 2] = 1;
            digits[top - 1] = 1;
        }
        digits
    })
}

/// Width of the signed windows of `x` in [`exp_by_x`].
const X_WINDOW: u32 = 4;

/// The width-4 signed digits of `x` (odd digits in `±{1, 3, 5, 7}` at least four places
/// apart), least significant first: 14 non-zero digits where the NAF has 24.
fn x_window_digits() -> &'static [i8] {
    static DIGITS: OnceLock<Vec<i8>> = OnceLock::new();
    DIGITS.get_or_init(|| {
        let mut n = u128::from(X);
        let mut digits = Vec::new();
        let modulus = 1i128 << X_WINDOW;
        while n > 0 {
            if n & 1 == 1 {
                let mut digit = (n % modulus as u128) as i128;
                if digit >= modulus / 2 {
                    digit -= modulus;
                }
                digits.push(digit as i8);
                n = (n as i128 - digit) as u128;
            } else {
                digits.push(0);
            }
            n >>= 1;
        }
        digits
    })
}

/// `f^x` for `f` in the cyclotomic subgroup, by signed windows: `f`, `f³`, `f⁵`, `f⁷` first,
/// then a cyclotomic square per digit and a product per non-zero one (16 products where the
/// NAF takes 23; a negative digit takes the conjugate, the inverse there).
fn exp_by_x(f: &Fq12) -> Fq12 {
    let f2 = cyclotomic_square(f);
    let mut odd = [*f; 4];
    for i in 1..4 {
        odd[i] = mul12(&odd[i - 1], &f2);
    }
    let power = |digit: i8| {
        let p = odd[(digit.unsigned_abs() / 2) as usize];
        if digit < 0 { conjugate(&p) } else { p }
    };
    let digits = x_window_digits();
    let mut result = power(*digits.last().expect("x > 0"));
    for &digit in digits.iter().rev().skip(1) {
        result = cyclotomic_square(&result);
        if digit != 0 {
            result = mul12(&result, &power(digit));
        }
    }
    result
}

/// `f^(-x)` for `f` in the cyclotomic subgroup.
fn exp_by_neg_x(f: &Fq12) -> Fq12 {
    conjugate(&exp_by_x(f))
}

fn frobenius(f: &Fq12, power: usize) -> Fq12 {
    let mut out = *f;
    out.frobenius_map_in_place(power);
    out
}

/// `f^((p^12 - 1)/r)`; `None` when `f` is zero (no Miller loop gives it).
pub fn final_exponentiation(f: &Fq12) -> Option<Fq12> {
    // Easy part: f^((p^6 - 1)(p^2 + 1)) lands in the cyclotomic subgroup.
    let inverse = f.inverse()?;
    let r = mul12(&conjugate(f), &inverse);
    let r = mul12(&frobenius(&r, 2), &r);
    // Hard part, (p^4 - p^2 + 1)/r, by the Fuentes-Castañeda-Knapp-Rodríguez-Henríquez chain.
    let y0 = exp_by_neg_x(&r);
    let y1 = cyclotomic_square(&y0);
    let y2 = cyclotomic_square(&y1);
    let y3 = mul12(&y2, &y1);
    let y4 = exp_by_neg_x(&y3);
    let y5 = cyclotomic_square(&y4);
    let y6 = conjugate(&exp_by_neg_x(&y5));
    let y3 = conjugate(&y3);
    let y7 = mul12(&y6, &y4);
    let y8 = mul12(&y7, &y3);
    let y9 = mul12(&y8, &y1);
    let y10 = mul12(&y8, &y4);
    let y11 = mul12(&y10, &r);
    let y13 = mul12(&frobenius(&y9, 1), &y11);
    let y14 = mul12(&frobenius(&y8, 2), &y13);
    let y15 = frobenius(&mul12(&conjugate(&r), &y9), 3);
    Some(mul12(&y15, &y14))
}

/// One line's coefficients.
type Line = (Fq2, Fq2, Fq2);

/// An affine point of the twist as its coordinates.
type Xy = (Fq2, Fq2);

/// The line coefficients of one G2 point for the Miller loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines {
    /// In loop order: a doubling line per digit, an addition line after each non-zero digit,
    /// then the two Frobenius addition lines. Empty for the point at infinity.
    coeffs: Vec<Line>,
    /// Whether every line is divided by its first coefficient: `(1, -λ, λ·x_S - y_S)` for the
    /// line of slope λ through a point S. Such a line times `1/y_P` (an Fq factor, which the
    /// final exponentiation removes) multiplies into the Miller loop's value by ten Fq2
    /// products instead of thirteen.
    normalized: bool,
    /// Whether the point is in G2, read off the loop's last point (see [`Lines::in_g2`]).
    in_g2: bool,
}

/// A G2 point in homogeneous projective coordinates `(X : Y : Z)`, `x = X/Z`, `y = Y/Z`.
struct Projective {
    x: Fq2,
    y: Fq2,
    z: Fq2,
}

/// `b' = 3/ξ`, the twist's constant.
fn twist_b() -> Fq2 {
    static B: OnceLock<Fq2> = OnceLock::new();
    *B.get_or_init(|| {
        let xi = Fq2::new(Fq::from(9u64), Fq::one());
        Fq2::new(Fq::from(3u64), Fq::zero()) * xi.inverse().expect("ξ ≠ 0")
    })
}

fn half() -> Fq {
    static HALF: OnceLock<Fq> = OnceLock::new();
    *HALF.get_or_init(|| Fq::from(2u64).inverse().expect("2 ≠ 0"))
}

impl Projective {
    /// `self = 2·self`, and the tangent line's coefficients.
    fn double(&mut self) -> Line {
        let half = half();
        let xy_half = mul_by_fq(&self.x.fast_mul(&self.y), &half);
        let yy = self.y.fast_square();
        let zz = self.z.fast_square();
        let e = twist_b().fast_mul(&zz.fast_double().fast_add(&zz));
        let f = e.fast_double().fast_add(&e);
        let g = mul_by_fq(&yy.fast_add(&f), &half);
        let h = self
            .y
            .fast_add(&self.z)
            .fast_square()
            .fast_sub(&yy.fast_add(&zz));
        let xx = self.x.fast_square();
        let ee = e.fast_square();
        self.x = xy_half.fast_mul(&yy.fast_sub(&f));
        self.y = g.fast_square().fast_sub(&ee.fast_double().fast_add(&ee));
        self.z = yy.fast_mul(&h);
        (-h, xx.fast_double().fast_add(&xx), e.fast_sub(&yy))
    }

    /// `self = self + q`, and the chord's coefficients.
    fn add(&mut self, q: &G2Affine) -> Line {
        let theta = self.y.fast_sub(&q.y.fast_mul(&self.z));
        let lambda = self.x.fast_sub(&q.x.fast_mul(&self.z));
        let tt = theta.fast_square();
        let ll = lambda.fast_square();
        let lll = lambda.fast_mul(&ll);
        let ztt = self.z.fast_mul(&tt);
        let xll = self.x.fast_mul(&ll);
        let h = lll.fast_add(&ztt).fast_sub(&xll.fast_double());
        let j = theta.fast_mul(&q.x).fast_sub(&lambda.fast_mul(&q.y));
        self.x = lambda.fast_mul(&h);
        self.y = theta
            .fast_mul(&xll.fast_sub(&h))
            .fast_sub(&lll.fast_mul(&self.y));
        self.z = self.z.fast_mul(&lll);
        (lambda, -theta, j)
    }
}

/// `-π³(q)`: where the Miller loop's point ends for a `q` in G2 (see [`Lines::in_g2`]).
fn loop_end_in_g2(q: &G2Affine) -> G2Affine {
    -frobenius_point(&frobenius_point(&frobenius_point(q)))
}

/// `π(q)`: the Frobenius endomorphism on the twist, `(x^p·γ_x, y^p·γ_y)`.
fn frobenius_point(q: &G2Affine) -> G2Affine {
    let (gx, gy) = frobenius_twist();
    let mut x = q.x;
    x.conjugate_in_place();
    let mut y = q.y;
    y.conjugate_in_place();
    G2Affine::new_unchecked(x.fast_mul(&gx), y.fast_mul(&gy))
}

/// `ξ^((p-1)/3)` and `ξ^((p-1)/2)`.
fn frobenius_twist() -> (Fq2, Fq2) {
    static GAMMA: OnceLock<(Fq2, Fq2)> = OnceLock::new();
    *GAMMA.get_or_init(|| {
        let xi = Fq2::new(Fq::from(9u64), Fq::one());
        (xi.pow(p_minus_one_over(3)), xi.pow(p_minus_one_over(2)))
    })
}

/// `(p - 1)/k` as little-endian limbs (`k` divides `p - 1`).
fn p_minus_one_over(k: u64) -> [u64; 4] {
    let mut limbs = Fq::MODULUS.0;
    limbs[0] -= 1; // p is odd: no borrow
    let mut rem = 0u128;
    for limb in limbs.iter_mut().rev() {
        let current = (rem << 64) | u128::from(*limb);
        *limb = (current / u128::from(k)) as u64;
        rem = current % u128::from(k);
    }
    assert_eq!(rem, 0, "{k} divides p - 1");
    limbs
}

impl Lines {
    /// The lines of `q` (expected on the curve and in the subgroup), in projective
    /// coordinates: no inversion, for a point used once.
    pub fn new(q: &G2Affine) -> Self {
        if q.infinity {
            return Self::infinity();
        }
        let digits = loop_digits();
        let mut coeffs = Vec::with_capacity(digits.len() + 24);
        let neg_q = -*q;
        let mut r = Projective {
            x: q.x,
            y: q.y,
            z: Fq2::one(),
        };
        for digit in digits.iter().rev().skip(1) {
            coeffs.push(r.double());
            match digit {
                1 => coeffs.push(r.add(q)),
                -1 => coeffs.push(r.add(&neg_q)),
                _ => {}
            }
        }
        let q1 = frobenius_point(q);
        let q2 = -frobenius_point(&q1);
        coeffs.push(r.add(&q1));
        coeffs.push(r.add(&q2));
        // r is a point (Z ≠ 0) only if no step met a degenerate case; then it is exactly
        // [6x+2]Q + π(Q) - π²(Q), and Q is in G2 when that is -π³(Q).
        let q3 = loop_end_in_g2(q);
        let in_g2 = !r.z.is_zero() && r.x == q3.x.fast_mul(&r.z) && r.y == q3.y.fast_mul(&r.z);
        Self {
            coeffs,
            normalized: false,
            in_g2,
        }
    }

    fn infinity() -> Self {
        Self {
            coeffs: Vec::new(),
            normalized: true,
            in_g2: true,
        }
    }

    /// Whether the point these lines belong to lies in G2 (the identity does), for a point
    /// known to be on the twist. The lines cost the check almost nothing: the loop ends at
    /// `T = [6x+2]Q + π(Q) - π²(Q)`, and `[6x+2]Q + π(Q) - π²(Q) + π³(Q) = O` holds exactly
    /// for the points of G2. It holds on G2 because `6x + 2 + p - p² + p³` is a multiple of r
    /// and π acts there as p. Off G2 it fails: the twist's group is G2 times a cyclic group of
    /// squarefree order `2p - r = 10069 · 5864401 · 1875725156269 · ℓ` (ℓ a 54-digit prime),
    /// on whose part of order `q` π acts as a root `μ` of `μ² - tμ + p` mod `q`, and
    /// `6x + 2 + μ - μ² + μ³` is non-zero mod `q` for both roots of all four primes (the
    /// tests check a point of each order). A step that meets a degenerate case (a partial sum
    /// `±Q`, which only points of small order can reach) counts as not in G2; callers that
    /// must tell those apart use [`g2_in_subgroup`]. It replaces a separate subgroup check,
    /// which costs about as much as a sixth of the lines.
    pub fn in_g2(&self) -> bool {
        self.in_g2
    }

    /// The lines of a point used in many pairings (a verifying key's): the projective lines,
    /// each divided by its first coefficient (one inversion for all of them), so every
    /// Miller loop multiplies by them more cheaply.
    pub fn fixed(q: &G2Affine) -> Self {
        let mut projective = Self::new(q);
        let mut scratch = Scratch::default();
        let Some(inverses) = scratch.invert(projective.coeffs.iter().map(|line| line.0)) else {
            // A zero first coefficient, which points of G2 never give.
            return projective;
        };
        for (line, inverse) in projective.coeffs.iter_mut().zip(inverses) {
            *line = (
                Fq2::one(),
                line.1.fast_mul(inverse),
                line.2.fast_mul(inverse),
            );
        }
        projective.normalized = true;
        projective
    }

    /// The lines of many points at once, in affine coordinates: every doubling or addition
    /// step of all the points shares one field inversion (Montgomery's trick), which makes a
    /// step cheaper than in projective coordinates, and the lines come out normalized. For
    /// the proofs of a batch.
    pub fn batch(qs: &[G2Affine]) -> Vec<Self> {
        let live: Vec<G2Affine> = qs.iter().filter(|q| !q.infinity).copied().collect();
        let Some((mut lines, ends)) = affine_lines(&live) else {
            // A step met a zero denominator, which points of G2 never give.
            return qs.iter().map(Self::new).collect();
        };
        let mut live_lines = lines.drain(..).zip(ends);
        qs.iter()
            .map(|q| {
                if q.infinity {
                    Self::infinity()
                } else {
                    let (coeffs, end) = live_lines.next().expect("one set of lines per live point");
                    let q3 = loop_end_in_g2(q);
                    Self {
                        coeffs,
                        normalized: true,
                        in_g2: end == (q3.x, q3.y),
                    }
                }
            })
            .collect()
    }

    /// Whether the point was the identity (its pairings are 1).
    pub fn is_infinity(&self) -> bool {
        self.coeffs.is_empty()
    }
}

/// The normalized lines of every point of `qs` (none the identity), computed side by side in
/// affine coordinates, and the point each loop ends at; `None` if a step would divide by zero.
fn affine_lines(qs: &[G2Affine]) -> Option<(Vec<Vec<Line>>, Vec<Xy>)> {
    let digits = loop_digits();
    let mut lines: Vec<Vec<Line>> = qs
        .iter()
        .map(|_| Vec::with_capacity(digits.len() + 24))
        .collect();
    let mut points: Vec<(Fq2, Fq2)> = qs.iter().map(|q| (q.x, q.y)).collect();
    let mut scratch = Scratch::default();
    let plus: Vec<(Fq2, Fq2)> = qs.iter().map(|q| (q.x, q.y)).collect();
    let minus: Vec<(Fq2, Fq2)> = qs.iter().map(|q| (q.x, -q.y)).collect();
    for digit in digits.iter().rev().skip(1) {
        // 2T, with the tangent's line: λ = 3x²/2y.
        let inverses = scratch.invert(points.iter().map(|t| t.1.fast_double()))?;
        for ((t, inverse), out) in points.iter_mut().zip(inverses).zip(lines.iter_mut()) {
            let xx = t.0.fast_square();
            let lambda = xx.fast_double().fast_add(&xx).fast_mul(inverse);
            let x = lambda.fast_square().fast_sub(&t.0.fast_double());
            let y = lambda.fast_mul(&t.0.fast_sub(&x)).fast_sub(&t.1);
            out.push((Fq2::one(), -lambda, lambda.fast_mul(&t.0).fast_sub(&t.1)));
            *t = (x, y);
        }
        match digit {
            1 => add_step(&mut points, &mut lines, &plus, &mut scratch)?,
            -1 => add_step(&mut points, &mut lines, &minus, &mut scratch)?,
            _ => {}
        }
    }
    let q1: Vec<G2Affine> = qs.iter().map(frobenius_point).collect();
    let q1_xy: Vec<(Fq2, Fq2)> = q1.iter().map(|q| (q.x, q.y)).collect();
    let q2_xy: Vec<(Fq2, Fq2)> = q1
        .iter()
        .map(|q| {
            let q2 = -frobenius_point(q);
            (q2.x, q2.y)
        })
        .collect();
    add_step(&mut points, &mut lines, &q1_xy, &mut scratch)?;
    add_step(&mut points, &mut lines, &q2_xy, &mut scratch)?;
    Some((lines, points))
}

/// Buffers for the batch inversions of [`affine_lines`].
#[derive(Default)]
struct Scratch {
    values: Vec<Fq2>,
    space: <Fq2 as wakurln_msm::BatchInvert>::Space,
}

impl Scratch {
    /// The inverses of `values`, or `None` if one is zero.
    fn invert(&mut self, values: impl Iterator<Item = Fq2>) -> Option<&[Fq2]> {
        self.values.clear();
        self.values.extend(values);
        if self.values.iter().any(Zero::is_zero) {
            return None;
        }
        <Fq2 as wakurln_msm::BatchInvert>::invert_all(&mut self.values, &mut self.space);
        Some(&self.values)
    }
}

/// `T + S` for every point T of `points` and its S in `others`, with the chord's line.
fn add_step(
    points: &mut [(Fq2, Fq2)],
    lines: &mut [Vec<Line>],
    others: &[(Fq2, Fq2)],
    scratch: &mut Scratch,
) -> Option<()> {
    let inverses = scratch.invert(points.iter().zip(others).map(|(t, s)| t.0.fast_sub(&s.0)))?;
    for (((t, s), inverse), out) in points
        .iter_mut()
        .zip(others)
        .zip(inverses)
        .zip(lines.iter_mut())
    {
        let lambda = t.1.fast_sub(&s.1).fast_mul(inverse);
        let x = lambda.fast_square().fast_sub(&t.0).fast_sub(&s.0);
        let y = lambda.fast_mul(&t.0.fast_sub(&x)).fast_sub(&t.1);
        out.push((Fq2::one(), -lambda, lambda.fast_mul(&s.0).fast_sub(&s.1)));
        *t = (x, y);
    }
    Some(())
}

/// `f·ℓ(P)` for a projective line.
#[inline]
fn evaluate(f: &Fq12, line: &Line, p: &G1Affine) -> Fq12 {
    mul12_by_034(
        f,
        &mul_by_fq(&line.0, &p.y),
        &mul_by_fq(&line.1, &p.x),
        &line.2,
    )
}

/// `f·ℓ(P)/y_P` for a normalized line, given `x_P/y_P` and `1/y_P`: `f·(1 + (a + b·v)·w)`
/// is `f0 + v·f1·(a + b·v) + (f1 + f0·(a + b·v))·w`, two products by two-coefficient Fq6
/// elements.
#[inline]
fn evaluate_normalized(f: &Fq12, line: &Line, x_over_y: &Fq, one_over_y: &Fq) -> Fq12 {
    let a = mul_by_fq(&line.1, x_over_y);
    let b = mul_by_fq(&line.2, one_over_y);
    let f1_l = mul6_by_01(&f.c1, &a, &b);
    let f0_l = mul6_by_01(&f.c0, &a, &b);
    Fq12::new(add6(&f.c0, &mul6_by_v(&f1_l)), add6(&f.c1, &f0_l))
}

/// A pair as the Miller loop evaluates it: the point's values its lines need.
struct Evaluation<'a> {
    lines: &'a [Line],
    /// `(y, x)` for projective lines, `(x/y, 1/y)` for normalized ones.
    values: (Fq, Fq),
    normalized: bool,
}

impl Evaluation<'_> {
    #[inline]
    fn apply(&self, f: &Fq12, n: usize) -> Fq12 {
        let line = &self.lines[n];
        if self.normalized {
            evaluate_normalized(f, line, &self.values.0, &self.values.1)
        } else {
            let p = G1Affine::new_unchecked(self.values.1, self.values.0);
            evaluate(f, line, &p)
        }
    }
}

/// `Π f_{6x+2,Q_i}(P_i)` with the Frobenius lines: the product of the pairs' Miller loops,
/// one square per digit for all pairs. Pairs with an identity point are left out.
pub fn multi_miller_loop(pairs: &[(G1Affine, &Lines)]) -> Fq12 {
    let live: Vec<&(G1Affine, &Lines)> = pairs
        .iter()
        .filter(|(p, q)| !p.infinity && !q.is_infinity())
        .collect();
    // 1/y_P for the pairs with normalized lines, in one inversion (no point of G1 has y = 0:
    // its order would be 2).
    let mut inverses: Vec<Fq> = live
        .iter()
        .filter(|(_, q)| q.normalized)
        .map(|(p, _)| p.y)
        .collect();
    <Fq as wakurln_msm::BatchInvert>::invert_all(&mut inverses, &mut Default::default());
    let mut inverses = inverses.into_iter();
    let pairs: Vec<Evaluation<'_>> = live
        .iter()
        .map(|(p, q)| {
            let values = if q.normalized {
                let one_over_y = inverses.next().expect("one inverse per normalized pair");
                (p.x.fast_mul(&one_over_y), one_over_y)
            } else {
                (p.y, p.x)
            };
            Evaluation {
                lines: &q.coeffs,
                values,
                normalized: q.normalized,
            }
        })
        .collect();
    let mut next = vec![0usize; pairs.len()];
    let mut f = Fq12::one();
    let digits = loop_digits();
    for (i, digit) in digits.iter().rev().skip(1).enumerate() {
        if i > 0 {
            f = square12(&f);
        }
        let steps = if *digit == 0 { 1 } else { 2 };
        for _ in 0..steps {
            for (pair, n) in pairs.iter().zip(next.iter_mut()) {
                f = pair.apply(&f, *n);
                *n += 1;
            }
        }
    }
    for _ in 0..2 {
        for (pair, n) in pairs.iter().zip(next.iter_mut()) {
            f = pair.apply(&f, *n);
            *n += 1;
        }
    }
    f
}

/// `Π e(P_i, Q_i)`.
pub fn pairing_product(pairs: &[(G1Affine, &Lines)]) -> Option<Fq12> {
    final_exponentiation(&multi_miller_loop(pairs))
}

/// `[x]q`, `None` in the degenerate cases of the addition formula.
fn mul_by_x(q: &G2Affine) -> Option<G2Projective> {
    let neg_q = -*q;
    let mut acc = Jacobian::from_affine(q.x, q.y);
    for digit in x_digits().iter().rev().skip(1) {
        acc = acc.double();
        match digit {
            1 => acc = acc.add_affine(&q.x, &q.y)?,
            -1 => acc = acc.add_affine(&neg_q.x, &neg_q.y)?,
            _ => {}
        }
    }
    Some(G2Projective::new_unchecked(acc.x, acc.y, acc.z))
}

/// `ψ` on a projective point: the Frobenius endomorphism on the twist.
fn psi(p: &G2Projective) -> G2Projective {
    let (gx, gy) = frobenius_twist();
    let (mut x, mut y, mut z) = (p.x, p.y, p.z);
    x.conjugate_in_place();
    y.conjugate_in_place();
    z.conjugate_in_place();
    G2Projective::new_unchecked(x.fast_mul(&gx), y.fast_mul(&gy), z)
}

/// Whether `q`, a point of the twist, is in the prime-order subgroup G2: by the test of Dai,
/// Lin, Zhao and Zhou for BN curves, `[x+1]Q + ψ([x]Q) + ψ²([x]Q) = ψ³([2x]Q)`, which needs
/// one 63-bit multiplication where checking `ψ(Q) = [6x²]Q` needs a 127-bit one.
pub fn g2_in_subgroup(q: &G2Affine) -> bool {
    use ark_ec::AffineRepr;
    if q.infinity {
        return true;
    }
    let Some(xq) = mul_by_x(q) else {
        // [x]Q met ±Q on the way: not a point of order r. Leave the verdict to the slow test.
        return q.is_in_correct_subgroup_assuming_on_curve();
    };
    let psi_xq = psi(&xq);
    let lhs = xq + q.into_group() + psi_xq + psi(&psi_xq);
    let rhs = psi(&psi(&psi(&(xq + xq))));
    lhs == rhs
}

#[cfg(test)]
mod tests;
