//! `wakurln node`: runs a relay node. Options come from flags, then `WAKURLN_*` environment
//! variables, then a TOML file (`--config`, keys named as the flags), then a preset (`twn` or
//! `dev`), then defaults.

use std::{path::PathBuf, time::Duration};

use clap::{Args, ValueEnum, builder::BoolishValueParser};
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
    store::{Backend, Retention, sync::SyncConfig},
};

use super::{
    CliError,
    circuit::default_circuit_dir,
    password::PASSWORD_ENV,
    reference::{self, Loose},
};

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
    #[arg(
        long,
        visible_alias = "config-file",
        value_name = "FILE",
        env = "WAKURLN_CONFIG"
    )]
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
    #[serde(alias = "staticnode")]
    #[arg(
        visible_alias = "staticnode",
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
    #[serde(alias = "num-shards-in-network")]
    #[arg(
        visible_alias = "num-shards-in-network",
        long,
        value_name = "N",
        env = "WAKURLN_SHARD_COUNT"
    )]
    shard_count: Option<u16>,
    /// Largest number of connections, a third of them outbound; static peers have slots of
    /// their own beyond it [default: 50].
    #[arg(long, value_name = "N", env = "WAKURLN_MAX_CONNECTIONS")]
    max_connections: Option<u32>,
    /// Largest number of inbound connections from one IP address, 0 for no limit [default: 10].
    #[arg(long, value_name = "N", env = "WAKURLN_IP_COLOCATION_LIMIT")]
    ip_colocation_limit: Option<u32>,
    /// Relay without RLN: no rate limits, for private networks only.
    #[arg(long, env = "WAKURLN_NO_RLN", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    no_rln: Option<bool>,
    /// Ethereum JSON-RPC endpoint of the membership contract's chain (repeatable: failover).
    #[serde(alias = "rln-relay-eth-client-address")]
    #[arg(
        visible_alias = "rln-relay-eth-client-address",
        long,
        value_name = "URL",
        env = "WAKURLN_RLN_RPC",
        value_delimiter = ','
    )]
    rln_rpc: Option<Vec<String>>,
    /// The membership contract [default: from the preset].
    #[serde(alias = "rln-relay-eth-contract-address")]
    #[arg(
        visible_alias = "rln-relay-eth-contract-address",
        long,
        value_name = "ADDRESS",
        env = "WAKURLN_RLN_CONTRACT"
    )]
    rln_contract: Option<String>,
    /// Refuse RPC endpoints of another chain [default: from the preset].
    #[serde(alias = "rln-relay-chain-id")]
    #[arg(
        visible_alias = "rln-relay-chain-id",
        long,
        value_name = "ID",
        env = "WAKURLN_RLN_CHAIN_ID"
    )]
    rln_chain_id: Option<u64>,
    /// Seconds per RLN epoch [default: 600].
    #[serde(alias = "rln-relay-epoch-sec")]
    #[arg(
        visible_alias = "rln-relay-epoch-sec",
        long,
        value_name = "SECONDS",
        env = "WAKURLN_RLN_EPOCH_PERIOD"
    )]
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
    #[serde(alias = "rln-relay-cred-path")]
    #[arg(
        visible_alias = "rln-relay-cred-path",
        long,
        value_name = "FILE",
        env = "WAKURLN_RLN_KEYSTORE"
    )]
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
    #[arg(long, env = "WAKURLN_STORE", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
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
    #[arg(long, env = "WAKURLN_FILTER", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    filter: Option<bool>,
    /// Most peers subscribed to the filter service at once [default: 100].
    #[serde(alias = "filter-max-peers-to-serve")]
    #[arg(
        visible_alias = "filter-max-peers-to-serve",
        long,
        value_name = "N",
        env = "WAKURLN_FILTER_MAX_PEERS"
    )]
    filter_max_peers: Option<usize>,
    /// Most content filters (pubsub topic, content topic) one filter subscriber may hold
    /// [default: 1000].
    #[arg(long, value_name = "N", env = "WAKURLN_FILTER_MAX_CRITERIA")]
    filter_max_criteria: Option<usize>,
    /// A filter subscription that is not pinged for this many seconds expires [default: 300].
    #[serde(alias = "filter-subscription-timeout")]
    #[arg(
        visible_alias = "filter-subscription-timeout",
        long,
        value_name = "SECONDS",
        env = "WAKURLN_FILTER_TIMEOUT"
    )]
    filter_timeout: Option<u64>,
    /// Serve lightpush (v3 and the legacy v2) to light clients [default: true].
    #[arg(long, env = "WAKURLN_LIGHTPUSH", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    lightpush: Option<bool>,
    /// Answer peer exchange, handing light clients the records of service peers.
    #[arg(long, env = "WAKURLN_PEER_EXCHANGE", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
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
    #[arg(long, env = "WAKURLN_DISCV5_DISCOVERY", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
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
    #[serde(alias = "dns-addrs-name-server")]
    #[arg(
        visible_alias = "dns-addrs-name-server",
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
    #[arg(long, env = "WAKURLN_PEER_PERSISTENCE", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    peer_persistence: Option<bool>,
    /// This node is behind a NAT: reserve slots on peers offering circuit relay v2, be dialled
    /// through them, and punch holes (DCUtR) to replace relayed connections with direct ones.
    #[arg(long, env = "WAKURLN_RELAY_CLIENT", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    relay_client: Option<bool>,
    /// Offer circuit relay v2 to nodes behind NATs (bounded: 128 reservations, 16 circuits of
    /// 2 minutes and 128 KiB each).
    #[arg(long, env = "WAKURLN_CIRCUIT_RELAY_SERVICE", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
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
    #[arg(long, env = "WAKURLN_NO_REST", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    no_rest: Option<bool>,
    /// The circuit files [default: ~/.wakurln/circuits/waku-rln-v2; see `wakurln circuit
    /// install`].
    #[arg(long, value_name = "DIR", env = "WAKURLN_CIRCUIT_DIR")]
    circuit_dir: Option<PathBuf>,

    // ------------------------------------------------------------ the reference node's options
    /// The node's secp256k1 secret key as 64 hex characters (the reference node's --nodekey);
    /// prefer --node-key-file, which keeps it out of the process list.
    #[arg(long, value_name = "HEX", env = "WAKURLN_NODEKEY", help_heading = REFERENCE)]
    nodekey: Option<String>,
    /// Relay messages [default: true]; this node always relays, so false is refused with a
    /// warning.
    #[arg(long, env = "WAKURLN_RELAY", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new(), help_heading = REFERENCE)]
    relay: Option<bool>,
    /// Enforce RLN [default: true]; false is --no-rln.
    #[arg(long, env = "WAKURLN_RLN_RELAY", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new(), help_heading = REFERENCE)]
    rln_relay: Option<bool>,
    /// The keystore password itself (the reference node's flag); prefer --rln-password-file or
    /// WAKURLN_KEYSTORE_PASSWORD, which keep it out of the process list.
    #[arg(long, value_name = "PASSWORD", env = "WAKURLN_RLN_RELAY_CRED_PASSWORD", hide_env_values = true, help_heading = REFERENCE)]
    rln_relay_cred_password: Option<String>,
    /// Serve the REST API [default: true]; false is --no-rest.
    #[arg(long, env = "WAKURLN_REST", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new(), help_heading = REFERENCE)]
    rest: Option<bool>,
    /// Serve the /admin routes of the REST API [default: true].
    #[arg(long, env = "WAKURLN_REST_ADMIN", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new(), help_heading = REFERENCE)]
    rest_admin: Option<bool>,
    /// A web origin allowed to call the REST API from a browser (CORS), with the wildcards `*`
    /// and `?`, e.g. `localhost:*` (repeatable) [default: none].
    #[arg(long, value_name = "ORIGIN", env = "WAKURLN_REST_ALLOW_ORIGIN", value_delimiter = ',', help_heading = REFERENCE)]
    rest_allow_origin: Option<Vec<String>>,
    /// Serve Prometheus metrics on a listener of their own (GET /metrics) [default: false;
    /// /metrics on the REST port stays].
    #[arg(long, env = "WAKURLN_METRICS_SERVER", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new(), help_heading = REFERENCE)]
    metrics_server: Option<bool>,
    /// Address of the metrics listener [default: 127.0.0.1].
    #[arg(long, value_name = "IP", env = "WAKURLN_METRICS_SERVER_ADDRESS", help_heading = REFERENCE)]
    metrics_server_address: Option<String>,
    /// Port of the metrics listener [default: 8008].
    #[arg(long, value_name = "PORT", env = "WAKURLN_METRICS_SERVER_PORT", help_heading = REFERENCE)]
    metrics_server_port: Option<u16>,
    /// Log level: TRACE, DEBUG, INFO, NOTICE, WARN, ERROR, FATAL or NONE [default: INFO;
    /// RUST_LOG, when set, wins].
    #[arg(long, value_name = "LEVEL", env = "WAKURLN_LOG_LEVEL", help_heading = REFERENCE)]
    log_level: Option<String>,
    /// Log format: TEXT or JSON [default: TEXT].
    #[arg(long, value_name = "FORMAT", env = "WAKURLN_LOG_FORMAT", help_heading = REFERENCE)]
    log_format: Option<String>,
    /// How the node is reached from outside: `extip:<IP>` announces that address; `none`;
    /// `any`, `upnp` and `pmp` are accepted with a warning (use --relay-client behind a NAT).
    #[arg(long, value_name = "METHOD", env = "WAKURLN_NAT", help_heading = REFERENCE)]
    nat: Option<String>,
    /// A domain name resolving to this node, announced as /dns4/<name>/tcp/<port>.
    #[arg(long, value_name = "NAME", env = "WAKURLN_DNS4_DOMAIN_NAME", help_heading = REFERENCE)]
    dns4_domain_name: Option<String>,
    /// Added to every port: TCP, WebSocket, discv5, REST and metrics [default: 0].
    #[arg(long, value_name = "N", env = "WAKURLN_PORTS_SHIFT", help_heading = REFERENCE)]
    ports_shift: Option<u16>,
    /// Listen for WebSocket connections on --websocket-port [default: false].
    #[arg(long, env = "WAKURLN_WEBSOCKET_SUPPORT", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new(), help_heading = REFERENCE)]
    websocket_support: Option<bool>,
    /// WebSocket port used with --websocket-support [default: 8000].
    #[arg(long, value_name = "PORT", env = "WAKURLN_WEBSOCKET_PORT", help_heading = REFERENCE)]
    websocket_port: Option<u16>,
    /// The archive's database: `sqlite://<file>`, or
    /// `postgres://user:password@host:port/database` (a database of its own, which several
    /// store nodes may share) [default: the SQLite file <data dir>/archive.sqlite].
    #[arg(long, value_name = "URL", env = "WAKURLN_STORE_MESSAGE_DB_URL", help_heading = REFERENCE)]
    store_message_db_url: Option<String>,
    /// Retention as the reference node writes it: `time:<seconds>`, `capacity:<messages>`,
    /// `size:<n>MB|GB`, joined by `;` (all that are given apply).
    #[arg(long, value_name = "POLICY", env = "WAKURLN_STORE_MESSAGE_RETENTION_POLICY", help_heading = REFERENCE)]
    store_message_retention_policy: Option<String>,
    /// Largest message, e.g. 150KiB; this node's limit is the network's 150 KiB, so another
    /// value is accepted with a warning.
    #[arg(long, value_name = "SIZE", env = "WAKURLN_MAX_MSG_SIZE", help_heading = REFERENCE)]
    max_msg_size: Option<String>,
    /// A content topic whose autosharding shard to relay (repeatable).
    #[arg(long, value_name = "TOPIC", env = "WAKURLN_CONTENT_TOPIC", value_delimiter = ',', help_heading = REFERENCE)]
    content_topic: Option<Vec<String>>,
    /// A peer to start from: an `enrtree://` URL (DNS discovery), an `enr:` record (discv5
    /// bootstrap) or a multiaddr (static peer) (repeatable).
    #[arg(long, value_name = "NODE", env = "WAKURLN_ENTRY_NODE", value_delimiter = ',', help_heading = REFERENCE)]
    entry_node: Option<Vec<String>>,
    /// A filter service node for the REST filter routes when a request names none.
    #[arg(long, value_name = "MULTIADDR", env = "WAKURLN_FILTERNODE", help_heading = REFERENCE)]
    filternode: Option<String>,
    /// A store node, kept connected (a static peer); REST store queries without peerAddr still
    /// read this node's own archive.
    #[arg(long, value_name = "MULTIADDR", env = "WAKURLN_STORENODE", help_heading = REFERENCE)]
    storenode: Option<String>,
    /// A lightpush service node: kept connected (a static peer).
    #[arg(long, value_name = "MULTIADDR", env = "WAKURLN_LIGHTPUSHNODE", help_heading = REFERENCE)]
    lightpushnode: Option<String>,
    // ------------------------------------------------------------ accepted, not acted on
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    keep_alive: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    dns_discovery: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    discv5_enr_auto_update: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    discv5_table_ip_limit: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    discv5_bucket_ip_limit: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    discv5_bits_per_hop: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    mode: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    agent_string: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    relay_service_ratio: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    ext_multiaddr_only: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    reliability: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    relay_peer_exchange: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    relay_shard_manager: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    rln_relay_dynamic: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    rln_relay_membership_index: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    rln_relay_user_message_limit: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    rln_relay_eth_private_key: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    execute: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    store_message_db_vacuum: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    store_message_db_migration: Option<Loose>,
    /// Connections a PostgreSQL archive opens at most [default: 50].
    #[arg(long, value_name = "N", env = "WAKURLN_STORE_MAX_NUM_DB_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..), help_heading = REFERENCE)]
    store_max_num_db_connections: Option<u32>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    store_resume: Option<Loose>,
    /// Store sync: reconcile the archive with other store nodes of our shards and fill each
    /// other's gaps (needs --store) [default: false].
    #[arg(long, env = "WAKURLN_STORE_SYNC", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new(), help_heading = REFERENCE)]
    store_sync: Option<bool>,
    /// Seconds between two store sync sessions this node starts; 0 only answers [default: 300].
    #[arg(long, value_name = "SECONDS", env = "WAKURLN_STORE_SYNC_INTERVAL", help_heading = REFERENCE)]
    store_sync_interval: Option<u32>,
    /// Seconds of messages store sync compares [default: 3600].
    #[arg(long, value_name = "SECONDS", env = "WAKURLN_STORE_SYNC_RANGE", value_parser = clap::value_parser!(u32).range(1..), help_heading = REFERENCE)]
    store_sync_range: Option<u32>,
    /// Seconds before now the compared window ends, for messages still on their way over
    /// relay [default: 20].
    #[arg(long, value_name = "SECONDS", env = "WAKURLN_STORE_SYNC_RELAY_JITTER", help_heading = REFERENCE)]
    store_sync_relay_jitter: Option<u32>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    peer_exchange_node: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    rendezvous: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    enable_kad_discovery: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    mix: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    mixkey: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    websocket_secure_support: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    websocket_secure_key_path: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    websocket_secure_cert_path: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    rest_relay_cache_capacity: Option<Loose>,
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", value_parser = reference::loose, hide = true)]
    metrics_logging: Option<Loose>,
    #[arg(long, value_name = "VALUE", value_parser = reference::loose, hide = true)]
    protected_shard: Option<Vec<Loose>>,
    #[arg(long, value_name = "VALUE", value_parser = reference::loose, hide = true)]
    kad_bootstrap_node: Option<Vec<Loose>>,
    #[arg(long, value_name = "VALUE", value_parser = reference::loose, hide = true)]
    mixnode: Option<Vec<Loose>>,
}

