//! The Waku RLN wire format against values that do not come from our code:
//!
//! - the reference node's own tests and encoders (nwaku, `tests/waku_rln_relay/
//!   test_waku_rln_relay.nim` and `waku/waku_rln_relay/` at commit 7d1c6ab): its hash-to-field
//!   vector, the RateLimitProof it encodes (fields 1-7, all written, in order), its epoch bytes
//!   (the epoch as 8 bytes little-endian in 32) and its RLN identifier (the ASCII, not hashed);
//! - zerokit v0.9.0, the RLN library the reference node links (`rln/tests/public.rs`,
//!   `rln/tests/ffi.rs`): its seeded identities and its Merkle proof vector;
//! - values computed by an independent implementation (a Python Keccak-256 and Poseidon that
//!   reproduces every zerokit and nwaku vector above), following the reference node's
//!   `toRLNSignal` and `generateProof`: the external nullifier of an epoch, the signal hash of a
//!   message, and the shares and nullifiers of two message ids.
//!
//! Each is checked in both directions where there are two: encoding gives the reference
//! bytes, and decoding the reference bytes gives the values.
//!
//! The prover is also checked for what no vector shows: two proofs of the same inputs differ
//! (the blinding factors are random, not zero) and neither holds a witness value.

use prost::Message;
use wakurln::{
    message::WakuMessage,
    proto::rln::RateLimitProof,
    rln::{
        field::{self, Fr, hash_to_field},
        identity::Identity,
        prover::{MemberInputs, MessageInputs, RlnProver},
        tree::MerkleTree,
        verifier::Verifier,
        waku::{Epoch, RlnProofData, external_nullifier, rln_identifier},
    },
};

use crate::common::devnet::circuit_dir;

/// A field element from big-endian hex (how nwaku's `inHex` and zerokit's tests print them).
fn be(hex: &str) -> Fr {
    field::parse(&format!("0x{}", hex.trim_start_matches("0x"))).unwrap()
}

fn be_hex(x: &Fr) -> String {
    let mut bytes = field::to_le_bytes(x);
    bytes.reverse();
    hex::encode(bytes)
}

#[test]
fn nwaku_hash_to_field_vector() {
    // nwaku "sha256 hash utils": its wrapper hashes the input with an 8-byte little-endian
    // length prefix, through zerokit's Keccak-256 read little-endian, reduced mod r.
    let input = [&5u64.to_le_bytes()[..], b"Hello"].concat();
    assert_eq!(
        be_hex(&hash_to_field(&input)),
        "1e32b3ab545c07c8b4a7ab1ca4f46bc31e4fdc29ac3b240ef1d54b4017a26e4c"
    );
}

#[test]
fn nwaku_rate_limit_proof_bytes_both_ways() {
    // nwaku "RateLimitProof Protobuf encode/init test": each field filled with its number.
    let proof = RateLimitProof {
        proof: vec![1u8; 128].into(),
        merkle_root: vec![2u8; 32].into(),
        epoch: vec![3u8; 32].into(),
        share_x: vec![4u8; 32].into(),
        share_y: vec![5u8; 32].into(),
        nullifier: vec![6u8; 32].into(),
        rln_identifier: vec![7u8; 32].into(),
    };
    // What nwaku's encoder writes: fields 1 to 7 in order, each a length-delimited bytes.
    let mut expected = vec![0x0a, 0x80, 0x01];
    expected.extend([1u8; 128]);
    for (tag, fill) in [
        (0x12, 2u8),
        (0x1a, 3),
        (0x22, 4),
        (0x2a, 5),
        (0x32, 6),
        (0x3a, 7),
    ] {
        expected.extend([tag, 0x20]);
        expected.extend([fill; 32]);
    }
    assert_eq!(expected.len(), 335);
    assert_eq!(proof.encode_to_vec(), expected);
    assert_eq!(RateLimitProof::decode(expected.as_slice()).unwrap(), proof);
}

