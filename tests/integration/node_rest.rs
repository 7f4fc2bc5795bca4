//! The REST API of two RLN nodes on loopback against anvil: relay subscribe, publish with an
//! automatic proof, read back on the other node (static and auto-sharded routes), health,
//! peers, info, metrics and the OpenAPI description, and the 4xx answers bad requests get.

use crate::common;

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use common::{devnet::Devnet, http::Http};
use serde_json::json;
use wakurln::node;

const CLUSTER: u16 = 42;

fn encode(topic: &str) -> String {
    topic.replace('/', "%2F")
}

fn message(text: &str, content_topic: &str) -> String {
    json!({"payload": B64.encode(text), "contentTopic": content_topic}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_routes_health_peers_metrics_and_bad_requests() {
    let net = Devnet::start("rest", CLUSTER).await;
    let (keystore, _) = net.member("member", 3).await;
    let config = |name: &str, member: bool, peers: Vec<libp2p::Multiaddr>| {
        net.config(name, member.then_some(keystore.as_path()), &peers)
    };
    let b = node::start(config("b", false, vec![])).await.unwrap();
    b.wait_ready().await.unwrap();
    let b_addr = b.listen_addrs().await.unwrap()[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(b.peer_id()));
    let a = node::start(config("a", true, vec![b_addr])).await.unwrap();
    a.wait_ready().await.unwrap();
    let local = "127.0.0.1:0".parse().unwrap();
    let http = Http::new;
    let a_api = http(wakurln::rest::serve(a.clone(), local).await.unwrap());
    let b_api = http(wakurln::rest::serve(b.clone(), local).await.unwrap());

    // Health, info, version, openapi.
    let health = a_api.json("/health").await;
    assert_eq!(health["nodeHealth"], "READY");
    assert_eq!(health["rln"]["enforced"], true);
    assert_eq!(health["rln"]["members"], 1);
    assert_eq!(health["rln"]["membership"]["rateLimit"], 3);
    let info = b_api.json("/debug/v1/info").await;
    assert!(
        info["listenAddresses"][0]
            .as_str()
            .unwrap()
            .contains("/p2p/")
    );
    assert!(
        b_api.json("/openapi.json").await["paths"]["/relay/v1/messages/{pubsubTopic}"].is_object()
    );

    // Subscribe on B, wait for the mesh, publish on A without a proof (A proves it).
    let topic = format!("/waku/2/rs/{CLUSTER}/0");
    let (status, text) = b_api
        .call(
            "POST",
            "/relay/v1/subscriptions",
            Some(json!([topic]).to_string()),
        )
        .await;
    assert_eq!((status, text.as_str()), (200, "OK"));
    for _ in 0..100 {
        if a.mesh_peers(topic.parse().unwrap()).await.unwrap() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let content = "/rest-test/1/chat/proto";
    let (status, text) = a_api
        .call(
            "POST",
            &format!("/relay/v1/messages/{}", encode(&topic)),
            Some(message("hello over REST", content)),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let mut got = Vec::new();
    for _ in 0..100 {
        let batch = b_api
            .json(&format!("/relay/v1/messages/{}", encode(&topic)))
            .await;
        got.extend(batch.as_array().unwrap().clone());
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["payload"], B64.encode("hello over REST"));
    assert_eq!(got[0]["contentTopic"], content);

    // Auto-sharded: B subscribes to the content topic, A publishes by content topic only.
    let (status, _) = b_api
        .call(
            "POST",
            "/relay/v1/auto/subscriptions",
            Some(json!([content]).to_string()),
        )
        .await;
    assert_eq!(status, 200);
    // A relays that shard too, so the two form a mesh on it to wait for.
    let (status, _) = a_api
        .call(
            "POST",
            "/relay/v1/auto/subscriptions",
            Some(json!([content]).to_string()),
        )
        .await;
    assert_eq!(status, 200);
    let shard: wakurln::topics::ContentTopic = content.parse().unwrap();
    let shard = shard.autoshard(CLUSTER, 8).unwrap().pubsub_topic();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while a.mesh_peers(shard.clone()).await.unwrap() == 0
        || b.mesh_peers(shard.clone()).await.unwrap() == 0
    {
        assert!(std::time::Instant::now() < deadline, "no mesh on {shard}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, text) = a_api
        .call(
            "POST",
            "/relay/v1/auto/messages",
            Some(message("auto", content)),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let mut auto = Vec::new();
    for _ in 0..100 {
        let batch = b_api
            .json(&format!("/relay/v1/auto/messages/{}", encode(content)))
            .await;
        auto.extend(batch.as_array().unwrap().clone());
        if !auto.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(auto[0]["payload"], B64.encode("auto"));

    // Peers and metrics.
    let peers = b_api.json("/admin/v1/peers").await;
    assert_eq!(peers[0]["peerId"], a.peer_id().to_string());
    assert!(
        peers[0]["protocols"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/vac/waku/relay/2.0.0"),
        "{peers}"
    );
    let (status, metrics) = b_api.call("GET", "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("waku_rln_valid_messages_total_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("waku_rln_number_registered_memberships 1"),
        "{metrics}"
    );

    // Bad requests get a 4xx with a reason.
    let path = format!("/relay/v1/messages/{}", encode(&topic));
    for (body, needle) in [
        ("not json".to_owned(), "expected a message"),
        (
            json!({"payload": "***", "contentTopic": content}).to_string(),
            "base64",
        ),
        (
            json!({"payload": "", "contentTopic": "nonsense"}).to_string(),
            "contentTopic",
        ),
    ] {
        let (status, text) = a_api.call("POST", &path, Some(body)).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains(needle), "{text}");
    }
    let (status, _) = a_api
        .call(
            "POST",
            "/relay/v1/messages/%2Fwaku%2F2%2Frs%2Fx%2F0",
            Some(message("x", content)),
        )
        .await;
    assert_eq!(status, 400);
    let (status, text) = a_api
        .call("GET", "/relay/v1/messages/%2Fnot%2Fsubscribed", None)
        .await;
    assert_eq!(status, 404, "{text}");
    let (status, _) = a_api
        .call("POST", "/relay/v1/subscriptions", Some("[]".into()))
        .await;
    assert_eq!(status, 400);
    // The third message spends the budget of 3; the fourth is answered 429 with when it frees.
    let (status, _) = a_api
        .call("POST", &path, Some(message("third", content)))
        .await;
    assert_eq!(status, 200);
    let (status, text) = a_api
        .call("POST", &path, Some(message("fourth", content)))
        .await;
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("frees up in"), "{text}");
    // B has no membership: it cannot prove.
    let (status, text) = b_api
        .call("POST", &path, Some(message("from b", content)))
        .await;
    assert_eq!(status, 503, "{text}");
    a.shutdown().await;
    b.shutdown().await;
}
