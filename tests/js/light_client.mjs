// A Waku light client from npm (@waku/sdk 0.0.36, createLightNode) for the interop tests: it dials
// one service node, waits until that node is usable, and runs one lightpush, filter or store
// command against it.
//
// Run from tests/js:  node --import ./polyfill.mjs light_client.mjs <command> [options]
//
//   lightpush --content-topic T --payload-hex H [--count N] [--legacy]
//       Pushes N (default 1) messages without an RLN proof, one at a time, with strictly
//       increasing millisecond timestamps (so that no two are the same message). One line each:
//       {"event":"pushed","ok":bool,"successes":[peer ids],"failures":[{"error":..,"peer":..}]}
//       A failure also carries "status_code"/"status_desc" when js-waku logged them (it keeps
//       only "Remote peer rejected" in its result, so they are read back from its error log).
//       Exit 0 if every message succeeded, 1 otherwise. --legacy forces lightpush v2.
//   filter --content-topic T --expect N [--timeout-ms MS (default 30000)]
//       {"event":"subscribed"} once the peer answered the subscribe request with a 2xx status,
//       then {"event":"message","payload_hex","content_topic","timestamp_ns","pubsub_topic",
//       "hash_hex"} per message (timestamp_ns is a JSON integer, or null when absent), until N
//       arrived (exit 0) or the timeout (exit 1); then {"event":"unsubscribed"}. js-waku drops
//       a message whose hash it already delivered in the last 60 s.
//   discover --expect-peer ID
//       Peer exchange: asks the dialled node for records (js-waku's own peer-exchange
//       discovery), waits until the peer ID is discovered, dials it from the discovered
//       addresses and waits until identify shows it offers store:
//       {"event":"discovered","peer_id":..,"multiaddrs":[..]}, then {"event":"connected",
//       "protocols":[..]}; exit 0.
//   store --content-topic T [--page-size K (default 100)] [--forward]
//       Pages through everything the peer stores for T, backward unless --forward:
//       {"event":"page","size":k} per page, then
//       {"event":"done","count":total,"payloads_hex":[.. in the order received ..]}; exit 0.
//
// Common options:
//   --peer MULTIADDR     the service node: /ip4/../tcp/N[/p2p/ID] is dialled over TCP with
//                        yamux; /ip4/../tcp/N/ws[/p2p/ID] over WebSockets with js-waku's own
//                        default stack (mplex), or yamux with --muxer yamux.
//   --cluster C          cluster id (default 66)
//   --shard S            static sharding (the default, shard 0): the pubsub topic is
//                        /waku/2/rs/<C>/<S> whatever the content topic.
//   --shards-in-cluster N  autosharding instead: js-waku derives the shard from the content
//                        topic (sha256(application || version) mod N; N = 1 gives shard 0).
//   --deadline-ms MS     whole-run limit (default 60000, for filter at least its timeout + 30 s)
//
// stdout carries JSON lines only. Any failure prints {"event":"error","message":..} and exits 2.
// js-waku's logs go to stderr (set DEBUG=waku:* for all of them).

import "./polyfill.mjs";
import { parseArgs } from "node:util";

// Library output must never reach stdout.
for (const level of ["log", "info", "debug", "warn"]) {
  console[level] = (...args) => console.error(...args);
}

// js-waku reports a rejected lightpush or filter request without its status code, but logs the
// code on its error channel (the `debug` package, on stderr). Enable those channels before the
// library loads and remember the last code each one logged.
const STATUS_CHANNELS = ["waku:light-push:protocol-handler:error", "waku:filter-core:error"];
process.env.DEBUG = [process.env.DEBUG, ...STATUS_CHANNELS].filter(Boolean).join(",");
let lastStatus = null;
const stderrWrite = process.stderr.write.bind(process.stderr);
process.stderr.write = (chunk, ...rest) => {
  const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
  const m = /status code (\d+)(?:: ?(.*?))?(?: \+\d+m?s)?\s*$/m.exec(text);
  if (m && STATUS_CHANNELS.some((c) => text.includes(c))) {
    lastStatus = { code: Number(m[1]), desc: m[2] ?? "" };
  }
  return stderrWrite(chunk, ...rest);
};

const out = (obj) => {
  const line = JSON.stringify(obj, (_k, v) => (typeof v === "bigint" ? `@@big:${v}@@` : v));
  // Integers beyond 2^53 (nanosecond timestamps) are written as exact JSON integers.
  process.stdout.write(`${line.replace(/"@@big:(-?\d+)@@"/g, "$1")}\n`);
};

