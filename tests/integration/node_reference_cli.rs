//! An operator's reference-node setup run as it is: the compose project's own command line
//! (logos-delivery-compose @ b6502884, `run_node.sh`, its `exec` line with the shell variables
//! filled in) and a TOML file with the reference node's keys. The node starts, syncs, serves
//! REST and a separate metrics listener, answers CORS as configured, and says in one line what
//! it accepts without acting on.

use std::{
    ffi::OsString,
    net::{TcpListener, UdpSocket},
    time::{Duration, Instant},
};

use alloy::{providers::Provider, transports::http::reqwest};

use crate::common::{
    devnet::{Devnet, PASSWORD, circuit_dir},
    process::{NodeProcess, args},
};

/// A secp256k1 key as the compose project's NODEKEY variable holds it.
const NODEKEY: &str = "1122334455667788990011223344556677889900112233445566778899001122";

/// The peer id the node must have with [`NODEKEY`].
fn expected_peer_id() -> String {
    wakurln::node::keys::from_hex(wakurln::node::keys::KeyKind::Secp256k1, NODEKEY)
        .unwrap()
        .public()
        .to_peer_id()
        .to_string()
}

/// A --ports-shift under which the compose project's ports (TCP 30304, UDP 9005, metrics 8003,
/// REST 8645) are all free here.
fn free_shift() -> u16 {
    for shift in (1_000..20_000).step_by(397) {
        let free = [30_304u16, 8_003, 8_645]
            .iter()
            .all(|p| TcpListener::bind(("0.0.0.0", p + shift)).is_ok())
            && UdpSocket::bind(("0.0.0.0", 9_005 + shift)).is_ok();
        if free {
            return shift;
        }
    }
    panic!("no free port shift for the compose project's ports");
}

async fn get(url: &str, origin: Option<&str>) -> (u16, String, reqwest::header::HeaderMap) {
    let client = reqwest::Client::new();
    let mut request = client.get(url);
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.text().await.unwrap(), headers)
}

