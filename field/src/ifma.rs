//! Eight Fq products at once with AVX-512 IFMA (`vpmadd52luq`/`vpmadd52huq`), for the batch
//! inversions of the bucket sums.
//!
//! A value is held as five 52-bit limbs, one per lane of five 512-bit registers, so one pass of
//! the Montgomery multiplication serves eight independent products. The Montgomery radix is
//! `2^260` here, not the `2^256` of the 64-bit form, and the two forms share their bits: the
//! 64-bit form of `a` (the integer `a·2^256 mod p`) read in 52-bit limbs is the 52-bit form of
//! `a·2^-4`. Batch inversion works on those values directly and corrects the factor once, on
//! the shared inverse, so nothing is converted but the limb layout.
//!
//! Products are left in `[0, 2p)` (the radix is above `4p`, so inputs below `2p` keep them
//! there); only results that leave this module are reduced below `p`.
//!
//! The instructions are chosen at run time: CPUs without AVX-512 IFMA (or a process run with
//! `WAKURLN_NO_IFMA` set) take the 64-bit path.
#![allow(unsafe_code)]
// Limb loops index their arrays: the lanes' helpers avoid closures (see `add_lanes`).
#![allow(clippy::needless_range_loop)]

use core::arch::x86_64::{
    __m512i, _mm512_add_epi64, _mm512_and_si512, _mm512_cmplt_epi64_mask, _mm512_loadu_si512,
    _mm512_madd52hi_epu64, _mm512_madd52lo_epu64, _mm512_mask_blend_epi64, _mm512_or_si512,
    _mm512_permutex2var_epi64, _mm512_set1_epi64, _mm512_setzero_si512, _mm512_slli_epi64,
    _mm512_srai_epi64, _mm512_srli_epi64, _mm512_storeu_si512, _mm512_sub_epi64,
};
use std::sync::OnceLock;

use ark_bn254::{Fq, Fq2, FqConfig, Fr, FrConfig};
use ark_ff::{BigInt, Field, Fp256, MontBackend, MontConfig, One};

use crate::FastField;

const MASK: u64 = (1 << 52) - 1;

/// Four 64-bit limbs as five 52-bit ones.
const fn radix52(limbs: [u64; 4]) -> [u64; 5] {
    [
        limbs[0] & MASK,
        (limbs[0] >> 52 | limbs[1] << 12) & MASK,
        (limbs[1] >> 40 | limbs[2] << 24) & MASK,
        (limbs[2] >> 28 | limbs[3] << 36) & MASK,
        limbs[3] >> 16,
    ]
}

/// A field whose products run in lanes: its modulus in 52-bit limbs.
pub trait Modulus {
    /// The modulus `p` in 52-bit limbs.
    const P: [u64; 5];
    /// `-p⁻¹ mod 2^52`.
    const P_INV: u64;
}

impl Modulus for Fq {
    const P: [u64; 5] = radix52(<FqConfig as MontConfig<4>>::MODULUS.0);
    const P_INV: u64 = <FqConfig as MontConfig<4>>::INV & MASK;
}

impl Modulus for Fr {
    const P: [u64; 5] = radix52(<FrConfig as MontConfig<4>>::MODULUS.0);
    const P_INV: u64 = <FrConfig as MontConfig<4>>::INV & MASK;
}

/// Below this many values, the 64-bit path is as fast.
pub const MIN_BATCH: usize = 64;

/// Whether this process uses the IFMA path: the CPU has AVX-512 F and IFMA, and
/// `WAKURLN_NO_IFMA` is not set.
pub fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| supported() && std::env::var_os("WAKURLN_NO_IFMA").is_none())
}

/// Whether the CPU has the instructions this module needs.
pub fn supported() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512ifma")
}

/// Eight values in 52-bit limbs, limb `j` of lane `k` in `limbs[j]`'s lane `k`.
#[derive(Clone, Copy)]
struct Lanes([__m512i; 5]);

/// Space kept between batch inversions: the running products of every step.
#[derive(Debug, Default)]
pub struct InvertSpace {
    prefixes: Vec<[[u64; 8]; 5]>,
}

/// Replaces every value of `values` by its inverse, eight lanes at a time, if [`enabled`]
/// (and returns whether it did). Each lane runs its own Montgomery trick over every eighth
/// value; the eight lane products are inverted together with one field inversion.
///
/// # Panics
/// If a value is zero.
pub fn invert(values: &mut [Fq], space: &mut InvertSpace) -> bool {
    if !enabled() {
        return false;
    }
    // SAFETY: `enabled` checked that the CPU has AVX-512 F and IFMA.
    unsafe { invert_lanes(values, space) };
    true
}

/// The Montgomery trick in eight lanes. Lane `k` of step `s` holds `values[8s + k]`; missing
/// values of the last step are ones.
#[target_feature(enable = "avx512f,avx512ifma")]
unsafe fn invert_lanes(values: &mut [Fq], space: &mut InvertSpace) {
    let len = values.len();
    let steps = len.div_ceil(8);
    space.prefixes.clear();
    let mut running = one();
    for chunk in values.chunks(8) {
        space.prefixes.push(running.store());
        running = mul::<Fq>(&running, &load(chunk));
    }
    // Every result is the 52-bit form of 2^-8·a'^-1 = 2^-4·a^-1 (see `invert_totals`), whose
    // bits are the 64-bit form of a^-1.
    let [mut inverse] = invert_totals::<Fq, 1>(&[running], Fq::one());
    for step in (0..steps).rev() {
        let chunk = &mut values[8 * step..(8 * step + 8).min(len)];
        let value = load(chunk);
        let prefix = Lanes::load(&space.prefixes[step]);
        let result = from_lanes(&reduce::<Fq>(&mul::<Fq>(&inverse, &prefix)));
        for (k, out) in chunk.iter_mut().enumerate() {
            *out = element(&result, k);
        }
        inverse = mul::<Fq>(&inverse, &value);
    }
}

