// Computes circom witnesses with a circuit's wasm witness calculator, for the Rust tests that
// compare our native graph evaluator against it.
//
// Usage: node witness.mjs <circuit.wasm> [inputs.json]
// Inputs: a JSON array of input objects (circom signal names, values as decimal strings or arrays
// of them), read from the file or, without one, from stdin. Output on stdout: a JSON array with
// one witness per input, each an array of decimal strings in wire order.

import { readFile } from "node:fs/promises";
import { WitnessCalculatorBuilder } from "circom_runtime";

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

async function main() {
  const [wasmPath, inputPath] = process.argv.slice(2);
  if (!wasmPath) {
    throw new Error("usage: node witness.mjs <circuit.wasm> [inputs.json]");
  }
  const text = inputPath ? await readFile(inputPath, "utf8") : await readStdin();
  const inputs = JSON.parse(text);
  if (!Array.isArray(inputs)) throw new Error("the inputs must be a JSON array of objects");

  // Compiling the module is the slow part: do it once for every input.
  const calculator = await WitnessCalculatorBuilder(await readFile(wasmPath));
  const toBigInts = (v) => (Array.isArray(v) ? v.map(toBigInts) : BigInt(v));

  const witnesses = [];
  for (const input of inputs) {
    const signals = Object.fromEntries(
      Object.entries(input).map(([name, value]) => [name, toBigInts(value)]),
    );
    const witness = await calculator.calculateWitness(signals, true);
    witnesses.push(witness.map((w) => w.toString()));
  }
  process.stdout.write(JSON.stringify(witnesses));
}

main().catch((err) => {
  console.error(`witness.mjs: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
