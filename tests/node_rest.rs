//! The REST API of two RLN nodes on loopback against anvil: relay subscribe, publish with an
//! automatic proof, read back on the other node (static and auto-sharded routes), health,
//! peers, info, metrics and the OpenAPI description, and the 4xx answers bad requests get.

mod common;

use std::{str::FromStr, time::Duration};

use alloy::{primitives::U256, signers::local::PrivateKeySigner, transports::http::reqwest};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use common::{ANVIL_KEYS, anvil as start_anvil};
use serde_json::{Value, json};
use wakurln::{
    chain::{
        ChainClient, Endpoint,
        deploy::{self, Terms, Variant},
        membership,
    },
    credentials,
    node::{self, ChainConfig, MembershipConfig, NodeConfig, RlnConfig, validator::RlnRules},
    rln::identity::Identity,
};
use wakurln_keystore::{Kdf, Keystore};

const CLUSTER: u16 = 42;
const PASSWORD: &str = "rest test";

struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    async fn call(&self, method: &str, path: &str, body: Option<String>) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.client.get(&url),
            "POST" => self.client.post(&url),
            "DELETE" => self.client.delete(&url),
            _ => unreachable!(),
        };
        let req = match body {
            Some(b) => req.header("content-type", "application/json").body(b),
            None => req,
        };
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    async fn json(&self, path: &str) -> Value {
        let (status, text) = self.call("GET", path, None).await;
        assert_eq!(status, 200, "{path}: {text}");
        serde_json::from_str(&text).unwrap()
    }
}

fn encode(topic: &str) -> String {
    topic.replace('/', "%2F")
}

fn message(text: &str, content_topic: &str) -> String {
    json!({"payload": B64.encode(text), "contentTopic": content_topic}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_routes_health_peers_metrics_and_bad_requests() {
    let anvil = start_anvil(&[]);
    let dir = std::env::temp_dir().join(format!("wakurln-rest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let signer = PrivateKeySigner::from_str(ANVIL_KEYS[0]).unwrap();
    let d = deploy::deploy(
        &Endpoint(anvil.url.clone()),
        signer.clone(),
        Terms {
            min_rate_limit: 1,
            ..Terms::waku_network(U256::ZERO)
        },
        Variant::Standard,
        &[],
        U256::ZERO,
    )
    .await
    .unwrap();
    let client = ChainClient::connect(
        &[Endpoint(anvil.url.clone())],
        d.contract,
        None,
        Some(signer),
    )
    .await
    .unwrap();
    let identity = Identity::generate();
    let plan = membership::plan_register(&client, identity.commitment, 3)
        .await
        .unwrap();
    let r = membership::register(&client, &plan).await.unwrap();
    let keystore = dir.join("keystore.json");
    Keystore::add(
        &keystore,
        &credentials::registered(&identity, &client, r.index, 3),
        PASSWORD.as_bytes(),
        Kdf::default(),
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    let circuit_dir = common::shared_file("circuits/waku-rln-v2/README.md")
        .parent()
        .unwrap()
        .to_path_buf();
    let config = |name: &str, member: bool, peers: Vec<libp2p::Multiaddr>| {
        let mut c = NodeConfig::local(dir.join(name), CLUSTER);
        c.static_peers = peers;
        c.rln = Some(RlnConfig {
            rules: RlnRules {
                epoch_period: 86_400,
                max_clock_drift: Duration::from_secs(20),
            },
            root_window: 50,
            chain: ChainConfig {
                rpc: vec![Endpoint(anvil.url.clone())],
                contract: d.contract,
                chain_id: None,
                poll_interval: Duration::from_millis(250),
                follow_distance: 0,
            },
            lending: None,
            membership: member.then(|| MembershipConfig {
                keystore: keystore.clone(),
                key: None,
                password: PASSWORD.to_owned().into(),
                circuit_dir: circuit_dir.clone(),
            }),
        });
        c
    };
    let b = node::start(config("b", false, vec![])).await.unwrap();
    b.wait_ready().await.unwrap();
    let b_addr = b.listen_addrs().await.unwrap()[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(b.peer_id()));
    let a = node::start(config("a", true, vec![b_addr])).await.unwrap();
    a.wait_ready().await.unwrap();
    let local = "127.0.0.1:0".parse().unwrap();
    let http = |bound: std::net::SocketAddr| Http {
        base: format!("http://{bound}"),
        client: reqwest::Client::new(),
    };
    let a_api = http(node::rest::serve(a.clone(), local).await.unwrap());
    let b_api = http(node::rest::serve(b.clone(), local).await.unwrap());

    // Health, info, version, openapi.
    let health = a_api.json("/health").await;
    assert_eq!(health["nodeHealth"], "Ready");
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
    tokio::time::sleep(Duration::from_secs(2)).await;
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
            .any(|p| p["protocol"] == "/vac/waku/relay/2.0.0"),
        "{peers}"
    );
    let (status, metrics) = b_api.call("GET", "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("waku_rln_valid_messages_total 2"),
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
