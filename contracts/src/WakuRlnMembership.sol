// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {InternalLazyIMT, LazyIMTData} from "@zk-kit/lazy-imt.sol/InternalLazyIMT.sol";
import {PoseidonT3} from "poseidon-solidity/PoseidonT3.sol";

// Error names and parameters follow the deployed WakuRlnV2 where it has an equivalent, so one
// decoder serves both contracts.

/// The idCommitment is 0 or not below the BN254 scalar field order.
error InvalidIdCommitment(uint256 idCommitment);
/// A membership with this idCommitment is already registered.
error DuplicateIdCommitment();
/// The rate limit lies outside [minMembershipRateLimit, maxMembershipRateLimit].
error InvalidMembershipRateLimit();
/// Registering would push the sum of all rate limits above maxTotalRateLimit.
error ExceededMaxTotalRateLimit();
/// All 2^20 leaves are taken and no erased index is free for reuse.
error MembershipSetFull();
/// The range is empty, reversed or reaches past the last used index.
error InvalidPaginationQuery(uint256 startIndex, uint256 endIndex);
/// No membership has this idCommitment.
error MembershipDoesNotExist(uint256 idCommitment);
/// Only memberships in their grace period can be extended.
error NotInGracePeriod(uint256 idCommitment);
/// Only the holder can extend a membership.
error AttemptedExtensionByNonHolder(uint256 idCommitment);
/// Erasing needs an expired membership, or the holder erasing one in its grace period.
error CannotEraseMembership(uint256 idCommitment);
/// The caller has no erased deposit of this token to withdraw.
error NoDepositToWithdraw(address token);
/// The constructor arguments are inconsistent.
error InvalidConfiguration();

