//! A fleet of real `wakurln node` processes on loopback, across two shards, each given one
//! discv5 bootstrap record and nothing else, with a node of another cluster among them: every
//! node reaches its target of relay peers on its shard, none connects across clusters; then a
//! quarter of them are killed (SIGKILL) and restarted without any bootstrap, and they reconnect
//! from the peer book in their data directory.
//!
//! `FLEET_NODES` sets the size (6 by default, as CI runs it); the measurement in the README
//! runs 20 in release: `FLEET_NODES=20 cargo test --release --test integration fleet --
//! --nocapture`. It prints the times to target and the nodes' resident memory.

use std::{
    collections::HashSet,
    ffi::OsString,
    path::Path,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::common::process::NodeProcess;

const CLUSTER: u16 = 52;
const OTHER_CLUSTER: u16 = 53;

struct Member {
    node: NodeProcess,
    /// Its TCP and discv5 UDP ports, kept across a restart as an operator's would be.
    ports: (u16, u16),
    shard: u16,
    cluster: u16,
    peer_id: String,
    dir: std::path::PathBuf,
}

fn args(
    dir: &Path,
    cluster: u16,
    shard: u16,
    target: usize,
    bootstrap: Option<&str>,
    ports: (u16, u16),
) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "--data-dir".into(),
        dir.into(),
        "--no-rln".into(),
        "--cluster-id".into(),
        cluster.to_string().into(),
        "--shard".into(),
        shard.to_string().into(),
        "--listen-address".into(),
        "127.0.0.1".into(),
        "--tcp-port".into(),
        ports.0.to_string().into(),
        "--discv5-discovery".into(),
        "--discv5-udp-port".into(),
        ports.1.to_string().into(),
        "--relay-peers-per-shard".into(),
        target.to_string().into(),
        // Every node shares 127.0.0.1 here, as nodes on one host of a real network would not.
        "--ip-colocation-limit".into(),
        "0".into(),
    ];
    if let Some(b) = bootstrap {
        a.push("--discv5-bootstrap-node".into());
        a.push(b.into());
    }
    a
}

/// Starts a node; `ports` (TCP, UDP) of 0 pick free ones.
async fn start(
    dir: &Path,
    name: &str,
    (cluster, shard): (u16, u16),
    target: usize,
    bootstrap: Option<&str>,
    ports: (u16, u16),
) -> Member {
    let data = dir.join(name);
    let node = NodeProcess::spawn(
        &args(&data, cluster, shard, target, bootstrap, ports),
        &dir.join(format!("{name}.log")),
    );
    let info = node.get("/debug/v1/info").await.expect("the node answers");
    let peer_id = info["peerId"].as_str().expect("a peer id").to_owned();
    let record = wakurln::enr::Enr::from_text(info["enrUri"].as_str().expect("a record"))
        .expect("a valid record");
    let tcp = info["listenAddresses"][0]
        .as_str()
        .and_then(|a| a.split("/tcp/").nth(1)?.split('/').next()?.parse().ok())
        .expect("a TCP listen address");
    let ports = (tcp, record.udp().expect("a discv5 port").port());
    Member {
        node,
        ports,
        shard,
        cluster,
        peer_id,
        dir: data,
    }
}

