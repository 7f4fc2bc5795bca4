//! RLN v2 as The Waku Network runs it: the BN254 scalar field and Poseidon, identities, the
//! membership tree and its root window, the circuit (keys, witness graph), the Groth16 prover
//! and verifier, the Waku rules around a proof (epochs, external nullifier, signal hash, wire
//! forms, secret recovery) and the in-memory nullifier log that catches double signalling.
//!
//! Nothing here touches the network or a database: the node persists what it needs above this
//! crate.

pub mod circuit;
pub mod field;
pub mod identity;
pub mod nullifier_log;
pub mod poseidon;
pub mod proto;
pub mod prover;
pub mod tree;
pub mod verifier;
pub mod waku;
