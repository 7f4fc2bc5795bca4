// Reads and writes nwaku-format keystores with the JS client's Keystore class (@waku/rln), so
// the Rust tests can check that both implementations understand each other's files.
//
//   node keystore.mjs read <keystore.json> <password>
//     prints {key: {treeIndex, chainId, address, rateLimit, idTrapdoor, idNullifier,
//     idSecretHash, idCommitment}} with identities as big-endian hex
//   node keystore.mjs write <keystore.json> <password>   (stdin: JSON list of the same shape)
import { readFileSync, writeFileSync } from "node:fs";
import { register } from "node:module";
// The package's entry point also loads its WebAssembly prover, which does not resolve under
// Node; the Keystore class itself needs none of it, so load its module file directly. Its
// imports omit `.js` extensions (it is built for bundlers), which the hooks add back.
register("./extensionless-hooks.mjs", import.meta.url);
// The library logs debugging output with console.log; keep stdout for our JSON.
console.log = (...args) => console.error(...args);
const { Keystore } = await import(
  new URL("./node_modules/@waku/rln/dist/keystore/keystore.js", import.meta.url)
);

const [mode, path, password] = process.argv.slice(2);
const toHex = (bytes) => Buffer.from(bytes).toString("hex");
const fromHex = (hex) => new Uint8Array(Buffer.from(hex, "hex"));

if (mode === "read") {
  const keystore = Keystore.fromString(readFileSync(path, "utf8"));
  if (!keystore) throw new Error(`@waku/rln refused ${path} as a keystore`);
  const out = {};
  for (const key of keystore.keys()) {
    const entity = await keystore.readCredential(key, password);
    if (!entity) throw new Error(`no credential ${key}`);
    const { identity: id, membership: m } = entity;
    out[key] = {
      treeIndex: m.treeIndex,
      chainId: String(m.chainId),
      address: m.address,
      rateLimit: m.rateLimit ?? null,
      idTrapdoor: toHex(id.IDTrapdoor),
      idNullifier: toHex(id.IDNullifier),
      idSecretHash: toHex(id.IDSecretHash),
      idCommitment: toHex(id.IDCommitment),
    };
  }
  process.stdout.write(JSON.stringify(out));
} else if (mode === "write") {
  const entries = JSON.parse(readFileSync(0, "utf8"));
  const keystore = Keystore.create();
  const keys = [];
  for (const e of entries) {
    const commitment = fromHex(e.idCommitment);
    keys.push(
      await keystore.addCredential(
        {
          identity: {
            IDTrapdoor: fromHex(e.idTrapdoor),
            IDNullifier: fromHex(e.idNullifier),
            IDSecretHash: fromHex(e.idSecretHash),
            IDCommitment: commitment,
            IDCommitmentBigInt: BigInt("0x" + e.idCommitment),
          },
          membership: {
            chainId: e.chainId,
            address: e.address,
            treeIndex: e.treeIndex,
            rateLimit: e.rateLimit,
          },
        },
        password,
      ),
    );
  }
  writeFileSync(path, keystore.toString());
  process.stdout.write(JSON.stringify(keys));
} else {
  throw new Error(`unknown mode ${mode}`);
}
