//! Gossipsub configured as Waku relay: protocol id `/vac/waku/relay/2.0.0`, anonymous messages
//! (no from, seqno, signature or key), message id = SHA-256 of the data, manual validation,
//! the mesh parameters the reference nodes use, and peer scoring.
//!
//! Scoring follows the reference node's parameters, so that a spammer fares the same with
//! either node: every rejected message (invalid proof, double signal, bad epoch or root) adds
//! to the sender's invalid-message counter, which costs `100 * counter^2` points and halves
//! every 12 s. Ten rejects in quick succession bring a peer below the graylist threshold of
//! -10,000, where gossipsub drops its messages unvalidated and the node disconnects and bans
//! it (see [`DISCONNECT_THRESHOLD`] and [`BAN`]). Where ours differ, and why:
//!
//! - the reference node lets a disconnected peer reconnect at once (its score is restored and
//!   it is dropped again); we refuse it for [`BAN`], the time its score is retained anyway;
//! - peers on the loopback address are exempt from the IP-colocation penalty (P6): they are
//!   the operator's own processes, and a local test network puts every peer there.
//!
//! The rest (P2 first deliveries, P3 off, P5 at weight 0, P7 behaviour penalties, decay every
//! 12 s, gossip/publish/graylist thresholds -100/-1,000/-10,000) is the reference node's.

use std::time::Duration;

use libp2p::gossipsub::{
    self, MessageId, PeerScoreParams, PeerScoreThresholds, TopicScoreParams, ValidationMode,
    Version,
};
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

/// Below this score a peer is disconnected and banned: the reference node disconnects at its
/// graylist threshold, and so do we (a graylisted peer's messages are dropped unvalidated, so
/// its score can no longer fall).
pub const DISCONNECT_THRESHOLD: f64 = -10_000.0;

/// How long a peer disconnected for its score is refused: as long as gossipsub remembers its
/// score.
pub const BAN: Duration = Duration::from_secs(600);

/// The scoring of every relay topic (shard), as the reference node sets it.
pub fn topic_score_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        // P1: a small reward for time in the mesh.
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 10.0,
        // P2: a reward for first deliveries.
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.5,
        first_message_deliveries_cap: 10.0,
        // P3 and P3b off: RLN limits senders, so a quiet mesh peer is not a lazy one.
        mesh_message_deliveries_weight: 0.0,
        mesh_message_deliveries_decay: 0.0,
        mesh_message_deliveries_cap: 0.0,
        mesh_message_deliveries_threshold: 0.0,
        mesh_message_deliveries_window: Duration::ZERO,
        mesh_message_deliveries_activation: Duration::from_secs(1),
        mesh_failure_penalty_weight: 0.0,
        mesh_failure_penalty_decay: 0.0,
        // P4: rejected messages cost 100 * counter^2.
        invalid_message_deliveries_weight: -100.0,
        invalid_message_deliveries_decay: 0.5,
    }
}

/// The peer-scoring parameters of Waku relay (the per-topic part is set as topics are
/// subscribed, with [`topic_score_params`]).
pub fn peer_score_params() -> PeerScoreParams {
    PeerScoreParams {
        topic_score_cap: 0.0,
        app_specific_weight: 0.0,
        ip_colocation_factor_weight: -50.0,
        ip_colocation_factor_threshold: 5.0,
        // Peers on this machine are the operator's own (and every peer of a loopback test).
        ip_colocation_factor_whitelist: [
            std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::Ipv6Addr::LOCALHOST.into(),
        ]
        .into_iter()
        .collect(),
        behaviour_penalty_weight: -10.0,
        behaviour_penalty_decay: 0.986,
        decay_interval: Duration::from_secs(12),
        decay_to_zero: 0.01,
        retain_score: BAN,
        ..PeerScoreParams::default()
    }
}

/// The score thresholds of Waku relay, as the reference node sets them.
pub fn peer_score_thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: -100.0,
        publish_threshold: -1_000.0,
        graylist_threshold: DISCONNECT_THRESHOLD,
        accept_px_threshold: PeerScoreThresholds::default().accept_px_threshold,
        opportunistic_graft_threshold: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoring_parameters_are_valid() {
        peer_score_params().validate().unwrap();
        peer_score_thresholds().validate().unwrap();
        topic_score_params().validate().unwrap();
    }

    #[test]
    fn ten_rejects_reach_the_disconnect_threshold() {
        let p = topic_score_params();
        let score = |n: f64| p.topic_weight * p.invalid_message_deliveries_weight * n * n;
        assert!(score(9.0) > DISCONNECT_THRESHOLD);
        assert!(score(10.0) <= DISCONNECT_THRESHOLD);
    }
}
