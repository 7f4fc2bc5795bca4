//! A local development chain, as the demo, the benches and the tests set it up: anvil with
//! the membership contract deployed (rate limits from 1 message per epoch), its published
//! development accounts, and members registered with real deposits.

use std::{path::Path, str::FromStr};

use alloy::{
    primitives::{Address, U256},
    signers::local::PrivateKeySigner,
};

use super::{
    ChainClient, ChainError, Endpoint,
    anvil::Anvil,
    deploy::{self, Terms, Variant},
    membership::{self, Registration},
    sync::{SyncConfig, Syncer},
};
use crate::rln::{identity::Identity, tree::MerkleTree};

/// anvil's published development keys, funded with ETH on every fresh chain. The first one
/// deploys.
pub const DEV_KEYS: [&str; 4] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
];

/// The signer of development account `i` (`i < 4`).
pub fn dev_signer(i: usize) -> PrivateKeySigner {
    PrivateKeySigner::from_str(DEV_KEYS[i]).expect("a published development key")
}

/// A chain with the contract deployed; anvil stops when this is dropped.
#[derive(Debug)]
pub struct Devnet {
    /// The chain.
    pub anvil: Anvil,
    /// The deployment (contract, deposit token, block).
    pub deployment: deploy::Deployment,
}

impl Devnet {
    /// Deploys the contract on `anvil` with rate limits from 1 message per epoch and a deposit
    /// of `deposit` token units per message; the other development accounts get `fund`
    /// tokens each (nothing with a zero deposit).
    pub async fn deploy(anvil: Anvil, deposit: U256, fund: U256) -> Result<Self, ChainError> {
        let funded: Vec<Address> = if fund.is_zero() {
            Vec::new()
        } else {
            (1..DEV_KEYS.len())
                .map(|i| dev_signer(i).address())
                .collect()
        };
        let deployment = deploy::deploy(
            &Endpoint(anvil.url.clone()),
            dev_signer(0),
            Terms {
                min_rate_limit: 1,
                ..Terms::waku_network(deposit)
            },
            Variant::Standard,
            &funded,
            fund,
        )
        .await?;
        Ok(Self { anvil, deployment })
    }

    /// The membership contract.
    pub fn contract(&self) -> Address {
        self.deployment.contract
    }

    /// A client of the contract signing with development account `i`.
    pub async fn client(&self, i: usize) -> Result<ChainClient, ChainError> {
        ChainClient::connect(
            &[Endpoint(self.anvil.url.clone())],
            self.deployment.contract,
            None,
            Some(dev_signer(i)),
        )
        .await
    }

    /// Registers `identity` with `limit` messages per epoch from `client`'s account.
    pub async fn register(
        client: &ChainClient,
        identity: &Identity,
        limit: u32,
    ) -> Result<Registration, ChainError> {
        let plan = membership::plan_register(client, identity.commitment, limit).await?;
        membership::register(client, &plan).await
    }

    /// The membership tree as the contract holds it now, synced (without a follow distance)
    /// through the SQLite file `db`.
    pub async fn tree(&self, db: &Path) -> Result<MerkleTree, ChainError> {
        let client = ChainClient::connect(
            &[Endpoint(self.anvil.url.clone())],
            self.deployment.contract,
            None,
            None,
        )
        .await?;
        let mut syncer = Syncer::open(
            client,
            db,
            SyncConfig {
                follow_distance: 0,
                ..SyncConfig::default()
            },
        )
        .await?;
        syncer.step().await?;
        Ok(syncer.tree().clone())
    }
}
