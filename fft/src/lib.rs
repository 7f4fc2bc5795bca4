//! The prover's number-theoretic transforms over BN254's scalar field.
//!
//! circom's QAP reduction moves three vectors per proof from the `n`-th roots of unity to a
//! coset of them: an inverse transform to coefficients, a shift, a forward transform. A
//! [`CosetFft`] does that move with every constant computed once:
//!
//! - the inverse transform is decimation in frequency, which takes natural order and leaves
//!   the coefficients in bit-reversed order;
//! - the shift `g^i` and the `1/n` of the inverse are one precomputed factor per position, laid
//!   out in that bit-reversed order;
//! - the forward transform is decimation in time, which takes bit-reversed order and gives
//!   natural order back.
//!
//! So no bit-reversal permutation is ever done, the twiddles of every level are contiguous
//! (one table per direction, no root computed per call), and multiplications by one (the
//! first twiddle of every block, the whole of the last level) are skipped.
//!
//! Where the CPU has AVX-512 IFMA (and `WAKURLN_NO_IFMA` is not set), the whole move runs in
//! eight lanes instead (`wakurln_field::ifma::coset_move`): the values are converted to
//! 52-bit limbs once, every level's butterflies take eight values at a time (the levels of
//! half-size 4, 2 and 1 permute two steps' lanes into full registers), and the result is
//! converted back once.
//!
//! A transform runs on the calling thread: the prover already runs its three vectors in
//! parallel.

use ark_bn254::Fr;
use ark_ff::{FftField, Field, One, Zero};
use wakurln_field::FastField;
#[cfg(target_arch = "x86_64")]
use wakurln_field::ifma;

/// Moves values on the `n`-th roots of unity `H` to values on the coset `g·H`.
#[derive(Clone)]
pub struct CosetFft {
    log_n: u32,
    /// `inverse[h + j] = ω^(-j·n/2h)` for every level of half-size `h`.
    inverse: Vec<Fr>,
    /// `forward[h + j] = ω^(j·n/2h)`.
    forward: Vec<Fr>,
    /// `scale[i] = g^rev(i) / n`, where `rev` reverses the bits of the index.
    scale: Vec<Fr>,
    /// The tables in the lanes' form, where the CPU has them.
    #[cfg(target_arch = "x86_64")]
    lanes: Option<ifma::CosetPlan>,
}

impl std::fmt::Debug for CosetFft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosetFft")
            .field("size", &self.size())
            .finish()
    }
}

/// Why a transform could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FftError {
    /// The size is not a power of two of at least 2.
    #[error("transform size {0} is not a power of two of at least 2")]
    Size(usize),
    /// BN254's scalar field has no root of unity of that order.
    #[error("BN254's scalar field has no {0}-th root of unity (its limit is 2^28)")]
    TooLarge(usize),
    /// The coset shift is zero, which collapses the coset.
    #[error("the coset shift is zero")]
    ZeroShift,
}

impl CosetFft {
    /// Transforms of size `n` onto the coset `shift·H`.
    pub fn new(n: usize, shift: Fr) -> Result<Self, FftError> {
        if n < 2 || !n.is_power_of_two() {
            return Err(FftError::Size(n));
        }
        if shift.is_zero() {
            return Err(FftError::ZeroShift);
        }
        let root = Fr::get_root_of_unity(n as u64).ok_or(FftError::TooLarge(n))?;
        let log_n = n.trailing_zeros();
        let inverse_n = Fr::from(n as u64)
            .inverse()
            .expect("n is a power of two, far below the field's modulus");
        let mut shifts = powers(shift, n);
        shifts.iter_mut().for_each(|s| *s *= inverse_n);
        let scale: Vec<Fr> = (0..n).map(|i| shifts[reverse(i, log_n)]).collect();
        let inverse = twiddles(root.inverse().expect("a root of unity is non-zero"), n);
        let forward = twiddles(root, n);
        Ok(Self {
            log_n,
            #[cfg(target_arch = "x86_64")]
            lanes: ifma::enabled()
                .then(|| ifma::CosetPlan::new(&inverse, &forward, &scale))
                .flatten(),
            inverse,
            forward,
            scale,
        })
    }