#[test]
fn nwaku_epoch_and_identifier_bytes() {
    // calcEpoch(1700000000 s) with 600 s epochs, written as 8 bytes LE in 32 (toEpoch).
    let epoch = Epoch::from_timestamp_ns(1_700_000_000_000_000_000, 600);
    assert_eq!(epoch, Epoch(2_833_333));
    let mut wire = [0u8; 32];
    wire[..4].copy_from_slice(&[0xb5, 0x3b, 0x2b, 0x00]);
    assert_eq!(epoch.to_bytes(), wire);
    assert_eq!(Epoch::from_bytes(&wire).unwrap(), epoch);
    // DefaultRlnIdentifier: the ASCII zero-padded to 32 bytes, as a little-endian element.
    let mut id = [0u8; 32];
    id[..25].copy_from_slice(b"rln/waku-rln-relay/v2.0.0");
    assert_eq!(
        hex::encode(id),
        "726c6e2f77616b752d726c6e2d72656c61792f76322e302e3000000000000000"
    );
    assert_eq!(field::to_le_bytes(&rln_identifier()), id);
    assert_eq!(field::from_le_bytes(&id).unwrap(), rln_identifier());
}

#[test]
fn zerokit_seeded_identity() {
    // zerokit's extended seeded keygen of the seed bytes 0..=9.
    let id = Identity::from_seed(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(
        id.trapdoor,
        be("0766ce6c7e7a01bdf5b3f257616f603918c30946fa23480f2859c597817e6716")
    );
    assert_eq!(
        id.nullifier,
        be("1f18714c7bc83b5bca9e89d404cf6f2f585bc4c0f7ed8b53742b7e2b298f50b4")
    );
    assert_eq!(
        id.secret_hash,
        be("2aca62aaa7abaf3686fff2caf00f55ab9462dc12db5b5d4bcf3994e671f8e521")
    );
    assert_eq!(
        id.commitment,
        be("068b66aa0a8320d2e56842581553285393188714c48f9b17acd198b4f1734c5c")
    );
}

#[test]
fn zerokit_merkle_proof_vector() {
    // rln/tests/ffi.rs test_merkle_proof_ffi: the rate commitment of
    // hash_to_field(b"test-merkle-proof") with 100 messages, at leaf 3 of an empty depth-20
    // tree.
    let secret = hash_to_field(b"test-merkle-proof");
    let commitment = wakurln::rln::poseidon::poseidon(&[secret]);
    let leaf = wakurln::rln::identity::rate_commitment(commitment, 100);
    let mut tree = MerkleTree::new();
    tree.set(3, leaf).unwrap();
    assert_eq!(
        tree.root(),
        be("0ca44928dfaa33b33d7204b1691194ba46ed393ecbe0dad1448bff673f2519af")
    );
    let path = tree.proof(3).unwrap();
    let bits = path.path_bits();
    assert!(bits[0] && bits[1] && bits[2..].iter().all(|b| !b));
    // Above the first level the siblings are the empty subtrees Z1..Z19.
    assert_eq!(
        path.elements[1],
        be("2098f5fb9e239eab3ceac3f27b81e481dc3124d55ffed523a839ee8446b64864")
    );
    assert_eq!(
        path.elements[19],
        be("1830ee67b5fb554ad5f63d4388800e1cfe78e310697d46e43c9ce36134f72cca")
    );
}

#[test]
fn external_nullifiers_of_an_independent_implementation() {
    for (epoch, expected) in [
        (
            0u64,
            "0bc6ffec52f0603eaff365fc1a7db10d691bc6b693aa843d06fd27dac5dd1603",
        ),
        (
            1,
            "1f559a79a3e5e5bf22d465810214dfe030c7c9f6d50081e1fdc400fdbafbd45e",
        ),
        (
            2_833_333,
            "02dae3601a583f2acbf562a17ba062348fbd89f3b6ecff60240877c15256e1b4",
        ),
    ] {
        assert_eq!(
            be_hex(&external_nullifier(Epoch(epoch), rln_identifier())),
            expected,
            "epoch {epoch}"
        );
    }
}

fn hello() -> WakuMessage {
    WakuMessage::builder(
        "/waku/2/default-content/proto".parse().unwrap(),
        b"Hello".to_vec(),
    )
    .timestamp(1_700_000_000_000_000_000)
    .build()
    .unwrap()
}

#[test]
fn signal_hash_of_an_independent_implementation() {
    // toRLNSignal: payload, content topic, timestamp as 8 bytes little-endian.
    assert_eq!(
        be_hex(&hello().signal_x()),
        "08b04843329291f7b22a7c8af38e8aaf60bc90e07fdef6cc3d11465508b48983"
    );
}

#[test]
fn shares_and_nullifiers_from_the_prover_match_an_independent_implementation() {
    let prover = RlnProver::load(&circuit_dir()).unwrap();
    // zerokit's seeded identity secret (the first draw of the seed 0..=9), 600 s epochs.
    let secret = be("0766ce6c7e7a01bdf5b3f257616f603918c30946fa23480f2859c597817e6716");
    let commitment = wakurln::rln::poseidon::poseidon(&[secret]);
    let mut tree = MerkleTree::new();
    tree.set(0, wakurln::rln::identity::rate_commitment(commitment, 100))
        .unwrap();
    let path = tree.proof(0).unwrap();
    let member = prover
        .prepare(&MemberInputs {
            identity_secret: secret,
            user_message_limit: Fr::from(100u64),
            path_elements: path.elements,
            identity_path_index: path.path_bits(),
        })
        .unwrap();
    let message = hello();
    let epoch = Epoch::from_timestamp_ns(message.timestamp().unwrap(), 600);
    let inputs = |id: u64| MessageInputs {
        x: message.signal_x(),
        external_nullifier: external_nullifier(epoch, rln_identifier()),
        message_id: Fr::from(id),
    };
    let mut rng = rand::thread_rng();
    for (id, y, nullifier) in [
        (
            0,
            "1d6dbcd3083b9b4bb1426e8a279b2ace87a8c26c00d69edfda6abcbe7ca60f8c",
            "038dfb739d93d340c2a6e97de5a790ca302cba68020b1ccb11108dd78d4987c8",
        ),
        (
            1,
            "2d5d94f8dd4e347262f8781dbd997b9f07c8dd7fbbab3077e3a3127e3f7c808a",
            "0123ba4aa849bb94857ec224996dd06be54c3f9d1bbb18c21154a6e6324e9fa0",
        ),
    ] {
        let proof = prover
            .prove_prepared(&member, inputs(id), &mut rng)
            .unwrap();
        assert_eq!(be_hex(&proof.values.y), y, "share of message id {id}");
        assert_eq!(
            be_hex(&proof.values.nullifier),
            nullifier,
            "nullifier of {id}"
        );
        assert!(Verifier::network().verify(&proof.proof, &proof.values.public_inputs()));
        // The wire form carries them in the fields the reference node reads.
        let data =
            RlnProofData::from_rln_layout(&proof.to_layout(), epoch, rln_identifier()).unwrap();
        let wire = RateLimitProof::decode(data.encode().as_slice()).unwrap();
        assert_eq!(wire.share_y.as_ref(), field::to_le_bytes(&proof.values.y));
        assert_eq!(
            wire.nullifier.as_ref(),
            field::to_le_bytes(&proof.values.nullifier)
        );
        assert_eq!(wire.epoch.as_ref(), epoch.to_bytes());
    }

    // Two proofs of the very same inputs differ: the blinding factors r and s are random.
    // Neither carries a witness value in its bytes.
    let first = prover.prove_prepared(&member, inputs(0), &mut rng).unwrap();
    let second = prover.prove_prepared(&member, inputs(0), &mut rng).unwrap();
    assert_eq!(first.values, second.values, "the same public values");
    let (a, b) = (first.to_layout().to_bytes(), second.to_layout().to_bytes());
    for (part, range) in [("A", 0..32), ("B", 32..96), ("C", 96..128)] {
        assert_ne!(
            a[range.clone()],
            b[range],
            "the {part} points of two proofs are equal"
        );
    }
    for proof in [&a, &b] {
        for (what, value) in [
            ("identity secret", secret),
            ("rate commitment", tree.leaf(0)),
            ("commitment", commitment),
        ] {
            for bytes in [field::to_le_bytes(&value), {
                let mut be = field::to_le_bytes(&value);
                be.reverse();
                be
            }] {
                assert!(
                    !proof[..128].windows(32).any(|w| w == bytes),
                    "the proof holds the {what}"
                );
            }
        }
    }
}
