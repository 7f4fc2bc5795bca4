//! The reference node's Grafana dashboard against this node: a real Prometheus scrapes a node's
//! metrics listener (job `nwaku`, instance `nwaku:8003`, as the compose project names them)
//! while the node relays, proves, archives and answers a store query, and every query of the
//! dashboard about the node (`tests/data/reference-dashboard-node-queries.txt`) must find a
//! series, except the two about the Nim runtime's garbage collector, which this node has not.
//! Our own dashboard (`monitoring/grafana/dashboards/wakurln.json`) is checked the same way.

use std::{
    str::FromStr,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;
use wakurln::{
    discovery,
    message::WakuMessage,
    node::{NodeHandle, StoreConfig},
    store::{Query, Retention},
    topics::{ContentTopic, PubsubTopic, StaticShard},
};

use crate::common::{
    devnet::{Devnet, address, start},
    prometheus::Prometheus,
};

const CLUSTER: u16 = 61;

/// Queries of the reference dashboard no node but the reference node can answer: they read the
/// Nim runtime's garbage collector.
const NIM_RUNTIME: [&str; 2] = [
    "nim_gc_heap_instance_occupied_bytes{}",
    "nim_gc_mem_bytes{}",
];

/// Queries of our dashboard that show data only once something is refused.
const ON_FIRST_REFUSAL: [&str; 2] = [
    "rate(libp2p_refused_connections_total[$__rate_interval])",
    "rate(waku_service_requests_limited_total[$__rate_interval])",
];

fn message(text: &str) -> WakuMessage {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    WakuMessage::builder(
        ContentTopic::from_str("/dashboard/1/chat/proto").unwrap(),
        text.as_bytes().to_vec(),
    )
    .timestamp(now.as_nanos() as i64)
    .build()
    .unwrap()
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The queries of a dashboard file: the reference's list (one per line, `#` comments) or the
/// `expr` of every target of a Grafana dashboard.
pub(crate) fn queries_of_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

pub(crate) fn queries_of_dashboard(dashboard: &Value) -> Vec<String> {
    fn walk(panels: &[Value], out: &mut Vec<String>) {
        for p in panels {
            if let Some(inner) = p["panels"].as_array() {
                walk(inner, out);
            }
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push(e.to_owned());
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dashboard["panels"].as_array().expect("panels"), &mut out);
    out
}

/// A Grafana query as Prometheus takes it: the dashboard variables filled in.
fn evaluable(query: &str) -> String {
    query
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$Interval", "1m")
}

/// Two RLN nodes: `a` (store, discv5, lending, metrics) and `b` (its peer), with traffic
/// through `a`.
async fn busy_node(net: &Devnet) -> (NodeHandle, NodeHandle) {
    let (ka, _) = net.member("a", 20).await;
    let (kb, _) = net.member("b", 20).await;
    let (pool, _) = net.member("pool", 20).await;
    let mut cb = net.config("b", Some(&kb), &[]);
    cb.discv5 = Some(discovery::Config {
        udp_port: 0,
        bootstrap: Vec::new(),
        interval: Duration::from_millis(500),
    });
    let b = start(cb).await;
    let mut ca = net.config("a", Some(&ka), &[address(&b).await]);
    ca.discv5 = Some(discovery::Config {
        udp_port: 0,
        bootstrap: vec![b.enr().expect("b has a record")],
        interval: Duration::from_millis(500),
    });
    ca.store = Some(StoreConfig {
        backend: wakurln::store::Backend::Sqlite(net.dir.join("a-archive.sqlite")),
        retention: Retention::default(),
        retention_interval: Duration::from_secs(1),
        sync: None,
    });
    Devnet::lend_from(
        &mut ca,
        &pool,
        wakurln::lightpush::lending::LendingRules {
            per_client_quota: 10,
            reserve: 0,
        },
    );
    let a = start(ca).await;
    let topic: PubsubTopic = StaticShard::new(CLUSTER, 0).pubsub_topic();
    wait_for("the mesh", async || {
        a.mesh_peers(topic.clone()).await.unwrap() >= 1
            && b.mesh_peers(topic.clone()).await.unwrap() >= 1
    })
    .await;
    // Relayed to a, published by a, archived by a, and a store query a serves.
    b.publish(topic.clone(), message("from b")).await.unwrap();
    a.publish(topic.clone(), message("from a")).await.unwrap();
    let lent = b
        .lightpush(a.peer_id(), Some(topic.clone()), &message("lent"))
        .await
        .unwrap();
    assert_eq!(lent.status_code, 200, "{lent:?}");
    wait_for("a's archive", async || {
        let page = b
            .store_query(
                a.peer_id(),
                &Query {
                    include_data: true,
                    ..Query::default()
                },
            )
            .await;
        page.is_ok_and(|p| p.entries.len() == 3)
    })
    .await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_query_of_the_reference_dashboard_finds_a_series() {
    let net = Devnet::start("dashboard", CLUSTER).await;
    let (a, _b) = busy_node(&net).await;
    let metrics = wakurln::rest::serve_metrics(a.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let prometheus = Prometheus::start(
        &net.dir.join("prometheus"),
        &format!(
            r#"
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: nwaku
    static_configs:
      - targets: ["{metrics}"]
    relabel_configs:
      - target_label: instance
        replacement: "nwaku:8003"
"#
        ),
    )
    .await;
    // Rates need two samples of every series: the discv5 lookups and the archive's per-shard
    // counts arrive within seconds; then a few more scrapes.
    wait_for("three scrapes with discv5 finds", async || {
        prometheus
            .query("count_over_time(waku_discv5_discovered_per_shard[1m]) >= 3")
            .await
            .len()
            == 1
    })
    .await;

    let reference = queries_of_lines(include_str!("../data/reference-dashboard-node-queries.txt"));
    assert_eq!(reference.len(), 45);
    let mut with_data = Vec::new();
    let mut without = Vec::new();
    for q in &reference {
        if prometheus.query(&evaluable(q)).await.is_empty() {
            without.push(q.as_str());
        } else {
            with_data.push(q.as_str());
        }
    }
    eprintln!(
        "reference dashboard: {} of {} node queries show data; without: {without:?}",
        with_data.len(),
        reference.len()
    );
    assert_eq!(without, NIM_RUNTIME, "queries without data");

    // The values say what happened: checked as queries that match only when they hold.
    for holds in [
        r#"libp2p_network_bytes_total{direction="in"} > 0"#,
        r#"libp2p_network_bytes_total{direction="out"} > 0"#,
        r#"waku_node_messages_total{type="relay"} >= 1"#,
        r#"waku_relay_network_bytes_total{direction="in",type="net"} > 0"#,
        r#"waku_relay_network_bytes_total{direction="out"} > 0"#,
        r#"waku_archive_messages_per_shard{shard="0"} == 3"#,
        r#"waku_service_requests_total{service="store",state="served"} >= 1"#,
        r#"waku_service_requests_total{service="lightpush",state="served"} == 1"#,
        r#"waku_service_network_bytes_total{service="store",direction="out"} > 0"#,
        r#"waku_connected_peers{direction="out",protocol="/vac/waku/relay/2.0.0"} == 1"#,
        r#"waku_connected_peers_per_shard{shard="0"} == 1"#,
        r#"waku_connected_peers_per_agent{agent=~"wakurln/.*"} == 1"#,
        r#"waku_discv5_discovered_per_shard{shard="0"} >= 1"#,
        r#"routing_table_nodes{state=""} >= 1"#,
        r#"libp2p_pubsub_topics == 1"#,
        r#"waku_rln_total_generated_proofs >= 1"#,
        r#"waku_rln_remaining_proofs_per_epoch == 19"#,
        r#"waku_rln_proof_verification_total_total >= 1"#,
        r#"waku_rln_valid_messages_total_total >= 1"#,
        r#"waku_rln_number_registered_memberships == 3"#,
        r#"waku_rln_lent_proofs_total >= 1"#,
        r#"process_resident_memory_bytes > 10e6"#,
        r#"waku_histogram_message_size_count >= 2"#,
    ] {
        assert!(
            !prometheus.query(holds).await.is_empty(),
            "does not hold: {holds}"
        );
    }

    // Our own dashboard: every query shows data.
    let ours: Value = serde_json::from_str(include_str!(
        "../../monitoring/grafana/dashboards/wakurln.json"
    ))
    .unwrap();
    let queries = queries_of_dashboard(&ours);
    assert!(queries.len() >= 45, "{} queries", queries.len());
    let mut empty = Vec::new();
    for q in &queries {
        if prometheus.query(&evaluable(q)).await.is_empty() {
            empty.push(q.clone());
        }
    }
    assert_eq!(
        empty, ON_FIRST_REFUSAL,
        "our dashboard's queries without data"
    );
    eprintln!(
        "our dashboard: {} of {} queries show data",
        queries.len() - empty.len(),
        queries.len()
    );
}

#[test]
fn the_prometheus_configuration_passes_promtool() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring/prometheus.yml");
    let out = std::process::Command::new(crate::common::prometheus::binary("promtool"))
        .args(["check", "config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check config {}:\n{}{}",
        config.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
