//! Signed base-`2^c` digits of a scalar: every digit in `[-2^(c-1), 2^(c-1)]`, so that a
//! digit's magnitude picks one of `2^(c-1)` buckets and its sign negates the point.

use ark_ff::PrimeField;

/// The number of windows that holds every scalar of `F` with its final carry.
pub(crate) fn windows<F: PrimeField>(window_bits: u32) -> usize {
    (F::MODULUS_BIT_SIZE as usize + 1).div_ceil(window_bits as usize)
}

/// Calls `f(digit, window)` for every non-zero signed digit of the little-endian `limbs`.
pub(crate) fn signed(
    limbs: &[u64],
    window_bits: u32,
    windows: usize,
    f: &mut impl FnMut(i64, usize),
) {
    let full = 1i64 << window_bits;
    let half = full >> 1;
    let mut carry = 0;
    for window in 0..windows {
        let raw = bits(limbs, window * window_bits as usize, window_bits) as i64 + carry;
        let digit = if raw > half { raw - full } else { raw };
        carry = i64::from(raw > half);
        if digit != 0 {
            f(digit, window);
        }
    }
    debug_assert_eq!(carry, 0, "the last window absorbs the carry");
}

/// `width` bits of `limbs` from bit `start` (zero past the end).
fn bits(limbs: &[u64], start: usize, width: u32) -> u64 {
    let (limb, shift) = (start / 64, start % 64);
    let Some(&low) = limbs.get(limb) else {
        return 0;
    };
    let mut value = low >> shift;
    if shift + width as usize > 64
        && let Some(&high) = limbs.get(limb + 1)
    {
        value |= high << (64 - shift);
    }
    value & ((1u64 << width) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recomposes `Σ digit · 2^(c·window)` as a signed 128-bit value (for small scalars).
    fn recompose(limbs: &[u64], c: u32) -> i128 {
        let mut total = 0i128;
        signed(
            limbs,
            c,
            128usize.div_ceil(c as usize),
            &mut |digit, window| {
                total += i128::from(digit) << (c as usize * window);
            },
        );
        total
    }

    #[test]
    fn digits_recompose_the_scalar_and_stay_in_range() {
        for c in [2, 5, 11, 13, 16] {
            for value in [
                0u64,
                1,
                2,
                3,
                (1 << c) - 1,
                1 << (c - 1),
                u64::MAX,
                0x1234_5678_9abc_def0,
            ] {
                let limbs = [value, 0];
                assert_eq!(
                    recompose(&limbs, c),
                    i128::from(value),
                    "c = {c}, {value:#x}"
                );
                signed(&limbs, c, 128usize.div_ceil(c as usize), &mut |digit, _| {
                    assert!(digit.abs() <= 1 << (c - 1), "digit {digit} for c = {c}");
                });
            }
        }
    }

    #[test]
    fn bits_cross_limb_boundaries() {
        let limbs = [0xf000_0000_0000_0000u64, 0x5];
        assert_eq!(bits(&limbs, 60, 8), 0x5f);
        assert_eq!(bits(&limbs, 64, 4), 0x5);
        assert_eq!(bits(&limbs, 128, 4), 0);
    }
}
