//! Store sync between real nodes on loopback: two store nodes, one archiving in SQLite and one
//! in PostgreSQL, each missing what the other holds, reconcile over
//! `/vac/waku/reconciliation/1.0.0` and push over `/vac/waku/transfer/1.0.0` until both hold
//! the union; a hostile raw peer cannot make a node store what it would refuse.

use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use wakurln::{
    clock::now_ns,
    message::{MessageHash, WakuMessage},
    node::{self, NodeConfig, NodeHandle, StoreConfig},
    store::{
        Archive, Backend, Query, Retention,
        sync::{
            SyncConfig,
            codec::{self, Body, Payload, SyncId},
        },
    },
    topics::StaticShard,
};

use crate::common::{postgres, raw::RawPeer};

const CLUSTER: u16 = 46;
const MINUTE: i64 = 60_000_000_000;

fn topic() -> String {
    StaticShard::new(CLUSTER, 0)
        .pubsub_topic()
        .as_str()
        .to_owned()
}

fn message(tag: &str, i: i64, at: i64) -> WakuMessage {
    WakuMessage::builder(
        "/sync-test/1/chat/proto".parse().unwrap(),
        format!("{tag} {i}").into_bytes(),
    )
    .timestamp(at)
    .build()
    .unwrap()
}

fn sync_config() -> SyncConfig {
    SyncConfig {
        // The test starts sessions itself.
        interval: Duration::ZERO,
        ..SyncConfig::default()
    }
}

async fn store_node(dir: &std::path::Path, backend: Backend) -> NodeHandle {
    let mut c = NodeConfig::local(dir.to_path_buf(), CLUSTER);
    c.store = Some(StoreConfig {
        backend,
        retention: Retention::default(),
        retention_interval: Duration::from_secs(3600),
        sync: Some(sync_config()),
    });
    node::start(c).await.unwrap()
}

async fn address(n: &NodeHandle) -> libp2p::Multiaddr {
    n.listen_addrs().await.unwrap()[0]
        .clone()
        .with(Protocol::P2p(n.peer_id()))
}

/// How many of `hashes` the node's archive holds.
async fn holds(n: &NodeHandle, hashes: &[MessageHash]) -> usize {
    let mut found = 0;
    for chunk in hashes.chunks(100) {
        let page = n
            .local_store_query(Query {
                message_hashes: chunk.to_vec(),
                limit: Some(100),
                ..Query::default()
            })
            .await
            .unwrap();
        found += page.entries.len();
    }
    found
}

/// `body` with its length in front, as the sync protocols frame what they write.
fn framed(body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_varint(body.len() as u64, &mut out);
    out.extend(body);
    out
}

/// A framed transfer of `m` on `topic`.
fn pushed(topic: &str, m: &WakuMessage) -> Vec<u8> {
    framed(codec::encode_transfer(topic, m))
}

