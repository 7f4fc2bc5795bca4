//! Bad input against a service node on loopback, from a raw libp2p peer that writes whatever
//! bytes it likes: malformed and oversized frames, slow half-written requests, invalid
//! messages, unknown topics, absurd limits and time ranges. Every well-formed request gets the
//! right status code, a malformed one a closed stream, and the node keeps serving everyone
//! else afterwards.

use std::time::Duration;

use crate::common::raw::RawPeer;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::StreamProtocol;
use prost::Message;
use wakurln::{
    clock::now_ns,
    codec::encode_frame,
    lightpush::status,
    message::WakuMessage,
    node::{self, NodeConfig, NodeHandle, StoreConfig},
    proto::{
        filter::FilterSubscribeRequest,
        lightpush::{LightpushRequest, LightpushResponse},
        message::WakuMessage as WireMessage,
        peer_exchange::PeerExchangeRpc,
        store::{StoreQueryRequest, StoreQueryResponse},
    },
    store::Retention,
    topics::StaticShard,
};

const CLUSTER: u16 = 45;
const STORE: StreamProtocol = StreamProtocol::new("/vac/waku/store-query/3.0.0");
const LIGHTPUSH: StreamProtocol = StreamProtocol::new("/vac/waku/lightpush/3.0.0");
const FILTER: StreamProtocol = StreamProtocol::new("/vac/waku/filter-subscribe/2.0.0-beta1");
const PEER_EXCHANGE: StreamProtocol = StreamProtocol::new("/vac/waku/peer-exchange/2.0.0-alpha1");

fn wire_message(content_topic: &str, payload: Vec<u8>) -> WireMessage {
    WireMessage {
        payload: payload.into(),
        content_topic: content_topic.into(),
        timestamp: Some(now_ns()),
        ..WireMessage::default()
    }
}

