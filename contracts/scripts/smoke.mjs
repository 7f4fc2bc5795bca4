// End-to-end check of the artifacts on a throwaway anvil: deploy, approve + register, the exact
// event signatures, root() and getMerkleProof against a Poseidon tree computed here, erase with
// index reuse, extend, expiry, withdraw, the custom errors, and the testing batch helper.
//
//   npm ci --prefix contracts && node contracts/scripts/smoke.mjs
//
// It documents how the contract is used; the authoritative tests are the Rust ones.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Contract, Interface, JsonRpcProvider, id } from "ethers";
import { poseidon2 } from "poseidon-lite";
import { TWN_TERMS, deployMembership, mined } from "./deploy.mjs";

const ANVIL = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil",
);
const Q = 21888242871839275222246405745257275088548364400416034343698204186575808495617n;
const DEPTH = 20;
const PRICE = 10n ** 15n;

// The event ABI as WakuRlnV2 has it: names, types, nothing indexed.
const EVENTS = [
  "event MembershipRegistered(uint256 idCommitment, uint256 membershipRateLimit, uint32 index)",
  "event MembershipErased(uint256 idCommitment, uint32 membershipRateLimit, uint32 index)",
  "event MembershipExpired(uint256 idCommitment, uint32 membershipRateLimit, uint32 index)",
  "event MembershipExtended(uint256 idCommitment, uint32 membershipRateLimit, uint32 index, uint256 newGracePeriodStartTimestamp)",
  "event RootStored(uint256 newRoot)",
];

// Functions a node or the CLI calls, with the return types WakuRlnV2 has.
const FUNCTIONS = [
  "function register(uint256,uint32,uint256[])",
  "function root() view returns (uint256)",
  "function nextFreeIndex() view returns (uint32)",
  "function getMerkleProof(uint40) view returns (uint256[20])",
  "function getRateCommitmentsInRangeBoundsInclusive(uint32,uint32) view returns (uint256[])",
  "function minMembershipRateLimit() view returns (uint32)",
  "function maxMembershipRateLimit() view returns (uint32)",
  "function deployedBlockNumber() view returns (uint32)",
  "function isExpired(uint256) view returns (bool)",
  "function isInGracePeriod(uint256) view returns (bool)",
  "function memberships(uint256) view returns (uint256,uint32,uint256,uint32,uint32,uint32,address,address)",
  "function extendMemberships(uint256[])",
  "function eraseMemberships(uint256[])",
  "function withdraw(address)",
  "function eraseMemberships(uint256[],bool)",
  "function getRecentRoots() view returns (uint256[5])",
  "function getRootAt(uint8) view returns (uint256)",
  "function priceCalculator() view returns (address)",
  "function calculate(uint32) view returns (address,uint256)",
];

// ---------------------------------------------------------------- off-chain tree

const ZEROS = [0n];
for (let i = 0; i < DEPTH; i++) ZEROS.push(poseidon2([ZEROS[i], ZEROS[i]]));

function offChainRoot(leaves) {
  let level = leaves;
  for (let d = 0; d < DEPTH; d++) {
    if (level.length === 0) return ZEROS[DEPTH];
    const next = [];
    for (let i = 0; i < level.length; i += 2) next.push(poseidon2([level[i], level[i + 1] ?? ZEROS[d]]));
    level = next;
  }
  return level[0];
}

function rootFromProof(leaf, index, siblings) {
  let node = leaf;
  for (let d = 0; d < DEPTH; d++) {
    node = (index >> d) & 1 ? poseidon2([siblings[d], node]) : poseidon2([node, siblings[d]]);
  }
  return node;
}

// ---------------------------------------------------------------- anvil

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function rpcAnswers(url) {
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
    });
    return response.ok;
  } catch {
    return false;
  }
}

async function startAnvil() {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(ANVIL, ["--host", "127.0.0.1", "--port", String(port), "--quiet"], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  // Wait with plain requests: an ethers provider created before the node listens keeps
  // retrying its network detection and can stall.
  for (let i = 0; i < 100 && !(await rpcAnswers(url)); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!(await rpcAnswers(url))) {
    child.kill();
    throw new Error("anvil did not answer within 10 s");
  }
  const provider = new JsonRpcProvider(url, 31337, { staticNetwork: true, pollingInterval: 50 });
  return { child, provider };
}

// ---------------------------------------------------------------- checks

function checkAbi(membership) {
  const iface = membership.interface;
  for (const signature of EVENTS) {
    const event = iface.getEvent(signature.split(" ")[1].split("(")[0]);
    assert.equal(event.format("full"), signature);
    assert.ok(event.inputs.every((input) => !input.indexed));
  }
  for (const signature of FUNCTIONS) {
    const expected = Interface.from([signature]).fragments[0];
    const actual = iface.getFunction(expected.format("sighash"));
    assert.ok(actual, `missing ${signature}`);
    assert.deepEqual(
      actual.outputs.map((o) => o.type),
      expected.outputs.map((o) => o.type),
      `return types of ${signature}`,
    );
  }
}

/** The membership events of a receipt, checked to carry no indexed topic. */
function events(membership, receipt) {
  return receipt.logs
    .filter((log) => log.address === membership.target)
    .map((log) => {
      assert.equal(log.topics.length, 1, "membership events have no indexed fields");
      const parsed = membership.interface.parseLog(log);
      assert.equal(log.topics[0], id(parsed.signature));
      return { name: parsed.name, args: parsed.args.toArray() };
    });
}

async function expectRevert(promise, errorName) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.revert?.name, errorName, `expected ${errorName}, got ${e.shortMessage}`);
    return;
  }
  assert.fail(`expected revert ${errorName}`);
}