/// A framed reconciliation payload of one range `[from, to)` of `topic`.
fn one_range(topic: &str, (from, to): (i64, i64), body: Body) -> Vec<u8> {
    framed(codec::encode(&Payload {
        pubsub_topics: vec![topic.to_owned()],
        content_topics: vec![],
        ranges: vec![((SyncId::at(from), SyncId::at(to)), body)],
    }))
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_store_nodes_fill_each_others_gaps() {
    let dir = std::env::temp_dir().join(format!("wakurln-store-sync-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let a_backend = Backend::Sqlite(dir.join("a/archive.sqlite"));
    std::fs::create_dir_all(dir.join("a")).unwrap();
    let b_backend = Backend::Postgres {
        url: postgres::database("store_sync").await,
        connections: 4,
    };
    // 200 messages both hold, 30 only A holds, 20 only B, over the last 40 minutes.
    let t0 = now_ns() - 40 * MINUTE;
    let topic = topic();
    let common: Vec<WakuMessage> = (0..200)
        .map(|i| message("both", i, t0 + i * 10_000_000_000))
        .collect();
    let a_only: Vec<WakuMessage> = (0..30)
        .map(|i| message("a", i, t0 + i * 71_000_000_000 + 3))
        .collect();
    let b_only: Vec<WakuMessage> = (0..20)
        .map(|i| message("b", i, t0 + i * 97_000_000_000 + 5))
        .collect();
    // And one B holds from before the sync range, which stays B's.
    let old = message("old", 0, now_ns() - 120 * MINUTE);
    for (backend, own) in [(&a_backend, &a_only), (&b_backend, &b_only)] {
        let archive = Archive::open(backend).await.unwrap();
        let mut all: Vec<(&str, &WakuMessage)> =
            common.iter().map(|m| (topic.as_str(), m)).collect();
        all.extend(own.iter().map(|m| (topic.as_str(), m)));
        if std::ptr::eq(own, &b_only) {
            all.push((topic.as_str(), &old));
        }
        archive.insert(&all).await.unwrap();
    }
    let a = store_node(&dir.join("a"), a_backend).await;
    let b = store_node(&dir.join("b"), b_backend).await;
    assert_eq!(
        a.store_sync().unwrap().len(),
        230,
        "A's set: its archive's last hour"
    );
    assert_eq!(
        b.store_sync().unwrap().len(),
        220,
        "B's set: without the old message"
    );
    a.dial(address(&b).await).await.unwrap();
    // B says it serves sync, in identify (and so its record's waku2 bit).
    eventually("A sees B's sync protocols", async || {
        a.peers().await.unwrap().iter().any(|p| {
            p.peer == b.peer_id()
                && p.protocols
                    .iter()
                    .any(|x| x == codec::RECONCILIATION.as_ref())
                && p.protocols.iter().any(|x| x == codec::TRANSFER.as_ref())
        })
    })
    .await;

    let report = a.store_sync_with(b.peer_id()).await.unwrap();
    assert_eq!(report.sent, 30, "{report:?}");
    assert_eq!(report.expected, 20, "{report:?}");
    let a_hashes: Vec<MessageHash> = a_only.iter().map(|m| m.hash(&topic)).collect();
    let b_hashes: Vec<MessageHash> = b_only.iter().map(|m| m.hash(&topic)).collect();
    eventually("B holds A's 30", async || holds(&b, &a_hashes).await == 30).await;
    eventually("A holds B's 20", async || holds(&a, &b_hashes).await == 20).await;
    assert_eq!(holds(&a, &[old.hash(&topic)]).await, 0, "outside the range");
    // The pushed messages are the same bytes, and their sets know them now.
    let page = a
        .local_store_query(Query {
            include_data: true,
            message_hashes: vec![b_hashes[7]],
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(page.entries[0].message.as_ref().unwrap(), &b_only[7]);
    // A stored message joins the set right after the archive.
    eventually("both sets have all 250", async || {
        a.store_sync().unwrap().len() == 250 && b.store_sync().unwrap().len() == 250
    })
    .await;

    // Agreement: one payload each way, nothing to push.
    let again = a.store_sync_with(b.peer_id()).await.unwrap();
    assert_eq!(
        (again.sent, again.expected, again.rounds),
        (0, 0, 2),
        "{again:?}"
    );

    // Either side may start: from B's side too, nothing left to do.
    let from_b = b.store_sync_with(a.peer_id()).await.unwrap();
    assert_eq!((from_b.sent, from_b.expected), (0, 0), "{from_b:?}");

    // The operator sees it in the metrics: A started two sessions, pushed 30, stored 20.
    let text = a.metrics().encode();
    for line in [
        "waku_store_sync_sessions_started_total 2",
        "waku_store_sync_sessions_answered_total 1",
        "waku_store_sync_pushed_messages_total 30",
        "waku_store_sync_received_messages_total 20",
        "waku_store_sync_refused_messages_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_sync_peer_cannot_make_a_node_store_what_it_would_refuse() {
    let dir = std::env::temp_dir().join(format!("wakurln-store-sync-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let node = store_node(&dir, Backend::Sqlite(dir.join("archive.sqlite"))).await;
    let peer = node.peer_id();
    let mut raw = RawPeer::connect(address(&node).await).await;
    let sync = node.store_sync().unwrap().clone();
    let topic = topic();
    let good = message("good", 0, now_ns() - 5 * MINUTE);
    let frame = pushed;

    // A push without a session is not read.
    raw.exchange(peer, codec::TRANSFER, &frame(&topic, &good))
        .await;
    assert_eq!(holds(&node, &[good.hash(&topic)]).await, 0);
    assert_eq!(sync.counters.refused.get(), 1);

    // A payload that is not one ends the session; the node goes on.
    let back = raw
        .exchange(
            peer,
            codec::RECONCILIATION,
            &[0x05, 0xff, 0xff, 0xff, 0xff, 0xff],
        )
        .await;
    assert!(back.is_empty(), "{back:?}");
    eventually("the failed session is counted", async || {
        sync.counters.sessions_failed.get() == 1
    })
    .await;
    // A failed session grants no push.
    raw.exchange(peer, codec::TRANSFER, &frame(&topic, &good))
        .await;
    eventually("the push after a failed session is refused", async || {
        sync.counters.refused.get() == 2
    })
    .await;
    assert_eq!(holds(&node, &[good.hash(&topic)]).await, 0);

    // A session: the peer lists what it holds of a range the node holds nothing of. The node
    // answers with its (empty) items, reconciled, and expects exactly the listed items.
    let now = now_ns();
    let other_shard = StaticShard::new(CLUSTER, 5).pubsub_topic();
    let elsewhere = message("elsewhere", 0, now - 2 * MINUTE);
    let too_old = message("old", 0, now - 3 * 60 * MINUTE);
    let future = message("future", 0, now + 60 * MINUTE);
    let unasked = message("unasked", 0, now - 3 * MINUTE);
    let ephemeral =
        WakuMessage::builder("/sync-test/1/chat/proto".parse().unwrap(), b"eph".to_vec())
            .timestamp(now - 2 * MINUTE)
            .ephemeral(true)
            .build()
            .unwrap();
    let id = |t: &str, m: &WakuMessage| SyncId {
        time: m.timestamp().unwrap(),
        hash: *m.hash(t).as_bytes(),
    };
    let mut listed = vec![
        id(&topic, &good),
        id(other_shard.as_str(), &elsewhere),
        id(&topic, &ephemeral),
        // Outside the range: not taken for items the node lacks.
        id(&topic, &too_old),
        id(&topic, &future),
    ];
    listed.sort();
    let range = (now - 60 * MINUTE, now - MINUTE);
    let session = |items: Vec<SyncId>| {
        one_range(
            &topic,
            range,
            Body::ItemSet {
                items,
                reconciled: false,
            },
        )
    };
    let back = raw
        .exchange(peer, codec::RECONCILIATION, &session(listed))
        .await;
    let reply = codec::decode(&back[1..]).unwrap();
    assert_eq!(
        reply.ranges[0].1,
        Body::ItemSet {
            items: vec![],
            reconciled: true
        }
    );
    let answered = |n: u64| {
        let sync = sync.clone();
        async move {
            eventually("the session is answered", async || {
                sync.counters.sessions_answered.get() == n
            })
            .await
        }
    };
    answered(1).await;

    // Now the peer pushes: one good message, the same again, five the node must refuse by
    // its checks or because they were not listed in range, and a frame that is no message.
    let mut pushes = Vec::new();
    pushes.extend(frame(&topic, &good));
    pushes.extend(frame(&topic, &good));
    pushes.extend(frame(other_shard.as_str(), &elsewhere));
    pushes.extend(frame(&topic, &too_old));
    pushes.extend(frame(&topic, &future));
    pushes.extend(frame(&topic, &ephemeral));
    pushes.extend(frame(&topic, &unasked));
    pushes.extend([3, 0xff, 0xff, 0xff]); // not a WakuMessageAndTopic
    raw.exchange(peer, codec::TRANSFER, &pushes).await;
    eventually("the pushes are judged", async || {
        sync.counters.received.get() + sync.counters.refused.get() >= 2 + 8
    })
    .await;
    assert_eq!(sync.counters.received.get(), 1);
    assert_eq!(holds(&node, &[good.hash(&topic)]).await, 1);
    for refused in [&too_old, &future, &ephemeral, &unasked] {
        assert_eq!(holds(&node, &[refused.hash(&topic)]).await, 0);
    }
    assert_eq!(
        holds(&node, &[elsewhere.hash(other_shard.as_str())]).await,
        0
    );

    // Pushes of what was not listed (five so far: the second good, the two out of range, the
    // unasked one and the junk) withdraw the peer's grant at the sixteenth, over all its
    // streams, before any check; a later stream is closed at its first frame.
    let mut flood = Vec::new();
    for i in 0..100 {
        flood.extend(frame(&topic, &message("flood", i, now - 3 * MINUTE)));
    }
    let limit = wakurln::store::sync::MAX_UNEXPECTED as u64;
    let refused_before = sync.counters.refused.get();
    raw.exchange(peer, codec::TRANSFER, &flood).await;
    eventually("the flood is cut short", async || {
        sync.counters.refused.get() == refused_before + limit - 5
    })
    .await;
    raw.exchange(peer, codec::TRANSFER, &flood).await;
    eventually("the next stream is closed at once", async || {
        sync.counters.refused.get() == refused_before + limit - 4
    })
    .await;

    // Where the node lists its items first (a fingerprint over a range where it holds one
    // message), the peer may push what the node lacks there at once, before listing its own,
    // as the reference node does.
    let fingerprint = one_range(&topic, range, Body::Fingerprint([7; 32]));
    let back = raw
        .exchange(peer, codec::RECONCILIATION, &fingerprint)
        .await;
    let reply = codec::decode(&back[1..]).unwrap();
    assert_eq!(
        reply.ranges[0].1,
        Body::ItemSet {
            items: vec![id(&topic, &good)],
            reconciled: false
        }
    );
    answered(2).await;
    let late = message("late", 0, now - 4 * MINUTE);
    let received_before = sync.counters.received.get();
    raw.exchange(peer, codec::TRANSFER, &frame(&topic, &late))
        .await;
    eventually("the push in the listed range is stored", async || {
        sync.counters.received.get() == received_before + 1
    })
    .await;
    assert_eq!(holds(&node, &[late.hash(&topic)]).await, 1);

    // A peer starts at most four sessions a minute: one more is answered, the fifth is not.
    raw.exchange(peer, codec::RECONCILIATION, &session(vec![]))
        .await;
    answered(3).await;
    let refused = raw
        .exchange(peer, codec::RECONCILIATION, &session(vec![]))
        .await;
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(sync.counters.sessions_answered.get(), 3);
    assert_eq!(sync.counters.sessions_refused.get(), 1);
    // Still serving.
    let page = node
        .local_store_query(Query {
            include_data: true,
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 2);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_rln_on_a_pushed_message_needs_a_valid_proof() {
    use crate::common::devnet::{self, Devnet, circuit_dir};
    use crate::node_relay::{prove_raw, tree_of};
    use wakurln::rln::prover::RlnProver;

    const RLN_CLUSTER: u16 = 48;
    let net = Devnet::start("store-sync-rln", RLN_CLUSTER).await;
    let (_, carol) = net.member("carol", 5).await;
    let mut config = net.config("store", None, &[]);
    config.store = Some(StoreConfig {
        backend: Backend::Sqlite(net.dir.join("store/archive.sqlite")),
        retention: Retention::default(),
        retention_interval: Duration::from_secs(3600),
        sync: Some(sync_config()),
    });
    let node = devnet::start(config).await;
    let tree = tree_of(&net).await;
    let prover = RlnProver::load(&circuit_dir()).unwrap();
    let topic = StaticShard::new(RLN_CLUSTER, 0)
        .pubsub_topic()
        .as_str()
        .to_owned();
    // Relayed elsewhere a few minutes ago, past the clock drift relay would allow.
    let at = now_ns() - 3 * MINUTE;
    let plain = |text: &str| {
        WakuMessage::builder(
            "/sync-test/1/rln/proto".parse().unwrap(),
            text.as_bytes().to_vec(),
        )
        .timestamp(at)
        .build()
        .unwrap()
    };
    let good = prove_raw(&prover, &tree, &carol, 0, 5, 0, plain("good"));
    let proof = good.rate_limit_proof().unwrap().clone();
    let moved = plain("moved").with_rate_limit_proof(proof).unwrap();
    let junk = plain("junk").with_rate_limit_proof(vec![1u8; 10]).unwrap();
    let bare = plain("bare");

    let peer = node.peer_id();
    let mut raw = RawPeer::connect(devnet::address(&node).await).await;
    let now = now_ns();
    // The peer lists the four, so the node expects them.
    let mut listed: Vec<SyncId> = [&good, &moved, &junk, &bare]
        .iter()
        .map(|m| SyncId {
            time: at,
            hash: *m.hash(&topic).as_bytes(),
        })
        .collect();
    listed.sort();
    let session = one_range(
        &topic,
        (now - 60 * MINUTE, now - MINUTE),
        Body::ItemSet {
            items: listed,
            reconciled: false,
        },
    );
    raw.exchange(peer, codec::RECONCILIATION, &session).await;
    let sync = node.store_sync().unwrap().clone();
    eventually("the session is answered", async || {
        sync.counters.sessions_answered.get() == 1
    })
    .await;
    let mut pushes = Vec::new();
    for m in [&good, &moved, &junk, &bare] {
        pushes.extend(pushed(&topic, m));
    }
    raw.exchange(peer, codec::TRANSFER, &pushes).await;
    eventually("the pushes are judged", async || {
        sync.counters.received.get() + sync.counters.refused.get() == 4
    })
    .await;
    assert_eq!(sync.counters.received.get(), 1);
    assert_eq!(holds(&node, &[good.hash(&topic)]).await, 1);
    for refused in [&moved, &junk, &bare] {
        assert_eq!(holds(&node, &[refused.hash(&topic)]).await, 0);
    }
    node.shutdown().await;
}