async fn service(dir: &std::path::Path) -> (NodeHandle, NodeHandle) {
    let mut config = NodeConfig::local(dir.join("service"), CLUSTER);
    config.store = Some(StoreConfig {
        backend: wakurln::store::Backend::Sqlite(dir.join("service/archive.sqlite")),
        retention: Retention::default(),
        retention_interval: Duration::from_secs(3600),
        sync: None,
    });
    config.filter = Some(wakurln::filter::Limits::default());
    config.peer_exchange = true;
    let service = node::start(config).await.unwrap();
    let relay = node::start(NodeConfig::local(dir.join("relay"), CLUSTER))
        .await
        .unwrap();
    let addr = service.listen_addrs().await.unwrap()[0].clone();
    relay
        .dial(addr.with(libp2p::multiaddr::Protocol::P2p(service.peer_id())))
        .await
        .unwrap();
    let topic = StaticShard::new(CLUSTER, 0).pubsub_topic();
    for _ in 0..200 {
        if service.mesh_peers(topic.clone()).await.unwrap() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (service, relay)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_status_codes_or_closed_streams_and_harm_no_one() {
    let dir = std::env::temp_dir().join(format!("wakurln-bad-input-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (service, relay) = service(&dir).await;
    let peer = service.peer_id();
    let addr = service.listen_addrs().await.unwrap()[0].clone();
    let mut raw = RawPeer::connect(addr.with(libp2p::multiaddr::Protocol::P2p(peer))).await;
    let topic = StaticShard::new(CLUSTER, 0).pubsub_topic();

    // Frames that are not requests: an absurd length, garbage, a truncated frame, nothing.
    for protocol in [STORE, LIGHTPUSH, FILTER, PEER_EXCHANGE] {
        let absurd = [0x80, 0x80, 0x80, 0x80, 0x04]; // announces 1 GiB
        assert!(
            raw.exchange(peer, protocol.clone(), &absurd)
                .await
                .is_empty()
        );
        let garbage = [&[10u8][..], &[0xff; 10]].concat();
        assert!(
            raw.exchange(peer, protocol.clone(), &garbage)
                .await
                .is_empty()
        );
        assert!(
            raw.exchange(peer, protocol.clone(), &[50, 1, 2])
                .await
                .is_empty()
        );
        assert!(raw.exchange(peer, protocol, &[]).await.is_empty());
    }

    // Half-written requests held open on many streams at once do not stall other clients.
    let mut slow = Vec::new();
    // Past 32 requests in flight on one connection, the node resets new streams at once;
    // the others it holds, waiting for the rest of their frame.
    for _ in 0..64 {
        let mut s = raw.control.open_stream(peer, STORE).await.unwrap();
        // 144 bytes announced, 1 sent.
        let _ = s.write_all(&[0x90, 0x01, 0x0a]).await;
        let _ = s.flush().await;
        slow.push(s);
    }
    // A refused stream ends at once; a held one waits for the rest of its frame. Wait until
    // the refused ones have ended, then count: the held ones are still open.
    let ended = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let readers: Vec<_> = slow
        .into_iter()
        .map(|mut s| {
            let ended = ended.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1];
                let _ = s.read(&mut buf).await;
                ended.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                s
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while ended.load(std::sync::atomic::Ordering::SeqCst) < 24 {
        assert!(
            std::time::Instant::now() < deadline,
            "no stream was refused"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = ended.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (24..=40).contains(&refused),
        "{refused} of 64 streams refused at once"
    );
    // With the others still held open, the store answers another client.
    let page = relay
        .store_query(peer, &wakurln::store::Query::default())
        .await
        .expect("the store still answers others");
    assert!(page.entries.is_empty());
    for r in readers {
        r.abort();
    }

    // Store: absurd limits are clamped; impossible queries are 400.
    let q = |f: &dyn Fn(&mut StoreQueryRequest)| {
        let mut r = StoreQueryRequest {
            request_id: "q".into(),
            include_data: true,
            pubsub_topic: Some(topic.as_str().into()),
            ..StoreQueryRequest::default()
        };
        f(&mut r);
        r
    };
    let r: StoreQueryResponse = raw
        .ask(peer, STORE, &q(&|r| r.pagination_limit = Some(u64::MAX)))
        .await;
    assert_eq!(r.status_code, 200, "{r:?}");
    for (what, bad) in [
        (
            "inverted time range",
            q(&|r| {
                r.time_start = Some(i64::MAX);
                r.time_end = Some(i64::MIN);
            }),
        ),
        (
            "101 hashes",
            q(&|r| r.message_hashes = vec![vec![7u8; 32].into(); 101]),
        ),
        (
            "a hash of 3 bytes",
            q(&|r| r.message_hashes = vec![vec![1u8, 2, 3].into()]),
        ),
        (
            "an unknown cursor",
            q(&|r| r.pagination_cursor = Some(vec![9u8; 32].into())),
        ),
        (
            "content topics without a pubsub topic",
            q(&|r| {
                r.pubsub_topic = None;
                r.content_topics = vec!["/a/1/b/c".into()];
            }),
        ),
    ] {
        let r: StoreQueryResponse = raw.ask(peer, STORE, &bad).await;
        assert_eq!(r.status_code, 400, "{what}: {r:?}");
        assert_eq!(r.request_id, "q");
    }

    // Lightpush: invalid messages, unknown topics, oversized payloads.
    let push = |topic: Option<&str>, message: WireMessage| LightpushRequest {
        request_id: "p".into(),
        pubsub_topic: topic.map(str::to_owned),
        message,
    };
    let served = topic.as_str();
    for (what, request, code) in [
        (
            "an empty content topic",
            push(Some(served), wire_message("", b"x".to_vec())),
            status::BAD_REQUEST,
        ),
        (
            "a malformed content topic",
            push(Some(served), wire_message("nonsense", b"x".to_vec())),
            status::BAD_REQUEST,
        ),
        (
            "a shard not served",
            push(
                Some("/waku/2/rs/45/7"),
                wire_message("/a/1/b/c", b"x".to_vec()),
            ),
            status::UNSUPPORTED_PUBSUB_TOPIC,
        ),
        (
            "another cluster",
            push(
                Some("/waku/2/rs/1/0"),
                wire_message("/a/1/b/c", b"x".to_vec()),
            ),
            status::UNSUPPORTED_PUBSUB_TOPIC,
        ),
        (
            "a named topic",
            push(
                Some("/waku/2/default-waku/proto"),
                wire_message("/a/1/b/c", b"x".to_vec()),
            ),
            status::UNSUPPORTED_PUBSUB_TOPIC,
        ),
        (
            "a malformed pubsub topic",
            push(
                Some("/waku/2/rs/x/y"),
                wire_message("/a/1/b/c", b"x".to_vec()),
            ),
            status::BAD_REQUEST,
        ),
        (
            "a 200 KiB payload",
            push(
                Some(served),
                wire_message("/a/1/b/c", vec![0u8; 200 * 1024]),
            ),
            status::PAYLOAD_TOO_LARGE,
        ),
        (
            "a meta of 65 bytes",
            push(
                Some(served),
                WireMessage {
                    meta: Some(vec![1u8; 65].into()),
                    ..wire_message("/a/1/b/c", b"x".to_vec())
                },
            ),
            status::BAD_REQUEST,
        ),
    ] {
        let r: LightpushResponse = raw.ask(peer, LIGHTPUSH, &request).await;
        assert_eq!(r.status_code, code, "{what}: {r:?}");
        assert_eq!(r.request_id, "p");
    }
    // Beyond the frame limit, the stream is closed without reading the rest.
    let huge = push(
        Some(served),
        wire_message("/a/1/b/c", vec![0u8; 300 * 1024]),
    );
    assert!(
        raw.exchange(peer, LIGHTPUSH, &encode_frame(&huge))
            .await
            .is_empty()
    );

    // Filter: an unknown request type; peer exchange: an absurd number of peers is capped.
    let r: wakurln::proto::filter::FilterSubscribeResponse = raw
        .ask(
            peer,
            FILTER,
            &FilterSubscribeRequest {
                request_id: "f".into(),
                filter_subscribe_type: 42,
                ..FilterSubscribeRequest::default()
            },
        )
        .await;
    assert_eq!(r.status_code, 400, "{r:?}");
    let r: PeerExchangeRpc = raw
        .ask(
            peer,
            PEER_EXCHANGE,
            &wakurln::peer_exchange::request_of(u64::MAX),
        )
        .await;
    let response = r.response.expect("a response");
    assert_eq!(response.status_code, 200);
    // Everything the node knows (its cap of 60 is held by the cache's unit test, where more
    // than 60 records are known).
    assert_eq!(response.peer_infos.len(), service.known_records().len());
    assert!(!response.peer_infos.is_empty());

    // After all that, the node still relays and answers a well-formed push.
    let ok = WakuMessage::builder("/a/1/b/c".parse().unwrap(), b"fine".to_vec())
        .timestamp(now_ns())
        .build()
        .unwrap();
    let r = relay.lightpush(peer, Some(topic), &ok).await.unwrap();
    assert_eq!(r.status_code, status::OK, "{r:?}");
    service.shutdown().await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_holds_up_no_one() {
    let dir = std::env::temp_dir().join(format!("wakurln-slow-sub-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = NodeConfig::local(dir.join("service"), CLUSTER);
    config.filter = Some(wakurln::filter::Limits {
        queue_per_subscriber: 16,
        ..wakurln::filter::Limits::default()
    });
    let service = node::start(config).await.unwrap();
    let relay = node::start(NodeConfig::local(dir.join("relay"), CLUSTER))
        .await
        .unwrap();
    let live = node::start(NodeConfig::local(dir.join("live"), CLUSTER))
        .await
        .unwrap();
    let peer = service.peer_id();
    let addr = service.listen_addrs().await.unwrap()[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(peer));
    relay.dial(addr.clone()).await.unwrap();
    live.dial(addr.clone()).await.unwrap();
    let topic = StaticShard::new(CLUSTER, 0).pubsub_topic();
    for _ in 0..200 {
        if service.mesh_peers(topic.clone()).await.unwrap() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let content: wakurln::topics::ContentTopic = "/slow/1/sub/proto".parse().unwrap();

    // The slow subscriber accepts push streams and never reads them.
    let mut raw = RawPeer::connect(addr).await;
    let mut incoming = raw
        .control
        .accept(StreamProtocol::new("/vac/waku/filter-push/2.0.0-beta1"))
        .unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some((_, stream)) = incoming.next().await {
            held.push(stream);
        }
    });
    let subscribe = FilterSubscribeRequest {
        request_id: "s".into(),
        filter_subscribe_type: 1,
        pubsub_topic: Some(topic.as_str().into()),
        content_topics: vec![content.as_str().into()],
    };
    let r: wakurln::proto::filter::FilterSubscribeResponse =
        raw.ask(peer, FILTER, &subscribe).await;
    assert_eq!(r.status_code, 200);
    let r = live
        .filter_request(
            peer,
            wakurln::filter::protocol::Kind::Subscribe,
            Some(&topic),
            std::slice::from_ref(&content),
        )
        .await
        .unwrap();
    assert_eq!(r.status_code, 200);

    let mut pushed = live.filter_messages();
    let mut delivered = service.delivered();
    // 80 messages of 10 KiB: more than the slow stream's flow-control window and its queue
    // of 16 together, paced so that a subscriber that reads keeps up.
    for i in 0..80u32 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut payload = vec![0u8; 10 * 1024];
        payload[..4].copy_from_slice(&i.to_be_bytes());
        let m = WakuMessage::builder(content.clone(), payload)
            .timestamp(now_ns())
            .build()
            .unwrap();
        relay.publish(topic.clone(), m).await.unwrap();
    }
    for _ in 0..80 {
        tokio::time::timeout(Duration::from_secs(10), delivered.recv())
            .await
            .expect("relay is not held up")
            .unwrap();
    }
    for i in 0..80u32 {
        let p = tokio::time::timeout(Duration::from_secs(10), pushed.recv())
            .await
            .expect("the live subscriber is not held up")
            .unwrap();
        assert_eq!(p.message.payload()[..4], i.to_be_bytes());
    }
    let metrics = service.metrics().encode();
    let dropped = service.filter_service().unwrap().counters().dropped.get();
    assert!(
        dropped > 0,
        "the slow subscriber's queue overflowed: {metrics}"
    );
    for n in [&service, &relay, &live] {
        n.shutdown().await;
    }
}

/// The bad-input suite with RLN on: pushed messages whose proofs are broken in every way a
/// broken or hostile client can break them, over lightpush v3 and the legacy v2. Each is
/// refused as invalid (never relayed, never lent a proof), a double signal is caught, and the
/// node then relays a good push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_rln_on_broken_proofs_over_lightpush_are_refused_and_relay_goes_on() {
    use crate::common::devnet::{self, Devnet, circuit_dir};
    use crate::node_relay::{prove_raw, tree_of};
    use wakurln::{
        node::NodeEvent,
        proto::lightpush_v2::{PushRequest, PushRpc},
        rln::{
            field::{self, Fr},
            prover::RlnProver,
            waku::{Epoch, RlnProofData},
        },
    };

    const RLN_CLUSTER: u16 = 49;
    const LIGHTPUSH_V2: StreamProtocol = StreamProtocol::new("/vac/waku/lightpush/2.0.0-beta1");
    let net = Devnet::start("bad-input-rln", RLN_CLUSTER).await;
    let (_, carol) = net.member("carol", 5).await;
    let far = devnet::start(net.config("far", None, &[])).await;
    let service = devnet::start(net.config("service", None, &[devnet::address(&far).await])).await;
    let topic = StaticShard::new(RLN_CLUSTER, 0).pubsub_topic();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while service.mesh_peers(topic.clone()).await.unwrap() == 0 {
        assert!(std::time::Instant::now() < deadline, "no mesh");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut delivered = far.delivered();
    let mut events = service.events();
    let peer = service.peer_id();
    let mut raw = RawPeer::connect(devnet::address(&service).await).await;
    let tree = tree_of(&net).await;
    let prover = RlnProver::load(&circuit_dir()).unwrap();
    let message = |text: &str| {
        WakuMessage::builder(
            "/bad/1/proofs/proto".parse().unwrap(),
            text.as_bytes().to_vec(),
        )
        .timestamp(now_ns())
        .build()
        .unwrap()
    };
    let good = prove_raw(&prover, &tree, &carol, 0, 5, 0, message("good"));
    let proof = RlnProofData::decode(good.rate_limit_proof().unwrap()).unwrap();
    // `good` with its proof replaced by `bytes`, or with one field of its proof changed.
    let with_proof = |bytes: Vec<u8>| {
        let mut wire = good.to_proto();
        wire.rate_limit_proof = Some(bytes.into());
        wire
    };
    let tweaked = |change: &dyn Fn(&mut RlnProofData)| {
        let mut p = proof.clone();
        change(&mut p);
        with_proof(p.encode())
    };
    let mut not_canonical =
        wakurln::rln::proto::RateLimitProof::decode(good.rate_limit_proof().unwrap().as_ref())
            .unwrap();
    not_canonical.nullifier = vec![0xff; 32].into();
    let mut short = not_canonical.clone();
    short.proof = vec![1u8; 10].into();
    let mut moved = good.to_proto();
    moved.payload = b"moved".to_vec().into();
    let cases: Vec<(&str, WireMessage)> = vec![
        (
            "proof bytes that are not a protobuf",
            with_proof(vec![0xff; 40]),
        ),
        ("an empty proof", with_proof(Vec::new())),
        ("a 10-byte zk proof", with_proof(short.encode_to_vec())),
        (
            "a nullifier above the field modulus",
            with_proof(not_canonical.encode_to_vec()),
        ),
        ("a proof moved to another payload", moved),
        (
            "a root no one has",
            tweaked(&|p| p.merkle_root = Fr::from(7u64)),
        ),
        (
            "an epoch ten epochs ahead",
            tweaked(&|p| p.epoch = Epoch(p.epoch.0 + 10)),
        ),
        ("a changed share", tweaked(&|p| p.share_y += Fr::from(1u64))),
        (
            "a changed nullifier",
            tweaked(&|p| p.nullifier += Fr::from(1u64)),
        ),
        (
            "another application's identifier",
            tweaked(&|p| p.rln_identifier = Fr::from(1u64)),
        ),
    ];
    for (what, wire) in &cases {
        let r: LightpushResponse = raw
            .ask(
                peer,
                LIGHTPUSH,
                &LightpushRequest {
                    request_id: "v3".into(),
                    pubsub_topic: Some(topic.as_str().into()),
                    message: wire.clone(),
                },
            )
            .await;
        assert_eq!(r.status_code, status::INVALID_MESSAGE, "v3, {what}: {r:?}");
        let r: PushRpc = raw
            .ask(
                peer,
                LIGHTPUSH_V2,
                &PushRpc {
                    request_id: "v2".into(),
                    request: Some(PushRequest {
                        pubsub_topic: topic.as_str().into(),
                        message: wire.clone(),
                    }),
                    response: None,
                },
            )
            .await;
        let response = r.response.expect("a v2 response");
        assert!(!response.is_success, "v2, {what}: {response:?}");
    }
    // Each refusal is counted with its reason.
    let metrics = service.metrics().encode();
    let refused: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("waku_rln_invalid_messages_total_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(
        refused >= cases.len() as u64,
        "{refused} counted:\n{metrics}"
    );
    assert!(metrics.contains("type=\"invalid_proof\""), "{metrics}");

    // The honest message goes through, once; a second message with its message id is spam.
    let push = |m: &WakuMessage| LightpushRequest {
        request_id: "ok".into(),
        pubsub_topic: Some(topic.as_str().into()),
        message: m.to_proto(),
    };
    let r: LightpushResponse = raw.ask(peer, LIGHTPUSH, &push(&good)).await;
    assert_eq!(r.status_code, status::OK, "{r:?}");
    let got = tokio::time::timeout(Duration::from_secs(20), delivered.recv())
        .await
        .expect("the good message arrives")
        .unwrap();
    assert_eq!(got.message.payload().as_ref(), b"good");
    let again = prove_raw(&prover, &tree, &carol, 0, 5, 0, message("same id"));
    let r: LightpushResponse = raw.ask(peer, LIGHTPUSH, &push(&again)).await;
    assert_eq!(r.status_code, status::INVALID_MESSAGE, "{r:?}");
    let spam = loop {
        match tokio::time::timeout(Duration::from_secs(20), events.recv()).await {
            Ok(Ok(NodeEvent::Spam { commitment, .. })) => break commitment,
            Ok(Ok(_)) => {}
            other => panic!("no double signal event: {other:?}"),
        }
    };
    assert_eq!(
        field::to_decimal(&spam),
        field::to_decimal(&carol.commitment)
    );

    // Nothing broken went on to the far node, and relay goes on: the next message goes end to
    // end over the legacy lightpush v2.
    let next = prove_raw(&prover, &tree, &carol, 0, 5, 1, message("after"));
    let r: PushRpc = raw
        .ask(
            peer,
            LIGHTPUSH_V2,
            &PushRpc {
                request_id: "v2 ok".into(),
                request: Some(PushRequest {
                    pubsub_topic: topic.as_str().into(),
                    message: next.to_proto(),
                }),
                response: None,
            },
        )
        .await;
    assert_eq!(r.request_id, "v2 ok");
    let response = r.response.expect("a v2 response");
    assert!(response.is_success, "{response:?}");
    let got = tokio::time::timeout(Duration::from_secs(20), delivered.recv())
        .await
        .expect("the next message arrives")
        .unwrap();
    assert_eq!(
        got.message.payload().as_ref(),
        b"after",
        "only the good messages reached the far node, in order"
    );
    service.shutdown().await;
    far.shutdown().await;
}
