//! RLN v2: the field and hashes, identities, the membership tree, the circuit, proofs and the
//! Waku rules around them.

pub mod field;
pub mod identity;
pub mod nullifier_log;
pub mod poseidon;
pub mod tree;
pub mod waku;
