//! Errors of chain access, each phrased as what happened and what to do about it.

use alloy::primitives::Address;

use super::bindings::{
    IERC20::IERC20Errors, MembershipForTesting::OnlyDeployer, WakuRlnV2::WakuRlnV2Errors,
};

/// Why a chain operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// No endpoint answered.
    #[error(
        "cannot reach the Ethereum RPC endpoint {url}: {detail}; check the URL and that the node \
         behind it is running"
    )]
    Unreachable {
        /// The endpoint tried last.
        url: String,
        /// What the transport said.
        detail: String,
    },
    /// The endpoint serves another chain than the one asked for.
    #[error(
        "the RPC endpoint serves chain {actual}, not chain {expected}; use an endpoint of chain {expected}"
    )]
    WrongChain {
        /// The chain asked for.
        expected: u64,
        /// The chain the endpoint serves.
        actual: u64,
    },
    /// No code at the contract address.
    #[error("there is no contract at {address} on chain {chain}; check --contract and --rpc")]
    NoContract {
        /// The address.
        address: String,
        /// The chain id.
        chain: u64,
    },
    /// The account cannot pay gas.
    #[error(
        "the account {account} has no ETH to pay for the transaction on chain {chain}; fund it first"
    )]
    InsufficientFunds {
        /// The sending account.
        account: String,
        /// The chain id.
        chain: u64,
    },
    /// The account lacks deposit tokens.
    #[error(
        "the deposit needs {needed} tokens of {token} but the account {account} holds {held}; \
         acquire more of the token first"
    )]
    InsufficientTokens {
        /// The token contract.
        token: String,
        /// The account.
        account: String,
        /// The deposit.
        needed: String,
        /// The balance.
        held: String,
    },
    /// The rate limit is outside what the contract allows.
    #[error(
        "a rate limit of {value} messages per epoch is outside the contract's range {min}..={max}; pick a value in that range"
    )]
    RateLimitOutOfRange {
        /// The requested limit.
        value: u32,
        /// The contract's minimum.
        min: u32,
        /// The contract's maximum.
        max: u32,
    },
    /// The commitment is already registered.
    #[error(
        "this identity commitment is already registered; create a new identity with `wakurln keystore new`"
    )]
    AlreadyRegistered,
    /// The membership does not exist (erase, extend).
    #[error(
        "no membership exists for this identity commitment on this contract; check --contract \
         and the credential"
    )]
    NoSuchMembership,
    /// The token allowance is short of the deposit.
    #[error(
        "the contract may take only {allowed} deposit tokens from {account} but needs {needed}; \
         approve the deposit first (`membership register` does so unless the approval failed)"
    )]
    InsufficientAllowance {
        /// The account.
        account: String,
        /// The allowance.
        allowed: String,
        /// The deposit.
        needed: String,
    },
    /// The contract refused for a reason it named; the text says what to do.
    #[error("the contract refused: {0}")]
    Refused(String),
    /// The contract reverted for another reason.
    #[error("the transaction failed: {0}")]
    Reverted(String),
    /// A call or transaction failed at the RPC level.
    #[error("RPC request failed ({context}): {detail}")]
    Rpc {
        /// What was being done (method, block range).
        context: String,
        /// The error.
        detail: String,
    },
    /// The local root disagrees with the contract's.
    #[error(
        "the local membership tree (root {local}) disagrees with the contract (root {contract}) at \
         block {block}; the sync store may be damaged: delete it to resync"
    )]
    RootMismatch {
        /// The local root.
        local: String,
        /// The contract's root.
        contract: String,
        /// The block compared at.
        block: u64,
    },
    /// The SQLite sync store failed.
    #[error("sync store {path}: {detail}")]
    Store {
        /// The database file.
        path: String,
        /// What failed.
        detail: String,
    },
    /// The SQLite sync store could not be opened.
    #[error("sync store: {0}")]
    StoreOpen(#[from] crate::sqlite::OpenError),
}

/// Maps a failed call or transaction to an error a user can act on: the contract's typed
/// errors first, then the node's messages for gas and funds.
pub fn from_contract_error(e: &alloy::contract::Error, account: Address, chain: u64) -> ChainError {
    if let Some(decoded) = e.as_decoded_interface_error::<WakuRlnV2Errors>() {
        return from_membership_error(&decoded);
    }
    if let Some(decoded) = e.as_decoded_interface_error::<IERC20Errors>() {
        return match decoded {
            IERC20Errors::ERC20InsufficientBalance(b) => ChainError::InsufficientTokens {
                token: "the deposit token".into(),
                account: b.sender.to_string(),
                needed: b.needed.to_string(),
                held: b.balance.to_string(),
            },
            IERC20Errors::ERC20InsufficientAllowance(a) => ChainError::InsufficientAllowance {
                account: account.to_string(),
                allowed: a.allowance.to_string(),
                needed: a.needed.to_string(),
            },
        };
    }
    if e.as_decoded_error::<OnlyDeployer>().is_some() {
        return ChainError::Refused(
            "only the account that deployed this testing contract may bulk-register".into(),
        );
    }
    describe_send_error(&e.to_string(), account, chain)
}

fn from_membership_error(e: &WakuRlnV2Errors) -> ChainError {
    use WakuRlnV2Errors as E;
    let text = match e {
        E::DuplicateIdCommitment(_) => return ChainError::AlreadyRegistered,
        E::MembershipDoesNotExist(_) => return ChainError::NoSuchMembership,
        E::InvalidIdCommitment(_) => {
            "the identity commitment is 0 or not a field element; generate a new identity"
        }
        E::InvalidMembershipRateLimit(_) => {
            "the rate limit is outside the contract's range; see `membership status` for it"
        }
        E::ExceededMaxTotalRateLimit(_) => {
            "the contract's total rate limit is used up; pick a lower rate limit or erase \
             expired memberships in the same registration"
        }
        E::MembershipSetFull(_) => "the membership set is full (2^20 members)",
        E::CannotEraseMembership(_) => {
            "only the holder may erase a membership in its grace period, and anyone once it \
             has expired; an active membership cannot be erased"
        }
        E::NotInGracePeriod(_) => {
            "a membership can be extended only in its grace period; `membership status` shows \
             when that starts"
        }
        E::AttemptedExtensionByNonHolder(_) => {
            "only the account that registered the membership can extend it; use its key"
        }
        E::NoDepositToWithdraw(_) => "this account has no deposit to withdraw in that token",
    };
    ChainError::Refused(text.into())
}

/// Maps an RPC node's message for a failed transaction (no decodable revert data).
pub fn describe_send_error(text: &str, account: Address, chain: u64) -> ChainError {
    let lower = text.to_lowercase();
    if lower.contains("insufficient funds") || lower.contains("lack of funds") {
        return ChainError::InsufficientFunds {
            account: account.to_string(),
            chain,
        };
    }
    if lower.contains("error sending request") || lower.contains("connection refused") {
        return ChainError::Unreachable {
            url: "the RPC endpoint".into(),
            detail: text.into(),
        };
    }
    ChainError::Reverted(text.into())
}

impl ChainError {
    /// Whether retrying later (or on another endpoint) may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Rpc { .. })
    }

    pub(crate) fn rpc(context: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Self::Rpc {
            context: context.into(),
            detail: detail.to_string(),
        }
    }
}
