//! Poseidon over BN254 exactly as circomlib defines it (x^5 S-box, 8 full rounds, Grain-LFSR
//! constants), for 1 to 4 inputs: the arities the RLN circuit and the membership tree use.
//!
//! `poseidon(&[a, b])` runs the permutation of width `t = 3` on `[0, a, b]` and returns the
//! first element of the state. Parameters are generated once per width on first use.

mod grain;

use std::sync::OnceLock;

use ark_ff::{Field, Zero};

use crate::field::Fr;

/// Largest number of inputs supported.
pub const MAX_INPUTS: usize = 4;

const FULL_ROUNDS: usize = 8;
/// circomlib's partial rounds for widths t = 2, 3, 4, 5.
const PARTIAL_ROUNDS: [usize; MAX_INPUTS] = [56, 57, 56, 60];

struct Params {
    t: usize,
    partial: usize,
    constants: Vec<Fr>,
    mds: Vec<Vec<Fr>>,
}

impl Params {
    fn new(inputs: usize) -> Self {
        let t = inputs + 1;
        let partial = PARTIAL_ROUNDS[inputs - 1];
        let (constants, mds) = grain::generate(t, FULL_ROUNDS, partial);
        Self {
            t,
            partial,
            constants,
            mds,
        }
    }

    fn permute(&self, state: &mut [Fr]) {
        let t = self.t;
        let half = FULL_ROUNDS / 2;
        let mut scratch = [Fr::zero(); MAX_INPUTS + 1];
        for (round, constants) in self.constants.chunks_exact(t).enumerate() {
            for (s, c) in state.iter_mut().zip(constants) {
                *s += c;
            }
            if round < half || round >= half + self.partial {
                state.iter_mut().for_each(sbox);
            } else {
                sbox(&mut state[0]);
            }
            for (out, row) in scratch.iter_mut().zip(&self.mds) {
                *out = row.iter().zip(state.iter()).map(|(m, s)| *m * s).sum();
            }
            state.copy_from_slice(&scratch[..t]);
        }
    }
}

#[inline(always)]
fn sbox(x: &mut Fr) {
    let x2 = x.square();
    *x *= x2.square();
}

fn params(inputs: usize) -> &'static Params {
    static PARAMS: [OnceLock<Params>; MAX_INPUTS] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    PARAMS[inputs - 1].get_or_init(|| Params::new(inputs))
}

/// circomlib's Poseidon of 1 to 4 field elements.
///
/// # Panics
/// If `inputs` is empty or longer than [`MAX_INPUTS`]: arities are fixed by the circuit, so
/// another length is a programming error, not bad input.
pub fn poseidon(inputs: &[Fr]) -> Fr {
    assert!(
        (1..=MAX_INPUTS).contains(&inputs.len()),
        "Poseidon takes 1 to {MAX_INPUTS} inputs, got {}",
        inputs.len()
    );
    let params = params(inputs.len());
    let mut state = [Fr::zero(); MAX_INPUTS + 1];
    state[1..=inputs.len()].copy_from_slice(inputs);
    params.permute(&mut state[..params.t]);
    state[0]
}

/// Poseidon of two elements: a Merkle node from its children, a rate commitment.
pub fn poseidon2(left: Fr, right: Fr) -> Fr {
    poseidon(&[left, right])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::parse;

    #[test]
    fn known_vectors() {
        assert_eq!(
            poseidon(&[Fr::zero()]),
            parse("19014214495641488759237505126948346942972912379615652741039992445865937985820")
                .unwrap()
        );
        assert_eq!(
            poseidon(&[Fr::from(1u64), Fr::from(2u64)]),
            parse("7853200120776062878684798364095072458815029376092732009249414926327459813530")
                .unwrap()
        );
    }

    #[test]
    #[should_panic(expected = "Poseidon takes 1 to 4 inputs")]
    fn refuses_unsupported_arity() {
        poseidon(&[Fr::zero(); 5]);
    }
}
