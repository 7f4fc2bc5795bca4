//! Relay interop with a JS peer from npm: js-libp2p with @chainsafe/libp2p-gossipsub
//! configured as Waku relay (tests/js/relay_peer.mjs) dials our RLN node. Messages flow both
//! ways: a proved message from the JS peer is validated and delivered by our node, our node's
//! own message (proved with its membership) reaches the JS peer, and a message with a bad proof
//! from the JS peer is rejected.

use crate::common;

use std::{
    path::PathBuf,
    process::Stdio,
    str::FromStr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use alloy::primitives::U256;
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use common::anvil as start_anvil;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use wakurln::{
    chain::{Endpoint, devnet::Devnet as LocalChain},
    credentials,
    message::WakuMessage,
    node::{self, ChainConfig, MembershipConfig, NodeConfig, NodeEvent, RlnConfig},
    relay::{pipeline::RlnRules, publisher::attach_proof},
    rln::{
        field::Fr,
        identity::Identity,
        prover::{MemberInputs, RlnProver},
    },
    topics::{ContentTopic, StaticShard},
};
use wakurln_keystore::{Kdf, Keystore};

const CLUSTER: u16 = 42;
const EPOCH: u64 = 86_400;
const PASSWORD: &str = "js relay";

fn message(text: &str) -> WakuMessage {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    WakuMessage::builder(
        ContentTopic::from_str("/js-interop/1/chat/proto").unwrap(),
        text.as_bytes().to_vec(),
    )
    .timestamp(now.as_nanos() as i64)
    .build()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flow_both_ways_with_a_js_gossipsub_peer() {
    let js = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        js.join("node_modules/@chainsafe/libp2p-gossipsub").is_dir(),
        "tests/js's npm packages are missing: run `scripts/test`"
    );
    let anvil = start_anvil(&[]);
    let dir = std::env::temp_dir().join(format!("wakurln-relay-js-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let chain = LocalChain::deploy(anvil, U256::ZERO, U256::ZERO)
        .await
        .unwrap();
    let client = chain.client(0).await.unwrap();
    let d = chain.deployment.clone();
    let anvil = &chain.anvil;
    // Ours publishes with one membership; the JS peer's messages are proved with another.
    let ours = Identity::generate();
    let theirs = Identity::generate();
    let mut indices = Vec::new();
    for id in [&ours, &theirs] {
        indices.push(LocalChain::register(&client, id, 10).await.unwrap().index);
    }
    let keystore = dir.join("keystore.json");
    Keystore::add(
        &keystore,
        &credentials::registered(&ours, &client, indices[0], 10),
        PASSWORD.as_bytes(),
        Kdf::default(),
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    let circuit_dir = common::shared_file("circuits/waku-rln-v2/README.md")
        .parent()
        .unwrap()
        .to_path_buf();
    let mut config = NodeConfig::local(dir.join("node"), CLUSTER);
    config.rln = Some(RlnConfig {
        rules: RlnRules {
            epoch_period: EPOCH,
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
        membership: Some(MembershipConfig {
            keystore,
            key: None,
            password: PASSWORD.to_owned().into(),
            circuit_dir: circuit_dir.clone(),
        }),
    });
    let node = node::start(config).await.unwrap();
    node.wait_ready().await.unwrap();
    let topic = StaticShard::new(CLUSTER, 0).pubsub_topic();
    let address = format!(
        "{}/p2p/{}",
        node.listen_addrs().await.unwrap()[0],
        node.peer_id()
    );

    let mut peer = tokio::process::Command::new("node")
        .arg("relay_peer.mjs")
        .args([address.as_str(), topic.as_str()])
        .current_dir(&js)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node (Node.js) runs");
    let mut stdin = peer.stdin.take().unwrap();
    let mut lines = BufReader::new(peer.stdout.take().unwrap()).lines();
    let mut next = async || -> Value {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the JS peer answers within 30 s")
            .unwrap()
            .expect("the JS peer is still running");
        serde_json::from_str(&line).unwrap()
    };
    let ready = next().await;
    assert_eq!(ready["ready"], true, "{ready}");
    // Wait for our side of the mesh too.
    for _ in 0..100 {
        if node.mesh_peers(topic.clone()).await.unwrap() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // JS -> ours: a message proved for the second member.
    let tree = chain.tree(&dir.join("tree.sqlite")).await.unwrap();
    let prover = RlnProver::load(&circuit_dir).unwrap();
    let path = tree.proof(indices[1] as usize).unwrap();
    let prepared = prover
        .prepare(&MemberInputs {
            identity_secret: theirs.secret_hash,
            user_message_limit: Fr::from(10u64),
            path_elements: path.elements,
            identity_path_index: path.path_bits(),
        })
        .unwrap();
    let from_js = attach_proof(
        &prover,
        &prepared,
        message("hello from js-libp2p"),
        EPOCH,
        0,
    )
    .unwrap();
    let mut delivered = node.delivered();
    let mut events = node.events();
    stdin
        .write_all(format!("{}\n", B64.encode(from_js.encode())).as_bytes())
        .await
        .unwrap();
    assert_eq!(next().await["published"], 1);
    let got = tokio::time::timeout(Duration::from_secs(20), delivered.recv())
        .await
        .expect("our node delivers the JS peer's message")
        .unwrap();
    assert_eq!(got.message.payload().as_ref(), b"hello from js-libp2p");

    // Ours -> JS: proved by our node with its own membership.
    node.publish(topic.clone(), message("hello from wakurln"))
        .await
        .unwrap();
    let received = next().await;
    let bytes = B64
        .decode(received["received"].as_str().expect("a message"))
        .unwrap();
    let m = WakuMessage::decode(&bytes).unwrap();
    assert_eq!(m.payload().as_ref(), b"hello from wakurln");
    assert!(
        m.rate_limit_proof().is_some(),
        "our message carries its RLN proof"
    );

    // A bad proof from the JS peer is rejected.
    let forged = message("forged")
        .with_rate_limit_proof(from_js.rate_limit_proof().unwrap().clone())
        .unwrap();
    stdin
        .write_all(format!("{}\n", B64.encode(forged.encode())).as_bytes())
        .await
        .unwrap();
    let verdict = loop {
        match tokio::time::timeout(Duration::from_secs(20), events.recv()).await {
            Ok(Ok(NodeEvent::Validated { verdict, .. })) if verdict != "valid" => break verdict,
            Ok(Ok(_)) => {}
            other => panic!("no verdict for the forged message: {other:?}"),
        }
    };
    assert_eq!(verdict, "invalid_proof");
    drop(stdin);
    let _ = peer.kill().await;
    node.shutdown().await;
}
