//! RLN v2: the field and hashes, identities, the membership tree, the circuit, proofs and the
//! Waku rules around them.

pub mod circuit;
pub mod field;
pub mod identity;
pub mod poseidon;
pub mod tree;
