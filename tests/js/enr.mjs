// ENRs through @waku/enr, the record codec of the JS Waku client, for the ENR interop test.
//
//   node enr.mjs decode <enr:...>
//       Decodes (and verifies) a record; prints one JSON line with its peer id, seq, ip, tcp, udp,
//       multiaddrs, full multiaddrs, waku2 flags and rs shard info.
//   node enr.mjs encode <private key hex> <compressed public key hex>
//       Writes a record with ip 127.0.0.1, tcp 60000, a WebSocket multiaddr, waku2 relay+store
//       and rs cluster 66 shards [0, 5], signed with the key; prints {"enr": text}.

import "./polyfill.mjs";
import { EnrCreator, EnrDecoder } from "@waku/enr";
// The encoder is not among the package's exports; its file is imported directly.
import { EnrEncoder } from "./node_modules/@waku/enr/dist/encoder.js";
import { multiaddr } from "@multiformats/multiaddr";

const [command, ...args] = process.argv.slice(2);
const hex = (s) => Uint8Array.from(Buffer.from(s, "hex"));

if (command === "decode") {
  const enr = await EnrDecoder.fromString(args[0]);
  console.log(
    JSON.stringify({
      peerId: enr.peerId?.toString(),
      seq: Number(enr.seq),
      ip: enr.ip,
      tcp: enr.tcp,
      udp: enr.udp,
      multiaddrs: (enr.multiaddrs ?? []).map(String),
      fullMultiaddrs: enr.getFullMultiaddrs().map(String),
      tcpMultiaddr: enr.getFullMultiaddr("tcp")?.toString(),
      waku2: enr.waku2,
      rs: enr.rs,
    }),
  );
} else if (command === "encode") {
  const [privateKey, publicKey] = args;
  const enr = EnrCreator.fromPublicKey(hex(publicKey));
  enr.ip = "127.0.0.1";
  enr.tcp = 60000;
  enr.multiaddrs = [multiaddr("/ip4/127.0.0.1/tcp/8000/ws")];
  enr.waku2 = { relay: true, store: true, filter: false, lightPush: false };
  // rs: cluster (u16 BE), number of shards (u8), shards (u16 BE each).
  enr.set("rs", Uint8Array.from([0, 66, 2, 0, 0, 0, 5]));
  console.log(JSON.stringify({ enr: await EnrEncoder.toString(enr, hex(privateKey)) }));
} else {
  console.error("usage: node enr.mjs decode <enr> | encode <private key hex> <public key hex>");
  process.exit(2);
}
