//! The membership contract on an EVM chain: bindings, a client with failover across RPC
//! endpoints, deployment, membership transactions, local development chains ([`devnet`]), and
//! the sync engine that keeps the local membership tree equal to the contract's.
//!
//! The node never asks the chain about a message: it follows the contract's events into its
//! own tree (privacy: no RPC call reveals which member is sending; speed: nothing on the hot
//! path), persisted in SQLite so a restart resumes where it stopped.

pub mod anvil;
pub mod bindings;
mod client;
pub mod deploy;
pub mod devnet;
mod error;
pub mod membership;
mod store;
pub mod sync;

pub use client::{ChainClient, Endpoint};
pub use error::ChainError;
pub use store::SyncStore;
