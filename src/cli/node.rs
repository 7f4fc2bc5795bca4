//! `wakurln node`: runs a relay node. Options come from flags, then `WAKURLN_*` environment
//! variables, then a TOML file (`--config`, keys named as the flags), then a preset (`twn` or
//! `dev`), then defaults.

use std::{path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wakurln::{
    chain::Endpoint,
    lightpush::lending::LendingRules,
    node::{
        self, ChainConfig, LendingConfig, MembershipConfig, NodeConfig, NodeEvent, RlnConfig,
        StoreConfig, keys::KeyKind,
    },
    presets::{Network, Preset},
    relay::pipeline::RlnRules,
    rest::Access,
    store::Retention,
};

use super::{CliError, circuit::default_circuit_dir, password::PASSWORD_ENV};

/// The node key's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    /// secp256k1 (as the Nim node).
    Secp256k1,
    /// Ed25519 (as the JS client).
    Ed25519,
}

/// `wakurln node` options. Every one can also be set in the TOML file given with --config,
/// under the flag's name without the dashes prefix (for example `tcp-port = 60000`).
#[derive(Debug, Default, Args, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NodeArgs {
    /// A TOML file with options (flags and environment variables override it).
    #[arg(long, value_name = "FILE", env = "WAKURLN_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Network preset: `twn` (The Waku Network) or `dev`.
    #[arg(long, value_enum, env = "WAKURLN_PRESET")]
    preset: Option<Preset>,
    /// Where the node keeps its key, membership tree and message-id counter
    /// [default: ~/.wakurln/node].
    #[arg(long, value_name = "DIR", env = "WAKURLN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A file holding the node's 32-byte secret key as hex; without it the key is kept in the
    /// data directory (created on first start).
    #[arg(long, value_name = "FILE", env = "WAKURLN_NODE_KEY_FILE")]
    node_key_file: Option<PathBuf>,
    /// Type of the node key [default: secp256k1].
    #[arg(long, value_enum, env = "WAKURLN_KEY_TYPE")]
    key_type: Option<KeyType>,
    /// Address to listen on [default: 0.0.0.0].
    #[arg(long, value_name = "IP", env = "WAKURLN_LISTEN_ADDRESS")]
    listen_address: Option<String>,
    /// TCP port [default: 60000; 0 picks a free port].
    #[arg(long, value_name = "PORT", env = "WAKURLN_TCP_PORT")]
    tcp_port: Option<u16>,
    /// WebSocket port (WebSockets are off without it).
    #[arg(long, value_name = "PORT", env = "WAKURLN_WS_PORT")]
    ws_port: Option<u16>,
    /// A peer to stay connected to, as a multiaddr with /p2p/<peer id> (repeatable).
    #[arg(
        long,
        value_name = "MULTIADDR",
        env = "WAKURLN_STATIC_PEERS",
        value_delimiter = ','
    )]
    static_peer: Option<Vec<String>>,
    /// Cluster id [default: from the preset, else 66].
    #[arg(long, value_name = "ID", env = "WAKURLN_CLUSTER_ID")]
    cluster_id: Option<u16>,
    /// A static shard to relay (repeatable) [default: from the preset, else 0].
    #[arg(long, value_name = "N", env = "WAKURLN_SHARDS", value_delimiter = ',')]
    shard: Option<Vec<u16>>,
    /// Shards per cluster for autosharding [default: 8].
    #[arg(long, value_name = "N", env = "WAKURLN_SHARD_COUNT")]
    shard_count: Option<u16>,
    /// Largest number of connections, a third of them outbound; static peers have slots of
    /// their own beyond it [default: 50].
    #[arg(long, value_name = "N", env = "WAKURLN_MAX_CONNECTIONS")]
    max_connections: Option<u32>,
    /// Largest number of inbound connections from one IP address, 0 for no limit [default: 10].
    #[arg(long, value_name = "N", env = "WAKURLN_IP_COLOCATION_LIMIT")]
    ip_colocation_limit: Option<u32>,
    /// Relay without RLN: no rate limits, for private networks only.
    #[arg(long, env = "WAKURLN_NO_RLN", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    no_rln: Option<bool>,
    /// Ethereum JSON-RPC endpoint of the membership contract's chain (repeatable: failover).
    #[arg(
        long,
        value_name = "URL",
        env = "WAKURLN_RLN_RPC",
        value_delimiter = ','
    )]
    rln_rpc: Option<Vec<String>>,
    /// The membership contract [default: from the preset].
    #[arg(long, value_name = "ADDRESS", env = "WAKURLN_RLN_CONTRACT")]
    rln_contract: Option<String>,
    /// Refuse RPC endpoints of another chain [default: from the preset].
    #[arg(long, value_name = "ID", env = "WAKURLN_RLN_CHAIN_ID")]
    rln_chain_id: Option<u64>,
    /// Seconds per RLN epoch [default: 600].
    #[arg(long, value_name = "SECONDS", env = "WAKURLN_RLN_EPOCH_PERIOD")]
    rln_epoch_period: Option<u64>,
    /// Largest accepted clock difference of a message's timestamp, in seconds [default: 20].
    #[arg(long, value_name = "SECONDS", env = "WAKURLN_RLN_MAX_CLOCK_DRIFT")]
    rln_max_clock_drift: Option<u64>,
    /// Recent membership roots accepted [default: 50].
    #[arg(long, value_name = "N", env = "WAKURLN_RLN_ROOT_WINDOW")]
    rln_root_window: Option<usize>,
    /// Seconds between chain sync steps [default: 5; 1 with the dev preset].
    #[arg(long, value_name = "SECONDS", env = "WAKURLN_RLN_POLL_INTERVAL")]
    rln_poll_interval: Option<f64>,
    /// Blocks to stay behind the chain head [default: 2; 0 with the dev preset].
    #[arg(long, value_name = "N", env = "WAKURLN_RLN_FOLLOW_DISTANCE")]
    rln_follow_distance: Option<u64>,
    /// Keystore with this node's membership, to publish with (relaying needs none).
    #[arg(long, value_name = "FILE", env = "WAKURLN_RLN_KEYSTORE")]
    rln_keystore: Option<PathBuf>,
    /// Which credential of the keystore [default: the only one of this contract].
    #[arg(long, value_name = "KEY", env = "WAKURLN_RLN_KEY")]
    rln_key: Option<String>,
    /// File with the keystore password [default: WAKURLN_KEYSTORE_PASSWORD].
    #[arg(long, value_name = "FILE", env = "WAKURLN_RLN_PASSWORD_FILE")]
    rln_password_file: Option<PathBuf>,
    /// Keystore of memberships that lend RLN proofs to light clients pushing without one
    /// (separate from --rln-keystore; same password).
    #[arg(long, value_name = "FILE", env = "WAKURLN_LEND_KEYSTORE")]
    lend_keystore: Option<PathBuf>,
    /// Which credentials of the lending keystore (repeatable) [default: all of this contract].
    #[arg(
        long,
        value_name = "KEY",
        env = "WAKURLN_LEND_KEYS",
        value_delimiter = ','
    )]
    lend_key: Option<Vec<String>>,
    /// Lent proofs per client and epoch [default: 10].
    #[arg(long, value_name = "N", env = "WAKURLN_LEND_PER_CLIENT_QUOTA")]
    lend_per_client_quota: Option<u64>,
    /// Lent proofs per epoch held back for clients that had none yet [default: 0].
    #[arg(long, value_name = "N", env = "WAKURLN_LEND_RESERVE")]
    lend_reserve: Option<u64>,
    /// Keep an archive of relayed messages and serve Store v3 queries.
    #[arg(long, env = "WAKURLN_STORE", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    store: Option<bool>,
    /// The archive's SQLite file [default: <data dir>/archive.sqlite].
    #[arg(long, value_name = "FILE", env = "WAKURLN_STORE_PATH")]
    store_path: Option<PathBuf>,
    /// Delete archived messages older than this many seconds [default: 172800, two days].
    #[arg(long, value_name = "SECONDS", env = "WAKURLN_STORE_RETENTION_TIME")]
    store_retention_time: Option<u64>,
    /// Keep at most this many archived messages.
    #[arg(long, value_name = "N", env = "WAKURLN_STORE_MAX_MESSAGES")]
    store_max_messages: Option<u64>,
    /// Keep the archived message bytes under this size.
    #[arg(long, value_name = "BYTES", env = "WAKURLN_STORE_MAX_SIZE")]
    store_max_size: Option<u64>,
    /// Serve filter v2 subscriptions to light clients.
    #[arg(long, env = "WAKURLN_FILTER", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    filter: Option<bool>,
    /// Most peers subscribed to the filter service at once [default: 100].
    #[arg(long, value_name = "N", env = "WAKURLN_FILTER_MAX_PEERS")]
    filter_max_peers: Option<usize>,
    /// Most content filters (pubsub topic, content topic) one filter subscriber may hold
    /// [default: 1000].
    #[arg(long, value_name = "N", env = "WAKURLN_FILTER_MAX_CRITERIA")]
    filter_max_criteria: Option<usize>,
    /// A filter subscription that is not pinged for this many seconds expires [default: 300].
    #[arg(long, value_name = "SECONDS", env = "WAKURLN_FILTER_TIMEOUT")]
    filter_timeout: Option<u64>,
    /// Serve lightpush (v3 and the legacy v2) to light clients [default: true].
    #[arg(long, env = "WAKURLN_LIGHTPUSH", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    lightpush: Option<bool>,
    /// Answer peer exchange, handing light clients the records of service peers.
    #[arg(long, env = "WAKURLN_PEER_EXCHANGE", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    peer_exchange: Option<bool>,
    /// A request rate limit, [PROTOCOL:]VOLUME/PERIOD as the reference node takes it
    /// (`store:100/1s`, `lightpush:10/1m`, `10/1m` for every protocol without its own; protocols
    /// store, storev3, lightpush, filter, px; units ms, s, m, h; 0 lifts a limit), per peer and
    /// five times that per IP address (repeatable) [default: filter:30/1m, the others none].
    #[arg(
        long,
        value_name = "LIMIT",
        env = "WAKURLN_RATE_LIMIT",
        value_delimiter = ','
    )]
    rate_limit: Option<Vec<String>>,
    /// Find peers with discv5 (the reference node's `d5waku` network): peers of this cluster
    /// that share a shard with the node are dialled.
    #[arg(long, env = "WAKURLN_DISCV5_DISCOVERY", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    discv5_discovery: Option<bool>,
    /// A discv5 record to start from, `enr:...` (repeatable).
    #[arg(
        long,
        value_name = "ENR",
        env = "WAKURLN_DISCV5_BOOTSTRAP_NODE",
        value_delimiter = ','
    )]
    discv5_bootstrap_node: Option<Vec<String>>,
    /// The discv5 UDP port [default: 9000; 0 picks a free port].
    #[arg(long, value_name = "PORT", env = "WAKURLN_DISCV5_UDP_PORT")]
    discv5_udp_port: Option<u16>,
    /// A DNS tree of node records to read at start, `enrtree://KEY@DOMAIN` (EIP-1459,
    /// repeatable).
    #[arg(
        long,
        value_name = "URL",
        env = "WAKURLN_DNS_DISCOVERY_URL",
        value_delimiter = ','
    )]
    dns_discovery_url: Option<Vec<String>>,
    /// The DNS server to read DNS trees from, IP or IP:PORT (repeatable) [default: the
    /// system's].
    #[arg(
        long,
        value_name = "ADDRESS",
        env = "WAKURLN_DNS_DISCOVERY_NAME_SERVER",
        value_delimiter = ','
    )]
    dns_discovery_name_server: Option<Vec<String>>,
    /// Connected relay peers the peer manager keeps on each shard the node relays
    /// [default: 6].
    #[arg(long, value_name = "N", env = "WAKURLN_RELAY_PEERS_PER_SHARD")]
    relay_peers_per_shard: Option<usize>,
    /// Connected peers the peer manager keeps for each service protocol (store, filter,
    /// lightpush) among the peers it knows to offer it [default: 1].
    #[arg(long, value_name = "N", env = "WAKURLN_SERVICE_PEERS")]
    service_peers: Option<usize>,
    /// Peers remembered at most, connected or not [default: 5 × --max-connections].
    #[arg(long, value_name = "N", env = "WAKURLN_PEER_STORE_CAPACITY")]
    peer_store_capacity: Option<usize>,
    /// Remember peers in the data directory (`peers.sqlite`), so that a restarted node
    /// reconnects to them without bootstrapping [default: true].
    #[arg(long, env = "WAKURLN_PEER_PERSISTENCE", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    peer_persistence: Option<bool>,
    /// This node is behind a NAT: reserve slots on peers offering circuit relay v2, be dialled
    /// through them, and punch holes (DCUtR) to replace relayed connections with direct ones.
    #[arg(long, env = "WAKURLN_RELAY_CLIENT", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    relay_client: Option<bool>,
    /// Offer circuit relay v2 to nodes behind NATs (bounded: 128 reservations, 16 circuits of
    /// 2 minutes and 128 KiB each).
    #[arg(long, env = "WAKURLN_CIRCUIT_RELAY_SERVICE", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    circuit_relay_service: Option<bool>,
    /// Address to announce in the node's record instead of the listen addresses (repeatable).
    #[arg(
        long,
        value_name = "MULTIADDR",
        env = "WAKURLN_EXT_MULTIADDR",
        value_delimiter = ','
    )]
    ext_multiaddr: Option<Vec<String>>,
    /// Address of the REST API (and /metrics) [default: 127.0.0.1].
    #[arg(long, value_name = "IP", env = "WAKURLN_REST_ADDRESS")]
    rest_address: Option<String>,
    /// Port of the REST API [default: 8645; 0 picks a free port].
    #[arg(long, value_name = "PORT", env = "WAKURLN_REST_PORT")]
    rest_port: Option<u16>,
    /// A token every REST request that changes something must carry (`Authorization: Bearer
    /// <token>`); set it whenever the API listens beyond loopback.
    #[arg(long, value_name = "TOKEN", env = "WAKURLN_REST_ADMIN_TOKEN")]
    rest_admin_token: Option<String>,
    /// A host name REST requests may be addressed to (repeatable) [default: loopback names
    /// when the API listens on loopback, any otherwise].
    #[arg(
        long,
        value_name = "HOST",
        env = "WAKURLN_REST_ALLOWED_HOST",
        value_delimiter = ','
    )]
    rest_allowed_host: Option<Vec<String>>,
    /// Seconds a REST request may take before it is answered 504 [default: 30].
    #[arg(long, value_name = "SECONDS", env = "WAKURLN_REST_TIMEOUT")]
    rest_timeout: Option<f64>,
    /// Do not serve the REST API.
    #[arg(long, env = "WAKURLN_NO_REST", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    no_rest: Option<bool>,
    /// The circuit files [default: ~/.wakurln/circuits/waku-rln-v2; see `wakurln circuit
    /// install`].
    #[arg(long, value_name = "DIR", env = "WAKURLN_CIRCUIT_DIR")]
    circuit_dir: Option<PathBuf>,
}

