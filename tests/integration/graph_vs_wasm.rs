//! The native graph witness calculator against circom's own wasm witness calculator
//! (`rln.wasm`, run by `tests/js/witness.mjs` under Node.js): full witnesses must be equal.

use crate::common;

use ark_ff::UniformRand;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use wakurln::rln::circuit::graph::{Graph, RlnInputs};
use wakurln::rln::field::{Fr, to_decimal};
use wakurln::rln::tree::DEPTH;

const RANDOM_INPUTS: usize = 60;

/// Valid inputs: random members, paths and signals, with `messageId < userMessageLimit`, plus
/// the edges of each range.
fn inputs(rng: &mut ChaCha8Rng) -> Vec<RlnInputs> {
    let random = |rng: &mut ChaCha8Rng| {
        let limit: u64 = rng.gen_range(1..=u64::from(u16::MAX));
        RlnInputs {
            identity_secret: Fr::rand(rng),
            user_message_limit: Fr::from(limit),
            message_id: Fr::from(rng.gen_range(0..limit)),
            path_elements: std::array::from_fn(|_| Fr::rand(rng)),
            identity_path_index: std::array::from_fn(|_| rng.r#gen()),
            x: Fr::rand(rng),
            external_nullifier: Fr::rand(rng),
        }
    };
    let mut all: Vec<RlnInputs> = (0..RANDOM_INPUTS).map(|_| random(rng)).collect();
    let mut edge = random(rng);
    edge.user_message_limit = Fr::from(u64::from(u16::MAX));
    edge.message_id = Fr::from(u64::from(u16::MAX) - 1);
    edge.identity_path_index = [true; DEPTH];
    all.push(edge);
    let mut zeros = random(rng);
    zeros.user_message_limit = Fr::from(1u64);
    zeros.message_id = Fr::from(0u64);
    zeros.path_elements = [Fr::from(0u64); DEPTH];
    zeros.identity_path_index = [false; DEPTH];
    zeros.x = Fr::from(0u64);
    all.push(zeros);
    all
}

/// The circom input object for one set of inputs.
fn circom_json(inputs: &RlnInputs) -> Value {
    let dec = |x: &Fr| to_decimal(x);
    json!({
        "identitySecret": dec(&inputs.identity_secret),
        "userMessageLimit": dec(&inputs.user_message_limit),
        "messageId": dec(&inputs.message_id),
        "pathElements": inputs.path_elements.iter().map(dec).collect::<Vec<_>>(),
        "identityPathIndex": inputs
            .identity_path_index
            .iter()
            .map(|&b| if b { "1" } else { "0" })
            .collect::<Vec<_>>(),
        "x": dec(&inputs.x),
        "externalNullifier": dec(&inputs.external_nullifier),
    })
}

#[test]
fn graph_witness_equals_wasm_witness() {
    let graph_bytes = std::fs::read(common::shared_file("circuits/waku-rln-v2/graph.bin"))
        .expect("graph.bin is readable");
    let graph = Graph::from_bytes(&graph_bytes).expect("graph.bin loads");
    let wasm = common::shared_file("circuits/waku-rln-v2/rln.wasm");

    let all = inputs(&mut ChaCha8Rng::seed_from_u64(0x5eed_3a11));
    let request = Value::Array(all.iter().map(circom_json).collect());
    let stdout = common::run_node_script(
        "witness.mjs",
        &[wasm.as_path()],
        request.to_string().as_bytes(),
    );
    let expected: Vec<Vec<String>> =
        serde_json::from_slice(&stdout).expect("witness.mjs prints a JSON array of witnesses");
    assert_eq!(expected.len(), all.len(), "one wasm witness per input");

    for (case, (inputs, wasm_witness)) in all.iter().zip(&expected).enumerate() {
        let ours = graph.rln_witness(inputs).expect("graph witness");
        assert_eq!(
            ours.len(),
            wasm_witness.len(),
            "input {case}: witness length"
        );
        for (wire, (a, b)) in ours.iter().zip(wasm_witness).enumerate() {
            assert_eq!(&to_decimal(a), b, "input {case}: wire {wire} differs");
        }
    }
    eprintln!(
        "{} witnesses of {} wires equal rln.wasm's",
        all.len(),
        graph.witness_len()
    );
}
