//! The RLN v2 circuit's inputs, under the signal names of its circom source.

use ark_ff::{One, Zero};

use super::{Graph, GraphError};
use crate::field::Fr;
use crate::tree::DEPTH;

/// The inputs of the RLN v2 circuit (depth 20).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RlnInputs {
    /// The member's secret (`identitySecret`): the identity's secret hash.
    pub identity_secret: Fr,
    /// The member's rate limit (`userMessageLimit`), part of its leaf.
    pub user_message_limit: Fr,
    /// Which of the member's messages this is in the epoch (`messageId`); must be below the
    /// limit or the circuit's range check fails.
    pub message_id: Fr,
    /// Sibling hashes from the leaf up (`pathElements`).
    pub path_elements: [Fr; DEPTH],
    /// Whether the path is the right child at each level, leaf level first
    /// (`identityPathIndex`).
    pub identity_path_index: [bool; DEPTH],
    /// The signal hash (`x`).
    pub x: Fr,
    /// `Poseidon(epoch, rln_identifier)` (`externalNullifier`).
    pub external_nullifier: Fr,
}

impl RlnInputs {
    /// The circuit inputs that change from one message to the next. Wires that depend on none
    /// of them depend only on the member and its Merkle path (see [`Graph::depends_on`]).
    pub const PER_MESSAGE: [&'static str; 3] = ["x", "externalNullifier", "messageId"];
}

impl Graph {
    /// The full RLN v2 witness for `inputs`: `[1, y, root, nullifier, x, externalNullifier,
    /// identitySecret, userMessageLimit, messageId, ...]`.
    pub fn rln_witness(&self, inputs: &RlnInputs) -> Result<Vec<Fr>, GraphError> {
        let bits = inputs
            .identity_path_index
            .map(|right| if right { Fr::one() } else { Fr::zero() });
        self.calculate(&[
            (
                "identitySecret",
                std::slice::from_ref(&inputs.identity_secret),
            ),
            (
                "userMessageLimit",
                std::slice::from_ref(&inputs.user_message_limit),
            ),
            ("messageId", std::slice::from_ref(&inputs.message_id)),
            ("pathElements", &inputs.path_elements),
            ("identityPathIndex", &bits),
            ("x", std::slice::from_ref(&inputs.x)),
            (
                "externalNullifier",
                std::slice::from_ref(&inputs.external_nullifier),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use ark_ff::UniformRand;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::circuit::graph::tests::rln_graph;
    use crate::poseidon::poseidon;
    use crate::tree::MerkleTree;

    /// A random member at a random index of a sparse tree, with a valid message id.
    fn random_inputs(rng: &mut ChaCha8Rng) -> (RlnInputs, Fr) {
        let mut tree = MerkleTree::new();
        for _ in 0..4 {
            let index = rng.gen_range(0..1 << DEPTH);
            tree.set(index, Fr::rand(rng)).unwrap();
        }
        let secret = Fr::rand(rng);
        let limit: u64 = rng.gen_range(1..=600);
        let index = rng.gen_range(0..1 << DEPTH);
        let leaf = poseidon(&[poseidon(&[secret]), Fr::from(limit)]);
        tree.set(index, leaf).unwrap();
        let proof = tree.proof(index).unwrap();
        let inputs = RlnInputs {
            identity_secret: secret,
            user_message_limit: Fr::from(limit),
            message_id: Fr::from(rng.gen_range(0..limit)),
            path_elements: proof.elements,
            identity_path_index: proof.path_bits(),
            x: Fr::rand(rng),
            external_nullifier: Fr::rand(rng),
        };
        (inputs, tree.root())
    }

    #[test]
    fn declares_the_rln_inputs() {
        let graph = rln_graph();
        assert_eq!(graph.witness_len(), 5844);
        let names: Vec<_> = graph.input_names().collect();
        assert_eq!(
            names,
            [
                "x",
                "externalNullifier",
                "identitySecret",
                "userMessageLimit",
                "messageId",
                "pathElements",
                "identityPathIndex"
            ]
        );
        assert_eq!(graph.input_len("pathElements"), Some(DEPTH));
        assert_eq!(graph.input_len("nope"), None);
    }

    #[test]
    fn outputs_match_native_computation() {
        let graph = rln_graph();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..3 {
            let (inputs, root) = random_inputs(&mut rng);
            let w = graph.rln_witness(&inputs).unwrap();
            let a1 = poseidon(&[
                inputs.identity_secret,
                inputs.external_nullifier,
                inputs.message_id,
            ]);
            assert_eq!(w[0], Fr::one());
            assert_eq!(w[1], inputs.identity_secret + a1 * inputs.x, "y");
            assert_eq!(w[2], root, "root");
            assert_eq!(w[3], poseidon(&[a1]), "nullifier");
            assert_eq!(
                w[4..9],
                [
                    inputs.x,
                    inputs.external_nullifier,
                    inputs.identity_secret,
                    inputs.user_message_limit,
                    inputs.message_id
                ]
            );
        }
    }

    #[test]
    fn per_message_dependencies() {
        let depends = rln_graph().depends_on(&RlnInputs::PER_MESSAGE);
        assert_eq!(depends.len(), 5844);
        assert!(!depends[0], "the constant one");
        assert!(depends[1], "y depends on x and a1");
        assert!(!depends[2], "the root depends only on the member and path");
        assert!(depends[3], "the nullifier depends on a1");
        assert_eq!(depends[4..9], [true, true, false, false, true]);
        let fixed = depends.iter().filter(|d| !**d).count();
        // The Merkle path hashing is most of the circuit and can be cached per member.
        assert!(
            fixed > 5844 / 2,
            "only {fixed} wires are message-independent"
        );
    }

    #[test]
    fn changing_a_per_message_input_only_moves_dependent_wires() {
        let graph = rln_graph();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (inputs, _) = random_inputs(&mut rng);
        let mut other = inputs.clone();
        other.x = Fr::rand(&mut rng);
        other.external_nullifier = Fr::rand(&mut rng);
        other.message_id = Fr::zero();
        let (a, b) = (
            graph.rln_witness(&inputs).unwrap(),
            graph.rln_witness(&other).unwrap(),
        );
        for (wire, depends) in graph.depends_on(&RlnInputs::PER_MESSAGE).iter().enumerate() {
            if !depends {
                assert_eq!(a[wire], b[wire], "wire {wire} moved");
            }
        }
    }

    /// Informal timing; run with `--nocapture` to see it. In the dev profile this crate is
    /// unoptimised while ark-ff is, so this is an upper bound of the release figure.
    #[test]
    fn witness_timing() {
        let graph = rln_graph();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (inputs, _) = random_inputs(&mut rng);
        graph.rln_witness(&inputs).unwrap();
        let runs = 50;
        let start = Instant::now();
        for _ in 0..runs {
            std::hint::black_box(graph.rln_witness(std::hint::black_box(&inputs)).unwrap());
        }
        let per = start.elapsed() / runs;
        eprintln!("RLN witness from graph.bin: {per:?} per witness ({runs} runs)");
    }
}
