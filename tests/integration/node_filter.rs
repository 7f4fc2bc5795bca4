//! Filter v2 between nodes on loopback: a client subscribes with a service node and receives,
//! on one push stream, what a third node relays; ping, unsubscribe and unsubscribe-all answer
//! as the protocol says; limits (content topics per request, subscribers, criteria per peer,
//! requests per minute) get 400, 503 and 429; subscriptions expire after the TTL; and a
//! subscriber that vanishes is dropped without holding up the others.

use std::time::Duration;

use wakurln::{
    clock::now_ns,
    filter::{Limits, protocol::Kind},
    message::WakuMessage,
    node::{self, NodeConfig, NodeHandle},
    topics::{ContentTopic, PubsubTopic, StaticShard},
};

const CLUSTER: u16 = 43;

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("wakurln-filter-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

async fn start(dir: &std::path::Path, name: &str, filter: Option<Limits>) -> NodeHandle {
    let mut c = NodeConfig::local(dir.join(name), CLUSTER);
    c.filter = filter;
    node::start(c).await.unwrap()
}

async fn dial(a: &NodeHandle, b: &NodeHandle) {
    let addr = b.listen_addrs().await.unwrap()[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(b.peer_id()));
    a.dial(addr).await.unwrap();
}

async fn meshed(a: &NodeHandle, b: &NodeHandle, topic: &PubsubTopic) {
    for _ in 0..200 {
        if a.mesh_peers(topic.clone()).await.unwrap() >= 1
            && b.mesh_peers(topic.clone()).await.unwrap() >= 1
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no mesh between the relay nodes");
}

fn message(content: &ContentTopic, payload: String) -> WakuMessage {
    WakuMessage::builder(content.clone(), payload.into_bytes())
        .timestamp(now_ns())
        .build()
        .unwrap()
}

async fn ask(
    client: &NodeHandle,
    service: &NodeHandle,
    kind: Kind,
    topic: &PubsubTopic,
    contents: &[ContentTopic],
) -> u32 {
    client
        .filter_request(service.peer_id(), kind, Some(topic), contents)
        .await
        .unwrap()
        .status_code
}

/// Asserts that the service answers the request with `code`.
async fn answers(
    client: &NodeHandle,
    service: &NodeHandle,
    kind: Kind,
    topic: &PubsubTopic,
    contents: &[ContentTopic],
    code: u32,
) {
    assert_eq!(
        ask(client, service, kind, topic, contents).await,
        code,
        "{kind:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_receives_relayed_messages_on_one_push_stream() {
    let d = dir("push");
    let service = start(&d, "service", Some(Limits::default())).await;
    let relay = start(&d, "relay", None).await;
    let client = start(&d, "client", None).await;
    let topic = StaticShard::new(CLUSTER, 0).pubsub_topic();
    dial(&relay, &service).await;
    meshed(&relay, &service, &topic).await;
    dial(&client, &service).await;

    let wanted: ContentTopic = "/filter-test/1/wanted/proto".parse().unwrap();
    let other: ContentTopic = "/filter-test/1/other/proto".parse().unwrap();
    // Pinging before subscribing: no subscription.
    answers(&client, &service, Kind::SubscriberPing, &topic, &[], 404).await;
    answers(
        &client,
        &service,
        Kind::Subscribe,
        &topic,
        std::slice::from_ref(&wanted),
        200,
    )
    .await;
    answers(&client, &service, Kind::SubscriberPing, &topic, &[], 200).await;
    assert_eq!(service.filter_service().unwrap().subscriber_count(), 1);

    let mut pushed = client.filter_messages();
    for i in 0..20 {
        relay
            .publish(topic.clone(), message(&wanted, format!("w{i:02}")))
            .await
            .unwrap();
        relay
            .publish(topic.clone(), message(&other, format!("o{i:02}")))
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 20 {
        let p = tokio::time::timeout(Duration::from_secs(10), pushed.recv())
            .await
            .expect("the service pushes every wanted message")
            .unwrap();
        assert_eq!(p.from, service.peer_id());
        assert_eq!(p.topic, topic);
        assert_eq!(
            p.message.content_topic(),
            &wanted,
            "only the subscribed content topic"
        );
        got.push(String::from_utf8(p.message.payload().to_vec()).unwrap());
    }
    // Relay validates messages concurrently, so the service may deliver them in another
    // order than they were published; each must arrive exactly once.
    got.sort();
    let expected: Vec<String> = (0..20).map(|i| format!("w{i:02}")).collect();
    assert_eq!(got, expected, "every wanted message exactly once");
    assert_eq!(
        client.filter_client().streams_accepted(),
        1,
        "one push stream for all pushes"
    );

    // Unsubscribing the only content topic ends the subscription.
    answers(
        &client,
        &service,
        Kind::Unsubscribe,
        &topic,
        std::slice::from_ref(&other),
        404,
    )
    .await;
    answers(
        &client,
        &service,
        Kind::Unsubscribe,
        &topic,
        std::slice::from_ref(&wanted),
        200,
    )
    .await;
    answers(&client, &service, Kind::SubscriberPing, &topic, &[], 404).await;
    relay
        .publish(topic.clone(), message(&wanted, "late".into()))
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(1), pushed.recv())
            .await
            .is_err(),
        "nothing is pushed after unsubscribing"
    );
    answers(
        &client,
        &service,
        Kind::Subscribe,
        &topic,
        std::slice::from_ref(&wanted),
        200,
    )
    .await;
    answers(&client, &service, Kind::UnsubscribeAll, &topic, &[], 200).await;
    answers(&client, &service, Kind::UnsubscribeAll, &topic, &[], 404).await;

    // A node that offers no filter service does not speak the protocol as a server.
    let err = service
        .filter_request(client.peer_id(), Kind::Subscribe, Some(&topic), &[wanted])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("supports none"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_enforced_with_the_right_codes() {
    let d = dir("limits");
    let limits = Limits {
        max_subscribers: 1,
        max_criteria_per_peer: 5,
        requests_per_minute: 30,
        ..Limits::default()
    };
    let service = start(&d, "service", Some(limits)).await;
    let first = start(&d, "first", None).await;
    let second = start(&d, "second", None).await;
    dial(&first, &service).await;
    dial(&second, &service).await;
    let topic = StaticShard::new(CLUSTER, 0).pubsub_topic();
    let topics = |n: usize| -> Vec<ContentTopic> {
        (0..n)
            .map(|i| format!("/limits/1/t{i}/proto").parse().unwrap())
            .collect()
    };

    // More than 100 content topics in one request is malformed.
    answers(&first, &service, Kind::Subscribe, &topic, &topics(101), 400).await;
    // Nothing at all, or a topic that is not one.
    let r = first
        .filter_request(service.peer_id(), Kind::Subscribe, Some(&topic), &[])
        .await
        .unwrap();
    assert_eq!(r.status_code, 400);
    assert!(r.status_desc.unwrap().contains("no content topic"));
    // Five criteria fit, a sixth does not.
    answers(&first, &service, Kind::Subscribe, &topic, &topics(5), 200).await;
    let more: Vec<ContentTopic> = vec!["/limits/1/sixth/proto".parse().unwrap()];
    answers(&first, &service, Kind::Subscribe, &topic, &more, 503).await;
    // Re-subscribing what it already has is fine.
    answers(&first, &service, Kind::Subscribe, &topic, &topics(3), 200).await;
    assert_eq!(
        service
            .filter_service()
            .unwrap()
            .criteria_of(&first.peer_id()),
        5
    );
    // One subscriber at most: the second peer is refused.
    answers(&second, &service, Kind::Subscribe, &topic, &topics(1), 503).await;

    // A flood of requests from one peer: 429 once it is over its rate, and its
    // subscription is untouched.
    let mut codes = Vec::new();
    for _ in 0..40 {
        codes.push(ask(&second, &service, Kind::SubscriberPing, &topic, &[]).await);
    }
    assert!(codes.contains(&429), "{codes:?}");
    // 30 a minute: the refused subscribe above counted, so 29 pings get through.
    assert_eq!(codes.iter().filter(|c| **c != 429).count(), 29, "{codes:?}");
    assert_eq!(
        service
            .filter_service()
            .unwrap()
            .criteria_of(&first.peer_id()),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_expire_and_vanished_subscribers_are_dropped() {
    let d = dir("expiry");
    let limits = Limits {
        ttl: Duration::from_secs(1),
        ..Limits::default()
    };
    let service = start(&d, "service", Some(limits)).await;
    let client = start(&d, "client", None).await;
    dial(&client, &service).await;
    let topic = StaticShard::new(CLUSTER, 0).pubsub_topic();
    let content: ContentTopic = "/expiry/1/t/proto".parse().unwrap();
    answers(
        &client,
        &service,
        Kind::Subscribe,
        &topic,
        std::slice::from_ref(&content),
        200,
    )
    .await;
    // The service's sweep drops the unpinged subscription once its second is up.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while service
        .filter_service()
        .unwrap()
        .criteria_of(&client.peer_id())
        > 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the subscription never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        ask(&client, &service, Kind::SubscriberPing, &topic, &[]).await,
        404,
        "the subscription expired without pings"
    );

    // With a long TTL: a subscriber that goes away is dropped once pushes to it fail, while
    // a live subscriber keeps receiving.
    let d = dir("vanish");
    let service = start(&d, "service", Some(Limits::default())).await;
    let relay = start(&d, "relay", None).await;
    let live = start(&d, "live", None).await;
    let gone = start(&d, "gone", None).await;
    dial(&relay, &service).await;
    meshed(&relay, &service, &topic).await;
    dial(&live, &service).await;
    dial(&gone, &service).await;
    answers(
        &live,
        &service,
        Kind::Subscribe,
        &topic,
        std::slice::from_ref(&content),
        200,
    )
    .await;
    answers(
        &gone,
        &service,
        Kind::Subscribe,
        &topic,
        std::slice::from_ref(&content),
        200,
    )
    .await;
    gone.shutdown().await;
    let mut pushed = live.filter_messages();
    let filter = service.filter_service().unwrap();
    for i in 0..10 {
        relay
            .publish(topic.clone(), message(&content, format!("v{i}")))
            .await
            .unwrap();
        let p = tokio::time::timeout(Duration::from_secs(10), pushed.recv())
            .await
            .expect("the live subscriber is not held up")
            .unwrap();
        assert_eq!(p.message.payload().as_ref(), format!("v{i}").as_bytes());
    }
    for _ in 0..300 {
        if filter.subscriber_count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        filter.subscriber_count(),
        1,
        "the vanished subscriber was dropped"
    );
    assert!(filter.counters().vanished.get() >= 1);
}