let node = null;
let exiting = false;
async function finish(code) {
  if (exiting) return;
  exiting = true;
  if (node) {
    await Promise.race([node.stop().catch(() => {}), sleep(5000)]);
  }
  process.exit(code);
}
function fail(error) {
  if (exiting) return;
  const message = error instanceof Error ? error.message : String(error);
  out({ event: "error", message });
  if (error instanceof Error && error.stack) console.error(error.stack);
  void finish(2);
}
process.on("uncaughtException", fail);
process.on("unhandledRejection", (reason) => {
  // libp2p leaves some rejections of closed streams unhandled; they are not ours to fail on.
  console.error("unhandled rejection:", reason);
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fromHex = (hex) => {
  if (!/^([0-9a-fA-F]{2})*$/.test(hex)) throw new Error(`not hex: ${hex}`);
  return new Uint8Array(Buffer.from(hex, "hex"));
};
const toHex = (bytes) => Buffer.from(bytes ?? new Uint8Array()).toString("hex");

function parse() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      peer: { type: "string" },
      cluster: { type: "string", default: "66" },
      shard: { type: "string" },
      "shards-in-cluster": { type: "string" },
      muxer: { type: "string" },
      "deadline-ms": { type: "string" },
      "content-topic": { type: "string" },
      "payload-hex": { type: "string" },
      count: { type: "string", default: "1" },
      legacy: { type: "boolean", default: false },
      expect: { type: "string" },
      "timeout-ms": { type: "string", default: "30000" },
      "page-size": { type: "string", default: "100" },
      forward: { type: "boolean", default: false },
      backward: { type: "boolean", default: false },
      "expect-peer": { type: "string" },
    },
  });
  const int = (name, min = 0) => {
    const text = values[name];
    if (!/^\d+$/.test(text ?? "")) throw new Error(`--${name} needs a whole number, got ${text}`);
    const n = Number(text);
    if (n < min) throw new Error(`--${name} must be at least ${min}`);
    return n;
  };
  if (positionals.length !== 1) {
    throw new Error(
      "usage: light_client.mjs <lightpush|filter|store|discover> --peer MULTIADDR [options]",
    );
  }
  const command = positionals[0];
  if (!["lightpush", "filter", "store", "discover"].includes(command)) {
    throw new Error(`unknown command ${command}`);
  }
  if (!values.peer) throw new Error("--peer is required");
  if (command === "discover") {
    if (!values["expect-peer"]) throw new Error("--expect-peer is required");
    values["content-topic"] ??= "/discover/1/none/proto";
  }
  if (!values["content-topic"]) throw new Error("--content-topic is required");
  if (values.shard !== undefined && values["shards-in-cluster"] !== undefined) {
    throw new Error("give --shard (static sharding) or --shards-in-cluster (autosharding), not both");
  }
  const opts = {
    command,
    peer: values.peer,
    cluster: int("cluster"),
    autosharding: values["shards-in-cluster"] !== undefined,
    shard: values.shard !== undefined ? int("shard") : 0,
    shardsInCluster: values["shards-in-cluster"] !== undefined ? int("shards-in-cluster", 1) : 0,
    muxer: values.muxer,
    contentTopic: values["content-topic"],
  };
  if (opts.muxer !== undefined && !["yamux", "mplex"].includes(opts.muxer)) {
    throw new Error("--muxer is yamux or mplex");
  }
  if (command === "lightpush") {
    if (values["payload-hex"] === undefined) throw new Error("--payload-hex is required");
    opts.payload = fromHex(values["payload-hex"]);
    opts.count = int("count", 1);
    opts.legacy = values.legacy;
  } else if (command === "filter") {
    if (values.expect === undefined) throw new Error("--expect is required");
    opts.expect = int("expect");
    opts.timeoutMs = int("timeout-ms");
  } else if (command === "discover") {
    opts.expectPeer = values["expect-peer"];
  } else {
    if (values.forward && values.backward) throw new Error("--forward or --backward, not both");
    opts.pageSize = int("page-size", 1);
    opts.forward = values.forward;
  }
  const minimum = command === "filter" ? opts.timeoutMs + 30_000 : 60_000;
  opts.deadlineMs = values["deadline-ms"] !== undefined ? int("deadline-ms", 1) : minimum;
  return opts;
}

