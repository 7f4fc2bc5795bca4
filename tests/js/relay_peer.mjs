// A Waku relay peer from npm: js-libp2p with @chainsafe/libp2p-gossipsub configured as Waku
// relay (protocol /vac/waku/relay/2.0.0, no signatures, message id = sha256 of the data).
//
// Usage: node relay_peer.mjs <multiaddr to dial> <pubsub topic>
// stdin:  one base64 message (an encoded WakuMessage) per line, published on the topic
// stdout: JSON lines: {"ready": true, "peerId": ...} once the dialled node is a subscriber of
//         the topic; {"received": base64} for every message that arrives; {"published": n}

import "./polyfill.mjs";
import { createHash } from "node:crypto";
import { createInterface } from "node:readline";
import { createLibp2p } from "libp2p";
import { tcp } from "@libp2p/tcp";
import { noise } from "@chainsafe/libp2p-noise";
import { yamux } from "@chainsafe/libp2p-yamux";
import { identify } from "@libp2p/identify";
import { gossipsub } from "@chainsafe/libp2p-gossipsub";
import { multiaddr } from "@multiformats/multiaddr";

const [dialAddr, topic] = process.argv.slice(2);
if (!dialAddr || !topic) {
  console.error("usage: node relay_peer.mjs <multiaddr> <pubsub topic>");
  process.exit(2);
}
const out = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

const node = await createLibp2p({
  start: false,
  addresses: { listen: ["/ip4/127.0.0.1/tcp/0"] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    pubsub: gossipsub({
      globalSignaturePolicy: "StrictNoSign",
      msgIdFn: (msg) => new Uint8Array(createHash("sha256").update(msg.data).digest()),
      allowPublishToZeroTopicPeers: false,
      floodPublish: true,
      emitSelf: false,
      maxInboundDataLength: 1024 * 1024,
    }),
  },
});
node.services.pubsub.multicodecs = ["/vac/waku/relay/2.0.0"];
await node.start();

const pubsub = node.services.pubsub;
pubsub.addEventListener("message", (evt) => {
  if (evt.detail.topic === topic) {
    out({ received: Buffer.from(evt.detail.data).toString("base64") });
  }
});
pubsub.subscribe(topic);
await node.dial(multiaddr(dialAddr));

// Ready once the dialled node is known to be on the topic.
for (;;) {
  if (pubsub.getSubscribers(topic).length > 0) break;
  await new Promise((r) => setTimeout(r, 100));
}
out({ ready: true, peerId: node.peerId.toString() });

let published = 0;
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const text = line.trim();
  if (!text) continue;
  const data = Buffer.from(text, "base64");
  for (;;) {
    try {
      await pubsub.publish(topic, data);
      break;
    } catch (e) {
      // No peer in the mesh yet: wait for the next heartbeat.
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  published += 1;
  out({ published });
}
await node.stop();
process.exit(0);
