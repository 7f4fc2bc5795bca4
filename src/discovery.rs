//! Finding peers with discv5, as the reference node does: the node's record (with its Waku
//! fields) is served over UDP, random lookups walk the network's table, and only records of
//! this node's cluster that share a shard with it and offer a Waku service are dialled.
//!
//! The protocol id is the reference node's `d5waku` rather than discv5's default: nodes with
//! another id ignore each other's packets.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use ::enr::NodeId;
use discv5::{ConfigBuilder, Discv5, ListenConfig, ProtocolIdentity};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::watch;

use crate::enr::{CombinedKey, Enr};

/// The reference node's discv5 protocol id.
pub const PROTOCOL_ID: [u8; 6] = *b"d5waku";

/// The reference node's default discv5 UDP port.
pub const DEFAULT_UDP_PORT: u16 = 9000;

/// Records asked of each lookup.
const PER_LOOKUP: usize = 16;

/// A peer's record, once handed to the node, is not handed again for this long (a newer
/// record of it is).
const REDIAL_AFTER: Duration = Duration::from_secs(60);

/// Peers remembered as dialled at most.
const MAX_REMEMBERED: usize = 1_024;

/// How the node takes part in discv5.
#[derive(Debug, Clone)]
pub struct Config {
    /// The UDP port (0: any free one).
    pub udp_port: u16,
    /// Records to start from.
    pub bootstrap: Vec<Enr>,
    /// Time between two random lookups.
    pub interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            udp_port: DEFAULT_UDP_PORT,
            bootstrap: Vec::new(),
            interval: Duration::from_secs(5),
        }
    }
}

/// Why discv5 could not start.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The UDP port could not be bound.
    #[error("cannot bind the discv5 UDP port {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// discv5 refused to start.
    #[error("discv5 did not start: {0}")]
    Start(String),
}

/// Binds the discv5 UDP socket on `ip` (before the record is made, so the record names the
/// port really bound).
pub fn bind(ip: Ipv4Addr, port: u16) -> Result<std::net::UdpSocket, DiscoveryError> {
    let address = SocketAddr::from((ip, port));
    let bind_error = |source| DiscoveryError::Bind { address, source };
    let socket = std::net::UdpSocket::bind(address).map_err(bind_error)?;
    socket.set_nonblocking(true).map_err(bind_error)?;
    Ok(socket)
}

/// Whether the node should dial the peer of `record`: it offers a Waku service and shares a
/// shard of `cluster` with the node.
pub fn wanted(record: &Enr, cluster: u16, shards: &[u16]) -> bool {
    record.services() != 0
        && record
            .shards()
            .is_some_and(|(c, s)| c == cluster && s.iter().any(|x| shards.contains(x)))
}

/// A running discv5 service.
pub struct Discovery {
    service: Discv5,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("local", &self.service.local_enr().to_base64())
            .finish_non_exhaustive()
    }
}

impl Discovery {
    /// Starts discv5 on `socket` serving `record` (signed with `key`), and adds the bootstrap
    /// records (those without a UDP address are skipped with a warning).
    pub async fn start(
        socket: std::net::UdpSocket,
        record: &Enr,
        key: CombinedKey,
        bootstrap: &[Enr],
    ) -> Result<Self, DiscoveryError> {
        let socket = tokio::net::UdpSocket::from_std(socket)
            .map_err(|e| DiscoveryError::Start(e.to_string()))?;
        let listen = ListenConfig::FromSockets {
            ipv4: Some(Arc::new(socket)),
            ipv6: None,
        };
        let config = ConfigBuilder::new(listen)
            .protocol_identity(ProtocolIdentity {
                protocol_id: PROTOCOL_ID,
                protocol_version: 1u16.to_be_bytes(),
            })
            .build();
        let mut service = Discv5::new(record.record().clone(), key, config)
            .map_err(|e| DiscoveryError::Start(e.to_owned()))?;
        service
            .start()
            .await
            .map_err(|e| DiscoveryError::Start(e.to_string()))?;
        for b in bootstrap {
            if let Err(e) = service.add_enr(b.record().clone()) {
                tracing::warn!(record = %b.to_text(), "bootstrap record skipped: {e}");
            }
        }
        Ok(Self { service })
    }

    /// The node's record as discv5 serves it now.
    pub fn local(&self) -> Option<Enr> {
        Enr::from_record(self.service.local_enr()).ok()
    }

    /// Puts `value` under `key` in the node's record; the record's sequence number goes up
    /// and it is signed again.
    pub fn update(&self, key: &str, value: &[u8]) -> bool {
        self.service
            .enr_insert(key, &bytes::Bytes::copy_from_slice(value))
            .is_ok()
    }

    /// Records in the routing table.
    pub fn table(&self) -> usize {
        self.service.table_entries_id().len()
    }

