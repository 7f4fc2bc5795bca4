//! Store sync at scale, between two real store nodes on loopback (in this process, each with
//! its own SQLite archive):
//!
//! 1. **Gaps**: both hold `STORE_SYNC_MESSAGES` messages (1,000,000 by default) of the last
//!    hour, and differ in 1%: each lacks 1% of the other's (10,000 on each side). Run twice:
//!    the missing messages in one stretch of time on each side (a node that was down), and
//!    scattered at random. Reported: the time until both hold the union, the reconciliation
//!    bytes, and the bytes of the pushed messages themselves.
//! 2. **Catching up**: a node that was offline for 10 minutes of 50 msg/s traffic (30,000
//!    messages) reconciles after its restart. Reported: the time until it holds them all.
//!
//! Messages are 300-byte payloads without RLN proofs (the nodes do not enforce RLN here, so
//! the figures are those of the protocol and the archives, not of proof verification).
//!
//! `cargo bench --bench store_sync` runs the full sizes; the test run (`cargo test --benches`)
//! runs 20,000 messages and 600 offline.

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use rand::{Rng, SeedableRng};
use wakurln::{
    clock::now_ns,
    message::WakuMessage,
    node::{self, NodeConfig, NodeHandle, StoreConfig},
    store::{Archive, Backend, Retention, sync::SyncConfig},
    topics::StaticShard,
};

const CLUSTER: u16 = 47;

fn benching() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn count(var: &str, bench: usize, test: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching() { bench } else { test })
}

fn message(i: usize, at: i64) -> WakuMessage {
    let mut payload = vec![(i % 251) as u8; 300];
    payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
    WakuMessage::builder("/bench/1/sync/proto".parse().unwrap(), payload)
        .timestamp(at)
        .build()
        .unwrap()
}

async fn fill(path: &std::path::Path, topic: &str, messages: impl Iterator<Item = WakuMessage>) {
    let archive = Archive::open(&Backend::Sqlite(path.to_path_buf()))
        .await
        .unwrap();
    let mut batch = Vec::with_capacity(10_000);
    let flush = async |batch: &mut Vec<WakuMessage>| {
        let refs: Vec<(&str, &WakuMessage)> = batch.iter().map(|m| (topic, m)).collect();
        archive.insert(&refs).await.unwrap();
        batch.clear();
    };
    for m in messages {
        batch.push(m);
        if batch.len() == 10_000 {
            flush(&mut batch).await;
        }
    }
    flush(&mut batch).await;
}

async fn start(dir: &std::path::Path) -> NodeHandle {
    let mut c = NodeConfig::local(dir.to_path_buf(), CLUSTER);
    c.store = Some(StoreConfig {
        backend: Backend::Sqlite(dir.join("archive.sqlite")),
        retention: Retention::default(),
        retention_interval: Duration::from_secs(3600),
        sync: Some(SyncConfig {
            interval: Duration::ZERO,
            ..SyncConfig::default()
        }),
    });
    node::start(c).await.unwrap()
}

async fn connect(a: &NodeHandle, b: &NodeHandle) {
    let addr = b.listen_addrs().await.unwrap()[0]
        .clone()
        .with(Protocol::P2p(b.peer_id()));
    a.dial(addr).await.unwrap();
}

