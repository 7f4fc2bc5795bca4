//! Proofs cross over both ways: ours (full and prepared) verify in zerokit, zerokit's (full and
//! partial-then-finished) verify in ours, directly and through the 128-byte compressed form the
//! Waku wire carries; tampered public values are rejected on both sides.

use ark_ff::One;
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rln::prelude::{PoseidonHash, Proof, RLNProofValues, VerifyProofError, default_zkey_single};
use wakurln::rln::{
    circuit::vk::network_verifying_key,
    field::Fr,
    prover::RlnProof,
    verifier::{Verifier, decode_proof},
    waku::ProofValues,
};
use wakurln_zerokit_interop::{
    Member, from_zerokit_values, our_prover, random_message, rln_inputs, to_zerokit_values, zerokit,
};
use zerokit_utils::merkle_tree::ZerokitMerkleTree;

fn compressed(proof: &Proof) -> Vec<u8> {
    let mut bytes = Vec::new();
    proof.serialize_compressed(&mut bytes).unwrap();
    assert_eq!(bytes.len(), 128);
    bytes
}

/// zerokit accepts `proof` for the member's tree, and refuses it once x is changed.
fn assert_zerokit_accepts(ours: &RlnProof, member: &Member) {
    let root = member.zerokit_tree().root();
    assert_eq!(ours.values.root, root);
    let values = to_zerokit_values(&ours.values);
    let x = ours.values.x;
    assert!(
        zerokit()
            .verify_with_roots(&ours.proof, &values, &x, &[root])
            .unwrap()
    );

    let decoded = Proof::deserialize_compressed(&compressed(&ours.proof)[..]).unwrap();
    assert!(
        zerokit()
            .verify_with_roots(&decoded, &values, &x, &[root])
            .unwrap()
    );

    let tampered = to_zerokit_values(&ProofValues {
        x: x + Fr::one(),
        ..ours.values
    });
    let wrong_x = x + Fr::one();
    assert!(
        !zerokit()
            .verify_with_roots(&decoded, &tampered, &wrong_x, &[root])
            .unwrap()
    );
    assert!(matches!(
        zerokit().verify_with_roots(&decoded, &values, &wrong_x, &[root]),
        Err(VerifyProofError::InvalidSignal)
    ));
    assert!(matches!(
        zerokit().verify_with_roots(&decoded, &values, &x, &[root + Fr::one()]),
        Err(VerifyProofError::InvalidRoot)
    ));
}

/// We accept zerokit's proof for the member's tree, and refuse it once x or y is changed.
fn assert_we_accept(proof: &Proof, values: &RLNProofValues, member: &Member) {
    let values = from_zerokit_values(values).expect("a single-message-id proof");
    assert_eq!(values.root, member.our_tree().root());
    let verifier = Verifier::network();
    assert!(verifier.verify(proof, &values.public_inputs()));

    let decoded = decode_proof(&compressed(proof)).unwrap();
    assert!(verifier.verify(&decoded, &values.public_inputs()));

    for tampered in [
        ProofValues {
            x: values.x + Fr::one(),
            ..values
        },
        ProofValues {
            y: values.y + Fr::one(),
            ..values
        },
    ] {
        assert!(!verifier.verify(&decoded, &tampered.public_inputs()));
    }
}

#[test]
fn zerokit_ships_the_network_verifying_key() {
    assert_eq!(&default_zkey_single().0.vk, network_verifying_key());
}

#[test]
fn our_full_proof_verifies_in_zerokit() {
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let member = Member::random(&mut rng, 100, 13);
    let message = random_message(&mut rng, 42);
    let proof = our_prover()
        .prove(&rln_inputs(&member.our_inputs(), message), &mut rng)
        .unwrap();

    // zerokit derives the public values natively from the witness: they must be ours.
    let theirs = RLNProofValues::from_witness::<PoseidonHash>(&member.zerokit_witness(message));
    assert_eq!(theirs, to_zerokit_values(&proof.values));
    assert_zerokit_accepts(&proof, &member);
}

#[test]
fn our_prepared_proofs_verify_in_zerokit() {
    let mut rng = ChaCha20Rng::seed_from_u64(22);
    let member = Member::random(&mut rng, 20, 6);
    let prepared = our_prover().prepare(&member.our_inputs()).unwrap();
    for id in [0, 19] {
        let proof = our_prover()
            .prove_prepared(&prepared, random_message(&mut rng, id), &mut rng)
            .unwrap();
        assert_zerokit_accepts(&proof, &member);
    }
}

#[test]
fn zerokit_full_proof_verifies_in_ours() {
    let mut rng = ChaCha20Rng::seed_from_u64(23);
    let member = Member::random(&mut rng, 100, 29);
    let witness = member.zerokit_witness(random_message(&mut rng, 7));
    let (proof, values) = zerokit().generate_proof(&witness).unwrap();
    assert_we_accept(&proof, &values, &member);
}

#[test]
fn zerokit_finished_partial_proof_verifies_in_ours() {
    let mut rng = ChaCha20Rng::seed_from_u64(24);
    let member = Member::random(&mut rng, 10, 2);
    let partial = zerokit()
        .generate_partial_proof(&member.zerokit_partial_witness())
        .unwrap();
    let witness = member.zerokit_witness(random_message(&mut rng, 9));
    let (proof, values) = zerokit().finish_proof(&partial, &witness).unwrap();
    assert_we_accept(&proof, &values, &member);
}
