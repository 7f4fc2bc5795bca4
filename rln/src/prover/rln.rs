//! RLN proving from circuit inputs: the witness graph, the Groth16 prover and the public values
//! together, for a whole proof or for a member prepared once and many messages.

use std::{path::Path, sync::Arc};

use ark_bn254::Bn254;
use ark_ff::{BigInteger, PrimeField};
use ark_groth16::Proof;
use ark_serialize::CanonicalSerialize;
use rand::RngCore;

use super::{PreparedMember, ProveError, Prover};
use crate::{
    circuit::{
        Artifact, ArtifactError, ProvingKey,
        graph::{Graph, GraphError, RlnInputs},
        load_proving_key, read_pinned,
    },
    field::Fr,
    tree::DEPTH,
    waku::{ProofValues, RlnProofBytes},
};

/// Why an RLN proof could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RlnProveError {
    /// A circuit file is missing or wrong.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The witness graph refused the inputs.
    #[error("witness computation failed: {0}")]
    Graph(#[from] GraphError),
    /// The Groth16 prover refused the witness.
    #[error(transparent)]
    Prove(#[from] ProveError),
    /// The message id is not below the member's limit: the circuit cannot prove it.
    #[error("message id {message_id} is not below the member's limit of {limit} per epoch")]
    MessageIdOutOfRange {
        /// The message id given.
        message_id: String,
        /// The member's limit.
        limit: String,
    },
}

/// The member's part of the inputs: fixed for as long as the member's leaf and path are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInputs {
    /// The identity's secret hash.
    pub identity_secret: Fr,
    /// The member's rate limit.
    pub user_message_limit: Fr,
    /// Sibling hashes from the leaf up.
    pub path_elements: [Fr; DEPTH],
    /// Path bits, leaf level first.
    pub identity_path_index: [bool; DEPTH],
}

/// The message's part of the inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageInputs {
    /// The signal hash.
    pub x: Fr,
    /// `Poseidon(epoch, rln_identifier)`.
    pub external_nullifier: Fr,
    /// The message's id within the epoch (`< user_message_limit`).
    pub message_id: Fr,
}

impl MemberInputs {
    fn with(&self, message: MessageInputs) -> RlnInputs {
        RlnInputs {
            identity_secret: self.identity_secret,
            user_message_limit: self.user_message_limit,
            message_id: message.message_id,
            path_elements: self.path_elements,
            identity_path_index: self.identity_path_index,
            x: message.x,
            external_nullifier: message.external_nullifier,
        }
    }
}

/// A proof with the public values it proves.
#[derive(Debug, Clone, PartialEq)]
pub struct RlnProof {
    /// The Groth16 proof.
    pub proof: Proof<Bn254>,
    /// Root, external nullifier, x, y and nullifier.
    pub values: ProofValues,
}

impl RlnProof {
    /// The 288-byte layout `proof | root | external_nullifier | x | y | nullifier`.
    pub fn to_layout(&self) -> RlnProofBytes {
        let mut proof = [0u8; 128];
        self.proof
            .serialize_compressed(&mut proof[..])
            .expect("a Groth16 proof compresses to 128 bytes");
        RlnProofBytes {
            proof,
            values: self.values,
        }
    }
}

/// A member prepared for fast proving of many messages.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedRln {
    member: MemberInputs,
    prepared: PreparedMember,
}

impl PreparedRln {
    /// The inputs the member was prepared for.
    pub fn member(&self) -> &MemberInputs {
        &self.member
    }
}

/// Proves RLN messages: the proving key, the witness graph, and which wires each message
/// changes.
///
/// Cloning is cheap: the key, the graph and the window tables are shared.
#[derive(Debug, Clone)]
pub struct RlnProver {
    prover: Prover,
    graph: Arc<Graph>,
}

