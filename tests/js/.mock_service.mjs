// Throwaway: a fake Waku service node to exercise light_client.mjs (not committed).
import "./polyfill.mjs";
import { createLibp2p } from "libp2p";
import { tcp } from "@libp2p/tcp";
import { noise } from "@chainsafe/libp2p-noise";
import { yamux } from "@chainsafe/libp2p-yamux";
import { identify } from "@libp2p/identify";
import { webSockets } from "@libp2p/websockets";
import { mplex } from "@libp2p/mplex";
import * as lp from "it-length-prefixed";
import {
  proto_store as ps,
  proto_lightpush as pl,
  proto_filter_v2 as pf,
  proto_metadata as pm,
} from "./node_modules/@waku/sdk/node_modules/@waku/proto/dist/index.js";

const CLUSTER = Number(process.env.MOCK_CLUSTER ?? 66);
const SHARDS = (process.env.MOCK_SHARDS ?? "0").split(",").filter(Boolean).map(Number);
const STORED = Number(process.env.MOCK_STORED ?? 7);
const TOPIC = process.env.MOCK_TOPIC ?? "/waku/2/rs/66/0";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const node = await createLibp2p({
  addresses: { listen: ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"] },
  transports: [tcp(), webSockets()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux(), mplex()],
  services: { identify: identify() },
});

async function reqres(stream, handle) {
  const it = lp.decode(stream.source)[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done) {
    console.error("stream closed before a request", stream.protocol);
    await stream.close().catch(() => {});
    return;
  }
  const resp = await handle(first.value.subarray());
  await stream.sink([lp.encode.single(resp)]);
}

const stored = [];
const now = BigInt(Date.now()) * 1_000_000n;
for (let i = 0; i < STORED; i++) {
  stored.push({
    messageHash: new Uint8Array(32).fill(i + 1),
    pubsubTopic: TOPIC,
    message: { payload: new Uint8Array([0xaa, i]), contentTopic: "/test/1/x/proto", version: 0, timestamp: now + BigInt(i) },
  });
}

await node.handle("/vac/waku/metadata/1.0.0", ({ stream }) =>
  reqres(stream, (b) => {
    console.error("metadata request", pm.WakuMetadataRequest.decode(b));
    return pm.WakuMetadataResponse.encode({ clusterId: CLUSTER, shards: SHARDS });
  }),
);
await node.handle("/vac/waku/lightpush/3.0.0", ({ stream }) =>
  reqres(stream, (b) => {
    const req = pl.LightPushRequestV3.decode(b);
    console.error("lightpush", req.pubsubTopic, req.message);
    const code = req.message.payload[0] === 0x42 ? 429 : 200;
    return pl.LightPushResponseV3.encode({ requestId: req.requestId, statusCode: code, statusDesc: code === 200 ? "" : "slow down", relayPeerCount: 1 });
  }),
);
await node.handle("/vac/waku/store-query/3.0.0", ({ stream }) =>
  reqres(stream, (b) => {
    const q = ps.StoreQueryRequest.decode(b);
    console.error("store query", { fwd: q.paginationForward, limit: q.paginationLimit, cursor: q.paginationCursor?.[0], topics: q.contentTopics, ps: q.pubsubTopic });
    const limit = Number(q.paginationLimit ?? 20n);
    let sel;
    if (q.paginationForward) {
      const start = q.paginationCursor ? stored.findIndex((m) => m.messageHash[0] === q.paginationCursor[0]) + 1 : 0;
      sel = stored.slice(start, start + limit);
    } else {
      const end = q.paginationCursor ? stored.findIndex((m) => m.messageHash[0] === q.paginationCursor[0]) : stored.length;
      sel = stored.slice(Math.max(0, end - limit), end);
    }
    return ps.StoreQueryResponse.encode({ requestId: q.requestId, statusCode: 200, statusDesc: "OK", messages: sel });
  }),
);
await node.handle("/vac/waku/filter-subscribe/2.0.0-beta1", ({ stream, connection }) =>
  reqres(stream, (b) => {
    const r = pf.FilterSubscribeRequest.decode(b);
    console.error("filter request", r);
    if (r.filterSubscribeType === "SUBSCRIBE" && !process.env.MOCK_FILTER_CODE) {
      setTimeout(async () => { try {
        const s = await node.dialProtocol(connection.remotePeer, "/vac/waku/filter-push/2.0.0-beta1");
        await s.sink((async function* () {
          for (let i = 0; i < 3; i++) {
            yield lp.encode.single(pf.MessagePush.encode({
              wakuMessage: { payload: new Uint8Array([0xbb, i]), contentTopic: r.contentTopics[0], version: 0, timestamp: BigInt(Date.now()) * 1_000_000n + BigInt(i) },
              pubsubTopic: r.pubsubTopic,
            }));
            await sleep(100);
          }
        })());
        console.error("pushed 3 on one stream"); } catch (e) { console.error("push failed", e.message); }
      }, 300);
    }
    const code = process.env.MOCK_FILTER_CODE ? Number(process.env.MOCK_FILTER_CODE) : 200;
    return pf.FilterSubscribeResponse.encode({ requestId: r.requestId, statusCode: code, statusDesc: "x" });
  }),
);
for (const a of node.getMultiaddrs()) process.stdout.write(`${a}\n`);
