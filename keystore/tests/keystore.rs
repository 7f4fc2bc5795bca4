//! The keystore against the published vector, round trips with both KDFs, every error case
//! (each leaving the file untouched), file mode, and concurrent writers.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use rand::SeedableRng;
use serde_json::Value;
use sha2::{Digest, Sha256};
use wakurln_keystore::{
    ChainId, IdentityCredential, Kdf, Keystore, KeystoreError, MembershipContract,
    MembershipCredential,
};

const FAST: Kdf = Kdf::Pbkdf2 { c: 1_000 };

fn vector_path() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/testdata/keystore/nwaku_keystore.json");
    assert!(
        path.is_file(),
        "missing {}: tests need ../shared",
        path.display()
    );
    path
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wakurln-keystore-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn credential(index: u64) -> MembershipCredential {
    let byte = |b: u8| [b.wrapping_add(index as u8); 32];
    MembershipCredential {
        membership_contract: MembershipContract {
            chain_id: ChainId("59141".into()),
            address: "0xB9cd878C90E49F797B4431fBF4fb333108CB90e6".into(),
        },
        tree_index: index,
        identity_credential: IdentityCredential {
            id_trapdoor: byte(1),
            id_nullifier: byte(2),
            id_secret_hash: byte(3),
            id_commitment: byte(4),
        },
        user_message_limit: Some(100),
    }
}

