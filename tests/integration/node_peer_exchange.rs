//! Peer exchange on loopback: a light client that knows one node learns, through it, the
//! signed record of a service node one hop further, dials it from the record's address and
//! uses its store; requests for nothing get 400, floods get 429, and a requester never gets
//! its own record back.

use std::time::Duration;

use wakurln::{
    enr::services,
    node::{self, NodeConfig, NodeHandle, StoreConfig, keys::KeyKind},
    store::{Query, Retention},
};

const CLUSTER: u16 = 44;

async fn start(
    dir: &std::path::Path,
    name: &str,
    tweak: impl FnOnce(&mut NodeConfig),
) -> NodeHandle {
    let mut c = NodeConfig::local(dir.join(name), CLUSTER);
    c.peer_exchange = true;
    tweak(&mut c);
    node::start(c).await.unwrap()
}

async fn dial(a: &NodeHandle, b: &NodeHandle) {
    let addr = b.listen_addrs().await.unwrap()[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(b.peer_id()));
    a.dial(addr).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_light_client_finds_a_service_node_through_peer_exchange() {
    let dir = std::env::temp_dir().join(format!("wakurln-px-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let service = start(&dir, "service", |c| {
        c.store = Some(StoreConfig {
            backend: wakurln::store::Backend::Sqlite(dir.join("service/archive.sqlite")),
            retention: Retention::default(),
            retention_interval: Duration::from_secs(3600),
            sync: None,
        });
        c.filter = Some(wakurln::filter::Limits::default());
    })
    .await;
    let record = service.enr().expect("a secp256k1 node has a record");
    assert_eq!(record.peer_id(), service.peer_id());
    assert_eq!(record.shards(), Some((CLUSTER, vec![0])));
    assert_eq!(
        record.services(),
        services::RELAY | services::STORE | services::FILTER | services::LIGHTPUSH
    );
    assert!(record.to_text().starts_with("enr:"));

    let hub = start(&dir, "hub", |_| {}).await;
    dial(&hub, &service).await;
    // The hub asks its new peer for records as soon as identify shows it speaks the protocol.
    for _ in 0..100 {
        if hub
            .known_records()
            .iter()
            .any(|r| r.peer_id() == service.peer_id())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        hub.known_records()
            .iter()
            .any(|r| r.peer_id() == service.peer_id()),
        "the hub learned the service's record"
    );

    let mut light = NodeConfig::local(dir.join("light"), CLUSTER);
    light.key_kind = KeyKind::Ed25519;
    let light = node::start(light).await.unwrap();
    assert!(
        light.enr().is_none(),
        "an Ed25519 node cannot sign a record"
    );
    dial(&light, &hub).await;
    let records = light.peer_exchange(hub.peer_id(), 10).await.unwrap();
    let found = records
        .iter()
        .find(|r| r.peer_id() == service.peer_id())
        .expect("the hub hands on the service's record");
    assert!(found.services() & services::STORE != 0);
    let address = found.addresses()[0].clone();
    light.dial(address).await.unwrap();
    let page = light
        .store_query(service.peer_id(), &Query::default())
        .await
        .expect("the service found through peer exchange answers store queries");
    assert!(page.entries.is_empty());

    // The service does not hand the hub its own record back.
    let from_service = hub.peer_exchange(service.peer_id(), 10).await.unwrap();
    assert!(from_service.iter().all(|r| r.peer_id() != hub.peer_id()));
    assert!(
        from_service
            .iter()
            .any(|r| r.peer_id() == service.peer_id())
    );

    // Asking for nothing is malformed; asking too often is refused.
    let err = light.peer_exchange(hub.peer_id(), 0).await.unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");
    let mut refused = 0;
    for _ in 0..35 {
        if let Err(e) = light.peer_exchange(hub.peer_id(), 1).await {
            assert!(e.to_string().contains("429"), "{e}");
            refused += 1;
        }
    }
    assert!(refused >= 3, "a flood is refused ({refused} refusals)");
}
