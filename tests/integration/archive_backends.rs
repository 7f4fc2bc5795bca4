//! The archive's test suite, run against both databases: SQLite files and a real PostgreSQL
//! server (Debian's, started by the harness). Paging, filters and retention behave alike; the
//! same content gives byte-identical Store v3 pages from both; several nodes share one
//! PostgreSQL database without duplicates; time retention drops PostgreSQL's hourly partitions;
//! a database that cannot be used is refused with a clear error.

use prost::Message as _;
use wakurln::{
    message::{MessageHash, WakuMessage},
    store::{
        Archive, ArchiveError, Backend, Page, Query, Retention, archive::DEFAULT_DB_CONNECTIONS,
        protocol::response_of,
    },
};

use crate::common::postgres;

const T0: i64 = 1_700_000_000_000_000_000;
const HOUR: i64 = 3_600_000_000_000;
const TOPIC: &str = "/waku/2/rs/1/0";

#[derive(Clone, Copy, Debug)]
enum Kind {
    Sqlite,
    Postgres,
}

const BOTH: [Kind; 2] = [Kind::Sqlite, Kind::Postgres];

async fn open(kind: Kind, name: &str) -> Archive {
    let backend = match kind {
        Kind::Sqlite => {
            let path = std::env::temp_dir().join(format!(
                "wakurln-archive-{name}-{}.sqlite",
                std::process::id()
            ));
            let _ = std::fs::remove_file(&path);
            Backend::Sqlite(path)
        }
        Kind::Postgres => Backend::Postgres {
            url: postgres::database(name).await,
            connections: 4,
        },
    };
    Archive::open(&backend).await.unwrap()
}

fn message(i: i64, content: &str) -> WakuMessage {
    WakuMessage::builder(content.parse().unwrap(), format!("m{i}").into_bytes())
        .timestamp(T0 + i * 1_000_000_000)
        .build()
        .unwrap()
}

async fn filled(kind: Kind, name: &str, n: i64) -> Archive {
    let a = open(kind, name).await;
    let msgs: Vec<WakuMessage> = (0..n)
        .map(|i| {
            message(
                i,
                if i % 2 == 0 {
                    "/a/1/even/proto"
                } else {
                    "/a/1/odd/proto"
                },
            )
        })
        .collect();
    let refs: Vec<(&str, &WakuMessage)> = msgs.iter().map(|m| (TOPIC, m)).collect();
    assert_eq!(a.insert(&refs).await.unwrap(), n as usize, "{kind:?}");
    assert_eq!(a.insert(&refs).await.unwrap(), 0, "{kind:?}: duplicates");
    a
}

