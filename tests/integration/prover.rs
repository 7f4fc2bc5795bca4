//! End to end: witness from the graph, proof from the network's key, verification with the
//! compiled-in key; full and prepared paths; refusals.

use crate::common;

use std::sync::OnceLock;

use ark_ff::UniformRand;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use wakurln::rln::{
    field::Fr,
    identity::Identity,
    poseidon::poseidon,
    prover::{MemberInputs, MessageInputs, RlnProveError, RlnProver},
    tree::MerkleTree,
    verifier::{Verifier, decode_proof},
    waku::RlnProofBytes,
};

fn prover() -> &'static RlnProver {
    static PROVER: OnceLock<RlnProver> = OnceLock::new();
    PROVER.get_or_init(|| {
        let dir = common::shared_file("circuits/waku-rln-v2/graph.bin");
        RlnProver::load(dir.parent().unwrap()).expect("network circuit loads")
    })
}

fn member(rng: &mut ChaCha20Rng, limit: u64) -> (MemberInputs, Fr) {
    let identity = Identity::random(rng);
    let mut tree = MerkleTree::new();
    let leaves: Vec<Fr> = (0..40).map(|_| Fr::rand(rng)).collect();
    tree.set_range(0, &leaves).unwrap();
    tree.set(17, identity.rate_commitment(limit)).unwrap();
    let path = tree.proof(17).unwrap();
    let inputs = MemberInputs {
        identity_secret: identity.secret_hash,
        user_message_limit: Fr::from(limit),
        path_elements: path.elements,
        identity_path_index: path.path_bits(),
    };
    (inputs, tree.root())
}

fn message(rng: &mut ChaCha20Rng, id: u64) -> MessageInputs {
    MessageInputs {
        x: Fr::rand(rng),
        external_nullifier: Fr::rand(rng),
        message_id: Fr::from(id),
    }
}

#[test]
fn full_proof_verifies_with_the_network_key() {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let (member, root) = member(&mut rng, 100);
    let msg = message(&mut rng, 7);
    let inputs = wakurln::rln::circuit::graph::RlnInputs {
        identity_secret: member.identity_secret,
        user_message_limit: member.user_message_limit,
        message_id: msg.message_id,
        path_elements: member.path_elements,
        identity_path_index: member.identity_path_index,
        x: msg.x,
        external_nullifier: msg.external_nullifier,
    };
    let proof = prover().prove(&inputs, &mut rng).unwrap();
    assert_eq!(proof.values.root, root);
    let a1 = poseidon(&[
        member.identity_secret,
        msg.external_nullifier,
        msg.message_id,
    ]);
    assert_eq!(proof.values.y, member.identity_secret + a1 * msg.x);
    assert_eq!(proof.values.nullifier, poseidon(&[a1]));
    assert!(Verifier::network().verify(&proof.proof, &proof.values.public_inputs()));

    // Through the 288-byte layout and back.
    let bytes = proof.to_layout().to_bytes();
    let back = RlnProofBytes::from_bytes(&bytes).unwrap();
    let decoded = decode_proof(&back.proof).unwrap();
    assert!(Verifier::network().verify(&decoded, &back.values.public_inputs()));
    let mut wrong = back.values.public_inputs();
    wrong[3] += Fr::from(1u64);
    assert!(!Verifier::network().verify(&decoded, &wrong));
}

#[test]
fn prepared_member_proofs_verify() {
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let (member, root) = member(&mut rng, 20);
    let prepared = prover().prepare(&member).unwrap();
    for id in [0, 5, 19] {
        let proof = prover()
            .prove_prepared(&prepared, message(&mut rng, id), &mut rng)
            .unwrap();
        assert_eq!(proof.values.root, root);
        assert!(Verifier::network().verify(&proof.proof, &proof.values.public_inputs()));
    }
}

#[test]
fn message_id_at_or_above_the_limit_is_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let (member, _) = member(&mut rng, 10);
    let prepared = prover().prepare(&member).unwrap();
    let err = prover()
        .prove_prepared(&prepared, message(&mut rng, 10), &mut rng)
        .unwrap_err();
    assert!(
        matches!(err, RlnProveError::MessageIdOutOfRange { .. }),
        "{err}"
    );
}

/// A member prepared on one path and moved to the next by `refresh` equals one prepared from
/// scratch on the new path, and proves against the new root: after a registration far away
/// in the tree (only the upper levels change) and after one beside the member (every level).
#[test]
fn a_refreshed_member_equals_one_prepared_from_scratch() {
    let mut rng = ChaCha20Rng::seed_from_u64(14);
    let identity = Identity::random(&mut rng);
    let mut tree = MerkleTree::new();
    let leaves: Vec<Fr> = (0..3000).map(|_| Fr::rand(&mut rng)).collect();
    tree.set_range(0, &leaves).unwrap();
    tree.set(1234, identity.rate_commitment(20)).unwrap();
    let inputs = |tree: &MerkleTree| {
        let path = tree.proof(1234).unwrap();
        MemberInputs {
            identity_secret: identity.secret_hash,
            user_message_limit: Fr::from(20u64),
            path_elements: path.elements,
            identity_path_index: path.path_bits(),
        }
    };
    let mut prepared = prover().prepare(&inputs(&tree)).unwrap();
    let unchanged = prover().refresh(&prepared, &inputs(&tree)).unwrap();
    assert_eq!(unchanged, prepared);
    // The next registration (index 3000) meets the member's path at level 12; then a leaf
    // beside the member (1235) changes its first sibling and so every level above.
    for registered in [3000, 1235] {
        tree.set(registered, Fr::rand(&mut rng)).unwrap();
        let moved = inputs(&tree);
        let refreshed = prover().refresh(&prepared, &moved).unwrap();
        let scratch = prover().prepare(&moved).unwrap();
        assert!(
            refreshed == scratch,
            "refresh after leaf {registered} differs"
        );
        assert!(refreshed != prepared);
        let proof = prover()
            .prove_prepared(&refreshed, message(&mut rng, 4), &mut rng)
            .unwrap();
        assert_eq!(proof.values.root, tree.root());
        assert!(Verifier::network().verify(&proof.proof, &proof.values.public_inputs()));
        prepared = refreshed;
    }
}
