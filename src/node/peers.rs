//! The peer manager: every peer the node heard of, where it came from, and which of them to
//! dial next.
//!
//! Discovery (discv5, DNS trees, peer exchange) and the connections themselves feed the book;
//! once a second the swarm loop asks it for the peers to dial so that every shard the node
//! relays has its target of connected relay peers and every service protocol its target of
//! service peers. Dialling stays within the gate's outbound budget, never more than
//! [`MAX_PARALLEL_DIALS`] at once, never towards an address that already holds the colocation
//! limit of our peers, and a peer that fails waits 2, 8, 32 and 128 minutes before the next
//! try ([`backoff`]); after [`MAX_FAILURES`] it is forgotten. Peers of another cluster are
//! never dialled again.
//!
//! The book is bounded ([`Book::new`]'s capacity): a new peer takes the place of the
//! disconnected one that failed most, or was seen longest ago, and is dropped when every entry
//! is connected. With a file, the book survives restarts: a restarted node reconnects to the
//! peers it knew without any bootstrap.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    path::Path,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use libp2p::{Multiaddr, PeerId};
use rusqlite::{Connection, params};

use super::gate::ip_of;
use crate::enr::{Enr, services};

/// Dials in flight at most.
pub const MAX_PARALLEL_DIALS: usize = 10;

/// Failed dials in a row after which a peer is forgotten.
pub const MAX_FAILURES: u32 = 5;

/// Addresses kept per peer.
const MAX_ADDRESSES: usize = 8;

/// Protocols kept per peer.
const MAX_PROTOCOLS: usize = 32;

/// Shards kept per peer.
const MAX_SHARDS: usize = 64;

/// How long a dial may stay unanswered before the peer can be picked again.
const DIAL_EXPIRES: Duration = Duration::from_secs(20);

/// After a disconnection, how long before the peer is dialled again.
const REDIAL_AFTER_DISCONNECT: Duration = Duration::from_secs(10);

/// The protocol ids of the relay and of the services the manager keeps peers for.
const RELAY_PROTOCOL: &str = "/vac/waku/relay/2.0.0";

/// Where the node first heard of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Given with `--static-peer`.
    Static,
    /// Found by discv5.
    Discv5,
    /// Listed in a DNS tree (EIP-1459).
    Dns,
    /// Handed over by peer exchange.
    PeerExchange,
    /// It connected to us.
    Inbound,
}

impl Origin {
    /// The name shown by the REST API and stored in the peer file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Discv5 => "discv5",
            Self::Dns => "dns",
            Self::PeerExchange => "peer-exchange",
            Self::Inbound => "inbound",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Self::Static,
            Self::Discv5,
            Self::Dns,
            Self::PeerExchange,
            Self::Inbound,
        ]
        .into_iter()
        .find(|o| o.as_str() == text)
    }
}

/// How long a peer waits after `failures` failed dials in a row: 2 minutes, then four times
/// longer after each further failure (2, 8, 32, 128 minutes), as the reference node does.
pub fn backoff(failures: u32) -> Duration {
    let n = failures.clamp(1, MAX_FAILURES);
    Duration::from_secs(120 * 4u64.pow(n - 1))
}

/// One peer as the book knows it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Where the node first heard of it.
    pub origin: Origin,
    /// Where it can be dialled.
    pub addresses: Vec<Multiaddr>,
    /// Its cluster, from its record or its metadata.
    pub cluster: Option<u16>,
    /// Its shards, from its record or its metadata.
    pub shards: Vec<u16>,
    /// The `waku2` service bits of its record.
    pub services: u8,
    /// Its discv5 record, when discovery had one: a restarted node bootstraps discv5 from
    /// the records of its book.
    pub record: Option<Enr>,
    /// The protocols it announced (identify).
    pub protocols: Vec<String>,
    /// Failed dials in a row.
    pub failures: u32,
    /// Whether it is connected, and whether we dialled it.
    pub connected: Option<Direction>,
    /// Unix seconds of the last connection; 0 if never.
    pub last_connected: u64,
    retry_at: Option<Instant>,
    dialing_since: Option<Instant>,
    /// Of another cluster: never dialled again.
    refused: bool,
}

