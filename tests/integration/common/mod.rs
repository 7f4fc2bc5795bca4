//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// A file under `../shared/`, the material every checkout has beside the project. Panics with a
/// clear message when it is missing: a test must never pass by skipping its data.
pub fn shared_file(relative: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(relative);
    assert!(
        path.is_file(),
        "missing shared test material {}: the tests need ../shared beside the project root",
        path.display()
    );
    path
}

/// Reads and parses a JSON file under `../shared/`.
pub fn shared_json(relative: &str) -> serde_json::Value {
    let path = shared_file(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Runs `tests/js/<script>` with the machine's Node.js, feeding `stdin`, and returns its stdout.
/// Panics (never skips) when Node.js or the npm packages of `tests/js` are missing, or when the
/// script fails.
pub fn run_node_script(script: &str, args: &[&std::path::Path], stdin: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::process::{Command, Stdio};

    const SETUP: &str = "run `scripts/test`, which installs tests/js's npm packages (npm ci)";
    let js = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        js.join("node_modules").is_dir(),
        "{} is missing: {SETUP}",
        js.join("node_modules").display()
    );
    let mut child = Command::new("node")
        .arg(js.join(script))
        .args(args)
        .current_dir(&js)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `node` ({e}): install Node.js, then {SETUP}"));
    let mut input = child.stdin.take().expect("piped stdin");
    // Feed stdin from a thread so a script that writes before reading everything cannot
    // deadlock against us.
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&stdin));
    let output = child.wait_with_output().expect("node runs to completion");
    writer
        .join()
        .expect("stdin writer")
        .unwrap_or_else(|e| panic!("cannot write to node's stdin: {e}"));
    assert!(
        output.status.success(),
        "node {script} failed ({}); if a package is missing, {SETUP}:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A throwaway anvil chain on a free loopback port, from the npm package that `scripts/test`
/// installs into contracts/. Panics (never skips) when it is missing.
pub fn anvil(extra: &[&str]) -> wakurln::chain::anvil::Anvil {
    let bin = wakurln::chain::anvil::project_binary();
    assert!(
        bin.is_file(),
        "{} is missing: run `scripts/test`, which installs contracts/'s npm packages",
        bin.display()
    );
    wakurln::chain::anvil::Anvil::start(&bin, extra).expect("anvil starts")
}

/// The private keys of anvil's first accounts: anvil's published development keys, funded
/// with ETH on every fresh anvil chain.
pub const ANVIL_KEYS: [&str; 3] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
];

pub mod devnet;
pub mod http;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod raw;