async function leavesOnChain(membership) {
  const next = await membership.nextFreeIndex();
  if (next === 0n) return [];
  return (await membership.getRateCommitmentsInRangeBoundsInclusive(0, next - 1n)).toArray();
}

async function checkTree(membership, expectedLeaves) {
  assert.deepEqual(await leavesOnChain(membership), expectedLeaves);
  const root = await membership.root();
  assert.equal(root, offChainRoot(expectedLeaves), "root() equals the off-chain tree");
  for (let i = 0; i < expectedLeaves.length; i++) {
    const proof = (await membership.getMerkleProof(i)).toArray();
    assert.equal(rootFromProof(expectedLeaves[i], i, proof), root, `proof of leaf ${i}`);
  }
  return root;
}

async function increaseTime(provider, seconds) {
  await provider.send("evm_increaseTime", [seconds]);
  await provider.send("evm_mine", []);
}

// ---------------------------------------------------------------- scenario

async function scenario(provider) {
  const [owner, alice, bob] = await Promise.all([0, 1, 2].map((i) => provider.getSigner(i)));
  const { token, membership, receipt: deployed } = await deployMembership(owner, { price: PRICE });
  checkAbi(membership);
  assert.equal(await membership.deployedBlockNumber(), BigInt(deployed.blockNumber));
  assert.equal(await membership.minMembershipRateLimit(), 20n);
  assert.equal(await membership.maxMembershipRateLimit(), 600n);
  assert.equal(await membership.root(), ZEROS[DEPTH], "empty tree root");
  assert.equal(await membership.priceCalculator(), membership.target);

  const register = async (signer, idCommitment, rateLimit, toErase = []) => {
    const [tokenAddress, deposit] = await membership.calculate(rateLimit);
    const erc20 = new Contract(tokenAddress, token.interface, signer);
    await mined(await erc20.mint(await signer.getAddress(), deposit));
    await mined(await erc20.approve(membership.target, deposit));
    const as = membership.connect(signer);
    return await mined(await as.register(idCommitment, rateLimit, toErase));
  };

  // Four members; the leaf is Poseidon(idCommitment, rateLimit).
  const members = [
    [alice, 1001n, 20],
    [alice, 1002n, 600],
    [bob, 1003n, 100],
    [bob, Q - 1n, 300],
  ];
  const leaves = [];
  const gas = [];
  assert.deepEqual((await membership.getRecentRoots()).toArray(), [0n, 0n, 0n, 0n, 0n]);
  const roots = [];
  for (const [signer, idc, limit] of members) {
    const receipt = await register(signer, idc, limit);
    gas.push(receipt.gasUsed);
    const index = BigInt(leaves.length);
    leaves.push(poseidon2([idc, BigInt(limit)]));
    roots.unshift(offChainRoot(leaves));
    assert.deepEqual(events(membership, receipt), [
      { name: "MembershipRegistered", args: [idc, BigInt(limit), index] },
      { name: "RootStored", args: [roots[0]] },
    ]);
  }
  // Newest first, zero where no root was stored yet.
  assert.deepEqual((await membership.getRecentRoots()).toArray(), [...roots, 0n]);
  assert.equal(await membership.getRootAt(1), roots[1]);
  assert.equal(await membership.nextFreeIndex(), 4n);
  await checkTree(membership, leaves);
  assert.equal(await token.balanceOf(membership.target), PRICE * 1020n);
  const [depositAmount, , , , rateLimit, index, holder] = await membership.memberships(1003n);
  assert.deepEqual([depositAmount, rateLimit, index, holder], [PRICE * 100n, 100n, 2n, await bob.getAddress()]);

  // Errors users will meet.
  const asAlice = membership.connect(alice);
  await expectRevert(asAlice.register.staticCall(2000n, 19, []), "InvalidMembershipRateLimit");
  await expectRevert(asAlice.register.staticCall(2000n, 601, []), "InvalidMembershipRateLimit");
  await expectRevert(asAlice.register.staticCall(1001n, 20, []), "DuplicateIdCommitment");
  await expectRevert(asAlice.register.staticCall(0n, 20, []), "InvalidIdCommitment");
  await expectRevert(asAlice.register.staticCall(Q, 20, []), "InvalidIdCommitment");
  await expectRevert(asAlice.eraseMemberships.staticCall([1001n]), "CannotEraseMembership");
  await expectRevert(asAlice.extendMemberships.staticCall([1001n]), "NotInGracePeriod");
  await expectRevert(membership.getRateCommitmentsInRangeBoundsInclusive(0, 4), "InvalidPaginationQuery");

  // Into the grace period: the holder may extend or erase; others may not.
  await increaseTime(provider, TWN_TERMS.activeDuration + 1);
  assert.equal(await membership.isInGracePeriod(1001n), true);
  assert.equal(await membership.isExpired(1001n), false);
  await expectRevert(membership.connect(bob).eraseMemberships.staticCall([1001n]), "CannotEraseMembership");
  await expectRevert(membership.connect(bob).extendMemberships.staticCall([1001n]), "AttemptedExtensionByNonHolder");

  const [, , graceStart] = await membership.memberships(1002n);
  const extended = await mined(await asAlice.extendMemberships([1002n]));
  const newStart = graceStart + BigInt(TWN_TERMS.gracePeriod + TWN_TERMS.activeDuration);
  assert.deepEqual(events(membership, extended), [
    { name: "MembershipExtended", args: [1002n, 600n, 1n, newStart] },
  ]);

  // Alice erases index 0: the leaf becomes 0 and the index is reused by the next registration.
  const erased = await mined(await asAlice.eraseMemberships([1001n]));
  leaves[0] = 0n;
  assert.deepEqual(events(membership, erased), [
    { name: "MembershipErased", args: [1001n, 20n, 0n] },
    { name: "RootStored", args: [offChainRoot(leaves)] },
  ]);
  await checkTree(membership, leaves);
  assert.equal(await membership.isInMembershipSet(1001n), false);

  const reused = await register(bob, 1004n, 50);
  leaves[0] = poseidon2([1004n, 50n]);
  assert.deepEqual(events(membership, reused), [
    { name: "MembershipRegistered", args: [1004n, 50n, 0n] },
    { name: "RootStored", args: [offChainRoot(leaves)] },
  ]);
  assert.equal(await membership.nextFreeIndex(), 4n);
  await checkTree(membership, leaves);

  // Past the grace period: anyone erases expired memberships, here within a registration.
  await increaseTime(provider, TWN_TERMS.gracePeriod + 1);
  assert.equal(await membership.isExpired(1003n), true);
  const renewal = await register(alice, 1005n, 20, [1003n, BigInt(Q - 1n)]);
  assert.deepEqual(events(membership, renewal), [
    { name: "MembershipExpired", args: [1003n, 100n, 2n] },
    { name: "MembershipErased", args: [1003n, 100n, 2n] },
    { name: "MembershipExpired", args: [Q - 1n, 300n, 3n] },
    { name: "MembershipErased", args: [Q - 1n, 300n, 3n] },
    { name: "MembershipRegistered", args: [1005n, 20n, 3n] },
    { name: "RootStored", args: [offChainRoot([leaves[0], leaves[1], 0n, poseidon2([1005n, 20n])])] },
  ]);
  leaves[2] = 0n;
  leaves[3] = poseidon2([1005n, 20n]);
  await checkTree(membership, leaves);

  // Bob gets the deposits of his erased memberships back.
  const before = await token.balanceOf(await bob.getAddress());
  await mined(await membership.connect(bob).withdraw(token.target));
  assert.equal(await token.balanceOf(await bob.getAddress()), before + PRICE * 400n);
  await expectRevert(membership.connect(bob).withdraw.staticCall(token.target), "NoDepositToWithdraw");

  return gas;
}

