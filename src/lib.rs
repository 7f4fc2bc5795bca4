//! wakurln: a Waku v2 node built around RLN v2 spam protection, and the toolchain its users
//! need.
//!
//! This crate is the library behind the `wakurln` binary. RLN itself (field, Poseidon, tree,
//! circuit, prover, verifier, nullifier log) is the `wakurln-rln` crate, re-exported as
//! [`rln`]. Here:
//!
//! - wire and data: [`proto`] (prost types of every protocol), [`message`] (the validated
//!   [`message::WakuMessage`] and its hash), [`topics`] (pubsub and content topics,
//!   autosharding), [`codec`] (length-prefixed framing), [`enr`] (node records);
//! - [`discovery`]: finding peers with discv5; [`dns_discovery`]: node lists published in DNS;
//! - one module per protocol, each with its wire format, its service and its client side:
//!   [`relay`] (with the validation pipeline and publishing), [`lightpush`] (with proof
//!   lending), [`filter`], [`store`], [`metadata`], [`peer_exchange`];
//! - [`chain`]: the membership contract, its sync into the tree and local development
//!   chains; [`credentials`]: the keystore as the node uses it; [`registration`]: registering
//!   a membership without ever losing its identity;
//! - [`node`]: the composition root that starts the protocols and runs the swarm;
//!   [`rest`]: the REST API over a node's handle; [`presets`]: the networks we know;
//! - [`rate_limit`]: per-peer and per-address request limits of the service protocols;
//! - helpers: [`clock`] (the wall clock and a clock tests can move), [`sqlite`] (opening
//!   the node's SQLite files) and [`redact`] (secrets kept out of logs and errors).

pub mod chain;
pub mod clock;
pub mod codec;
pub mod credentials;
pub mod discovery;
pub mod dns_discovery;
pub mod enr;
pub mod filter;
pub mod lightpush;
pub mod logging;
pub mod message;
pub mod metadata;
pub mod node;
pub mod peer_exchange;
pub mod presets;
pub mod proto;
pub mod rate_limit;
pub mod redact;
pub mod registration;
pub mod relay;
pub mod rest;
pub mod sqlite;
pub mod store;
pub mod topics;

pub use wakurln_rln as rln;
