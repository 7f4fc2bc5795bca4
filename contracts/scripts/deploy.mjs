// How to deploy the artifacts: the PoseidonT3 library first, its address linked into the
// membership contract's bytecode, then the contract. Used by smoke.mjs; the Rust deployer does
// the same steps.

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ContractFactory } from "ethers";

const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), "..", "artifacts");

/** The Waku Network's membership terms, as WakuRlnV2 is configured there. */
export const TWN_TERMS = {
  minRateLimit: 20,
  maxRateLimit: 600,
  maxTotalRateLimit: 160_000,
  activeDuration: 180 * 24 * 3600,
  gracePeriod: 30 * 24 * 3600,
};

export function artifact(name) {
  return JSON.parse(readFileSync(join(ARTIFACTS, `${name}.json`), "utf8"));
}

/**
 * Writes library addresses over the placeholders that `linkReferences` locate. Offsets are in
 * bytes of the code, so twice that in the hex string after "0x".
 */
export function link(art, libraries) {
  let hex = art.bytecode.slice(2);
  for (const libs of Object.values(art.linkReferences)) {
    for (const [name, places] of Object.entries(libs)) {
      const address = libraries[name];
      if (!address) throw new Error(`${art.contractName} needs library ${name}`);
      const plain = address.toLowerCase().replace(/^0x/, "");
      for (const { start, length } of places) {
        hex = hex.slice(0, 2 * start) + plain + hex.slice(2 * (start + length));
      }
    }
  }
  return `0x${hex}`;
}

/**
 * Polls for the receipt of a sent transaction and fails if it reverted. Used instead of
 * `tx.wait()`, which can miss the block on an automining anvil: it waits for a block after the
 * one holding the transaction when the transaction was mined between its two looks.
 */
export async function mined(tx) {
  const provider = tx.provider ?? tx.runner.provider;
  for (;;) {
    const receipt = await provider.getTransactionReceipt(tx.hash);
    if (receipt) {
      if (receipt.status !== 1) throw new Error(`transaction ${tx.hash} reverted`);
      return receipt;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function deploy(name, signer, args = [], libraries = {}) {
  const art = artifact(name);
  const factory = new ContractFactory(art.abi, link(art, libraries), signer);
  const contract = await factory.deploy(...args);
  const receipt = await mined(contract.deploymentTransaction());
  return { contract, receipt };
}

/**
 * Deploys TestToken, PoseidonT3 and the membership contract (or its testing variant) with
 * `price` token units per message per epoch. Returns the contracts and the deploy receipt.
 */
export async function deployMembership(signer, { price, terms = TWN_TERMS, testing = false }) {
  const { contract: token } = await deploy("TestToken", signer);
  const { contract: poseidon } = await deploy("PoseidonT3", signer);
  const { contract: membership, receipt } = await deploy(
    testing ? "WakuRlnMembershipForTesting" : "WakuRlnMembership",
    signer,
    [
      await token.getAddress(),
      price,
      terms.minRateLimit,
      terms.maxRateLimit,
      terms.maxTotalRateLimit,
      terms.activeDuration,
      terms.gracePeriod,
    ],
    { PoseidonT3: await poseidon.getAddress() },
  );
  return { token, poseidon, membership, receipt };
}
