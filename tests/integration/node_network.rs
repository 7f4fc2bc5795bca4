//! The node's networking on loopback: WebSockets and mplex (as the JS client offers them),
//! node keys of both types kept across restarts, static peers redialled after a restart,
//! connection limits, and the `wakurln node` command configured from a TOML file.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use futures::StreamExt;
use libp2p::{Multiaddr, gossipsub, multiaddr::Protocol, noise};
use wakurln::node::{self, NodeConfig, NodeEvent, NodeHandle, keys::KeyKind};

const CLUSTER: u16 = 42;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wakurln-net-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn wait_peers(node: &NodeHandle, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.peers().await.unwrap().len() != n {
        assert!(Instant::now() < deadline, "expected {n} peer(s)");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_with_mplex_carry_relay_traffic() {
    let dir = temp_dir("ws");
    let mut config = NodeConfig::local(dir.join("node"), CLUSTER);
    config
        .listen
        .push("/ip4/127.0.0.1/tcp/0/ws".parse().unwrap());
    let node = node::start(config).await.unwrap();
    let listen = node.listen_addrs().await.unwrap();
    let ws: Multiaddr = listen
        .iter()
        .find(|a| a.iter().any(|p| matches!(p, Protocol::Ws(_))))
        .expect("a WebSocket listener")
        .clone();

    // A client that speaks only WebSockets + noise + mplex, as the JS light client does.
    let topic = gossipsub::IdentTopic::new(format!("/waku/2/rs/{CLUSTER}/0"));
    let config = gossipsub::ConfigBuilder::default()
        .protocol_id(wakurln::relay::gossip::PROTOCOL, gossipsub::Version::V1_1)
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .message_id_fn(|m: &gossipsub::Message| wakurln::relay::gossip::message_id(&m.data))
        .build()
        .unwrap();
    let mut client = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_websocket(noise::Config::new, libp2p_mplex::Config::default)
        .await
        .unwrap()
        .with_behaviour(|_| {
            gossipsub::Behaviour::<
                gossipsub::IdentityTransform,
                gossipsub::AllowAllSubscriptionFilter,
            >::new(gossipsub::MessageAuthenticity::Anonymous, config)
            .unwrap()
        })
        .unwrap()
        .build();
    client.behaviour_mut().subscribe(&topic).unwrap();
    client.dial(ws.with(Protocol::P2p(node.peer_id()))).unwrap();
    let mut delivered = node.delivered();
    let message = wakurln::message::WakuMessage::builder(
        "/net-test/1/ws/proto".parse().unwrap(),
        b"over websockets and mplex".to_vec(),
    )
    .timestamp(1_700_000_000_000_000_000)
    .build()
    .unwrap();
    let data = message.encode();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sent = false;
    let got = loop {
        assert!(Instant::now() < deadline, "nothing arrived over WebSockets");
        tokio::select! {
            _ = client.select_next_some() => {}
            d = delivered.recv() => break d.unwrap(),
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        if !sent {
            sent = client
                .behaviour_mut()
                .publish(topic.clone(), data.clone())
                .is_ok();
        }
    };
    assert_eq!(got.message.payload().as_ref(), b"over websockets and mplex");
    let peers = node.peers().await.unwrap();
    assert!(
        peers[0].addresses[0]
            .iter()
            .any(|p| matches!(p, Protocol::Ws(_))),
        "{peers:?}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_persist_and_static_peers_are_redialled_after_a_restart() {
    let dir = temp_dir("restart");
    let config_a = |port: u16| {
        let mut c = NodeConfig::local(dir.join("a"), CLUSTER);
        c.key_kind = KeyKind::Ed25519;
        c.listen = vec![format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()];
        c
    };
    // A picks its port itself, and comes back on it after the restart.
    let a = node::start(config_a(0)).await.unwrap();
    let port = a.listen_addrs().await.unwrap()[0]
        .iter()
        .find_map(|p| match p {
            Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();
    let first_id = a.peer_id();
    assert!(
        first_id.to_string().starts_with("12D3KooW"),
        "an Ed25519 peer id: {first_id}"
    );
    let mut b_config = NodeConfig::local(dir.join("b"), CLUSTER);
    b_config.static_peers = vec![
        format!("/ip4/127.0.0.1/tcp/{port}/p2p/{first_id}")
            .parse()
            .unwrap(),
    ];
    let b = node::start(b_config).await.unwrap();
    assert!(
        b.peer_id().to_string().starts_with("16Uiu2"),
        "secp256k1 by default"
    );
    wait_peers(&b, 1).await;
    let mut events = b.events();

    // A goes away and comes back on the same port with the same key: B dials it again.
    a.shutdown().await;
    drop(a);
    wait_peers(&b, 0).await;
    // `shutdown` returned once A's listener was closed, so its port is free again.
    let a = node::start(config_a(port)).await.unwrap();
    assert_eq!(
        a.peer_id(),
        first_id,
        "the key was kept in the data directory"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Ok(NodeEvent::PeerConnected(p))) if p == first_id => break,
            Ok(_) => {}
            Err(_) => panic!("B did not redial its static peer"),
        }
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_hold() {
    let dir = temp_dir("limits");
    let mut config = NodeConfig::local(dir.join("hub"), CLUSTER);
    // A third outbound (1), the rest inbound (2).
    config.max_connections = 3;
    let hub = node::start(config).await.unwrap();
    let addr = hub.listen_addrs().await.unwrap()[0]
        .clone()
        .with(Protocol::P2p(hub.peer_id()));
    let mut others = Vec::new();
    for i in 0..4 {
        let n = node::start(NodeConfig::local(dir.join(format!("n{i}")), CLUSTER))
            .await
            .unwrap();
        let _ = n.dial(addr.clone()).await;
        others.push(n);
    }
    // Wait until the hub has refused the two connections beyond its limits.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let refused: u64 = hub
            .metrics()
            .encode()
            .lines()
            .filter(|l| l.starts_with("libp2p_refused_connections_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
        if refused >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{refused} connections refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let peers = hub.peers().await.unwrap();
    assert_eq!(peers.len(), 2, "{peers:?}");
    assert!(
        hub.metrics()
            .encode()
            .contains("libp2p_refused_connections_total{type=\"inbound\"}"),
        "the refusals are counted"
    );
    for n in others {
        n.shutdown().await;
    }
    hub.shutdown().await;
}

#[test]
fn the_node_command_reads_a_toml_file_and_flags_override_it() {
    let dir = temp_dir("toml");
    let file = dir.join("node.toml");
    std::fs::write(
        &file,
        format!(
            "no-rln = true\ncluster-id = 9\nshard = [0, 3]\ntcp-port = 0\nrest-port = 0\ndata-dir = \"{}\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wakurln"))
        .args(["node", "--config"])
        .arg(&file)
        .args(["--cluster-id", "11", "--rest-address", "127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut rest = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(url) = line.strip_prefix("REST API on ") {
            rest = Some(url.split_whitespace().next().unwrap().to_owned());
            break;
        }
    }
    let rest = rest.expect("the node announces its REST API");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let health: serde_json::Value = rt.block_on(async {
        let text = alloy::transports::http::reqwest::get(format!("{rest}/health"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str(&text).unwrap()
    });
    assert_eq!(health["rln"]["enforced"], false);
    let info: serde_json::Value = rt.block_on(async {
        let text = alloy::transports::http::reqwest::get(format!("{rest}/debug/v1/info"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str(&text).unwrap()
    });
    assert_eq!(info["clusterId"], 11, "the flag overrides the file: {info}");
    assert_eq!(
        info["shards"],
        serde_json::json!([0, 3]),
        "from the file: {info}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        dir.join("data/node.key").is_file(),
        "data-dir from the file was used"
    );

    // Unknown keys in the file are refused with the file's name.
    std::fs::write(&file, "cluster = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wakurln"))
        .args(["node", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("node.toml is not valid") && err.contains("cluster"),
        "{err}"
    );
}
