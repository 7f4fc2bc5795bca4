//! The node key: secp256k1 (as the Nim node uses) or Ed25519 (as the JS client uses),
//! persisted in the data directory so the peer id survives restarts, or given as hex.

use std::{io::Write, os::unix::fs::PermissionsExt, path::Path};

use zeroize::Zeroizing;

use libp2p::identity::{self, Keypair};

/// The kind of node key to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyKind {
    /// secp256k1.
    #[default]
    Secp256k1,
    /// Ed25519.
    Ed25519,
}

/// Why a node key could not be read, made or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text is not hex.
    #[error("the node key is not hex: {0}")]
    NotHex(#[source] hex::FromHexError),
    /// The key is not 32 bytes.
    #[error("the node key must be 32 bytes, not {0}")]
    Length(usize),
    /// The bytes are not a secret key of the kind asked for.
    #[error("not {kind} secret key: {source}")]
    Invalid {
        /// "a secp256k1" or "an Ed25519".
        kind: &'static str,
        /// What libp2p said.
        #[source]
        source: identity::DecodingError,
    },
    /// The key file does not decode.
    #[error("the node key {path} is damaged ({source}); move it away to get a new peer id")]
    Damaged {
        /// The file.
        path: String,
        /// What libp2p said.
        #[source]
        source: identity::DecodingError,
    },
    /// The new key could not be encoded.
    #[error("cannot encode the node key: {0}")]
    Encode(#[source] identity::DecodingError),
    /// The key file could not be read or written.
    #[error("cannot {action} the node key {path}: {source}")]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: String,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
}

/// Parses a 32-byte secret key in hex (with or without 0x).
pub fn from_hex(kind: KeyKind, text: &str) -> Result<Keypair, KeyError> {
    let digits = text.trim().trim_start_matches("0x");
    // The secret's bytes are wiped however this ends (the key types wipe their copies).
    let mut bytes = Zeroizing::new(hex::decode(digits).map_err(KeyError::NotHex)?);
    if bytes.len() != 32 {
        return Err(KeyError::Length(bytes.len()));
    }
    match kind {
        KeyKind::Secp256k1 => identity::secp256k1::SecretKey::try_from_bytes(&mut bytes)
            .map(|k| identity::secp256k1::Keypair::from(k).into())
            .map_err(|source| KeyError::Invalid {
                kind: "a secp256k1",
                source,
            }),
        KeyKind::Ed25519 => identity::ed25519::SecretKey::try_from_bytes(&mut bytes)
            .map(|k| identity::ed25519::Keypair::from(k).into())
            .map_err(|source| KeyError::Invalid {
                kind: "an Ed25519",
                source,
            }),
    }
}

/// Loads the key at `path`, or creates one of `kind` there (mode 0600).
pub fn load_or_create(path: &Path, kind: KeyKind) -> Result<Keypair, KeyError> {
    let io = |action, source| KeyError::Io {
        action,
        path: path.display().to_string(),
        source,
    };
    match std::fs::read(path).map(Zeroizing::new) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|source| KeyError::Damaged {
            path: path.display().to_string(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = match kind {
                KeyKind::Secp256k1 => Keypair::generate_secp256k1(),
                KeyKind::Ed25519 => Keypair::generate_ed25519(),
            };
            let bytes = Zeroizing::new(key.to_protobuf_encoding().map_err(KeyError::Encode)?);
            // A temporary file created exclusively (random name, mode 0600) beside the key,
            // then renamed over it: a crash leaves no half-written key.
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let write = || -> std::io::Result<()> {
                std::fs::create_dir_all(dir)?;
                let mut f = tempfile::Builder::new()
                    .prefix(".node-key.")
                    .permissions(std::fs::Permissions::from_mode(0o600))
                    .tempfile_in(dir)?;
                f.write_all(&bytes)?;
                f.as_file().sync_all()?;
                f.persist(path).map_err(|e| e.error)?;
                Ok(())
            };
            write().map_err(|e| io("write", e))?;
            Ok(key)
        }
        Err(e) => Err(io("read", e)),
    }
}
