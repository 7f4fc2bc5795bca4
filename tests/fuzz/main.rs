//! Fuzzing on stable Rust: every decoder that reads bytes from a peer, a REST caller or a file,
//! driven by raw random input and by mutations of valid encodings (proptest). No input may
//! panic, and what decodes must encode back to what decodes the same.
//!
//! `cargo test --test fuzz` runs each target with a small count (`FUZZ_CASES`, 256 by default);
//! `FUZZ_CASES=1000000 cargo test --release --test fuzz -- --test-threads 2` is the long run.
//! A failing case is printed minimised and kept in `tests/fuzz/main.proptest-regressions`.

#![allow(missing_docs)]

use std::{str::FromStr, sync::OnceLock};

use futures::io::Cursor;
use libp2p::PeerId;
use proptest::{collection::vec, prelude::*, test_runner::Config};
use prost::Message as _;
use wakurln::{
    codec::decode_frame,
    enr::Enr,
    filter::protocol as filter,
    lightpush,
    message::WakuMessage,
    metadata, peer_exchange, proto,
    relay::pipeline::{RlnRules, Validator},
    rln::{
        field::Fr,
        tree::RootWindow,
        verifier::decode_proof,
        waku::{Epoch, RlnProofBytes, RlnProofData, rln_identifier},
    },
    store::protocol as store,
    topics::{ContentTopic, PubsubTopic},
};

/// Cases per target: `FUZZ_CASES`, 256 by default.
fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
}

fn config() -> Config {
    Config {
        cases: cases(),
        // Shrinking a failure is worth it; rejecting inputs is not part of any target.
        max_shrink_iters: 4_096,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Random bytes, short ones more often.
fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![vec(any::<u8>(), 0..32), vec(any::<u8>(), 0..max)]
}

/// `seed` with up to 8 random bytes overwritten, inserted or removed: most stay close to a
/// valid encoding and so reach the deeper checks.
fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    vec((0..3u8, any::<usize>(), any::<u8>()), 0..8).prop_map(move |edits| {
        let mut out = seed.clone();
        for (kind, at, byte) in edits {
            let at = if out.is_empty() { 0 } else { at % out.len() };
            match kind {
                0 if !out.is_empty() => out[at] = byte,
                1 => out.insert(at, byte),
                _ if !out.is_empty() => {
                    out.remove(at);
                }
                _ => {}
            }
        }
        out
    })
}

/// A valid message with every field set, dated now, carrying a proof field that passes the
/// validator's cheap checks (its root is in the window), so mutations reach the later stages.
fn valid_message() -> WakuMessage {
    let now = wakurln::clock::now_ns();
    let epoch = Epoch::from_timestamp_ns(now, RlnRules::default().epoch_period);
    let data = RlnProofData {
        proof: [5u8; 128],
        merkle_root: Fr::from(7u64),
        epoch,
        share_x: Fr::from(11u64),
        share_y: Fr::from(13u64),
        nullifier: Fr::from(17u64),
        rln_identifier: rln_identifier(),
    };
    WakuMessage::builder(
        ContentTopic::from_str("/fuzz/1/seed/proto").unwrap(),
        b"a payload of some length".to_vec(),
    )
    .timestamp(now)
    .meta(b"meta".to_vec())
    .build()
    .unwrap()
    .with_rate_limit_proof(data.encode())
    .unwrap()
}

fn message_seed() -> Vec<u8> {
    valid_message().encode().to_vec()
}