let opts;
try {
  opts = parse();
} catch (e) {
  fail(e);
}
if (opts) {
  setTimeout(
    () => fail(new Error(`gave up after ${opts.deadlineMs} ms (--deadline-ms)`)),
    opts.deadlineMs,
  );
  main(opts).then(finish, fail);
}

async function main(opts) {
  const [{ createLightNode, waku: core }, { multiaddr }, { tcp }, { yamux }] = await Promise.all([
    import("@waku/sdk"),
    import("@multiformats/multiaddr"),
    import("@libp2p/tcp"),
    import("@chainsafe/libp2p-yamux"),
  ]);

  const target = multiaddr(opts.peer);
  const names = target.protoNames();
  const websocket = names.includes("ws") || names.includes("wss");
  // js-waku's default libp2p stack is WebSockets + mplex + noise; for TCP give it TCP + yamux.
  const libp2p = { hideWebSocketInfo: true, filterMultiaddrs: false };
  if (websocket) {
    if (opts.muxer === "yamux") libp2p.streamMuxers = [yamux()];
  } else {
    if (opts.muxer === "mplex") throw new Error("mplex is only offered with WebSockets here");
    libp2p.transports = [tcp()];
    libp2p.streamMuxers = [yamux()];
  }
  const networkConfig = opts.autosharding
    ? { clusterId: opts.cluster, numShardsInCluster: opts.shardsInCluster }
    : { clusterId: opts.cluster };

  const discovery = { dns: false, peerCache: false, peerExchange: opts.command === "discover" };
  node = await createLightNode({ defaultBootstrap: false, networkConfig, libp2p, discovery });
  const discovered = new Promise((resolve) => {
    node.libp2p.addEventListener("peer:discovery", (e) => {
      if (e.detail.id.toString() === opts.expectPeer) resolve(e.detail);
    });
  });
  const routing = opts.autosharding
    ? { contentTopic: opts.contentTopic }
    : { contentTopic: opts.contentTopic, shardId: opts.shard };
  const pubsubTopic = node.createRoutingInfo(routing.contentTopic, routing.shardId).pubsubTopic;
  console.error(`light client ${node.peerId} on ${pubsubTopic}, dialling ${target}`);

  const connection = await node.libp2p.dial(target, { signal: AbortSignal.timeout(15_000) });
  const peerId = connection.remotePeer;

  if (opts.command === "discover") return discover(node, core, discovered);

  const needs = {
    lightpush: opts.legacy ? [core.LightPushCodecV2] : [core.LightPushCodec, core.LightPushCodecV2],
    filter: [core.FilterCodecs.SUBSCRIBE],
    store: [core.StoreCodec],
  }[opts.command];
  const protocols = await waitForProtocols(node, peerId, needs);
  await checkShard(node, core, peerId, protocols, pubsubTopic);
  console.error(`peer ${peerId} usable: ${protocols.join(" ")}`);

  if (opts.command === "lightpush") return lightpush(node, core, opts, routing, protocols);
  if (opts.command === "filter") return filter(node, opts, routing, pubsubTopic);
  return store(node, opts, routing, peerId);
}

// js-waku's peer-exchange discovery queries the dialled peer once identify shows it speaks the
// protocol; the records it gets back become "peer:discovery" events.
async function discover(node, core, discovered) {
  const found = await discovered;
  out({
    event: "discovered",
    peer_id: found.id.toString(),
    multiaddrs: (found.multiaddrs ?? []).map(String),
  });
  await node.libp2p.dial(found.id, { signal: AbortSignal.timeout(15_000) });
  const protocols = await waitForProtocols(node, found.id, [core.StoreCodec]);
  out({ event: "connected", protocols });
}

// Identify tells the peer's protocols; js-waku only uses a peer for a protocol it listed.
async function waitForProtocols(node, peerId, codecs) {
  const until = Date.now() + 15_000;
  for (;;) {
    if (node.libp2p.getConnections(peerId).length === 0) {
      throw new Error(`the peer ${peerId} closed the connection before it was usable`);
    }
    const peer = await node.libp2p.peerStore.get(peerId).catch(() => null);
    const protocols = peer?.protocols ?? [];
    if (codecs.some((c) => protocols.includes(c))) return protocols;
    if (Date.now() > until) {
      throw new Error(
        `the peer ${peerId} does not offer ${codecs.join(" or ")} (identify lists: ${protocols.join(" ") || "nothing"})`,
      );
    }
    await sleep(100);
  }
}

