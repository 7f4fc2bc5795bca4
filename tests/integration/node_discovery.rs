//! discv5 on loopback: nodes given one bootstrap record find the nodes of their cluster that
//! share a shard with them, and never dial a node of another cluster or of other shards; a
//! node that takes up a shard publishes a new record with a higher sequence number.

use std::time::{Duration, Instant};

use libp2p::PeerId;
use wakurln::{
    discovery,
    node::{self, NodeConfig, NodeHandle},
    topics::StaticShard,
};

const CLUSTER: u16 = 52;
const OTHER_CLUSTER: u16 = 53;

async fn discovering(
    dir: &std::path::Path,
    name: &str,
    cluster: u16,
    shards: &[u16],
    bootstrap: &[wakurln::enr::Enr],
) -> NodeHandle {
    let mut config = NodeConfig::local(dir.join(name), cluster);
    config.shards = shards.to_vec();
    config.discv5 = Some(discovery::Config {
        udp_port: 0,
        bootstrap: bootstrap.to_vec(),
        interval: Duration::from_millis(500),
    });
    node::start(config).await.unwrap()
}

async fn peers_of(node: &NodeHandle) -> Vec<PeerId> {
    node.peers()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.peer)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discv5_finds_the_nodes_of_our_cluster_and_shards_and_no_others() {
    let dir = std::env::temp_dir().join(format!("wakurln-discv5-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let boot = discovering(&dir, "boot", CLUSTER, &[0], &[]).await;
    let boot_record = boot.enr().expect("a discv5 node has a record");
    assert!(boot_record.udp().is_some(), "the record names the UDP port");
    let bootstrap = [boot_record];

    let mut ours = Vec::new();
    for i in 0..5 {
        ours.push(discovering(&dir, &format!("ours{i}"), CLUSTER, &[0], &bootstrap).await);
    }
    let other_shard = discovering(&dir, "other-shard", CLUSTER, &[5], &bootstrap).await;
    let other_cluster = discovering(&dir, "other-cluster", OTHER_CLUSTER, &[0], &bootstrap).await;
    let ours_ids: Vec<PeerId> = ours.iter().map(NodeHandle::peer_id).collect();

    // Each of ours finds at least three of the others, from the one record it was given.
    let started = Instant::now();
    loop {
        let mut done = true;
        for n in &ours {
            let found = peers_of(n)
                .await
                .iter()
                .filter(|p| ours_ids.contains(p) || **p == boot.peer_id())
                .count();
            done &= found >= 3;
        }
        if done {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "discv5 did not connect the cluster"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "every node found three of its cluster in {:?}",
        started.elapsed()
    );

    // Nobody dialled across clusters or shards.
    for n in ours.iter().chain([&boot]) {
        let peers = peers_of(n).await;
        assert!(
            !peers.contains(&other_cluster.peer_id()),
            "a node of another cluster"
        );
        assert!(
            !peers.contains(&other_shard.peer_id()),
            "a node of no shared shard"
        );
    }
    assert!(peers_of(&other_cluster).await.is_empty());
    assert!(peers_of(&other_shard).await.is_empty());

    // A node listening on 0.0.0.0 has no address to announce: it still finds and dials peers.
    let mut config = NodeConfig::local(dir.join("addressless"), CLUSTER);
    config.listen = vec!["/ip4/0.0.0.0/tcp/0".parse().unwrap()];
    config.discv5 = Some(discovery::Config {
        udp_port: 0,
        bootstrap: bootstrap.to_vec(),
        interval: Duration::from_millis(500),
    });
    let addressless = node::start(config).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !peers_of(&addressless)
        .await
        .iter()
        .any(|p| ours_ids.contains(p))
    {
        assert!(
            Instant::now() < deadline,
            "the addressless node found no one"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    addressless.shutdown().await;

    // Taking up shard 5 gives a new record, with a higher sequence number and the shard.
    let before = ours[0].enr().unwrap();
    ours[0]
        .subscribe(StaticShard::new(CLUSTER, 5).pubsub_topic())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let now = ours[0].enr().unwrap();
        if now.seq() > before.seq() {
            break now;
        }
        assert!(Instant::now() < deadline, "the record was not updated");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(after.shards(), Some((CLUSTER, vec![0, 5])));
    assert_eq!(after.peer_id(), before.peer_id());
    // Now it shares a shard with the shard-5 node, which finds it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !peers_of(&other_shard).await.contains(&ours[0].peer_id()) {
        assert!(
            Instant::now() < deadline,
            "the shard-5 node never found its new peer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for n in ours.iter().chain([&boot, &other_shard, &other_cluster]) {
        n.shutdown().await;
    }
}

#[test]
fn the_node_command_refuses_a_bootstrap_record_it_cannot_use() {
    let dir = std::env::temp_dir().join(format!("wakurln-discv5-cli-{}", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wakurln"))
        .args([
            "node",
            "--no-rln",
            "--discv5-discovery",
            "--discv5-udp-port",
            "0",
        ])
        .args(["--discv5-bootstrap-node", "enr:-not-a-record", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--discv5-bootstrap-node enr:-not-a-record: not a usable record"),
        "{err}"
    );
}
