//! Deploying the membership contract to a development chain: the test token, the PoseidonT3
//! library, and the membership contract linked against it. The compiled artifacts are built
//! into the binary, so a deploy needs nothing but an RPC endpoint and a funded key.

use std::time::Duration;

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, B256, Bytes, U256},
    providers::{DynProvider, Provider},
    rpc::types::{TransactionReceipt, TransactionRequest},
    signers::local::PrivateKeySigner,
    sol_types::SolValue,
};
use serde::Deserialize;

use super::{
    ChainError, Endpoint, bindings::TestToken, client::signing_provider, error::describe_send_error,
};

/// The membership terms a contract is deployed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    /// Deposit token units per message per epoch.
    pub price: U256,
    /// Smallest rate limit a membership may have.
    pub min_rate_limit: u32,
    /// Largest rate limit a membership may have.
    pub max_rate_limit: u32,
    /// Sum of the rate limits of all memberships.
    pub max_total_rate_limit: u32,
    /// Seconds a new membership is active.
    pub active_duration: u32,
    /// Seconds of grace period after that.
    pub grace_period: u32,
}

impl Terms {
    /// The Waku Network's terms: 20..=600 messages per epoch, 160,000 in total, 180 days
    /// active and 30 days of grace; the price is the deploying network's choice.
    pub fn waku_network(price: U256) -> Self {
        Self {
            price,
            min_rate_limit: 20,
            max_rate_limit: 600,
            max_total_rate_limit: 160_000,
            active_duration: 180 * 24 * 3600,
            grace_period: 30 * 24 * 3600,
        }
    }
}

/// Which membership contract to deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The contract as used by real networks.
    Standard,
    /// The same plus a free bulk registration for the deployer (tests and benchmarks only).
    Testing,
}

/// What a deploy created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// The chain deployed to.
    pub chain_id: u64,
    /// The ERC-20 deposit token (with an open `mint`).
    pub token: Address,
    /// The PoseidonT3 library.
    pub poseidon: Address,
    /// The membership contract.
    pub contract: Address,
    /// The block the membership contract was deployed in.
    pub block: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Artifact {
    contract_name: String,
    bytecode: String,
    #[serde(default)]
    link_references:
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<LinkPlace>>>,
}

#[derive(Deserialize)]
struct LinkPlace {
    start: usize,
    length: usize,
}

const TOKEN: &str = include_str!("../../contracts/artifacts/TestToken.json");
const POSEIDON: &str = include_str!("../../contracts/artifacts/PoseidonT3.json");
const MEMBERSHIP: &str = include_str!("../../contracts/artifacts/WakuRlnMembership.json");
const MEMBERSHIP_TESTING: &str =
    include_str!("../../contracts/artifacts/WakuRlnMembershipForTesting.json");

/// How long to wait for a transaction to be mined.
const MINING_TIMEOUT: Duration = Duration::from_secs(300);

/// The creation code of an artifact with its library placeholders replaced.
fn creation_code(json: &str, libraries: &[(&str, Address)]) -> Bytes {
    let artifact: Artifact = serde_json::from_str(json).expect("the built-in artifacts are valid");
    let mut code = decode_linkable(artifact.bytecode.trim_start_matches("0x"));
    for libs in artifact.link_references.values() {
        for (name, places) in libs {
            let (_, address) = libraries
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("{} needs library {name}", artifact.contract_name));
            for place in places {
                code[place.start..place.start + place.length].copy_from_slice(address.as_slice());
            }
        }
    }
    code.into()
}

/// Decodes hex that still holds link placeholders (`__$...$__`), reading them as zero bytes
/// for the linker to overwrite.
fn decode_linkable(hex_text: &str) -> Vec<u8> {
    let clean: String = hex_text
        .chars()
        .map(|c| if c.is_ascii_hexdigit() { c } else { '0' })
        .collect();
    hex::decode(clean).expect("the built-in artifacts hold even-length hex")
}

