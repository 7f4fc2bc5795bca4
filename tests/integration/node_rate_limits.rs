//! Per-protocol request rate limits (`--rate-limit PROTOCOL:VOLUME/PERIOD`) on loopback: each of
//! store, lightpush, filter and peer exchange answers its own "too many requests" status (429)
//! once a peer has used its volume, and new peer ids from the same address get five peers'
//! worth in all, not a fresh volume each.

use std::time::Duration;

use wakurln::{
    clock::now_ns,
    filter::{Limits, protocol::Kind},
    message::WakuMessage,
    node::{self, NodeConfig, NodeError, NodeHandle, StoreConfig},
    peer_exchange::AnswerError,
    store::{Query, Retention, protocol::WireError},
    topics::{ContentTopic, StaticShard},
};

const CLUSTER: u16 = 48;

async fn client(dir: &std::path::Path, name: &str, service: &NodeHandle) -> NodeHandle {
    let node = node::start(NodeConfig::local(dir.join(name), CLUSTER))
        .await
        .unwrap();
    let address = service.listen_addrs().await.unwrap()[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(service.peer_id()));
    node.dial(address).await.unwrap();
    for _ in 0..100 {
        if node
            .peers()
            .await
            .unwrap()
            .iter()
            .any(|p| p.peer == service.peer_id())
            && service
                .peers()
                .await
                .unwrap()
                .iter()
                .any(|p| p.peer == node.peer_id())
        {
            return node;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} did not connect to the service");
}

fn store_refused(result: Result<wakurln::store::Page, NodeError>) -> bool {
    match result {
        Ok(_) => false,
        Err(NodeError::Store(WireError::Status { code: 429, .. })) => true,
        Err(e) => panic!("unexpected store answer: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_protocol_answers_429_past_its_rate_limit() {
    let dir = std::env::temp_dir().join(format!("wakurln-rate-limits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut c = NodeConfig::local(dir.join("service"), CLUSTER);
    c.store = Some(StoreConfig {
        backend: wakurln::store::Backend::Sqlite(dir.join("service/archive.sqlite")),
        retention: Retention::default(),
        retention_interval: Duration::from_secs(3_600),
        sync: None,
    });
    c.filter = Some(Limits::default());
    c.peer_exchange = true;
    c.rate_limits = ["store:2/1h", "lightpush:2/1h", "filter:2/1h", "px:2/1h"]
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    let service = node::start(c).await.unwrap();
    let first = client(&dir, "client0", &service).await;
    let peer = service.peer_id();

    // Store: two queries, then 429.
    for _ in 0..2 {
        assert!(!store_refused(
            first.store_query(peer, &Query::default()).await
        ));
    }
    assert!(store_refused(
        first.store_query(peer, &Query::default()).await
    ));

    // Lightpush: two pushes are served (whatever the relay says), the third is 429.
    let topic = StaticShard::new(CLUSTER, 0).pubsub_topic();
    let message = WakuMessage::builder(
        "/rate-limits/1/push/proto".parse::<ContentTopic>().unwrap(),
        b"hi".to_vec(),
    )
    .timestamp(now_ns())
    .build()
    .unwrap();
    for _ in 0..2 {
        let r = first
            .lightpush(peer, Some(topic.clone()), &message)
            .await
            .unwrap();
        assert_ne!(r.status_code, 429, "{r:?}");
    }
    let r = first
        .lightpush(peer, Some(topic.clone()), &message)
        .await
        .unwrap();
    assert_eq!(r.status_code, 429, "{r:?}");

    // Filter: two pings are answered (404: no subscription), the third is 429.
    for _ in 0..2 {
        let r = first
            .filter_request(peer, Kind::SubscriberPing, None, &[])
            .await
            .unwrap();
        assert_ne!(r.status_code, 429, "{r:?}");
    }
    let r = first
        .filter_request(peer, Kind::SubscriberPing, None, &[])
        .await
        .unwrap();
    assert_eq!(r.status_code, 429, "{r:?}");

    // Peer exchange: two answers, then 429.
    for _ in 0..2 {
        first.peer_exchange(peer, 5).await.unwrap();
    }
    let err = first.peer_exchange(peer, 5).await.unwrap_err();
    assert!(
        matches!(
            err,
            NodeError::PeerExchange(AnswerError::Status { code: 429, .. })
        ),
        "{err}"
    );

    // New peer ids from the same address: the address has 10 store queries per period (five
    // peers' worth), 2 of them used above. Four more clients use the other 8 ...
    for i in 1..=4 {
        let other = client(&dir, &format!("client{i}"), &service).await;
        for _ in 0..2 {
            assert!(!store_refused(
                other.store_query(peer, &Query::default()).await
            ));
        }
    }
    // ... and a fifth, which never asked before, is refused at once.
    let fresh = client(&dir, "client5", &service).await;
    assert!(store_refused(
        fresh.store_query(peer, &Query::default()).await
    ));

    // The refusals were counted.
    let metrics = service.metrics().encode();
    for service in ["store", "lightpush", "filter", "px"] {
        assert!(
            metrics.contains(&format!(
                "waku_service_requests_limited_total{{type=\"{service}\"}}"
            )),
            "{service}: {metrics}"
        );
    }
}
