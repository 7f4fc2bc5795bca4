//! What the benches share: the network's circuit keys under `../shared`, and a local chain
//! with the membership contract deployed. Each bench uses part of it.

#![allow(dead_code)]

use std::path::PathBuf;

use alloy::primitives::U256;
use wakurln::chain::{
    ChainClient,
    anvil::{Anvil, project_binary},
    devnet::Devnet,
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
