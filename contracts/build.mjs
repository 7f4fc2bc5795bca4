// Compiles the contracts in src/ with the pinned solc-js and writes artifacts/<Contract>.json.
//
//   node contracts/build.mjs          rebuild the artifacts
//   node contracts/build.mjs --check  rebuild in memory; exit 1 if the committed artifacts differ
//
// Imports resolve from src/ or from contracts/node_modules (run `npm ci --prefix contracts`).
// PoseidonT3 (npm poseidon-solidity) has public functions, so it is an external library: its
// own artifact is deployed first and its address is linked into the bytecode of the contracts
// that use it, at the positions their `linkReferences` give (see README.md).

import { readFileSync, writeFileSync, readdirSync, mkdirSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = dirname(fileURLToPath(import.meta.url));
const MODULES = join(ROOT, "node_modules");
const ARTIFACTS = join(ROOT, "artifacts");

// Contracts that get an artifact: what a deployer needs.
const DEPLOYABLE = [
  ["src/WakuRlnMembership.sol", "WakuRlnMembership"],
  ["src/WakuRlnMembershipForTesting.sol", "WakuRlnMembershipForTesting"],
  ["src/TestToken.sol", "TestToken"],
  ["poseidon-solidity/PoseidonT3.sol", "PoseidonT3"],
];

// Fixed, so the same sources always give the same bytecode. `paris` avoids PUSH0 and later
// opcodes that some L2s (Linea among them) have lagged on.
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "paris",
  outputSelection: {
    "*": { "*": ["abi", "evm.bytecode.object", "evm.bytecode.linkReferences"] },
  },
};

function fail(message) {
  console.error(`build.mjs: ${message}`);
  process.exit(1);
}

function loadSolc() {
  if (!existsSync(join(MODULES, "solc"))) {
    fail("contracts/node_modules is missing: run `npm ci --prefix contracts` first");
  }
  const solc = createRequire(import.meta.url)("solc");
  const pinned = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).dependencies.solc;
  if (!solc.version().startsWith(`${pinned}+`)) {
    fail(`solc ${solc.version()} is installed but package.json pins ${pinned}: run npm ci`);
  }
  return solc;
}

// Source unit names are "src/..." for ours and the npm path for libraries, never absolute
// paths, so the metadata hash in the bytecode does not depend on where the checkout lives.
function readSource(unitName) {
  const base = unitName.startsWith("src/") ? ROOT : MODULES;
  const file = resolve(base, unitName);
  if (!file.startsWith(base + sep)) return { error: `import outside the project: ${unitName}` };
  if (!existsSync(file)) return { error: `not found: ${unitName} (looked in ${base})` };
  return { contents: readFileSync(file, "utf8") };
}

function compile(solc) {
  const sources = {};
  for (const file of readdirSync(join(ROOT, "src")).filter((f) => f.endsWith(".sol")).sort()) {
    sources[`src/${file}`] = { content: readSource(`src/${file}`).contents };
  }
  // Named explicitly so its artifact is built even if no source imported it.
  sources["poseidon-solidity/PoseidonT3.sol"] = {
    content: readSource("poseidon-solidity/PoseidonT3.sol").contents,
  };
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: readSource }));

  const problems = (output.errors ?? []).filter(
    // Library warnings are not ours to fix; our own sources must compile cleanly.
    (e) => e.severity === "error" || e.sourceLocation?.file?.startsWith("src/"),
  );
  for (const e of output.errors ?? []) console.error(e.formattedMessage);
  if (problems.length > 0) fail(`${problems.length} compiler error(s) or warning(s) in src/`);

  const artifacts = new Map();
  for (const [source, name] of DEPLOYABLE) {
    const contract = output.contracts?.[source]?.[name];
    if (!contract) fail(`no output for ${source}:${name}`);
    const artifact = {
      contractName: name,
      sourceName: source,
      compiler: `solc ${solc.version()}`,
      settings: { optimizer: SETTINGS.optimizer, evmVersion: SETTINGS.evmVersion },
      abi: contract.abi,
      bytecode: `0x${contract.evm.bytecode.object}`,
      linkReferences: contract.evm.bytecode.linkReferences,
    };
    artifacts.set(`${name}.json`, `${JSON.stringify(artifact, null, 2)}\n`);
  }
  return artifacts;
}

function check(artifacts) {
  const committed = existsSync(ARTIFACTS)
    ? readdirSync(ARTIFACTS).filter((f) => f.endsWith(".json"))
    : [];
  const stale = [];
  for (const [file, text] of artifacts) {
    const path = join(ARTIFACTS, file);
    if (!existsSync(path) || readFileSync(path, "utf8") !== text) stale.push(file);
  }
  const extra = committed.filter((f) => !artifacts.has(f));
  if (stale.length > 0 || extra.length > 0) {
    fail(
      `artifacts are out of date (differ: ${stale.join(", ") || "none"}; ` +
        `not built any more: ${extra.join(", ") || "none"}): run \`node contracts/build.mjs\``,
    );
  }
  console.log(`build.mjs: ${artifacts.size} artifacts match the sources`);
}

function write(artifacts) {
  mkdirSync(ARTIFACTS, { recursive: true });
  for (const [file, text] of artifacts) writeFileSync(join(ARTIFACTS, file), text);
  console.log(`build.mjs: wrote ${[...artifacts.keys()].join(", ")} to ${ARTIFACTS}`);
}

const args = process.argv.slice(2);
if (args.some((a) => a !== "--check")) fail(`unknown argument(s): ${args.join(" ")}`);
const artifacts = compile(loadSolc());
if (args.includes("--check")) check(artifacts);
else write(artifacts);