/// Waits for a sent transaction's receipt by polling, failing if it reverted.
pub async fn mined(provider: &DynProvider, hash: B256) -> Result<TransactionReceipt, ChainError> {
    let started = std::time::Instant::now();
    let mut told = false;
    loop {
        let receipt = provider
            .get_transaction_receipt(hash)
            .await
            .map_err(|e| ChainError::rpc("eth_getTransactionReceipt", e))?;
        if let Some(receipt) = receipt {
            if !receipt.status() {
                return Err(ChainError::Reverted(format!(
                    "transaction {hash} was mined but reverted"
                )));
            }
            return Ok(receipt);
        }
        if started.elapsed() > MINING_TIMEOUT {
            return Err(ChainError::rpc(
                "waiting for a transaction",
                format!("{hash} was not mined within {MINING_TIMEOUT:?}; it may still be pending"),
            ));
        }
        if !told && started.elapsed() > Duration::from_secs(5) {
            eprintln!("waiting for transaction {hash} to be mined...");
            told = true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends a transaction and waits for its receipt.
pub async fn send(
    provider: &DynProvider,
    tx: TransactionRequest,
    account: Address,
    chain_id: u64,
) -> Result<TransactionReceipt, ChainError> {
    let pending = provider
        .send_transaction(tx)
        .await
        .map_err(|e| describe_send_error(&e.to_string(), account, chain_id))?;
    mined(provider, *pending.tx_hash()).await
}

async fn create(
    provider: &DynProvider,
    code: Bytes,
    account: Address,
    chain_id: u64,
) -> Result<(Address, u64), ChainError> {
    let receipt = send(
        provider,
        TransactionRequest::default().with_deploy_code(code),
        account,
        chain_id,
    )
    .await?;
    let address = receipt.contract_address.ok_or_else(|| {
        ChainError::Reverted("the deploy receipt names no contract address".into())
    })?;
    Ok((address, receipt.block_number.unwrap_or_default()))
}

/// Deploys token, library and membership contract with `signer`, then mints `fund_amount`
/// test tokens to each of `fund`.
pub async fn deploy(
    rpc: &Endpoint,
    signer: PrivateKeySigner,
    terms: Terms,
    variant: Variant,
    fund: &[Address],
    fund_amount: U256,
) -> Result<Deployment, ChainError> {
    let account = signer.address();
    crate::redact::register_url(&rpc.0);
    let url = rpc.0.parse().map_err(|_| ChainError::Unreachable {
        url: rpc.to_string(),
        detail: "not a valid URL".into(),
    })?;
    let provider = signing_provider(url, signer);
    let chain_id = provider
        .get_chain_id()
        .await
        .map_err(|e| ChainError::Unreachable {
            url: rpc.to_string(),
            detail: crate::redact::scrub(&e.to_string()).into_owned(),
        })?;
    let (token, _) = create(&provider, creation_code(TOKEN, &[]), account, chain_id).await?;
    let (poseidon, _) = create(&provider, creation_code(POSEIDON, &[]), account, chain_id).await?;
    let args = (
        token,
        terms.price,
        terms.min_rate_limit,
        terms.max_rate_limit,
        terms.max_total_rate_limit,
        terms.active_duration,
        terms.grace_period,
    )
        .abi_encode_params();
    let artifact = match variant {
        Variant::Standard => MEMBERSHIP,
        Variant::Testing => MEMBERSHIP_TESTING,
    };
    let mut code = creation_code(artifact, &[("PoseidonT3", poseidon)]).to_vec();
    code.extend_from_slice(&args);
    let (contract, block) = create(&provider, code.into(), account, chain_id).await?;
    let token_contract = TestToken::new(token, provider.clone());
    for to in fund {
        let tx = token_contract
            .mint(*to, fund_amount)
            .into_transaction_request();
        send(&provider, tx, account, chain_id).await?;
    }
    Ok(Deployment {
        chain_id,
        token,
        poseidon,
        contract,
        block,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linking_replaces_every_placeholder() {
        let library = Address::repeat_byte(0xab);
        let code = creation_code(MEMBERSHIP, &[("PoseidonT3", library)]);
        let unlinked: serde_json::Value = serde_json::from_str(MEMBERSHIP).unwrap();
        let text = unlinked["bytecode"].as_str().unwrap();
        assert!(
            text.contains("__$"),
            "the artifact has placeholders to link"
        );
        assert_eq!(code.len() * 2 + 2, text.len());
        let linked = hex::encode(&code);
        assert_eq!(
            linked.matches(&hex::encode(library.as_slice())).count(),
            6,
            "all six call sites of PoseidonT3 are linked"
        );
    }
}