/// The 52-bit form of one: `2^260 mod p`, the 64-bit form of 16.
#[target_feature(enable = "avx512f")]
fn one() -> Lanes {
    splat(radix52(Fq::from(16u64).0.0))
}

/// Zero in every lane.
#[target_feature(enable = "avx512f")]
fn zero() -> Lanes {
    splat([0; 5])
}

/// The inverses of eight lane products `t` (each part below `2p`), times `2^-8·scale`.
///
/// Lane `k`'s product `Π a'_i` is held as the integer `Π a'_i · 2^260` (part by part). Read as
/// a 64-bit form, that integer stands for `q = Π a'_i · 2^4`, whose inverse's 64-bit form is
/// `(Π a'_i)^-1 · 2^252`: the 52-bit form of `2^-8·(Π a'_i)^-1`. Starting a backward pass
/// from it scales every inverse by the same factor, which the callers fold into their
/// formulas.
#[target_feature(enable = "avx512f")]
fn invert_totals<F: LaneField<N>, const N: usize>(t: &Parts<N>, scale: Fq) -> Parts<N> {
    let totals = t.map(|part| from_lanes(&reduce::<Fq>(&part)));
    let mut products: [F; 8] =
        std::array::from_fn(|k| F::from_parts(std::array::from_fn(|i| element(&totals[i], k))));
    invert_eight(&mut products);
    let scaled = products.map(|product| product.parts().map(|part| part.fast_mul(&scale)));
    std::array::from_fn(|i| {
        let mut limbs = [[0u64; 8]; 4];
        for (k, value) in scaled.iter().enumerate() {
            for (j, limb) in value[i].0.0.into_iter().enumerate() {
                limbs[j][k] = limb;
            }
        }
        to_lanes(&limbs)
    })
}

/// Space kept between calls of [`add_pairs`]: each step's running product and denominators.
#[derive(Debug, Default)]
pub struct AddSpace {
    prefixes: Vec<[[[u64; 8]; 5]; 2]>,
    denominators: Vec<[[[u64; 8]; 5]; 2]>,
}

/// A base field whose values run in `N` sets of lanes: Fq in one, Fq2 in two (its parts).
pub trait LaneField<const N: usize>: Field + FastField {
    /// The parts of the value, each an Fq value.
    fn parts(&self) -> [Fq; N];
    /// The value of `parts`.
    fn from_parts(parts: [Fq; N]) -> Self;
}

impl LaneField<1> for Fq {
    fn parts(&self) -> [Fq; 1] {
        [*self]
    }

    fn from_parts([value]: [Fq; 1]) -> Self {
        value
    }
}

impl LaneField<2> for Fq2 {
    fn parts(&self) -> [Fq; 2] {
        [self.c0, self.c1]
    }

    fn from_parts([c0, c1]: [Fq; 2]) -> Self {
        Fq2::new(c0, c1)
    }
}

/// Adds `count` pairs of affine points of a curve over Fq or Fq2, eight lanes at a time, if
/// [`enabled`] and the batch is large enough (and returns whether it did). `pair(i)` gives
/// `[x1, y1, x2, y2]`; `out(i, x, y)` receives the sum. All pairs share one inversion.
///
/// Every pair must be in general position: neither point the identity and `x1 ≠ x2` (a pair
/// with equal x panics; the caller adds the others, which are rare, on its own).
pub fn add_pairs<F: LaneField<N>, const N: usize>(
    count: usize,
    pair: impl Fn(usize) -> [F; 4],
    mut out: impl FnMut(usize, F, F),
    space: &mut AddSpace,
) -> bool {
    if !enabled() || count < MIN_BATCH {
        return false;
    }
    // SAFETY: `enabled` checked that the CPU has AVX-512 F and IFMA.
    unsafe { add_lanes::<F, N>(count, &pair, &mut out, space) };
    true
}

/// A value of Fq or Fq2 in eight lanes: one set of lanes per part.
type Parts<const N: usize> = [Lanes; N];

