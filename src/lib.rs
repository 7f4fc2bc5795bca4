//! wakurln: a Waku v2 node built around RLN v2 spam protection, and the toolchain its users
//! need.
//!
//! This crate is the library behind the `wakurln` binary. So far it holds the wire layer:
//!
//! - [`proto`]: prost types for every Waku protocol we speak, generated from `proto/`;
//! - [`message`]: the validated [`message::WakuMessage`] and the deterministic message hash;
//! - [`topics`]: static-shard pubsub topics, content topics and autosharding;
//! - [`protocols::codec`]: varint-length-prefixed framing for request/response protocols.

pub mod chain;
pub mod credentials;
pub mod filter;
pub mod message;
pub mod node;
pub mod proto;
pub mod protocols;
pub mod rln;
pub mod store;
pub mod topics;
