//! `wakurln demo`, the README's run command, end to end: a chain, members, a line of nodes,
//! honest delivery, a double signal caught with the secret recovered, and a light client whose
//! proofless message goes out with a lent proof and comes back through filter.

use crate::common;

use std::process::Command;

#[test]
fn the_demo_delivers_honest_messages_and_catches_the_double_signal() {
    let circuit_dir = common::shared_file("circuits/waku-rln-v2/README.md")
        .parent()
        .unwrap()
        .to_path_buf();
    let anvil = wakurln::chain::anvil::project_binary();
    assert!(
        anvil.is_file(),
        "{} is missing: run `scripts/test`, which installs contracts/'s npm packages",
        anvil.display()
    );
    // Kept files (to read the secrets back) and the node's own log level, so every line a
    // node would log is checked for secrets below.
    let out = Command::new(env!("CARGO_BIN_EXE_wakurln"))
        .args(["demo", "--keep", "--circuit-dir"])
        .arg(&circuit_dir)
        .env("WAKURLN_ANVIL", &anvil)
        .env("RUST_LOG", "info,libp2p_gossipsub=error")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for node in 0..4 {
        assert!(
            stdout.contains(&format!("node{node}: delivered 3/3 honest messages")),
            "{stdout}"
        );
    }
    assert_eq!(
        stdout.matches("the light client's message").count(),
        5,
        "{stdout}"
    );
    assert!(
        stdout.contains("without a proof through node0: 200"),
        "{stdout}"
    );
    assert!(stdout.contains("came back through filter"), "{stdout}");
    assert!(stdout.contains("recovered her secret"), "{stdout}");
    assert!(stdout.contains("(it is mallory's)"), "{stdout}");
    assert!(
        !stdout.contains("UNEXPECTED") && !stdout.contains("unexpected"),
        "{stdout}"
    );

    let dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("the demo's files are in "))
        .map(std::path::PathBuf::from)
        .expect("--keep names the folder");
    let secrets = demo_secrets(&dir);
    assert!(
        secrets.len() > 30,
        "the members', nodes' and accounts' secrets: {}",
        secrets.len()
    );
    let everything = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        everything.lines().count() > 50,
        "the demo and its nodes logged: {everything}"
    );
    for (what, secret) in &secrets {
        assert!(
            !everything.contains(secret.as_str()),
            "{what} ({secret}) is in the demo's output or log"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Every secret the demo used, in each form it could be printed in: the members' identity
/// secrets (decimal, hex both byte orders), the keystore password, the nodes' private keys
/// and the chain accounts' keys.
fn demo_secrets(dir: &std::path::Path) -> Vec<(String, String)> {
    use wakurln::rln::field;
    let mut secrets = vec![(
        "the keystore password".to_owned(),
        "demo password".to_owned(),
    )];
    for key in wakurln::chain::devnet::DEV_KEYS {
        secrets.push((
            "an account key".into(),
            key.trim_start_matches("0x").to_owned(),
        ));
    }
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".keystore.json") {
            let ks = wakurln_keystore::Keystore::open(&path).unwrap();
            for e in ks.entries() {
                let c = ks.decrypt(&e.key, b"demo password").unwrap();
                let id = wakurln::credentials::from_stored(&c.identity_credential).unwrap();
                for (part, value) in [
                    ("trapdoor", id.trapdoor),
                    ("nullifier", id.nullifier),
                    ("secret hash", id.secret_hash),
                ] {
                    let le = field::to_le_bytes(&value);
                    let mut be = le;
                    be.reverse();
                    let what = format!("{name}'s {part}");
                    secrets.push((what.clone(), field::to_decimal(&value)));
                    secrets.push((what.clone(), hex::encode(le)));
                    secrets.push((what, hex::encode(be)));
                }
            }
        }
        let key = path.join("node.key");
        if key.is_file() {
            let pair =
                libp2p::identity::Keypair::from_protobuf_encoding(&std::fs::read(&key).unwrap())
                    .unwrap();
            let secret = pair.try_into_secp256k1().unwrap().secret().to_bytes();
            secrets.push((format!("{name}'s node key"), hex::encode(secret)));
        }
    }
    secrets
}