/// The chord rule in eight lanes, on values of the 52-bit form (`a' = a/16` for the stored
/// bits of `a`, part by part). With the inverses scaled to `(1/4)·(x2' - x1')^-1`, the slope
/// comes out as `λ/4`, and `x3' = (λ/4)² - x1' - x2'`, `y3' = (λ/4)·4(x1' - x3') - y1'`: both
/// sums stay in the same form, so they are stored bits without conversion.
#[target_feature(enable = "avx512f,avx512ifma")]
unsafe fn add_lanes<F: LaneField<N>, const N: usize>(
    count: usize,
    pair: &impl Fn(usize) -> [F; 4],
    out: &mut impl FnMut(usize, F, F),
    space: &mut AddSpace,
) {
    let steps = count.div_ceil(8);
    space.prefixes.clear();
    space.denominators.clear();
    let mut running: Parts<N> = [zero(); N];
    running[0] = one();
    // (No closures handed to generic helpers such as `array::map` in this module: they lose
    // the target features, and whether the compiler still inlines them varies from build to
    // build; a build where it did not made proofs a quarter slower.)
    let store = |value: &Parts<N>| {
        let mut stored = [[[0u64; 8]; 5]; 2];
        for i in 0..N {
            stored[i] = value[i].store();
        }
        stored
    };
    let fetch = |stored: &[[[u64; 8]; 5]; 2]| -> Parts<N> {
        let mut parts = [zero(); N];
        for i in 0..N {
            parts[i] = Lanes::load(&stored[i]);
        }
        parts
    };
    for step in 0..steps {
        let [x1, x2] = gather(step, count, |i| {
            let [x1, _, x2, _] = pair(i);
            [x1, x2]
        });
        let mut denominator = x2;
        for i in 0..N {
            denominator[i] = sub::<Fq>(&x2[i], &x1[i]);
        }
        space.prefixes.push(store(&running));
        space.denominators.push(store(&denominator));
        running = mul_parts(&running, &denominator);
    }
    let mut inverse = invert_totals::<F, N>(&running, Fq::from(64u64));
    let (p, two_p, four_p) = (multiple::<Fq>(1), multiple::<Fq>(2), multiple::<Fq>(4));
    for step in (0..steps).rev() {
        let inverse_here = mul_parts(&inverse, &fetch(&space.prefixes[step]));
        inverse = mul_parts(&inverse, &fetch(&space.denominators[step]));

        let [x1, y1, x2, y2] = gather(step, count, pair);
        let mut rise = y2;
        for i in 0..N {
            rise[i] = sub::<Fq>(&y2[i], &y1[i]);
        }
        let slope = mul_parts(&rise, &inverse_here);
        // x3 < 6p before the reductions.
        let mut x3 = mul_parts(&slope, &slope);
        for i in 0..N {
            let t = sub::<Fq>(&sub::<Fq>(&x3[i], &x1[i]), &x2[i]);
            x3[i] = subtract_if_above(
                &subtract_if_above(&subtract_if_above(&t, &four_p), &two_p),
                &p,
            );
        }
        // 4·((x1 - x3 + p) mod p) < 4p keeps every product below 2p.
        let mut run = x1;
        for i in 0..N {
            run[i] = times_four(&subtract_if_above(
                &add_p::<Fq>(&sub_canonical(&x1[i], &x3[i])),
                &p,
            ));
        }
        let mut y3 = mul_parts(&slope, &run);
        for i in 0..N {
            let t = add_p::<Fq>(&sub_canonical(&y3[i], &y1[i]));
            y3[i] = subtract_if_above(&subtract_if_above(&t, &two_p), &p);
        }
        let mut x3_limbs = [[[0u64; 8]; 4]; N];
        let mut y3_limbs = [[[0u64; 8]; 4]; N];
        for i in 0..N {
            x3_limbs[i] = from_lanes(&x3[i]);
            y3_limbs[i] = from_lanes(&y3[i]);
        }
        let (x3, y3) = (x3_limbs, y3_limbs);
        for k in 0..8.min(count - 8 * step) {
            out(
                8 * step + k,
                F::from_parts(std::array::from_fn(|i| element(&x3[i], k))),
                F::from_parts(std::array::from_fn(|i| element(&y3[i], k))),
            );
        }
    }
}

/// Products of values of Fq (one part) or Fq2 (two: Karatsuba's three products with
/// `u² = -1`), each part in `[0, 2p)` for parts below `4p`.
#[target_feature(enable = "avx512f,avx512ifma")]
#[inline]
fn mul_parts<const N: usize>(a: &Parts<N>, b: &Parts<N>) -> Parts<N> {
    let mut out = *a;
    if N == 1 {
        out[0] = mul::<Fq>(&a[0], &b[0]);
        return out;
    }
    let (two_p, four_p) = (multiple::<Fq>(2), multiple::<Fq>(4));
    let real = mul::<Fq>(&a[0], &b[0]);
    let imaginary = mul::<Fq>(&a[1], &b[1]);
    let cross = mul::<Fq>(
        &normalize(add_limbs(&a[0].0, &a[1].0)),
        &normalize(add_limbs(&b[0].0, &b[1].0)),
    );
    // real·real - imaginary·imaginary + 2p < 4p; cross - both + 4p < 6p.
    out[0] = subtract_if_above(&sub::<Fq>(&real, &imaginary), &two_p);
    let c1 = normalize(sub_limbs(
        &sub_limbs(&add_limbs(&cross.0, &four_p.0), &real.0),
        &imaginary.0,
    ));
    out[1] = subtract_if_above(&subtract_if_above(&c1, &four_p), &two_p);
    out
}

/// `a + b` limb by limb, not normalized.
#[target_feature(enable = "avx512f")]
#[inline]
fn add_limbs(a: &[__m512i; 5], b: &[__m512i; 5]) -> [__m512i; 5] {
    let mut t = *a;
    for j in 0..5 {
        t[j] = _mm512_add_epi64(a[j], b[j]);
    }
    t
}

