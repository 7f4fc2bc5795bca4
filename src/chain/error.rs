//! Errors of chain access, each phrased as what happened and what to do about it.

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
    #[error("no membership exists for this identity commitment on this contract")]
    NoSuchMembership,
    /// The contract reverted for another reason.
    #[error("the contract refused the transaction: {0}")]
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
