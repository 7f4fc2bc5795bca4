//! Gossipsub configured as Waku relay: protocol id `/vac/waku/relay/2.0.0`, anonymous messages
//! (no from, seqno, signature or key), message id = SHA-256 of the data, manual validation,
//! and the mesh parameters the reference nodes use.

use std::time::Duration;

use libp2p::gossipsub::{self, MessageId, ValidationMode, Version};
use sha2::{Digest, Sha256};

use crate::message::limits::MAX_ENCODED_LEN;

/// The relay protocol id.
pub const PROTOCOL: &str = "/vac/waku/relay/2.0.0";

/// Room for the gossipsub RPC around a maximal message.
const FRAME_OVERHEAD: usize = 64 * 1024;

/// The message id: SHA-256 of the encoded WakuMessage.
pub fn message_id(data: &[u8]) -> MessageId {
    MessageId::new(&Sha256::digest(data))
}

/// The gossipsub configuration of Waku relay.
pub fn config() -> gossipsub::Config {
    gossipsub::ConfigBuilder::default()
        .protocol_id(PROTOCOL, Version::V1_1)
        .validation_mode(ValidationMode::Anonymous)
        .message_id_fn(|m: &gossipsub::Message| message_id(&m.data))
        .validate_messages()
        .mesh_n(6)
        .mesh_n_low(4)
        .mesh_n_high(8)
        .gossip_lazy(6)
        .mesh_outbound_min(3)
        .heartbeat_interval(Duration::from_secs(1))
        .history_length(6)
        .history_gossip(3)
        .fanout_ttl(Duration::from_secs(60))
        .duplicate_cache_time(Duration::from_secs(120))
        .flood_publish(true)
        .max_transmit_size(MAX_ENCODED_LEN + FRAME_OVERHEAD)
        .build()
        .expect("the Waku relay gossipsub configuration is valid")
}