/// `a - b` limb by limb, not normalized (limbs may go negative).
#[target_feature(enable = "avx512f")]
#[inline]
fn sub_limbs(a: &[__m512i; 5], b: &[__m512i; 5]) -> [__m512i; 5] {
    let mut t = *a;
    for j in 0..5 {
        t[j] = _mm512_sub_epi64(a[j], b[j]);
    }
    t
}

/// Step `step`'s values of `values(i)` in lanes (each an Fq or Fq2 value, part by part);
/// missing lanes take the filler pair `(0, 0), (1, 0)`'s values.
// Lane k's limbs are written across the transposed buffer.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx512f")]
fn gather<F: LaneField<N>, const N: usize, const C: usize>(
    step: usize,
    count: usize,
    values: impl Fn(usize) -> [F; C],
) -> [Parts<N>; C] {
    let mut limbs = [[[[0u64; 8]; 4]; N]; C];
    for k in 0..8 {
        let i = 8 * step + k;
        if i >= count {
            // Distinct x (0 and 1) keep the filler's denominator non-zero.
            for (c, value) in limbs.iter_mut().enumerate() {
                let filler = if c == C / 2 {
                    Fq::one()
                } else {
                    Fq::from(0u64)
                };
                for (j, limb) in filler.0.0.into_iter().enumerate() {
                    value[0][j][k] = limb;
                }
            }
            continue;
        }
        for (c, value) in values(i).iter().enumerate() {
            for (part, parts) in value.parts().iter().zip(limbs[c].iter_mut()) {
                for (j, limb) in part.0.0.into_iter().enumerate() {
                    parts[j][k] = limb;
                }
            }
        }
    }
    let mut out = [[zero(); N]; C];
    for c in 0..C {
        for i in 0..N {
            out[c][i] = to_lanes(&limbs[c][i]);
        }
    }
    out
}

/// A transform's twiddle table (`table[h + j]` for the level of half-size `h`) in 52-bit form,
/// eight values to a step, for [`dif_levels`] and [`dit_levels`].
#[derive(Debug, Clone, Default)]
pub struct LaneTwiddles {
    steps: Vec<[[u64; 8]; 5]>,
}

impl LaneTwiddles {
    /// The table's values in 52-bit form (the 64-bit form of `16·ω` is the 52-bit form of ω).
    pub fn new(table: &[Fr]) -> Self {
        let sixteen = Fr::from(16u64);
        let steps = table
            .chunks(8)
            .map(|chunk| {
                let mut limbs = [[0u64; 8]; 5];
                for (k, twiddle) in chunk.iter().enumerate() {
                    for (j, limb) in radix52(twiddle.fast_mul(&sixteen).0.0)
                        .into_iter()
                        .enumerate()
                    {
                        limbs[j][k] = limb;
                    }
                }
                limbs
            })
            .collect();
        Self { steps }
    }
}

/// What [`coset_move`] needs: both directions' twiddles and the shift, in 52-bit form.
#[derive(Debug, Clone)]
pub struct CosetPlan {
    inverse: LaneTwiddles,
    forward: LaneTwiddles,
    scale: LaneTwiddles,
    /// The twiddles of the levels of half-size 4, 2 and 1, laid out as their butterflies'
    /// lanes take them (the same for every pair of steps): inverse, then forward.
    inner: [[Lanes52; 3]; 2],
}

/// One value per lane, stored: the 52-bit limbs of eight values.
type Lanes52 = [[u64; 8]; 5];

impl CosetPlan {
    /// The plan for the transform whose twiddle tables (`table[h + j] = ω^(±j·n/2h)`) and
    /// per-position factors (`scale[i]`) are given; `None` below 16 values, where the lanes
    /// have nothing to gain.
    pub fn new(inverse: &[Fr], forward: &[Fr], scale: &[Fr]) -> Option<Self> {
        if scale.len() < 16 || inverse.len() != scale.len() || forward.len() != scale.len() {
            return None;
        }
        let inner = |table: &[Fr]| {
            INNER_HALVES.map(|half| {
                let positions = inner_positions(half);
                let values: Vec<Fr> = (0..8)
                    .map(|lane| table[half + positions[lane % 4] % (2 * half)])
                    .collect();
                LaneTwiddles::new(&values).steps[0]
            })
        };
        Some(Self {
            inner: [inner(inverse), inner(forward)],
            inverse: LaneTwiddles::new(inverse),
            forward: LaneTwiddles::new(forward),
            scale: LaneTwiddles::new(scale),
        })
    }
}

/// The half-sizes of the levels that stay inside one step of eight values.
const INNER_HALVES: [usize; 3] = [4, 2, 1];

/// The positions (within a step of eight) of the butterflies' low halves at half-size `half`.
fn inner_positions(half: usize) -> [usize; 4] {
    let mut positions = [0; 4];
    for (slot, position) in positions
        .iter_mut()
        .zip((0..8).filter(|p| p % (2 * half) < half))
    {
        *slot = position;
    }
    positions
}

