//! The RLN v2 circuit: its artifacts (proving key, witness graph), their pinned digests, the
//! network's verifying key compiled into the binary, and the native witness calculator
//! ([`graph`]).
//!
//! Files are located by the caller (the node's data dir, or `../shared/circuits/waku-rln-v2/`
//! in tests). [`load_proving_key`] reads `rln_final.arkzkey`, falling back to
//! `rln_final.zkey`; each file must match its pinned SHA-256 digest, and a key must prove for
//! the network's circuit, so a stale or foreign file is refused with a message that says so.

mod arkzkey;
mod artifacts;
pub mod graph;
mod key;
mod reader;
pub mod vk;
mod zkey;

pub use artifacts::{Artifact, ArtifactError, load_proving_key, read_pinned};
pub use key::{DOMAIN_SIZE, Matrices, NUM_CONSTRAINTS, NUM_PUBLIC, NUM_WIRES, ProvingKey};

/// Parses `.arkzkey` bytes without the digest check (the circuit checks still apply).
pub fn parse_arkzkey(bytes: &[u8]) -> Result<ProvingKey, ArtifactError> {
    arkzkey::parse(bytes)
}

/// Parses snarkjs `.zkey` bytes without the digest check (the circuit checks still apply).
pub fn parse_zkey(bytes: &[u8]) -> Result<ProvingKey, ArtifactError> {
    zkey::parse(bytes)
}