/// Who opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We dialled the peer.
    Outbound,
    /// The peer dialled us.
    Inbound,
}

impl Direction {
    /// The name shown by the REST API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outbound => "outbound",
            Self::Inbound => "inbound",
        }
    }
}

impl Entry {
    fn new(origin: Origin) -> Self {
        Self {
            origin,
            addresses: Vec::new(),
            cluster: None,
            shards: Vec::new(),
            services: 0,
            record: None,
            protocols: Vec::new(),
            failures: 0,
            connected: None,
            last_connected: 0,
            retry_at: None,
            dialing_since: None,
            refused: false,
        }
    }

    fn relays(&self, shard: u16) -> bool {
        self.shards.contains(&shard)
            && (self.protocols.is_empty() || self.protocols.iter().any(|p| p == RELAY_PROTOCOL))
    }

    fn serves(&self, service: Service) -> bool {
        self.services & service.bit() != 0
            || self
                .protocols
                .iter()
                .any(|p| service.protocols().contains(&p.as_str()))
    }

    fn dialing(&self, now: Instant) -> bool {
        self.dialing_since
            .is_some_and(|t| now.duration_since(t) < DIAL_EXPIRES)
    }

    fn add_addresses(&mut self, addresses: impl IntoIterator<Item = Multiaddr>) -> bool {
        let mut changed = false;
        for a in addresses {
            let a: Multiaddr = a
                .into_iter()
                .filter(|p| !matches!(p, libp2p::multiaddr::Protocol::P2p(_)))
                .collect();
            if !self.addresses.contains(&a) && self.addresses.len() < MAX_ADDRESSES {
                self.addresses.push(a);
                changed = true;
            }
        }
        changed
    }

    fn take_record(&mut self, record: &Enr) {
        if let Some((cluster, shards)) = record.shards() {
            self.cluster = Some(cluster);
            self.shards = shards.into_iter().take(MAX_SHARDS).collect();
        }
        self.services = record.services();
        if self.record.as_ref().is_none_or(|r| r.seq() <= record.seq()) {
            // The newest record's addresses go first: the old ones may be stale.
            let mut fresh: Vec<Multiaddr> = record.addresses();
            fresh.extend(std::mem::take(&mut self.addresses));
            self.add_addresses(fresh);
            self.record = Some(record.clone());
        } else {
            self.add_addresses(record.addresses());
        }
    }
}

/// A service protocol the manager keeps peers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// Store v3.
    Store,
    /// Filter v2.
    Filter,
    /// Lightpush (v3 or the legacy v2).
    Lightpush,
}

impl Service {
    /// Every service.
    pub const ALL: [Self; 3] = [Self::Store, Self::Filter, Self::Lightpush];

    fn bit(self) -> u8 {
        match self {
            Self::Store => services::STORE,
            Self::Filter => services::FILTER,
            Self::Lightpush => services::LIGHTPUSH,
        }
    }

    fn protocols(self) -> &'static [&'static str] {
        match self {
            Self::Store => &["/vac/waku/store-query/3.0.0"],
            Self::Filter => &["/vac/waku/filter-subscribe/2.0.0-beta1"],
            Self::Lightpush => &[
                "/vac/waku/lightpush/3.0.0",
                "/vac/waku/lightpush/2.0.0-beta1",
            ],
        }
    }
}

/// One kind of peer the node wants.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// A relay peer on this shard.
    Relay(u16),
    /// A peer offering this service.
    Service(Service),
}

impl Want {
    fn fits(self, e: &Entry) -> bool {
        match self {
            Self::Relay(shard) => e.relays(shard),
            Self::Service(service) => e.serves(service),
        }
    }
}