#[test]
fn the_published_vector_decrypts() {
    let keystore = Keystore::open(vector_path()).unwrap();
    let entries = keystore.entries();
    assert_eq!(entries.len(), 4);
    let decrypted: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = entries
            .iter()
            .map(|e| {
                s.spawn(|| {
                    (
                        e.key.clone(),
                        keystore.decrypt(&e.key, b"sup3rsecure").unwrap(),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut indices: Vec<u64> = decrypted.iter().map(|(_, c)| c.tree_index).collect();
    indices.sort();
    assert_eq!(indices, vec![1, 8, 6684, 6685]);
    for (key, cred) in &decrypted {
        assert_eq!(&cred.key(), key, "key of tree index {}", cred.tree_index);
    }
    let (_, eight) = decrypted.iter().find(|(_, c)| c.tree_index == 8).unwrap();
    assert_eq!(eight.membership_contract.chain_id.0, "0xAA36A7");
    assert_eq!(
        eight.membership_contract.address,
        "0x8e1F3742B987d8BA376c0CBbD7357fE1F003ED71"
    );
    assert_eq!(eight.user_message_limit, None);
    let id = &eight.identity_credential;
    assert_eq!(&id.id_trapdoor[..4], &[211, 23, 66, 42]);
    assert_eq!(&id.id_nullifier[..4], &[238, 168, 239, 65]);
    assert_eq!(&id.id_secret_hash[..4], &[150, 54, 194, 28]);
    assert_eq!(id.id_commitment[31], 15);
    assert_eq!(
        hex::encode_upper(Sha256::digest(
            b"0xAA36A70x8e1F3742B987d8BA376c0CBbD7357fE1F003ED718"
        )),
        "9DB2B4718A97485B9F70F68D1CC19F4E10F0B4CE943418838E94956CB8E57548"
    );
}

#[test]
fn round_trips_with_both_kdfs_and_mode_0600() {
    let dir = temp_dir("roundtrip");
    let path = dir.join("keystore.json");
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for (i, kdf) in [
        FAST,
        Kdf::Scrypt {
            log_n: 10,
            r: 1,
            p: 8,
        },
    ]
    .into_iter()
    .enumerate()
    {
        let cred = credential(i as u64);
        let key = Keystore::add(&path, &cred, b"pw", kdf, &mut rng).unwrap();
        let ks = Keystore::open(&path).unwrap();
        assert_eq!(ks.decrypt(&key, b"pw").unwrap(), cred);
        assert_eq!(ks.kdf_of(&key).unwrap(), kdf);
    }
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let listed = Keystore::open(&path).unwrap().entries();
    assert_eq!(listed[1].membership.as_ref().unwrap().2, 1);
}

/// Runs `act` and checks that the file is byte-for-byte unchanged afterwards.
fn untouched<T>(path: &Path, act: impl FnOnce() -> T) -> T {
    let before = std::fs::read(path).unwrap();
    let out = act();
    assert_eq!(std::fs::read(path).unwrap(), before, "the file changed");
    out
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut doc);
    std::fs::write(path, serde_json::to_vec(&doc).unwrap()).unwrap();
}

#[test]
fn every_error_is_distinct_and_leaves_the_file_untouched() {
    let dir = temp_dir("errors");
    let path = dir.join("keystore.json");
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let key = Keystore::add(&path, &credential(7), b"right", FAST, &mut rng).unwrap();

    let ks = Keystore::open(&path).unwrap();
    assert!(matches!(
        ks.decrypt(&key, b"wrong"),
        Err(KeystoreError::WrongPassword { .. })
    ));
    assert!(matches!(
        ks.decrypt("NOPE", b"right"),
        Err(KeystoreError::NotFound(_))
    ));

    let dup = untouched(&path, || {
        Keystore::add(&path, &credential(7), b"x", FAST, &mut rng)
    });
    assert!(matches!(dup, Err(KeystoreError::Duplicate(k)) if k == key));

    let tampered = dir.join("tampered.json");
    std::fs::copy(&path, &tampered).unwrap();
    edit_json(&tampered, |d| {
        let mac = &mut d["credentials"][&key]["crypto"]["mac"];
        let flipped = mac
            .as_str()
            .unwrap()
            .replacen('0', "1", 1)
            .replacen('a', "b", 1);
        *mac = Value::String(flipped);
    });
    let err = Keystore::open(&tampered)
        .unwrap()
        .decrypt(&key, b"right")
        .unwrap_err();
    assert!(matches!(err, KeystoreError::MacMismatch { .. }), "{err}");

    for (name, field, value) in [
        ("kdf", "kdf", "argon2id"),
        ("cipher", "cipher", "aes-256-gcm"),
    ] {
        let odd = dir.join(format!("{name}.json"));
        std::fs::copy(&path, &odd).unwrap();
        edit_json(&odd, |d| {
            d["credentials"][&key]["crypto"][field] = Value::from(value)
        });
        let err = untouched(&odd, || {
            Keystore::open(&odd).unwrap().decrypt(&key, b"right")
        });
        match (name, err) {
            ("kdf", Err(KeystoreError::UnknownKdf { kdf, .. })) => assert_eq!(kdf, "argon2id"),
            ("cipher", Err(KeystoreError::UnknownCipher { cipher, .. })) => {
                assert_eq!(cipher, "aes-256-gcm")
            }
            (_, other) => panic!("{name}: {other:?}"),
        }
        // Adding to a keystore that holds an odd credential still works and keeps it.
        Keystore::add(&odd, &credential(8), b"x", FAST, &mut rng).unwrap();
        assert!(Keystore::open(&odd).unwrap().contains(&key));
    }

    let truncated = dir.join("truncated.json");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = untouched(&truncated, || {
        Keystore::add(&truncated, &credential(9), b"x", FAST, &mut rng)
    });
    assert!(
        matches!(err, Err(KeystoreError::InvalidJson { .. })),
        "{err:?}"
    );

    let messages: Vec<String> = [
        KeystoreError::WrongPassword { key: "K".into() },
        KeystoreError::MacMismatch { key: "K".into() },
        KeystoreError::Duplicate("K".into()),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert!(messages.iter().all(|m| !m.is_empty() && !m.contains('\n')));
}

#[test]
fn change_password_re_encrypts_and_keeps_other_credentials() {
    let dir = temp_dir("change");
    let path = dir.join("keystore.json");
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let a = Keystore::add(&path, &credential(1), b"old", FAST, &mut rng).unwrap();
    let b = Keystore::add(&path, &credential(2), b"other", FAST, &mut rng).unwrap();
    let wrong = untouched(&path, || {
        Keystore::change_password(&path, &a, b"bad", b"new", FAST, &mut rng)
    });
    assert!(matches!(wrong, Err(KeystoreError::WrongPassword { .. })));
    Keystore::change_password(&path, &a, b"old", b"new", FAST, &mut rng).unwrap();
    let ks = Keystore::open(&path).unwrap();
    assert_eq!(ks.decrypt(&a, b"new").unwrap(), credential(1));
    assert_eq!(ks.decrypt(&b, b"other").unwrap(), credential(2));
}

#[test]
fn concurrent_writers_lose_nothing() {
    let dir = temp_dir("concurrent");
    let path = dir.join("keystore.json");
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let path = &path;
            s.spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(t);
                for i in 0..5 {
                    let fast = Kdf::Pbkdf2 { c: 1 };
                    Keystore::add(path, &credential(t * 100 + i), b"pw", fast, &mut rng).unwrap();
                }
            });
        }
    });
    assert_eq!(Keystore::open(&path).unwrap().entries().len(), 40);
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let _ = Keystore::from_slice("fuzz.json", &bytes);
    }

    #[test]
    fn arbitrary_credential_entries_never_panic(kdf in "[a-z0-9]{0,8}", c in proptest::prelude::any::<u64>(), salt in "[0-9a-f]{0,40}", iv in "[0-9a-z]{0,34}") {
        let doc = serde_json::json!({
            "application": "waku-rln-relay", "appIdentifier": "x", "version": "0.2",
            "credentials": {"K": {"crypto": {
                "cipher": "aes-128-ctr", "cipherparams": {"iv": iv}, "ciphertext": "00",
                "kdf": kdf, "kdfparams": {"dklen": 32, "c": c % 4, "n": c, "r": 1, "p": 1, "prf": "hmac-sha256", "salt": salt},
                "mac": "00"}}}
        });
        let ks = Keystore::from_slice("fuzz.json", &serde_json::to_vec(&doc).unwrap()).unwrap();
        let _ = ks.decrypt("K", b"pw");
    }
}
