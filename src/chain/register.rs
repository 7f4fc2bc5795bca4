//! Registering a membership: check the rate limit and the commitment, approve the deposit if
//! the allowance is short, send `register`, wait for the receipt and read the leaf index from
//! the `MembershipRegistered` event.

use alloy::{
    primitives::{Address, B256, U256},
    sol_types::SolEvent,
};

use super::{
    ChainClient, ChainError,
    bindings::{IERC20, WakuRlnV2::MembershipRegistered},
};
use crate::rln::field::{self, Fr};

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

/// What a registration will do, for `--dry-run` and for the user's confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The sending account.
    pub from: Address,
    /// The deposit token.
    pub token: Address,
    /// The deposit.
    pub deposit: U256,
    /// Whether an `approve` must be sent first.
    pub needs_approval: bool,
    /// The `register` calldata.
    pub calldata: Vec<u8>,
}

fn to_u256(x: &Fr) -> U256 {
    U256::from_le_bytes(field::to_le_bytes(x))
}

fn map_send_error(e: impl std::fmt::Display, client: &ChainClient) -> ChainError {
    let text = e.to_string();
    if text.contains("insufficient funds") {
        return ChainError::InsufficientFunds {
            account: client.account().map(|a| a.to_string()).unwrap_or_default(),
            chain: client.chain_id(),
        };
    }
    if text.contains("DuplicateIdCommitment") || text.contains("0x") && text.contains("Duplicate") {
        return ChainError::AlreadyRegistered;
    }
    ChainError::Reverted(text)
}

/// Checks everything a registration needs and works out its transactions.
pub async fn plan(
    client: &ChainClient,
    commitment: Fr,
    rate_limit: u32,
) -> Result<Plan, ChainError> {
    let from = client
        .account()
        .ok_or_else(|| ChainError::Reverted("a private key is needed to register".into()))?;
    let c = client.contract();
    let min = c
        .minMembershipRateLimit()
        .call()
        .await
        .map_err(|e| ChainError::rpc("minMembershipRateLimit()", e))?;
    let max = c
        .maxMembershipRateLimit()
        .call()
        .await
        .map_err(|e| ChainError::rpc("maxMembershipRateLimit()", e))?;
    if !(min..=max).contains(&rate_limit) {
        return Err(ChainError::RateLimitOutOfRange {
            value: rate_limit,
            min,
            max,
        });
    }
    let id = to_u256(&commitment);
    if c.isInMembershipSet(id)
        .call()
        .await
        .map_err(|e| ChainError::rpc("isInMembershipSet()", e))?
    {
        return Err(ChainError::AlreadyRegistered);
    }
    let token = c
        .token()
        .call()
        .await
        .map_err(|e| ChainError::rpc("token()", e))?;
    let price = c
        .pricePerMessagePerEpoch()
        .call()
        .await
        .map_err(|e| ChainError::rpc("pricePerMessagePerEpoch()", e))?;
    let deposit = price * U256::from(rate_limit);
    let erc20 = IERC20::new(token, client.provider().clone());
    let held = erc20
        .balanceOf(from)
        .call()
        .await
        .map_err(|e| ChainError::rpc("balanceOf()", e))?;
    if held < deposit {
        return Err(ChainError::InsufficientTokens {
            token: token.to_string(),
            account: from.to_string(),
            needed: deposit.to_string(),
            held: held.to_string(),
        });
    }
    let allowance = erc20
        .allowance(from, client.contract_address())
        .call()
        .await
        .map_err(|e| ChainError::rpc("allowance()", e))?;
    Ok(Plan {
        from,
        token,
        deposit,
        needs_approval: allowance < deposit,
        calldata: c.register(id, rate_limit, Vec::new()).calldata().to_vec(),
    })
}

/// Sends the planned transactions and returns the registration.
pub async fn execute(
    client: &ChainClient,
    plan: &Plan,
    commitment: Fr,
    rate_limit: u32,
) -> Result<Registration, ChainError> {
    if plan.needs_approval {
        let erc20 = IERC20::new(plan.token, client.provider().clone());
        let receipt = erc20
            .approve(client.contract_address(), plan.deposit)
            .send()
            .await
            .map_err(|e| map_send_error(e, client))?
            .get_receipt()
            .await
            .map_err(|e| ChainError::rpc("waiting for the approve receipt", e))?;
        if !receipt.status() {
            return Err(ChainError::Reverted(
                "the token refused the approval".into(),
            ));
        }
    }
    let receipt = client
        .contract()
        .register(to_u256(&commitment), rate_limit, Vec::new())
        .send()
        .await
        .map_err(|e| map_send_error(e, client))?
        .get_receipt()
        .await
        .map_err(|e| ChainError::rpc("waiting for the register receipt", e))?;
    if !receipt.status() {
        return Err(ChainError::Reverted("register reverted".into()));
    }
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