/// What the node wants connected.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Connected relay peers wanted on each shard the node relays.
    pub relay_per_shard: usize,
    /// Connected peers wanted for each service protocol.
    pub per_service: usize,
    /// Connected peers behind one IP address at most; 0 for no limit.
    pub colocation: usize,
}

impl Default for Targets {
    fn default() -> Self {
        Self {
            relay_per_shard: DEFAULT_RELAY_PEERS_PER_SHARD,
            per_service: DEFAULT_SERVICE_PEERS,
            colocation: super::config::DEFAULT_MAX_INBOUND_PER_IP as usize,
        }
    }
}

/// Relay peers wanted per shard: the gossipsub mesh degree.
pub const DEFAULT_RELAY_PEERS_PER_SHARD: usize = 6;

/// Service peers wanted per protocol.
pub const DEFAULT_SERVICE_PEERS: usize = 1;

/// Every peer the node knows, bounded.
#[derive(Debug)]
pub struct Book {
    entries: HashMap<PeerId, Entry>,
    capacity: usize,
    /// Changed since the last save.
    dirty: HashSet<PeerId>,
    /// Forgotten since the last save.
    forgotten: HashSet<PeerId>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Book {
    /// An empty book of at most `capacity` peers.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: capacity.max(1),
            dirty: HashSet::new(),
            forgotten: HashSet::new(),
        }
    }

    /// How many peers it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// One peer.
    pub fn get(&self, peer: &PeerId) -> Option<&Entry> {
        self.entries.get(peer)
    }

    /// Every peer.
    pub fn iter(&self) -> impl Iterator<Item = (&PeerId, &Entry)> {
        self.entries.iter()
    }

    /// Makes room for one more entry if the book is full: the disconnected peer that failed
    /// most, then the one seen longest ago, goes. False if every entry is connected.
    fn make_room(&mut self) -> bool {
        if self.entries.len() < self.capacity {
            return true;
        }
        let victim = self
            .entries
            .iter()
            .filter(|(_, e)| e.connected.is_none() && e.origin != Origin::Static)
            .max_by_key(|(_, e)| (e.refused, e.failures, u64::MAX - e.last_connected))
            .map(|(p, _)| *p);
        match victim {
            Some(p) => {
                self.forget(p);
                true
            }
            None => false,
        }
    }

    fn forget(&mut self, peer: PeerId) {
        self.entries.remove(&peer);
        self.dirty.remove(&peer);
        self.forgotten.insert(peer);
    }

    fn entry(&mut self, peer: PeerId, origin: Origin) -> Option<&mut Entry> {
        if !self.entries.contains_key(&peer) && !self.make_room() {
            return None;
        }
        self.dirty.insert(peer);
        self.forgotten.remove(&peer);
        Some(
            self.entries
                .entry(peer)
                .or_insert_with(|| Entry::new(origin)),
        )
    }

    /// A peer found by discovery, with its record (which names its addresses, cluster, shards
    /// and services) or only addresses.
    pub fn learn(
        &mut self,
        origin: Origin,
        peer: PeerId,
        addresses: Vec<Multiaddr>,
        record: Option<&Enr>,
    ) {
        let Some(e) = self.entry(peer, origin) else {
            return;
        };
        if e.origin == Origin::Inbound {
            e.origin = origin;
        }
        if let Some(r) = record {
            e.take_record(r);
        }
        e.add_addresses(addresses);
    }

    /// A static peer: kept in the book for the record, dialled by the swarm's own redial.
    pub fn learn_static(&mut self, peer: PeerId, address: Multiaddr) {
        if let Some(e) = self.entry(peer, Origin::Static) {
            e.origin = Origin::Static;
            e.add_addresses([address]);
        }
    }

    /// A connection is up.
    pub fn connected(&mut self, peer: PeerId, direction: Direction, address: Option<Multiaddr>) {
        let Some(e) = self.entry(peer, Origin::Inbound) else {
            return;
        };
        e.connected = Some(direction);
        e.dialing_since = None;
        e.last_connected = unix_now();
        if direction == Direction::Outbound {
            e.failures = 0;
            e.retry_at = None;
            if let Some(a) = address {
                e.add_addresses([a]);
            }
        }
    }

    /// The last connection to the peer closed.
    pub fn disconnected(&mut self, peer: PeerId, now: Instant) {
        if let Some(e) = self.entries.get_mut(&peer) {
            e.connected = None;
            e.dialing_since = None;
            let after = now + REDIAL_AFTER_DISCONNECT;
            e.retry_at = Some(e.retry_at.map_or(after, |t| t.max(after)));
            self.dirty.insert(peer);
        }
    }

    /// A dial of ours failed: the peer waits its [`backoff`], or is forgotten after
    /// [`MAX_FAILURES`].
    pub fn dial_failed(&mut self, peer: PeerId, now: Instant) {
        let Some(e) = self.entries.get_mut(&peer) else {
            return;
        };
        e.dialing_since = None;
        if e.connected.is_some() {
            return;
        }
        e.failures = e.failures.saturating_add(1);
        e.retry_at = Some(now + backoff(e.failures));
        if e.failures >= MAX_FAILURES && e.origin != Origin::Static {
            self.forget(peer);
        } else {
            self.dirty.insert(peer);
        }
    }

    /// The peer may not be dialled before `until` (it was banned for spam).
    pub fn hold_until(&mut self, peer: PeerId, until: Instant) {
        if let Some(e) = self.entries.get_mut(&peer) {
            e.retry_at = Some(until);
        }
    }

    /// What identify told about the peer: its protocols and the addresses it listens on.
    pub fn identified(&mut self, peer: PeerId, protocols: Vec<String>, listen: Vec<Multiaddr>) {
        if let Some(e) = self.entries.get_mut(&peer) {
            e.protocols = protocols.into_iter().take(MAX_PROTOCOLS).collect();
            if e.connected == Some(Direction::Inbound) || e.addresses.is_empty() {
                e.add_addresses(listen.into_iter().filter(dialable));
            }
            self.dirty.insert(peer);
        }
    }

    /// What the metadata protocol told about the peer.
    pub fn metadata(&mut self, peer: PeerId, cluster: Option<u16>, shards: Vec<u16>) {
        if let Some(e) = self.entries.get_mut(&peer) {
            if cluster.is_some() {
                e.cluster = cluster;
            }
            e.shards = shards.into_iter().take(MAX_SHARDS).collect();
            self.dirty.insert(peer);
        }
    }

    /// The peer is of another cluster: it is never dialled again.
    pub fn refuse(&mut self, peer: PeerId) {
        if let Some(e) = self.entries.get_mut(&peer) {
            e.refused = true;
            self.dirty.insert(peer);
        }
    }

    /// The records of the peers of `cluster` connected most recently, at most `n`: discv5's
    /// bootstrap after a restart.
    pub fn records(&self, cluster: u16, n: usize) -> Vec<Enr> {
        let mut known: Vec<&Entry> = self
            .entries
            .values()
            .filter(|e| !e.refused && e.record.is_some() && e.cluster == Some(cluster))
            .collect();
        known.sort_by_key(|e| (e.failures, u64::MAX - e.last_connected));
        known
            .into_iter()
            .filter_map(|e| e.record.clone())
            .take(n)
            .collect()
    }

    /// Connected peers relaying `shard`.
    pub fn relay_peers(&self, shard: u16) -> usize {
        self.entries
            .values()
            .filter(|e| e.connected.is_some() && e.relays(shard))
            .count()
    }

    /// The peers to dial now, with their addresses, and marks them as being dialled.
    /// `outbound_room` is how many more outbound connections the gate allows.
    pub fn to_dial(
        &mut self,
        now: Instant,
        cluster: u16,
        shards: &[u16],
        targets: &Targets,
        outbound_room: usize,
    ) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let in_flight = self.entries.values().filter(|e| e.dialing(now)).count();
        let mut budget = MAX_PARALLEL_DIALS
            .saturating_sub(in_flight)
            .min(outbound_room.saturating_sub(in_flight));
        if budget == 0 {
            return Vec::new();
        }
        let mut per_ip: HashMap<IpAddr, usize> = HashMap::new();
        for e in self.entries.values() {
            if e.connected.is_some() || e.dialing(now) {
                for ip in e.addresses.iter().filter_map(ip_of).collect::<HashSet<_>>() {
                    *per_ip.entry(ip).or_default() += 1;
                }
            }
        }
        let dialable_now = |e: &Entry| {
            e.connected.is_none()
                && !e.dialing(now)
                && !e.refused
                && e.origin != Origin::Static
                && e.cluster.is_none_or(|c| c == cluster)
                && e.retry_at.is_none_or(|t| t <= now)
                && !e.addresses.is_empty()
        };
        let mut chosen: Vec<PeerId> = Vec::new();
        let connected_or_dialing = |e: &Entry| e.connected.is_some() || e.dialing(now);
        let mut wants: Vec<(Want, usize)> = Vec::new();
        for &shard in shards {
            let want = Want::Relay(shard);
            let have = self
                .entries
                .values()
                .filter(|e| connected_or_dialing(e) && want.fits(e))
                .count();
            wants.push((want, targets.relay_per_shard.saturating_sub(have)));
        }
        for service in Service::ALL {
            let want = Want::Service(service);
            let have = self
                .entries
                .values()
                .filter(|e| connected_or_dialing(e) && want.fits(e))
                .count();
            wants.push((want, targets.per_service.saturating_sub(have)));
        }
        for (want, need) in wants {
            let mut candidates: Vec<(&PeerId, &Entry)> = self
                .entries
                .iter()
                .filter(|(p, e)| dialable_now(e) && want.fits(e) && !chosen.contains(p))
                .collect();
            // Peers that answered before first, then those that failed least.
            candidates.sort_by_key(|(_, e)| (e.failures, u64::MAX - e.last_connected));
            let mut taken = 0;
            for (peer, e) in candidates {
                if taken >= need || budget == 0 {
                    break;
                }
                let ips: HashSet<IpAddr> = e.addresses.iter().filter_map(ip_of).collect();
                let crowded = targets.colocation > 0
                    && ips
                        .iter()
                        .any(|ip| per_ip.get(ip).copied().unwrap_or(0) >= targets.colocation);
                if crowded {
                    continue;
                }
                for ip in ips {
                    *per_ip.entry(ip).or_default() += 1;
                }
                chosen.push(*peer);
                taken += 1;
                budget -= 1;
            }
        }
        chosen
            .into_iter()
            .filter_map(|p| {
                let e = self.entries.get_mut(&p)?;
                e.dialing_since = Some(now);
                Some((p, e.addresses.clone()))
            })
            .collect()
    }
}