/// Moves the values of a polynomial from the `n`-th roots of unity to the coset, as
/// `CosetFft::domain_to_coset` does (decimation in frequency, the per-position factor,
/// decimation in time), every level in lanes, if [`enabled`] and `n ≥ 16` (and returns
/// whether it did). The levels inside one step of eight values pair two steps' lanes with
/// permutations, so their butterflies fill whole registers too.
pub fn coset_move(values: &mut [Fr], plan: &CosetPlan) -> bool {
    let n = values.len();
    if !enabled() || n < 16 || !n.is_power_of_two() || plan.scale.steps.len() != n / 8 {
        return false;
    }
    // SAFETY: `enabled` checked that the CPU has AVX-512 F and IFMA.
    unsafe { coset_lanes(values, plan) };
    true
}

#[target_feature(enable = "avx512f,avx512ifma")]
unsafe fn coset_lanes(values: &mut [Fr], plan: &CosetPlan) {
    let n = values.len();
    let mut steps: Vec<Lanes52> = values.chunks(8).map(|c| load(c).store()).collect();
    let get = |step: &Lanes52| Lanes::load(step);
    let two_p = multiple::<Fr>(2);
    let frequency = |lo: &Lanes, hi: &Lanes, twiddle: &Lanes| {
        (
            add_below(lo, hi, &two_p),
            mul::<Fr>(&sub::<Fr>(lo, hi), twiddle),
        )
    };
    let time = |lo: &Lanes, hi: &Lanes, twiddle: &Lanes| {
        let v = mul::<Fr>(hi, twiddle);
        (
            add_below(lo, &v, &two_p),
            subtract_if_above(&sub::<Fr>(lo, &v), &two_p),
        )
    };

    let mut half = n / 2;
    while half >= 8 {
        outer_level(&mut steps, half, &plan.inverse, &get, &frequency);
        half /= 2;
    }
    for (level, &half) in INNER_HALVES.iter().enumerate() {
        inner_level(
            &mut steps,
            half,
            &get(&plan.inner[0][level]),
            &get,
            &frequency,
        );
    }
    for (step, scale) in steps.iter_mut().zip(&plan.scale.steps) {
        *step = mul::<Fr>(&get(step), &get(scale)).store();
    }
    for (level, &half) in INNER_HALVES.iter().enumerate().rev() {
        inner_level(&mut steps, half, &get(&plan.inner[1][level]), &get, &time);
    }
    let mut half = 8;
    while half < n {
        outer_level(&mut steps, half, &plan.forward, &get, &time);
        half *= 2;
    }

    for (chunk, step) in values.chunks_mut(8).zip(&steps) {
        let reduced = from_lanes(&reduce::<Fr>(&get(step)));
        for (k, value) in chunk.iter_mut().enumerate() {
            *value = Fr::new_unchecked(BigInt(lane_of(&reduced, k)));
        }
    }
}

/// One level of half-size 8 or more: each butterfly pairs a step with the step `half/8`
/// later, lane by lane.
#[target_feature(enable = "avx512f")]
fn outer_level(
    steps: &mut [Lanes52],
    half: usize,
    twiddles: &LaneTwiddles,
    get: &impl Fn(&Lanes52) -> Lanes,
    butterfly: &impl Fn(&Lanes, &Lanes, &Lanes) -> (Lanes, Lanes),
) {
    let n = steps.len() * 8;
    for block in (0..n).step_by(2 * half) {
        for j in (0..half).step_by(8) {
            let (lo_at, hi_at) = ((block + j) / 8, (block + half + j) / 8);
            let twiddle = get(&twiddles.steps[(half + j) / 8]);
            let (lo, hi) = butterfly(&get(&steps[lo_at]), &get(&steps[hi_at]), &twiddle);
            steps[lo_at] = lo.store();
            steps[hi_at] = hi.store();
        }
    }
}

/// One level of half-size 4, 2 or 1, whose butterflies stay inside a step: two steps' low
/// halves are permuted into one register and their high halves into another, and back.
#[target_feature(enable = "avx512f")]
fn inner_level(
    steps: &mut [Lanes52],
    half: usize,
    twiddle: &Lanes,
    get: &impl Fn(&Lanes52) -> Lanes,
    butterfly: &impl Fn(&Lanes, &Lanes, &Lanes) -> (Lanes, Lanes),
) {
    // Lane L of the low register is the first step's lane positions[L] (L < 4) or the
    // second's positions[L - 4] (index 8 + position); the high one is `half` further on.
    let positions = inner_positions(half);
    let low: [i64; 8] = std::array::from_fn(|l| (8 * (l / 4) + positions[l % 4]) as i64);
    let high = low.map(|i| i + half as i64);
    // Back: position p of the first step is low lane k (index k) or high lane k (8 + k),
    // where positions[k] = p or p - half; the second step's, lanes 4 + k.
    let back = |second: usize| -> [i64; 8] {
        std::array::from_fn(|p| {
            let (k, from_high) = match positions.iter().position(|&q| q == p) {
                Some(k) => (k, false),
                None => (
                    positions
                        .iter()
                        .position(|&q| q + half == p)
                        .expect("every position is in a low or a high half"),
                    true,
                ),
            };
            (4 * second + k + 8 * usize::from(from_high)) as i64
        })
    };
    let index = |lanes: [i64; 8]| {
        let mut stored = [0u64; 8];
        for (slot, lane) in stored.iter_mut().zip(lanes) {
            *slot = lane as u64;
        }
        load_u64(&stored)
    };
    let (low, high, first, second) = (index(low), index(high), index(back(0)), index(back(1)));
    let permute = |a: &Lanes, b: &Lanes, index: __m512i| {
        let mut t = a.0;
        for j in 0..5 {
            t[j] = _mm512_permutex2var_epi64(a.0[j], index, b.0[j]);
        }
        Lanes(t)
    };
    for pair in steps.chunks_exact_mut(2) {
        let (a, b) = (get(&pair[0]), get(&pair[1]));
        let (lo, hi) = butterfly(&permute(&a, &b, low), &permute(&a, &b, high), twiddle);
        pair[0] = permute(&lo, &hi, first).store();
        pair[1] = permute(&lo, &hi, second).store();
    }
}

