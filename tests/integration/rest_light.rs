//! The REST routes of the light protocols on loopback: `POST /lightpush/v3/message` through
//! another service (`peerAddr`) and through the node's own service, and the `/filter/v2`
//! routes: subscribe, messages, ping, unsubscribe, unsubscribe-all, each with its status.

use crate::common;

use std::time::Duration;

use common::http::Http;

use serde_json::{Value, json};
use wakurln::{
    clock::now_ns,
    node::{self, NodeConfig, NodeHandle},
    topics::StaticShard,
};

const CLUSTER: u16 = 46;

async fn serve(node: &NodeHandle) -> Http {
    Http::new(
        wakurln::rest::serve(node.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    )
}

async fn address(node: &NodeHandle) -> String {
    format!(
        "{}/p2p/{}",
        node.listen_addrs().await.unwrap()[0],
        node.peer_id()
    )
}

fn message(text: &str) -> Value {
    json!({
        "payload": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, text),
        "contentTopic": "/rest-light/1/chat/proto",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lightpush_and_filter_over_rest() {
    let dir = std::env::temp_dir().join(format!("wakurln-rest-light-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut service = NodeConfig::local(dir.join("service"), CLUSTER);
    service.filter = Some(wakurln::filter::Limits::default());
    let service = node::start(service).await.unwrap();
    let relay = node::start(NodeConfig::local(dir.join("relay"), CLUSTER))
        .await
        .unwrap();
    let light = node::start(NodeConfig::local(dir.join("light"), CLUSTER))
        .await
        .unwrap();
    let service_addr = address(&service).await;
    relay.dial(service_addr.parse().unwrap()).await.unwrap();
    let topic = StaticShard::new(CLUSTER, 0).pubsub_topic();
    for _ in 0..200 {
        if service.mesh_peers(topic.clone()).await.unwrap() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let api = serve(&light).await;
    let own = serve(&service).await;
    let mut at_relay = relay.delivered();
    // Filter before the light node knows any peer: nothing to ask.
    let (status, answer) = api
        .call_json("GET", "/filter/v2/subscriptions/r0", None)
        .await;
    assert_eq!(status, 400, "no filter peer connected: {answer}");

    // Lightpush through the service named by peerAddr, then through the node's own service.
    let q = format!("?peerAddr={service_addr}");
    let body = json!({"pubsubTopic": topic.as_str(), "message": message("via rest")});
    let (status, answer) = api
        .call_json(
            "POST",
            &format!("/lightpush/v3/message{q}"),
            Some(body.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    // The relay node, and the light node itself (our nodes relay too).
    assert!(answer["relayPeerCount"].as_u64().unwrap() >= 1, "{answer}");
    let d = tokio::time::timeout(Duration::from_secs(10), at_relay.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.message.payload().as_ref(), b"via rest");
    let body = json!({"message": message("own service")}); // autosharded
    let (status, answer) = own
        .call_json("POST", "/lightpush/v3/message", Some(body.to_string()))
        .await;
    // The content topic's shard of 8 is not shard 0, which is all this node serves.
    assert_eq!(status, 421, "{answer}");
    let body = json!({"pubsubTopic": topic.as_str(), "message": message("own service")});
    let (status, answer) = own
        .call_json("POST", "/lightpush/v3/message", Some(body.to_string()))
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, _) = api
        .call_json("POST", "/lightpush/v3/message", Some("{not json".into()))
        .await;
    assert_eq!(status, 400);

    // Filter: with no service named, the node asks a connected peer that serves filter (the
    // service, connected by the lightpush above), which knows no subscription yet.
    let sub = json!({"requestId": "r1", "pubsubTopic": topic.as_str(), "contentFilters": ["/rest-light/1/chat/proto"]});
    let (status, answer) = api
        .call_json("GET", "/filter/v2/subscriptions/r0", None)
        .await;
    assert_eq!(
        (status, answer["statusCode"].clone()),
        (404, json!(404)),
        "{answer}"
    );
    let (status, answer) = api
        .call_json(
            "POST",
            &format!("/filter/v2/subscriptions{q}"),
            Some(sub.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["requestId"], "r1");
    assert_eq!(answer["statusCode"], 200);
    let (status, answer) = api
        .call_json("GET", "/filter/v2/subscriptions/r2", None)
        .await;
    assert_eq!(
        (status, answer["statusCode"].clone()),
        (200, json!(200)),
        "ping"
    );
    let (status, answer) = api
        .call_json(
            "GET",
            "/filter/v2/messages/%2Frest-light%2F1%2Fchat%2Fproto",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer, json!([]));
    let m = wakurln::message::WakuMessage::builder(
        "/rest-light/1/chat/proto".parse().unwrap(),
        b"pushed".to_vec(),
    )
    .timestamp(now_ns())
    .build()
    .unwrap();
    relay.publish(topic.clone(), m).await.unwrap();
    let mut got = Value::Null;
    for _ in 0..100 {
        let (_, answer) = api
            .call_json(
                "GET",
                "/filter/v2/messages/%2Frest-light%2F1%2Fchat%2Fproto",
                None,
            )
            .await;
        if answer.as_array().is_some_and(|a| !a.is_empty()) {
            got = answer;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got[0]["payload"], "cHVzaGVk", "{got}"); // "pushed"
    let (status, answer) = api
        .call_json("DELETE", "/filter/v2/subscriptions", Some(sub.to_string()))
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, _) = api
        .call_json(
            "GET",
            "/filter/v2/messages/%2Frest-light%2F1%2Fchat%2Fproto",
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, answer) = api
        .call_json("GET", "/filter/v2/subscriptions/r3", None)
        .await;
    assert_eq!((status, answer["statusCode"].clone()), (404, json!(404)));
    let (status, _) = api
        .call_json(
            "DELETE",
            "/filter/v2/subscriptions/all",
            Some(json!({"requestId": "r4"}).to_string()),
        )
        .await;
    assert_eq!(status, 404);
    let too_many: Vec<String> = (0..101)
        .map(|i| format!("/rest-light/1/t{i}/proto"))
        .collect();
    let big = json!({"requestId": "r5", "pubsubTopic": topic.as_str(), "contentFilters": too_many});
    let (status, answer) = api
        .call_json("POST", "/filter/v2/subscriptions", Some(big.to_string()))
        .await;
    assert_eq!(status, 400, "{answer}");
    for n in [&light, &relay, &service] {
        n.shutdown().await;
    }
}