    /// The transform size `n`.
    pub fn size(&self) -> usize {
        1 << self.log_n
    }

    /// Replaces the values of a polynomial of degree below `n` at `ω^i` by its values at
    /// `g·ω^i`, both in natural order.
    ///
    /// # Panics
    /// If `values` does not have `n` elements.
    pub fn domain_to_coset(&self, values: &mut [Fr]) {
        assert_eq!(
            values.len(),
            self.size(),
            "a transform of size {} got {} values",
            self.size(),
            values.len()
        );
        #[cfg(target_arch = "x86_64")]
        if let Some(plan) = &self.lanes
            && ifma::coset_move(values, plan)
        {
            return;
        }
        self.decimate_in_frequency(values);
        values
            .iter_mut()
            .zip(&self.scale)
            .for_each(|(value, scale)| *value = value.fast_mul(scale));
        self.decimate_in_time(values);
    }

    /// Gentleman–Sande with inverse roots: natural order in, `n`·coefficients out in
    /// bit-reversed order.
    fn decimate_in_frequency(&self, values: &mut [Fr]) {
        let mut half = self.size() / 2;
        while half >= 1 {
            level(values, &self.inverse[half..2 * half], |lo, hi, twiddle| {
                let (u, v) = (*lo, *hi);
                *lo = u.fast_add(&v);
                *hi = u.fast_sub(&v).fast_mul(twiddle);
            });
            half /= 2;
        }
    }

    /// Cooley–Tukey with forward roots: bit-reversed order in, natural order out.
    fn decimate_in_time(&self, values: &mut [Fr]) {
        let mut half = 1;
        while half < self.size() {
            level(values, &self.forward[half..2 * half], |lo, hi, twiddle| {
                let (u, v) = (*lo, hi.fast_mul(twiddle));
                *lo = u.fast_add(&v);
                *hi = u.fast_sub(&v);
            });
            half *= 2;
        }
    }
}

/// One level of a transform: `butterfly(lo, hi, twiddle)` on every pair `half` apart within
/// blocks of `2·half`, where `half` is the number of twiddles. The first pair of a block has
/// twiddle one, where both butterflies are a plain sum and difference.
fn level(values: &mut [Fr], twiddles: &[Fr], butterfly: impl Fn(&mut Fr, &mut Fr, &Fr)) {
    let half = twiddles.len();
    for block in values.chunks_exact_mut(2 * half) {
        let (lo, hi) = block.split_at_mut(half);
        let (u, v) = (lo[0], hi[0]);
        lo[0] = u + v;
        hi[0] = u - v;
        for ((lo, hi), twiddle) in lo[1..].iter_mut().zip(&mut hi[1..]).zip(&twiddles[1..]) {
            butterfly(lo, hi, twiddle);
        }
    }
}

/// `1, x, x², …` (`count` of them).
fn powers(x: Fr, count: usize) -> Vec<Fr> {
    std::iter::successors(Some(Fr::one()), |p| Some(*p * x))
        .take(count)
        .collect()
}

/// The twiddles of every level, level of half-size `h` at `h..2h`: `root^(j·n/2h)`.
fn twiddles(root: Fr, n: usize) -> Vec<Fr> {
    let all = powers(root, n / 2);
    let mut table = vec![Fr::one(); n];
    let mut half = 1;
    while half < n {
        let stride = n / (2 * half);
        for j in 0..half {
            table[half + j] = all[j * stride];
        }
        half *= 2;
    }
    table
}

/// `i` with its low `bits` bits reversed.
fn reverse(i: usize, bits: u32) -> usize {
    i.reverse_bits() >> (usize::BITS - bits)
}