/// `a + b`, less `m` if that is not negative (for `a + b < 2m`).
#[target_feature(enable = "avx512f")]
fn add_below(a: &Lanes, b: &Lanes, m: &Lanes) -> Lanes {
    subtract_if_above(&normalize(add_limbs(&a.0, &b.0)), m)
}

/// Eight values of four 64-bit limbs (limb `j` of lane `k` at `[j][k]`) in 52-bit limbs.
#[target_feature(enable = "avx512f")]
fn to_lanes(limbs: &[[u64; 8]; 4]) -> Lanes {
    let (v0, v1) = (load_u64(&limbs[0]), load_u64(&limbs[1]));
    let (v2, v3) = (load_u64(&limbs[2]), load_u64(&limbs[3]));
    let mask = _mm512_set1_epi64(MASK as i64);
    Lanes([
        _mm512_and_si512(v0, mask),
        _mm512_and_si512(
            _mm512_or_si512(_mm512_srli_epi64::<52>(v0), _mm512_slli_epi64::<12>(v1)),
            mask,
        ),
        _mm512_and_si512(
            _mm512_or_si512(_mm512_srli_epi64::<40>(v1), _mm512_slli_epi64::<24>(v2)),
            mask,
        ),
        _mm512_and_si512(
            _mm512_or_si512(_mm512_srli_epi64::<28>(v2), _mm512_slli_epi64::<36>(v3)),
            mask,
        ),
        _mm512_srli_epi64::<16>(v3),
    ])
}

/// Eight values (below 2^256) in four 64-bit limbs, limb `j` of lane `k` at `[j][k]`.
#[target_feature(enable = "avx512f")]
fn from_lanes(a: &Lanes) -> [[u64; 8]; 4] {
    let [l0, l1, l2, l3, l4] = a.0;
    let limbs = [
        _mm512_or_si512(l0, _mm512_slli_epi64::<52>(l1)),
        _mm512_or_si512(_mm512_srli_epi64::<12>(l1), _mm512_slli_epi64::<40>(l2)),
        _mm512_or_si512(_mm512_srli_epi64::<24>(l2), _mm512_slli_epi64::<28>(l3)),
        _mm512_or_si512(_mm512_srli_epi64::<36>(l3), _mm512_slli_epi64::<16>(l4)),
    ];
    let mut out = [[0u64; 8]; 4];
    for (limbs, register) in out.iter_mut().zip(limbs) {
        // SAFETY: `limbs` is 64 writable bytes; the store has no alignment requirement.
        unsafe { _mm512_storeu_si512(limbs.as_mut_ptr().cast(), register) };
    }
    out
}

/// Lane `k` of values stored by [`from_lanes`].
fn element(limbs: &[[u64; 8]; 4], k: usize) -> Fq {
    Fq::new_unchecked(BigInt(lane_of(limbs, k)))
}

/// The four limbs of lane `k`.
fn lane_of(limbs: &[[u64; 8]; 4], k: usize) -> [u64; 4] {
    std::array::from_fn(|j| limbs[j][k])
}

/// `k·p` in every lane (limbs may exceed 52 bits; only used in sums that are normalized).
#[target_feature(enable = "avx512f")]
fn multiple<M: Modulus>(k: u64) -> Lanes {
    let mut limbs = M::P;
    for limb in &mut limbs {
        *limb *= k;
    }
    splat(limbs)
}

/// `a - b + 2p`, for `b ≤ 2p`.
#[target_feature(enable = "avx512f")]
fn sub<M: Modulus>(a: &Lanes, b: &Lanes) -> Lanes {
    let two_p = multiple::<M>(2);
    normalize(sub_limbs(&add_limbs(&a.0, &two_p.0), &b.0))
}

/// `a - b`, for `b ≤ a + p` (the result may be up to `p` below zero, and is then fixed by the
/// caller adding `p` with [`add_p`]; limbs carry the sign until then).
#[target_feature(enable = "avx512f")]
fn sub_canonical(a: &Lanes, b: &Lanes) -> [__m512i; 5] {
    sub_limbs(&a.0, &b.0)
}

/// `t + p`, normalized.
#[target_feature(enable = "avx512f")]
fn add_p<M: Modulus>(t: &[__m512i; 5]) -> Lanes {
    let p = multiple::<M>(1);
    normalize(add_limbs(t, &p.0))
}

/// `4a`, normalized.
#[target_feature(enable = "avx512f")]
fn times_four(a: &Lanes) -> Lanes {
    let mut t = a.0;
    for limb in &mut t {
        *limb = _mm512_slli_epi64::<2>(*limb);
    }
    normalize(t)
}

