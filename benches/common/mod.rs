//! What the benches share: the network's circuit keys under `../shared`, a local chain with
//! the membership contract deployed, and a node's RLN settings on it. Each bench uses part of
//! it.

#![allow(dead_code)]

use std::{path::PathBuf, time::Duration};

use alloy::primitives::U256;
use wakurln::{
    chain::{
        ChainClient, Endpoint,
        anvil::{Anvil, project_binary},
        devnet::Devnet,
    },
    node::{ChainConfig, RlnConfig},
    relay::pipeline::RlnRules,
};

/// The network's circuit keys; panics (never skips) when `../shared` is missing.
pub fn circuit_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/circuits/waku-rln-v2");
    assert!(
        dir.is_dir(),
        "missing {}: benches need ../shared",
        dir.display()
    );
    dir
}

/// A fresh anvil chain with the contract deployed (rate limits from 1 message per epoch), and
/// a client that signs with the first development key.
pub struct LocalChain {
    /// The chain (it stops when dropped) and the contract.
    pub devnet: Devnet,
    /// A signing client of the contract.
    pub client: ChainClient,
}

/// Starts anvil (from `npm ci --prefix contracts`) and deploys the contract.
pub async fn local_chain() -> LocalChain {
    let anvil =
        Anvil::start(&project_binary(), &[]).expect("anvil from `npm ci --prefix contracts`");
    let devnet = Devnet::deploy(anvil, U256::ZERO, U256::ZERO).await.unwrap();
    let client = devnet.client(0).await.unwrap();
    LocalChain { devnet, client }
}

/// RLN on `devnet`'s contract with epochs of `epoch` seconds, 20 s of clock drift and a
/// window of 50 roots, polling the chain every `poll`; no lending, no membership of its own.
pub fn rln_config(devnet: &Devnet, epoch: u64, poll: Duration) -> RlnConfig {
    RlnConfig {
        rules: RlnRules {
            epoch_period: epoch,
            max_clock_drift: Duration::from_secs(20),
        },
        root_window: 50,
        chain: ChainConfig {
            rpc: vec![Endpoint(devnet.anvil.url.clone())],
            contract: devnet.contract(),
            chain_id: None,
            poll_interval: poll,
            follow_distance: 0,
        },
        lending: None,
        membership: None,
    }
}