/// The validator with RLN on and synced, its window holding one root.
fn validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| {
        let mut window = RootWindow::new(4);
        window.push(Fr::from(7u64));
        Validator::rln(
            RlnRules::default(),
            std::sync::Arc::new(std::sync::RwLock::new(window)),
        )
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn waku_message_and_the_validators_cheap_checks(
        raw in prop_oneof![bytes(4_096), mutated(message_seed())],
    ) {
        if let Ok(m) = WakuMessage::decode(&raw) {
            // What decodes re-encodes to something that decodes the same.
            let again = WakuMessage::decode(&m.encode()).expect("a re-encoded message decodes");
            prop_assert_eq!(again.hash("/waku/2/rs/1/0"), m.hash("/waku/2/rs/1/0"));
            let _ = m.signal_x();
        }
        let _ = validator().validate(&raw);
    }

    #[test]
    fn rln_proof_protobuf_layout_and_points(
        raw in prop_oneof![bytes(1_024), mutated(valid_message().rate_limit_proof().unwrap().to_vec())],
        layout in prop_oneof![vec(any::<u8>(), 288), bytes(600)],
        points in prop_oneof![vec(any::<u8>(), 128), bytes(200)],
    ) {
        if let Ok(d) = RlnProofData::decode(&raw) {
            prop_assert_eq!(RlnProofData::decode(&d.encode()).unwrap(), d);
        }
        if let Ok(l) = RlnProofBytes::from_bytes(&layout) {
            let _ = RlnProofData::from_rln_layout(&l, Epoch(1), rln_identifier());
        }
        let _ = decode_proof(&points);
    }

    #[test]
    fn enr_and_rlp(raw in prop_oneof![bytes(400), mutated(seed_enr())]) {
        if let Ok(enr) = Enr::decode(&raw) {
            let again = Enr::decode(enr.as_bytes()).expect("a re-encoded record decodes");
            prop_assert_eq!(again.as_bytes(), enr.as_bytes());
            let _ = enr.to_text();
        }
    }

    #[test]
    fn pubsub_and_content_topics(
        text in prop_oneof![
            "\\PC{0,80}",
            "/waku/2/rs/[0-9]{0,6}/[0-9]{0,6}",
            "/[a-z0-9]{0,8}/[0-9]{0,3}/[a-z0-9-]{0,12}/[a-z]{0,6}",
            "/[0-9]/[a-z]{0,4}/[0-9]{0,3}/[a-z]{0,6}/[a-z]{0,6}",
        ],
        cluster in any::<u16>(),
        shards in any::<u16>(),
    ) {
        if let Ok(t) = PubsubTopic::from_str(&text) {
            prop_assert_eq!(PubsubTopic::from_str(t.as_str()).unwrap(), t.clone());
            let _ = t.static_shard();
        }
        if let Ok(c) = ContentTopic::from_str(&text) {
            prop_assert_eq!(ContentTopic::from_str(c.as_str()).unwrap(), c.clone());
            let _ = c.autoshard(cluster, shards);
        }
    }

    #[test]
    fn store_requests_and_answers(raw in prop_oneof![bytes(2_048), mutated(seed_store())]) {
        if let Ok(req) = proto::store::StoreQueryRequest::decode(raw.as_slice())
            && let Ok(q) = store::query_of(&req)
        {
            let back = store::request_of(req.request_id.clone(), &q);
            prop_assert_eq!(store::query_of(&back).unwrap(), q);
        }
        if let Ok(res) = proto::store::StoreQueryResponse::decode(raw.as_slice()) {
            let _ = store::page_of(&res);
        }
        framed::<store::StoreCodec>(&raw, &store::PROTOCOL);
    }

    #[test]
    fn filter_requests_and_pushes(
        raw in prop_oneof![bytes(2_048), mutated(seed_filter())],
        cluster in any::<u16>(),
        shards in 0u16..1_100,
    ) {
        if let Ok(req) = proto::filter::FilterSubscribeRequest::decode(raw.as_slice()) {
            let _ = filter::parse(&req, cluster, shards);
        }
        if let Ok(push) = proto::filter::MessagePush::decode(raw.as_slice()) {
            let _ = WakuMessage::try_from(push.waku_message);
            let _ = PubsubTopic::from_str(&push.pubsub_topic);
        }
        framed::<filter::FilterCodec>(&raw, &filter::SUBSCRIBE_PROTOCOL);
    }

    #[test]
    fn lightpush_v3_and_v2_requests(raw in prop_oneof![bytes(2_048), mutated(seed_lightpush())]) {
        if let Ok(req) = proto::lightpush::LightpushRequest::decode(raw.as_slice()) {
            let _ = WakuMessage::try_from(req.message);
            if let Some(t) = req.pubsub_topic {
                let _ = PubsubTopic::from_str(&t);
            }
        }
        if let Ok(rpc) = proto::lightpush_v2::PushRpc::decode(raw.as_slice())
            && let Some(push) = rpc.request
        {
            let _ = WakuMessage::try_from(push.message);
            let _ = PubsubTopic::from_str(&push.pubsub_topic);
        }
        framed::<lightpush::LightpushCodec>(&raw, &lightpush::PROTOCOL);
        framed::<lightpush::LightpushV2Codec>(&raw, &lightpush::PROTOCOL_V2);
    }

    #[test]
    fn peer_exchange_requests_and_answers(raw in prop_oneof![bytes(2_048), mutated(seed_px())]) {
        if let Ok(rpc) = proto::peer_exchange::PeerExchangeRpc::decode(raw.as_slice()) {
            let _ = peer_exchange::records_of(&rpc);
            let _ = px_cache().answer(PeerId::random(), &rpc);
        }
        framed::<peer_exchange::PeerExchangeCodec>(&raw, &peer_exchange::PROTOCOL);
    }

    #[test]
    fn metadata_requests(raw in prop_oneof![bytes(1_024), mutated(seed_metadata())]) {
        framed::<metadata::MetadataCodec>(&raw, &metadata::PROTOCOL);
    }

    #[test]
    fn length_prefixed_frames(raw in prop_oneof![bytes(4_096), mutated(framed_seed())], max in 0usize..8_192) {
        if let Ok((_, used)) = decode_frame::<proto::store::StoreQueryRequest>(&raw, max) {
            // The frame's body was within the limit, and the frame within the input.
            prop_assert!(used <= raw.len() && used <= max + 10);
        }
        let mut cursor = Cursor::new(raw.clone());
        let read = futures::executor::block_on(wakurln::codec::read_frame(&mut cursor, max));
        if let Ok(Some(body)) = read {
            prop_assert!(body.len() <= max);
        }
    }

    #[test]
    fn keystore_files(raw in prop_oneof![bytes(2_048), mutated(seed_keystore())]) {
        let path = keystore_path();
        std::fs::write(&path, &raw).unwrap();
        if let Ok(store) = wakurln_keystore::Keystore::open(&path) {
            let _ = store.entries();
        }
    }
}

