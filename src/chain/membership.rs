//! A member's transactions and reads: register (checking the rate limit and the commitment,
//! approving the deposit when the allowance is short, reading the leaf index from the
//! `MembershipRegistered` event), extend, erase, withdraw, and the membership's status.
//!
//! Each write is first worked out as a [`Transaction`] list, which `--dry-run` prints and
//! [`send_all`] sends.

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, B256, Bytes, U256},
    providers::Provider,
    rpc::types::{TransactionReceipt, TransactionRequest},
    sol_types::{SolCall, SolEvent},
};

use super::{
    ChainClient, ChainError,
    bindings::{
        IERC20, IPriceCalculator,
        WakuRlnV2::{self, MembershipRegistered},
    },
    deploy,
    error::from_contract_error,
};
use crate::rln::field::{self, Fr};

/// A transaction to send: what it does, where to, with which calldata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// A short description ("approve 20 tokens", "register").
    pub what: String,
    /// The contract called.
    pub to: Address,
    /// The calldata.
    pub data: Bytes,
}

/// A planned registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The sending account.
    pub from: Address,
    /// The deposit token.
    pub token: Address,
    /// The deposit.
    pub deposit: U256,
    /// `approve` (when the allowance is short), then `register`.
    pub transactions: Vec<Transaction>,
}

/// A registered membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The member's leaf index.
    pub index: u32,
    /// The registration transaction.
    pub transaction: B256,
    /// The block it landed in.
    pub block: u64,
}

/// Where a membership stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not registered (or erased).
    None,
    /// Active: its messages are accepted.
    Active,
    /// In its grace period: still accepted; the holder may extend or erase it.
    GracePeriod,
    /// Expired: anyone may erase it.
    Expired,
}

impl State {
    /// The state's name as the CLI prints it.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Active => "active",
            Self::GracePeriod => "grace-period",
            Self::Expired => "expired",
        }
    }
}

/// A membership as the contract holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The state.
    pub state: State,
    /// Messages per epoch.
    pub rate_limit: u32,
    /// Leaf index.
    pub index: u32,
    /// The account holding it.
    pub holder: Address,
    /// The deposit paid.
    pub deposit: U256,
    /// Unix time the grace period starts (the end of the active period).
    pub grace_period_start: u64,
    /// Unix time it expires (the end of the grace period).
    pub expires: u64,
}

/// The contract's rate-limit bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Smallest allowed.
    pub min: u32,
    /// Largest allowed.
    pub max: u32,
}

pub(crate) fn to_u256(x: &Fr) -> U256 {
    U256::from_le_bytes(field::to_le_bytes(x))
}

fn signer(client: &ChainClient) -> Result<Address, ChainError> {
    client.account().ok_or_else(|| {
        ChainError::Refused("sending a transaction needs a private key (--private-key-file)".into())
    })
}

/// Runs a contract read through the client's failover.
macro_rules! read {
    ($client:expr, $what:expr, |$c:ident| $call:expr) => {{
        let contract = $client.contract();
        $client
            .request($what, |_| {
                let $c = contract.clone();
                async move { $call.call().await }
            })
            .await
    }};
}

/// The contract's rate-limit bounds.
pub async fn limits(client: &ChainClient) -> Result<Limits, ChainError> {
    let min = read!(client, "minMembershipRateLimit()", |c| c
        .minMembershipRateLimit())?;
    let max = read!(client, "maxMembershipRateLimit()", |c| c
        .maxMembershipRateLimit())?;
    Ok(Limits { min, max })
}

/// Checks everything a registration needs and works out its transactions.
pub async fn plan_register(
    client: &ChainClient,
    commitment: Fr,
    rate_limit: u32,
) -> Result<Plan, ChainError> {
    let from = signer(client)?;
    let Limits { min, max } = limits(client).await?;
    if !(min..=max).contains(&rate_limit) {
        return Err(ChainError::RateLimitOutOfRange {
            value: rate_limit,
            min,
            max,
        });
    }
    let id = to_u256(&commitment);
    if read!(client, "isInMembershipSet()", |c| c.isInMembershipSet(id))? {
        return Err(ChainError::AlreadyRegistered);
    }
    let calculator = read!(client, "priceCalculator()", |c| c.priceCalculator())?;
    let price = IPriceCalculator::new(calculator, client.provider().clone());
    let quote = client
        .request("calculate()", |_| {
            let p = price.clone();
            async move { p.calculate(rate_limit).call().await }
        })
        .await?;
    let (token, deposit) = (quote.token, quote.amount);
    let erc20 = IERC20::new(token, client.provider().clone());
    let held = client
        .request("balanceOf()", |_| {
            let t = erc20.clone();
            async move { t.balanceOf(from).call().await }
        })
        .await?;
    if held < deposit {
        return Err(ChainError::InsufficientTokens {
            token: token.to_string(),
            account: from.to_string(),
            needed: deposit.to_string(),
            held: held.to_string(),
        });
    }
    let spender = client.contract_address();
    let allowance = client
        .request("allowance()", |_| {
            let t = erc20.clone();
            async move { t.allowance(from, spender).call().await }
        })
        .await?;
    let mut transactions = Vec::new();
    if allowance < deposit {
        transactions.push(Transaction {
            what: format!("approve a deposit of {deposit} token units"),
            to: token,
            data: IERC20::approveCall {
                spender,
                amount: deposit,
            }
            .abi_encode()
            .into(),
        });
    }
    transactions.push(Transaction {
        what: format!("register with a rate limit of {rate_limit} messages per epoch"),
        to: spender,
        data: WakuRlnV2::registerCall {
            idCommitment: id,
            rateLimit: rate_limit,
            idCommitmentsToErase: Vec::new(),
        }
        .abi_encode()
        .into(),
    });
    Ok(Plan {
        from,
        token,
        deposit,
        transactions,
    })
}