/// `port` moved by `shift` (--ports-shift); 0, a free port, stays 0.
/// The peer id at the end of a multiaddr, if it has one.
fn peer_of_multiaddr(text: &str) -> Option<libp2p::PeerId> {
    let addr: libp2p::Multiaddr = text.trim().parse().ok()?;
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

fn shift_port(port: u16, shift: u16, flag: &str) -> Result<u16, CliError> {
    if port == 0 {
        return Ok(0);
    }
    port.checked_add(shift).ok_or_else(|| {
        CliError::bad_input(format!(
            "--ports-shift {shift} moves {flag} {port} past port 65535"
        ))
    })
}

/// The help heading of the reference node's options.
const REFERENCE: &str = "Options of the reference node (nwaku) also accepted";

impl NodeArgs {
    /// The options given that this node accepts without acting on, each with why.
    fn ignored(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        if self.keep_alive.as_ref().is_some_and(|v| !v.is_off()) {
            out.push((
                "keep-alive",
                "deprecated by the reference node too, which ignores it since v0.37",
            ));
        }
        if self.dns_discovery.as_ref().is_some_and(|v| !v.is_off()) {
            out.push((
                "dns-discovery",
                "deprecated: --dns-discovery-url alone turns DNS discovery on",
            ));
        }
        if self
            .discv5_enr_auto_update
            .as_ref()
            .is_some_and(|v| !v.is_off())
        {
            out.push(("discv5-enr-auto-update", "the record carries the listen, announced and relayed addresses; it is not rewritten from what peers report"));
        }
        if self
            .discv5_table_ip_limit
            .as_ref()
            .is_some_and(|v| !v.is_off())
        {
            out.push((
                "discv5-table-ip-limit",
                "the discv5 table keeps the discv5 crate's own IP limits",
            ));
        }
        if self
            .discv5_bucket_ip_limit
            .as_ref()
            .is_some_and(|v| !v.is_off())
        {
            out.push((
                "discv5-bucket-ip-limit",
                "the discv5 table keeps the discv5 crate's own IP limits",
            ));
        }
        if self
            .discv5_bits_per_hop
            .as_ref()
            .is_some_and(|v| !v.is_off())
        {
            out.push(("discv5-bits-per-hop", "not configurable here"));
        }
        if self.mode.as_ref().is_some_and(|v| !v.is_off()) {
            out.push(("mode", "set the services one by one (--relay, --filter, --lightpush, --peer-exchange, --discv5-discovery)"));
        }
        if self.agent_string.as_ref().is_some_and(|v| !v.is_off()) {
            out.push(("agent-string", "the agent string is wakurln/<version>"));
        }
        if self
            .relay_service_ratio
            .as_ref()
            .is_some_and(|v| !v.is_off())
        {
            out.push((
                "relay-service-ratio",
                "the peer manager keeps --relay-peers-per-shard and --service-peers instead",
            ));
        }
        if self
            .ext_multiaddr_only
            .as_ref()
            .is_some_and(|v| !v.is_off())
        {
            out.push((
                "ext-multiaddr-only",
                "--ext-multiaddr already replaces the listen addresses in what is announced",
            ));
        }
        if self.reliability.as_ref().is_some_and(|v| !v.is_off()) {
            out.push(("reliability", "no store-based delivery checks yet"));
        }
        if self
            .relay_peer_exchange
            .as_ref()
            .is_some_and(|v| !v.is_off())
        {
            out.push(("relay-peer-exchange", "gossipsub peer exchange is off"));
        }
        if self
            .relay_shard_manager
            .as_ref()
            .is_some_and(|v| !v.is_off())
        {
            out.push((
                "relay-shard-manager",
                "the peer manager is always shard-aware",
            ));
        }
        if self.rln_relay_dynamic.is_some() {
            out.push((
                "rln-relay-dynamic",
                "the membership set always comes from the contract",
            ));
        }
        if self
            .rln_relay_membership_index
            .as_ref()
            .is_some_and(|v| !v.is_off())
        {
            out.push((
                "rln-relay-membership-index",
                "choose the credential with --rln-key",
            ));
        }
        if self
            .rln_relay_user_message_limit
            .as_ref()
            .is_some_and(|v| !v.is_off())
        {
            out.push((
                "rln-relay-user-message-limit",
                "the limit comes from the keystore credential",
            ));
        }
        if self
            .rln_relay_eth_private_key
            .as_ref()
            .is_some_and(|v| !v.is_off())
        {
            out.push((
                "rln-relay-eth-private-key",
                "register with `wakurln membership register` instead",
            ));
        }
        if self.execute.as_ref().is_some_and(|v| !v.is_off()) {
            out.push(("execute", "only for the reference node's generateRlnKeystore; use `wakurln membership register`"));
        }
        if self
            .store_message_db_vacuum
            .as_ref()
            .is_some_and(|v| !v.is_off())
        {
            out.push((
                "store-message-db-vacuum",
                "SQLite space is reclaimed by retention",
            ));
        }
        if self.store_message_db_migration.is_some() {
            out.push((
                "store-message-db-migration",
                "migrations always run at start",
            ));
        }
        if self.store_resume.as_ref().is_some_and(|v| !v.is_off()) {
            out.push(("store-resume", "not implemented"));
        }
        if self
            .peer_exchange_node
            .as_ref()
            .is_some_and(|v| !v.is_off())
        {
            out.push((
                "peer-exchange-node",
                "peers come from discv5, DNS trees and static peers",
            ));
        }
        if self.rendezvous.as_ref().is_some_and(|v| !v.is_off()) {
            out.push(("rendezvous", "rendezvous is not implemented"));
        }
        if self
            .enable_kad_discovery
            .as_ref()
            .is_some_and(|v| !v.is_off())
        {
            out.push((
                "enable-kad-discovery",
                "Kademlia discovery is not implemented",
            ));
        }
        if self.mix.as_ref().is_some_and(|v| !v.is_off()) {
            out.push(("mix", "the mix protocol is not implemented"));
        }
        if self.mixkey.as_ref().is_some_and(|v| !v.is_off()) {
            out.push(("mixkey", "the mix protocol is not implemented"));
        }
        if self
            .websocket_secure_support
            .as_ref()
            .is_some_and(|v| !v.is_off())
        {
            out.push(("websocket-secure-support", "secure WebSockets are not implemented; put a TLS proxy in front of --websocket-port"));
        }
        if self
            .websocket_secure_key_path
            .as_ref()
            .is_some_and(|v| !v.is_off())
        {
            out.push((
                "websocket-secure-key-path",
                "secure WebSockets are not implemented",
            ));
        }
        if self
            .websocket_secure_cert_path
            .as_ref()
            .is_some_and(|v| !v.is_off())
        {
            out.push((
                "websocket-secure-cert-path",
                "secure WebSockets are not implemented",
            ));
        }
        if self
            .rest_relay_cache_capacity
            .as_ref()
            .is_some_and(|v| !v.is_off())
        {
            out.push((
                "rest-relay-cache-capacity",
                "the REST relay cache keeps its own bound",
            ));
        }
        if self.metrics_logging.as_ref().is_some_and(|v| !v.is_off()) {
            out.push(("metrics-logging", "no periodic metrics summary in the log"));
        }
        if self.protected_shard.as_ref().is_some_and(|v| !v.is_empty()) {
            out.push((
                "protected-shard",
                "signed-message shards are not implemented",
            ));
        }
        if self
            .kad_bootstrap_node
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        {
            out.push((
                "kad-bootstrap-node",
                "Kademlia discovery is not implemented",
            ));
        }
        if self.mixnode.as_ref().is_some_and(|v| !v.is_empty()) {
            out.push(("mixnode", "the mix protocol is not implemented"));
        }
        out
    }
}

impl NodeArgs {
    /// Flags and environment first, then the file: fields the flags left unset are taken from
    /// the file.
    pub fn merged(self) -> Result<Self, CliError> {
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

    /// The log filter of --log-level and whether --log-format asks for JSON.
    pub fn log_settings(&self) -> Result<(String, bool), CliError> {
        let filter = wakurln::logging::level_filter(self.log_level.as_deref().unwrap_or("INFO"))
            .map_err(|e| CliError::bad_input(format!("--log-level: {e}")))?;
        let json = match self
            .log_format
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("TEXT") => false,
            Some("JSON") => true,
            Some(other) => {
                return Err(CliError::bad_input(format!(
                    "--log-format {other}: use TEXT or JSON"
                )));
            }
        };
        Ok((filter, json))
    }

    /// The library configuration, with presets and defaults applied and everything checked.
    fn into_config(self) -> Result<NodeConfig, CliError> {
        let preset = self.preset.or_else(|| {
            (self.cluster_id == Some(1)).then(|| {
                eprintln!(
                    "warning: --cluster-id 1 without --preset: joining The Waku Network with \
                     its settings (--preset twn), as the reference node does"
                );
                Preset::Twn
            })
        });
        let network = preset.map_or_else(Network::custom, Preset::network);
        let shift = self.ports_shift.unwrap_or(0);
        let shifted = |port: u16, flag: &str| shift_port(port, shift, flag);
        if self.relay == Some(false) {
            eprintln!("warning: --relay false: this node always relays; the flag is ignored");
        }
        if let Some(size) = &self.max_msg_size {
            let bytes = reference::message_size(size).map_err(CliError::bad_input)?;
            let ours = wakurln::message::limits::MAX_ENCODED_LEN as u64;
            if bytes != ours {
                eprintln!(
                    "warning: --max-msg-size {size}: this node's limit is fixed at the \
                     network's {ours} bytes (150 KiB)"
                );
            }
        }
        let entry = reference::entry_nodes(self.entry_node.as_deref().unwrap_or(&[]))
            .map_err(CliError::bad_input)?;
        let data_dir = self.data_dir.unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map_or_else(|| PathBuf::from("."), PathBuf::from)
                .join(".wakurln/node")
        });
        let key_kind = match self.key_type {
            Some(KeyType::Ed25519) => KeyKind::Ed25519,
            _ => KeyKind::Secp256k1,
        };
        let key = match (&self.node_key_file, &self.nodekey) {
            (Some(_), Some(_)) => {
                return Err(CliError::bad_input(
                    "give the node key once: --node-key-file or --nodekey",
                ));
            }
            (None, Some(hex)) => Some(
                node::keys::from_hex(key_kind, hex)
                    .map_err(|e| CliError::bad_input(format!("--nodekey: {e}")))?,
            ),
            (Some(file), None) => {
                let text = zeroize::Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
                    CliError::bad_input(format!(
                        "cannot read --node-key-file {}: {e}",
                        file.display()
                    ))
                })?);
                Some(node::keys::from_hex(key_kind, &text).map_err(CliError::bad_input)?)
            }
            (None, None) => None,
        };
        let ip = self.listen_address.unwrap_or_else(|| "0.0.0.0".into());
        let ip: std::net::IpAddr = ip.parse().map_err(|_| {
            CliError::bad_input(format!("--listen-address {ip} is not an IP address"))
        })?;
        let ip_proto = match ip {
            std::net::IpAddr::V4(_) => "ip4",
            std::net::IpAddr::V6(_) => "ip6",
        };
        let tcp_port = shifted(self.tcp_port.unwrap_or(60_000), "--tcp-port")?;
        let mut listen = vec![format!("/{ip_proto}/{ip}/tcp/{tcp_port}")];
        let ws_port = match (self.ws_port, self.websocket_support.unwrap_or(false)) {
            (Some(port), _) => Some(shifted(port, "--ws-port")?),
            (None, true) => Some(shifted(
                self.websocket_port.unwrap_or(8000),
                "--websocket-port",
            )?),
            (None, false) => {
                if self.websocket_port.is_some() {
                    eprintln!(
                        "warning: --websocket-port without --websocket-support true: no \
                         WebSocket listener, as with the reference node"
                    );
                }
                None
            }
        };
        if let Some(ws) = ws_port {
            listen.push(format!("/{ip_proto}/{ip}/tcp/{ws}/ws"));
        }
        let listen = listen
            .into_iter()
            .map(|a| a.parse().expect("a well-formed multiaddr"))
            .collect();
        let static_peers = self
            .static_peer
            .clone()
            .unwrap_or_default()
            .iter()
            .chain(&entry.addresses)
            .chain(&self.storenode)
            .chain(&self.lightpushnode)
            .chain(&self.filternode)
            .map(|p| {
                p.trim().parse().map_err(|e| {
                    CliError::bad_input(format!("--static-peer {p} is not a multiaddr: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cluster = self.cluster_id.unwrap_or(network.cluster);
        let shard_count = match self.shard_count {
            Some(0) => {
                eprintln!(
                    "warning: --num-shards-in-network 0 (static sharding): autosharding still \
                     maps content topics over {} shards",
                    network.shard_count
                );
                network.shard_count
            }
            given => given.unwrap_or(network.shard_count),
        };
        let mut shards = self.shard.clone().unwrap_or_else(|| network.shards.clone());
        for topic in self.content_topic.iter().flatten() {
            let shard = topic
                .trim()
                .parse::<wakurln::topics::ContentTopic>()
                .and_then(|t| t.shard_index(shard_count))
                .map_err(|e| CliError::bad_input(format!("--content-topic {topic}: {e}")))?;
            if !shards.contains(&shard) {
                shards.push(shard);
            }
        }
        if let Some(bad) = shards.iter().find(|s| **s >= shard_count) {
            return Err(CliError::bad_input(format!(
                "--shard {bad} is not below --shard-count {shard_count}"
            )));
        }
        let password = |file: Option<&PathBuf>| match &self.rln_relay_cred_password {
            Some(given) => Ok(zeroize::Zeroizing::new(given.clone())),
            None => super::password::obtain(file, PASSWORD_ENV, "keystore password", false),
        };
        let rln = if self.no_rln.unwrap_or(false) || self.rln_relay == Some(false) {
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
                        password: password(self.rln_password_file.as_ref())?,
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
                    let password = password(self.rln_password_file.as_ref())?;
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
                    // 0 asks the endpoint, as the reference node's default does.
                    chain_id: self.rln_chain_id.filter(|id| *id != 0).or(network.chain_id),
                    poll_interval: Duration::from_secs_f64(poll),
                    follow_distance: self.rln_follow_distance.unwrap_or(network.follow_distance),
                },
                lending,
                membership,
            })
        };
        if self.store_sync.unwrap_or(false) && !self.store.unwrap_or(false) {
            eprintln!("warning: --store-sync has no effect without --store (an archive to sync)");
        }
        let store = if self.store.unwrap_or(false) {
            let connections = self
                .store_max_num_db_connections
                .map_or(wakurln::store::archive::DEFAULT_DB_CONNECTIONS, |n| {
                    n as usize
                });
            let backend = match (&self.store_message_db_url, &self.store_path) {
                (Some(_), Some(_)) => {
                    return Err(CliError::bad_input(
                        "--store-path and --store-message-db-url both name the archive: give one",
                    ));
                }
                (Some(url), None) => Backend::from_url(url, connections)
                    .map_err(|e| CliError::bad_input(format!("--store-message-db-url {e}")))?,
                (None, path) => Backend::Sqlite(
                    path.clone()
                        .unwrap_or_else(|| data_dir.join("archive.sqlite")),
                ),
            };
            let mut retention = match &self.store_message_retention_policy {
                Some(policy) => reference::retention_policy(policy).map_err(|e| {
                    CliError::bad_input(format!("--store-message-retention-policy: {e}"))
                })?,
                None => Retention {
                    max_age_secs: Some(172_800),
                    ..Retention::default()
                },
            };
            if let Some(secs) = self.store_retention_time {
                retention.max_age_secs = Some(secs);
            }
            if let Some(n) = self.store_max_messages {
                retention.max_messages = Some(n);
            }
            if let Some(bytes) = self.store_max_size {
                retention.max_bytes = Some(bytes);
            }
            Some(StoreConfig {
                backend,
                retention,
                retention_interval: Duration::from_secs(60),
                sync: self.store_sync.unwrap_or(false).then(|| {
                    let d = SyncConfig::default();
                    let secs = |v: Option<u32>, default: Duration| {
                        v.map_or(default, |s| Duration::from_secs(s.into()))
                    };
                    SyncConfig {
                        interval: secs(self.store_sync_interval, d.interval),
                        range: secs(self.store_sync_range, d.range),
                        relay_jitter: secs(self.store_sync_relay_jitter, d.relay_jitter),
                        peer: self.storenode.as_deref().and_then(peer_of_multiaddr),
                    }
                }),
            })
        } else {
            None
        };
        let mut announce: Vec<String> = self.ext_multiaddr.clone().unwrap_or_default();
        let mut announce_host = |host: String| {
            announce.push(format!("{host}/tcp/{tcp_port}"));
            if let Some(ws) = ws_port {
                announce.push(format!("{host}/tcp/{ws}/ws"));
            }
        };
        match self.nat.as_deref().map(reference::nat).transpose() {
            Err(e) => return Err(CliError::bad_input(e)),
            Ok(Some(reference::Nat::ExtIp(ip))) => announce_host(match ip {
                std::net::IpAddr::V4(ip) => format!("/ip4/{ip}"),
                std::net::IpAddr::V6(ip) => format!("/ip6/{ip}"),
            }),
            Ok(Some(reference::Nat::Unsupported(how))) => eprintln!(
                "warning: --nat {how}: port mapping is not implemented; announce an address \
                 with --nat extip:<IP> or --ext-multiaddr, or use --relay-client behind a NAT"
            ),
            Ok(Some(reference::Nat::None) | None) => {}
        }
        if let Some(name) = &self.dns4_domain_name {
            announce_host(format!("/dns4/{}", name.trim()));
        }
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
            store,
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
            announce: announce
                .iter()
                .map(|a| {
                    a.parse().map_err(|e| {
                        CliError::bad_input(format!("--ext-multiaddr {a} is not a multiaddr: {e}"))
                    })
                })
                .collect::<Result<_, _>>()?,
            discv5: if self
                .discv5_discovery
                .unwrap_or(network.discv5 || !entry.records.is_empty())
            {
                let mut given = self.discv5_bootstrap_node.clone().unwrap_or_default();
                given.extend(entry.records.iter().cloned());
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
                    udp_port: shifted(
                        self.discv5_udp_port
                            .unwrap_or(wakurln::discovery::DEFAULT_UDP_PORT),
                        "--discv5-udp-port",
                    )?,
                    bootstrap,
                    ..wakurln::discovery::Config::default()
                })
            } else {
                None
            },
            dns_discovery: self
                .dns_discovery_url
                .clone()
                .map(|mut urls| {
                    urls.extend(entry.trees.iter().cloned());
                    urls
                })
                .or_else(|| (!entry.trees.is_empty()).then(|| entry.trees.clone()))
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
        if self.no_rest.unwrap_or(false) || self.rest == Some(false) {
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
        access.admin_routes = self.rest_admin.unwrap_or(true);
        access.allow_origins = self.rest_allow_origin.clone().unwrap_or_default();
        access.filter_node = self.filternode.clone();
        if let Some(seconds) = self.rest_timeout {
            if !(seconds > 0.0 && seconds.is_finite()) {
                return Err(CliError::bad_input("--rest-timeout must be positive"));
            }
            access.timeout = Duration::from_secs_f64(seconds);
        }
        let port = self.shifted(self.rest_port.unwrap_or(8645), "--rest-port")?;
        Ok(Some(((ip, port).into(), access)))
    }

    /// `port` moved by --ports-shift (0, a free port, stays 0).
    fn shifted(&self, port: u16, flag: &str) -> Result<u16, CliError> {
        shift_port(port, self.ports_shift.unwrap_or(0), flag)
    }

    /// Where to serve the metrics listener, if at all.
    fn metrics_server(&self) -> Result<Option<std::net::SocketAddr>, CliError> {
        if !self.metrics_server.unwrap_or(false) {
            if self.metrics_server_port.is_some() || self.metrics_server_address.is_some() {
                eprintln!(
                    "warning: --metrics-server-port/--metrics-server-address without \
                     --metrics-server true: no metrics listener (metrics stay at /metrics of \
                     the REST API)"
                );
            }
            return Ok(None);
        }
        let ip = self
            .metrics_server_address
            .clone()
            .unwrap_or_else(|| "127.0.0.1".into());
        let ip: std::net::IpAddr = ip.parse().map_err(|_| {
            CliError::bad_input(format!(
                "--metrics-server-address {ip} is not an IP address"
            ))
        })?;
        let port = self.shifted(
            self.metrics_server_port.unwrap_or(8008),
            "--metrics-server-port",
        )?;
        Ok(Some((ip, port).into()))
    }

    /// Runs the node until interrupted.
    pub fn run(self) -> Result<(), CliError> {
        let merged = self.merged()?;
        for (flag, why) in merged.ignored() {
            eprintln!("warning: --{flag} is accepted but has no effect here: {why}");
        }
        let rest = merged.rest()?;
        let metrics = merged.metrics_server()?;
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
            if let Some(address) = metrics {
                let bound = wakurln::rest::serve_metrics(node.clone(), address)
                    .await
                    .map_err(|e| {
                        CliError::failed(format!("error: cannot serve metrics on {address}: {e}"))
                    })?;
                println!("metrics on http://{bound}/metrics");
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

#[cfg(test)]
mod tests {
    use clap::Args;

    /// Every option of the reference node v0.38.0 (`tools/confutils/cli_args.nim`), by name.
    const REFERENCE_FLAGS: &[&str] = &[
        "config-file",
        "log-level",
        "log-format",
        "mode",
        "preset",
        "cluster-id",
        "agent-string",
        "nodekey",
        "listen-address",
        "tcp-port",
        "ports-shift",
        "nat",
        "ext-multiaddr",
        "ext-multiaddr-only",
        "max-connections",
        "relay-service-ratio",
        "ip-colocation-limit",
        "peer-store-capacity",
        "peer-persistence",
        "dns-addrs-name-server",
        "dns4-domain-name",
        "relay-client",
        "protected-shard",
        "max-msg-size",
        "reliability",
        "rate-limit",
        "keep-alive",
        "relay",
        "relay-peer-exchange",
        "relay-shard-manager",
        "num-shards-in-network",
        "shard",
        "content-topic",
        "staticnode",
        "entry-node",
        "rln-relay",
        "rln-relay-dynamic",
        "rln-relay-eth-client-address",
        "rln-relay-eth-contract-address",
        "rln-relay-chain-id",
        "rln-relay-cred-path",
        "rln-relay-cred-password",
        "rln-relay-membership-index",
        "rln-relay-eth-private-key",
        "rln-relay-user-message-limit",
        "rln-relay-epoch-sec",
        "execute",
        "store",
        "storenode",
        "store-message-retention-policy",
        "store-message-db-url",
        "store-message-db-vacuum",
        "store-message-db-migration",
        "store-max-num-db-connections",
        "store-resume",
        "store-sync",
        "store-sync-interval",
        "store-sync-range",
        "store-sync-relay-jitter",
        "filter",
        "filternode",
        "filter-subscription-timeout",
        "filter-max-peers-to-serve",
        "filter-max-criteria",
        "lightpush",
        "lightpushnode",
        "dns-discovery",
        "dns-discovery-url",
        "discv5-discovery",
        "discv5-udp-port",
        "discv5-bootstrap-node",
        "discv5-enr-auto-update",
        "discv5-table-ip-limit",
        "discv5-bucket-ip-limit",
        "discv5-bits-per-hop",
        "peer-exchange",
        "peer-exchange-node",
        "rendezvous",
        "enable-kad-discovery",
        "kad-bootstrap-node",
        "mix",
        "mixkey",
        "mixnode",
        "rest",
        "rest-address",
        "rest-port",
        "rest-relay-cache-capacity",
        "rest-admin",
        "rest-allow-origin",
        "metrics-server",
        "metrics-server-address",
        "metrics-server-port",
        "metrics-logging",
        "websocket-support",
        "websocket-port",
        "websocket-secure-support",
        "websocket-secure-key-path",
        "websocket-secure-cert-path",
    ];

    #[test]
    fn every_option_of_the_reference_node_is_accepted_by_its_name() {
        assert_eq!(REFERENCE_FLAGS.len(), 98);
        let command = super::NodeArgs::augment_args(clap::Command::new("node"));
        let names: Vec<&str> = command
            .get_arguments()
            .flat_map(|a| {
                a.get_long()
                    .into_iter()
                    .chain(a.get_all_aliases().unwrap_or_default())
            })
            .collect();
        let missing: Vec<&&str> = REFERENCE_FLAGS
            .iter()
            .filter(|f| !names.contains(f))
            .collect();
        assert!(missing.is_empty(), "not accepted: {missing:?}");
    }
}