impl NodeArgs {
    /// Flags and environment first, then the file: fields the flags left unset are taken from
    /// the file.
    fn merged(self) -> Result<Self, CliError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            CliError::bad_input(format!(
                "cannot read the config file {}: {e}",
                path.display()
            ))
        })?;
        let file: Self = toml::from_str(&text).map_err(|e| {
            CliError::bad_input(format!(
                "the config file {} is not valid: {}",
                path.display(),
                e.message()
            ))
        })?;
        let mut ours = serde_json::to_value(&self).expect("options serialise");
        let theirs = serde_json::to_value(&file).expect("options serialise");
        if let (Value::Object(ours), Value::Object(theirs)) = (&mut ours, theirs) {
            for (k, v) in theirs {
                if ours.get(&k).is_none_or(Value::is_null) {
                    ours.insert(k, v);
                }
            }
        }
        let mut merged: Self = serde_json::from_value(ours).expect("options deserialise");
        merged.config = Some(path);
        Ok(merged)
    }

    /// The library configuration, with presets and defaults applied and everything checked.
    fn into_config(self) -> Result<NodeConfig, CliError> {
        let network = self.preset.map_or_else(Network::custom, Preset::network);
        let data_dir = self.data_dir.unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map_or_else(|| PathBuf::from("."), PathBuf::from)
                .join(".wakurln/node")
        });
        let key_kind = match self.key_type {
            Some(KeyType::Ed25519) => KeyKind::Ed25519,
            _ => KeyKind::Secp256k1,
        };
        let key = match &self.node_key_file {
            Some(file) => {
                let text = zeroize::Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
                    CliError::bad_input(format!(
                        "cannot read --node-key-file {}: {e}",
                        file.display()
                    ))
                })?);
                Some(node::keys::from_hex(key_kind, &text).map_err(CliError::bad_input)?)
            }
            None => None,
        };
        let ip = self.listen_address.unwrap_or_else(|| "0.0.0.0".into());
        let ip: std::net::IpAddr = ip.parse().map_err(|_| {
            CliError::bad_input(format!("--listen-address {ip} is not an IP address"))
        })?;
        let ip_proto = match ip {
            std::net::IpAddr::V4(_) => "ip4",
            std::net::IpAddr::V6(_) => "ip6",
        };
        let mut listen = vec![format!(
            "/{ip_proto}/{ip}/tcp/{}",
            self.tcp_port.unwrap_or(60_000)
        )];
        if let Some(ws) = self.ws_port {
            listen.push(format!("/{ip_proto}/{ip}/tcp/{ws}/ws"));
        }
        let listen = listen
            .into_iter()
            .map(|a| a.parse().expect("a well-formed multiaddr"))
            .collect();
        let static_peers = self
            .static_peer
            .unwrap_or_default()
            .iter()
            .map(|p| {
                p.trim().parse().map_err(|e| {
                    CliError::bad_input(format!("--static-peer {p} is not a multiaddr: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cluster = self.cluster_id.unwrap_or(network.cluster);
        let shard_count = self.shard_count.unwrap_or(network.shard_count);
        if shard_count == 0 {
            return Err(CliError::bad_input("--shard-count must be at least 1"));
        }
        let shards = self.shard.unwrap_or_else(|| network.shards.clone());
        if let Some(bad) = shards.iter().find(|s| **s >= shard_count) {
            return Err(CliError::bad_input(format!(
                "--shard {bad} is not below --shard-count {shard_count}"
            )));
        }
        let rln = if self.no_rln.unwrap_or(false) {
            if network.requires_rln {
                return Err(CliError::bad_input(
                    "The Waku Network enforces RLN: --no-rln cannot be used with --preset twn",
                ));
            }
            None
        } else {
            let rpc: Vec<Endpoint> = self
                .rln_rpc
                .unwrap_or_default()
                .into_iter()
                .map(|u| Endpoint(u.trim().to_owned()))
                .collect();
            let contract = self
                .rln_contract
                .or_else(|| network.contract.map(|c| c.to_string()));
            let (false, Some(contract)) = (rpc.is_empty(), contract) else {
                return Err(CliError::bad_input(
                    "RLN is on: give --rln-rpc and --rln-contract (with --preset twn, --rln-rpc \
                     of Linea Sepolia), or --no-rln for a private network without rate limits",
                ));
            };
            let contract = contract.trim().parse().map_err(|_| {
                CliError::bad_input(format!("--rln-contract {contract} is not an address"))
            })?;
            let epoch_period = self.rln_epoch_period.unwrap_or(network.epoch_period);
            if epoch_period == 0 {
                return Err(CliError::bad_input(
                    "--rln-epoch-period must be at least 1 s",
                ));
            }
            let poll = self
                .rln_poll_interval
                .unwrap_or(network.poll_interval.as_secs_f64());
            if !(poll > 0.0 && poll.is_finite()) {
                return Err(CliError::bad_input("--rln-poll-interval must be positive"));
            }
            let circuit_dir = self.circuit_dir.clone().unwrap_or_else(default_circuit_dir);
            let lending = match self.lend_keystore {
                None => None,
                Some(keystore) => {
                    if !keystore.is_file() {
                        return Err(CliError::bad_input(format!(
                            "--lend-keystore {} does not exist",
                            keystore.display()
                        )));
                    }
                    let quota = self.lend_per_client_quota.unwrap_or(10);
                    if quota == 0 {
                        return Err(CliError::bad_input(
                            "--lend-per-client-quota must be at least 1",
                        ));
                    }
                    Some(LendingConfig {
                        keystore,
                        keys: self.lend_key.clone().unwrap_or_default(),
                        password: super::password::obtain(
                            self.rln_password_file.as_ref(),
                            PASSWORD_ENV,
                            "keystore password",
                            false,
                        )?,
                        circuit_dir: circuit_dir.clone(),
                        rules: LendingRules {
                            per_client_quota: quota,
                            reserve: self.lend_reserve.unwrap_or(0),
                        },
                    })
                }
            };
            let membership = match self.rln_keystore {
                None => None,
                Some(keystore) => {
                    if !keystore.is_file() {
                        return Err(CliError::bad_input(format!(
                            "--rln-keystore {} does not exist",
                            keystore.display()
                        )));
                    }
                    let password = super::password::obtain(
                        self.rln_password_file.as_ref(),
                        PASSWORD_ENV,
                        "keystore password",
                        false,
                    )?;
                    Some(MembershipConfig {
                        keystore,
                        key: self.rln_key,
                        password,
                        circuit_dir,
                    })
                }
            };
            Some(RlnConfig {
                rules: RlnRules {
                    epoch_period,
                    max_clock_drift: Duration::from_secs(self.rln_max_clock_drift.unwrap_or(20)),
                },
                root_window: self.rln_root_window.unwrap_or(50).max(1),
                chain: ChainConfig {
                    rpc,
                    contract,
                    chain_id: self.rln_chain_id.or(network.chain_id),
                    poll_interval: Duration::from_secs_f64(poll),
                    follow_distance: self.rln_follow_distance.unwrap_or(network.follow_distance),
                },
                lending,
                membership,
            })
        };
        Ok(NodeConfig {
            key,
            key_kind,
            listen,
            static_peers,
            cluster,
            shard_count,
            shards,
            max_connections: self.max_connections.unwrap_or(50),
            relay_client: self.relay_client.unwrap_or(false),
            circuit_relay: self.circuit_relay_service.unwrap_or(false),
            peer_manager: node::PeerManagerConfig {
                relay_peers_per_shard: self
                    .relay_peers_per_shard
                    .unwrap_or(node::peers::DEFAULT_RELAY_PEERS_PER_SHARD),
                service_peers: self
                    .service_peers
                    .unwrap_or(node::peers::DEFAULT_SERVICE_PEERS),
                capacity: self.peer_store_capacity.unwrap_or(0),
                persist: self.peer_persistence.unwrap_or(true),
            },
            max_inbound_per_ip: self
                .ip_colocation_limit
                .unwrap_or(node::config::DEFAULT_MAX_INBOUND_PER_IP),
            rln,
            store: self.store.unwrap_or(false).then(|| StoreConfig {
                path: self
                    .store_path
                    .unwrap_or_else(|| data_dir.join("archive.sqlite")),
                retention: Retention {
                    max_age_secs: Some(self.store_retention_time.unwrap_or(172_800)),
                    max_messages: self.store_max_messages,
                    max_bytes: self.store_max_size,
                },
                retention_interval: Duration::from_secs(60),
            }),
            filter: self.filter.unwrap_or(false).then(|| {
                let d = wakurln::filter::Limits::default();
                wakurln::filter::Limits {
                    max_subscribers: self.filter_max_peers.unwrap_or(d.max_subscribers),
                    max_criteria_per_peer: self
                        .filter_max_criteria
                        .unwrap_or(d.max_criteria_per_peer),
                    ttl: self.filter_timeout.map_or(d.ttl, Duration::from_secs),
                    ..d
                }
            }),
            lightpush: self.lightpush.unwrap_or(true),
            peer_exchange: self.peer_exchange.unwrap_or(false),
            announce: self
                .ext_multiaddr
                .iter()
                .flatten()
                .map(|a| {
                    a.parse().map_err(|e| {
                        CliError::bad_input(format!("--ext-multiaddr {a} is not a multiaddr: {e}"))
                    })
                })
                .collect::<Result<_, _>>()?,
            discv5: if self.discv5_discovery.unwrap_or(network.discv5) {
                let given = self.discv5_bootstrap_node.clone().unwrap_or_default();
                let texts: Vec<String> = if given.is_empty() {
                    network.bootstrap.iter().map(|s| (*s).to_owned()).collect()
                } else {
                    given
                };
                let bootstrap = texts
                    .iter()
                    .map(|text| {
                        wakurln::enr::Enr::from_text(text).map_err(|e| {
                            CliError::bad_input(format!(
                                "--discv5-bootstrap-node {text}: not a usable record ({e})"
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some(wakurln::discovery::Config {
                    udp_port: self
                        .discv5_udp_port
                        .unwrap_or(wakurln::discovery::DEFAULT_UDP_PORT),
                    bootstrap,
                    ..wakurln::discovery::Config::default()
                })
            } else {
                None
            },
            dns_discovery: self
                .dns_discovery_url
                .clone()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| {
                    network
                        .dns_discovery
                        .iter()
                        .map(|s| (*s).to_owned())
                        .collect()
                })
                .iter()
                .map(|u| {
                    u.parse()
                        .map_err(|e| CliError::bad_input(format!("--dns-discovery-url: {e}")))
                })
                .collect::<Result<_, _>>()?,
            dns_name_servers: self
                .dns_discovery_name_server
                .iter()
                .flatten()
                .map(|a| {
                    a.parse::<std::net::SocketAddr>()
                        .or_else(|_| a.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
                        .map_err(|_| {
                            CliError::bad_input(format!(
                                "--dns-discovery-name-server {a}: not an IP address or IP:PORT"
                            ))
                        })
                })
                .collect::<Result<_, _>>()?,
            rate_limits: self
                .rate_limit
                .iter()
                .flatten()
                .map(|l| {
                    let limit: wakurln::rate_limit::RateLimit = l
                        .parse()
                        .map_err(|e| CliError::bad_input(format!("--rate-limit: {e}")))?;
                    if limit.scope == wakurln::rate_limit::Scope::LegacyStore {
                        eprintln!(
                            "warning: --rate-limit {l}: this node does not serve the legacy \
                             store v2, so the limit has nothing to apply to"
                        );
                    }
                    Ok(limit)
                })
                .collect::<Result<_, CliError>>()?,
            data_dir,
        })
    }

    /// Where to serve the REST API, if at all, and how it is guarded.
    fn rest(&self) -> Result<Option<(std::net::SocketAddr, Access)>, CliError> {
        if self.no_rest.unwrap_or(false) {
            return Ok(None);
        }
        let ip = self
            .rest_address
            .clone()
            .unwrap_or_else(|| "127.0.0.1".into());
        let ip: std::net::IpAddr = ip.parse().map_err(|_| {
            CliError::bad_input(format!("--rest-address {ip} is not an IP address"))
        })?;
        let mut access = Access::for_address(ip, self.rest_allowed_host.as_deref().unwrap_or(&[]));
        access.admin_token = self.rest_admin_token.clone().filter(|t| !t.is_empty());
        if let Some(seconds) = self.rest_timeout {
            if !(seconds > 0.0 && seconds.is_finite()) {
                return Err(CliError::bad_input("--rest-timeout must be positive"));
            }
            access.timeout = Duration::from_secs_f64(seconds);
        }
        Ok(Some(((ip, self.rest_port.unwrap_or(8645)).into(), access)))
    }

    /// Runs the node until interrupted.
    pub fn run(self) -> Result<(), CliError> {
        let merged = self.merged()?;
        let rest = merged.rest()?;
        let config = merged.into_config()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))?;
        rt.block_on(async move {
            eprintln!(
                "starting the node (data in {})...",
                config.data_dir.display()
            );
            let node = node::start(config)
                .await
                .map_err(|e| CliError::failed(format!("error: {e}")))?;
            println!("peer id: {}", node.peer_id());
            if let Some((address, access)) = rest {
                let bound = wakurln::rest::serve_with(node.clone(), address, access)
                    .await
                    .map_err(|e| {
                        CliError::failed(format!(
                            "error: cannot serve the REST API on {address}: {e}"
                        ))
                    })?;
                println!(
                    "REST API on http://{bound} (OpenAPI at /openapi.json, metrics at /metrics)"
                );
            }
            for a in node.listen_addrs().await.map_err(CliError::failed)? {
                println!("listening on {a}/p2p/{}", node.peer_id());
            }
            if node.enforces_rln() {
                eprintln!("syncing the membership tree...");
                node.wait_ready().await.map_err(CliError::failed)?;
                let s = node.sync_state();
                eprintln!(
                    "membership tree synced: {} members at block {}",
                    s.members, s.block
                );
            } else {
                eprintln!("warning: RLN is off (--no-rln): this node relays without rate limits");
            }
            let mut events = node.events();
            let mut delivered = node.delivered();
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .map_err(|e| CliError::failed(format!("cannot listen for SIGTERM: {e}")))?;
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break,
                    _ = terminate.recv() => break,
                    Ok(d) = delivered.recv() => {
                        tracing::info!(topic = %d.topic, hash = %d.hash, "message delivered");
                    }
                    Ok(e) = events.recv() => {
                        if let NodeEvent::Spam { from, commitment, secret } = e {
                            eprintln!(
                                "spam from peer {from}: member with {} exceeded its rate limit",
                                wakurln::relay::pipeline::describe_spam(&secret, &commitment)
                            );
                        }
                    }
                }
            }
            eprintln!("stopping");
            match node.shutdown().await {
                Some(d) if d.left == 0 => eprintln!(
                    "archive: {} queued messages written; nothing was lost",
                    d.written
                ),
                Some(d) => eprintln!(
                    "archive: {} queued messages written, {} could not be written (see the log)",
                    d.written, d.left
                ),
                None => {}
            }
            eprintln!("stopped");
            Ok(())
        })
    }
}
