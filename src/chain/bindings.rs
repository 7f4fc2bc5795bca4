//! The part of the membership contract's ABI the node and the CLI use, declared from the
//! deployed WakuRlnV2 interface so any deployment (ours on a dev chain, the network's on
//! Linea Sepolia) is driven by the same bindings.

#![allow(missing_docs, clippy::too_many_arguments)]

use alloy::sol;

sol! {
    /// The RLN membership contract.
    #[sol(rpc)]
    interface WakuRlnV2 {
        event MembershipRegistered(uint256 idCommitment, uint256 membershipRateLimit, uint32 index);
        event MembershipErased(uint256 idCommitment, uint32 membershipRateLimit, uint32 index);
        event MembershipExpired(uint256 idCommitment, uint32 membershipRateLimit, uint32 index);
        event MembershipExtended(
            uint256 idCommitment,
            uint32 membershipRateLimit,
            uint32 index,
            uint256 newGracePeriodStartTimestamp
        );
        event RootStored(uint256 newRoot);

        error DuplicateIdCommitment();
        error InvalidIdCommitment(uint256 idCommitment);
        error InvalidMembershipRateLimit();
        error ExceededMaxTotalRateLimit();
        error MembershipSetFull();
        error MembershipDoesNotExist(uint256 idCommitment);
        error CannotEraseMembership(uint256 idCommitment);
        error NotInGracePeriod(uint256 idCommitment);
        error AttemptedExtensionByNonHolder(uint256 idCommitment);
        error NoDepositToWithdraw(address token);

        function register(uint256 idCommitment, uint32 rateLimit, uint256[] calldata idCommitmentsToErase) external;
        function extendMemberships(uint256[] calldata idCommitments) external;
        function eraseMemberships(uint256[] calldata idCommitments) external;
        function withdraw(address token) external;

        function root() external view returns (uint256);
        function getRecentRoots() external view returns (uint256[5] memory);
        function getRootAt(uint8 position) external view returns (uint256);
        function nextFreeIndex() external view returns (uint32);
        function getRateCommitmentsInRangeBoundsInclusive(uint32 startIndex, uint32 endIndex)
            external view returns (uint256[] memory);
        function minMembershipRateLimit() external view returns (uint32);
        function maxMembershipRateLimit() external view returns (uint32);
        function deployedBlockNumber() external view returns (uint32);
        function isExpired(uint256 idCommitment) external view returns (bool);
        function isInGracePeriod(uint256 idCommitment) external view returns (bool);
        function isInMembershipSet(uint256 idCommitment) external view returns (bool);
        function membershipExpirationTimestamp(uint256 idCommitment) external view returns (uint256);
        function memberships(uint256 idCommitment) external view returns (
            uint256 depositAmount,
            uint32 activeDuration,
            uint256 gracePeriodStartTimestamp,
            uint32 gracePeriodDuration,
            uint32 rateLimit,
            uint32 index,
            address holder,
            address token
        );
        function depositsToWithdraw(address holder, address token) external view returns (uint256);
        function priceCalculator() external view returns (address);
    }

    /// Where WakuRlnV2 looks up the deposit for a rate limit (our contract answers itself).
    #[sol(rpc)]
    interface IPriceCalculator {
        function calculate(uint32 rateLimit) external view returns (address token, uint256 amount);
    }

    /// The test-only bulk registration of the testing variant of our contract.
    #[sol(rpc)]
    interface MembershipForTesting {
        error OnlyDeployer();
        function registerBatchForTesting(uint256[] calldata idCommitments, uint32 rateLimit) external;
    }

    /// The ERC-20 deposit token.
    #[sol(rpc)]
    interface IERC20 {
        error ERC20InsufficientBalance(address sender, uint256 balance, uint256 needed);
        error ERC20InsufficientAllowance(address spender, uint256 allowance, uint256 needed);
        function approve(address spender, uint256 amount) external returns (bool);
        function allowance(address owner, address spender) external view returns (uint256);
        function balanceOf(address owner) external view returns (uint256);
    }

    /// The test token of dev chains.
    #[sol(rpc)]
    interface TestToken {
        function mint(address to, uint256 amount) external;
    }
}
