//! Keystores cross between wakurln and the JS client's Keystore (npm `@waku/rln`) both ways.

use crate::common;

use std::path::PathBuf;

use rand::SeedableRng;
use serde_json::{Value, json};
use wakurln::{credentials::to_stored, rln::identity::Identity};
use wakurln_keystore::{ChainId, Kdf, Keystore, MembershipContract, MembershipCredential};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wakurln-ks-js-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn member(seed: &str, chain: &str, index: u64, limit: Option<u64>) -> MembershipCredential {
    MembershipCredential {
        membership_contract: MembershipContract {
            chain_id: ChainId(chain.into()),
            address: "0xB9cd878C90E49F797B4431fBF4fb333108CB90e6".into(),
        },
        tree_index: index,
        identity_credential: to_stored(&Identity::from_seed(seed.as_bytes())),
        user_message_limit: limit,
    }
}

/// Big-endian hex, as the JS client exposes identities.
fn be_hex(le: &[u8; 32]) -> String {
    let mut be = *le;
    be.reverse();
    hex::encode(be)
}

#[test]
fn the_js_client_reads_what_we_write() {
    let dir = temp_dir("read");
    let path = dir.join("keystore.json");
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let ours = [
        member("a", "59141", 3, Some(100)),
        member("b", "0xAA36A7", 6684, None),
    ];
    for cred in &ours {
        Keystore::add(&path, cred, b"p4ss", Kdf::Pbkdf2 { c: 2_000 }, &mut rng).unwrap();
    }
    let read: Value = serde_json::from_slice(&common::run_node_script(
        "keystore.mjs",
        &[
            std::path::Path::new("read"),
            &path,
            std::path::Path::new("p4ss"),
        ],
        b"",
    ))
    .unwrap();
    for cred in &ours {
        let js = &read[cred.key()];
        assert_eq!(js["treeIndex"], cred.tree_index, "{js}");
        assert_eq!(js["chainId"], cred.membership_contract.chain_id.0);
        assert_eq!(js["address"], cred.membership_contract.address);
        assert_eq!(js["rateLimit"], json!(cred.user_message_limit));
        let id = &cred.identity_credential;
        assert_eq!(js["idCommitment"], be_hex(&id.id_commitment));
        assert_eq!(js["idTrapdoor"], be_hex(&id.id_trapdoor));
        assert_eq!(js["idNullifier"], be_hex(&id.id_nullifier));
        assert_eq!(js["idSecretHash"], be_hex(&id.id_secret_hash));
    }
}

#[test]
fn we_read_what_the_js_client_writes() {
    let dir = temp_dir("write");
    let path = dir.join("from-js.json");
    let theirs = [
        member("c", "59141", 12, Some(20)),
        member("d", "11155111", 0, Some(600)),
    ];
    let input: Vec<Value> = theirs
        .iter()
        .map(|c| {
            let id = &c.identity_credential;
            json!({
                "chainId": c.membership_contract.chain_id.0,
                "address": c.membership_contract.address,
                "treeIndex": c.tree_index,
                "rateLimit": c.user_message_limit,
                "idTrapdoor": be_hex(&id.id_trapdoor),
                "idNullifier": be_hex(&id.id_nullifier),
                "idSecretHash": be_hex(&id.id_secret_hash),
                "idCommitment": be_hex(&id.id_commitment),
            })
        })
        .collect();
    let keys: Vec<String> = serde_json::from_slice(&common::run_node_script(
        "keystore.mjs",
        &[
            std::path::Path::new("write"),
            &path,
            std::path::Path::new("js-pw"),
        ],
        serde_json::to_string(&input).unwrap().as_bytes(),
    ))
    .unwrap();
    let keystore = Keystore::open(&path).unwrap();
    for (cred, key) in theirs.iter().zip(&keys) {
        assert_eq!(&cred.key(), key);
        let decrypted = keystore.decrypt(key, b"js-pw").unwrap();
        assert_eq!(decrypted.identity_credential, cred.identity_credential);
        assert_eq!(decrypted.tree_index, cred.tree_index);
        assert_eq!(decrypted.user_message_limit, cred.user_message_limit);
    }
}
