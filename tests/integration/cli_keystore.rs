//! `wakurln keystore` as members use it: passwords from files, the environment or nowhere;
//! listing without a password; revealing secrets only on request; moving credentials.

use crate::common;

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use serde_json::Value;
use wakurln::rln::{field, poseidon::poseidon};

fn wakurln(args: &[&str], password: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wakurln"));
    cmd.args(args)
        .env_remove("WAKURLN_KEYSTORE_PASSWORD")
        .env_remove("WAKURLN_KEYSTORE_NEW_PASSWORD")
        .stdin(Stdio::null());
    if let Some(pw) = password {
        cmd.env("WAKURLN_KEYSTORE_PASSWORD", pw);
    }
    cmd.output().expect("run wakurln")
}

fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// The exit code and the one error line (a progress line may precede it).
fn failure(out: &Output) -> (i32, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("deriving"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr:?}");
    (out.status.code().unwrap(), errors[0].to_owned())
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wakurln-cli-ks-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn new_list_show_and_reveal() {
    let dir = temp_dir("new");
    let path = dir.join("keystore.json");
    let created = ok_json(&wakurln(
        &["keystore", "new", "--path", s(&path)],
        Some("hunter2"),
    ));
    let key = created["key"].as_str().unwrap().to_owned();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let listed = wakurln(&["keystore", "list", "--path", s(&path)], None);
    assert!(listed.status.success());
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        format!("{key}  pending registration\n")
    );

    let shown = ok_json(&wakurln(
        &["keystore", "show", "--path", s(&path), "--key", &key],
        Some("hunter2"),
    ));
    assert_eq!(
        shown["identityCredential"]["idCommitment"],
        created["idCommitment"]
    );
    assert!(
        shown["identityCredential"].get("idTrapdoor").is_none(),
        "secrets hidden"
    );
    assert_eq!(shown["pending"], true);

    let pw_file = dir.join("pw");
    std::fs::write(&pw_file, "hunter2\n").unwrap();
    let revealed = ok_json(&wakurln(
        &[
            "keystore",
            "show",
            "--path",
            s(&path),
            "--key",
            &key,
            "--reveal",
            "--password-file",
            s(&pw_file),
        ],
        None,
    ));
    let id = &revealed["identityCredential"];
    let secret = field::parse(id["idSecretHash"].as_str().unwrap()).unwrap();
    assert_eq!(
        field::to_decimal(&poseidon(&[secret])),
        id["idCommitment"].as_str().unwrap()
    );

    let (code, msg) = failure(&wakurln(
        &["keystore", "show", "--path", s(&path), "--key", &key],
        Some("nope"),
    ));
    assert_eq!((code, msg.contains("wrong password")), (2, true), "{msg}");
    let (code, msg) = failure(&wakurln(
        &["keystore", "show", "--path", s(&path), "--key", &key],
        None,
    ));
    assert_eq!(
        (code, msg.contains("WAKURLN_KEYSTORE_PASSWORD")),
        (2, true),
        "{msg}"
    );
    let (code, msg) = failure(&wakurln(
        &["keystore", "list", "--path", s(&dir.join("none.json"))],
        None,
    ));
    assert_eq!((code, msg.contains("does not exist")), (2, true), "{msg}");
}

#[test]
fn import_export_and_change_password_with_the_published_vector() {
    let vector = common::shared_file("testdata/keystore/nwaku_keystore.json");
    let key = "9DB2B4718A97485B9F70F68D1CC19F4E10F0B4CE943418838E94956CB8E57548";
    let listed = wakurln(&["keystore", "list", "--path", s(&vector)], None);
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 4);

    let dir = temp_dir("move");
    let mine = dir.join("mine.json");
    let out = wakurln(
        &[
            "keystore",
            "import",
            "--path",
            s(&mine),
            "--from",
            s(&vector),
            "--key",
            key,
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, msg) = failure(&wakurln(
        &[
            "keystore",
            "import",
            "--path",
            s(&mine),
            "--from",
            s(&vector),
            "--key",
            key,
        ],
        None,
    ));
    assert_eq!((code, msg.contains("already holds")), (2, true), "{msg}");

    let shown = ok_json(&wakurln(
        &["keystore", "show", "--path", s(&mine), "--key", key],
        Some("sup3rsecure"),
    ));
    assert_eq!(shown["treeIndex"], 8);
    assert_eq!(shown["membershipContract"]["chainId"], "0xAA36A7");

    let exported = dir.join("exported.json");
    let out = wakurln(
        &[
            "keystore",
            "export",
            "--path",
            s(&mine),
            "--to",
            s(&exported),
            "--key",
            key,
        ],
        None,
    );
    assert!(out.status.success());

    let out = Command::new(env!("CARGO_BIN_EXE_wakurln"))
        .args([
            "keystore",
            "change-password",
            "--path",
            s(&exported),
            "--key",
            key,
        ])
        .env("WAKURLN_KEYSTORE_PASSWORD", "sup3rsecure")
        .env("WAKURLN_KEYSTORE_NEW_PASSWORD", "n3w")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = ok_json(&wakurln(
        &["keystore", "show", "--path", s(&exported), "--key", key],
        Some("n3w"),
    ));
    assert_eq!(shown["treeIndex"], 8);
    let (code, _) = failure(&wakurln(
        &["keystore", "show", "--path", s(&exported), "--key", key],
        Some("sup3rsecure"),
    ));
    assert_eq!(code, 2);
}