/// The connected peers `m` lists: (peer id, cluster, shards).
async fn connected(m: &Member) -> Vec<(String, Option<u64>, Vec<u64>)> {
    let Some(Value::Array(peers)) = m.node.get("/admin/v1/peers").await else {
        return Vec::new();
    };
    peers
        .iter()
        .filter(|p| p["connected"] == "Connected")
        .map(|p| {
            (
                p["peerId"].as_str().unwrap_or_default().to_owned(),
                p["clusterId"].as_u64(),
                p["shards"]
                    .as_array()
                    .map(|s| s.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits until every node of our cluster has `target` connected relay peers of its cluster on
/// its shard, checking all the while that no connection crosses clusters. Returns the time.
async fn wait_for_targets(
    members: &[Member],
    target: usize,
    foreign: &Member,
    what: &str,
) -> Duration {
    let started = Instant::now();
    let deadline = started
        + Duration::from_secs(
            std::env::var("FLEET_DEADLINE")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(180),
        );
    let ours: HashSet<&str> = members.iter().map(|m| m.peer_id.as_str()).collect();
    loop {
        let mut short = Vec::new();
        for (i, m) in members.iter().enumerate() {
            let peers = connected(m).await;
            assert!(
                peers.iter().all(|(p, _, _)| *p != foreign.peer_id),
                "node {i} is connected to the node of another cluster"
            );
            let on_shard = peers
                .iter()
                .filter(|(_, c, s)| {
                    *c == Some(u64::from(CLUSTER)) && s.contains(&u64::from(m.shard))
                })
                .count();
            if on_shard < target {
                short.push((i, on_shard));
            }
        }
        let theirs = connected(foreign).await;
        assert!(
            theirs.iter().all(|(p, _, _)| !ours.contains(p.as_str())),
            "the node of another cluster is connected to one of ours: {theirs:?}"
        );
        if short.is_empty() {
            return started.elapsed();
        }
        if Instant::now() >= deadline {
            let m = &members[short[0].0];
            panic!(
                "{what}: nodes short of {target} peers on their shard (node, peers): {short:?}\n\
                 the first knows: {}\n{}",
                m.node.get("/admin/v1/peers").await.unwrap_or_default(),
                m.node.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Peers the node's book file holds that it was connected to at some point.
fn saved_peers(dir: &Path) -> usize {
    let Ok(db) = rusqlite::Connection::open_with_flags(
        dir.join("peers.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return 0;
    };
    db.query_row(
        "SELECT count(*) FROM peers WHERE last_connected > 0",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map_or(0, |n| n as usize)
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_finds_its_relay_peers_from_one_record_and_a_restart_needs_none() {
    let n: usize = std::env::var("FLEET_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
        .max(4);
    // Half the fleet on each shard; the target is what a shard of that size can give.
    let target = (n / 2 - 1).min(wakurln::node::peers::DEFAULT_RELAY_PEERS_PER_SHARD);
    let dir = tempfile::tempdir().unwrap();
    let began = Instant::now();
    let boot = start(dir.path(), "node0", (CLUSTER, 0), target, None, (0, 0)).await;
    let record = boot.node.get("/debug/v1/info").await.unwrap()["enrUri"]
        .as_str()
        .expect("a discv5 node has a record")
        .to_owned();
    let mut members = vec![boot];
    for i in 1..n {
        let shard = (i % 2) as u16;
        members.push(
            start(
                dir.path(),
                &format!("node{i}"),
                (CLUSTER, shard),
                target,
                Some(&record),
                (0, 0),
            )
            .await,
        );
    }
    let foreign = start(
        dir.path(),
        "foreign",
        (OTHER_CLUSTER, 0),
        target,
        Some(&record),
        (0, 0),
    )
    .await;
    let spawned = began.elapsed();
    let first = wait_for_targets(&members, target, &foreign, "from one record").await + spawned;
    let mut rss: Vec<u64> = members.iter().map(|m| resident_kib(m.node.pid())).collect();
    rss.sort_unstable();
    println!(
        "fleet of {n} (+1 of another cluster): every node had {target} relay peers on its shard \
         {:.1} s after the first start ({:.1} s of it spent starting the processes)",
        first.as_secs_f64(),
        spawned.as_secs_f64()
    );
    println!(
        "resident memory per node: median {} MiB, max {} MiB",
        rss[rss.len() / 2] / 1024,
        rss[rss.len() - 1] / 1024
    );

    // Kill a quarter (not the bootstrap node: the others must not need it) once their books
    // hold their peers, and restart them with no bootstrap record at all.
    let killed: Vec<usize> = (1..n).step_by(4).take((n / 4).max(1)).collect();
    for &i in &killed {
        let deadline = Instant::now() + Duration::from_secs(60);
        while saved_peers(&members[i].dir) < target {
            assert!(Instant::now() < deadline, "node {i} never saved its peers");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut kept = Vec::new();
    let mut to_restart = Vec::new();
    for (i, m) in members.into_iter().enumerate() {
        if killed.contains(&i) {
            to_restart.push((i, m.shard, m.cluster, m.ports));
            m.node.kill9();
        } else {
            kept.push(m);
        }
    }
    let again = Instant::now();
    for (i, shard, cluster, ports) in to_restart {
        let m = start(
            dir.path(),
            &format!("node{i}"),
            (cluster, shard),
            target,
            None,
            ports,
        )
        .await;
        let log = m.node.log_text();
        assert!(
            log.contains("peer book read from"),
            "node {i} did not read its book:\n{log}"
        );
        kept.push(m);
    }
    let members = kept;
    wait_for_targets(&members, target, &foreign, "after the restart").await;
    let second = again.elapsed();
    println!(
        "{} nodes killed and restarted without bootstrap: every node back at {target} relay peers \
         {:.1} s after the restarts began",
        killed.len(),
        second.as_secs_f64()
    );
}
