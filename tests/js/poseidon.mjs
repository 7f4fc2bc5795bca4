// Poseidon hashes by circomlibjs, for the Rust test that checks our Poseidon against an
// independent implementation.
//
// Usage: node poseidon.mjs < inputs.json
// Input on stdin: a JSON array of hash inputs, each an array of 1 to 16 decimal strings.
// Output on stdout: a JSON array with one decimal string per input.
// Each hash is computed twice, by circomlibjs's WebAssembly Poseidon (`buildPoseidon`, the one
// applications use) and by its plain reference version; the script fails if they disagree.

import { buildPoseidon, buildPoseidonReference } from "circomlibjs";

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

async function main() {
  const inputs = JSON.parse(await readStdin());
  if (!Array.isArray(inputs) || !inputs.every(Array.isArray)) {
    throw new Error("the input must be a JSON array of arrays of decimal strings");
  }
  const fast = await buildPoseidon();
  const reference = await buildPoseidonReference();

  const outputs = inputs.map((input, i) => {
    const values = input.map((v) => BigInt(v));
    const a = fast.F.toString(fast(values), 10);
    const b = reference.F.toString(reference(values), 10);
    if (a !== b) {
      throw new Error(`input ${i}: buildPoseidon gives ${a}, the reference ${b}`);
    }
    return a;
  });
  process.stdout.write(JSON.stringify(outputs));
}

main().then(
  // ffjavascript may keep worker threads alive; the answer is written, so leave now.
  () => process.exit(0),
  (err) => {
    console.error(`poseidon.mjs: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
  },
);
