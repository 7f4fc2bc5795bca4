//! A local RLN network for node tests: a fresh anvil chain with the membership contract,
//! members registered with real deposits and filed in keystores, and node configurations
//! that sync from that chain and enforce RLN with the network's circuit keys.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use alloy::primitives::U256;
use libp2p::Multiaddr;
use wakurln::{
    chain::{
        ChainClient, Endpoint,
        anvil::Anvil,
        devnet::{Devnet as LocalChain, dev_signer},
    },
    credentials,
    lightpush::lending::LendingRules,
    node::{self, ChainConfig, LendingConfig, MembershipConfig, NodeConfig, NodeHandle, RlnConfig},
    relay::pipeline::RlnRules,
    rln::identity::Identity,
};
use wakurln_keystore::{Kdf, Keystore};

/// The password of every keystore the helpers write.
pub const PASSWORD: &str = "devnet test";
/// A day-long epoch, so no test straddles an epoch boundary.
pub const EPOCH: u64 = 86_400;

/// A chain with the contract deployed, and a folder for the network's files.
pub struct Devnet {
    pub anvil: Anvil,
    pub contract: alloy::primitives::Address,
    pub dir: PathBuf,
    pub cluster: u16,
}

/// The network's circuit keys under `../shared/`.
pub fn circuit_dir() -> PathBuf {
    super::shared_file("circuits/waku-rln-v2/README.md")
        .parent()
        .unwrap()
        .to_path_buf()
}

impl Devnet {
    /// Starts anvil and deploys the contract (rate limits from 1 message per epoch).
    pub async fn start(name: &str, cluster: u16) -> Self {
        Self::start_with(name, cluster, &[]).await
    }

    /// [`Self::start`] with extra anvil arguments (`--block-time 1`, say).
    pub async fn start_with(name: &str, cluster: u16, anvil_args: &[&str]) -> Self {
        let chain = LocalChain::deploy(super::anvil(anvil_args), U256::ZERO, U256::ZERO)
            .await
            .unwrap();
        let dir = std::env::temp_dir().join(format!("wakurln-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            contract: chain.contract(),
            anvil: chain.anvil,
            dir,
            cluster,
        }
    }

    /// A client of the contract that signs with anvil's first account.
    pub async fn client(&self) -> ChainClient {
        ChainClient::connect(
            &[Endpoint(self.anvil.url.clone())],
            self.contract,
            None,
            Some(dev_signer(0)),
        )
        .await
        .unwrap()
    }

    /// Registers a new identity with `limit` and files it in keystore `name` (which may
    /// already hold others).
    pub async fn member(&self, name: &str, limit: u32) -> (PathBuf, Identity) {
        let client = self.client().await;
        let identity = Identity::generate();
        let registered = LocalChain::register(&client, &identity, limit)
            .await
            .unwrap();
        let credential = credentials::registered(&identity, &client, registered.index, limit);
        let path = self.dir.join(format!("{name}.keystore.json"));
        Keystore::add(
            &path,
            &credential,
            PASSWORD.as_bytes(),
            Kdf::default(),
            &mut rand::rngs::OsRng,
        )
        .unwrap();
        (path, identity)
    }

    /// An RLN node named `name`, publishing with the membership in `keystore` if given, and
    /// keeping `peers` connected.
    pub fn config(&self, name: &str, keystore: Option<&Path>, peers: &[Multiaddr]) -> NodeConfig {
        let mut c = NodeConfig::local(self.dir.join(name), self.cluster);
        c.static_peers = peers.to_vec();
        c.rln = Some(RlnConfig {
            rules: RlnRules {
                epoch_period: EPOCH,
                max_clock_drift: Duration::from_secs(20),
            },
            root_window: 50,
            chain: ChainConfig {
                rpc: vec![Endpoint(self.anvil.url.clone())],
                contract: self.contract,
                chain_id: None,
                poll_interval: Duration::from_millis(250),
                follow_distance: 0,
            },
            lending: None,
            membership: keystore.map(|k| MembershipConfig {
                keystore: k.to_path_buf(),
                key: None,
                password: PASSWORD.to_owned().into(),
                circuit_dir: circuit_dir(),
            }),
        });
        c
    }

    /// Makes `config` lend proofs from the memberships in `pool`.
    pub fn lend_from(config: &mut NodeConfig, pool: &Path, rules: LendingRules) {
        config.rln.as_mut().expect("an RLN node").lending = Some(LendingConfig {
            keystore: pool.to_path_buf(),
            keys: Vec::new(),
            password: PASSWORD.to_owned().into(),
            circuit_dir: circuit_dir(),
            rules,
        });
    }
}

/// Starts a node and waits for its first chain sync step.
pub async fn start(config: NodeConfig) -> NodeHandle {
    let node = node::start(config).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), node.wait_ready())
        .await
        .expect("the chain sync completes a step")
        .unwrap();
    node
}

/// The node's first listen address with its peer id.
pub async fn address(node: &NodeHandle) -> Multiaddr {
    let a = node.listen_addrs().await.unwrap()[0].clone();
    a.with(libp2p::multiaddr::Protocol::P2p(node.peer_id()))
}
