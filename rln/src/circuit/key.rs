//! The Groth16 proving key of the RLN circuit together with the R1CS matrices the prover needs
//! for circom's QAP reduction, and the checks that tie a loaded key to the network's circuit.

use ark_bn254::{Bn254, Fr};

use super::{ArtifactError, vk};

/// Wires of the RLN v2 circuit (depth 20), the constant-one wire included.
pub const NUM_WIRES: usize = 5_844;
/// Constraints of the circuit, without the public-input rows snarkjs appends.
pub const NUM_CONSTRAINTS: usize = 5_820;
/// Public signals: `[y, root, nullifier, x, externalNullifier]`.
pub const NUM_PUBLIC: usize = 5;
/// Size of the FFT domain (the smallest power of two above constraints + inputs).
pub const DOMAIN_SIZE: usize = 8_192;

/// A sparse R1CS matrix: for each constraint, `(coefficient, wire)` pairs.
pub type Matrix = Vec<Vec<(Fr, usize)>>;

/// The A and B matrices of the circuit (C is implied: circom's reduction uses `A·B`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrices {
    /// Number of instance wires: the constant one and the public signals.
    pub num_instance: usize,
    /// Number of constraints (rows of A and B).
    pub num_constraints: usize,
    /// The A matrix.
    pub a: Matrix,
    /// The B matrix.
    pub b: Matrix,
}

/// A proving key with its matrices, checked to be the network's RLN v2 circuit.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvingKey {
    /// The Groth16 key (bases for the MSMs, verifying key inside).
    pub key: ark_groth16::ProvingKey<Bn254>,
    /// The R1CS matrices.
    pub matrices: Matrices,
}

impl ProvingKey {
    /// Checks every size against the circuit and the embedded verifying key against the
    /// network's, so that a key for another circuit is refused before it produces proofs no
    /// peer accepts.
    pub(super) fn check_network_circuit(self, file: &'static str) -> Result<Self, ArtifactError> {
        let k = &self.key;
        let m = &self.matrices;
        let sizes = [
            ("A query", k.a_query.len(), NUM_WIRES),
            ("B1 query", k.b_g1_query.len(), NUM_WIRES),
            ("B2 query", k.b_g2_query.len(), NUM_WIRES),
            ("H query", k.h_query.len(), DOMAIN_SIZE),
            ("L query", k.l_query.len(), NUM_WIRES - NUM_PUBLIC - 1),
            ("IC", k.vk.gamma_abc_g1.len(), NUM_PUBLIC + 1),
            ("instance wires", m.num_instance, NUM_PUBLIC + 1),
            ("constraints", m.num_constraints, NUM_CONSTRAINTS),
            ("A rows", m.a.len(), NUM_CONSTRAINTS),
            ("B rows", m.b.len(), NUM_CONSTRAINTS),
        ];
        for (what, got, expected) in sizes {
            if got != expected {
                return Err(ArtifactError::WrongCircuit {
                    file,
                    detail: format!("{what}: {got}, the RLN v2 circuit has {expected}"),
                });
            }
        }
        let out_of_range =
            m.a.iter()
                .chain(&m.b)
                .flatten()
                .any(|&(_, wire)| wire >= NUM_WIRES);
        if out_of_range {
            return Err(ArtifactError::WrongCircuit {
                file,
                detail: "a constraint refers to a wire the circuit does not have".into(),
            });
        }
        if k.vk != *vk::network_verifying_key() {
            return Err(ArtifactError::WrongCircuit {
                file,
                detail: "its verifying key is not The Waku Network's".into(),
            });
        }
        Ok(self)
    }
}
