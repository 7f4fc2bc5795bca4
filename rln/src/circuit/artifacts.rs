//! The artifact files, their pinned SHA-256 digests, and the errors users see when one is
//! missing or wrong.

use std::{
    fmt, io,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use super::key::ProvingKey;

/// A circuit artifact of The Waku Network's RLN v2 circuit (tree depth 20).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifact {
    /// Proving key and matrices in arkworks form (fast to load).
    ArkZkey,
    /// The same proving key in snarkjs form.
    Zkey,
    /// iden3 witness graph for native witness computation.
    Graph,
    /// circom's WebAssembly witness calculator (reference only).
    Wasm,
}

impl Artifact {
    /// Every artifact.
    pub const ALL: [Artifact; 4] = [Self::ArkZkey, Self::Zkey, Self::Graph, Self::Wasm];

    /// The file name in a circuit directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::ArkZkey => "rln_final.arkzkey",
            Self::Zkey => "rln_final.zkey",
            Self::Graph => "graph.bin",
            Self::Wasm => "rln.wasm",
        }
    }

    /// The pinned SHA-256 digest (lowercase hex): the files of the network's ceremony.
    pub fn sha256(self) -> &'static str {
        match self {
            Self::ArkZkey => "4736d28be856af6a739e1d5e9bebb69fd17f476a57cf4ad86375ed6cfda9827a",
            Self::Zkey => "ae30d3d4b29d9dab8c65ff181644a3eb57c2c0fa9f687ea3baf8c7f711d7946a",
            Self::Graph => "eaf1868e27b22c7deb6da8a253300c99effcfa417f807ef7105d3fb8628d1c54",
            Self::Wasm => "b4d2d17598d8ca8c7de34f2bdad067e7c0578b9175f7f95f753cbd39f128863f",
        }
    }
}

impl fmt::Display for Artifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file_name())
    }
}

/// Why a circuit artifact could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The file does not exist.
    #[error(
        "circuit file {} is missing; run `wakurln circuit install` to put the network's keys there",
        .path.display()
    )]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The file exists but cannot be read.
    #[error("cannot read circuit file {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file's digest is not the pinned one.
    #[error(
        "circuit file {} is not the network's {artifact}: its SHA-256 is {actual}, expected \
         {expected}{hint}; reinstall it with `wakurln circuit install`",
        .path.display()
    )]
    DigestMismatch {
        /// The file.
        path: PathBuf,
        /// Which artifact it should be.
        artifact: Artifact,
        /// The pinned digest.
        expected: &'static str,
        /// The file's digest.
        actual: String,
        /// What parsing found, when it explains the mismatch.
        hint: String,
    },
    /// The data ends early.
    #[error("{what} is truncated: at byte {offset} it needs {needed} more bytes, {available} left")]
    Truncated {
        /// Which file.
        what: &'static str,
        /// Where reading stopped.
        offset: usize,
        /// Bytes needed.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// The data is not in the expected format.
    #[error("{what} is corrupt at byte {offset}: {detail}")]
    Malformed {
        /// Which file.
        what: &'static str,
        /// Where the problem was found.
        offset: usize,
        /// What is wrong.
        detail: String,
    },
    /// The file is well formed but belongs to another circuit.
    #[error("{file} is for a different circuit than The Waku Network's RLN v2: {detail}")]
    WrongCircuit {
        /// Which file.
        file: &'static str,
        /// What differs.
        detail: String,
    },
}

/// Reads `dir/<artifact>` and checks its pinned digest.
pub fn read_pinned(dir: &Path, artifact: Artifact) -> Result<Vec<u8>, ArtifactError> {
    let path = dir.join(artifact.file_name());
    let bytes = std::fs::read(&path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => ArtifactError::Missing { path: path.clone() },
        _ => ArtifactError::Io {
            path: path.clone(),
            source,
        },
    })?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != artifact.sha256() {
        return Err(ArtifactError::DigestMismatch {
            hint: diagnose(artifact, &bytes),
            path,
            artifact,
            expected: artifact.sha256(),
            actual,
        });
    }
    Ok(bytes)
}

/// Parses a file whose digest did not match, to tell the user why (truncated, corrupt or
/// another circuit) rather than only that the digest differs.
fn diagnose(artifact: Artifact, bytes: &[u8]) -> String {
    let parsed = match artifact {
        Artifact::ArkZkey => super::arkzkey::parse(bytes).map(drop),
        Artifact::Zkey => super::zkey::parse(bytes).map(drop),
        Artifact::Graph | Artifact::Wasm => return String::new(),
    };
    match parsed {
        Ok(()) => String::new(),
        Err(e) => format!(" ({e})"),
    }
}

/// Loads the proving key from `dir`: `rln_final.arkzkey` if present, else `rln_final.zkey`.
pub fn load_proving_key(dir: &Path) -> Result<ProvingKey, ArtifactError> {
    match read_pinned(dir, Artifact::ArkZkey) {
        Ok(bytes) => super::arkzkey::parse(&bytes),
        Err(ArtifactError::Missing { .. }) if dir.join(Artifact::Zkey.file_name()).exists() => {
            super::zkey::parse(&read_pinned(dir, Artifact::Zkey)?)
        }
        Err(e) => Err(e),
    }
}
