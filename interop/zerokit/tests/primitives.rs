//! The primitives under every RLN proof agree with zerokit on random inputs: Poseidon for each
//! arity the circuit and tree use, hash_to_field, the Waku external nullifier, and the secret
//! recovered from two shares.

use ark_ff::{PrimeField, UniformRand};
use proptest::{
    prelude::*,
    test_runner::{Config, RngSeed},
};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rln::prelude::{PoseidonHash, compute_id_secret, hash_to_field_le};
use wakurln::rln::{
    field::{Fr, hash_to_field},
    poseidon::poseidon,
    waku::{Epoch, external_nullifier, recover_secret, rln_identifier},
};
use zerokit_utils::hasher::ZerokitHasher;

fn config(seed: u64) -> Config {
    Config {
        cases: 256,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Any 256-bit value reduced into the field, so values near r and 0 appear too.
fn field() -> impl Strategy<Value = Fr> {
    prop_oneof![
        any::<[u8; 32]>().prop_map(|b| Fr::from_le_bytes_mod_order(&b)),
        any::<u64>().prop_map(Fr::from),
        (0u64..4).prop_map(|k| -Fr::from(k)),
    ]
}

proptest! {
    #![proptest_config(config(1))]

    #[test]
    fn poseidon_agrees_for_one_to_four_inputs(inputs in prop::collection::vec(field(), 1..=4)) {
        prop_assert_eq!(poseidon(&inputs), PoseidonHash::hash(&inputs));
    }
}

proptest! {
    #![proptest_config(config(2))]

    #[test]
    fn hash_to_field_agrees(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        prop_assert_eq!(hash_to_field(&bytes), hash_to_field_le(&bytes));
    }
}

/// The epoch and identifier are built here from their wire bytes, independently of our
/// helpers, the way a zerokit caller builds them.
#[test]
fn external_nullifier_agrees() {
    let mut identifier = [0u8; 32];
    identifier[..25].copy_from_slice(b"rln/waku-rln-relay/v2.0.0");
    let identifier = Fr::from_le_bytes_mod_order(&identifier);
    assert_eq!(rln_identifier(), identifier);

    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let epochs = [0, 1, u64::MAX, 1_700_000_000 / 600].into_iter();
    for epoch in epochs.chain((0..200).map(|_| rng.next_u64())) {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&epoch.to_le_bytes());
        let theirs = PoseidonHash::hash(&[Fr::from_le_bytes_mod_order(&bytes), identifier]);
        assert_eq!(
            external_nullifier(Epoch(epoch), rln_identifier()),
            theirs,
            "epoch {epoch}"
        );
    }
}

#[test]
fn recovered_secrets_agree() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    for _ in 0..200 {
        let secret = Fr::rand(&mut rng);
        let external = Fr::rand(&mut rng);
        let a1 = poseidon(&[secret, external, Fr::from(3u64)]);
        let share = |x: Fr| (x, secret + a1 * x);
        let (first, second) = (share(Fr::rand(&mut rng)), share(Fr::rand(&mut rng)));

        let ours = recover_secret(first, second).unwrap();
        let theirs = compute_id_secret(first, second).unwrap();
        assert_eq!(ours, secret);
        assert_eq!(ours, *theirs);
    }

    // Two shares with the same x determine nothing; both refuse.
    let x = Fr::rand(&mut rng);
    let (first, second) = ((x, Fr::rand(&mut rng)), (x, Fr::rand(&mut rng)));
    assert!(recover_secret(first, second).is_err());
    assert!(compute_id_secret(first, second).is_err());
}