fn payloads(p: &Page) -> Vec<String> {
    p.entries
        .iter()
        .map(|e| String::from_utf8(e.message.as_ref().unwrap().payload().to_vec()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_run_backward_by_default_forward_on_request_always_in_time_order() {
    for kind in BOTH {
        let a = filled(kind, "pages", 25).await;
        let mut q = Query {
            include_data: true,
            limit: Some(10),
            ..Query::default()
        };
        let first = a.query(&q).await.unwrap();
        assert_eq!(
            payloads(&first),
            (15..25).map(|i| format!("m{i}")).collect::<Vec<_>>(),
            "{kind:?}"
        );
        q.cursor = first.cursor;
        let second = a.query(&q).await.unwrap();
        assert_eq!(payloads(&second)[0], "m5", "{kind:?}");
        q.cursor = second.cursor;
        let third = a.query(&q).await.unwrap();
        assert_eq!(
            payloads(&third),
            (0..5).map(|i| format!("m{i}")).collect::<Vec<_>>(),
            "{kind:?}"
        );
        assert_eq!(third.cursor, None);

        let mut q = Query {
            include_data: true,
            forward: true,
            limit: Some(10),
            ..Query::default()
        };
        let mut all = Vec::new();
        loop {
            let page = a.query(&q).await.unwrap();
            all.extend(payloads(&page));
            match page.cursor {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(
            all,
            (0..25).map(|i| format!("m{i}")).collect::<Vec<_>>(),
            "{kind:?}"
        );
        assert_eq!(a.count().await.unwrap(), 25);
        assert_eq!(
            a.per_topic().await.unwrap(),
            vec![(TOPIC.to_owned(), 25, 25 * 2 + 15)],
            "{kind:?}: m0..m9 are 2 bytes, m10..m24 3"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_filter_by_topic_time_and_hash_and_bad_ones_are_refused() {
    for kind in BOTH {
        let a = filled(kind, "filters", 10).await;
        let q = Query {
            include_data: true,
            pubsub_topic: Some(TOPIC.into()),
            content_topics: vec!["/a/1/odd/proto".into()],
            time_start: Some(T0 + 3_000_000_000),
            time_end: Some(T0 + 7_000_000_000),
            forward: true,
            ..Query::default()
        };
        assert_eq!(
            payloads(&a.query(&q).await.unwrap()),
            vec!["m3", "m5"],
            "{kind:?}"
        );
        let hash = message(4, "/a/1/even/proto").hash(TOPIC);
        let by_hash = a
            .query(&Query {
                message_hashes: vec![hash],
                ..Query::default()
            })
            .await
            .unwrap();
        assert_eq!(by_hash.entries.len(), 1);
        assert_eq!(by_hash.entries[0].hash, hash);
        assert!(by_hash.entries[0].message.is_none(), "include_data off");
        for bad in [
            Query {
                content_topics: vec!["/a/1/odd/proto".into()],
                ..Query::default()
            },
            Query {
                cursor: Some(MessageHash([9; 32])),
                ..Query::default()
            },
            Query {
                time_start: Some(10),
                time_end: Some(5),
                ..Query::default()
            },
        ] {
            assert!(
                matches!(a.query(&bad).await, Err(ArchiveError::BadQuery(_))),
                "{kind:?} {bad:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_age_count_and_size() {
    for kind in BOTH {
        let a = filled(kind, "retention", 50).await;
        let now = T0 + 50 * 1_000_000_000;
        let age = Retention {
            max_age_secs: Some(40),
            ..Retention::default()
        };
        assert_eq!(a.enforce(age, now, 7).await.unwrap(), 10, "{kind:?}");
        let count = Retention {
            max_messages: Some(25),
            ..Retention::default()
        };
        a.enforce(count, now, 7).await.unwrap();
        assert_eq!(a.count().await.unwrap(), 25, "{kind:?}");
        let size = Retention {
            max_bytes: Some(30),
            ..Retention::default()
        };
        a.enforce(size, now, 100).await.unwrap();
        // 3 bytes each: exactly the newest 10 fit in 30 bytes, no more and no fewer.
        assert_eq!(a.count().await.unwrap(), 10, "{kind:?}");
        let page = a
            .query(&Query {
                include_data: true,
                limit: Some(1),
                ..Query::default()
            })
            .await
            .unwrap();
        assert_eq!(payloads(&page), vec!["m49"], "{kind:?}");
    }
}

/// The partitions of the archive's `messages` table.
async fn partitions(url: &str) -> Vec<String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'messages'::regclass ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_an_hour_per_partition_and_time_retention_drops_whole_hours() {
    let url = postgres::database("partitions").await;
    let backend = Backend::Postgres {
        url: url.clone(),
        connections: 2,
    };
    let a = Archive::open(&backend).await.unwrap();
    // 6 hours, 10 messages each; the first hour starts on an hour boundary.
    let start = (T0 / HOUR + 1) * HOUR;
    let msgs: Vec<WakuMessage> = (0..60i64)
        .map(|i| {
            WakuMessage::builder("/a/1/b/proto".parse().unwrap(), vec![i as u8; 10])
                .timestamp(start + (i / 10) * HOUR + (i % 10) * 1_000)
                .build()
                .unwrap()
        })
        .collect();
    let refs: Vec<(&str, &WakuMessage)> = msgs.iter().map(|m| (TOPIC, m)).collect();
    assert_eq!(a.insert(&refs).await.unwrap(), 60);
    assert_eq!(partitions(&url).await.len(), 6);
    // Keep what is younger than 3.5 hours at the end of hour 6: hours 0-1 go whole, half of
    // hour 2 is older than the floor (its 10 messages are in its first 10 µs, so all go).
    let now = start + 6 * HOUR;
    let deleted = a
        .enforce(
            Retention {
                max_age_secs: Some(3 * 3600 + 1800),
                ..Retention::default()
            },
            now,
            1_000,
        )
        .await
        .unwrap();
    assert_eq!(deleted, 30);
    assert_eq!(a.count().await.unwrap(), 30);
    let left = partitions(&url).await;
    assert_eq!(left.len(), 3, "{left:?}");
    // A message for a dropped hour creates its partition again.
    assert_eq!(a.insert(&refs[..1]).await.unwrap(), 1);
    assert_eq!(partitions(&url).await.len(), 4);
    // Count retention empties old hours; they are dropped too.
    a.enforce(
        Retention {
            max_messages: Some(10),
            ..Retention::default()
        },
        now,
        1_000,
    )
    .await
    .unwrap();
    assert_eq!(a.count().await.unwrap(), 10);
    assert_eq!(partitions(&url).await.len(), 1);
}

/// An archive of varied content: shared timestamps, metas, proofs, versions, several topics.
fn varied() -> Vec<(String, WakuMessage)> {
    (0..240i64)
        .map(|i| {
            let content = format!("/varied/1/topic-{}/proto", i % 3);
            let mut b = WakuMessage::builder(
                content.parse().unwrap(),
                format!("payload {i}").repeat((i % 4 + 1) as usize),
            )
            // Groups of 4 share a timestamp: the hash orders them.
            .timestamp(T0 + (i / 4) * 7_000_000 + (i / 100) * HOUR)
            .version((i % 2) as u32);
            if i % 3 == 0 {
                b = b.meta(vec![i as u8; 8]);
            }
            let mut m = b.build().unwrap();
            if i % 5 == 0 {
                m = m.with_rate_limit_proof(vec![i as u8; 100]).unwrap();
            }
            (format!("/waku/2/rs/1/{}", i % 2), m)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_databases_give_byte_identical_pages_for_the_same_content() {
    let content = varied();
    let refs: Vec<(&str, &WakuMessage)> = content.iter().map(|(t, m)| (t.as_str(), m)).collect();
    let sqlite = open(Kind::Sqlite, "identical").await;
    let pg = open(Kind::Postgres, "identical").await;
    // In different batches and orders: the pages must not depend on insertion.
    sqlite.insert(&refs).await.unwrap();
    for chunk in refs.rchunks(37) {
        pg.insert(chunk).await.unwrap();
    }
    let some_hashes: Vec<MessageHash> =
        content.iter().step_by(11).map(|(t, m)| m.hash(t)).collect();
    let mut queries = Vec::new();
    for forward in [false, true] {
        for include_data in [false, true] {
            for limit in [None, Some(7), Some(100)] {
                let base = Query {
                    include_data,
                    forward,
                    limit,
                    ..Query::default()
                };
                queries.push(base.clone());
                queries.push(Query {
                    pubsub_topic: Some("/waku/2/rs/1/1".into()),
                    content_topics: vec![
                        "/varied/1/topic-0/proto".into(),
                        "/varied/1/topic-2/proto".into(),
                    ],
                    ..base.clone()
                });
                queries.push(Query {
                    pubsub_topic: Some("/waku/2/rs/1/0".into()),
                    time_start: Some(T0 + 100_000_000),
                    time_end: Some(T0 + HOUR + 150_000_000),
                    ..base.clone()
                });
                queries.push(Query {
                    time_start: Some(T0 + 21_000_000),
                    ..base.clone()
                });
                queries.push(Query {
                    message_hashes: some_hashes.clone(),
                    ..base
                });
            }
        }
    }
    let mut pages = 0;
    for q in &queries {
        let mut q = q.clone();
        loop {
            let a = sqlite.query(&q).await.unwrap();
            let b = pg.query(&q).await.unwrap();
            let bytes_a = response_of("r".into(), &a).encode_to_vec();
            let bytes_b = response_of("r".into(), &b).encode_to_vec();
            assert!(bytes_a == bytes_b, "pages differ for {q:?}");
            pages += 1;
            match a.cursor {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
    }
    assert!(pages > 150, "{pages} pages compared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_nodes_share_one_postgres_database_without_duplicates() {
    let url = postgres::database("shared").await;
    let backend = Backend::Postgres {
        url: url.clone(),
        connections: DEFAULT_DB_CONNECTIONS,
    };
    // Three nodes start together: the schema is created once.
    let (a, b, c) = tokio::join!(
        Archive::open(&backend),
        Archive::open(&backend),
        Archive::open(&backend)
    );
    let nodes = [a.unwrap(), b.unwrap(), c.unwrap()];
    // Each relays the same messages, in its own batches, at the same time; 2 hours of them so
    // the partitions are created concurrently too.
    let content: Vec<(String, WakuMessage)> = (0..600i64)
        .map(|i| {
            let m = WakuMessage::builder(
                "/shared/1/x/proto".parse().unwrap(),
                i.to_be_bytes().to_vec(),
            )
            .timestamp(T0 + i * 12_000_000_000)
            .build()
            .unwrap();
            (TOPIC.to_owned(), m)
        })
        .collect();
    let refs: Vec<(&str, &WakuMessage)> = content.iter().map(|(t, m)| (t.as_str(), m)).collect();
    let inserted = futures::future::join_all(nodes.iter().enumerate().map(|(k, node)| {
        let refs = &refs;
        async move {
            let mut added = 0;
            for chunk in refs.chunks(50 + 17 * k) {
                added += node.insert(chunk).await.unwrap();
            }
            added
        }
    }))
    .await;
    assert_eq!(inserted.iter().sum::<usize>(), 600, "{inserted:?}");
    for node in &nodes {
        assert_eq!(node.count().await.unwrap(), 600);
    }
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let version: i32 = client
        .query_one("SELECT version FROM wakurln_archive_schema", &[])
        .await
        .unwrap()
        .get(0);
    let rows: i64 = client
        .query_one("SELECT count(*) FROM wakurln_archive_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((version, rows), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_cannot_be_used_is_refused_with_a_clear_error() {
    // Nothing listens on the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let backend = Backend::Postgres {
        url: format!("postgres://wakurln:hunter2secret@127.0.0.1:{port}/archive"),
        connections: 2,
    };
    let e = Archive::open(&backend).await.unwrap_err().to_string();
    assert!(
        e.contains(&format!("postgres://wakurln@127.0.0.1:{port}/archive"))
            && e.contains("cannot connect"),
        "{e}"
    );
    assert!(
        !e.contains("hunter2secret"),
        "the password is never shown: {e}"
    );

    // A database whose `messages` table is another program's.
    let url = postgres::database("foreign").await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE messages (id BIGINT, body TEXT); INSERT INTO messages VALUES (1, 'kept')",
        )
        .await
        .unwrap();
    let e = Archive::open(&Backend::Postgres {
        url,
        connections: 2,
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("did not create"), "{e}");
    let kept: String = client
        .query_one("SELECT body FROM messages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, "kept", "the other program's table is untouched");

    // Not a URL we know.
    assert!(Backend::from_url("mysql://x", 1).is_err());
    assert_eq!(
        Backend::from_url("sqlite://a.db", 1),
        Ok(Backend::Sqlite("a.db".into()))
    );
}
