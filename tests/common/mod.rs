//! Helpers shared by the integration tests.

#![allow(dead_code)]

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
