//! Our Poseidon against circomlibjs (`tests/js/poseidon.mjs` under Node.js), an independent
//! implementation with its own stored constants: seeded random inputs and the edges 0, 1 and
//! r - 1 in every position, for 1 to 4 inputs.

use crate::common;

use std::collections::HashSet;

use ark_ff::{One, UniformRand, Zero};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wakurln::rln::field::{Fr, to_decimal};
use wakurln::rln::poseidon::{MAX_INPUTS, poseidon};

/// Random inputs per arity: half uniform field elements, half small integers (short limbs
/// exercise other carry paths than full-width values).
const RANDOM_PER_ARITY: usize = 80;

fn random_inputs(rng: &mut ChaCha8Rng, arity: usize) -> Vec<Vec<Fr>> {
    (0..RANDOM_PER_ARITY)
        .map(|i| {
            (0..arity)
                .map(|_| match i % 2 {
                    0 => Fr::rand(rng),
                    _ => Fr::from(rng.r#gen::<u64>()),
                })
                .collect()
        })
        .collect()
}

/// Every combination of 0, 1 and r - 1 over `arity` positions.
fn edge_inputs(arity: usize) -> Vec<Vec<Fr>> {
    let edges = [Fr::zero(), Fr::one(), -Fr::one()];
    let mut all = vec![Vec::new()];
    for _ in 0..arity {
        all = all
            .into_iter()
            .flat_map(|prefix| {
                edges.iter().map(move |&e| {
                    let mut next = prefix.clone();
                    next.push(e);
                    next
                })
            })
            .collect();
    }
    all
}

#[test]
fn poseidon_agrees_with_circomlibjs() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x9053_1d0e);
    let cases: Vec<Vec<Fr>> = (1..=MAX_INPUTS)
        .flat_map(|arity| {
            let mut cases = edge_inputs(arity);
            cases.extend(random_inputs(&mut rng, arity));
            cases
        })
        .collect();

    let request: Vec<Vec<String>> = cases
        .iter()
        .map(|input| input.iter().map(to_decimal).collect())
        .collect();
    let request = serde_json::to_vec(&request).expect("JSON");
    let stdout = common::run_node_script("poseidon.mjs", &[], &request);
    let expected: Vec<String> =
        serde_json::from_slice(&stdout).expect("poseidon.mjs prints a JSON array of strings");
    assert_eq!(expected.len(), cases.len(), "one hash per input");

    for (input, theirs) in cases.iter().zip(&expected) {
        let inputs: Vec<String> = input.iter().map(to_decimal).collect();
        assert_eq!(
            &to_decimal(&poseidon(input)),
            theirs,
            "Poseidon({inputs:?})"
        );
    }
    // Distinct inputs give distinct hashes, so agreement is not agreement on a constant.
    let distinct: HashSet<&String> = expected.iter().collect();
    assert_eq!(distinct.len(), cases.len(), "a repeated hash");
    eprintln!("{} Poseidon hashes equal circomlibjs's", cases.len());
}
