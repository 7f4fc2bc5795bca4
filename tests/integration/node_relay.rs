//! Relay nodes on loopback enforcing RLN against a real anvil chain and the network's circuit
//! keys: honest delivery along a line of five nodes, an invalid proof rejected and not
//! forwarded, double signalling detected with the secret recovered, a restarted publisher
//! that does not reuse a message id, a peer of another cluster disconnected, lightpush with its
//! status codes, and lending from a service's pool (per lightpush peer and per REST caller).

use crate::common;

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use common::devnet::{Devnet as Chain, EPOCH, address, circuit_dir, start};
use libp2p::Multiaddr;
use tokio::sync::broadcast;
use wakurln::{
    chain::{ChainClient, Endpoint},
    message::WakuMessage,
    node::{self, NodeConfig, NodeEvent, NodeHandle},
    relay::Delivered,
    rln::{
        field::Fr,
        identity::Identity,
        prover::{MemberInputs, RlnProver},
        tree::MerkleTree,
    },
    topics::{ContentTopic, PubsubTopic, StaticShard},
};

pub(crate) const CLUSTER: u16 = 42;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wakurln-node-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn chain(name: &str) -> Chain {
    Chain::start(&format!("node-{name}"), CLUSTER).await
}

async fn member(chain: &Chain, name: &str, limit: u32) -> (PathBuf, Identity) {
    chain.member(name, limit).await
}

fn config(chain: &Chain, name: &str, keystore: Option<&Path>, peers: &[Multiaddr]) -> NodeConfig {
    chain.config(name, keystore, peers)
}

pub(crate) fn topic() -> PubsubTopic {
    StaticShard::new(CLUSTER, 0).pubsub_topic()
}

pub(crate) fn message(text: &str) -> WakuMessage {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    WakuMessage::builder(
        ContentTopic::from_str("/relay-test/1/chat/proto").unwrap(),
        text.as_bytes().to_vec(),
    )
    .timestamp(now.as_nanos() as i64)
    .build()
    .unwrap()
}