/// `a - m` where that is not negative, else `a`.
#[target_feature(enable = "avx512f")]
fn subtract_if_above(a: &Lanes, m: &Lanes) -> Lanes {
    let difference = normalize(sub_limbs(&a.0, &m.0));
    // A negative difference (its top limb's sign bit set) means a < m: keep a.
    let borrowed = _mm512_cmplt_epi64_mask(difference.0[4], _mm512_setzero_si512());
    let mut t = a.0;
    for j in 0..5 {
        t[j] = _mm512_mask_blend_epi64(borrowed, difference.0[j], a.0[j]);
    }
    Lanes(t)
}

/// Inverts eight non-zero values with one field inversion.
fn invert_eight<F: Field + FastField>(values: &mut [F; 8]) {
    crate::invert_batch(values, &mut Vec::with_capacity(8));
}

/// Lane `k` of stored limbs.
#[cfg(test)]
fn lane(limbs: &[[u64; 8]; 5], k: usize) -> [u64; 5] {
    std::array::from_fn(|j| limbs[j][k])
}

/// Five 52-bit limbs (the value below 2^256) as four 64-bit ones.
#[cfg(test)]
fn unradix52(l: [u64; 5]) -> [u64; 4] {
    [
        l[0] | l[1] << 52,
        l[1] >> 12 | l[2] << 40,
        l[2] >> 24 | l[3] << 28,
        l[3] >> 36 | l[4] << 16,
    ]
}

/// Up to eight values (ones for the missing lanes) in lanes.
// Lane k's limbs are written across the transposed buffer.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx512f")]
fn load<C: MontConfig<4>>(values: &[Fp256<MontBackend<C, 4>>]) -> Lanes {
    let one = Fp256::<MontBackend<C, 4>>::one();
    let mut limbs = [[0u64; 8]; 4];
    for k in 0..8 {
        let value = values.get(k).unwrap_or(&one);
        for (j, limb) in value.0.0.into_iter().enumerate() {
            limbs[j][k] = limb;
        }
    }
    to_lanes(&limbs)
}

#[target_feature(enable = "avx512f")]
fn load_u64(limbs: &[u64; 8]) -> __m512i {
    // SAFETY: `limbs` is 64 readable bytes; the load has no alignment requirement.
    unsafe { _mm512_loadu_si512(limbs.as_ptr().cast()) }
}

#[target_feature(enable = "avx512f")]
fn splat(limbs: [u64; 5]) -> Lanes {
    let mut t = [_mm512_setzero_si512(); 5];
    for j in 0..5 {
        t[j] = _mm512_set1_epi64(limbs[j] as i64);
    }
    Lanes(t)
}

impl Lanes {
    /// Values stored by [`Lanes::store`].
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn load(limbs: &[[u64; 8]; 5]) -> Self {
        let mut t = [_mm512_setzero_si512(); 5];
        for j in 0..5 {
            t[j] = load_u64(&limbs[j]);
        }
        Lanes(t)
    }

    #[target_feature(enable = "avx512f")]
    fn store(&self) -> [[u64; 8]; 5] {
        let mut out = [[0u64; 8]; 5];
        for (limbs, register) in out.iter_mut().zip(self.0) {
            // SAFETY: `limbs` is 64 writable bytes; the store has no alignment requirement.
            unsafe { _mm512_storeu_si512(limbs.as_mut_ptr().cast(), register) };
        }
        out
    }
}

/// `a·b·2^-260 mod p` in `[0, 2p)` in every lane, for `a, b < 2p` with 52-bit limbs.
///
/// Operand scanning: each of the five rounds adds `a_i·b` and then `m·p` with `m` chosen to
/// clear the lowest limb, and drops that limb. The limbs' high bits collect carries (at most
/// 20 products of 52 bits each, well inside 64 bits) that are propagated once at the end.
#[target_feature(enable = "avx512f,avx512ifma")]
#[inline]
fn mul<M: Modulus>(a: &Lanes, b: &Lanes) -> Lanes {
    let zero = _mm512_setzero_si512();
    let p = splat(M::P).0;
    let p_inv = _mm512_set1_epi64(M::P_INV as i64);
    let mut t = [zero; 6];
    for &a_i in &a.0 {
        for j in 0..5 {
            t[j] = _mm512_madd52lo_epu64(t[j], a_i, b.0[j]);
            t[j + 1] = _mm512_madd52hi_epu64(t[j + 1], a_i, b.0[j]);
        }
        let m = _mm512_madd52lo_epu64(zero, t[0], p_inv);
        for j in 0..5 {
            t[j] = _mm512_madd52lo_epu64(t[j], m, p[j]);
            t[j + 1] = _mm512_madd52hi_epu64(t[j + 1], m, p[j]);
        }
        // The low 52 bits of t[0] are now zero; what is above them carries into t[1].
        let carry = _mm512_srli_epi64::<52>(t[0]);
        t = [_mm512_add_epi64(t[1], carry), t[2], t[3], t[4], t[5], zero];
    }
    normalize([t[0], t[1], t[2], t[3], t[4]])
}

/// Carries every limb's bits above 52 into the next one (signed: a limb may be negative).
#[target_feature(enable = "avx512f")]
#[inline]
fn normalize(mut t: [__m512i; 5]) -> Lanes {
    let mask = _mm512_set1_epi64(MASK as i64);
    for j in 0..4 {
        t[j + 1] = _mm512_add_epi64(t[j + 1], _mm512_srai_epi64::<52>(t[j]));
        t[j] = _mm512_and_si512(t[j], mask);
    }
    Lanes(t)
}