/// Whether an address someone announced is worth keeping for dialling.
fn dialable(address: &Multiaddr) -> bool {
    ip_of(address).is_some_and(|ip| !ip.is_unspecified())
}

/// The book's file in the data directory.
pub const FILE: &str = "peers.sqlite";

const MIGRATIONS: &[&str] = &["CREATE TABLE peers (
        peer TEXT PRIMARY KEY,
        origin TEXT NOT NULL,
        addresses TEXT NOT NULL,
        cluster INTEGER,
        shards TEXT NOT NULL,
        services INTEGER NOT NULL,
        protocols TEXT NOT NULL,
        failures INTEGER NOT NULL,
        last_connected INTEGER NOT NULL,
        refused INTEGER NOT NULL,
        record TEXT
    ) WITHOUT ROWID"];

/// The book's file.
pub struct PeerFile {
    db: Connection,
}

impl std::fmt::Debug for PeerFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerFile").finish_non_exhaustive()
    }
}

/// One saved change: a peer's row, or its removal.
pub type Change = (PeerId, Option<Entry>);

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

impl PeerFile {
    /// Opens (creating) the file at `path`.
    pub fn open(path: &Path) -> Result<Self, crate::sqlite::OpenError> {
        let db = crate::sqlite::open(path, crate::sqlite::Durability::Normal, MIGRATIONS)?;
        Ok(Self { db })
    }

