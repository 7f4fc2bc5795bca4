//! A node on a hostile network, against a real anvil chain and the network's circuit keys: a
//! REST caller with a wrong clock cannot make the node double-signal, a lost message-id
//! counter cannot either, a peer sending invalid proofs is disconnected and banned while an
//! honest publisher's messages keep arriving, and sixty peer ids from one address cannot keep
//! a static peer out.

use crate::common;

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use common::{
    devnet::{Devnet as Chain, address, circuit_dir, start},
    http::Http,
};
use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use serde_json::json;
use tokio::sync::broadcast;
use wakurln::{
    clock,
    message::WakuMessage,
    node::{self, NodeConfig, NodeError, NodeEvent, NodeHandle},
    relay::publisher::PublishError,
    rln::prover::RlnProver,
};

use super::node_relay::{
    CLUSTER, message, next_delivered, prove_raw, rogue_peer, topic, tree_of, wait_mesh,
};

const EPOCH_NS: i64 = common::devnet::EPOCH as i64 * 1_000_000_000;

/// Every verdict and spam event `node` reports until `within` has passed without one.
async fn drain_verdicts(rx: &mut broadcast::Receiver<NodeEvent>, within: Duration) -> Vec<String> {
    let mut seen = Vec::new();
    while let Ok(Ok(event)) = tokio::time::timeout(within, rx.recv()).await {
        match event {
            NodeEvent::Validated { verdict, .. } => seen.push(verdict.to_owned()),
            NodeEvent::Spam { .. } => seen.push("spam event".to_owned()),
            _ => {}
        }
    }
    seen
}

