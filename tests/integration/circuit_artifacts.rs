//! The network's circuit files: pinned digests, both proving-key formats, the compiled-in
//! verifying key, and a clear error for every way a file can be wrong.

use crate::common;

use std::path::{Path, PathBuf};

use wakurln::rln::circuit::{
    self, Artifact, ArtifactError, NUM_CONSTRAINTS, load_proving_key, read_pinned,
    vk::network_verifying_key,
};

fn shared_dir() -> PathBuf {
    common::shared_file("circuits/waku-rln-v2/SHA256SUMS")
        .parent()
        .unwrap()
        .to_path_buf()
}

fn sorted(matrix: &circuit::Matrices) -> Vec<Vec<(String, usize)>> {
    [&matrix.a, &matrix.b]
        .into_iter()
        .flatten()
        .map(|row| {
            let mut row: Vec<_> = row.iter().map(|(c, w)| (c.to_string(), *w)).collect();
            row.sort_by_key(|(_, w)| *w);
            row
        })
        .collect()
}

#[test]
fn pins_match_the_shared_sums() {
    let sums = std::fs::read_to_string(shared_dir().join("SHA256SUMS")).unwrap();
    for artifact in Artifact::ALL {
        let line = format!("{}  {}", artifact.sha256(), artifact.file_name());
        assert!(sums.lines().any(|l| l == line), "{line} not in SHA256SUMS");
        read_pinned(&shared_dir(), artifact).unwrap();
    }
}

#[test]
fn both_key_formats_load_and_agree_with_the_compiled_in_key() {
    let ark =
        circuit::parse_arkzkey(&read_pinned(&shared_dir(), Artifact::ArkZkey).unwrap()).unwrap();
    let snark = circuit::parse_zkey(&read_pinned(&shared_dir(), Artifact::Zkey).unwrap()).unwrap();
    assert_eq!(&ark.key.vk, network_verifying_key());
    assert_eq!(&snark.key.vk, network_verifying_key());
    assert_eq!(ark.key, snark.key);
    assert_eq!(ark.matrices.num_constraints, NUM_CONSTRAINTS);
    assert_eq!(sorted(&ark.matrices), sorted(&snark.matrices));
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wakurln-artifacts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_variant(name: &str, artifact: Artifact, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let dir = temp_dir(name);
    let mut bytes = std::fs::read(shared_dir().join(artifact.file_name())).unwrap();
    edit(&mut bytes);
    std::fs::write(dir.join(artifact.file_name()), bytes).unwrap();
    dir
}

fn load_err(dir: &Path) -> String {
    let err = load_proving_key(dir).unwrap_err();
    let text = err.to_string();
    assert!(!text.contains('\n'), "one line: {text}");
    text
}

#[test]
fn missing_key_says_how_to_install() {
    let text = load_err(&temp_dir("missing"));
    assert!(
        text.contains("missing") && text.contains("wakurln circuit install"),
        "{text}"
    );
}

#[test]
fn truncated_key_is_named_truncated() {
    let dir = write_variant("truncated", Artifact::ArkZkey, |b| b.truncate(b.len() / 2));
    let text = load_err(&dir);
    assert!(
        text.contains("expected") && text.contains("truncated"),
        "{text}"
    );
    let err = circuit::parse_zkey(
        &std::fs::read(shared_dir().join("rln_final.zkey")).unwrap()[..2_000_000],
    );
    assert!(
        matches!(err, Err(ArtifactError::Truncated { .. })),
        "{err:?}"
    );
}

#[test]
fn corrupt_key_is_refused() {
    // A flipped bit inside a point: only the digest can notice, and it does.
    let dir = write_variant("corrupt", Artifact::ArkZkey, |b| b[100_000] ^= 0x01);
    assert!(matches!(
        load_proving_key(&dir),
        Err(ArtifactError::DigestMismatch { .. })
    ));
    let dir = write_variant("garbage", Artifact::Zkey, |b| {
        b[..4].copy_from_slice(b"junk")
    });
    let text = load_err(&dir);
    assert!(text.contains("wrong magic"), "{text}");
}

#[test]
fn key_of_another_circuit_is_named_as_such() {
    // The network key with one IC point swapped for another: well formed, wrong circuit.
    let dir = write_variant("foreign", Artifact::ArkZkey, |b| {
        let (first, second) = (456..520, 520..584);
        let copy = b[second].to_vec();
        b[first].copy_from_slice(&copy);
    });
    let text = load_err(&dir);
    assert!(text.contains("different circuit"), "{text}");
}