// What waitForPeers does: a metadata handshake. js-waku then uses the peer only if the shard
// info it answered has our cluster and the shard of our pubsub topic (a peer that does not speak
// metadata has no shard info and is used anyway).
async function checkShard(node, core, peerId, protocols, pubsubTopic) {
  if (!protocols.includes(core.MetadataCodec)) {
    console.error(`peer ${peerId} does not offer ${core.MetadataCodec}; no shard check`);
    return;
  }
  const { shardInfo, error } = await node.libp2p.services.metadata.confirmOrAttemptHandshake(peerId);
  if (error) throw new Error(`metadata handshake with ${peerId} failed: ${error}`);
  if (!(await node.connectionManager.isPeerOnTopic(peerId, pubsubTopic))) {
    throw new Error(
      `the peer's metadata (cluster ${shardInfo?.clusterId}, shards [${shardInfo?.shards}]) does not cover ${pubsubTopic}, so js-waku will not use it`,
    );
  }
}

async function lightpush(node, core, opts, routing, protocols) {
  const encoder = node.createEncoder(routing);
  // The SDK picks peers by the v3 codec unless told to use the legacy one.
  const useLegacy = opts.legacy || !protocols.includes(core.LightPushCodec);
  let allOk = true;
  let lastMs = 0;
  for (let i = 0; i < opts.count; i++) {
    lastMs = Math.max(Date.now(), lastMs + 1);
    lastStatus = null;
    const result = await node.lightPush.send(
      encoder,
      { payload: opts.payload, timestamp: new Date(lastMs) },
      { autoRetry: false, useLegacy },
    );
    const successes = result.successes.map((p) => p.toString());
    const failures = result.failures.map((f) => {
      const entry = { error: f.error, peer: f.peerId ? f.peerId.toString() : null };
      if (lastStatus) {
        entry.status_code = lastStatus.code;
        entry.status_desc = lastStatus.desc;
      }
      return entry;
    });
    const ok = successes.length > 0 && failures.length === 0;
    allOk &&= ok;
    out({ event: "pushed", ok, successes, failures });
  }
  return allOk ? 0 : 1;
}

async function filter(node, opts, routing, pubsubTopic) {
  const decoder = node.createDecoder(routing);
  let received = 0;
  let done;
  const finished = new Promise((r) => {
    done = r;
  });
  if (opts.expect === 0) done();
  lastStatus = null;
  const subscribed = await node.filter.subscribe(decoder, (message) => {
    if (!message || received >= opts.expect) return;
    received += 1;
    out({
      event: "message",
      payload_hex: toHex(message.payload),
      content_topic: message.contentTopic,
      timestamp_ns: message.proto.timestamp ?? null,
      pubsub_topic: message.pubsubTopic,
      hash_hex: message.hashStr,
    });
    if (received >= opts.expect) done();
  });
  if (!subscribed) {
    const status = lastStatus ? ` (status ${lastStatus.code}: ${lastStatus.desc})` : "";
    throw new Error(`the filter subscription to ${opts.contentTopic} on ${pubsubTopic} failed${status}`);
  }
  out({ event: "subscribed" });
  let timer;
  const complete = await Promise.race([
    finished.then(() => true),
    new Promise((r) => {
      timer = setTimeout(() => r(false), opts.timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (!complete) {
    console.error(`filter: ${received} of ${opts.expect} messages before the timeout`);
  }
  if (!(await node.filter.unsubscribe(decoder))) {
    throw new Error("the filter unsubscribe request could not be sent");
  }
  out({ event: "unsubscribed" });
  return complete ? 0 : 1;
}

async function store(node, opts, routing, peerId) {
  const decoder = node.createDecoder(routing);
  const payloads = [];
  let undecoded = 0;
  const pages = node.store.queryGenerator([decoder], {
    paginationForward: opts.forward,
    paginationLimit: opts.pageSize,
    peerId,
  });
  for await (const page of pages) {
    const messages = await Promise.all(page);
    out({ event: "page", size: messages.length });
    for (const m of messages) {
      if (m) payloads.push(toHex(m.payload));
      else undecoded += 1;
    }
  }
  const done = { event: "done", count: payloads.length, payloads_hex: payloads };
  if (undecoded) done.undecoded = undecoded;
  out(done);
  return 0;
}
