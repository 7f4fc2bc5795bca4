//! Store v3 between two nodes on loopback: the service node archives what it relays, and a
//! client pages through 250 messages in both directions over `/vac/waku/store-query/3.0.0`,
//! by content topic, time range and hash; bad queries get status 400, and a node without an
//! archive does not offer the protocol. The same test runs with the archive in SQLite and in
//! PostgreSQL.

use std::time::Duration;

use wakurln::{
    clock::now_ns,
    message::WakuMessage,
    node::{self, NodeConfig, NodeError, NodeHandle, StoreConfig},
    store::{Backend, Query, Retention, protocol::WireError},
    topics::StaticShard,
};

const CLUSTER: u16 = 42;

async fn connected(a: &NodeHandle, b: &NodeHandle) {
    let addr = b.listen_addrs().await.unwrap()[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(b.peer_id()));
    a.dial(addr).await.unwrap();
    let topic = StaticShard::new(CLUSTER, 0).pubsub_topic();
    for _ in 0..200 {
        if a.mesh_peers(topic.clone()).await.unwrap() >= 1
            && b.mesh_peers(topic.clone()).await.unwrap() >= 1
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no mesh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pages_through_the_sqlite_archive_of_a_service_node() {
    let dir = std::env::temp_dir().join(format!("wakurln-store-{}", std::process::id()));
    pages_through(&dir, Backend::Sqlite(dir.join("service/archive.sqlite"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pages_through_the_postgres_archive_of_a_service_node() {
    let dir = std::env::temp_dir().join(format!("wakurln-store-pg-{}", std::process::id()));
    let backend = Backend::Postgres {
        url: crate::common::postgres::database("node_store").await,
        connections: 4,
    };
    pages_through(&dir, backend).await;
}

async fn pages_through(dir: &std::path::Path, backend: Backend) {
    let _ = std::fs::remove_dir_all(dir);
    let mut service = NodeConfig::local(dir.join("service"), CLUSTER);
    service.store = Some(StoreConfig {
        backend,
        retention: Retention::default(),
        retention_interval: Duration::from_secs(3600),
        sync: None,
    });
    let service = node::start(service).await.unwrap();
    let client = node::start(NodeConfig::local(dir.join("client"), CLUSTER))
        .await
        .unwrap();
    connected(&client, &service).await;

    let topic = StaticShard::new(CLUSTER, 0).pubsub_topic();
    let start = now_ns();
    let mut hashes = Vec::new();
    let mut delivered = service.delivered();
    for i in 0..250i64 {
        let content = if i % 5 == 0 {
            "/store-test/1/fives/proto"
        } else {
            "/store-test/1/rest/proto"
        };
        let m = WakuMessage::builder(content.parse().unwrap(), format!("m{i:03}").into_bytes())
            .timestamp(start + i * 1_000)
            .build()
            .unwrap();
        hashes.push(client.publish(topic.clone(), m).await.unwrap());
    }
    // An ephemeral message is relayed but not archived.
    let ephemeral = WakuMessage::builder(
        "/store-test/1/rest/proto".parse().unwrap(),
        b"gone".to_vec(),
    )
    .timestamp(start + 999_999)
    .ephemeral(true)
    .build()
    .unwrap();
    client.publish(topic.clone(), ephemeral).await.unwrap();
    let mut seen = 0;
    while seen < 251 {
        tokio::time::timeout(Duration::from_secs(20), delivered.recv())
            .await
            .expect("the service node receives everything")
            .unwrap();
        seen += 1;
    }
    // Nothing to wait for: a store node commits a message before it is delivered.

    // Page through everything, newest first (the default), 100 at a time.
    let mut q = Query {
        include_data: true,
        pubsub_topic: Some(topic.as_str().into()),
        content_topics: vec![
            "/store-test/1/fives/proto".into(),
            "/store-test/1/rest/proto".into(),
        ],
        limit: Some(100),
        ..Query::default()
    };
    let mut pages = Vec::new();
    loop {
        let page = client.store_query(service.peer_id(), &q).await.unwrap();
        let payloads: Vec<String> = page
            .entries
            .iter()
            .map(|e| String::from_utf8(e.message.as_ref().unwrap().payload().to_vec()).unwrap())
            .collect();
        pages.push(payloads);
        match page.cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![100, 100, 50]
    );
    assert_eq!(
        pages[0][0], "m150",
        "the newest page first, in time order within"
    );
    assert_eq!(pages[0][99], "m249");
    assert_eq!(pages[2][0], "m000");

    // Forward, one content topic, a time window (start inclusive, end exclusive).
    let fives = client
        .store_query(
            service.peer_id(),
            &Query {
                include_data: true,
                pubsub_topic: Some(topic.as_str().into()),
                content_topics: vec!["/store-test/1/fives/proto".into()],
                time_start: Some(start + 10_000),
                time_end: Some(start + 50_000),
                forward: true,
                ..Query::default()
            },
        )
        .await
        .unwrap();
    let got: Vec<String> = fives
        .entries
        .iter()
        .map(|e| String::from_utf8(e.message.as_ref().unwrap().payload().to_vec()).unwrap())
        .collect();
    assert_eq!(
        got,
        vec![
            "m010", "m015", "m020", "m025", "m030", "m035", "m040", "m045"
        ]
    );

    // By hash, without data.
    let by_hash = client
        .store_query(
            service.peer_id(),
            &Query {
                message_hashes: vec![hashes[42], hashes[7]],
                ..Query::default()
            },
        )
        .await
        .unwrap();
    let mut found: Vec<_> = by_hash.entries.iter().map(|e| e.hash).collect();
    found.sort();
    let mut wanted = vec![hashes[42], hashes[7]];
    wanted.sort();
    assert_eq!(found, wanted);
    assert!(by_hash.entries.iter().all(|e| e.message.is_none()));

    // Bad queries are answered 400; a node without archive answers 503.
    let err = client
        .store_query(
            service.peer_id(),
            &Query {
                content_topics: vec!["/store-test/1/rest/proto".into()],
                ..Query::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, NodeError::Store(WireError::Status { code: 400, .. })),
        "{err}"
    );
    // A node without an archive does not offer the store protocol at all.
    let err = service
        .store_query(client.peer_id(), &Query::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, NodeError::Request { protocol: "store", source }
            if source.to_string().contains("supports none")),
        "{err}"
    );
    // The local archive holds the 250 non-ephemeral messages.
    let all = service
        .local_store_query(Query {
            limit: Some(100),
            time_start: Some(start + 999_000),
            ..Query::default()
        })
        .await
        .unwrap();
    assert!(
        all.entries.is_empty(),
        "the ephemeral message was not archived"
    );
    client.shutdown().await;
    service.shutdown().await;
}