/// Sends transactions in order, each after the previous one is mined, mapping reverts to the
/// contract's reasons (a failed `eth_estimateGas` carries the revert data).
pub async fn send_all(
    client: &ChainClient,
    transactions: &[Transaction],
) -> Result<Vec<TransactionReceipt>, ChainError> {
    let from = signer(client)?;
    let mut receipts = Vec::with_capacity(transactions.len());
    for tx in transactions {
        let request = TransactionRequest::default()
            .with_from(from)
            .with_to(tx.to)
            .with_input(tx.data.clone());
        // Estimating first turns a revert into the contract's typed error before anything is
        // signed.
        client
            .provider()
            .estimate_gas(request.clone())
            .await
            .map_err(|e| {
                from_contract_error(
                    &alloy::contract::Error::TransportError(e),
                    from,
                    client.chain_id(),
                )
            })?;
        receipts.push(deploy::send(client.provider(), request, from, client.chain_id()).await?);
    }
    Ok(receipts)
}

/// Sends a planned registration and reads the leaf index from its event.
pub async fn register(client: &ChainClient, plan: &Plan) -> Result<Registration, ChainError> {
    let receipts = send_all(client, &plan.transactions).await?;
    let receipt = receipts.last().expect("a plan ends with register");
    let index = receipt
        .inner
        .logs()
        .iter()
        .filter(|log| log.address() == client.contract_address())
        .find_map(|log| MembershipRegistered::decode_log_data(log.data()).ok())
        .map(|event| event.index)
        .ok_or_else(|| {
            ChainError::Reverted("the receipt holds no MembershipRegistered event".into())
        })?;
    Ok(Registration {
        index,
        transaction: receipt.transaction_hash,
        block: receipt.block_number.unwrap_or_default(),
    })
}

/// The `extendMemberships` transaction for one commitment.
pub fn extend_transaction(client: &ChainClient, commitment: Fr) -> Transaction {
    Transaction {
        what: "extend the membership".into(),
        to: client.contract_address(),
        data: WakuRlnV2::extendMembershipsCall {
            idCommitments: vec![to_u256(&commitment)],
        }
        .abi_encode()
        .into(),
    }
}

/// The `eraseMemberships` transaction for one commitment.
pub fn erase_transaction(client: &ChainClient, commitment: Fr) -> Transaction {
    Transaction {
        what: "erase the membership".into(),
        to: client.contract_address(),
        data: WakuRlnV2::eraseMembershipsCall {
            idCommitments: vec![to_u256(&commitment)],
        }
        .abi_encode()
        .into(),
    }
}

/// The `withdraw` transaction for the deposits of erased memberships held in `token`.
pub fn withdraw_transaction(client: &ChainClient, token: Address) -> Transaction {
    Transaction {
        what: format!("withdraw the deposits held in {token}"),
        to: client.contract_address(),
        data: WakuRlnV2::withdrawCall { token }.abi_encode().into(),
    }
}

/// The membership of `commitment` as the contract holds it.
pub async fn status(client: &ChainClient, commitment: Fr) -> Result<Status, ChainError> {
    let id = to_u256(&commitment);
    let m = read!(client, "memberships()", |c| c.memberships(id))?;
    let grace_period_start = u64::try_from(m.gracePeriodStartTimestamp).unwrap_or(u64::MAX);
    let expires = grace_period_start.saturating_add(u64::from(m.gracePeriodDuration));
    let state = if m.rateLimit == 0 {
        State::None
    } else if read!(client, "isExpired()", |c| c.isExpired(id))? {
        State::Expired
    } else if read!(client, "isInGracePeriod()", |c| c.isInGracePeriod(id))? {
        State::GracePeriod
    } else {
        State::Active
    };
    Ok(Status {
        state,
        rate_limit: m.rateLimit,
        index: m.index,
        holder: m.holder,
        deposit: m.depositAmount,
        grace_period_start,
        expires,
    })
}

/// The deposit token the contract's price calculator names.
pub async fn deposit_token(client: &ChainClient) -> Result<Address, ChainError> {
    let limits = limits(client).await?;
    let calculator = read!(client, "priceCalculator()", |c| c.priceCalculator())?;
    let price = IPriceCalculator::new(calculator, client.provider().clone());
    let quote = client
        .request("calculate()", |_| {
            let p = price.clone();
            async move { p.calculate(limits.min).call().await }
        })
        .await?;
    Ok(quote.token)
}
