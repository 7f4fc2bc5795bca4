//! Bucket sums in affine coordinates: the points of every bucket are added pairwise, level
//! by level, and each level shares one field inversion among all the additions of a group of
//! buckets.

use ark_ec::short_weierstrass::{Affine, Projective, SWCurveConfig};
use ark_ff::{AdditiveGroup, Field, One, Zero};

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

/// Sums buckets whose points come in two runs: bucket `k` is
/// `Σ points[starts[2k]..starts[2k + 1]] - Σ points[starts[2k + 1]..starts[2k + 2]]`. Returns
/// `Σ (k + 1)·B_k` and `Σ B_k`.
pub(crate) fn sum<P: SWCurveConfig>(
    mut points: Vec<Point<P::BaseField>>,
    starts: &[usize],
) -> (Projective<P>, Projective<P>) {
    let runs = starts.len() - 1;
    let mut lens: Vec<usize> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    let mut scratch = Scratch::default();
    let mut first = 0;
    while first < runs {
        let mut end = first + 1;
        while end < runs && starts[end + 1] - starts[first] <= GROUP_POINTS {
            end += 1;
        }
        reduce_group::<P>(
            &mut points[starts[first]..starts[end]],
            &starts[first..=end],
            &mut lens[first..end],
            &mut scratch,
        );
        first = end;
    }

    // Each bucket is its positive run minus its negative run: one more batched level.
    let run = |k: usize| {
        if lens[k] == 1 {
            points[starts[k]]
        } else {
            Point::IDENTITY
        }
    };
    let pairs: Vec<(Point<_>, Point<_>)> = (0..runs / 2)
        .map(|k| (run(2 * k), run(2 * k + 1).neg()))
        .collect();
    scratch.inverses.clear();
    scratch
        .inverses
        .extend(pairs.iter().map(|(p, q)| denominator::<P>(p, q)));
    scratch.invert_all();

    let mut running = Projective::<P>::zero();
    let mut weighted = Projective::<P>::zero();
    for ((p, q), inverse) in pairs.into_iter().zip(&scratch.inverses).rev() {
        running += &add::<P>(p, q, Some(inverse)).to_affine::<P>();
        weighted += &running;
    }
    (weighted, running)
}

/// Halves every bucket of a group, level by level, until each holds at most one point (its
/// sum, at the bucket's start). One inversion per level serves the whole group.
fn reduce_group<P: SWCurveConfig>(
    points: &mut [Point<P::BaseField>],
    starts: &[usize],
    lens: &mut [usize],
    scratch: &mut Scratch<P::BaseField>,
) {
    let start = |k: usize| starts[k] - starts[0];
    loop {
        scratch.inverses.clear();
        for (k, &len) in lens.iter().enumerate() {
            let bucket = &points[start(k)..start(k) + len];
            scratch.inverses.extend(
                bucket
                    .chunks_exact(2)
                    .map(|pair| denominator::<P>(&pair[0], &pair[1])),
            );
        }
        if scratch.inverses.is_empty() {
            return;
        }
        scratch.invert_all();
        let mut inverse = scratch.inverses.iter();
        for (k, len) in lens.iter_mut().enumerate() {
            let bucket = &mut points[start(k)..start(k) + *len];
            let half = bucket.len() / 2;
            for t in 0..half {
                bucket[t] = add::<P>(bucket[2 * t], bucket[2 * t + 1], inverse.next());
            }
            if bucket.len() % 2 == 1 {
                bucket[half] = bucket[bucket.len() - 1];
            }
            *len = bucket.len().div_ceil(2);
        }
    }
}

/// The denominators of one level and the space to invert them.
#[derive(Default)]
struct Scratch<F> {
    inverses: Vec<F>,
    prefixes: Vec<F>,
}

impl<F: Field> Scratch<F> {
    /// Replaces every value of `inverses` by its inverse with one field inversion
    /// (Montgomery's trick).
    fn invert_all(&mut self) {
        self.prefixes.clear();
        let mut product = F::one();
        for value in &self.inverses {
            self.prefixes.push(product);
            product *= value;
        }
        let mut inverse = product
            .inverse()
            .expect("denominators are never zero: equal x only reach here as a doubling");
        for (value, prefix) in self.inverses.iter_mut().zip(&self.prefixes).rev() {
            let original = *value;
            *value = inverse * prefix;
            inverse *= original;
        }
    }
}

/// What `add` divides by: `x_q - x_p`, or `2·y_p` to double; 1 where no division happens.
fn denominator<P: SWCurveConfig>(p: &Point<P::BaseField>, q: &Point<P::BaseField>) -> P::BaseField {
    if p.is_identity() || q.is_identity() {
        P::BaseField::one()
    } else if p.x != q.x {
        q.x - p.x
    } else if p.y == q.y {
        // y = 0 would be a point of order 2, which prime-order groups do not have.
        p.y.double()
    } else {
        P::BaseField::one()
    }
}

/// `p + q`, given the inverse of their [`denominator`].
fn add<P: SWCurveConfig>(
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
        (q.y - p.y) * inverse
    } else if p.y == q.y {
        let xx = p.x.square();
        (xx.double() + xx + P::COEFF_A) * inverse
    } else {
        // q = -p.
        return Point::IDENTITY;
    };
    let x = lambda.square() - p.x - q.x;
    let y = lambda * (p.x - x) - p.y;
    Point { x, y }
}
