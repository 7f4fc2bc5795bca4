//! What the benches share: the network's circuit keys under `../shared`, and a local chain
//! with the membership contract deployed. Each bench uses part of it.

#![allow(dead_code)]

use std::{path::PathBuf, str::FromStr};

use alloy::{
    primitives::{Address, U256},
    signers::local::PrivateKeySigner,
};
use wakurln::chain::{
    ChainClient, Endpoint,
    anvil::{Anvil, project_binary},
    deploy::{self, Terms, Variant},
};

/// anvil's first development key, funded on every fresh chain.
pub const DEV_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

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
/// a client that signs with [`DEV_KEY`].
pub struct LocalChain {
    /// The chain; it stops when dropped.
    pub anvil: Anvil,
    /// The membership contract.
    pub contract: Address,
    /// A signing client of the contract.
    pub client: ChainClient,
}

/// Starts anvil (from `npm ci --prefix contracts`) and deploys the contract.
pub async fn local_chain() -> LocalChain {
    let anvil =
        Anvil::start(&project_binary(), &[]).expect("anvil from `npm ci --prefix contracts`");
    let signer = PrivateKeySigner::from_str(DEV_KEY).unwrap();
    let d = deploy::deploy(
        &Endpoint(anvil.url.clone()),
        signer.clone(),
        Terms {
            min_rate_limit: 1,
            ..Terms::waku_network(U256::ZERO)
        },
        Variant::Standard,
        &[],
        U256::ZERO,
    )
    .await
    .unwrap();
    let client = ChainClient::connect(
        &[Endpoint(anvil.url.clone())],
        d.contract,
        None,
        Some(signer),
    )
    .await
    .unwrap();
    LocalChain {
        anvil,
        contract: d.contract,
        client,
    }
}