    /// Reads the peers saved, the most recently connected first, at most `capacity`; rows that
    /// do not parse are skipped and counted.
    pub fn load(&self, capacity: usize) -> rusqlite::Result<(Book, usize)> {
        let mut book = Book::new(capacity);
        let mut statement = self.db.prepare(
            "SELECT peer, origin, addresses, cluster, shards, services, protocols, failures,
                    last_connected, refused, record
             FROM peers ORDER BY last_connected DESC LIMIT ?1",
        )?;
        let mut rows = statement.query([i64::try_from(capacity).unwrap_or(i64::MAX)])?;
        let mut skipped = 0;
        while let Some(row) = rows.next()? {
            let peer: String = row.get(0)?;
            let origin: String = row.get(1)?;
            let (Ok(peer), Some(origin)) = (peer.parse::<PeerId>(), Origin::parse(&origin)) else {
                skipped += 1;
                continue;
            };
            let mut e = Entry::new(origin);
            let addresses: String = row.get(2)?;
            e.addresses = addresses
                .split_whitespace()
                .filter_map(|a| a.parse().ok())
                .take(MAX_ADDRESSES)
                .collect();
            e.cluster = row
                .get::<_, Option<i64>>(3)?
                .and_then(|c| u16::try_from(c).ok());
            let shards: String = row.get(4)?;
            e.shards = shards
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .take(MAX_SHARDS)
                .collect();
            e.services = u8::try_from(row.get::<_, i64>(5)?).unwrap_or(0);
            let protocols: String = row.get(6)?;
            e.protocols = protocols
                .split_whitespace()
                .take(MAX_PROTOCOLS)
                .map(str::to_owned)
                .collect();
            e.failures = u32::try_from(row.get::<_, i64>(7)?).unwrap_or(MAX_FAILURES);
            e.last_connected = u64::try_from(row.get::<_, i64>(8)?).unwrap_or(0);
            e.refused = row.get::<_, i64>(9)? != 0;
            e.record = row
                .get::<_, Option<String>>(10)?
                .and_then(|t| Enr::from_text(&t).ok());
            book.entries.insert(peer, e);
        }
        Ok((book, skipped))
    }

