//! Bucket sums in affine coordinates: the points of every bucket are added pairwise, level
//! by level, and each level shares one field inversion among all the additions of a group of
//! buckets.

use std::ops::Range;

use ark_ec::short_weierstrass::{Affine, Projective, SWCurveConfig};
use ark_ff::{AdditiveGroup, Field, One, Zero};

use wakurln_field::FastField;

use crate::BatchInvert;

/// Buckets are reduced in groups of about this many points: large enough that the level's
/// inversion is shared widely, small enough to stay in the cache through all levels.
const GROUP_POINTS: usize = 8192;

/// An affine point aligned to a cache line (a G1 point fills exactly one). `(0, 0)` stands
/// for the identity: it lies on no curve `y² = x³ + ax + b` with `b ≠ 0`, which
/// [`Point::from_affine`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub(crate) struct Point<F> {
    x: F,
    y: F,
}

impl<F: Field> Point<F> {
    pub(crate) const IDENTITY: Self = Self {
        x: F::ZERO,
        y: F::ZERO,
    };

    pub(crate) fn from_affine<P: SWCurveConfig<BaseField = F>>(point: &Affine<P>) -> Self {
        assert!(
            !P::COEFF_B.is_zero(),
            "(0, 0) marks the identity, so curves with b = 0 are not supported"
        );
        if point.infinity {
            Self::IDENTITY
        } else {
            Self {
                x: point.x,
                y: point.y,
            }
        }
    }

    fn to_affine<P: SWCurveConfig<BaseField = F>>(self) -> Affine<P> {
        if self.is_identity() {
            Affine::identity()
        } else {
            Affine::new_unchecked(self.x, self.y)
        }
    }

    fn is_identity(&self) -> bool {
        self.x.is_zero() && self.y.is_zero()
    }

    fn neg(self) -> Self {
        Self {
            x: self.x,
            y: -self.y,
        }
    }
}

/// One non-zero digit of a scalar: the table point it selects and the run it adds to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Digit {
    pub(crate) run: u32,
    pub(crate) index: u32,
}

/// Sums the buckets of `runs` (an even range): bucket `k` is the sum of the points of run
/// `runs.start + 2k` minus those of run `runs.start + 2k + 1`. `counts` has the number of
/// digits of every run. Returns `Σ (k + 1)·B_k` and `Σ B_k`.
///
/// The digits' table indices (four bytes each, so the whole list stays in the cache) are
/// first sorted by run; then each group of runs gathers its points from the table into a
/// buffer that stays in the cache while its levels are added. No point is copied twice.
pub(crate) fn sum<P: SWCurveConfig<BaseField: BatchInvert>>(
    table: &[Point<P::BaseField>],
    digits: &[Digit],
    counts: &[usize],
    runs: Range<usize>,
) -> (Projective<P>, Projective<P>) {
    let mut starts = Vec::with_capacity(runs.len() + 1);
    starts.push(0);
    for &count in &counts[runs.clone()] {
        starts.push(starts.last().copied().unwrap_or(0) + count);
    }

    let mut cursor = starts[..runs.len()].to_vec();
    let mut indices = vec![0u32; starts[runs.len()]];
    for digit in digits {
        let Some(run) = (digit.run as usize).checked_sub(runs.start) else {
            continue;
        };
        if run < runs.len() {
            indices[cursor[run]] = digit.index;
            cursor[run] += 1;
        }
    }

    let mut sums = vec![Point::IDENTITY; runs.len()];
    let mut lens = vec![0usize; runs.len()];
    let mut points = Vec::new();
    let mut scratch = Scratch::default();
    for (first, end) in groups(&starts) {
        let local: Vec<usize> = starts[first..=end]
            .iter()
            .map(|s| s - starts[first])
            .collect();
        points.clear();
        let group = &indices[starts[first]..starts[end]];
        for (k, &index) in group.iter().enumerate() {
            // Runs jump around the table, which no hardware prefetcher foresees.
            if let Some(&ahead) = group.get(k + PREFETCH_AHEAD) {
                prefetch(&table[ahead as usize]);
            }
            points.push(table[index as usize]);
        }
        for (len, k) in lens[first..end].iter_mut().zip(first..) {
            *len = counts[runs.start + k];
        }
        reduce_group::<P>(&mut points, &local, &mut lens[first..end], &mut scratch);
        for k in first..end {
            if lens[k] == 1 {
                sums[k] = points[local[k - first]];
            }
        }
    }

    // Each bucket is its positive run minus its negative run: one more batched level.
    for pair in sums.chunks_exact_mut(2) {
        pair[1] = pair[1].neg();
    }
    sum_pairs::<P>(
        sums.len() / 2,
        |k| (&sums[2 * k], &sums[2 * k + 1]),
        &mut scratch.work,
    );
    let buckets = std::mem::take(&mut scratch.work.sums);
    weigh::<P>(&buckets, &mut scratch)
}

