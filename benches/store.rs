//! The Store v3 archive at scale, in SQLite and in PostgreSQL side by side: insert throughput
//! (batches of 1,000 in one transaction, as the node archives relayed messages) and query
//! latency on an archive of 1,000,000 messages. The million-row SQLite archive is built once
//! and kept in target/ for later runs; the PostgreSQL one is built in a server the benchmark
//! starts (Debian's `postgresql`, as `scripts/test` installs it), with its durability on.
//!
//! Besides criterion's figures, a timing loop prints the p50 and p99 of single queries, and the
//! rate of building each million-row archive. `STORE_BENCH_ROWS` sets the archive's size.

#![allow(missing_docs)] // criterion_group! generates undocumented functions

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wakurln::{
    message::WakuMessage,
    store::{Archive, Backend, Query},
};

#[path = "../tests/integration/common/postgres.rs"]
mod postgres;

/// Rows of the big archives: 1,000,000 under `cargo bench`, 10,000 when the test suite runs
/// the benchmark once (`cargo test --benches`); `STORE_BENCH_ROWS` overrides both.
fn rows() -> i64 {
    let benching = std::env::args().any(|a| a == "--bench");
    std::env::var("STORE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 1_000_000 } else { 10_000 })
}
const T0: i64 = 1_700_000_000_000_000_000;
const TOPICS: [&str; 4] = [
    "/waku/2/rs/1/0",
    "/waku/2/rs/1/1",
    "/waku/2/rs/1/2",
    "/waku/2/rs/1/3",
];

fn message(i: i64) -> WakuMessage {
    let content = format!("/bench/1/topic-{}/proto", i % 50);
    WakuMessage::builder(content.parse().unwrap(), vec![(i % 251) as u8; 300])
        .timestamp(T0 + i * 1_000_000)
        .meta(i.to_le_bytes().to_vec())
        .build()
        .unwrap()
}

async fn insert_batch(archive: &Archive, from: i64, n: i64) {
    let msgs: Vec<WakuMessage> = (from..from + n).map(message).collect();
    let refs: Vec<(&str, &WakuMessage)> = msgs
        .iter()
        .enumerate()
        .map(|(k, m)| (TOPICS[(from as usize + k) % 4], m))
        .collect();
    archive.insert(&refs).await.unwrap();
}

/// The million-row archive in `backend`, built (or completed) in batches of 1,000.
async fn big_archive(name: &str, backend: Backend) -> Archive {
    let rows = rows();
    let archive = Archive::open(&backend).await.unwrap();
    let have = archive.count().await.unwrap() as i64;
    if have < rows {
        eprintln!("{name}: building the {rows}-message archive ...");
        let started = Instant::now();
        let mut i = have;
        while i < rows {
            insert_batch(&archive, i, 1_000).await;
            i += 1_000;
        }
        eprintln!(
            "{name}: built in {:.1} s ({:.0} inserts/s)",
            started.elapsed().as_secs_f64(),
            (rows - have) as f64 / started.elapsed().as_secs_f64()
        );
    }
    archive
}

fn queries() -> Vec<(&'static str, Query)> {
    let page = |forward| Query {
        include_data: true,
        pubsub_topic: Some(TOPICS[1].into()),
        content_topics: vec![
            "/bench/1/topic-7/proto".into(),
            "/bench/1/topic-21/proto".into(),
        ],
        forward,
        limit: Some(20),
        ..Query::default()
    };
    vec![
        ("two content topics, newest page", page(false)),
        ("two content topics, oldest page", page(true)),
        (
            "time range in the middle",
            Query {
                include_data: true,
                pubsub_topic: Some(TOPICS[2].into()),
                time_start: Some(T0 + 500_000 * 1_000_000),
                time_end: Some(T0 + 510_000 * 1_000_000),
                forward: true,
                limit: Some(100),
                ..Query::default()
            },
        ),
        (
            "by message hash",
            Query {
                message_hashes: vec![message(777_777).hash(TOPICS[777_777 % 4])],
                ..Query::default()
            },
        ),
    ]
}

fn store(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("wakurln-store-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    postgres::durable();
    let sqlite_file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("target/bench-archive-{}.sqlite", rows()));
    let backends = runtime.block_on(async {
        [
            (
                "sqlite",
                Backend::Sqlite(dir.join("insert.sqlite")),
                Backend::Sqlite(sqlite_file),
            ),
            (
                "postgres",
                Backend::Postgres {
                    url: postgres::database("insert").await,
                    connections: 4,
                },
                Backend::Postgres {
                    url: postgres::database("big").await,
                    connections: 4,
                },
            ),
        ]
    });

    let mut group = c.benchmark_group("archive insert");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1_000));
    for (name, fresh, _) in &backends {
        let fresh = runtime.block_on(Archive::open(fresh)).unwrap();
        let mut next = 0i64;
        group.bench_function(format!("{name}, batch of 1,000"), |b| {
            b.iter(|| {
                runtime.block_on(insert_batch(&fresh, next, 1_000));
                next += 1_000;
            });
        });
    }
    group.finish();

    for (name, _, big) in &backends {
        let archive = runtime.block_on(big_archive(name, big.clone()));
        if let Backend::Postgres { url, .. } = big {
            // Fresh statistics, as autovacuum would gather them a while after a bulk load.
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                client.batch_execute("ANALYZE messages").await.unwrap();
            });
        }
        let mut group = c.benchmark_group(format!("archive query at {} messages", rows()));
        group.sample_size(20);
        group.measurement_time(Duration::from_secs(3));
        for (shape, q) in queries() {
            group.bench_function(format!("{name}, {shape}"), |b| {
                b.iter(|| runtime.block_on(archive.query(&q)).unwrap())
            });
        }
        group.finish();

        // Percentiles of single queries, all shapes mixed, as a server sees them.
        let qs = queries();
        let mut times: Vec<f64> = (0..2_000)
            .map(|i| {
                let started = Instant::now();
                runtime
                    .block_on(archive.query(&qs[i % qs.len()].1))
                    .unwrap();
                started.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "{name}: single queries on {} messages: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            rows(),
            times[times.len() / 2],
            times[times.len() * 99 / 100],
            times[times.len() - 1]
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, store);
criterion_main!(benches);
