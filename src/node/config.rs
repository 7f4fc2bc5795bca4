//! The node's configuration as the library takes it; the CLI builds it from flags, the
//! environment, a TOML file and presets.

use std::{path::PathBuf, time::Duration};

use alloy::primitives::Address;
use libp2p::{Multiaddr, identity::Keypair};
use zeroize::Zeroizing;

use super::keys::KeyKind;
use crate::chain::Endpoint;
use crate::relay::pipeline::RlnRules;

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where the node keeps its key, sync store and message-id counter.
    pub data_dir: PathBuf,
    /// The node key; `None` loads or creates `data_dir/node.key` of `key_kind`.
    pub key: Option<Keypair>,
    /// The kind of a newly created node key.
    pub key_kind: KeyKind,
    /// Listen addresses (`/ip4/.../tcp/P` and `/ip4/.../tcp/P/ws`).
    pub listen: Vec<Multiaddr>,
    /// Peers to keep connected to (redialled with backoff).
    pub static_peers: Vec<Multiaddr>,
    /// Cluster id.
    pub cluster: u16,
    /// Shards per cluster, for autosharding.
    pub shard_count: u16,
    /// Static shards to relay from the start.
    pub shards: Vec<u16>,
    /// Largest number of connections (a third outbound, the rest inbound); static peers have
    /// slots of their own beyond it.
    pub max_connections: u32,
    /// Largest number of inbound connections from one IP address (0: no limit).
    pub max_inbound_per_ip: u32,
    /// RLN; `None` relays without RLN (private networks only).
    pub rln: Option<RlnConfig>,
    /// The Store v3 archive; `None` serves no store queries (and answers 503).
    pub store: Option<StoreConfig>,
    /// The filter v2 service and its limits; `None` serves no filter subscriptions.
    pub filter: Option<crate::filter::Limits>,
    /// Whether to serve lightpush (v3 and the legacy v2) to light clients.
    pub lightpush: bool,
    /// Whether to answer peer exchange (and ask relay peers for records to hand on).
    pub peer_exchange: bool,
    /// Addresses to announce in the node's record; empty takes the concrete listen addresses.
    pub announce: Vec<Multiaddr>,
    /// Request rate limits of the service protocols, per peer (and five times that per IP
    /// address); a protocol without one is not limited.
    pub rate_limits: Vec<crate::rate_limit::RateLimit>,
    /// discv5 discovery; `None` finds peers only through static peers and peer exchange.
    pub discv5: Option<crate::discovery::Config>,
    /// DNS trees (EIP-1459) read at start: their records are dialled (those of this cluster
    /// and shards) and, with discv5, bootstrap it.
    pub dns_discovery: Vec<crate::dns_discovery::TreeUrl>,
    /// The DNS servers to read them from; empty uses the system's.
    pub dns_name_servers: Vec<std::net::SocketAddr>,
    /// The peer manager: how many peers to keep, and whether to remember them.
    pub peer_manager: PeerManagerConfig,
    /// The node is not reachable from outside (behind a NAT): it reserves slots on relay
    /// peers (circuit relay v2) and is dialled through them, then hole punching (DCUtR)
    /// replaces the relayed connection with a direct one where the NATs allow.
    pub relay_client: bool,
    /// Offer circuit relay v2 to nodes behind NATs.
    pub circuit_relay: bool,
}

/// The peer manager's targets and its book.
#[derive(Debug, Clone)]
pub struct PeerManagerConfig {
    /// Connected relay peers wanted on each shard the node relays.
    pub relay_peers_per_shard: usize,
    /// Connected peers wanted for each service protocol (store, filter, lightpush).
    pub service_peers: usize,
    /// Peers remembered at most; 0 takes five times `max_connections`.
    pub capacity: usize,
    /// Whether the book is kept in `data_dir/peers.sqlite`, so that a restarted node
    /// reconnects without bootstrapping.
    pub persist: bool,
}