async function batchScenario(provider) {
  const [owner, alice] = await Promise.all([0, 1].map((i) => provider.getSigner(i)));
  const { membership } = await deployMembership(owner, { price: PRICE, testing: true });
  const ids = Array.from({ length: 100 }, (_, i) => 5000n + BigInt(i));
  const receipt = await mined(await membership.registerBatchForTesting(ids, 20));
  const registered = events(membership, receipt);
  assert.equal(registered.length, ids.length + 1);
  assert.deepEqual(registered[ids.length], {
    name: "RootStored",
    args: [offChainRoot(ids.map((idc) => poseidon2([idc, 20n])))],
  });
  assert.deepEqual(registered[7], { name: "MembershipRegistered", args: [ids[7], 20n, 7n] });
  await checkTree(membership, ids.map((idc) => poseidon2([idc, 20n])));
  await expectRevert(
    membership.connect(alice).registerBatchForTesting.staticCall([1n], 20),
    "OnlyDeployer",
  );
  return receipt.gasUsed / BigInt(ids.length);
}

const { child, provider } = await startAnvil();
try {
  const gas = await scenario(provider);
  const perBatchMember = await batchScenario(provider);
  console.log(`register gas: ${gas.join(", ")} (first four registrations)`);
  console.log(`registerBatchForTesting gas per member: ${perBatchMember}`);
  console.log("smoke: root() matched the off-chain Poseidon tree at every step");
  console.log("smoke: all checks passed");
} finally {
  provider.destroy();
  child.kill();
}
