//! `wakurln rln` and `wakurln circuit` as scripts use them: keygen, prove, verify, install.

use crate::common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::{Value, json};
use wakurln::rln::{
    field::{Fr, to_decimal},
    identity::Identity,
    tree::MerkleTree,
};

fn wakurln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wakurln"))
        .args(args)
        .env_remove("WAKURLN_CIRCUIT_DIR")
        .output()
        .expect("run wakurln")
}

fn circuit_dir() -> String {
    let graph = common::shared_file("circuits/waku-rln-v2/graph.bin");
    graph.parent().unwrap().display().to_string()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wakurln-cli-rln-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn code_and_stderr(out: &Output) -> (i32, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    (out.status.code().unwrap(), stderr)
}

#[test]
fn keygen_is_deterministic_with_a_seed_and_random_without() {
    let a = stdout_json(&wakurln(&["rln", "keygen", "--seed", "alice"]));
    let b = stdout_json(&wakurln(&["rln", "keygen", "--seed", "alice"]));
    assert_eq!(a, b);
    let expected = Identity::from_seed(b"alice");
    assert_eq!(a["idCommitment"], to_decimal(&expected.commitment));
    assert_eq!(a["idSecretHash"], to_decimal(&expected.secret_hash));
    let c = stdout_json(&wakurln(&["rln", "keygen"]));
    let d = stdout_json(&wakurln(&["rln", "keygen"]));
    assert_ne!(c["idTrapdoor"], d["idTrapdoor"]);
}

/// Writes a circom input file for a member at index 5 and returns the tree's root.
fn write_input(dir: &Path, message_id: u64) -> (PathBuf, Fr) {
    let identity = Identity::from_seed(b"cli member");
    let mut tree = MerkleTree::new();
    tree.set_range(0, &[Fr::from(11u64), Fr::from(12u64)])
        .unwrap();
    tree.set(5, identity.rate_commitment(10)).unwrap();
    let path = tree.proof(5).unwrap();
    let input = json!({
        "identitySecret": to_decimal(&identity.secret_hash),
        "userMessageLimit": "10",
        "messageId": message_id.to_string(),
        "pathElements": path.elements.iter().map(to_decimal).collect::<Vec<_>>(),
        "identityPathIndex": path.path_bits().iter().map(|b| if *b { "1" } else { "0" }).collect::<Vec<_>>(),
        "x": "123456789",
        "externalNullifier": "987654321",
    });
    let file = dir.join(format!("input-{message_id}.json"));
    std::fs::write(&file, input.to_string()).unwrap();
    (file, tree.root())
}

#[test]
fn prove_then_verify_and_every_failure_has_its_exit_code() {
    let dir = temp_dir("prove");
    let (input, root) = write_input(&dir, 3);
    let proof = dir.join("proof.bin");
    let (input_s, proof_s) = (input.to_str().unwrap(), proof.to_str().unwrap());
    let printed = stdout_json(&wakurln(&[
        "rln",
        "prove",
        "--input",
        input_s,
        "--out",
        proof_s,
        "--circuit-dir",
        &circuit_dir(),
    ]));
    assert_eq!(printed["root"], to_decimal(&root));
    assert_eq!(std::fs::read(&proof).unwrap().len(), 288);

    let root_dec = to_decimal(&root);
    let ok = wakurln(&[
        "rln", "verify", "--proof", proof_s, "--root", "1", "--root", &root_dec,
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "valid\n");

    let (code, msg) = code_and_stderr(&wakurln(&[
        "rln", "verify", "--proof", proof_s, "--root", "1",
    ]));
    assert_eq!(code, 1);
    assert!(msg.contains("not one of the accepted roots"), "{msg}");

    let tampered = dir.join("tampered.bin");
    let mut bytes = std::fs::read(&proof).unwrap();
    bytes[128 + 64] ^= 1; // x
    std::fs::write(&tampered, &bytes).unwrap();
    let (code, msg) = code_and_stderr(&wakurln(&[
        "rln",
        "verify",
        "--proof",
        tampered.to_str().unwrap(),
        "--root",
        &root_dec,
    ]));
    assert_eq!((code, msg.contains("does not verify")), (1, true), "{msg}");

    let truncated = dir.join("truncated.bin");
    std::fs::write(&truncated, &bytes[..200]).unwrap();
    let (code, _) = code_and_stderr(&wakurln(&[
        "rln",
        "verify",
        "--proof",
        truncated.to_str().unwrap(),
        "--root",
        &root_dec,
    ]));
    assert_eq!(code, 2);
    let (code, msg) = code_and_stderr(&wakurln(&[
        "rln", "verify", "--proof", proof_s, "--root", "0xzz",
    ]));
    assert_eq!((code, msg.contains("--root")), (2, true), "{msg}");
}

#[test]
fn prove_refuses_bad_inputs_and_missing_keys_clearly() {
    let dir = temp_dir("refuse");
    let out = dir.join("proof.bin");
    let out_s = out.to_str().unwrap();
    let (over_limit, _) = write_input(&dir, 10);
    let (code, msg) = code_and_stderr(&wakurln(&[
        "rln",
        "prove",
        "--input",
        over_limit.to_str().unwrap(),
        "--out",
        out_s,
        "--circuit-dir",
        &circuit_dir(),
    ]));
    assert_eq!(
        (code, msg.contains("not below the member's limit")),
        (2, true),
        "{msg}"
    );

    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"identitySecret": "1"}"#).unwrap();
    let (code, msg) = code_and_stderr(&wakurln(&[
        "rln",
        "prove",
        "--input",
        bad.to_str().unwrap(),
        "--out",
        out_s,
        "--circuit-dir",
        &circuit_dir(),
    ]));
    assert_eq!(
        (code, msg.contains("not a valid RLN input file")),
        (2, true),
        "{msg}"
    );

    let (ok_input, _) = write_input(&dir, 1);
    let empty = temp_dir("no-keys");
    let (code, msg) = code_and_stderr(&wakurln(&[
        "rln",
        "prove",
        "--input",
        ok_input.to_str().unwrap(),
        "--out",
        out_s,
        "--circuit-dir",
        empty.to_str().unwrap(),
    ]));
    assert_eq!(
        (code, msg.contains("wakurln circuit install")),
        (1, true),
        "{msg}"
    );
    assert!(!out.exists());
}

#[test]
fn circuit_install_checks_digests_and_the_installed_keys_prove() {
    let target = temp_dir("install");
    let out = wakurln(&[
        "circuit",
        "install",
        "--from",
        &circuit_dir(),
        "--circuit-dir",
        target.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(target.join("rln_final.arkzkey").is_file() && target.join("graph.bin").is_file());

    let forged = temp_dir("forged");
    for name in ["rln_final.arkzkey", "graph.bin"] {
        std::fs::copy(target.join(name), forged.join(name)).unwrap();
    }
    let mut graph = std::fs::read(forged.join("graph.bin")).unwrap();
    graph.truncate(graph.len() - 10);
    std::fs::write(forged.join("graph.bin"), graph).unwrap();
    let elsewhere = temp_dir("install-2");
    let (code, msg) = code_and_stderr(&wakurln(&[
        "circuit",
        "install",
        "--from",
        forged.to_str().unwrap(),
        "--circuit-dir",
        elsewhere.to_str().unwrap(),
    ]));
    assert_eq!((code, msg.contains("SHA-256")), (2, true), "{msg}");
    assert!(
        std::fs::read_dir(&elsewhere).unwrap().next().is_none(),
        "nothing written"
    );

    // The installed files are what `rln prove` uses.
    let (input, _) = write_input(&target, 2);
    let out = target.join("proof.bin");
    let proved = wakurln(&[
        "rln",
        "prove",
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--circuit-dir",
        target.to_str().unwrap(),
    ]);
    assert!(
        proved.status.success(),
        "{}",
        String::from_utf8_lossy(&proved.stderr)
    );
}

#[test]
fn circuit_install_fetches_the_published_package_with_cargo() {
    let target = temp_dir("install-crates-io");
    let out = wakurln(&[
        "circuit",
        "install",
        "--circuit-dir",
        target.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The files are the network's: the same bytes as the shared, pinned ones.
    for name in ["rln_final.arkzkey", "graph.bin"] {
        let installed = std::fs::read(target.join(name)).unwrap();
        let shared =
            std::fs::read(common::shared_file(&format!("circuits/waku-rln-v2/{name}"))).unwrap();
        assert!(installed == shared, "{name} differs from the pinned file");
    }
}
