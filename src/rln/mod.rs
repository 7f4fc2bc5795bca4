//! RLN v2: the field and hashes, identities, the membership tree, the circuit, proofs and the
//! Waku rules around them.

pub mod circuit;
pub mod field;
pub mod identity;
pub mod nullifier_log;
pub mod nullifier_store;
pub mod poseidon;
pub mod prover;
pub mod tree;
pub mod verifier;
pub mod waku;