impl Default for PeerManagerConfig {
    fn default() -> Self {
        Self {
            relay_peers_per_shard: super::peers::DEFAULT_RELAY_PEERS_PER_SHARD,
            service_peers: super::peers::DEFAULT_SERVICE_PEERS,
            capacity: 0,
            persist: true,
        }
    }
}

/// Inbound connections one IP address may hold by default: room for a few nodes behind one
/// NAT, far from the whole inbound budget.
pub const DEFAULT_MAX_INBOUND_PER_IP: u32 = 10;

/// The message archive.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The database: an SQLite file or a PostgreSQL URL.
    pub backend: crate::store::Backend,
    /// What to delete, checked every `retention_interval`.
    pub retention: crate::store::Retention,
    /// How often retention runs.
    pub retention_interval: Duration,
    /// Store sync with other store nodes, when on.
    pub sync: Option<crate::store::sync::SyncConfig>,
}

impl NodeConfig {
    /// A configuration for tests and local networks: loopback TCP on a free port, cluster
    /// `cluster`, shard 0, no RLN.
    pub fn local(data_dir: PathBuf, cluster: u16) -> Self {
        Self {
            data_dir,
            key: None,
            key_kind: KeyKind::Secp256k1,
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("a valid multiaddr")],
            static_peers: Vec::new(),
            cluster,
            shard_count: 8,
            shards: vec![0],
            max_connections: 50,
            max_inbound_per_ip: DEFAULT_MAX_INBOUND_PER_IP,
            rln: None,
            store: None,
            filter: None,
            lightpush: true,
            peer_exchange: false,
            announce: Vec::new(),
            rate_limits: Vec::new(),
            discv5: None,
            dns_discovery: Vec::new(),
            dns_name_servers: Vec::new(),
            peer_manager: PeerManagerConfig::default(),
            relay_client: false,
            circuit_relay: false,
        }
    }
}

/// RLN enforcement.
#[derive(Debug, Clone)]
pub struct RlnConfig {
    /// Epoch period and clock drift.
    pub rules: RlnRules,
    /// Recent roots accepted.
    pub root_window: usize,
    /// The membership contract.
    pub chain: ChainConfig,
    /// The node's own membership, to publish with.
    pub membership: Option<MembershipConfig>,
    /// A pool of memberships lending proofs to light clients.
    pub lending: Option<LendingConfig>,
}

/// The lending pool: memberships of a keystore, separate from the node's own.
#[derive(Clone)]
pub struct LendingConfig {
    /// The keystore holding the pool's credentials (one password for all).
    pub keystore: PathBuf,
    /// The credentials to use; empty takes every one registered with the contract.
    pub keys: Vec<String>,
    /// The keystore password.
    pub password: Zeroizing<String>,
    /// The circuit files.
    pub circuit_dir: PathBuf,
    /// Per-client quota and reserve.
    pub rules: crate::lightpush::lending::LendingRules,
}

impl std::fmt::Debug for LendingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LendingConfig")
            .field("keystore", &self.keystore)
            .field("keys", &self.keys)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// The membership contract to sync from.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// JSON-RPC endpoints (failover in order).
    pub rpc: Vec<Endpoint>,
    /// The contract.
    pub contract: Address,
    /// The expected chain id.
    pub chain_id: Option<u64>,
    /// Seconds between sync steps.
    pub poll_interval: Duration,
    /// Blocks to stay behind the head.
    pub follow_distance: u64,
}

/// The node's own membership.
#[derive(Clone)]
pub struct MembershipConfig {
    /// The keystore.
    pub keystore: PathBuf,
    /// The credential's key; `None` picks the only one registered with the contract.
    pub key: Option<String>,
    /// The keystore password.
    pub password: Zeroizing<String>,
    /// The circuit files (proving key and witness graph).
    pub circuit_dir: PathBuf,
}

impl std::fmt::Debug for MembershipConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MembershipConfig")
            .field("keystore", &self.keystore)
            .field("key", &self.key)
            .field("circuit_dir", &self.circuit_dir)
            .finish_non_exhaustive()
    }
}
