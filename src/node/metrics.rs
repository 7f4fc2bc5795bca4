//! Prometheus metrics, named after the reference node's (`waku_rln_...`) so existing dashboards
//! mostly work.

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// The label of an invalid-message counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// The verdict label (`invalid_proof`, `invalid_root`, ...).
    pub r#type: String,
}

/// The node's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Relayed messages validated.
    pub messages: Counter,
    /// Relayed messages accepted.
    pub valid: Counter,
    /// Relayed messages rejected or ignored, by reason.
    pub invalid: Family<Reason, Counter>,
    /// Double-signalling messages caught.
    pub spam: Counter,
    /// Seconds per proof made by this node.
    pub proof_generation: Histogram,
    /// Seconds per proof verified (a batch's time divided among its proofs).
    pub proof_verification: Histogram,
    /// Proofs per verification batch.
    pub batch_size: Histogram,
    /// Roots in the window of accepted roots.
    pub root_window: Gauge,
    /// The last block the membership tree is synced to.
    pub sync_block: Gauge,
    /// Members in the synced tree.
    pub members: Gauge,
    /// Connected peers.
    pub peers: Gauge,
    /// Peers in the peer manager's book, connected or not.
    pub peer_book: Gauge,
    /// The lending pool's counters.
    pub lending: crate::lightpush::lending::Counters,
    /// The filter service's counters.
    pub filter: crate::filter::service::Counters,
    /// The archive writer's counters.
    pub archive: crate::store::writer::Counters,
    /// Validation tasks that panicked (each was replaced).
    pub validation_panics: Counter,
    /// Peers disconnected and banned because their relay score fell too low.
    pub score_disconnects: Counter,
    /// Service requests refused for their rate limit, by protocol.
    pub rate_limited: Family<Reason, Counter>,
    /// Connections refused, by reason (`inbound`, `per_ip`, `banned_peer`, ...).
    pub refused_connections: Family<Reason, Counter>,
    /// Relayed messages held for the chain sync because their root was not known yet.
    pub held_unknown_root: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn exponential(start: f64, factor: f64, n: u16) -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(start, factor, n)
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let messages = Counter::default();
        let valid = Counter::default();
        let invalid = Family::<Reason, Counter>::default();
        let spam = Counter::default();
        let proof_generation = Histogram::new(exponential(0.005, 2.0, 12));
        let proof_verification = Histogram::new(exponential(0.0001, 2.0, 14));
        let batch_size = Histogram::new(exponential(1.0, 2.0, 8));
        let root_window = Gauge::default();
        let sync_block = Gauge::default();
        let members = Gauge::default();
        let peers = Gauge::default();
        let peer_book = Gauge::default();
        let lending = crate::lightpush::lending::Counters::default();
        let filter = crate::filter::service::Counters::default();
        let archive = crate::store::writer::Counters::default();
        registry.register(
            "waku_archive_written_messages",
            "Messages committed to the archive",
            archive.written.clone(),
        );
        registry.register(
            "waku_archive_pending_messages",
            "Messages waiting to be committed to the archive",
            archive.pending.clone(),
        );
        registry.register(
            "waku_archive_write_failures",
            "Archive transactions that failed (their messages are retried)",
            archive.failures.clone(),
        );
        registry.register(
            "waku_archive_dropped_messages",
            "Messages dropped from a full archive queue while the archive refused writes",
            archive.dropped.clone(),
        );
        let validation_panics = Counter::default();
        let score_disconnects = Counter::default();
        let refused_connections = Family::<Reason, Counter>::default();
        let rate_limited = Family::<Reason, Counter>::default();
        registry.register(
            "waku_service_requests_limited",
            "Service requests refused for their rate limit (store, lightpush, filter, px)",
            rate_limited.clone(),
        );
        let held_unknown_root = Counter::default();
        registry.register(
            "waku_relay_held_unknown_root",
            "Relayed messages held for the chain sync because their root was not known yet",
            held_unknown_root.clone(),
        );
        registry.register(
            "waku_relay_validation_panics",
            "Validation tasks that panicked and were replaced",
            validation_panics.clone(),
        );
        registry.register(
            "waku_relay_score_disconnects",
            "Peers disconnected and banned for a relay score below the threshold",
            score_disconnects.clone(),
        );
        registry.register(
            "libp2p_refused_connections",
            "Connections refused by the connection limits and bans, by reason",
            refused_connections.clone(),
        );
        registry.register(
            "waku_filter_subscriptions",
            "Peers subscribed to this node's filter service",
            filter.subscribers.clone(),
        );
        registry.register(
            "waku_filter_pushes",
            "Messages pushed to filter subscribers",
            filter.pushed.clone(),
        );
        registry.register(
            "waku_filter_push_dropped",
            "Messages not pushed because the subscriber's queue was full",
            filter.dropped.clone(),
        );
        registry.register(
            "waku_filter_vanished_subscribers",
            "Filter subscribers dropped because their push stream failed",
            filter.vanished.clone(),
        );
        registry.register(
            "waku_rln_lent_proofs",
            "RLN proofs lent to light clients, by pool membership",
            lending.lent.clone(),
        );
        registry.register(
            "waku_rln_lending_refused",
            "Lending requests refused (client_quota, exhausted)",
            lending.refused.clone(),
        );
        registry.register(
            "waku_rln_messages",
            "Relayed messages validated",
            messages.clone(),
        );
        registry.register(
            "waku_rln_valid_messages",
            "Relayed messages that passed RLN validation",
            valid.clone(),
        );
        registry.register(
            "waku_rln_invalid_messages",
            "Relayed messages refused, by reason",
            invalid.clone(),
        );
        registry.register(
            "waku_rln_spam_messages",
            "Double-signalling messages caught (secret recovered)",
            spam.clone(),
        );
        registry.register(
            "waku_rln_proof_generation_duration_seconds",
            "Time to make one RLN proof",
            proof_generation.clone(),
        );
        registry.register(
            "waku_rln_proof_verification_duration_seconds",
            "Time to verify one RLN proof (batches divided among their proofs)",
            proof_verification.clone(),
        );
        registry.register(
            "waku_rln_verification_batch_size",
            "Proofs verified together",
            batch_size.clone(),
        );
        registry.register(
            "waku_rln_root_window_size",
            "Membership roots currently accepted",
            root_window.clone(),
        );
        registry.register(
            "waku_rln_sync_block",
            "Last block the membership tree is synced to",
            sync_block.clone(),
        );
        registry.register(
            "waku_rln_number_registered_memberships",
            "Members in the synced membership tree",
            members.clone(),
        );
        registry.register("libp2p_peers", "Connected peers", peers.clone());
        registry.register(
            "waku_peer_store_size",
            "Peers the peer manager knows, connected or not",
            peer_book.clone(),
        );
        Self {
            registry,
            messages,
            valid,
            invalid,
            spam,
            proof_generation,
            proof_verification,
            batch_size,
            root_window,
            sync_block,
            members,
            peers,
            peer_book,
            lending,
            filter,
            archive,
            validation_panics,
            score_disconnects,
            refused_connections,
            rate_limited,
            held_unknown_root,
        }
    }

    /// Counts a connection the gate refused.
    pub fn count_refused_connection(&self, reason: &str) {
        self.refused_connections
            .get_or_create(&Reason {
                r#type: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a service request refused for its rate limit.
    pub fn count_rate_limited(&self, service: &str) {
        self.rate_limited
            .get_or_create(&Reason {
                r#type: service.to_owned(),
            })
            .inc();
    }

    /// Counts one validation verdict.
    pub fn count_verdict(&self, label: &str) {
        self.messages.inc();
        match label {
            "valid" => {
                self.valid.inc();
            }
            // Copies of a message already seen are not invalid.
            "duplicate" => {}
            other => {
                if other == "spam" {
                    self.spam.inc();
                }
                self.invalid
                    .get_or_create(&Reason {
                        r#type: other.to_owned(),
                    })
                    .inc();
            }
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_counted_under_the_reference_names() {
        let m = Metrics::new();
        m.count_verdict("valid");
        m.count_verdict("spam");
        m.count_verdict("invalid_proof");
        m.count_verdict("duplicate");
        let text = m.encode();
        assert!(text.contains("waku_rln_messages_total 4"), "{text}");
        assert!(text.contains("waku_rln_valid_messages_total 1"), "{text}");
        assert!(text.contains("waku_rln_spam_messages_total 1"), "{text}");
        assert!(
            text.contains("waku_rln_invalid_messages_total{type=\"invalid_proof\"} 1"),
            "{text}"
        );
        assert!(!text.contains("type=\"duplicate\""), "{text}");
    }
}
