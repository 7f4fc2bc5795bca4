//! The node key: secp256k1 (as the Nim node uses) or Ed25519 (as the JS client uses),
//! persisted in the data directory so the peer id survives restarts, or given as hex.

use std::{io::Write, os::unix::fs::OpenOptionsExt, path::Path};

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

/// Parses a 32-byte secret key in hex (with or without 0x).
pub fn from_hex(kind: KeyKind, text: &str) -> Result<Keypair, String> {
    let digits = text.trim().trim_start_matches("0x");
    let mut bytes = hex::decode(digits).map_err(|e| format!("the node key is not hex: {e}"))?;
    if bytes.len() != 32 {
        return Err(format!(
            "the node key must be 32 bytes, not {}",
            bytes.len()
        ));
    }
    match kind {
        KeyKind::Secp256k1 => identity::secp256k1::SecretKey::try_from_bytes(&mut bytes)
            .map(|k| identity::secp256k1::Keypair::from(k).into())
            .map_err(|e| format!("not a secp256k1 secret key: {e}")),
        KeyKind::Ed25519 => identity::ed25519::SecretKey::try_from_bytes(&mut bytes)
            .map(|k| identity::ed25519::Keypair::from(k).into())
            .map_err(|e| format!("not an Ed25519 secret key: {e}")),
    }
}

/// Loads the key at `path`, or creates one of `kind` there (mode 0600).
pub fn load_or_create(path: &Path, kind: KeyKind) -> Result<Keypair, String> {
    match std::fs::read(path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
            format!(
                "the node key {} is damaged ({e}); move it away to get a new peer id",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = match kind {
                KeyKind::Secp256k1 => Keypair::generate_secp256k1(),
                KeyKind::Ed25519 => Keypair::generate_ed25519(),
            };
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|e| format!("cannot encode the node key: {e}"))?;
            let tmp = path.with_extension("tmp");
            let write = || -> std::io::Result<()> {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .mode(0o600)
                    .open(&tmp)?;
                f.write_all(&bytes)?;
                f.sync_all()?;
                std::fs::rename(&tmp, path)
            };
            write().map_err(|e| format!("cannot write the node key {}: {e}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(format!("cannot read the node key {}: {e}", path.display())),
    }
}
