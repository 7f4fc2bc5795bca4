//! wakurln: a Waku v2 node built around RLN v2 spam protection, and the toolchain its users
//! need.
//!
//! This crate is the library behind the `wakurln` binary:
//!
//! - [`proto`]: prost types for every Waku protocol we speak, generated from `proto/`;
//! - [`message`]: the validated [`message::WakuMessage`] and the deterministic message hash;
//! - [`topics`]: static-shard pubsub topics, content topics and autosharding;
//! - [`protocols::codec`]: varint-length-prefixed framing for request/response protocols;
//! - [`rln`]: the RLN v2 prover, verifier, membership tree and nullifier log;
//! - [`chain`]: the membership contract, its sync into the tree, and registration;
//! - [`store`] and [`filter`]: the archive and the filter protocol;
//! - [`node`]: the relay node that ties them together, with its REST API;
//! - [`clock`]: the wall clock every timestamp check reads.

pub mod chain;
pub mod clock;
pub mod credentials;
pub mod filter;
pub mod message;
pub mod node;
pub mod proto;
pub mod protocols;
pub mod rln;
pub mod store;
pub mod topics;