/// Syncs `a` with `b` and waits until both hold `union`; returns the time, the
/// reconciliation bytes (both ways) and the bytes of the pushed messages (both ways).
async fn converge(a: &NodeHandle, b: &NodeHandle, union: usize) -> (Duration, u64, u64) {
    let started = Instant::now();
    let report = a.store_sync_with(b.peer_id()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    while a.store_sync().unwrap().len() < union || b.store_sync().unwrap().len() < union {
        assert!(Instant::now() < deadline, "no convergence: {report:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let pushed = |n: &NodeHandle| {
        let c = &n.store_sync().unwrap().counters;
        c.pushed_bytes.get()
    };
    (took, report.reconciliation_bytes, pushed(a) + pushed(b))
}

async fn gaps(scattered: bool, n: usize) {
    let dir = std::env::temp_dir().join(format!(
        "wakurln-sync-bench-{}-{}",
        if scattered { "scattered" } else { "stretch" },
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    for side in ["a", "b"] {
        std::fs::create_dir_all(dir.join(side)).unwrap();
    }
    let topic = StaticShard::new(CLUSTER, 0).pubsub_topic();
    // n + n/100 messages over the last hour but its last minute; A lacks n/100 of them, B
    // lacks n/100 others.
    let diff = n / 100;
    let total = n + diff;
    let t0 = now_ns() - 3_500_000_000_000;
    let step = 3_400_000_000_000 / total as i64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(20);
    let mut owner = vec![0u8; total]; // 0 both, 1 only A, 2 only B
    if scattered {
        let mut placed = 0;
        while placed < 2 * diff {
            let i = rng.gen_range(0..total);
            if owner[i] == 0 {
                owner[i] = if placed < diff { 1 } else { 2 };
                placed += 1;
            }
        }
    } else {
        // A was down for a stretch a third of the way in, B two thirds of the way in.
        for o in &mut owner[total / 3..total / 3 + diff] {
            *o = 2;
        }
        for o in &mut owner[2 * total / 3..2 * total / 3 + diff] {
            *o = 1;
        }
    }
    let started = Instant::now();
    for (side, lacks) in [("a", 2u8), ("b", 1u8)] {
        let owner = &owner;
        fill(
            &dir.join(side).join("archive.sqlite"),
            topic.as_str(),
            (0..total)
                .filter(move |i| owner[*i] != lacks)
                .map(|i| message(i, t0 + i as i64 * step)),
        )
        .await;
    }
    let filled = started.elapsed();
    let a = start(&dir.join("a")).await;
    let b = start(&dir.join("b")).await;
    connect(&a, &b).await;
    let (took, reconciliation, pushed) = converge(&a, &b, total).await;
    println!(
        "store sync, {} messages each, {diff} missing on each side {}: converged in {:.2} s; \
         reconciliation {:.2} MB, pushed messages {:.2} MB (overhead {:.1}% of the pushed \
         bytes); archives filled in {:.1} s",
        n,
        if scattered {
            "scattered at random"
        } else {
            "in one stretch each"
        },
        took.as_secs_f64(),
        reconciliation as f64 / 1e6,
        pushed as f64 / 1e6,
        100.0 * reconciliation as f64 / pushed as f64,
        filled.as_secs_f64(),
    );
    a.shutdown().await;
    b.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn catch_up(offline: usize) {
    let dir =
        std::env::temp_dir().join(format!("wakurln-sync-bench-offline-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for side in ["up", "down"] {
        std::fs::create_dir_all(dir.join(side)).unwrap();
    }
    let topic = StaticShard::new(CLUSTER, 0).pubsub_topic();
    // 30 minutes of 50 msg/s; the second node was offline for the last `offline` of them.
    let total = offline * 3;
    let now = now_ns();
    let step = 20_000_000i64;
    let t0 = now - 60_000_000_000 - total as i64 * step;
    fill(
        &dir.join("up/archive.sqlite"),
        topic.as_str(),
        (0..total).map(|i| message(i, t0 + i as i64 * step)),
    )
    .await;
    fill(
        &dir.join("down/archive.sqlite"),
        topic.as_str(),
        (0..total - offline).map(|i| message(i, t0 + i as i64 * step)),
    )
    .await;
    let up = start(&dir.join("up")).await;
    let started = Instant::now();
    let down = start(&dir.join("down")).await;
    connect(&down, &up).await;
    let (took, reconciliation, _) = converge(&down, &up, total).await;
    println!(
        "store sync, catching up {offline} messages (offline at 50 msg/s) against {total}: {:.2} s \
         from the restart ({:.2} s of it the session and the pushes), reconciliation {:.1} kB",
        started.elapsed().as_secs_f64(),
        took.as_secs_f64(),
        reconciliation as f64 / 1e3
    );
    up.shutdown().await;
    down.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let n = count("STORE_SYNC_MESSAGES", 1_000_000, 20_000);
    let offline = count("STORE_SYNC_OFFLINE", 30_000, 600);
    runtime.block_on(async {
        gaps(false, n).await;
        gaps(true, n).await;
        catch_up(offline).await;
    });
}
