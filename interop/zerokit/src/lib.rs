//! Interoperability of wakurln's RLN v2 engine with zerokit (crate `rln` 3.0.0), the RLN library
//! the Nim node links: the same hashes, the same membership tree, and proofs that each side
//! verifies for the other. Both libraries are built on arkworks 0.5, so field elements and
//! Groth16 proofs are the same Rust types and cross over without conversion; only the public
//! values have a different shape.
//!
//! This crate holds the fixtures its tests (`tests/`) and the side-by-side benchmark
//! (`benches/compare.rs`) share. It is not published.

use std::{path::PathBuf, sync::OnceLock};

use ark_ff::UniformRand;
use rand::{CryptoRng, RngCore};
use rln::prelude::{
    ArkGroth16Backend, PoseidonHash, RLN, RLNBuilder, RLNMerkleProof, RLNPartialWitnessInput,
    RLNProofValues, RLNWitnessInput, SecretFr, Stateless,
};
use wakurln::rln::{
    circuit::graph::RlnInputs,
    field::Fr,
    identity::Identity,
    prover::{MemberInputs, MessageInputs, RlnProver},
    tree::{DEPTH, MerkleTree},
    waku::ProofValues,
};
use zerokit_utils::merkle_tree::{FullMerkleTree, ZerokitMerkleProof, ZerokitMerkleTree};

/// zerokit's RLN without a tree of its own: the caller brings the Merkle path.
pub type Zerokit = RLN<Stateless, ArkGroth16Backend<PoseidonHash>>;

/// zerokit's in-memory Merkle tree with the Poseidon hasher, every node stored.
///
/// Not its sparse `OptimalMerkleTree`: in zerokit_utils 3.0.0 that tree's batched `set_range`
/// can leave an interior node stale (see `tests/merkle.rs`), so its root is wrong after some
/// range writes.
pub type ZerokitTree = FullMerkleTree<PoseidonHash>;

/// The network's circuit files, `../shared/circuits/waku-rln-v2/` beside the project root.
///
/// # Panics
/// When the folder is missing: the interop checks must fail, never skip, without it.
pub fn circuit_dir() -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/circuits/waku-rln-v2");
    assert!(
        dir.join("graph.bin").is_file() && dir.join("rln_final.arkzkey").is_file(),
        "missing the network circuit in {}: the interop tests need ../shared beside the \
         project root",
        dir.display()
    );
    dir
}

/// Our prover with the network's proving key and witness graph, loaded once.
pub fn our_prover() -> &'static RlnProver {
    static PROVER: OnceLock<RlnProver> = OnceLock::new();
    PROVER.get_or_init(|| {
        let dir = circuit_dir();
        RlnProver::load(&dir)
            .unwrap_or_else(|e| panic!("cannot load the circuit from {}: {e}", dir.display()))
    })
}

/// zerokit with the circuit files compiled into it, built once. They are byte for byte the
/// files in `../shared` (`tests/proofs.rs` checks that the verifying key is the network's).
pub fn zerokit() -> &'static Zerokit {
    static ZEROKIT: OnceLock<Zerokit> = OnceLock::new();
    ZEROKIT.get_or_init(|| RLNBuilder::stateless().build())
}

/// A member somewhere in a tree of random leaves.
#[derive(Debug, Clone)]
pub struct Member {
    /// The identity's secret hash (the circuit's `identitySecret`).
    pub identity_secret: Fr,
    /// Messages per epoch.
    pub limit: u64,
    /// Every leaf of the tree, the member's rate commitment at `index`.
    pub leaves: Vec<Fr>,
    /// The member's leaf index.
    pub index: usize,
}

impl Member {
    /// A fresh identity at `index` among `index + 8` random leaves.
    pub fn random<R: RngCore + CryptoRng>(rng: &mut R, limit: u64, index: usize) -> Self {
        let identity = Identity::random(rng);
        let mut leaves: Vec<Fr> = (0..index + 8).map(|_| Fr::rand(rng)).collect();
        leaves[index] = identity.rate_commitment(limit);
        Self {
            identity_secret: identity.secret_hash,
            limit,
            leaves,
            index,
        }
    }