async fn preflight(url: &str, origin: &str) -> (u16, reqwest::header::HeaderMap) {
    let response = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, url)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.headers().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_projects_command_line_starts_a_node() {
    let net = Devnet::start("compose-cli", 1).await;
    let (keystore, _) = net.member("compose", 20).await;
    // The node reads the chain a couple of blocks behind its head, as on the network.
    let provider =
        alloy::providers::ProviderBuilder::new().connect_http(net.anvil.url.parse().unwrap());
    for _ in 0..3 {
        let _: serde_json::Value = provider
            .raw_request("evm_mine".into(), serde_json::json!([]))
            .await
            .unwrap();
    }
    let shift = free_shift();
    let data = net.dir.join("node");
    let mut line: Vec<OsString> = args([
        // run_node.sh, verbatim order; ${LIGHTPUSH} is --lightpush=true when a credential
        // password is set, ${MY_EXT_IP} is this machine's address.
        "--relay=true",
        "--filter=true",
        "--peer-exchange=true",
        "--lightpush=true",
        "--keep-alive=true",
        "--max-connections=150",
        "--cluster-id=1",
        "--discv5-discovery=true",
        "--discv5-udp-port=9005",
        "--discv5-enr-auto-update=True",
        "--log-level=DEBUG",
        "--tcp-port=30304",
        "--metrics-server=True",
        "--metrics-server-port=8003",
        "--metrics-server-address=0.0.0.0",
        "--rest=true",
        "--rest-admin=true",
        "--rest-address=0.0.0.0",
        "--rest-port=8645",
        "--rest-allow-origin=logos-messaging.github.io",
        "--rest-allow-origin=localhost:*",
        "--nat=extip:127.0.0.1",
        "--store=true",
    ]);
    // The compose project's archive is its own PostgreSQL server; here the test's.
    line.extend(args([format!(
        "--store-message-db-url={}",
        crate::common::postgres::database("compose").await
    )]));
    line.extend(args([
        format!("--rln-relay-eth-client-address={}", net.anvil.url),
        format!("--rln-relay-cred-path={}", keystore.display()),
        format!("--rln-relay-cred-password={PASSWORD}"),
        format!("--nodekey={NODEKEY}"),
        "--store-message-retention-policy=size:1GB".to_owned(),
    ]));
    // ${EXTRA_ARGS}: what differs on a local chain (its contract and chain id), where the
    // circuit files and data live, and a shift so the ports are free on this machine.
    line.extend(args([
        format!("--rln-relay-eth-contract-address={}", net.contract),
        "--rln-relay-chain-id=31337".to_owned(),
        format!("--circuit-dir={}", circuit_dir().display()),
        format!("--data-dir={}", data.display()),
        format!("--ports-shift={shift}"),
    ]));
    let node = NodeProcess::spawn_exact(&line, &net.dir.join("compose.log"));
    assert!(
        node.rest.ends_with(&format!(":{}", 8645 + shift)),
        "REST on the shifted port: {}",
        node.rest
    );
    let rln = node.wait_synced(|r| r["members"] == 1).await;
    assert_eq!(rln["membership"]["rateLimit"], 20, "{rln}");

    // The key given with --nodekey, and the address given with --nat extip.
    let info = node.get("/debug/v1/info").await.unwrap();
    assert_eq!(info["peerId"], expected_peer_id().as_str());
    let enr = wakurln::enr::Enr::from_text(info["enrUri"].as_str().unwrap()).unwrap();
    let announced: Vec<String> = enr.addresses().iter().map(|a| a.to_string()).collect();
    assert!(
        announced
            .iter()
            .any(|a| a.starts_with(&format!("/ip4/127.0.0.1/tcp/{}", 30304 + shift))),
        "{announced:?}"
    );

    // Metrics on their own listener, the reference node's names there.
    let metrics_url = format!("http://127.0.0.1:{}", 8003 + shift);
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let (status, text, _) = get(&format!("{metrics_url}/metrics"), None).await;
        assert_eq!(status, 200);
        if text.contains("waku_rln_number_registered_memberships 1") || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        text.contains("waku_rln_number_registered_memberships 1"),
        "{text}"
    );
    let (status, body, _) = get(&format!("{metrics_url}/health"), None).await;
    assert_eq!((status, body.as_str()), (404, "Try /metrics"));

    // CORS for the two allowed origins, nothing for others.
    let health = format!("{}/health", node.rest);
    let (_, _, headers) = get(&health, Some("http://localhost:5173")).await;
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let (_, _, headers) = get(&health, Some("https://evil.example")).await;
    assert!(!headers.contains_key("access-control-allow-origin"));
    let subscribe = format!("{}/relay/v1/subscriptions", node.rest);
    let (status, headers) = preflight(&subscribe, "https://logos-messaging.github.io").await;
    assert_eq!(status, 204);
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let (status, _) = preflight(&subscribe, "https://evil.example").await;
    assert_eq!(status, 403);

    // What it cannot act on, it says, one line each; nothing was refused.
    let log = node.log_text();
    for said in [
        "--keep-alive is accepted but has no effect here",
        "--discv5-enr-auto-update is accepted but has no effect here",
        "--cluster-id 1 without --preset",
    ] {
        assert!(log.contains(said), "missing {said:?} in:\n{log}");
    }
    assert!(log.contains("DEBUG"), "--log-level DEBUG shows debug lines");
    assert!(
        log.contains("message archive open") && log.contains("postgres://postgres@127.0.0.1"),
        "the archive is the PostgreSQL database: {log}"
    );
    assert!(!log.lines().any(|l| l.starts_with("error:")), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_with_the_reference_nodes_keys_is_accepted() {
    let dir = std::env::temp_dir().join(format!("wakurln-ref-toml-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    // Keys as the reference node's TOML files write them: flag names, arrays for repeatable
    // flags, booleans and numbers as TOML values.
    std::fs::write(
        &config,
        format!(
            r#"
log-level = "INFO"
relay = true
rln-relay = false
cluster-id = 77
shard = [0]
nodekey = "{NODEKEY}"
nat = "extip:127.0.0.1"
ip-colocation-limit = 0
tcp-port = 0
staticnode = []
discv5-bootstrap-node = []
keep-alive = true
rendezvous = true
max-connections = 40
max-msg-size = "150KiB"
store = true
store-message-retention-policy = "time:3600;capacity:100"
filter-subscription-timeout = 120
filter-max-peers-to-serve = 10
rest = true
rest-admin = false
data-dir = "{}"
"#,
            dir.join("data").display()
        ),
    )
    .unwrap();
    let node = NodeProcess::spawn(
        &args([OsString::from("--config-file"), config.into_os_string()]),
        &dir.join("node.log"),
    );
    let info = node.get("/debug/v1/info").await.unwrap();
    assert_eq!(info["peerId"], expected_peer_id().as_str());
    assert_eq!(info["clusterId"], 77);
    // rest-admin = false: the admin routes are off.
    let (status, _, _) = get(&format!("{}/admin/v1/peers", node.rest), None).await;
    assert_eq!(status, 404);
    let log = node.log_text();
    assert!(
        log.contains("--rendezvous is accepted but has no effect here"),
        "{log}"
    );
    assert!(log.contains("--keep-alive is accepted"), "{log}");
    // A key this node does not know is still refused, naming it.
    std::fs::write(dir.join("bad.toml"), "tcp-prot = 1\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wakurln"))
        .args(["node", "--config-file"])
        .arg(dir.join("bad.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tcp-prot"), "{stderr}");
}
