//! Waku relay: gossipsub configured as the relay protocol ([`gossip`]), the pipeline every
//! relayed message passes before it is forwarded ([`pipeline`]), the fair queue in front of it
//! ([`queue`]), the nullifier log kept on disk across restarts ([`nullifier_store`]), and
//! publishing with the node's own membership ([`publisher`]).

pub mod gossip;
pub mod nullifier_store;
pub mod pipeline;
pub mod publisher;
pub mod queue;

use crate::{
    message::{MessageHash, WakuMessage},
    topics::PubsubTopic,
};

/// A message delivered to local consumers after validation (or published by this node).
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The pubsub topic it arrived on.
    pub topic: PubsubTopic,
    /// The message.
    pub message: WakuMessage,
    /// Its deterministic hash.
    pub hash: MessageHash,
}