/// @title RLN v2 membership set for Waku
/// @notice Members deposit an ERC-20 amount proportional to their rate limit and get a leaf
/// `Poseidon(idCommitment, rateLimit)` in a depth-20 Merkle tree whose root RLN proofs refer to.
/// Memberships are active for a fixed duration, then in a grace period during which the holder
/// may extend them; after that anyone may erase them. Erasing zeroes the leaf and frees the
/// index for the next registration, and the holder can withdraw the deposit.
/// @dev ABI-compatible with WakuRlnV2 for registration, erasure, the membership events, the
/// reads a node uses and the ring of recent roots. Unlike it, every erasure zeroes the leaf, so replaying the events
/// reproduces `root()` exactly. The contract is its own price calculator (`priceCalculator()`
/// returns this address) and its parameters are fixed at deployment.
contract WakuRlnMembership {
    using SafeERC20 for IERC20;

    /// @notice Order of the BN254 scalar field: commitments and leaves must be below it.
    uint256 public constant Q =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;

    /// @notice Depth of the Merkle tree of rate commitments.
    uint8 public constant MERKLE_TREE_DEPTH = 20;

    /// @notice Number of leaves of the tree, the largest possible membership set.
    uint32 public constant MAX_MEMBERSHIP_SET_SIZE = uint32(1) << MERKLE_TREE_DEPTH;

    /// @notice The ERC-20 token taken as deposit.
    address public immutable token;
    /// @notice Deposit per message per epoch of rate limit, in the token's smallest unit.
    uint256 public immutable pricePerMessagePerEpoch;
    /// @notice Smallest rate limit (messages per epoch) one membership may have.
    uint32 public immutable minMembershipRateLimit;
    /// @notice Largest rate limit (messages per epoch) one membership may have.
    uint32 public immutable maxMembershipRateLimit;
    /// @notice Cap on the sum of the rate limits of all current memberships.
    uint32 public immutable maxTotalRateLimit;
    /// @notice Seconds a new membership stays active before its grace period.
    uint32 public immutable activeDurationForNewMemberships;
    /// @notice Seconds of grace period, during which the holder may extend.
    uint32 public immutable gracePeriodDurationForNewMemberships;
    /// @notice Block of deployment: where a syncing node starts reading.
    uint32 public immutable deployedBlockNumber;

    /// @notice Index the next registration takes when no erased index is free.
    uint32 public nextFreeIndex;
    uint64 private _currentTotalRateLimit;

    /// @notice Indices of erased memberships, reused last-in first-out by new registrations.
    /// @dev Named as in WakuRlnV2; here the leaves at these indices are already zero.
    uint32[] public indicesOfLazilyErasedMemberships;

    /// @notice Deposits of erased memberships that their holders can withdraw.
    mapping(address holder => mapping(address token => uint256 balance)) public depositsToWithdraw;

    /// @dev Packed into two slots; `rateLimit == 0` means no membership.
    struct Membership {
        address holder;
        uint32 rateLimit;
        uint32 index;
        uint32 activeDuration;
        uint64 gracePeriodStartTimestamp;
        uint32 gracePeriodDuration;
        uint128 depositAmount;
    }

    mapping(uint256 idCommitment => Membership) private _memberships;

    LazyIMTData private _tree;

    /// @notice Number of roots kept by `getRecentRoots`.
    uint8 public constant HISTORY_SIZE = 5;

    /// @dev The last HISTORY_SIZE roots; `_rootCursor` is the slot the next one takes.
    uint256[HISTORY_SIZE] private _recentRoots;
    uint8 private _rootCursor;
    bool private _rootsStored;

    /// @notice A membership took the leaf at `index`; the leaf is
    /// `Poseidon(idCommitment, membershipRateLimit)`.
    event MembershipRegistered(uint256 idCommitment, uint256 membershipRateLimit, uint32 index);

    /// @notice A membership was erased: its leaf is now zero and `index` is free for reuse.
    event MembershipErased(uint256 idCommitment, uint32 membershipRateLimit, uint32 index);

    /// @notice The membership being erased had passed its grace period (always followed by
    /// MembershipErased for the same membership).
    event MembershipExpired(uint256 idCommitment, uint32 membershipRateLimit, uint32 index);

    /// @notice A call that changed the tree finished; `newRoot` is the root it left. One event per
    /// call, however many leaves the call changed.
    event RootStored(uint256 newRoot);

    /// @notice The holder extended a membership in its grace period; the leaf is unchanged.
    event MembershipExtended(
        uint256 idCommitment, uint32 membershipRateLimit, uint32 index, uint256 newGracePeriodStartTimestamp
    );

    /// @param depositToken ERC-20 taken as deposit
    /// @param price deposit per message per epoch of rate limit
    /// @param minRateLimit smallest rate limit per membership (20 on The Waku Network)
    /// @param maxRateLimit largest rate limit per membership (600 on The Waku Network)
    /// @param maxTotal cap on the sum of all rate limits
    /// @param activeDuration seconds a membership is active (180 days on The Waku Network)
    /// @param gracePeriod seconds of grace period (30 days on The Waku Network)
    constructor(
        address depositToken,
        uint256 price,
        uint32 minRateLimit,
        uint32 maxRateLimit,
        uint32 maxTotal,
        uint32 activeDuration,
        uint32 gracePeriod
    ) {
        if (depositToken == address(0) || minRateLimit == 0 || minRateLimit > maxRateLimit) {
            revert InvalidConfiguration();
        }
        if (maxRateLimit > maxTotal || activeDuration == 0) revert InvalidConfiguration();
        // Deposits are stored in 128 bits.
        if (price > type(uint128).max / maxRateLimit) revert InvalidConfiguration();

        token = depositToken;
        pricePerMessagePerEpoch = price;
        minMembershipRateLimit = minRateLimit;
        maxMembershipRateLimit = maxRateLimit;
        maxTotalRateLimit = maxTotal;
        activeDurationForNewMemberships = activeDuration;
        gracePeriodDurationForNewMemberships = gracePeriod;
        deployedBlockNumber = uint32(block.number);
        // InternalLazyIMT._init would cap the tree at 2^depth - 1 leaves; the capacity check is
        // ours (MembershipSetFull), so the library's bound is set to the full 2^depth.
        _tree.maxIndex = uint40(MAX_MEMBERSHIP_SET_SIZE);
    }

    // ---------------------------------------------------------------- writes

    /// @notice Registers `idCommitment` with `rateLimit`, pulling the deposit with transferFrom
    /// (approve `calculate(rateLimit)` first). Erases `idCommitmentsToErase` before, so a
    /// registration can free the rate limit or index it needs; the last index freed is reused.
    function register(uint256 idCommitment, uint32 rateLimit, uint256[] calldata idCommitmentsToErase) external {
        for (uint256 i = 0; i < idCommitmentsToErase.length; i++) {
            _erase(idCommitmentsToErase[i]);
        }
        uint256 deposit = uint256(rateLimit) * pricePerMessagePerEpoch;
        _register(msg.sender, idCommitment, rateLimit, deposit);
        _storeRoot();
        if (deposit != 0) IERC20(token).safeTransferFrom(msg.sender, address(this), deposit);
    }

    /// @notice Extends memberships in their grace period by one active duration, counted from
    /// the end of the grace period. Holder only.
    function extendMemberships(uint256[] calldata idCommitments) external {
        for (uint256 i = 0; i < idCommitments.length; i++) {
            _extend(idCommitments[i]);
        }
    }

    /// @notice Erases expired memberships (anyone) or the caller's memberships in their grace
    /// period, zeroing their leaves and crediting the deposits to their holders.
    function eraseMemberships(uint256[] calldata idCommitments) external {
        _eraseAll(idCommitments);
    }

    /// @notice WakuRlnV2's second form of erasure. Here every erasure zeroes the leaf, so
    /// `eraseFromMembershipSet` changes nothing: both forms do the full clean-up.
    function eraseMemberships(uint256[] calldata idCommitments, bool eraseFromMembershipSet) external {
        eraseFromMembershipSet;
        _eraseAll(idCommitments);
    }

    /// @notice Sends the caller all deposits of erased memberships held in `depositToken`.
    function withdraw(address depositToken) external {
        uint256 amount = depositsToWithdraw[msg.sender][depositToken];
        if (amount == 0) revert NoDepositToWithdraw(depositToken);
        depositsToWithdraw[msg.sender][depositToken] = 0;
        IERC20(depositToken).safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------- reads: tree

    /// @notice Root of the depth-20 Poseidon tree of rate commitments, empty leaves being 0.
    function root() external view returns (uint256) {
        return InternalLazyIMT._root(_tree, MERKLE_TREE_DEPTH);
    }

    /// @notice The last HISTORY_SIZE roots, newest first; zeros where fewer have been stored.
    function getRecentRoots() external view returns (uint256[HISTORY_SIZE] memory roots) {
        if (!_rootsStored) return roots;
        for (uint8 i = 0; i < HISTORY_SIZE; i++) {
            roots[i] = _recentRoots[_slotOf(i)];
        }
    }

    /// @notice The stored root `position` steps back from the newest (0 is the newest).
    function getRootAt(uint8 position) external view returns (uint256) {
        require(position < HISTORY_SIZE, "Out of range");
        require(_rootsStored, "No roots yet");
        return _recentRoots[_slotOf(position)];
    }

    /// @notice Sibling path of the leaf at `index`, from the leaf level up.
    function getMerkleProof(uint40 index) external view returns (uint256[MERKLE_TREE_DEPTH] memory proof) {
        uint256[] memory path = InternalLazyIMT._merkleProofElements(_tree, index, MERKLE_TREE_DEPTH);
        for (uint256 i = 0; i < MERKLE_TREE_DEPTH; i++) {
            proof[i] = path[i];
        }
    }

    /// @notice Leaves `startIndex..=endIndex` (zero where erased); `endIndex < nextFreeIndex`.
    function getRateCommitmentsInRangeBoundsInclusive(uint32 startIndex, uint32 endIndex)
        external
        view
        returns (uint256[] memory leaves)
    {
        if (startIndex > endIndex || endIndex >= nextFreeIndex) revert InvalidPaginationQuery(startIndex, endIndex);
        leaves = new uint256[](endIndex - startIndex + 1);
        for (uint32 i = startIndex; i <= endIndex; i++) {
            leaves[i - startIndex] = _leaf(i);
        }
    }

    // ---------------------------------------------------------------- reads: memberships

    /// @notice The membership record, field for field as WakuRlnV2's `memberships` getter;
    /// all zero when there is none.
    function memberships(uint256 idCommitment)
        external
        view
        returns (
            uint256 depositAmount,
            uint32 activeDuration,
            uint256 gracePeriodStartTimestamp,
            uint32 gracePeriodDuration,
            uint32 rateLimit,
            uint32 index,
            address holder,
            address depositToken
        )
    {
        Membership memory m = _memberships[idCommitment];
        if (m.rateLimit == 0) return (0, 0, 0, 0, 0, 0, address(0), address(0));
        return (
            m.depositAmount,
            m.activeDuration,
            m.gracePeriodStartTimestamp,
            m.gracePeriodDuration,
            m.rateLimit,
            m.index,
            m.holder,
            token
        );
    }

    /// @notice Rate limit, index and leaf of a membership; zeros when there is none.
    function getMembershipInfo(uint256 idCommitment) external view returns (uint32, uint32, uint256) {
        Membership memory m = _memberships[idCommitment];
        if (m.rateLimit == 0) return (0, 0, 0);
        return (m.rateLimit, m.index, _leaf(m.index));
    }

    /// @notice Whether a membership with this idCommitment is registered and not erased.
    function isInMembershipSet(uint256 idCommitment) public view returns (bool) {
        return _memberships[idCommitment].rateLimit != 0;
    }

    /// @notice Whether the membership is in its grace period (false when there is none).
    function isInGracePeriod(uint256 idCommitment) public view returns (bool) {
        Membership memory m = _memberships[idCommitment];
        return m.rateLimit != 0 && m.gracePeriodStartTimestamp <= block.timestamp && !_isExpired(m);
    }

    /// @notice Whether the membership has passed its grace period (false when there is none).
    function isExpired(uint256 idCommitment) public view returns (bool) {
        Membership memory m = _memberships[idCommitment];
        return m.rateLimit != 0 && _isExpired(m);
    }

    /// @notice First timestamp at which the membership counts as expired.
    function membershipExpirationTimestamp(uint256 idCommitment) external view returns (uint256) {
        Membership memory m = _memberships[idCommitment];
        return _gracePeriodEnd(m) + 1;
    }

    /// @notice Sum of the rate limits of all current memberships.
    function currentTotalRateLimit() external view returns (uint256) {
        return _currentTotalRateLimit;
    }

    /// @notice Whether `idCommitment` can be a leaf input: in (0, Q).
    function isValidIdCommitment(uint256 idCommitment) public pure returns (bool) {
        return idCommitment != 0 && idCommitment < Q;
    }

    /// @notice Whether `rateLimit` lies in [minMembershipRateLimit, maxMembershipRateLimit].
    function isValidMembershipRateLimit(uint32 rateLimit) public view returns (bool) {
        return minMembershipRateLimit <= rateLimit && rateLimit <= maxMembershipRateLimit;
    }

    // ---------------------------------------------------------------- reads: price

    /// @notice Where WakuRlnV2 clients look up the deposit: this contract itself.
    function priceCalculator() external view returns (address) {
        return address(this);
    }

    /// @notice Token and amount to approve before registering with `rateLimit`.
    function calculate(uint32 rateLimit) external view returns (address, uint256) {
        return (token, uint256(rateLimit) * pricePerMessagePerEpoch);
    }

    // ---------------------------------------------------------------- internals

    /// @dev Checks and records a membership, sets its leaf and emits MembershipRegistered. The
    /// caller collects `deposit`.
    function _register(address holder, uint256 idCommitment, uint32 rateLimit, uint256 deposit)
        internal
        returns (uint32 index)
    {
        if (!isValidIdCommitment(idCommitment)) revert InvalidIdCommitment(idCommitment);
        if (!isValidMembershipRateLimit(rateLimit)) revert InvalidMembershipRateLimit();
        if (_memberships[idCommitment].rateLimit != 0) revert DuplicateIdCommitment();
        uint64 total = _currentTotalRateLimit + rateLimit;
        if (total > maxTotalRateLimit) revert ExceededMaxTotalRateLimit();
        _currentTotalRateLimit = total;

        bool reused;
        (index, reused) = _takeIndex();
        _memberships[idCommitment] = Membership({
            holder: holder,
            rateLimit: rateLimit,
            index: index,
            activeDuration: activeDurationForNewMemberships,
            gracePeriodStartTimestamp: uint64(block.timestamp) + activeDurationForNewMemberships,
            gracePeriodDuration: gracePeriodDurationForNewMemberships,
            depositAmount: uint128(deposit)
        });

        uint256 leaf = PoseidonT3.hash([idCommitment, uint256(rateLimit)]);
        if (reused) {
            InternalLazyIMT._update(_tree, leaf, index);
        } else {
            InternalLazyIMT._insert(_tree, leaf);
        }
        emit MembershipRegistered(idCommitment, rateLimit, index);
    }

    /// @dev The most recently freed index, else the next never-used one.
    function _takeIndex() private returns (uint32 index, bool reused) {
        uint256 free = indicesOfLazilyErasedMemberships.length;
        if (free != 0) {
            index = indicesOfLazilyErasedMemberships[free - 1];
            indicesOfLazilyErasedMemberships.pop();
            return (index, true);
        }
        index = nextFreeIndex;
        if (index >= MAX_MEMBERSHIP_SET_SIZE) revert MembershipSetFull();
        nextFreeIndex = index + 1;
        return (index, false);
    }

    function _erase(uint256 idCommitment) private {
        Membership memory m = _memberships[idCommitment];
        if (m.rateLimit == 0) revert MembershipDoesNotExist(idCommitment);
        bool expired = _isExpired(m);
        bool holderInGrace = m.holder == msg.sender && m.gracePeriodStartTimestamp <= block.timestamp;
        if (!expired && !holderInGrace) revert CannotEraseMembership(idCommitment);

        if (m.depositAmount != 0) depositsToWithdraw[m.holder][token] += m.depositAmount;
        _currentTotalRateLimit -= m.rateLimit;
        delete _memberships[idCommitment];
        InternalLazyIMT._update(_tree, 0, m.index);
        indicesOfLazilyErasedMemberships.push(m.index);

        if (expired) emit MembershipExpired(idCommitment, m.rateLimit, m.index);
        emit MembershipErased(idCommitment, m.rateLimit, m.index);
    }

    /// @dev Erases each membership, then records the root once.
    function _eraseAll(uint256[] calldata idCommitments) private {
        for (uint256 i = 0; i < idCommitments.length; i++) {
            _erase(idCommitments[i]);
        }
        if (idCommitments.length != 0) _storeRoot();
    }

    /// @dev Records the current root in the ring of recent roots and emits RootStored. Called
    /// once at the end of every call that changed the tree.
    function _storeRoot() internal {
        uint256 newRoot = InternalLazyIMT._root(_tree, MERKLE_TREE_DEPTH);
        _recentRoots[_rootCursor] = newRoot;
        _rootCursor = (_rootCursor + 1) % HISTORY_SIZE;
        _rootsStored = true;
        emit RootStored(newRoot);
    }

    /// @dev Slot of the root `back` steps behind the newest.
    function _slotOf(uint8 back) private view returns (uint8) {
        return (_rootCursor + HISTORY_SIZE - 1 - back) % HISTORY_SIZE;
    }

    function _extend(uint256 idCommitment) private {
        Membership storage m = _memberships[idCommitment];
        if (m.rateLimit == 0) revert MembershipDoesNotExist(idCommitment);
        if (!isInGracePeriod(idCommitment)) revert NotInGracePeriod(idCommitment);
        if (m.holder != msg.sender) revert AttemptedExtensionByNonHolder(idCommitment);
        uint64 start = m.gracePeriodStartTimestamp + m.gracePeriodDuration + m.activeDuration;
        m.gracePeriodStartTimestamp = start;
        emit MembershipExtended(idCommitment, m.rateLimit, m.index, start);
    }

    function _leaf(uint32 index) private view returns (uint256) {
        return _tree.elements[InternalLazyIMT._indexForElement(0, index)];
    }

    /// @dev The grace period includes its last second, as in WakuRlnV2.
    function _isExpired(Membership memory m) private view returns (bool) {
        return _gracePeriodEnd(m) < block.timestamp;
    }

    function _gracePeriodEnd(Membership memory m) private pure returns (uint256) {
        return uint256(m.gracePeriodStartTimestamp) + m.gracePeriodDuration;
    }
}
