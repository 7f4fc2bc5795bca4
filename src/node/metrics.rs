//! Prometheus metrics under the reference node's names, types and labels, so its dashboard
//! works unchanged, plus our own (`waku_rln_lent_proofs`, `waku_archive_written_messages`, ...).
//!
//! The reference node's metrics library appends `_total` to every counter, including those
//! already named `..._total`: its RLN counters are scraped as `waku_rln_valid_messages_total_total`
//! and so on, and ours are registered so that they come out the same.

use std::{
    collections::HashMap,
    sync::{Mutex, atomic::AtomicU64},
    time::{SystemTime, UNIX_EPOCH},
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// A gauge of seconds or bytes that needs fractions.
type FloatGauge = Gauge<f64, AtomicU64>;

/// One label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Shard {
    /// The shard index.
    pub shard: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Version {
    version: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct State {
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionProtocol {
    direction: String,
    protocol: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Agent {
    agent: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reachability {
    reachability: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Direction {
    direction: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceState {
    service: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceDirection {
    service: String,
    direction: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RelayBytes {
    topic: String,
    r#type: String,
    direction: String,
}

/// Per-shard message sizes behind the `waku_relay_*_msg_bytes_per_shard` gauges.
#[derive(Debug, Default)]
struct ShardBytes {
    total: u64,
    count: u64,
    max: u64,
}

/// A connected peer as the peer gauges count it.
#[derive(Debug, Clone, Default)]
pub struct PeerView {
    /// `in` or `out`.
    pub direction: &'static str,
    /// Protocols from identify.
    pub protocols: Vec<String>,
    /// Agent string from identify.
    pub agent: Option<String>,
    /// Shards from the metadata protocol.
    pub shards: Vec<u32>,
}

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
    /// Store sync's counters.
    pub store_sync: crate::store::sync::SyncCounters,
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
    /// Seconds preparing the node's memberships for a new root, in the background.
    pub member_refresh: Histogram,
    /// Proofs verified.
    pub proofs_verified: Counter,
    /// Seconds of the last proof made (the reference node's gauge).
    pub last_proof_generation: FloatGauge,
    /// Seconds of the last proof verified.
    pub last_proof_verification: FloatGauge,
    /// Proofs this node made.
    pub generated_proofs: Gauge,
    /// Proofs the node's membership may still make in the current epoch.
    pub remaining_proofs: Gauge,
    /// Seconds the last chain sync step took to apply membership changes.
    pub membership_insertion: FloatGauge,
    /// Seconds decrypting the membership credentials took.
    pub credentials_import: FloatGauge,
    /// discv5 routing table records (`state=""`) and those seen alive (`state="seen"`).
    routing_table: Family<State, Gauge>,
    /// Records discv5 handed on, by shard.
    discovered_per_shard: Family<Shard, Gauge>,
    /// Subscribed pubsub topics.
    pub pubsub_topics: Gauge,
    reachability: Family<Reachability, FloatGauge>,
    connected_peers: Family<DirectionProtocol, Gauge>,
    connected_per_shard: Family<Shard, Gauge>,
    connected_per_agent: Family<Agent, Gauge>,
    message_size: Histogram,
    node_messages: Family<Reason, Counter>,
    relay_bytes: Family<RelayBytes, Counter>,
    shard_bytes: Mutex<HashMap<u16, ShardBytes>>,
    shard_total: Family<Shard, Gauge>,
    shard_max: Family<Shard, Gauge>,
    shard_avg: Family<Shard, FloatGauge>,
    service_requests: Family<ServiceState, Counter>,
    service_bytes: Family<ServiceDirection, Counter>,
    archive_per_shard: Family<Shard, Gauge>,
    archive_bytes_per_shard: Family<Shard, Gauge>,
    archive_count_per_shard: Family<Shard, Gauge>,
    /// The transport's byte counters (libp2p's own metrics), summed by direction at scrape.
    pub transport: Mutex<Registry>,
    network_bytes: Family<Direction, Counter>,
    network_seen: Mutex<[u64; 2]>,
    process_resident: Gauge,
    process_virtual: Gauge,
    process_cpu: FloatGauge,
    process_open_fds: Gauge,
    process_max_fds: Gauge,
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
        let extra = Extra::register(&mut registry);
        let batch_size = Histogram::new(exponential(1.0, 2.0, 8));
        let root_window = Gauge::default();
        let sync_block = Gauge::default();
        let members = Gauge::default();
        let peers = Gauge::default();
        let peer_book = Gauge::default();
        let lending = crate::lightpush::lending::Counters::default();
        for reason in ["client_quota", "exhausted"] {
            lending
                .refused
                .get_or_create(&crate::lightpush::lending::Refusal {
                    r#type: reason.to_owned(),
                })
                .inc_by(0);
        }
        let filter = crate::filter::service::Counters::default();
        let archive = crate::store::writer::Counters::default();
        let store_sync = crate::store::sync::SyncCounters::default();
        for (name, help, counter) in [
            (
                "waku_store_sync_sessions_started",
                "Store sync sessions this node started that completed",
                &store_sync.sessions_started,
            ),
            (
                "waku_store_sync_sessions_answered",
                "Store sync sessions peers started that this node answered to the end",
                &store_sync.sessions_answered,
            ),
            (
                "waku_store_sync_sessions_failed",
                "Store sync sessions that failed, either side",
                &store_sync.sessions_failed,
            ),
            (
                "waku_store_sync_sessions_refused",
                "Store sync sessions peers started that this node refused (over its bounds)",
                &store_sync.sessions_refused,
            ),
            (
                "waku_store_sync_pushed_messages",
                "Messages this node pushed to store sync peers",
                &store_sync.pushed,
            ),
            (
                "waku_store_sync_pushed_bytes",
                "Bytes of the messages this node pushed to store sync peers",
                &store_sync.pushed_bytes,
            ),
            (
                "waku_store_sync_received_messages",
                "Messages store sync peers pushed that passed the checks and were stored",
                &store_sync.received,
            ),
            (
                "waku_store_sync_refused_messages",
                "Messages store sync peers pushed that were refused (not asked for, or failed the checks)",
                &store_sync.refused,
            ),
            (
                "waku_store_sync_bytes",
                "Reconciliation and transfer bytes, both ways",
                &store_sync.bytes,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "waku_store_sync_messages",
            "Messages in the store sync set (the archive's last sync range)",
            store_sync.items.clone(),
        );
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
        let member_refresh = Histogram::new(exponential(0.001, 2.0, 12));
        registry.register(
            "waku_rln_member_refresh_seconds",
            "Seconds preparing the node's memberships (its own and its lending pool's) for a new root, in the background",
            member_refresh.clone(),
        );
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
        // Registered with `_total` so the exposition adds a second one, as the reference node's.
        registry.register(
            "waku_rln_messages_total",
            "Relayed messages validated",
            messages.clone(),
        );
        registry.register(
            "waku_rln_valid_messages_total",
            "Relayed messages that passed RLN validation",
            valid.clone(),
        );
        // Exported from the start, each at 0, so dashboards show the reasons before the first.
        for reason in [
            "malformed_message",
            "missing_proof",
            "malformed_proof",
            "invalid_timestamp",
            "invalid_epoch",
            "invalid_rln_identifier",
            "invalid_root",
            "invalid_proof",
            "spam",
            "inconsistent_share",
            "outside_window",
        ] {
            invalid
                .get_or_create(&Reason {
                    r#type: reason.to_owned(),
                })
                .inc_by(0);
        }
        registry.register(
            "waku_rln_invalid_messages_total",
            "Relayed messages refused, by reason",
            invalid.clone(),
        );
        registry.register(
            "waku_rln_spam_messages_total",
            "Double-signalling messages caught (secret recovered)",
            spam.clone(),
        );
        registry.register(
            "waku_rln_proof_generation_seconds",
            "Time to make one RLN proof",
            proof_generation.clone(),
        );
        registry.register(
            "waku_rln_proof_verification_seconds",
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
            store_sync,
            validation_panics,
            score_disconnects,
            refused_connections,
            rate_limited,
            held_unknown_root,
            member_refresh,
            proofs_verified: extra.proofs_verified,
            last_proof_generation: extra.last_proof_generation,
            last_proof_verification: extra.last_proof_verification,
            generated_proofs: extra.generated_proofs,
            remaining_proofs: extra.remaining_proofs,
            membership_insertion: extra.membership_insertion,
            credentials_import: extra.credentials_import,
            routing_table: extra.routing_table,
            discovered_per_shard: extra.discovered_per_shard,
            pubsub_topics: extra.pubsub_topics,
            reachability: extra.reachability,
            connected_peers: extra.connected_peers,
            connected_per_shard: extra.connected_per_shard,
            connected_per_agent: extra.connected_per_agent,
            message_size: extra.message_size,
            node_messages: extra.node_messages,
            relay_bytes: extra.relay_bytes,
            shard_bytes: Mutex::new(HashMap::new()),
            shard_total: extra.shard_total,
            shard_max: extra.shard_max,
            shard_avg: extra.shard_avg,
            service_requests: extra.service_requests,
            service_bytes: extra.service_bytes,
            archive_per_shard: extra.archive_per_shard,
            archive_bytes_per_shard: extra.archive_bytes_per_shard,
            archive_count_per_shard: extra.archive_count_per_shard,
            transport: Mutex::new(Registry::default()),
            network_bytes: extra.network_bytes,
            network_seen: Mutex::new([0, 0]),
            process_resident: extra.process_resident,
            process_virtual: extra.process_virtual,
            process_cpu: extra.process_cpu,
            process_open_fds: extra.process_open_fds,
            process_max_fds: extra.process_max_fds,
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

    /// Counts a service request (`store`, `lightpush`, `filter`, `px`) served or refused.
    pub fn count_service_request(&self, service: &str, served: bool) {
        self.service_requests
            .get_or_create(&ServiceState {
                service: service.to_owned(),
                state: if served { "served" } else { "rejected" }.to_owned(),
            })
            .inc();
    }

    /// Counts bytes of a service protocol, `in` (requests read) or `out` (responses written).
    pub fn count_service_bytes(&self, service: &str, direction: &str, bytes: usize) {
        self.service_bytes
            .get_or_create(&ServiceDirection {
                service: service.to_owned(),
                direction: direction.to_owned(),
            })
            .inc_by(bytes as u64);
    }

    /// Counts a relayed message of `bytes` on `topic` received from a peer; `accepted` ones
    /// also count as the node's relay traffic, in the size histogram and the per-shard sizes.
    pub fn count_relayed(&self, topic: &str, shard: Option<u16>, bytes: usize, accepted: bool) {
        self.relay_bytes
            .get_or_create(&RelayBytes {
                topic: topic.to_owned(),
                r#type: "gross".to_owned(),
                direction: "in".to_owned(),
            })
            .inc_by(bytes as u64);
        if !accepted {
            return;
        }
        self.relay_bytes
            .get_or_create(&RelayBytes {
                topic: topic.to_owned(),
                r#type: "net".to_owned(),
                direction: "in".to_owned(),
            })
            .inc_by(bytes as u64);
        self.node_messages
            .get_or_create(&Reason {
                r#type: "relay".to_owned(),
            })
            .inc();
        self.message_size.observe(bytes as f64 / 1024.0);
        if let Some(shard) = shard {
            self.add_shard_bytes(shard, bytes as u64);
        }
    }

    /// Counts a message this node published on `topic`.
    pub fn count_published(&self, topic: &str, shard: Option<u16>, bytes: usize) {
        for r#type in ["gross", "net"] {
            self.relay_bytes
                .get_or_create(&RelayBytes {
                    topic: topic.to_owned(),
                    r#type: r#type.to_owned(),
                    direction: "out".to_owned(),
                })
                .inc_by(bytes as u64);
        }
        self.message_size.observe(bytes as f64 / 1024.0);
        if let Some(shard) = shard {
            self.add_shard_bytes(shard, bytes as u64);
        }
    }

    fn add_shard_bytes(&self, shard: u16, bytes: u64) {
        let mut all = self.shard_bytes.lock().expect("never poisoned");
        let s = all.entry(shard).or_default();
        s.total += bytes;
        s.count += 1;
        s.max = s.max.max(bytes);
        let label = Shard {
            shard: shard.to_string(),
        };
        self.shard_total.get_or_create(&label).set(s.total as i64);
        self.shard_max.get_or_create(&label).set(s.max as i64);
        self.shard_avg
            .get_or_create(&label)
            .set(s.total as f64 / s.count as f64);
    }

    /// Sets the connected-peer gauges from the peers connected now.
    pub fn set_connected_peers<'a>(&self, peers: impl Iterator<Item = &'a PeerView>) {
        self.connected_peers.clear();
        self.connected_per_shard.clear();
        self.connected_per_agent.clear();
        for p in peers {
            // Waku protocols only, so a peer cannot grow the label set with made-up names.
            for protocol in p
                .protocols
                .iter()
                .filter(|p| p.starts_with("/vac/waku/"))
                .take(32)
            {
                self.connected_peers
                    .get_or_create(&DirectionProtocol {
                        direction: p.direction.to_owned(),
                        protocol: protocol.clone(),
                    })
                    .inc();
            }
            for shard in &p.shards {
                self.connected_per_shard
                    .get_or_create(&Shard {
                        shard: shard.to_string(),
                    })
                    .inc();
            }
            self.connected_per_agent
                .get_or_create(&Agent {
                    agent: p.agent.clone().unwrap_or_else(|| "unknown".to_owned()),
                })
                .inc();
        }
    }

    /// Sets the discv5 routing table gauges.
    pub fn set_routing_table(&self, records: usize, seen: usize) {
        for (state, n) in [("", records), ("seen", seen)] {
            self.routing_table
                .get_or_create(&State {
                    state: state.to_owned(),
                })
                .set(n as i64);
        }
    }

    /// Counts a record discv5 handed on, under each of its shards.
    pub fn count_discovered(&self, shards: &[u16]) {
        for shard in shards {
            self.discovered_per_shard
                .get_or_create(&Shard {
                    shard: shard.to_string(),
                })
                .inc();
        }
    }

    /// Sets AutoNAT's view: `Reachable`, `NotReachable` or `Unknown`, with its confidence.
    pub fn set_reachability(&self, reachability: &str, confidence: f64) {
        self.reachability.clear();
        self.reachability
            .get_or_create(&Reachability {
                reachability: reachability.to_owned(),
            })
            .set(confidence);
    }

    /// Sets the archive gauges: messages and their bytes per shard.
    pub fn set_archive_shards(&self, shards: &[(u16, u64, u64)]) {
        self.archive_per_shard.clear();
        self.archive_bytes_per_shard.clear();
        self.archive_count_per_shard.clear();
        for (shard, count, bytes) in shards {
            let label = Shard {
                shard: shard.to_string(),
            };
            self.archive_per_shard
                .get_or_create(&label)
                .set(*count as i64);
            self.archive_count_per_shard
                .get_or_create(&label)
                .set(*count as i64);
            self.archive_bytes_per_shard
                .get_or_create(&label)
                .set(*bytes as i64);
        }
    }

    /// Reads this process's memory, CPU time and descriptors from /proc (Linux); leaves the
    /// gauges as they are elsewhere.
    fn refresh_process(&self) {
        if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
            let pages: Vec<u64> = statm
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            if let [size, resident, ..] = pages[..] {
                self.process_virtual.set((size * PAGE) as i64);
                self.process_resident.set((resident * PAGE) as i64);
            }
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the command name, which may hold spaces, start at `)`.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
            if let (Some(u), Some(s)) = (fields.get(11), fields.get(12))
                && let (Ok(u), Ok(s)) = (u.parse::<u64>(), s.parse::<u64>())
            {
                self.process_cpu.set((u + s) as f64 / TICKS_PER_SECOND);
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.process_open_fds.set(dir.count() as i64);
        }
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits")
            && let Some(line) = limits.lines().find(|l| l.starts_with("Max open files"))
            && let Some(soft) = line.split_whitespace().nth(3)
            && let Ok(soft) = soft.parse::<i64>()
        {
            self.process_max_fds.set(soft);
        }
    }

    /// Sums libp2p's per-transport byte counters into `libp2p_network_bytes_total{direction}`.
    fn refresh_network_bytes(&self) {
        let mut text = String::new();
        {
            let registry = self.transport.lock().expect("never poisoned");
            if encode(&mut text, &registry).is_err() {
                return;
            }
        }
        let mut totals = [0u64; 2];
        for line in text
            .lines()
            .filter(|l| l.starts_with("libp2p_bandwidth_bytes_total{"))
        {
            let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
                continue;
            };
            if line.contains("direction=\"Inbound\"") {
                totals[0] += value as u64;
            } else if line.contains("direction=\"Outbound\"") {
                totals[1] += value as u64;
            }
        }
        let mut seen = self.network_seen.lock().expect("never poisoned");
        for (i, direction) in ["in", "out"].iter().enumerate() {
            let counter = self.network_bytes.get_or_create(&Direction {
                direction: (*direction).to_owned(),
            });
            counter.inc_by(totals[i].saturating_sub(seen[i]));
            seen[i] = seen[i].max(totals[i]);
        }
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
        self.refresh_process();
        self.refresh_network_bytes();
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Bytes per memory page and clock ticks per second, as on every Linux this node runs on.
const PAGE: u64 = 4096;
const TICKS_PER_SECOND: f64 = 100.0;

/// The reference node's metrics beyond the RLN ones, registered under its names.
struct Extra {
    proofs_verified: Counter,
    last_proof_generation: FloatGauge,
    last_proof_verification: FloatGauge,
    generated_proofs: Gauge,
    remaining_proofs: Gauge,
    membership_insertion: FloatGauge,
    credentials_import: FloatGauge,
    routing_table: Family<State, Gauge>,
    discovered_per_shard: Family<Shard, Gauge>,
    pubsub_topics: Gauge,
    reachability: Family<Reachability, FloatGauge>,
    connected_peers: Family<DirectionProtocol, Gauge>,
    connected_per_shard: Family<Shard, Gauge>,
    connected_per_agent: Family<Agent, Gauge>,
    message_size: Histogram,
    node_messages: Family<Reason, Counter>,
    relay_bytes: Family<RelayBytes, Counter>,
    shard_total: Family<Shard, Gauge>,
    shard_max: Family<Shard, Gauge>,
    shard_avg: Family<Shard, FloatGauge>,
    service_requests: Family<ServiceState, Counter>,
    service_bytes: Family<ServiceDirection, Counter>,
    archive_per_shard: Family<Shard, Gauge>,
    archive_bytes_per_shard: Family<Shard, Gauge>,
    archive_count_per_shard: Family<Shard, Gauge>,
    network_bytes: Family<Direction, Counter>,
    process_start: FloatGauge,
    process_resident: Gauge,
    process_virtual: Gauge,
    process_cpu: FloatGauge,
    process_open_fds: Gauge,
    process_max_fds: Gauge,
}

/// The reference node's message size buckets, in KiB.
const MESSAGE_SIZE_BUCKETS: [f64; 13] = [
    0.0, 1.0, 3.0, 5.0, 15.0, 50.0, 75.0, 100.0, 125.0, 150.0, 500.0, 700.0, 1000.0,
];

impl Extra {
    fn register(r: &mut Registry) -> Self {
        let version = Family::<Version, Gauge>::default();
        version
            .get_or_create(&Version {
                version: format!("wakurln-v{}", env!("CARGO_PKG_VERSION")),
            })
            .set(1);
        r.register("waku_version", "The node's version (value 1)", version);
        let e = Self {
            proofs_verified: Counter::default(),
            last_proof_generation: FloatGauge::default(),
            last_proof_verification: FloatGauge::default(),
            generated_proofs: Gauge::default(),
            remaining_proofs: Gauge::default(),
            membership_insertion: FloatGauge::default(),
            credentials_import: FloatGauge::default(),
            routing_table: Family::default(),
            discovered_per_shard: Family::default(),
            pubsub_topics: Gauge::default(),
            reachability: Family::default(),
            connected_peers: Family::default(),
            connected_per_shard: Family::default(),
            connected_per_agent: Family::default(),
            message_size: Histogram::new(MESSAGE_SIZE_BUCKETS),
            node_messages: Family::default(),
            relay_bytes: Family::default(),
            shard_total: Family::default(),
            shard_max: Family::default(),
            shard_avg: Family::default(),
            service_requests: Family::default(),
            service_bytes: Family::default(),
            archive_per_shard: Family::default(),
            archive_bytes_per_shard: Family::default(),
            archive_count_per_shard: Family::default(),
            network_bytes: Family::default(),
            process_start: FloatGauge::default(),
            process_resident: Gauge::default(),
            process_virtual: Gauge::default(),
            process_cpu: FloatGauge::default(),
            process_open_fds: Gauge::default(),
            process_max_fds: Gauge::default(),
        };
        e.process_start.set(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        e.routing_table
            .get_or_create(&State {
                state: String::new(),
            })
            .set(0);
        e.pubsub_topics.set(0);
        e.node_messages
            .get_or_create(&Reason {
                r#type: "relay".to_owned(),
            })
            .inc_by(0);
        e.routing_table
            .get_or_create(&State {
                state: "seen".to_owned(),
            })
            .set(0);
        e.reachability
            .get_or_create(&Reachability {
                reachability: "Unknown".to_owned(),
            })
            .set(0.0);
        r.register(
            "waku_rln_proof_verification_total",
            "RLN proofs verified",
            e.proofs_verified.clone(),
        );
        r.register(
            "waku_rln_proof_generation_duration_seconds",
            "Seconds the last RLN proof took to make",
            e.last_proof_generation.clone(),
        );
        r.register(
            "waku_rln_proof_verification_duration_seconds",
            "Seconds the last RLN proof took to verify",
            e.last_proof_verification.clone(),
        );
        r.register(
            "waku_rln_total_generated_proofs",
            "RLN proofs this node made",
            e.generated_proofs.clone(),
        );
        r.register(
            "waku_rln_remaining_proofs_per_epoch",
            "Proofs the node's membership may still make this epoch",
            e.remaining_proofs.clone(),
        );
        r.register(
            "waku_rln_membership_insertion_duration_seconds",
            "Seconds the last chain sync step took to apply membership changes",
            e.membership_insertion.clone(),
        );
        r.register(
            "waku_rln_membership_credentials_import_duration_seconds",
            "Seconds decrypting the membership credentials took",
            e.credentials_import.clone(),
        );
        r.register(
            "routing_table_nodes",
            "discv5 routing table records (state=seen: alive)",
            e.routing_table.clone(),
        );
        r.register(
            "waku_discv5_discovered_per_shard",
            "Records found by discv5, by shard",
            e.discovered_per_shard.clone(),
        );
        r.register(
            "libp2p_pubsub_topics",
            "Pubsub topics subscribed",
            e.pubsub_topics.clone(),
        );
        r.register(
            "libp2p_autonat_reachability_confidence",
            "AutoNAT's confidence in its reachability verdict",
            e.reachability.clone(),
        );
        r.register(
            "waku_connected_peers",
            "Connected peers by direction and protocol",
            e.connected_peers.clone(),
        );
        r.register(
            "waku_connected_peers_per_shard",
            "Connected peers by shard",
            e.connected_per_shard.clone(),
        );
        r.register(
            "waku_connected_peers_per_agent",
            "Connected peers by agent",
            e.connected_per_agent.clone(),
        );
        r.register(
            "waku_histogram_message_size",
            "Sizes of relayed messages in KiB",
            e.message_size.clone(),
        );
        r.register(
            "waku_node_messages",
            "Messages relayed",
            e.node_messages.clone(),
        );
        r.register(
            "waku_relay_network_bytes",
            "Relay message bytes by topic, type (gross: all received, net: accepted) and direction",
            e.relay_bytes.clone(),
        );
        r.register(
            "waku_relay_total_msg_bytes_per_shard",
            "Bytes of relayed messages by shard",
            e.shard_total.clone(),
        );
        r.register(
            "waku_relay_max_msg_bytes_per_shard",
            "Largest relayed message by shard",
            e.shard_max.clone(),
        );
        r.register(
            "waku_relay_avg_msg_bytes_per_shard",
            "Average relayed message by shard",
            e.shard_avg.clone(),
        );
        r.register(
            "waku_service_requests",
            "Service requests served or rejected (rate limit), by service",
            e.service_requests.clone(),
        );
        r.register(
            "waku_service_network_bytes",
            "Bytes of service protocols by service and direction",
            e.service_bytes.clone(),
        );
        r.register(
            "waku_archive_messages_per_shard",
            "Archived messages by shard",
            e.archive_per_shard.clone(),
        );
        r.register(
            "waku_relay_fleet_store_msg_size_bytes",
            "Bytes of archived messages by shard",
            e.archive_bytes_per_shard.clone(),
        );
        r.register(
            "waku_relay_fleet_store_msg_count",
            "Archived messages by shard",
            e.archive_count_per_shard.clone(),
        );
        r.register(
            "libp2p_network_bytes",
            "Bytes on the node's connections by direction",
            e.network_bytes.clone(),
        );
        r.register(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch",
            e.process_start.clone(),
        );
        r.register(
            "process_resident_memory_bytes",
            "Resident memory",
            e.process_resident.clone(),
        );
        r.register(
            "process_virtual_memory_bytes",
            "Virtual memory",
            e.process_virtual.clone(),
        );
        r.register(
            "process_cpu_seconds_total",
            "CPU time used by the process",
            e.process_cpu.clone(),
        );
        r.register(
            "process_open_fds",
            "Open file descriptors",
            e.process_open_fds.clone(),
        );
        r.register(
            "process_max_fds",
            "Most file descriptors the process may open",
            e.process_max_fds.clone(),
        );
        e
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
        assert!(text.contains("waku_rln_messages_total_total 4"), "{text}");
        assert!(
            text.contains("waku_rln_valid_messages_total_total 1"),
            "{text}"
        );
        assert!(
            text.contains("waku_rln_spam_messages_total_total 1"),
            "{text}"
        );
        assert!(
            text.contains("waku_rln_invalid_messages_total_total{type=\"invalid_proof\"} 1"),
            "{text}"
        );
        assert!(!text.contains("type=\"duplicate\""), "{text}");
    }
}
