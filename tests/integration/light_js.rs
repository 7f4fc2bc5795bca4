//! Interop with the JS light client from npm (`@waku/sdk` 0.0.36 under Node 20, driven by
//! `tests/js/light_client.mjs`) against wakurln service nodes on loopback:
//!
//! - on an RLN network (real anvil, real circuit keys), the JS client dials our service node
//!   over WebSockets with mplex (its default stack) and light-pushes a message without a
//!   proof; the service lends a proof from its pool and a second wakurln node receives the
//!   message with a proof that its own validator accepted;
//! - it subscribes through filter and receives a message published at the other node;
//! - it pages through 250 archived messages of a store node over TCP with yamux, newest first
//!   and oldest first, 100 at a time;
//! - its peer-exchange discovery, pointed at one wakurln node, finds a store node one hop
//!   further from the signed record our node hands out, and connects to it.

use crate::common;

use std::{process::Stdio, str::FromStr, time::Duration};

use common::devnet::{self, Devnet};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};
use wakurln::{
    clock::now_ns,
    lightpush::lending::LendingRules,
    message::WakuMessage,
    node::{self, NodeConfig, NodeEvent, NodeHandle, StoreConfig},
    store::Retention,
    topics::{ContentTopic, StaticShard},
};

const CLUSTER: u16 = 66;

/// A running `light_client.mjs`: its JSON lines as they come.
struct JsClient {
    child: Child,
    lines: mpsc::Receiver<Value>,
    command: String,
}

impl JsClient {
    fn spawn(args: &[&str]) -> Self {
        let js = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js");
        assert!(
            js.join("node_modules/@waku/sdk").is_dir(),
            "tests/js/node_modules/@waku/sdk is missing: run `scripts/test`, which installs \
             tests/js's npm packages"
        );
        let mut child = Command::new("node")
            .args(["--import", "./polyfill.mjs", "light_client.mjs"])
            .args(args)
            .current_dir(&js)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `node` ({e}): install Node.js 20"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel(1_024);
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("the JS client wrote a non-JSON line {line:?}: {e}")
                });
                if tx.send(value).await.is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            lines,
            command: args[0].to_owned(),
        }
    }

    /// The next line, failing the test on an error line or after `within`.
    async fn next(&mut self, within: Duration) -> Value {
        let line = tokio::time::timeout(within, self.lines.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("the JS {} client said nothing for {within:?}", self.command)
            })
            .unwrap_or_else(|| panic!("the JS {} client exited early", self.command));
        assert_ne!(
            line["event"], "error",
            "the JS {} client failed: {line}",
            self.command
        );
        line
    }

    /// Waits for the process to exit and returns its code.
    async fn exit_code(mut self) -> i32 {
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("the JS client exits")
            .unwrap();
        status.code().unwrap_or(-1)
    }
}