/// Reads `raw` as a request and as a response of `C` on a stream.
fn framed<C>(raw: &[u8], protocol: &libp2p::StreamProtocol)
where
    C: libp2p::request_response::Codec<Protocol = libp2p::StreamProtocol> + Default,
{
    let mut codec = C::default();
    let _ =
        futures::executor::block_on(codec.read_request(protocol, &mut Cursor::new(raw.to_vec())));
    let _ =
        futures::executor::block_on(codec.read_response(protocol, &mut Cursor::new(raw.to_vec())));
}

fn px_cache() -> &'static peer_exchange::Cache {
    static C: OnceLock<peer_exchange::Cache> = OnceLock::new();
    C.get_or_init(|| {
        let cache = peer_exchange::Cache::default();
        cache.learn(vec![Enr::decode(&seed_enr()).unwrap()]);
        cache
    })
}

fn seed_enr() -> Vec<u8> {
    let key = libp2p::identity::secp256k1::Keypair::generate();
    let content = wakurln::enr::Content {
        seq: 3,
        ip_tcp: Some(("192.0.2.1".parse().unwrap(), 60_000)),
        udp: Some(9_000),
        shards: Some((1, vec![0, 1, 7])),
        services: wakurln::enr::services::RELAY | wakurln::enr::services::STORE,
        multiaddrs: vec!["/ip4/192.0.2.1/tcp/8000/ws".parse().unwrap()],
    };
    Enr::sign(&key, &content).unwrap().as_bytes().to_vec()
}

fn seed_store() -> Vec<u8> {
    proto::store::StoreQueryRequest {
        request_id: "r".into(),
        include_data: true,
        pubsub_topic: Some("/waku/2/rs/1/0".into()),
        content_topics: vec!["/fuzz/1/seed/proto".into()],
        time_start: Some(1),
        time_end: Some(2),
        message_hashes: vec![vec![9u8; 32].into()],
        pagination_cursor: Some(vec![3u8; 32].into()),
        pagination_forward: Some(true),
        pagination_limit: Some(20),
    }
    .encode_to_vec()
}

fn seed_filter() -> Vec<u8> {
    proto::filter::FilterSubscribeRequest {
        request_id: "r".into(),
        filter_subscribe_type: 1,
        pubsub_topic: Some("/waku/2/rs/1/0".into()),
        content_topics: vec!["/fuzz/1/seed/proto".into()],
    }
    .encode_to_vec()
}

fn seed_lightpush() -> Vec<u8> {
    proto::lightpush::LightpushRequest {
        request_id: "r".into(),
        pubsub_topic: Some("/waku/2/rs/1/0".into()),
        message: valid_message().to_proto(),
    }
    .encode_to_vec()
}

fn seed_px() -> Vec<u8> {
    proto::peer_exchange::PeerExchangeRpc {
        query: proto::peer_exchange::PeerExchangeQuery { num_peers: Some(5) },
        response: Some(proto::peer_exchange::PeerExchangeResponse {
            peer_infos: vec![proto::peer_exchange::PeerInfo {
                enr: Some(seed_enr().into()),
            }],
            status_code: 200,
            status_desc: Some("OK".into()),
        }),
    }
    .encode_to_vec()
}

