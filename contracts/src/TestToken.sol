// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title Deposit token for development chains only
/// @notice A plain 18-decimal ERC-20 whose `mint` is open to everyone, so test accounts can pay
/// membership deposits. It has no value and must never back real memberships.
contract TestToken is ERC20 {
    constructor() ERC20("wakurln test token", "WRLNT") {}

    /// @notice Creates `amount` tokens for `to`. Anyone may call it.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
