//! The REST API's guard with a real HTTP client: reads stay open, writes and reads with side
//! effects need the admin token, requests addressed to a foreign host name are refused (DNS
//! rebinding), and a request stuck on a silent `peerAddr` is answered 504 in time while the
//! node goes on serving.

use std::time::{Duration, Instant};

use alloy::transports::http::reqwest;
use wakurln::{
    node::{self, NodeConfig},
    rest::Access,
    topics::StaticShard,
};

const CLUSTER: u16 = 47;
const TOKEN: &str = "s3cret admin token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_the_token_foreign_hosts_are_refused_and_slow_requests_time_out() {
    let dir = std::env::temp_dir().join(format!("wakurln-rest-access-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let node = node::start(NodeConfig::local(dir.join("node"), CLUSTER))
        .await
        .unwrap();
    let mut access = Access::for_address("127.0.0.1".parse().unwrap(), &[]);
    access.admin_token = Some(TOKEN.to_owned());
    access.timeout = Duration::from_secs(2);
    let bound = wakurln::rest::serve_with(node.clone(), "127.0.0.1:0".parse().unwrap(), access)
        .await
        .unwrap();
    let base = format!("http://{bound}");
    let client = reqwest::Client::new();
    let status = |r: reqwest::Response| r.status().as_u16();

    // Reads without side effects are open.
    let r = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(status(r), 200);
    let r = client
        .get(format!("{base}/admin/v1/peers"))
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 200);

    // A write without the token, or with another one, is refused and changes nothing.
    // The node relays shard 0; the REST caller asks for shard 3 as well.
    let topic = StaticShard::new(CLUSTER, 3).pubsub_topic();
    let body = serde_json::json!([topic.as_str()]).to_string();
    let subscribe = |token: Option<&str>| {
        let mut r = client
            .post(format!("{base}/relay/v1/subscriptions"))
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let r = subscribe(None).await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(status(r), 401);
    assert_eq!(status(subscribe(Some("guess")).await.unwrap()), 401);
    assert!(
        !node.topics().await.unwrap().contains(&topic),
        "nothing subscribed"
    );
    assert_eq!(status(subscribe(Some(TOKEN)).await.unwrap()), 200);
    assert!(node.topics().await.unwrap().contains(&topic));

    // Reading the message cache hands it out, so it needs the token too.
    let messages = format!(
        "{base}/relay/v1/messages/{}",
        topic.as_str().replace('/', "%2F")
    );
    let r = client.get(&messages).send().await.unwrap();
    assert_eq!(status(r), 401);
    let r = client
        .get(&messages)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 200);

    // DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own host name.
    let r = client
        .get(format!("{base}/health"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 403);
    let r = client
        .get(format!("{base}/health"))
        .header("host", format!("localhost:{}", bound.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 200);

    // A peer that accepts connections and never answers: the store query through it is
    // answered 504 when the time limit passes, not when the peer gives up.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let stranger = libp2p::PeerId::random();
    let started = Instant::now();
    let r = client
        .get(format!(
            "{base}/store/v3/messages?peerAddr=/ip4/127.0.0.1/tcp/{silent_port}/p2p/{stranger}"
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 504);
    let text = r.text().await.unwrap();
    assert!(text.contains("longer than 2 s"), "{text}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(8),
        "answered after {waited:?}"
    );
    let r = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(status(r), 200, "the node serves on");
    node.shutdown().await;
}
