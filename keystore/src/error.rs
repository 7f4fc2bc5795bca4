//! Everything that can go wrong with a keystore, each with its own variant so callers (and
//! users) can tell a wrong password from a damaged file.

use std::{io, path::PathBuf};

/// Why a keystore operation failed. No variant leaves the file modified.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// Reading or writing the file failed.
    #[error("keystore {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file is not valid JSON (often a truncated write by another program).
    #[error("keystore {} is not valid JSON (truncated or damaged?): {detail}", .path.display())]
    InvalidJson {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        detail: String,
    },
    /// The JSON is not a keystore of this format.
    #[error("keystore {} is not a waku-rln-relay keystore: {detail}", .path.display())]
    NotAKeystore {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The keystore's format version is not one we read.
    #[error("keystore version {0} is not supported (expected 0.2)")]
    UnsupportedVersion(String),
    /// A credential uses a key derivation function we do not know.
    #[error("credential {key} uses key derivation `{kdf}`; supported: pbkdf2, scrypt")]
    UnknownKdf {
        /// The credential.
        key: String,
        /// The function named in the file.
        kdf: String,
    },
    /// A credential uses a cipher we do not know.
    #[error("credential {key} uses cipher `{cipher}`; supported: aes-128-ctr")]
    UnknownCipher {
        /// The credential.
        key: String,
        /// The cipher named in the file.
        cipher: String,
    },
    /// A credential's parameters are malformed (bad hex, wrong lengths, unsupported values).
    #[error("credential {key} is malformed: {detail}")]
    MalformedCredential {
        /// The credential.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// The password does not decrypt the credential.
    #[error("wrong password for credential {key}")]
    WrongPassword {
        /// The credential.
        key: String,
    },
    /// The password is right but the stored MAC does not match: the file was altered.
    #[error(
        "credential {key} decrypts with this password but its MAC does not match: the file was \
         altered or damaged"
    )]
    MacMismatch {
        /// The credential.
        key: String,
    },
    /// A credential is already filed under this key.
    #[error("the keystore already holds credential {0} (same chain, contract and tree index)")]
    Duplicate(String),
    /// No credential is filed under this key.
    #[error("the keystore holds no credential {0}")]
    NotFound(String),
}

impl KeystoreError {
    pub(crate) fn io(path: &std::path::Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
