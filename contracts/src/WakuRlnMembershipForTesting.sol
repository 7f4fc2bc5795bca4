// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.28;

import {WakuRlnMembership} from "./WakuRlnMembership.sol";

/// The caller is not the account that deployed this contract.
error OnlyDeployer();

/// @title WakuRlnMembership with a free bulk registration, for tests and benchmarks only
/// @notice Identical to WakuRlnMembership plus `registerBatchForTesting`, which lets the deployer
/// fill the tree with many memberships without deposits. Never deploy it where memberships
/// carry value, and never make a node depend on it: nodes see only the standard events.
contract WakuRlnMembershipForTesting is WakuRlnMembership {
    /// @notice The only account allowed to call registerBatchForTesting.
    address public immutable deployer;

    /// @dev Same parameters as WakuRlnMembership.
    constructor(
        address depositToken,
        uint256 price,
        uint32 minRateLimit,
        uint32 maxRateLimit,
        uint32 maxTotal,
        uint32 activeDuration,
        uint32 gracePeriod
    ) WakuRlnMembership(depositToken, price, minRateLimit, maxRateLimit, maxTotal, activeDuration, gracePeriod) {
        deployer = msg.sender;
    }

    /// @notice Registers every commitment with `rateLimit`, held by the deployer, without deposit.
    /// Same checks and same MembershipRegistered events as `register`, and one RootStored.
    function registerBatchForTesting(uint256[] calldata idCommitments, uint32 rateLimit) external {
        if (msg.sender != deployer) revert OnlyDeployer();
        for (uint256 i = 0; i < idCommitments.length; i++) {
            _register(msg.sender, idCommitments[i], rateLimit, 0);
        }
        if (idCommitments.length != 0) _storeRoot();
    }
}
