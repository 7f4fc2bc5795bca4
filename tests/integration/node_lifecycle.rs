//! A running RLN node through time: epochs roll over (budgets, lending quotas and the
//! nullifier log start afresh), the root changes and the service restarts under a lending
//! pool, and a membership is erased on the chain under a publishing node.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use alloy::providers::Provider;
use libp2p::{Multiaddr, multiaddr::Protocol};
use wakurln::{
    chain::{devnet::Devnet as LocalChain, membership},
    clock::now_ns,
    lightpush::{lending::LendingRules, status},
    message::WakuMessage,
    node::{NodeConfig, NodeError, NodeEvent, NodeHandle},
    relay::{pipeline::RlnRules, publisher::PublishError},
    rln::identity::Identity,
    topics::{PubsubTopic, StaticShard},
};

use crate::common::devnet::{self, Devnet};

const CLUSTER: u16 = 51;

fn topic() -> PubsubTopic {
    StaticShard::new(CLUSTER, 0).pubsub_topic()
}

fn message(text: &str) -> WakuMessage {
    WakuMessage::builder(
        "/lifecycle/1/t/proto".parse().unwrap(),
        text.as_bytes().to_vec(),
    )
    .timestamp(now_ns())
    .build()
    .unwrap()
}

async fn wait_mesh(nodes: &[&NodeHandle]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in nodes {
        while n.mesh_peers(topic()).await.unwrap() == 0 {
            assert!(Instant::now() < deadline, "no mesh");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn tcp_port(address: &Multiaddr) -> u16 {
    address
        .iter()
        .find_map(|p| match p {
            Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap()
}

const PERIOD: u64 = 4;

fn epoch_now() -> u64 {
    now_ns() as u64 / 1_000_000_000 / PERIOD
}

/// Waits for the first epoch at or after `at_least` to begin, and returns it.
async fn epoch_start(at_least: u64) -> u64 {
    let first = epoch_now();
    loop {
        let e = epoch_now();
        if e != first && e >= at_least {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn short_epochs(config: &mut NodeConfig) {
    config.rln.as_mut().unwrap().rules = RlnRules {
        epoch_period: PERIOD,
        max_clock_drift: Duration::from_secs(PERIOD),
    };
}

fn shares_of_epoch(db: &Path, epoch: u64) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM shares WHERE epoch = ?1",
            [epoch as i64],
            |r| r.get(0),
        )
        .unwrap()
}

/// What one epoch allows: two own messages (the second over the budget of 1) and two
/// proofless pushes by one client (the second over its quota of 1). `None` when the epoch
/// ended before all four were done.
async fn one_epoch(
    service: &NodeHandle,
    light: &NodeHandle,
    round: &str,
) -> Option<(u64, [String; 2], [u32; 2])> {
    let e = epoch_start(0).await;
    let own = [
        service
            .publish(topic(), message(&format!("{round} own 1")))
            .await,
        service
            .publish(topic(), message(&format!("{round} own 2")))
            .await,
    ];
    let mut lent = [0u32; 2];
    for (i, l) in lent.iter_mut().enumerate() {
        *l = light
            .lightpush(
                service.peer_id(),
                Some(topic()),
                &message(&format!("{round} lent {i}")),
            )
            .await
            .unwrap()
            .status_code;
    }
    if epoch_now() != e {
        return None;
    }
    let own = own.map(|r| match r {
        Ok(_) => "ok".to_owned(),
        Err(NodeError::Publish(e @ PublishError::BudgetSpent { .. })) => format!("spent: {e}"),
        Err(e) => format!("other: {e}"),
    });
    Some((e, own, lent))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_epoch_rollover_resets_budgets_and_quotas_and_prunes_the_nullifier_log() {
    let net = Devnet::start("lifecycle-epochs", CLUSTER).await;
    let (own, _) = net.member("own", 1).await;
    let (pool, _) = net.member("pool", 10).await;
    let mut far = net.config("far", None, &[]);
    short_epochs(&mut far);
    let far = devnet::start(far).await;
    let mut service = net.config("service", Some(&own), &[devnet::address(&far).await]);
    short_epochs(&mut service);
    Devnet::lend_from(
        &mut service,
        &pool,
        LendingRules {
            per_client_quota: 1,
            reserve: 0,
        },
    );
    let service = devnet::start(service).await;
    let mut light = net.config("light", None, &[devnet::address(&service).await]);
    short_epochs(&mut light);
    let light = devnet::start(light).await;
    wait_mesh(&[&service, &far, &light]).await;
    let mut events = far.events();
    let db = net.dir.join("service/nullifiers.sqlite");

    // Retried when an epoch boundary falls in the middle of the round.
    let mut first = None;
    for _ in 0..5 {
        first = one_epoch(&service, &light, "first").await;
        if first.is_some() {
            break;
        }
    }
    let (e1, own1, lent1) = first.expect("a round within one epoch");
    assert_eq!(own1[0], "ok");
    assert!(own1[1].starts_with("spent"), "{own1:?}");
    assert_eq!(lent1, [status::OK, status::TOO_MANY_REQUESTS]);
    assert!(
        shares_of_epoch(&db, e1) >= 2,
        "own and lent shares of epoch {e1} are logged"
    );

    // Two epochs later (the log keeps one epoch back for clock drift): all afresh.
    epoch_start(e1 + 2).await;
    let mut second = None;
    for _ in 0..5 {
        second = one_epoch(&service, &light, "second").await;
        if second.is_some() {
            break;
        }
    }
    let (e2, own2, lent2) = second.expect("a round within one epoch");
    assert!(e2 >= e1 + 2);
    assert_eq!(own2[0], "ok", "the budget is back");
    assert!(own2[1].starts_with("spent"), "{own2:?}");
    assert_eq!(
        lent2,
        [status::OK, status::TOO_MANY_REQUESTS],
        "the quota is back"
    );
    assert!(shares_of_epoch(&db, e2) >= 2);
    assert_eq!(
        shares_of_epoch(&db, e1),
        0,
        "epoch {e1} was pruned from the log"
    );

    // The far node took everything as valid: no spam across the epochs.
    while let Ok(e) = events.try_recv() {
        assert!(!matches!(e, NodeEvent::Spam { .. }), "{e:?}");
    }
    for n in [&light, &service, &far] {
        n.shutdown().await;
    }
}

/// How many times the node prepared its memberships for a new root in the background.
fn refreshes(node: &NodeHandle) -> u64 {
    let text = node.metrics().encode();
    text.lines()
        .find_map(|l| l.strip_prefix("waku_rln_member_refresh_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no member refresh histogram in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lending_survives_a_root_change_and_a_service_restart() {
    let net = Devnet::start("lifecycle-lending", CLUSTER).await;
    let (pool, _) = net.member("pool", 20).await;
    let far = devnet::start(net.config("far", None, &[])).await;
    let far_address = devnet::address(&far).await;
    let service_config = |port: u16| {
        let mut c = net.config("service", None, std::slice::from_ref(&far_address));
        c.listen = vec![format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()];
        Devnet::lend_from(
            &mut c,
            &pool,
            LendingRules {
                per_client_quota: 100,
                reserve: 0,
            },
        );
        c
    };
    let service = devnet::start(service_config(0)).await;
    let service_address = devnet::address(&service).await;
    let light =
        devnet::start(net.config("light", None, std::slice::from_ref(&service_address))).await;
    wait_mesh(&[&service, &far, &light]).await;
    let mut events = far.events();
    let push = |text: String| {
        let (light, service) = (&light, service_address.clone());
        async move {
            let peer = match service.iter().last() {
                Some(Protocol::P2p(p)) => p,
                _ => unreachable!(),
            };
            light
                .lightpush(peer, Some(topic()), &message(&text))
                .await
                .unwrap()
        }
    };
    // Subscribed before the push, so the message cannot slip by.
    let arrives = |text: &str| {
        let text = text.to_owned();
        let mut delivered = far.delivered();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let d = tokio::time::timeout(left, delivered.recv())
                    .await
                    .unwrap_or_else(|_| panic!("{text:?} never reached the far node"))
                    .unwrap();
                if d.message.payload().as_ref() == text.as_bytes() {
                    return;
                }
            }
        }
    };

    let wait = arrives("before");
    assert_eq!(push("before".into()).await.status_code, status::OK);
    wait.await;

    // A registration changes the root: the pool proves on the new one.
    let chain = net.client().await;
    LocalChain::register(&chain, &Identity::generate(), 1)
        .await
        .unwrap();
    let head = chain.provider().get_block_number().await.unwrap();
    service.wait_synced_to(head).await.unwrap();
    far.wait_synced_to(head).await.unwrap();
    // The pool was prepared in the background at start, and again for the new root (only
    // the path levels the registration changed), before any light client asked for it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while refreshes(&service) < 2 {
        assert!(
            Instant::now() < deadline,
            "the pool was not prepared for the new root in the background"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wait = arrives("after the root changed");
    let r = push("after the root changed".into()).await;
    assert_eq!(r.status_code, status::OK, "{r:?}");
    wait.await;

    // The service restarts on its port: its pool's message ids survive, so nothing it lends
    // now collides with what it lent before.
    let port = tcp_port(&service_address);
    service.shutdown().await;
    drop(service);
    let service = devnet::start(service_config(port)).await;
    wait_mesh(&[&service]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while light.mesh_peers(topic()).await.unwrap() == 0 {
        assert!(
            Instant::now() < deadline,
            "the light node did not reconnect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..3 {
        let text = format!("after the restart {i}");
        let wait = arrives(&text);
        let r = push(text).await;
        assert_eq!(r.status_code, status::OK, "{r:?}");
        wait.await;
    }
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(e, NodeEvent::Spam { .. }),
            "a lent proof collided: {e:?}"
        );
    }
    for n in [&light, &service, &far] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_with_an_erased_membership_is_refused_with_the_reason() {
    let net = Devnet::start("lifecycle-erased", CLUSTER).await;
    let (keystore, identity) = net.member("erased", 2).await;
    let node = devnet::start(net.config("node", Some(&keystore), &[])).await;
    node.publish(topic(), message("while a member"))
        .await
        .unwrap();

    // Long past expiry and grace, anyone may erase it; its leaf becomes zero.
    let chain = net.client().await;
    let ten_years = 10 * 365 * 24 * 3600u64;
    let _: serde_json::Value = chain
        .provider()
        .raw_request("evm_increaseTime".into(), [ten_years])
        .await
        .unwrap();
    let _: serde_json::Value = chain
        .provider()
        .raw_request("evm_mine".into(), ())
        .await
        .unwrap();
    membership::send_all(
        &chain,
        &[membership::erase_transaction(&chain, identity.commitment)],
    )
    .await
    .unwrap();
    let head = chain.provider().get_block_number().await.unwrap();
    node.wait_synced_to(head).await.unwrap();
    match node.publish(topic(), message("after the erase")).await {
        Err(NodeError::Publish(e @ PublishError::NotAMember { .. })) => {
            assert!(e.to_string().contains("erased"), "{e}");
        }
        other => panic!("publishing went on: {other:?}"),
    }
    node.shutdown().await;
}