/// `a mod p` for `a < 2p`.
#[target_feature(enable = "avx512f")]
#[inline]
fn reduce<M: Modulus>(a: &Lanes) -> Lanes {
    subtract_if_above(a, &multiple::<M>(1))
}

#[cfg(test)]
mod tests {
    use ark_bn254::{G1Affine, G2Affine};
    use ark_ec::{
        AffineRepr, CurveGroup,
        short_weierstrass::{Affine, SWCurveConfig},
    };
    use ark_ff::{UniformRand, Zero};
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    #[test]
    fn limbs_round_trip() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        for _ in 0..1000 {
            let value = Fq::rand(&mut rng).0.0;
            assert_eq!(unradix52(radix52(value)), value);
        }
    }

    /// Products in lanes match arkworks' (the bits read as the 52-bit form).
    #[test]
    fn lane_products_match_arkworks() {
        if !supported() {
            eprintln!("this CPU has no AVX-512 IFMA: only the 64-bit path can be checked here");
            return;
        }
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        // 2^-4: the factor between the forms.
        let shift = Fq::from(16u64).inverse().expect("16 is invertible");
        for round in 0..500 {
            let mut a: Vec<Fq> = (0..8).map(|_| Fq::rand(&mut rng)).collect();
            let b: Vec<Fq> = (0..8).map(|_| Fq::rand(&mut rng)).collect();
            if round == 0 {
                a[0] = Fq::zero();
                a[1] = -Fq::one();
                a[2] = Fq::one();
            }
            // SAFETY: the CPU has the instructions (checked above).
            let product = unsafe { reduce::<Fq>(&mul::<Fq>(&load(&a), &load(&b))).store() };
            for k in 0..8 {
                let got = Fq::new_unchecked(BigInt(unradix52(lane(&product, k))));
                assert_eq!(got, a[k] * b[k] * shift, "lane {k}");
            }
        }
    }

    #[test]
    fn batches_invert_like_arkworks() {
        if !supported() {
            eprintln!("this CPU has no AVX-512 IFMA: only the 64-bit path can be checked here");
            return;
        }
        let mut rng = ChaCha20Rng::seed_from_u64(13);
        let mut space = InvertSpace::default();
        for len in [0, 1, 7, 8, 9, 64, 65, 1000] {
            let values: Vec<Fq> = (0..len).map(|_| Fq::rand(&mut rng)).collect();
            let mut inverted = values.clone();
            // SAFETY: the CPU has the instructions (checked above).
            unsafe { invert_lanes(&mut inverted, &mut space) };
            for (value, inverse) in values.iter().zip(&inverted) {
                assert_eq!(
                    *inverse,
                    value.inverse().expect("random values are non-zero")
                );
            }
        }
        let mut ones = vec![Fq::one(), -Fq::one(), Fq::one(), Fq::from(2u64)];
        // SAFETY: as above.
        unsafe { invert_lanes(&mut ones, &mut space) };
        assert_eq!(ones[..3], [Fq::one(), -Fq::one(), Fq::one()]);
    }

    /// Sums of `count` pairs from `pairs` through the lanes, against arkworks'.
    fn check_pairs<C, const N: usize>(
        counts: &[usize],
        mut pairs: impl FnMut(usize) -> (Affine<C>, Affine<C>),
    ) where
        C: SWCurveConfig<BaseField: LaneField<N>>,
    {
        if !supported() {
            eprintln!("this CPU has no AVX-512 IFMA: only the 64-bit path can be checked here");
            return;
        }
        let mut space = AddSpace::default();
        for &count in counts {
            let points: Vec<_> = (0..count).map(&mut pairs).collect();
            let mut sums = vec![None; count];
            // SAFETY: the CPU has the instructions (checked above).
            unsafe {
                add_lanes::<C::BaseField, N>(
                    count,
                    &|i| [points[i].0.x, points[i].0.y, points[i].1.x, points[i].1.y],
                    &mut |i, x, y| sums[i] = Some((x, y)),
                    &mut space,
                )
            };
            for (i, (p, q)) in points.iter().enumerate() {
                let expected = (*p + *q).into_affine();
                let (x, y) = expected.xy().expect("random points do not cancel");
                assert_eq!(sums[i], Some((x, y)), "pair {i} of {count}");
            }
        }
    }

    #[test]
    fn pairs_add_like_arkworks() {
        let mut rng = ChaCha20Rng::seed_from_u64(14);
        check_pairs::<ark_bn254::g1::Config, 1>(&[64, 65, 71, 300], |i| {
            let p = G1Affine::rand(&mut rng);
            // Some pairs where one point is a small multiple of the other.
            let q = if i % 5 == 0 {
                (p * Fr::from(3u64)).into_affine()
            } else {
                G1Affine::rand(&mut rng)
            };
            (p, q)
        });
    }

    #[test]
    fn g2_pairs_add_like_arkworks() {
        let mut rng = ChaCha20Rng::seed_from_u64(16);
        check_pairs::<ark_bn254::g2::Config, 2>(&[64, 67, 200], |_| {
            (G2Affine::rand(&mut rng), G2Affine::rand(&mut rng))
        });
    }
}