/// `Σ (k + 1)·B_k` and `Σ B_k` over `buckets`.
///
/// One running sum (`S += B_k`, `W += S`, from the top bucket down) would be two dependent
/// additions per bucket, in Jacobian coordinates for want of anything to batch them with.
/// Instead the buckets are cut into consecutive chunks whose running sums advance in lockstep,
/// so that every step is one batch of affine additions sharing one inversion. Chunk `t` starts
/// at bucket `t·len` and ends with `S_t = Σ B_k` and `W_t = Σ (k - t·len + 1)·B_k`; the result
/// is `Σ W_t + len·Σ t·S_t`, where the last sum is a short Jacobian running sum.
fn weigh<P: SWCurveConfig<BaseField: BatchInvert>>(
    buckets: &[Point<P::BaseField>],
    scratch: &mut Scratch<P::BaseField>,
) -> (Projective<P>, Projective<P>) {
    // Balances the inversions (one per step, two steps per bucket of a chunk) against the
    // Jacobian additions that combine the chunks (three per chunk).
    let chains = (buckets.len() * 6).isqrt().clamp(1, buckets.len().max(1));
    let len = buckets.len().div_ceil(chains);
    let bucket = |t: usize, step: usize| {
        buckets
            .get(t * len + step)
            .copied()
            .unwrap_or(Point::IDENTITY)
    };
    let mut running = vec![Point::IDENTITY; chains];
    let mut weighted = vec![Point::IDENTITY; chains];
    for step in (0..len).rev() {
        add_all::<P>(&mut running, |t| bucket(t, step), scratch);
        add_all::<P>(&mut weighted, |t| running[t], scratch);
    }

    let mut total = Projective::<P>::zero();
    let mut offsets = Projective::<P>::zero();
    for sum in running.iter().skip(1).rev() {
        total += &sum.to_affine::<P>();
        offsets += &total;
    }
    if let Some(first) = running.first() {
        total += &first.to_affine::<P>();
    }
    let mut weighted_total = offsets * P::ScalarField::from(len as u64);
    for sum in &weighted {
        weighted_total += &sum.to_affine::<P>();
    }
    (weighted_total, total)
}

/// `sums[t] += other(t)` for every `t`, with one shared inversion.
fn add_all<P: SWCurveConfig<BaseField: BatchInvert>>(
    sums: &mut [Point<P::BaseField>],
    other: impl Fn(usize) -> Point<P::BaseField>,
    scratch: &mut Scratch<P::BaseField>,
) {
    let mut others = std::mem::take(&mut scratch.others);
    others.clear();
    others.extend((0..sums.len()).map(other));
    sum_pairs::<P>(sums.len(), |t| (&sums[t], &others[t]), &mut scratch.work);
    sums.copy_from_slice(&scratch.work.sums);
    scratch.others = others;
}

/// How many points ahead of the gathering loop the table is prefetched.
const PREFETCH_AHEAD: usize = 16;

/// Starts loading `value`'s cache line, without waiting for it.
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch only hints the cache: it has no effect the program can observe
        // and cannot fault; the pointer comes from a live reference anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Consecutive runs in groups of at most [`GROUP_POINTS`] points (a larger run is a group
/// of its own), as `(first, end)` run ranges.
fn groups(starts: &[usize]) -> Vec<(usize, usize)> {
    let runs = starts.len() - 1;
    let mut groups = Vec::new();
    let mut first = 0;
    while first < runs {
        let mut end = first + 1;
        while end < runs && starts[end + 1] - starts[first] <= GROUP_POINTS {
            end += 1;
        }
        groups.push((first, end));
        first = end;
    }
    groups
}

/// Halves every bucket of a group, level by level, until each holds at most one point (its
/// sum, at the bucket's start). One inversion per level serves the whole group.
fn reduce_group<P: SWCurveConfig<BaseField: BatchInvert>>(
    points: &mut [Point<P::BaseField>],
    starts: &[usize],
    lens: &mut [usize],
    scratch: &mut Scratch<P::BaseField>,
) {
    let start = |k: usize| starts[k] - starts[0];
    loop {
        // Pair t of a bucket adds its points 2t and 2t + 1 into its point t.
        scratch.pairs.clear();
        for (k, &len) in lens.iter().enumerate() {
            let first = start(k);
            scratch
                .pairs
                .extend((0..len / 2).map(|t| ((first + 2 * t) as u32, (first + t) as u32)));
        }
        if scratch.pairs.is_empty() {
            return;
        }
        let pairs = &scratch.pairs;
        sum_pairs::<P>(
            pairs.len(),
            |i| {
                let first = pairs[i].0 as usize;
                (&points[first], &points[first + 1])
            },
            &mut scratch.work,
        );
        // Every pair has read its points: the sums can go to their places.
        for (&(_, to), sum) in scratch.pairs.iter().zip(&scratch.work.sums) {
            points[to as usize] = *sum;
        }
        for (k, len) in lens.iter_mut().enumerate() {
            if *len % 2 == 1 {
                points[start(k) + *len / 2] = points[start(k) + *len - 1];
            }
            *len = len.div_ceil(2);
        }
    }
}

