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
    let out = Command::new(env!("CARGO_BIN_EXE_wakurln"))
        .args(["demo", "--circuit-dir"])
        .arg(&circuit_dir)
        .env("WAKURLN_ANVIL", &anvil)
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
}