impl RlnProver {
    /// Loads the proving key and witness graph from a circuit directory, checking their pins.
    pub fn load(dir: &Path) -> Result<Self, RlnProveError> {
        let key = load_proving_key(dir)?;
        let graph = Graph::from_bytes(&read_pinned(dir, Artifact::Graph)?)?;
        Ok(Self::new(Arc::new(key), Arc::new(graph)))
    }

    /// A prover from parts already loaded.
    pub fn new(key: Arc<ProvingKey>, graph: Arc<Graph>) -> Self {
        let per_message = graph.depends_on(&RlnInputs::PER_MESSAGE);
        Self {
            prover: Prover::new(key, &per_message),
            graph,
        }
    }

    fn witness(&self, inputs: &RlnInputs) -> Result<Vec<Fr>, RlnProveError> {
        check_message_id(inputs.message_id, inputs.user_message_limit)?;
        Ok(self.graph.rln_witness(inputs)?)
    }

    /// A full proof.
    pub fn prove<R: RngCore>(
        &self,
        inputs: &RlnInputs,
        rng: &mut R,
    ) -> Result<RlnProof, RlnProveError> {
        let witness = self.witness(inputs)?;
        let proof = self.prover.prove_witness(&witness, rng)?;
        Ok(RlnProof {
            proof,
            values: values_of(&witness),
        })
    }

    /// Precomputes the member's share of every proof (valid until its Merkle path changes).
    pub fn prepare(&self, member: &MemberInputs) -> Result<PreparedRln, RlnProveError> {
        let witness = self.member_witness(member)?;
        let prepared = self.prover.prepare_member(&witness)?;
        Ok(PreparedRln {
            member: member.clone(),
            prepared,
        })
    }

    /// `prepared` brought to `member`'s inputs, usually the same member on a new Merkle path:
    /// only the wires that changed are paid for. Equal to [`RlnProver::prepare`] of `member`.
    pub fn refresh(
        &self,
        prepared: &PreparedRln,
        member: &MemberInputs,
    ) -> Result<PreparedRln, RlnProveError> {
        if prepared.member == *member {
            return Ok(prepared.clone());
        }
        let witness = self.member_witness(member)?;
        let updated = self.prover.update_member(&prepared.prepared, &witness)?;
        Ok(PreparedRln {
            member: member.clone(),
            prepared: updated,
        })
    }

    /// A witness of `member` with any message: its member wires are the ones kept.
    fn member_witness(&self, member: &MemberInputs) -> Result<Vec<Fr>, RlnProveError> {
        let probe = MessageInputs {
            x: Fr::from(0u64),
            external_nullifier: Fr::from(0u64),
            message_id: Fr::from(0u64),
        };
        Ok(self.graph.rln_witness(&member.with(probe))?)
    }

    /// Proves a message for a prepared member.
    pub fn prove_prepared<R: RngCore>(
        &self,
        member: &PreparedRln,
        message: MessageInputs,
        rng: &mut R,
    ) -> Result<RlnProof, RlnProveError> {
        let witness = self.witness(&member.member.with(message))?;
        let proof = self
            .prover
            .prove_prepared(&member.prepared, &witness, rng)?;
        Ok(RlnProof {
            proof,
            values: values_of(&witness),
        })
    }
}

/// The public values are wires 1..=5: `y, root, nullifier, x, externalNullifier`.
fn values_of(witness: &[Fr]) -> ProofValues {
    ProofValues {
        y: witness[1],
        root: witness[2],
        nullifier: witness[3],
        x: witness[4],
        external_nullifier: witness[5],
    }
}

fn check_message_id(message_id: Fr, limit: Fr) -> Result<(), RlnProveError> {
    let (id, max) = (message_id.into_bigint(), limit.into_bigint());
    // The circuit range-checks on 16 bits; larger values can never prove.
    let fits = |v: &<Fr as PrimeField>::BigInt| v.num_bits() <= 16;
    if !(fits(&id) && fits(&max) && id < max) {
        return Err(RlnProveError::MessageIdOutOfRange {
            message_id: message_id.to_string(),
            limit: limit.to_string(),
        });
    }
    Ok(())
}