async fn ws_address(node: &NodeHandle) -> String {
    let ws = node
        .listen_addrs()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.to_string().ends_with("/ws"))
        .expect("the service listens on WebSockets");
    format!("{ws}/p2p/{}", node.peer_id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_light_client_pushes_with_a_lent_proof_and_receives_through_filter() {
    let net = Devnet::start("light-js", CLUSTER).await;
    let (pool, _) = net.member("pool", 5).await;
    let (relay_key, _) = net.member("relay", 10).await;
    let mut service = net.config("service", None, &[]);
    service
        .listen
        .push("/ip4/127.0.0.1/tcp/0/ws".parse().unwrap());
    service.filter = Some(wakurln::filter::Limits::default());
    Devnet::lend_from(
        &mut service,
        &pool,
        LendingRules {
            per_client_quota: 2,
            reserve: 0,
        },
    );
    let service = devnet::start(service).await;
    let service_tcp = devnet::address(&service).await;
    let relay = devnet::start(net.config(
        "relay",
        Some(&relay_key),
        std::slice::from_ref(&service_tcp),
    ))
    .await;
    let topic = StaticShard::new(CLUSTER, 0).pubsub_topic();
    for _ in 0..200 {
        if service.mesh_peers(topic.clone()).await.unwrap() >= 1
            && relay.mesh_peers(topic.clone()).await.unwrap() >= 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let peer = ws_address(&service).await;
    let content = "/light-js/1/chat/proto";
    let common = ["--peer", peer.as_str(), "--cluster", "66", "--shard", "0"];

    // Lightpush without a proof: the service lends one and the relay node validates it.
    let mut delivered = relay.delivered();
    let mut events = relay.events();
    let mut args = vec![
        "lightpush",
        "--content-topic",
        content,
        "--payload-hex",
        "6c656e74",
    ];
    args.extend(common);
    let mut push = JsClient::spawn(&args);
    let pushed = push.next(Duration::from_secs(60)).await;
    assert_eq!(pushed["event"], "pushed");
    assert_eq!(pushed["ok"], true, "{pushed}");
    assert_eq!(push.exit_code().await, 0);
    let d = tokio::time::timeout(Duration::from_secs(20), delivered.recv())
        .await
        .expect("the lent message reaches the second node")
        .unwrap();
    assert_eq!(d.message.payload().as_ref(), b"lent");
    assert!(
        d.message.rate_limit_proof().is_some(),
        "it carries the lent proof"
    );
    let verdict = loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
            Ok(Ok(NodeEvent::Validated { hash, verdict, .. })) if hash == Some(d.hash) => {
                break verdict;
            }
            Ok(_) => {}
            Err(_) => panic!("the relay node validated nothing"),
        }
    };
    assert_eq!(
        verdict, "valid",
        "the relay node's RLN validator accepted the lent proof"
    );
    let metrics = service.metrics().encode();
    assert!(
        metrics.contains("waku_rln_lent_proofs_total{membership=\"0\"} 1"),
        "{metrics}"
    );

    // A client (one run of the JS client is one peer) may take 2 lent proofs per epoch; its
    // third push is refused with 429.
    let mut args = vec![
        "lightpush",
        "--content-topic",
        content,
        "--payload-hex",
        "6d6f7265",
        "--count",
        "3",
    ];
    args.extend(common);
    let mut push = JsClient::spawn(&args);
    for _ in 0..2 {
        let ok = push.next(Duration::from_secs(60)).await;
        assert_eq!(ok["ok"], true, "{ok}");
    }
    let refused = push.next(Duration::from_secs(60)).await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["failures"][0]["status_code"], 429, "{refused}");
    assert_eq!(push.exit_code().await, 1);

    // Filter: the JS client subscribes at the service and gets what the relay node publishes.
    let mut args = vec![
        "filter",
        "--content-topic",
        content,
        "--expect",
        "2",
        "--timeout-ms",
        "30000",
    ];
    args.extend(common);
    let mut filter = JsClient::spawn(&args);
    let subscribed = filter.next(Duration::from_secs(60)).await;
    assert_eq!(subscribed["event"], "subscribed", "{subscribed}");
    assert_eq!(service.filter_service().unwrap().subscriber_count(), 1);
    let ct = ContentTopic::from_str(content).unwrap();
    for text in ["first", "second"] {
        let m = WakuMessage::builder(ct.clone(), text.as_bytes().to_vec())
            .timestamp(now_ns())
            .build()
            .unwrap();
        relay.publish(topic.clone(), m).await.unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = filter.next(Duration::from_secs(30)).await;
        assert_eq!(m["event"], "message", "{m}");
        assert_eq!(m["content_topic"], content);
        assert_eq!(m["pubsub_topic"], topic.as_str());
        got.push(hex::decode(m["payload_hex"].as_str().unwrap()).unwrap());
    }
    assert_eq!(got, [b"first".to_vec(), b"second".to_vec()]);
    let done = filter.next(Duration::from_secs(30)).await;
    assert_eq!(done["event"], "unsubscribed");
    assert_eq!(filter.exit_code().await, 0);
    for _ in 0..50 {
        if service.filter_service().unwrap().subscriber_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        service.filter_service().unwrap().subscriber_count(),
        0,
        "unsubscribed"
    );
    relay.shutdown().await;
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_light_client_pages_through_250_stored_messages() {
    let dir = std::env::temp_dir().join(format!("wakurln-light-js-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut store = NodeConfig::local(dir.join("store"), CLUSTER);
    store.store = Some(StoreConfig {
        backend: wakurln::store::Backend::Sqlite(dir.join("store/archive.sqlite")),
        retention: Retention::default(),
        retention_interval: Duration::from_secs(3600),
        sync: None,
    });
    let store = node::start(store).await.unwrap();
    let content = "/light-js/1/archive/proto";
    let ct = ContentTopic::from_str(content).unwrap();
    let topic = StaticShard::new(CLUSTER, 0).pubsub_topic();
    let start = now_ns();
    let mut archived = store.delivered();
    for i in 0..250i64 {
        let m = WakuMessage::builder(ct.clone(), format!("m{i:03}").into_bytes())
            .timestamp(start + i * 1_000_000)
            .build()
            .unwrap();
        store.publish(topic.clone(), m).await.unwrap();
    }
    for _ in 0..250 {
        archived.recv().await.unwrap();
    }
    // Nothing to wait for: a store node commits a message before it is delivered.
    let tcp = format!(
        "{}/p2p/{}",
        store.listen_addrs().await.unwrap()[0],
        store.peer_id()
    );
    let expected: Vec<String> = (0..250).map(|i| hex::encode(format!("m{i:03}"))).collect();

    for forward in [false, true] {
        let mut args = vec![
            "store",
            "--content-topic",
            content,
            "--page-size",
            "100",
            "--peer",
            &tcp,
            "--cluster",
            "66",
            "--shard",
            "0",
        ];
        if forward {
            args.push("--forward");
        }
        let mut client = JsClient::spawn(&args);
        let mut sizes = Vec::new();
        let done = loop {
            let line = client.next(Duration::from_secs(60)).await;
            match line["event"].as_str() {
                Some("page") => sizes.push(line["size"].as_u64().unwrap()),
                Some("done") => break line,
                other => panic!("unexpected line {other:?}: {line}"),
            }
        };
        assert_eq!(client.exit_code().await, 0);
        // Every page the client was handed counts: an empty trailing page would mean the node
        // handed out a cursor with nothing after it.
        assert_eq!(sizes, [100, 100, 50], "forward={forward}");
        assert_eq!(done["count"], 250);
        let payloads: Vec<String> = done["payloads_hex"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect();
        // Pages are in time order; backward paging takes the newest page first.
        let mut want = Vec::new();
        if forward {
            want.extend(expected.iter().cloned());
        } else {
            for range in [150..250, 50..150, 0..50] {
                want.extend(expected[range].iter().cloned());
            }
        }
        assert_eq!(payloads, want, "forward={forward}");
    }
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_light_client_finds_a_store_node_through_peer_exchange() {
    let dir = std::env::temp_dir().join(format!("wakurln-light-js-px-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut service = NodeConfig::local(dir.join("service"), CLUSTER);
    service.store = Some(StoreConfig {
        backend: wakurln::store::Backend::Sqlite(dir.join("service/archive.sqlite")),
        retention: Retention::default(),
        retention_interval: Duration::from_secs(3600),
        sync: None,
    });
    service.peer_exchange = true;
    let service = node::start(service).await.unwrap();
    let mut hub = NodeConfig::local(dir.join("hub"), CLUSTER);
    hub.peer_exchange = true;
    let hub = node::start(hub).await.unwrap();
    let service_tcp = format!(
        "{}/p2p/{}",
        service.listen_addrs().await.unwrap()[0],
        service.peer_id()
    );
    hub.dial(service_tcp.parse().unwrap()).await.unwrap();
    for _ in 0..100 {
        if hub
            .known_records()
            .iter()
            .any(|r| r.peer_id() == service.peer_id())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hub_tcp = format!(
        "{}/p2p/{}",
        hub.listen_addrs().await.unwrap()[0],
        hub.peer_id()
    );
    let expected = service.peer_id().to_string();
    let mut client = JsClient::spawn(&[
        "discover",
        "--peer",
        &hub_tcp,
        "--expect-peer",
        &expected,
        "--cluster",
        "66",
    ]);
    let found = client.next(Duration::from_secs(60)).await;
    assert_eq!(found["event"], "discovered", "{found}");
    assert_eq!(found["peer_id"], expected.as_str());
    let addresses: Vec<&str> = found["multiaddrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        addresses
            .iter()
            .any(|a| service_tcp.starts_with(a) || *a == service_tcp),
        "{found}"
    );
    let connected = client.next(Duration::from_secs(60)).await;
    assert_eq!(connected["event"], "connected", "{connected}");
    assert!(
        connected["protocols"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/vac/waku/store-query/3.0.0"),
        "{connected}"
    );
    assert_eq!(client.exit_code().await, 0);
    hub.shutdown().await;
    service.shutdown().await;
}
