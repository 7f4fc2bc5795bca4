//! A client of the membership contract over one or more JSON-RPC endpoints. The first endpoint
//! that answers is used; when it fails mid-way, requests move on to the next one.

use std::{
    future::Future,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use alloy::{
    network::EthereumWallet,
    primitives::Address,
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};

use super::{ChainError, bindings::WakuRlnV2};

/// How long one endpoint may take to answer before the next is tried.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A provider that signs with `signer`. Nonces are asked of the node for every transaction
/// rather than cached, so a transaction that failed before broadcast, or a chain
/// reorganisation, never leaves later transactions waiting behind a nonce gap.
pub fn signing_provider(
    url: alloy::transports::http::reqwest::Url,
    signer: PrivateKeySigner,
) -> DynProvider {
    ProviderBuilder::default()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(signer))
        .connect_http(url)
        .erased()
}

/// A JSON-RPC endpoint URL. It may carry an API key, so it prints redacted (see
/// [`crate::redact::url`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint(pub String);

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Endpoint({})", crate::redact::url(&self.0))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::redact::url(&self.0))
    }
}

/// The membership contract, reached through failover endpoints.
#[derive(Debug)]
pub struct ChainClient {
    /// Each endpoint's redacted URL and its provider.
    endpoints: Vec<(String, DynProvider)>,
    active: AtomicUsize,
    chain_id: u64,
    contract: Address,
    account: Option<Address>,
}

impl ChainClient {
    /// Connects to the first endpoint that answers, checks the chain id (when given) and that
    /// a contract exists at `contract`. With a signer, transactions are signed locally.
    pub async fn connect(
        urls: &[Endpoint],
        contract: Address,
        expected_chain: Option<u64>,
        signer: Option<PrivateKeySigner>,
    ) -> Result<Self, ChainError> {
        let account = signer.as_ref().map(PrivateKeySigner::address);
        let mut endpoints = Vec::new();
        for Endpoint(url) in urls {
            crate::redact::register_url(url);
            let shown = crate::redact::url(url);
            let parsed = url.parse().map_err(|_| ChainError::Unreachable {
                url: shown.clone(),
                detail: "not a valid URL".into(),
            })?;
            let provider = match &signer {
                Some(s) => signing_provider(parsed, s.clone()),
                None => ProviderBuilder::new().connect_http(parsed).erased(),
            };
            // Only the redacted form is kept for messages.
            endpoints.push((shown, provider));
        }
        if endpoints.is_empty() {
            return Err(ChainError::Unreachable {
                url: "(none)".into(),
                detail: "no RPC endpoint was given".into(),
            });
        }
        let mut client = Self {
            endpoints,
            active: AtomicUsize::new(0),
            chain_id: 0,
            contract,
            account,
        };
        client.chain_id = client
            .request("eth_chainId", |p| async move { p.get_chain_id().await })
            .await?;
        if let Some(expected) = expected_chain
            && expected != client.chain_id
        {
            return Err(ChainError::WrongChain {
                expected,
                actual: client.chain_id,
            });
        }
        let code = client
            .request(
                "eth_getCode",
                |p| async move { p.get_code_at(contract).await },
            )
            .await?;
        if code.is_empty() {
            return Err(ChainError::NoContract {
                address: contract.to_string(),
                chain: client.chain_id,
            });
        }
        Ok(client)
    }

    /// The chain id the endpoints serve.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The contract address.
    pub fn contract_address(&self) -> Address {
        self.contract
    }

    /// The signing account, if any.
    pub fn account(&self) -> Option<Address> {
        self.account
    }

    /// The provider in use.
    pub fn provider(&self) -> &DynProvider {
        &self.endpoints[self.active.load(Ordering::Relaxed) % self.endpoints.len()].1
    }

    /// The contract, bound to the provider in use.
    pub fn contract(&self) -> WakuRlnV2::WakuRlnV2Instance<DynProvider> {
        WakuRlnV2::new(self.contract, self.provider().clone())
    }

    /// Runs a read request, moving to the next endpoint when one fails or times out.
    pub async fn request<T, E, F, Fut>(&self, context: &str, mut f: F) -> Result<T, ChainError>
    where
        E: std::fmt::Display,
        F: FnMut(DynProvider) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let n = self.endpoints.len();
        let start = self.active.load(Ordering::Relaxed);
        let mut last = String::new();
        for attempt in 0..n {
            let i = (start + attempt) % n;
            let (url, provider) = &self.endpoints[i];
            match tokio::time::timeout(REQUEST_TIMEOUT, f(provider.clone())).await {
                Ok(Ok(value)) => {
                    self.active.store(i, Ordering::Relaxed);
                    return Ok(value);
                }
                Ok(Err(e)) => last = format!("{url}: {}", crate::redact::scrub(&e.to_string())),
                Err(_) => last = format!("{url}: no answer within {REQUEST_TIMEOUT:?}"),
            }
            if n > 1 {
                tracing::warn!(endpoint = %url, %context, error = %last, "RPC endpoint failed; trying the next");
            }
        }
        let url = self.endpoints[start % n].0.clone();
        if last.contains("error sending request")
            || last.contains("Connection refused")
            || last.contains("no answer")
        {
            return Err(ChainError::Unreachable { url, detail: last });
        }
        Err(ChainError::rpc(context, last))
    }
}