    /// Runs random lookups every `interval` until `stop`, handing the peers worth dialling
    /// (see [`wanted`]) to the node. When the node's shards change, its record gets the new
    /// ones (signed again with a higher sequence number) and the node is handed the record.
    pub async fn run(self, hooks: Hooks, interval: Duration, mut stop: watch::Receiver<bool>) {
        let Hooks {
            cluster,
            shards,
            found,
            record,
            table,
            mut bootstrap,
            mut relayed,
        } = hooks;
        let mut service = self.service;
        let mut published = self_shards(&service);
        // The record's own `multiaddrs` (WebSocket addresses); relayed ones are added to them.
        let listed = Enr::from_record(service.local_enr())
            .map(|r| r.listed_multiaddrs())
            .unwrap_or_default();
        let mut dialled: HashMap<PeerId, (Instant, u64)> = HashMap::new();
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(records) = bootstrap.recv() => {
                    for b in records {
                        if let Err(e) = service.add_enr(b.record().clone()) {
                            tracing::debug!(record = %b.to_text(), "bootstrap record skipped: {e}");
                        }
                    }
                }
                Some(addresses) = relayed.recv() => {
                    let all: Vec<Multiaddr> = listed.iter().chain(&addresses).cloned().collect();
                    let field = crate::enr::multiaddrs_field(&all);
                    if service.enr_insert("multiaddrs", &bytes::Bytes::from(field)).is_ok()
                        && let Ok(r) = Enr::from_record(service.local_enr())
                    {
                        tracing::info!(seq = r.seq(), relayed = ?addresses, "node record updated");
                        record(r);
                    }
                    continue;
                }
                _ = stop.wait_for(|s| *s) => break,
            }
            let ours = shards();
            if published.as_ref() != Some(&ours) {
                let (key, field) = crate::enr::shards_field(cluster, &ours);
                let other = if key == "rs" { "rsv" } else { "rs" };
                let signing = service.enr_insert(key, &bytes::Bytes::from(field));
                if signing.is_ok() {
                    let local = service.local_enr();
                    if local.get_raw_rlp(other).is_some() {
                        // A record must not carry both forms; drop the stale one.
                        let _ = service.enr_insert(other, &bytes::Bytes::new());
                    }
                    if let Ok(r) = Enr::from_record(service.local_enr()) {
                        tracing::info!(seq = r.seq(), shards = ?ours, "node record updated");
                        record(r);
                    }
                }
                published = Some(ours.clone());
            }
            let predicate_shards = ours.clone();
            let predicate = Box::new(move |r: &discv5::Enr| {
                Enr::from_record(r.clone()).is_ok_and(|e| wanted(&e, cluster, &predicate_shards))
            });
            let lookup = service.find_node_predicate(NodeId::random(), predicate, PER_LOOKUP);
            let found_now = tokio::select! {
                found = lookup => found,
                _ = stop.wait_for(|s| *s) => break,
            };
            let found_now = match found_now {
                Ok(found) => found,
                Err(e) => {
                    tracing::debug!(error = ?e, "discv5 lookup failed");
                    continue;
                }
            };
            let entries = service.table_entries();
            table(
                entries.len(),
                entries.iter().filter(|(_, _, s)| s.is_connected()).count(),
            );
            let now = Instant::now();
            if dialled.len() >= MAX_REMEMBERED {
                dialled.retain(|_, (at, _)| now.duration_since(*at) < REDIAL_AFTER);
            }
            let mut worth = Vec::new();
            for r in found_now {
                let Ok(r) = Enr::from_record(r) else {
                    continue;
                };
                if !wanted(&r, cluster, &ours) {
                    continue;
                }
                let peer = r.peer_id();
                // A newer record of the peer (a restart, new addresses) is handed on at once.
                if dialled.get(&peer).is_some_and(|(at, seq)| {
                    *seq >= r.seq() && now.duration_since(*at) < REDIAL_AFTER
                }) {
                    continue;
                }
                if r.addresses().is_empty() {
                    continue;
                }
                if dialled.len() < MAX_REMEMBERED {
                    dialled.insert(peer, (now, r.seq()));
                }
                worth.push(r);
            }
            if !worth.is_empty() {
                found(worth);
            }
        }
        service.shutdown();
    }
}

/// The shards in the record discv5 serves now.
fn self_shards(service: &Discv5) -> Option<Vec<u16>> {
    let r = Enr::from_record(service.local_enr()).ok()?;
    r.shards().map(|(_, s)| s)
}

/// What the discovery task asks of the node.
pub struct Hooks {
    /// The node's cluster.
    pub cluster: u16,
    /// The shards the node relays now.
    pub shards: Box<dyn Fn() -> Vec<u16> + Send>,
    /// Takes the records found worth dialling (the node's peer manager decides when).
    pub found: Box<dyn Fn(Vec<Enr>) + Send>,
    /// Takes the node's record after a change.
    pub record: Box<dyn Fn(Enr) + Send>,
    /// Takes the routing table's size after each lookup: records, and those seen alive.
    pub table: Box<dyn Fn(usize, usize) + Send>,
    /// More bootstrap records arriving after the start (from DNS trees read meanwhile).
    pub bootstrap: tokio::sync::mpsc::Receiver<Vec<Enr>>,
    /// The relayed addresses the node listens on now (behind a NAT), for the record's
    /// `multiaddrs`.
    pub relayed: tokio::sync::mpsc::Receiver<Vec<Multiaddr>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enr::{Content, services};

    fn record(cluster: u16, shards: Vec<u16>, services: u8) -> Enr {
        let key = libp2p::identity::secp256k1::Keypair::generate();
        Enr::sign(
            &key,
            &Content {
                seq: 1,
                ip_tcp: Some((Ipv4Addr::LOCALHOST, 60_000)),
                udp: Some(9_000),
                services,
                shards: Some((cluster, shards)),
                ..Content::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn only_service_peers_of_our_cluster_and_shards_are_wanted() {
        assert!(wanted(&record(1, vec![0, 3], services::RELAY), 1, &[3]));
        assert!(!wanted(&record(1, vec![0, 3], services::RELAY), 1, &[4]));
        assert!(!wanted(&record(2, vec![3], services::RELAY), 1, &[3]));
        assert!(!wanted(&record(1, vec![3], 0), 1, &[3]));
        // Records of 64 shards and more carry a bit vector.
        let many: Vec<u16> = (0..100).collect();
        let r = record(7, many.clone(), services::RELAY);
        assert_eq!(r.shards(), Some((7, many)));
        assert!(wanted(&r, 7, &[99]));
    }
}
