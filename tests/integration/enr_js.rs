//! Node records (ENRs) cross with the JS Waku client's codec (`@waku/enr` from npm) both
//! ways: records we sign decode and verify there with the same peer id, addresses, services
//! and shards, and records it signs decode and verify here. A running node's own record (what
//! peer exchange hands out) gives the JS side a dialable address of that node.

use crate::common;

use std::path::Path;

use serde_json::{Value, json};
use wakurln::{
    enr::{Content, Enr, services},
    node::{self, NodeConfig},
};

fn key() -> libp2p::identity::secp256k1::Keypair {
    let mut secret = [0x42u8; 32];
    libp2p::identity::secp256k1::SecretKey::try_from_bytes(&mut secret)
        .unwrap()
        .into()
}

fn js_decode(text: &str) -> Value {
    let out = common::run_node_script("enr.mjs", &[Path::new("decode"), Path::new(text)], b"");
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn our_records_decode_in_the_js_client() {
    let k = key();
    let content = Content {
        seq: 7,
        ip_tcp: Some((std::net::Ipv4Addr::LOCALHOST, 60_000)),
        udp: Some(9_000),
        multiaddrs: vec!["/ip4/127.0.0.1/tcp/8000/ws".parse().unwrap()],
        services: services::RELAY | services::FILTER | services::LIGHTPUSH,
        shards: Some((66, vec![0, 3])),
    };
    let enr = Enr::sign(&k, &content).unwrap();
    let js = js_decode(&enr.to_text());
    assert_eq!(js["peerId"], enr.peer_id().to_string());
    assert_eq!(js["seq"], 7);
    assert_eq!(js["ip"], "127.0.0.1");
    assert_eq!(js["tcp"], 60_000);
    assert_eq!(js["udp"], 9_000);
    assert_eq!(js["multiaddrs"], json!(["/ip4/127.0.0.1/tcp/8000/ws"]));
    assert_eq!(
        js["waku2"],
        json!({"relay": true, "store": false, "filter": true, "lightPush": true})
    );
    assert_eq!(js["rs"], json!({"clusterId": 66, "shards": [0, 3]}));
}

#[test]
fn js_records_decode_here() {
    let k = key();
    let secret = hex::encode(k.secret().to_bytes());
    let public = hex::encode(k.public().to_bytes());
    let out = common::run_node_script(
        "enr.mjs",
        &[Path::new("encode"), Path::new(&secret), Path::new(&public)],
        b"",
    );
    let js: Value = serde_json::from_slice(&out).unwrap();
    let enr = Enr::from_text(js["enr"].as_str().unwrap()).expect("the JS record verifies");
    let peer = libp2p::identity::PublicKey::from(k.public().clone()).to_peer_id();
    assert_eq!(enr.peer_id(), peer);
    assert_eq!(enr.services(), services::RELAY | services::STORE);
    assert_eq!(enr.shards(), Some((66, vec![0, 5])));
    let addresses: Vec<String> = enr.addresses().iter().map(ToString::to_string).collect();
    assert_eq!(
        addresses,
        [
            format!("/ip4/127.0.0.1/tcp/60000/p2p/{peer}"),
            format!("/ip4/127.0.0.1/tcp/8000/ws/p2p/{peer}")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_own_record_names_its_listen_addresses() {
    let dir = std::env::temp_dir().join(format!("wakurln-enr-js-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = NodeConfig::local(dir.clone(), 66);
    config
        .listen
        .push("/ip4/127.0.0.1/tcp/0/ws".parse().unwrap());
    let node = node::start(config).await.unwrap();
    let text = node.enr().expect("a secp256k1 node has a record").to_text();
    let js = tokio::task::spawn_blocking(move || js_decode(&text))
        .await
        .unwrap();
    let listening: Vec<String> = node
        .listen_addrs()
        .await
        .unwrap()
        .iter()
        .map(|a| format!("{a}/p2p/{}", node.peer_id()))
        .collect();
    assert_eq!(js["peerId"], node.peer_id().to_string());
    assert!(
        listening.contains(&js["tcpMultiaddr"].as_str().unwrap().to_owned()),
        "{js}"
    );
    let ws = js["fullMultiaddrs"][0].as_str().unwrap().to_owned();
    assert!(ws.contains("/ws/p2p/") && listening.contains(&ws), "{js}");
    assert_eq!(js["rs"], json!({"clusterId": 66, "shards": [0]}));
    node.shutdown().await;
}