/// Waits until every node has at least `min[i]` mesh peers on the topic.
pub(crate) async fn wait_mesh(nodes: &[&NodeHandle], min: &[usize]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut ok = true;
        for (node, m) in nodes.iter().zip(min) {
            ok &= node.mesh_peers(topic()).await.unwrap() >= *m;
        }
        if ok {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gossipsub mesh did not form"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A line: node i dials node i-1.
async fn line(chain: &Chain, n: usize, publisher: Option<&Path>) -> Vec<NodeHandle> {
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for i in 0..n {
        let peers = match nodes.last() {
            Some(prev) => vec![address(prev).await],
            None => Vec::new(),
        };
        let keystore = if i == 0 { publisher } else { None };
        nodes.push(start(config(chain, &format!("node{i}"), keystore, &peers)).await);
    }
    let refs: Vec<&NodeHandle> = nodes.iter().collect();
    let min: Vec<usize> = (0..n)
        .map(|i| if i == 0 || i == n - 1 { 1 } else { 2 })
        .collect();
    wait_mesh(&refs, &min).await;
    nodes
}

pub(crate) async fn next_delivered(
    rx: &mut broadcast::Receiver<Delivered>,
    within: Duration,
) -> Option<Delivered> {
    tokio::time::timeout(within, rx.recv())
        .await
        .ok()
        .map(|r| r.unwrap())
}

async fn next_verdict(
    rx: &mut broadcast::Receiver<NodeEvent>,
    within: Duration,
) -> Option<&'static str> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Ok(NodeEvent::Validated { verdict, .. })) => return Some(verdict),
            Ok(Ok(_)) => {}
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_messages_cross_a_line_of_five_nodes() {
    let chain = chain("line").await;
    let (keystore, _) = member(&chain, "alice", 10).await;
    let nodes = line(&chain, 5, Some(&keystore)).await;
    let mut far = nodes[4].delivered();
    for text in ["first", "second", "third"] {
        let hash = nodes[0].publish(topic(), message(text)).await.unwrap();
        let got = next_delivered(&mut far, Duration::from_secs(20))
            .await
            .expect("the message crosses the line");
        assert_eq!(got.hash, hash);
        assert_eq!(got.message.payload().as_ref(), text.as_bytes());
        assert!(got.message.rate_limit_proof().is_some());
    }
    for n in &nodes {
        n.shutdown().await;
    }
}

/// Proves `message` for `identity` at leaf `index` with message id `id`, bypassing any
/// counter (as a misbehaving or broken client would).
pub(crate) fn prove_raw(
    prover: &RlnProver,
    tree: &MerkleTree,
    identity: &Identity,
    index: usize,
    limit: u64,
    id: u64,
    message: WakuMessage,
) -> WakuMessage {
    let path = tree.proof(index).unwrap();
    let member = MemberInputs {
        identity_secret: identity.secret_hash,
        user_message_limit: Fr::from(limit),
        path_elements: path.elements,
        identity_path_index: path.path_bits(),
    };
    let prepared = prover.prepare(&member).unwrap();
    wakurln::relay::publisher::attach_proof(prover, &prepared, message, EPOCH, id).unwrap()
}

/// The membership tree as the nodes see it, from the contract's events.
pub(crate) async fn tree_of(chain: &Chain) -> MerkleTree {
    let client = ChainClient::connect(
        &[Endpoint(chain.anvil.url.clone())],
        chain.contract,
        None,
        None,
    )
    .await
    .unwrap();
    let mut syncer = wakurln::chain::sync::Syncer::open(
        client,
        &chain
            .dir
            .join(format!("tree-{}.sqlite", rand::random::<u32>())),
        wakurln::chain::sync::SyncConfig {
            follow_distance: 0,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    syncer.step().await.unwrap();
    syncer.tree().clone()
}

/// A gossipsub peer speaking Waku relay that forwards whatever it is given, unvalidated: a
/// misbehaving or broken client. Returns a sender of encoded messages to publish.
pub(crate) fn rogue_peer(dial: Multiaddr) -> tokio::sync::mpsc::Sender<Vec<u8>> {
    use futures::StreamExt;
    use libp2p::gossipsub;
    let config = gossipsub::ConfigBuilder::default()
        .protocol_id(wakurln::relay::gossip::PROTOCOL, gossipsub::Version::V1_1)
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .message_id_fn(|m: &gossipsub::Message| wakurln::relay::gossip::message_id(&m.data))
        .heartbeat_interval(Duration::from_millis(500))
        .build()
        .unwrap();
    let behaviour = gossipsub::Behaviour::<
        gossipsub::IdentityTransform,
        gossipsub::AllowAllSubscriptionFilter,
    >::new(gossipsub::MessageAuthenticity::Anonymous, config)
    .unwrap();
    // libp2p's default idle timeout.
    let mut swarm = common::raw::tcp_swarm(behaviour, Duration::from_secs(10));
    let t = gossipsub::IdentTopic::new(topic().as_str());
    swarm.behaviour_mut().subscribe(&t).unwrap();
    swarm.dial(dial).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    tokio::spawn(async move {
        let mut queue: Vec<Vec<u8>> = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = swarm.select_next_some() => {}
                m = rx.recv() => match m {
                    Some(m) => queue.push(m),
                    None => return,
                },
                _ = tick.tick() => {}
            }
            // Publish in order once the node's subscription is known.
            while let Some(m) = queue.first() {
                match swarm.behaviour_mut().publish(t.clone(), m.clone()) {
                    Ok(_) => {
                        queue.remove(0);
                    }
                    Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => break,
                    Err(e) => panic!("the rogue peer cannot publish: {e}"),
                }
            }
        }
    });
    tx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_proofs_are_rejected_and_double_signalling_is_caught() {
    let chain = chain("reject").await;
    let (_, mallory) = member(&chain, "mallory", 5).await;
    let nodes = line(&chain, 3, None).await;
    let tree = tree_of(&chain).await;
    let prover = RlnProver::load(&circuit_dir()).unwrap();
    let mut middle = nodes[1].events();
    let mut far = nodes[2].delivered();
    // Mallory's broken client relays straight into the middle node.
    let rogue = rogue_peer(address(&nodes[1]).await);

    // A valid proof moved onto another message does not verify for it: rejected by the
    // middle node and not forwarded.
    let honest = prove_raw(&prover, &tree, &mallory, 0, 5, 0, message("original"));
    let moved = WakuMessage::builder(honest.content_topic().clone(), b"tampered".to_vec())
        .timestamp(honest.timestamp().unwrap())
        .build()
        .unwrap()
        .with_rate_limit_proof(honest.rate_limit_proof().unwrap().clone())
        .unwrap();
    rogue.send(moved.encode()).await.unwrap();
    assert_eq!(
        next_verdict(&mut middle, Duration::from_secs(20)).await,
        Some("invalid_proof")
    );
    // Our own nodes refuse to send it at all, and refuse unproved messages without a
    // membership.
    assert!(matches!(
        nodes[0].publish(topic(), moved).await,
        Err(node::NodeError::Rejected("invalid_proof"))
    ));
    assert!(matches!(
        nodes[0].publish(topic(), message("no proof")).await,
        Err(node::NodeError::NoMembership)
    ));

    // Two different messages with the same message id in one epoch: the second is spam, and
    // the middle node recovers Mallory's secret from the two shares.
    let first = prove_raw(&prover, &tree, &mallory, 0, 5, 3, message("one"));
    let second = prove_raw(&prover, &tree, &mallory, 0, 5, 3, message("two"));
    rogue.send(first.encode()).await.unwrap();
    let got = next_delivered(&mut far, Duration::from_secs(20))
        .await
        .expect("the first message is delivered");
    assert_eq!(got.message.payload().as_ref(), b"one");
    rogue.send(second.encode()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (commitment, secret) = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, middle.recv()).await {
            Ok(Ok(NodeEvent::Spam {
                commitment, secret, ..
            })) => break (commitment, secret),
            Ok(Ok(_)) => {}
            other => panic!("no double-signalling event: {other:?}"),
        }
    };
    assert_eq!(commitment, mallory.commitment);
    assert_eq!(secret, mallory.secret_hash);
    // Neither the tampered message nor the spam reached the far node.
    if let Some(d) = next_delivered(&mut far, Duration::from_secs(2)).await {
        panic!("the far node got {:?}", d.message.payload());
    }
    // A third message with the same id, handed to an entry node, is refused there as spam.
    let third = prove_raw(&prover, &tree, &mallory, 0, 5, 3, message("three"));
    assert!(matches!(
        nodes[2].publish(topic(), third).await,
        Err(node::NodeError::Rejected("spam"))
    ));
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_publisher_does_not_reuse_a_message_id() {
    let chain = chain("restart").await;
    let (keystore, _) = member(&chain, "bob", 2).await;
    let watcher = start(config(&chain, "watcher", None, &[])).await;
    let watcher_addr = address(&watcher).await;
    let mut events = watcher.events();

    let publisher = start(config(
        &chain,
        "publisher",
        Some(&keystore),
        std::slice::from_ref(&watcher_addr),
    ))
    .await;
    wait_mesh(&[&watcher, &publisher], &[1, 1]).await;
    publisher
        .publish(topic(), message("before restart"))
        .await
        .unwrap();
    assert_eq!(
        next_verdict(&mut events, Duration::from_secs(20)).await,
        Some("valid")
    );
    // Returns once the node has stopped.
    publisher.shutdown().await;
    drop(publisher);

    // Same data directory: the counter says message id 0 is used in this epoch.
    let publisher = start(config(
        &chain,
        "publisher",
        Some(&keystore),
        &[watcher_addr],
    ))
    .await;
    wait_mesh(&[&watcher, &publisher], &[1, 1]).await;
    publisher
        .publish(topic(), message("after restart"))
        .await
        .unwrap();
    assert_eq!(
        next_verdict(&mut events, Duration::from_secs(20)).await,
        Some("valid")
    );

    // The budget of 2 is spent: publishing says so and says when it frees up.
    let err = publisher
        .publish(topic(), message("one too many"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("budget of 2 messages") && text.contains("frees up in"),
        "{text}"
    );
    publisher.shutdown().await;
    watcher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_of_another_cluster_is_disconnected() {
    let dir = temp_dir("cluster");
    let ours = node::start(NodeConfig::local(dir.join("ours"), CLUSTER))
        .await
        .unwrap();
    let mut events = ours.events();
    let theirs = node::start(NodeConfig::local(dir.join("theirs"), CLUSTER + 1))
        .await
        .unwrap();
    let friend = node::start(NodeConfig::local(dir.join("friend"), CLUSTER))
        .await
        .unwrap();
    let mut their_events = theirs.events();
    theirs.dial(address(&ours).await).await.unwrap();
    friend.dial(address(&ours).await).await.unwrap();
    // Whichever side learns first disconnects; each names the other's cluster.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let event = tokio::select! {
            e = events.recv() => e.map(|e| (true, e)),
            e = their_events.recv() => e.map(|e| (false, e)),
            () = tokio::time::sleep(left) => panic!("no cluster mismatch was reported"),
        };
        match event {
            Ok((true, NodeEvent::ClusterMismatch { peer, cluster })) => {
                assert_eq!(
                    (peer, cluster),
                    (theirs.peer_id(), Some(u32::from(CLUSTER + 1)))
                );
                break;
            }
            Ok((false, NodeEvent::ClusterMismatch { peer, cluster })) => {
                assert_eq!((peer, cluster), (ours.peer_id(), Some(u32::from(CLUSTER))));
                break;
            }
            _ => {}
        }
    }
    // The friend of the same cluster stays; the other cluster's peer is gone. The friend's
    // cluster shows once its metadata exchange has finished, which may come after it is listed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let info = loop {
        let peers = ours.peers().await.unwrap();
        let ids: Vec<_> = peers.iter().map(|p| p.peer).collect();
        if ids == vec![friend.peer_id()] && peers[0].cluster.is_some() {
            break peers.into_iter().next().unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "peers: {ids:?}, clusters: {:?}",
            peers.iter().map(|p| p.cluster).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(info.cluster, Some(u32::from(CLUSTER)));
    assert_eq!(info.shards, vec![0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lightpush_relays_proved_messages_and_answers_with_status_codes() {
    use wakurln::lightpush::status;
    let chain = chain("lightpush").await;
    let (_, carol) = member(&chain, "carol", 5).await;
    let nodes = line(&chain, 3, None).await;
    let tree = tree_of(&chain).await;
    let prover = RlnProver::load(&circuit_dir()).unwrap();
    let (client, service) = (&nodes[0], nodes[1].peer_id());
    let mut far = nodes[2].delivered();

    let proved = prove_raw(&prover, &tree, &carol, 0, 5, 0, message("pushed"));
    let ok = client
        .lightpush(service, Some(topic()), &proved)
        .await
        .unwrap();
    assert_eq!(ok.status_code, status::OK, "{ok:?}");
    assert!(ok.relay_peer_count.unwrap() >= 1, "{ok:?}");
    let got = next_delivered(&mut far, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(got.message.payload().as_ref(), b"pushed");

    // Autosharding picks the topic when the request names none: this node relays shard 0
    // only, so a content topic on another shard is unsupported.
    let other = client.lightpush(service, None, &proved).await.unwrap();
    let shard = proved.content_topic().autoshard(CLUSTER, 8).unwrap().shard;
    if shard == 0 {
        assert_eq!(
            other.status_code,
            status::INVALID_MESSAGE,
            "a copy: {other:?}"
        );
    } else {
        assert_eq!(
            other.status_code,
            status::UNSUPPORTED_PUBSUB_TOPIC,
            "{other:?}"
        );
    }
    let foreign: PubsubTopic = "/waku/2/rs/7/0".parse().unwrap();
    let r = client
        .lightpush(service, Some(foreign), &proved)
        .await
        .unwrap();
    assert_eq!(r.status_code, status::UNSUPPORTED_PUBSUB_TOPIC);
    let r = client
        .lightpush(service, Some(topic()), &message("bare"))
        .await
        .unwrap();
    assert_eq!(r.status_code, status::OUT_OF_RLN_PROOF, "{r:?}");
    let forged = message("forged")
        .with_rate_limit_proof(proved.rate_limit_proof().unwrap().clone())
        .unwrap();
    let r = client
        .lightpush(service, Some(topic()), &forged)
        .await
        .unwrap();
    assert_eq!(r.status_code, status::INVALID_MESSAGE, "{r:?}");
    assert!(r.status_desc.unwrap().contains("invalid_proof"));
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_callers_each_have_their_own_lending_quota() {
    use common::http::Http;
    use wakurln::lightpush::lending::LendingRules;
    let chain = chain("rest-lending").await;
    let (pool, _) = member(&chain, "pool", 3).await;
    let mut service_config = config(&chain, "service", None, &[]);
    Chain::lend_from(
        &mut service_config,
        &pool,
        LendingRules {
            per_client_quota: 1,
            reserve: 0,
        },
    );
    let service = start(service_config).await;
    let watcher = start(config(&chain, "watcher", None, &[address(&service).await])).await;
    wait_mesh(&[&service, &watcher], &[1, 1]).await;
    let mut delivered = watcher.delivered();
    let bound = wakurln::rest::serve(service.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let push = |from: &str, text: &str| {
        let api = Http::from(bound, from.parse().unwrap());
        let body = serde_json::json!({
            "pubsubTopic": topic().as_str(),
            "message": {
                "payload": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, text),
                "contentTopic": "/relay-test/1/chat/proto",
            },
        });
        async move {
            api.call_json("POST", "/lightpush/v3/message", Some(body.to_string()))
                .await
        }
    };

    // Callers from two addresses: each takes its own quota of one proof.
    let (status, answer) = push("127.0.0.1", "first caller").await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = push("127.0.0.1", "first caller again").await;
    assert_eq!(status, 429, "{answer}");
    assert!(
        answer["statusDesc"]
            .as_str()
            .unwrap()
            .contains("next epoch")
    );
    let (status, answer) = push("127.0.0.2", "second caller").await;
    assert_eq!(status, 200, "{answer}");

    let mut got = Vec::new();
    while got.len() < 2 {
        let d = next_delivered(&mut delivered, Duration::from_secs(20))
            .await
            .expect("lent messages arrive");
        got.push(String::from_utf8(d.message.payload().to_vec()).unwrap());
    }
    got.sort();
    assert_eq!(got, vec!["first caller", "second caller"]);
    for n in [&service, &watcher] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_lends_proofs_fairly_from_its_own_pool() {
    use wakurln::lightpush::{lending::LendingRules, status};
    let chain = chain("lending").await;
    // The pool: two memberships of 2 messages per epoch in one keystore (capacity 4).
    let (pool, _) = member(&chain, "pool", 2).await;
    member(&chain, "pool", 2).await;
    let mut service_config = config(&chain, "service", None, &[]);
    Chain::lend_from(
        &mut service_config,
        &pool,
        LendingRules {
            per_client_quota: 3,
            reserve: 1,
        },
    );
    let service = start(service_config).await;
    let service_addr = address(&service).await;
    let watcher = start(config(
        &chain,
        "watcher",
        None,
        std::slice::from_ref(&service_addr),
    ))
    .await;
    let heavy = start(config(
        &chain,
        "heavy",
        None,
        std::slice::from_ref(&service_addr),
    ))
    .await;
    let newcomer = start(config(
        &chain,
        "newcomer",
        None,
        std::slice::from_ref(&service_addr),
    ))
    .await;
    let late = start(config(
        &chain,
        "late",
        None,
        std::slice::from_ref(&service_addr),
    ))
    .await;
    wait_mesh(&[&service, &watcher], &[1, 1]).await;
    let mut delivered = watcher.delivered();
    let mut events = watcher.events();
    let push = |client: &NodeHandle, text: &str| {
        let client = client.clone();
        let m = message(text);
        let service = service.peer_id();
        async move { client.lightpush(service, Some(topic()), &m).await.unwrap() }
    };

    // A message dated four epochs ahead gets no proof, says why, and costs no quota.
    let ahead = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
        + 4 * EPOCH as i64 * 1_000_000_000;
    let far = WakuMessage::builder(
        ContentTopic::from_str("/relay-test/1/chat/proto").unwrap(),
        b"far".to_vec(),
    )
    .timestamp(ahead)
    .build()
    .unwrap();
    let r = late
        .lightpush(service.peer_id(), Some(topic()), &far)
        .await
        .unwrap();
    assert_eq!(r.status_code, status::INVALID_MESSAGE, "{r:?}");
    assert!(
        r.status_desc
            .as_deref()
            .unwrap()
            .contains("ahead of this node's clock"),
        "{r:?}"
    );

    // The heavy client takes its quota of 3 from the shared part (capacity 4 - reserve 1).
    for i in 0..3 {
        let r = push(&heavy, &format!("heavy {i}")).await;
        assert_eq!(r.status_code, status::OK, "{r:?}");
    }
    let r = push(&heavy, "heavy 3").await;
    assert_eq!(r.status_code, status::TOO_MANY_REQUESTS, "{r:?}");
    assert!(r.status_desc.unwrap().contains("next epoch"));
    // A client with nothing yet this epoch still gets one from the reserve.
    let r = push(&newcomer, "newcomer").await;
    assert_eq!(r.status_code, status::OK, "{r:?}");
    // Then the pool is exhausted, and says when it refills.
    let r = push(&late, "late").await;
    assert_eq!(r.status_code, status::OUT_OF_RLN_PROOF, "{r:?}");
    assert!(r.status_desc.unwrap().contains("refills in"));

    // The four lent messages are valid everywhere: no message id was used twice.
    let mut got = Vec::new();
    while got.len() < 4 {
        let d = next_delivered(&mut delivered, Duration::from_secs(20))
            .await
            .expect("lent messages arrive");
        got.push(String::from_utf8(d.message.payload().to_vec()).unwrap());
    }
    got.sort();
    assert_eq!(got, vec!["heavy 0", "heavy 1", "heavy 2", "newcomer"]);
    while let Ok(e) = events.try_recv() {
        if let NodeEvent::Validated { verdict, .. } = e {
            assert_eq!(verdict, "valid");
        }
    }
    let metrics = service.metrics().encode();
    assert!(
        metrics.contains("waku_rln_lent_proofs_total{membership=\"0\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("waku_rln_lent_proofs_total{membership=\"1\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("waku_rln_lending_refused_total{type=\"client_quota\"} 1"),
        "{metrics}"
    );
    for n in [&service, &watcher, &heavy, &newcomer, &late] {
        n.shutdown().await;
    }
}
