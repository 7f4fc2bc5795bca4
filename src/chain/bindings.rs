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
        function nextFreeIndex() external view returns (uint32);
        function getRateCommitmentsInRangeBoundsInclusive(uint32 startIndex, uint32 endIndex)
            external view returns (uint256[] memory);
        function minMembershipRateLimit() external view returns (uint32);
        function maxMembershipRateLimit() external view returns (uint32);
        function deployedBlockNumber() external view returns (uint32);
        function isExpired(uint256 idCommitment) external view returns (bool);
        function isInGracePeriod(uint256 idCommitment) external view returns (bool);
        function isInMembershipSet(uint256 idCommitment) external view returns (bool);
        function token() external view returns (address);
        function pricePerMessagePerEpoch() external view returns (uint256);
    }

    /// The ERC-20 deposit token.
    #[sol(rpc)]
    interface IERC20 {
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
