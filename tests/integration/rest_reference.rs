//! The REST API with the reference node's bodies, as its clients read them: `/health` (200 with
//! the state, connectionStatus, 13 protocol entries), `/info` and `/version`, relay messages
//! (default content topic, timestamp 0 meaning now, the client's `proof` read and written),
//! store defaults (no data, oldest first, requestId, absent fields left out, empty parameters
//! ignored, a connected store node used when the node keeps no archive), filter without
//! peerAddr, the admin peer, filter and log-level routes, the legacy lightpush route; then every
//! route of our OpenAPI document answers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde_json::{Value, json};
use wakurln::{
    lightpush::lending::LendingRules,
    node::{NodeHandle, StoreConfig},
    store::Retention,
};

use crate::common::{
    devnet::{Devnet, address, start},
    http::Http,
};

const CLUSTER: u16 = 43;

fn encode(topic: &str) -> String {
    topic.replace('/', "%2F")
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn serve(node: &NodeHandle) -> Http {
    Http::new(
        wakurln::rest::serve(node.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_bodies_as_the_reference_nodes_clients_expect() {
    // A logger this test can change the level of; at warnings, so other tests stay quiet.
    wakurln::logging::init("warn", false);
    let net = Devnet::start("rest-ref", CLUSTER).await;
    let (ka, _) = net.member("a", 10).await;
    let (pool, _) = net.member("pool", 10).await;
    let b = start(net.config("b", None, &[])).await;
    let mut ca = net.config("a", Some(&ka), &[address(&b).await]);
    ca.store = Some(StoreConfig {
        backend: wakurln::store::Backend::Sqlite(net.dir.join("a-archive.sqlite")),
        retention: Retention::default(),
        retention_interval: Duration::from_secs(60),
        sync: None,
    });
    ca.filter = Some(wakurln::filter::Limits::default());
    Devnet::lend_from(
        &mut ca,
        &pool,
        LendingRules {
            per_client_quota: 10,
            reserve: 0,
        },
    );
    let a = start(ca).await;
    let (a_api, b_api) = (serve(&a).await, serve(&b).await);
    let topic = format!("/waku/2/rs/{CLUSTER}/0");
    let path = format!("/relay/v1/messages/{}", encode(&topic));
    wait_for("the mesh", async || {
        a.mesh_peers(topic.parse().unwrap()).await.unwrap() >= 1
            && b.mesh_peers(topic.parse().unwrap()).await.unwrap() >= 1
    })
    .await;
    // The mesh can form before identify and metadata have told each node the other's
    // protocols and shards, which is what the health report counts.
    wait_for("identify and metadata from the other node", async || {
        let knows = |peers: Vec<wakurln::node::PeerInfo>, protocol: &str| {
            peers.iter().any(|p| {
                p.shards.contains(&0)
                    && p.protocols
                        .iter()
                        .any(|x| x.starts_with("/vac/waku/relay/"))
                    && p.protocols.iter().any(|x| x.starts_with(protocol))
            })
        };
        knows(a.peers().await.unwrap(), "/vac/waku/relay/")
            && knows(b.peers().await.unwrap(), "/vac/waku/store-query/")
    })
    .await;

    // Health: 200 with the state; one entry per protocol, named as the reference node names
    // them.
    let (status, health) = a_api.call_json("GET", "/health", None).await;
    assert_eq!(status, 200);
    assert_eq!(health["nodeHealth"], "READY", "{health}");
    assert_eq!(health["connectionStatus"], "Connected", "{health}");
    let protocols = health["protocolsHealth"].as_array().unwrap();
    assert_eq!(protocols.len(), 13, "{health}");
    assert_eq!(protocols[0], json!({"Relay": "READY"}));
    assert_eq!(protocols[1], json!({"Rln Relay": "READY"}));
    assert!(protocols.contains(&json!({"Store": "READY"})));
    assert!(protocols.contains(&json!({"Rendezvous": "NOT_MOUNTED"})));
    let (_, b_health) = b_api.call_json("GET", "/health", None).await;
    let store_client = b_health["protocolsHealth"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p.get("Store Client").is_some())
        .cloned()
        .unwrap();
    assert_eq!(store_client["Store Client"], "READY", "{b_health}");

    // /version is text; /info lists addresses and the peer id.
    let (status, version) = a_api.call("GET", "/version", None).await;
    assert_eq!(status, 200);
    assert!(version.starts_with("wakurln-v"), "{version}");
    let info = a_api.json("/info").await;
    assert_eq!(info["peerId"], a.peer_id().to_string());

    // Relay: no contentTopic and no timestamp; the node proves it; the reader gets the default
    // content topic, the time of publishing and the proof.
    let (status, _) = b_api
        .call(
            "POST",
            "/relay/v1/subscriptions",
            Some(json!([topic]).to_string()),
        )
        .await;
    assert_eq!(status, 200);
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let (status, text) = a_api
        .call(
            "POST",
            &path,
            Some(json!({"payload": B64.encode("one")}).to_string()),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = a_api
        .call(
            "POST",
            &path,
            Some(json!({"payload": B64.encode("two"), "timestamp": 0, "contentTopic": "/ref/1/two/proto"}).to_string()),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let mut got: Vec<Value> = Vec::new();
    wait_for("two messages at b", async || {
        got.extend(b_api.json(&path).await.as_array().unwrap().clone());
        got.len() >= 2
    })
    .await;
    let one = got
        .iter()
        .find(|m| m["payload"] == B64.encode("one"))
        .unwrap();
    assert_eq!(one["contentTopic"], "/waku/2/default-content/proto");
    assert!(one["timestamp"].as_i64().unwrap() >= before, "{one}");
    assert_eq!(one["version"], 0);
    assert_eq!(one["ephemeral"], false);
    assert!(one.get("meta").is_none(), "{one}");
    let proof = B64
        .decode(one["proof"].as_str().expect("the proof is written"))
        .unwrap();
    assert!(proof.len() > 100, "an RLN proof");
    let two = got
        .iter()
        .find(|m| m["payload"] == B64.encode("two"))
        .unwrap();
    assert!(
        two["timestamp"].as_i64().unwrap() >= before,
        "timestamp 0 is now: {two}"
    );
    // A client's proof is read: on a node without membership, a proof that does not match
    // the message is refused by validation (without one, the node could not prove: 503).
    let mut forged = one.clone();
    forged["payload"] = json!(B64.encode("not what was proved"));
    let (status, text) = b_api.call("POST", &path, Some(forged.to_string())).await;
    assert_eq!(status, 400, "{text}");
    let (status, _) = b_api
        .call(
            "POST",
            &path,
            Some(json!({"payload": B64.encode("x")}).to_string()),
        )
        .await;
    assert_eq!(status, 503);

    // Store: the reference node's defaults.
    wait_for("a's archive", async || {
        a.local_store_query(wakurln::store::Query::default())
            .await
            .is_ok_and(|p| p.entries.len() >= 2)
    })
    .await;
    let page = a_api
        .json("/store/v3/messages?pubsubTopic=&contentTopics=&cursor=&pageSize=")
        .await;
    assert!(!page["requestId"].as_str().unwrap().is_empty(), "{page}");
    assert_eq!(page["statusCode"], 200);
    assert!(page.get("paginationCursor").is_none(), "{page}");
    let entries = page["messages"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{page}");
    assert!(
        entries[0].get("message").is_none(),
        "includeData defaults to false"
    );
    assert!(entries[0].get("pubsubTopic").is_none());
    let full = a_api.json("/store/v3/messages?includeData=true").await;
    let texts: Vec<&Value> = full["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["message"]["payload"])
        .collect();
    assert_eq!(
        texts,
        [&json!(B64.encode("one")), &json!(B64.encode("two"))],
        "oldest first"
    );
    assert_eq!(full["messages"][0]["pubsubTopic"], topic);
    let newest = a_api
        .json("/store/v3/messages?includeData=true&ascending=false&pageSize=1")
        .await;
    assert_eq!(
        newest["messages"][0]["message"]["payload"],
        B64.encode("two")
    );
    assert!(newest["paginationCursor"].is_string(), "{newest}");
    // B keeps no archive: its REST store query goes to the connected store node, A.
    let via = b_api.json("/store/v3/messages").await;
    assert_eq!(via["messages"].as_array().unwrap().len(), 2, "{via}");

    // Admin: WakuPeer entries, per-shard lists, one peer, connecting, log level.
    let peers = b_api.json("/admin/v1/peers").await;
    let entry = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peerId"] == a.peer_id().to_string())
        .cloned()
        .unwrap();
    assert_eq!(entry["connected"], "Connected");
    assert_eq!(
        entry["origin"], "UnknownOrigin",
        "a dialled b: inbound for b"
    );
    assert!(
        entry["agent"].as_str().unwrap().starts_with("wakurln/"),
        "{entry}"
    );
    assert!(
        entry["protocols"]
            .as_array()
            .unwrap()
            .contains(&json!("/vac/waku/relay/2.0.0")),
        "{entry}"
    );
    assert!(
        entry["multiaddr"]
            .as_str()
            .unwrap()
            .ends_with(&a.peer_id().to_string())
    );
    let a_peers = a_api.json("/admin/v1/peers").await;
    assert_eq!(a_peers[0]["origin"], "Static", "{a_peers}");
    let relay = a_api.json("/admin/v1/peers/relay").await;
    assert_eq!(relay[0]["shard"], 0);
    assert_eq!(
        relay[0]["peers"][0]["peerId"],
        b.peer_id().to_string(),
        "{relay}"
    );
    let mesh = a_api.json("/admin/v1/peers/mesh/on/0").await;
    assert_eq!(mesh["peers"].as_array().unwrap().len(), 1, "{mesh}");
    let one_peer = a_api.json(&format!("/admin/v1/peer/{}", b.peer_id())).await;
    assert_eq!(one_peer["peerId"], b.peer_id().to_string());
    let (status, _) = a_api
        .call(
            "GET",
            &format!("/admin/v1/peer/{}", libp2p::PeerId::random()),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let stats = a_api.json("/admin/v1/peers/stats").await;
    assert_eq!(stats["By Connectedness"]["Connected"], 1, "{stats}");
    let (status, text) = b_api
        .call(
            "POST",
            "/admin/v1/peers",
            Some(json!([address(&a).await.to_string()]).to_string()),
        )
        .await;
    assert_eq!((status, text.as_str()), (200, "OK"));
    let (status, _) = b_api
        .call(
            "POST",
            "/admin/v1/peers",
            Some(json!(["nonsense"]).to_string()),
        )
        .await;
    assert_eq!(status, 400);
    let (status, text) = a_api.call("POST", "/admin/v1/log-level/DEBUG", None).await;
    assert_eq!(status, 200, "{text}");
    let (status, _) = a_api.call("POST", "/admin/v1/log-level/LOUD", None).await;
    assert_eq!(status, 400);
    let (status, _) = a_api.call("POST", "/admin/v1/log-level/WARN", None).await;
    assert_eq!(status, 200);

    // Filter without peerAddr: B picks a connected filter service (A), which lists it.
    let (status, text) = b_api
        .call(
            "POST",
            "/filter/v2/subscriptions",
            Some(json!({"requestId": "s1", "pubsubTopic": topic, "contentFilters": ["/ref/1/filtered/proto"]}).to_string()),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let subs = a_api.json("/admin/v1/filter/subscriptions").await;
    assert_eq!(subs[0]["peerId"], b.peer_id().to_string(), "{subs}");
    assert_eq!(
        subs[0]["filterCriteria"][0],
        json!({"pubsubTopic": topic, "contentTopic": "/ref/1/filtered/proto"})
    );

    // The legacy lightpush route: text answers; A lends the proof.
    let push = json!({"pubsubTopic": topic, "message": {"payload": B64.encode("legacy"), "contentTopic": "/ref/1/legacy/proto"}});
    let (status, text) = a_api
        .call("POST", "/lightpush/v1/message", Some(push.to_string()))
        .await;
    assert_eq!((status, text.as_str()), (200, "OK"));
    let bad = json!({"pubsubTopic": "/waku/2/rs/999/0", "message": {"payload": B64.encode("x")}});
    let (status, text) = a_api
        .call("POST", "/lightpush/v1/message", Some(bad.to_string()))
        .await;
    assert!(status >= 400 && !text.starts_with('{'), "{status} {text}");

    // Every route of the OpenAPI document answers (a 4xx of the handler counts; a missing
    // route or method does not).
    let doc = a_api.json("/openapi.json").await;
    let mut checked = 0;
    for (route, methods) in doc["paths"].as_object().unwrap() {
        let concrete = route
            .replace("{pubsubTopic}", &encode(&topic))
            .replace("{contentTopic}", &encode("/ref/1/two/proto"))
            .replace("{requestId}", "r1")
            .replace("{peerId}", &b.peer_id().to_string())
            .replace("{shardId}", "0")
            .replace("{logLevel}", "WARN");
        for method in methods.as_object().unwrap().keys() {
            let (status, text) = a_api
                .call(&method.to_uppercase(), &concrete, Some("{}".into()))
                .await;
            assert!(
                status != 405 && !(status == 404 && text.is_empty()),
                "{method} {route} is not served: {status}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked} routes");
    a.shutdown().await;
    b.shutdown().await;
}
