//! Poseidon parameter generation with the Grain LFSR of the Poseidon paper (appendix F), the
//! procedure circomlib's constants come from.
//!
//! The 80-bit state is seeded with the field type (2 bits, 1 = prime field), the S-box (4 bits,
//! 0 = x^alpha), the field size in bits (12), the width t (12), the full rounds (10), the
//! partial rounds (10) and thirty 1 bits. After 160 discarded clocks, output bits are
//! self-shrunk: of each pair (a, b), b is emitted only when a is 1. Round constants take
//! `field_bits` bits big-endian with rejection sampling; the MDS matrix then takes `2t` values
//! reduced mod p as `x_0..x_t, y_0..y_t` and is the Cauchy matrix `1 / (x_i + y_j)`.

use ark_ff::{BigInteger, Field, PrimeField};

use crate::field::Fr;

struct Grain {
    state: [bool; 80],
}

impl Grain {
    fn new(field_bits: u16, t: u16, full_rounds: u16, partial_rounds: u16) -> Self {
        let mut bits = Vec::with_capacity(80);
        let mut push = |value: u16, width: u32| {
            for i in (0..width).rev() {
                bits.push((value >> i) & 1 == 1);
            }
        };
        push(1, 2);
        push(0, 4);
        push(field_bits, 12);
        push(t, 12);
        push(full_rounds, 10);
        push(partial_rounds, 10);
        let mut state = [true; 80];
        state[..50].copy_from_slice(&bits);
        let mut grain = Self { state };
        for _ in 0..160 {
            grain.clock();
        }
        grain
    }

    fn clock(&mut self) -> bool {
        let s = &self.state;
        let bit = s[62] ^ s[51] ^ s[38] ^ s[23] ^ s[13] ^ s[0];
        self.state.copy_within(1.., 0);
        self.state[79] = bit;
        bit
    }

    fn next_bit(&mut self) -> bool {
        loop {
            let keep = self.clock();
            let bit = self.clock();
            if keep {
                return bit;
            }
        }
    }

    /// `n` output bits as a big-endian integer, little-endian bytes out.
    fn bits_le_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; n.div_ceil(8)];
        for i in (0..n).rev() {
            if self.next_bit() {
                bytes[i / 8] |= 1 << (i % 8);
            }
        }
        bytes
    }

    fn field_element_rejection(&mut self, n: usize) -> Fr {
        loop {
            let bytes = self.bits_le_bytes(n);
            let x = Fr::from_le_bytes_mod_order(&bytes);
            if x.into_bigint().to_bytes_le()[..bytes.len()] == bytes[..] {
                return x;
            }
        }
    }

    fn field_element_mod_p(&mut self, n: usize) -> Fr {
        Fr::from_le_bytes_mod_order(&self.bits_le_bytes(n))
    }
}

/// Round constants (`(full + partial) * t`, round by round) and the `t x t` MDS matrix.
pub(super) fn generate(
    t: usize,
    full_rounds: usize,
    partial_rounds: usize,
) -> (Vec<Fr>, Vec<Vec<Fr>>) {
    let n = Fr::MODULUS_BIT_SIZE as usize;
    let narrow = |v: usize| u16::try_from(v).expect("Poseidon parameters fit in u16");
    let mut grain = Grain::new(
        narrow(n),
        narrow(t),
        narrow(full_rounds),
        narrow(partial_rounds),
    );
    let constants = (0..(full_rounds + partial_rounds) * t)
        .map(|_| grain.field_element_rejection(n))
        .collect();
    let xs_ys: Vec<Fr> = (0..2 * t).map(|_| grain.field_element_mod_p(n)).collect();
    let (xs, ys) = xs_ys.split_at(t);
    let mds = xs
        .iter()
        .map(|x| {
            ys.iter()
                .map(|y| {
                    (*x + y)
                        .inverse()
                        .expect("Cauchy denominators are non-zero")
                })
                .collect()
        })
        .collect();
    (constants, mds)
}