/// `work.sums[i] = p + q` for `(p, q) = pair(i)` and every `i < count`, with one shared
/// inversion. Pairs in general position go to the field's batched path where it has one; the
/// rest (an identity, equal x) are added one by one.
fn sum_pairs<'a, P: SWCurveConfig<BaseField: BatchInvert>>(
    count: usize,
    pair: impl Fn(usize) -> (&'a Point<P::BaseField>, &'a Point<P::BaseField>),
    work: &mut PairWork<P::BaseField>,
) {
    let PairWork {
        inverses,
        space,
        sums,
        general,
        special,
    } = work;
    sums.clear();
    sums.resize(count, Point::IDENTITY);
    general.clear();
    special.clear();
    for i in 0..count {
        let (p, q) = pair(i);
        if p.is_identity() || q.is_identity() || p.x == q.x {
            special.push(i as u32);
        } else {
            general.push(i as u32);
        }
    }
    let batched = <P::BaseField as BatchInvert>::add_general_pairs(
        general.len(),
        |i| {
            let (p, q) = pair(general[i] as usize);
            [p.x, p.y, q.x, q.y]
        },
        |i, x, y| sums[general[i] as usize] = Point { x, y },
        space,
    );
    if !batched {
        special.clear();
        special.extend(0..count as u32);
    }
    if special.is_empty() {
        return;
    }
    inverses.clear();
    inverses.extend(special.iter().map(|&i| {
        let (p, q) = pair(i as usize);
        denominator::<P>(p, q)
    }));
    P::BaseField::invert_all(inverses, space);
    for (&i, inverse) in special.iter().zip(inverses.iter()) {
        let (p, q) = pair(i as usize);
        sums[i as usize] = add::<P>(*p, *q, Some(inverse));
    }
}

/// A level's pairs, and the space their sums are made in.
struct Scratch<F: BatchInvert> {
    /// Each pair's first point and where its sum goes.
    pairs: Vec<(u32, u32)>,
    /// The points added to a weighing step's running sums.
    others: Vec<Point<F>>,
    work: PairWork<F>,
}

/// What [`sum_pairs`] works in: the sums, which pairs take which path, the denominators of
/// the one-by-one path and the space to invert them.
struct PairWork<F: BatchInvert> {
    inverses: Vec<F>,
    space: F::Space,
    sums: Vec<Point<F>>,
    general: Vec<u32>,
    special: Vec<u32>,
}

impl<F: BatchInvert> Default for Scratch<F> {
    fn default() -> Self {
        Self {
            pairs: Vec::new(),
            others: Vec::new(),
            work: PairWork {
                inverses: Vec::new(),
                space: F::Space::default(),
                sums: Vec::new(),
                general: Vec::new(),
                special: Vec::new(),
            },
        }
    }
}

/// What `add` divides by: `x_q - x_p`, or `2·y_p` to double; 1 where no division happens.
fn denominator<P: SWCurveConfig<BaseField: FastField>>(
    p: &Point<P::BaseField>,
    q: &Point<P::BaseField>,
) -> P::BaseField {
    if p.is_identity() || q.is_identity() {
        P::BaseField::one()
    } else if p.x != q.x {
        q.x.fast_sub(&p.x)
    } else if p.y == q.y {
        // y = 0 would be a point of order 2, which prime-order groups do not have.
        p.y.double()
    } else {
        P::BaseField::one()
    }
}

/// `p + q`, given the inverse of their [`denominator`].
fn add<P: SWCurveConfig<BaseField: FastField>>(
    p: Point<P::BaseField>,
    q: Point<P::BaseField>,
    inverse: Option<&P::BaseField>,
) -> Point<P::BaseField> {
    let inverse = inverse.expect("one inverse per pair");
    if p.is_identity() {
        return q;
    }
    if q.is_identity() {
        return p;
    }
    let lambda = if p.x != q.x {
        q.y.fast_sub(&p.y).fast_mul(inverse)
    } else if p.y == q.y {
        let xx = p.x.fast_square();
        (xx.double() + xx + P::COEFF_A).fast_mul(inverse)
    } else {
        // q = -p.
        return Point::IDENTITY;
    };
    let x = lambda.fast_square().fast_sub(&p.x).fast_sub(&q.x);
    let y = lambda.fast_mul(&p.x.fast_sub(&x)).fast_sub(&p.y);
    Point { x, y }
}