fn seed_metadata() -> Vec<u8> {
    let body = proto::metadata::WakuMetadataRequest {
        cluster_id: Some(1),
        shards: vec![0, 1, 2],
        shards_packed: vec![0, 1, 2],
    }
    .encode_to_vec();
    let mut out = Vec::new();
    prost::encoding::encode_varint(body.len() as u64, &mut out);
    out.extend(body);
    out
}

fn framed_seed() -> Vec<u8> {
    let body = seed_store();
    let mut out = Vec::new();
    prost::encoding::encode_varint(body.len() as u64, &mut out);
    out.extend(body);
    out
}

fn seed_keystore() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/keystore/nwaku_keystore.json");
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("missing {}: fuzzing needs ../shared ({e})", path.display()))
}

/// One scratch file per test thread.
fn keystore_path() -> std::path::PathBuf {
    thread_local! {
        static PATH: std::path::PathBuf = {
            let dir = std::env::temp_dir().join(format!("wakurln-fuzz-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            dir.join(format!("{:?}.json", std::thread::current().id()).replace(['(', ')'], ""))
        };
    }
    PATH.with(Clone::clone)
}

/// A node without RLN and its REST router, shared by the REST cases.
fn rest() -> &'static (tokio::runtime::Runtime, axum::Router) {
    static REST: OnceLock<(tokio::runtime::Runtime, axum::Router)> = OnceLock::new();
    REST.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let router = rt.block_on(async {
            let dir =
                std::env::temp_dir().join(format!("wakurln-fuzz-rest-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let node = wakurln::node::start(wakurln::node::NodeConfig::local(dir, 49))
                .await
                .unwrap();
            wakurln::rest::router(node)
        });
        (rt, router)
    })
}

const ROUTES: [&str; 14] = [
    "/health",
    "/debug/v1/info",
    "/admin/v1/peers",
    "/relay/v1/subscriptions",
    "/relay/v1/messages/{}",
    "/relay/v1/auto/subscriptions",
    "/relay/v1/auto/messages/{}",
    "/relay/v1/auto/messages",
    "/store/v3/messages",
    "/lightpush/v3/message",
    "/filter/v2/subscriptions",
    "/filter/v2/subscriptions/{}",
    "/filter/v2/messages/{}",
    "/filter/v2/unsubscribe-all",
];

const QUERY_KEYS: [&str; 9] = [
    "pubsubTopic",
    "contentTopics",
    "startTime",
    "endTime",
    "hashes",
    "cursor",
    "ascending",
    "pageSize",
    "includeData",
];

fn rest_body() -> impl Strategy<Value = Vec<u8>> {
    let message = serde_json::json!({
        "payload": "aGVsbG8=", "contentTopic": "/fuzz/1/rest/proto", "version": 0,
        "timestamp": 1, "meta": "bWV0YQ==", "ephemeral": false,
    });
    let push = serde_json::json!({"pubsubTopic": "/waku/2/rs/49/0", "message": message});
    let topics = serde_json::json!(["/waku/2/rs/49/0", "/fuzz/1/rest/proto"]);
    prop_oneof![
        bytes(512),
        mutated(message.to_string().into_bytes()),
        mutated(push.to_string().into_bytes()),
        mutated(topics.to_string().into_bytes()),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn rest_routes_and_extractors(
        method in prop_oneof![Just("GET"), Just("POST"), Just("DELETE")],
        route in 0..ROUTES.len(),
        segment in "[a-zA-Z0-9%/._-]{0,40}",
        query in vec((0..QUERY_KEYS.len(), "[a-zA-Z0-9%/._-]{0,24}"), 0..4),
        body in rest_body(),
    ) {
        use tower::ServiceExt;
        let path = ROUTES[route].replace("{}", &segment);
        let query: Vec<String> = query
            .into_iter()
            .map(|(k, v)| format!("{}={v}", QUERY_KEYS[k]))
            .collect();
        let uri = if query.is_empty() { path } else { format!("{path}?{}", query.join("&")) };
        let Ok(mut request) = axum::http::Request::builder()
            .method(method)
            .uri(&uri)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
        else {
            // Not a valid URI: no server ever sees it.
            return Ok(());
        };
        // What the server adds to every request: the caller's address.
        let caller: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
        request.extensions_mut().insert(axum::extract::ConnectInfo(caller));
        let (rt, router) = rest();
        let response = rt.block_on(router.clone().oneshot(request)).unwrap();
        let status = response.status().as_u16();
        // 5xx only for what a peer or the network did: a bad gateway, an unavailable
        // service, a timeout, or lightpush's "no peers to relay" (505), which the REST route
        // passes on as the lightpush status.
        prop_assert!(
            status < 500 || matches!(status, 502..=505),
            "{method} {uri}: {status}"
        );
    }
}