    /// Writes the changes in one transaction.
    pub fn save(&mut self, changes: &[Change]) -> rusqlite::Result<()> {
        let tx = self.db.transaction()?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT OR REPLACE INTO peers (peer, origin, addresses, cluster, shards, services,
                     protocols, failures, last_connected, refused, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            let mut delete = tx.prepare_cached("DELETE FROM peers WHERE peer = ?1")?;
            for (peer, entry) in changes {
                match entry {
                    Some(e) => {
                        upsert.execute(params![
                            peer.to_string(),
                            e.origin.as_str(),
                            join(&e.addresses),
                            e.cluster,
                            join(&e.shards),
                            e.services,
                            e.protocols.join(" "),
                            e.failures,
                            i64::try_from(e.last_connected).unwrap_or(i64::MAX),
                            e.refused,
                            e.record.as_ref().map(Enr::to_text),
                        ])?;
                    }
                    None => {
                        delete.execute([peer.to_string()])?;
                    }
                }
            }
        }
        tx.commit()
    }
}

impl Book {
    /// The changes since the last call, for [`PeerFile::save`].
    pub fn take_changes(&mut self) -> Vec<Change> {
        let mut changes: Vec<Change> = self
            .forgotten
            .drain()
            .map(|p| (p, None))
            .collect::<Vec<_>>();
        for p in self.dirty.drain() {
            if let Some(e) = self.entries.get(&p) {
                changes.push((p, Some(e.clone())));
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(ip: [u8; 4], port: u16) -> Multiaddr {
        format!("/ip4/{}.{}.{}.{}/tcp/{port}", ip[0], ip[1], ip[2], ip[3])
            .parse()
            .unwrap()
    }

    fn targets() -> Targets {
        Targets {
            relay_per_shard: 2,
            per_service: 0,
            colocation: 2,
        }
    }

    /// A peer found with cluster 1 and `shards`, at 10.0.0.`host`.
    fn found(book: &mut Book, host: u8, shards: Vec<u16>) -> PeerId {
        let peer = PeerId::random();
        book.learn(
            Origin::Discv5,
            peer,
            vec![address([10, 0, 0, host], 60000)],
            None,
        );
        book.metadata(peer, Some(1), shards);
        peer
    }

    #[test]
    fn the_backoff_grows_fourfold_from_two_minutes() {
        let minutes: Vec<u64> = (1..=4).map(|n| backoff(n).as_secs() / 60).collect();
        assert_eq!(minutes, [2, 8, 32, 128]);
    }

    #[test]
    fn dials_only_what_each_shard_lacks_and_skips_other_clusters() {
        let mut book = Book::new(100);
        let now = Instant::now();
        let on_0: Vec<PeerId> = (1..=4).map(|h| found(&mut book, h, vec![0])).collect();
        let on_1 = found(&mut book, 5, vec![1]);
        let other = PeerId::random();
        book.learn(Origin::Dns, other, vec![address([10, 0, 0, 6], 1)], None);
        book.metadata(other, Some(2), vec![0]);
        book.connected(on_0[0], Direction::Inbound, None);
        let dials = book.to_dial(now, 1, &[0], &targets(), 100);
        assert_eq!(dials.len(), 1, "one connected, one more to reach 2");
        assert!(on_0[1..].contains(&dials[0].0));
        assert!(dials.iter().all(|(p, _)| *p != on_1 && *p != other));
        // Being dialled counts: nothing more until the dial ends.
        assert!(book.to_dial(now, 1, &[0], &targets(), 100).is_empty());
        // Both shards: shard 1 gets its peer, and never the other cluster's.
        let dials = book.to_dial(now, 1, &[0, 1], &targets(), 100);
        assert_eq!(dials.iter().map(|d| d.0).collect::<Vec<_>>(), vec![on_1]);
    }

    #[test]
    fn a_failing_peer_waits_its_backoff_and_is_forgotten_after_five_failures() {
        let mut book = Book::new(100);
        let peer = found(&mut book, 1, vec![0]);
        let mut now = Instant::now();
        for failure in 1..MAX_FAILURES {
            assert_eq!(book.to_dial(now, 1, &[0], &targets(), 100).len(), 1);
            book.dial_failed(peer, now);
            assert_eq!(book.get(&peer).unwrap().failures, failure);
            let wait = backoff(failure);
            assert!(
                book.to_dial(
                    now + wait - Duration::from_secs(1),
                    1,
                    &[0],
                    &targets(),
                    100
                )
                .is_empty()
            );
            now += wait;
        }
        assert_eq!(book.to_dial(now, 1, &[0], &targets(), 100).len(), 1);
        book.dial_failed(peer, now);
        assert!(book.get(&peer).is_none());
        let changes = book.take_changes();
        assert!(changes.iter().any(|(p, e)| *p == peer && e.is_none()));
    }

    #[test]
    fn no_more_than_the_colocation_limit_behind_one_address() {
        let mut book = Book::new(100);
        let now = Instant::now();
        let mut targets = targets();
        targets.relay_per_shard = 10;
        for _ in 0..5 {
            let peer = PeerId::random();
            book.learn(Origin::Discv5, peer, vec![address([10, 0, 0, 9], 1)], None);
            book.metadata(peer, Some(1), vec![0]);
        }
        assert_eq!(book.to_dial(now, 1, &[0], &targets, 100).len(), 2);
        // 0 is no limit.
        targets.colocation = 0;
        let later = now + DIAL_EXPIRES;
        assert_eq!(book.to_dial(later, 1, &[0], &targets, 100).len(), 5);
    }

    #[test]
    fn dials_stay_within_the_outbound_room_and_the_parallel_limit() {
        let mut book = Book::new(100);
        let now = Instant::now();
        let mut targets = targets();
        targets.relay_per_shard = 50;
        targets.colocation = 0;
        for h in 0..40 {
            found(&mut book, h, vec![0]);
        }
        assert_eq!(book.to_dial(now, 1, &[0], &targets, 3).len(), 3);
        let later = now + DIAL_EXPIRES;
        assert_eq!(
            book.to_dial(later, 1, &[0], &targets, 100).len(),
            MAX_PARALLEL_DIALS
        );
    }

    #[test]
    fn a_service_peer_is_kept_for_each_protocol() {
        let mut book = Book::new(100);
        let now = Instant::now();
        let store = PeerId::random();
        book.learn(Origin::Discv5, store, vec![address([10, 0, 0, 1], 1)], None);
        book.identified(store, vec!["/vac/waku/store-query/3.0.0".into()], vec![]);
        let targets = Targets {
            relay_per_shard: 0,
            per_service: 1,
            colocation: 0,
        };
        let dials = book.to_dial(now, 1, &[0], &targets, 100);
        assert_eq!(dials.iter().map(|d| d.0).collect::<Vec<_>>(), vec![store]);
    }

    #[test]
    fn a_full_book_drops_the_worst_disconnected_peer_and_never_a_connected_one() {
        let mut book = Book::new(3);
        let now = Instant::now();
        let a = found(&mut book, 1, vec![0]);
        let b = found(&mut book, 2, vec![0]);
        let c = found(&mut book, 3, vec![0]);
        book.connected(a, Direction::Outbound, None);
        book.dial_failed(b, now);
        let d = found(&mut book, 4, vec![0]);
        assert!(book.get(&b).is_none(), "the failing peer went");
        assert!(book.get(&a).is_some() && book.get(&c).is_some() && book.get(&d).is_some());
        for p in [c, d] {
            book.connected(p, Direction::Inbound, None);
        }
        let e = PeerId::random();
        book.learn(Origin::Discv5, e, vec![address([10, 0, 0, 5], 1)], None);
        assert!(book.get(&e).is_none(), "no room: every peer is connected");
        assert_eq!(book.len(), 3);
    }

    #[test]
    fn the_file_keeps_the_book_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut book = Book::new(10);
        let now = Instant::now();
        let a = found(&mut book, 1, vec![0, 3]);
        book.connected(a, Direction::Outbound, Some(address([10, 0, 0, 1], 2)));
        book.identified(a, vec![RELAY_PROTOCOL.into()], vec![]);
        let b = found(&mut book, 2, vec![1]);
        book.refuse(b);
        let gone = found(&mut book, 3, vec![1]);
        let mut file = PeerFile::open(&path).unwrap();
        file.save(&book.take_changes()).unwrap();
        for _ in 0..MAX_FAILURES {
            book.dial_failed(gone, now);
        }
        file.save(&book.take_changes()).unwrap();
        drop(file);

        let (loaded, skipped) = PeerFile::open(&path).unwrap().load(10).unwrap();
        assert_eq!(skipped, 0);
        assert_eq!(loaded.len(), 2);
        let la = loaded.get(&a).unwrap();
        assert_eq!(la.shards, vec![0, 3]);
        assert_eq!(la.cluster, Some(1));
        assert_eq!(la.origin, Origin::Discv5);
        assert_eq!(la.addresses.len(), 2);
        assert_eq!(la.protocols, vec![RELAY_PROTOCOL.to_string()]);
        assert!(
            la.connected.is_none(),
            "nothing is connected after a restart"
        );
        assert!(la.last_connected > 0);
        assert!(loaded.get(&b).unwrap().refused);
        assert!(loaded.get(&gone).is_none());
    }
}