    /// The same member after a registration at `index` (beyond the leaves held; the ones in
    /// between stay empty).
    pub fn after_registration(&self, index: usize, leaf: Fr) -> Self {
        assert!(index >= self.leaves.len(), "registrations append");
        let mut next = self.clone();
        next.leaves.resize(index, Fr::from(0u64));
        next.leaves.push(leaf);
        next
    }

    /// The leaves in our tree.
    pub fn our_tree(&self) -> MerkleTree {
        let mut tree = MerkleTree::new();
        tree.set_range(0, &self.leaves)
            .expect("leaves fit the tree");
        tree
    }

    /// The leaves in zerokit's in-memory tree of the network's depth.
    pub fn zerokit_tree(&self) -> ZerokitTree {
        let mut tree = ZerokitTree::default(DEPTH).expect("a depth-20 tree");
        tree.set_range(0, self.leaves.iter().copied())
            .expect("leaves fit the tree");
        tree
    }

    /// Our prover's member inputs, with the path from our tree.
    pub fn our_inputs(&self) -> MemberInputs {
        let path = self
            .our_tree()
            .proof(self.index)
            .expect("index is in the tree");
        MemberInputs {
            identity_secret: self.identity_secret,
            user_message_limit: Fr::from(self.limit),
            path_elements: path.elements,
            identity_path_index: path.path_bits(),
        }
    }

    /// zerokit's Merkle proof, taken from zerokit's own tree.
    pub fn zerokit_path(&self) -> RLNMerkleProof {
        let proof = self
            .zerokit_tree()
            .proof(self.index)
            .expect("index is in the tree");
        RLNMerkleProof::new(proof.get_path_elements(), proof.get_path_index())
    }

    fn secret(&self) -> SecretFr {
        let mut copy = self.identity_secret;
        SecretFr::from(&mut copy)
    }

    /// zerokit's witness for one message, with the path from zerokit's tree.
    pub fn zerokit_witness(&self, message: MessageInputs) -> RLNWitnessInput {
        RLNWitnessInput::new_single()
            .identity_secret(self.secret())
            .user_message_limit(Fr::from(self.limit))
            .merkle_proof(self.zerokit_path())
            .x(message.x)
            .external_nullifier(message.external_nullifier)
            .message_id(message.message_id)
            .build()
            .expect("a valid zerokit witness")
    }

    /// zerokit's message-independent part of the witness.
    pub fn zerokit_partial_witness(&self) -> RLNPartialWitnessInput {
        RLNPartialWitnessInput::new()
            .identity_secret(self.secret())
            .user_message_limit(Fr::from(self.limit))
            .merkle_proof(self.zerokit_path())
            .build()
            .expect("a valid zerokit partial witness")
    }
}

/// Random message inputs with the given message id.
pub fn random_message<R: RngCore>(rng: &mut R, message_id: u64) -> MessageInputs {
    MessageInputs {
        x: Fr::rand(rng),
        external_nullifier: Fr::rand(rng),
        message_id: Fr::from(message_id),
    }
}

/// Our prover's full input set for one message.
pub fn rln_inputs(member: &MemberInputs, message: MessageInputs) -> RlnInputs {
    RlnInputs {
        identity_secret: member.identity_secret,
        user_message_limit: member.user_message_limit,
        message_id: message.message_id,
        path_elements: member.path_elements,
        identity_path_index: member.identity_path_index,
        x: message.x,
        external_nullifier: message.external_nullifier,
    }
}

/// Our public values in zerokit's shape.
pub fn to_zerokit_values(values: &ProofValues) -> RLNProofValues {
    RLNProofValues::new_single()
        .y(values.y)
        .root(values.root)
        .nullifier(values.nullifier)
        .x(values.x)
        .external_nullifier(values.external_nullifier)
        .build()
}

/// zerokit's public values in our shape; `None` for its multi-message-id variant, which the
/// Waku network does not use.
pub fn from_zerokit_values(values: &RLNProofValues) -> Option<ProofValues> {
    Some(ProofValues {
        root: values.root(),
        external_nullifier: values.external_nullifier(),
        x: values.x(),
        y: values.y()?,
        nullifier: values.nullifier()?,
    })
}