/// Two RLN nodes: `a` publishes with a membership of `limit` messages per epoch, `b` watches.
async fn pair(chain: &Chain, limit: u32) -> (NodeHandle, NodeHandle) {
    let (keystore, _) = chain.member("member", limit).await;
    let b = start(chain.config("b", None, &[])).await;
    let a = start(chain.config("a", Some(&keystore), &[address(&b).await])).await;
    wait_mesh(&[&a, &b], &[1, 1]).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_callers_with_a_wrong_clock_cannot_make_the_node_double_signal() {
    let chain = Chain::start("hardening-clock", CLUSTER).await;
    let (a, b) = pair(&chain, 5).await;
    let api = Http::new(
        wakurln::rest::serve(a.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    );
    let mut watched = b.events();
    let mut delivered = b.delivered();
    let path = format!(
        "/relay/v1/messages/{}",
        topic().as_str().replace('/', "%2F")
    );
    let post = |text: &str, timestamp: i64| {
        let body = json!({
            "payload": B64.encode(text),
            "contentTopic": "/hardening/1/clock/proto",
            "timestamp": timestamp,
        });
        api.call("POST", &path, Some(body.to_string()))
    };

    // The sequence that used to leak the secret: now, four epochs ahead, now again.
    assert_eq!(post("now", clock::now_ns()).await, (200, "OK".to_owned()));
    let (status, text) = post("ahead", clock::now_ns() + 4 * EPOCH_NS).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("ahead of this node's clock"), "{text}");
    assert_eq!(
        post("now again", clock::now_ns()).await,
        (200, "OK".to_owned())
    );

    // Dated in the past: four epochs back, and just beyond the 20 s drift.
    for (label, timestamp) in [
        ("epochs back", clock::now_ns() - 4 * EPOCH_NS),
        ("30 s back", clock::now_ns() - 30_000_000_000),
    ] {
        let (status, text) = post(label, timestamp).await;
        assert_eq!(status, 400, "{label}: {text}");
        assert!(text.contains("behind this node's clock"), "{label}: {text}");
    }
    // Within the drift is fine.
    assert_eq!(
        post("5 s back", clock::now_ns() - 5_000_000_000).await,
        (200, "OK".to_owned())
    );

    let mut got = Vec::new();
    while got.len() < 3 {
        let d = next_delivered(&mut delivered, Duration::from_secs(20))
            .await
            .expect("every message the node accepted reaches its peer");
        got.push(String::from_utf8(d.message.payload().to_vec()).unwrap());
    }
    got.sort();
    assert_eq!(got, ["5 s back", "now", "now again"]);
    let verdicts = drain_verdicts(&mut watched, Duration::from_secs(2)).await;
    assert_eq!(verdicts, ["valid", "valid", "valid"]);
    assert_eq!(b.metrics().spam.get(), 0);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_message_id_counter_cannot_make_the_node_double_signal() {
    let chain = Chain::start("hardening-counter", CLUSTER).await;
    let (a, b) = pair(&chain, 1).await;
    let mut watched = b.events();
    a.publish(topic(), message("first")).await.unwrap();

    // The counter loses its rows (a restored backup, a deleted file): it would hand out
    // message id 0 again.
    let counter = chain.dir.join("a/message-ids.sqlite");
    let conn = rusqlite::Connection::open(&counter).unwrap();
    assert_eq!(conn.execute("DELETE FROM message_ids", []).unwrap(), 1);
    drop(conn);

    let err = a.publish(topic(), message("second")).await.unwrap_err();
    assert!(
        matches!(
            err,
            NodeError::Publish(PublishError::WouldDoubleSignal { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("reveals the membership's secret"));
    let verdicts = drain_verdicts(&mut watched, Duration::from_secs(3)).await;
    assert_eq!(verdicts, ["valid"], "only the first message left the node");
    assert_eq!(b.metrics().spam.get(), 0);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_invalid_proofs_is_disconnected_while_honest_messages_arrive() {
    let chain = Chain::start("hardening-score", CLUSTER).await;
    let (_, mallory) = chain.member("mallory", 5).await;
    let (keystore, _) = chain.member("honest", 50).await;
    let validator = start(chain.config("validator", None, &[])).await;
    let honest = start(chain.config("honest", Some(&keystore), &[address(&validator).await])).await;
    wait_mesh(&[&validator, &honest], &[1, 1]).await;
    let mut events = validator.events();
    let mut delivered = validator.delivered();

    // Mallory's client proves one message, then sends copies with other payloads: valid
    // points, a known root, the current epoch, each one invalid for its message.
    let tree = tree_of(&chain).await;
    let prover = RlnProver::load(&circuit_dir()).unwrap();
    let proved = prove_raw(&prover, &tree, &mallory, 0, 5, 0, message("original"));
    let rogue = rogue_peer(address(&validator).await);
    let flood = tokio::spawn(async move {
        for n in 0..40 {
            let copy = WakuMessage::builder(
                proved.content_topic().clone(),
                format!("copy {n}").into_bytes(),
            )
            .timestamp(proved.timestamp().unwrap())
            .build()
            .unwrap()
            .with_rate_limit_proof(proved.rate_limit_proof().unwrap().clone())
            .unwrap();
            if rogue.send(copy.encode()).await.is_err() {
                return;
            }
        }
        // Keep the rogue alive until the test ends.
        std::future::pending::<()>().await;
    });

    // The honest publisher keeps publishing through the attack.
    let publisher = honest.clone();
    let honest_task = tokio::spawn(async move {
        for n in 0..10 {
            publisher
                .publish(topic(), message(&format!("honest {n}")))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    let honest_id = honest.peer_id();
    let mut rejects = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let banned: PeerId = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Ok(NodeEvent::Validated { from, verdict, .. })) if from != honest_id => {
                assert_eq!(verdict, "invalid_proof");
                rejects += 1;
            }
            Ok(Ok(NodeEvent::ScoredOut { peer, score })) => {
                assert!(score < wakurln::relay::gossip::DISCONNECT_THRESHOLD);
                break peer;
            }
            Ok(Ok(_)) => {}
            other => panic!("the rogue was not disconnected ({rejects} rejects): {other:?}"),
        }
    };
    assert_ne!(banned, honest_id);
    // -100 * n^2 passes -10,000 at the 11th reject; the counter halves every 12 s, so a few
    // more may be needed when a decay falls in between.
    assert!(
        (10..=20).contains(&rejects),
        "disconnected after {rejects} rejects"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while validator
        .peers()
        .await
        .unwrap()
        .iter()
        .any(|p| p.peer == banned)
    {
        assert!(tokio::time::Instant::now() < deadline, "still connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(validator.metrics().score_disconnects.get(), 1);

    honest_task.await.unwrap();
    let mut honest_got = 0;
    while honest_got < 10 {
        let d = next_delivered(&mut delivered, Duration::from_secs(20))
            .await
            .expect("every honest message arrives");
        assert!(d.message.payload().starts_with(b"honest "));
        honest_got += 1;
    }
    assert!(
        validator
            .peers()
            .await
            .unwrap()
            .iter()
            .any(|p| p.peer == honest_id),
        "the honest peer stays connected"
    );
    flood.abort();
    validator.shutdown().await;
    honest.shutdown().await;
}

/// A libp2p peer that only connects to `target` and holds the connection.
fn squatter(target: Multiaddr) -> tokio::task::JoinHandle<()> {
    use futures::StreamExt;
    use libp2p::ping;
    let mut swarm = common::raw::tcp_swarm(
        ping::Behaviour::new(ping::Config::new()),
        Duration::from_secs(3_600),
    );
    swarm.dial(target).unwrap();
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_peer_ids_from_one_address_cannot_keep_a_static_peer_out() {
    let dir = std::env::temp_dir().join(format!("wakurln-gate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The static peer runs once to bind its port, and stops: the node is told of it, finds
    // it down, and the squatters come first.
    let key = libp2p::identity::Keypair::generate_secp256k1();
    let static_config = |port: u16| {
        let mut c = NodeConfig::local(dir.join("static"), CLUSTER);
        c.key = Some(key.clone());
        c.listen = vec![format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()];
        c
    };
    let first = node::start(static_config(0)).await.unwrap();
    let static_address = first.listen_addrs().await.unwrap()[0]
        .clone()
        .with(Protocol::P2p(key.public().to_peer_id()));
    let port = static_address
        .iter()
        .find_map(|p| match p {
            Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();
    first.shutdown().await;
    let mut config = NodeConfig::local(dir.join("node"), CLUSTER);
    config.static_peers = vec![static_address];
    let node = node::start(config).await.unwrap();
    let target = node.listen_addrs().await.unwrap()[0].clone();

    let squatters: Vec<_> = (0..60).map(|_| squatter(target.clone())).collect();
    // Wait until the squatters have taken all they can.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let refused = node.metrics().encode();
        if refused.contains("libp2p_refused_connections_total{type=\"per_ip\"}") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no connection was refused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connected = node.peers().await.unwrap().len();
    assert!(
        connected <= node::config::DEFAULT_MAX_INBOUND_PER_IP as usize,
        "{connected} peers from one address"
    );

    // The static peer comes up; the node reaches it despite the squatters.
    let static_peer = node::start(static_config(port)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let peers = node.peers().await.unwrap();
        if peers.iter().any(|p| p.peer == static_peer.peer_id()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the static peer was kept out ({} peers connected)",
            peers.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for s in squatters {
        s.abort();
    }
    node.shutdown().await;
    static_peer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_block_root_is_kept_and_survives_a_restart() {
    use wakurln::{
        chain::{
            ChainClient, Endpoint,
            sync::{SyncConfig, Syncer},
        },
        rln::tree::MerkleTree,
    };
    let chain = Chain::start("hardening-roots", CLUSTER).await;
    let connect = || async {
        ChainClient::connect(
            &[Endpoint(chain.anvil.url.clone())],
            chain.contract,
            None,
            None,
        )
        .await
        .unwrap()
    };
    let db = chain.dir.join("roots-tree.sqlite");
    let config = || SyncConfig {
        follow_distance: 0,
        ..SyncConfig::default()
    };
    let mut syncer = Syncer::open(connect().await, &db, config()).await.unwrap();
    syncer.step().await.unwrap();

    // Three registrations, three blocks (anvil mines one per transaction), one sync step.
    let mut tree = MerkleTree::new();
    let mut expected = Vec::new();
    for i in 0..3 {
        let (_, identity) = chain.member(&format!("root{i}"), 2).await;
        tree.set(i, identity.rate_commitment(2)).unwrap();
        expected.push(tree.root());
    }
    syncer.step().await.unwrap();
    assert_eq!(syncer.tree().root(), tree.root());
    for (i, root) in expected.iter().enumerate() {
        assert!(syncer.roots().contains(root), "the root after block {i}");
    }
    drop(syncer);

    // A restart reads the window back without any step.
    let reopened = Syncer::open(connect().await, &db, config()).await.unwrap();
    for (i, root) in expected.iter().enumerate() {
        assert!(
            reopened.roots().contains(root),
            "root {i} after the restart"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_honest_message_is_refused_while_members_register() {
    // One-second blocks, as on a real chain, with registrations back to back.
    let chain = std::sync::Arc::new(
        Chain::start_with("hardening-burst", CLUSTER, &["--block-time", "1"]).await,
    );
    let (keystore, _) = chain.member("publisher", 500).await;
    // Peers sync at their own pace: the watcher polls the chain every 10 s, the publisher
    // every 250 ms, so the publisher often knows a root the watcher has not reached yet.
    let mut watcher_config = chain.config("watcher", None, &[]);
    if let Some(rln) = watcher_config.rln.as_mut() {
        rln.chain.poll_interval = Duration::from_secs(10);
    }
    let watcher = start(watcher_config).await;
    let publisher =
        start(chain.config("publisher", Some(&keystore), &[address(&watcher).await])).await;
    wait_mesh(&[&watcher, &publisher], &[1, 1]).await;
    let mut events = watcher.events();
    let mut delivered = watcher.delivered();

    let registrations = {
        let chain = chain.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                chain.member(&format!("burst{i}"), 1).await;
            }
        })
    };
    let mut published = 0;
    while !registrations.is_finished() {
        publisher
            .publish(topic(), message(&format!("burst {published}")))
            .await
            .unwrap();
        published += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    registrations.await.unwrap();
    assert!(
        published >= 30,
        "only {published} messages during the burst"
    );

    let mut got = 0;
    let mut verdicts = Vec::new();
    while got < published {
        match next_delivered(&mut delivered, Duration::from_secs(20)).await {
            Some(_) => got += 1,
            None => break,
        }
    }
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
        if let NodeEvent::Validated { verdict, .. } = event {
            verdicts.push(verdict);
        }
    }
    let refused: Vec<_> = verdicts.iter().filter(|v| **v != "valid").collect();
    assert!(refused.is_empty(), "refused: {refused:?}");
    assert_eq!(got, published, "every published message is delivered");
    let metrics = watcher.metrics().encode();
    // Every reason is exported from the start at 0; none may have counted.
    assert!(
        metrics
            .lines()
            .filter(|l| l.starts_with("waku_rln_invalid_messages_total_total{"))
            .all(|l| l.ends_with(" 0")),
        "{metrics}"
    );
    // How often the race this test is about happened in this run.
    eprintln!(
        "{published} messages during 30 registrations; {} held on a root the watcher had not \
         synced yet",
        watcher.metrics().held_unknown_root.get()
    );
    publisher.shutdown().await;
    watcher.shutdown().await;
}
