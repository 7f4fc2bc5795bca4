//! Secrets stay out of what the node prints: RPC URLs carrying API keys are redacted in its
//! log, its command errors and `/health`, even when the endpoint fails and a library quotes
//! the URL in its error.

use std::{process::Command, time::Duration};

use crate::common::{
    devnet::Devnet,
    process::{NodeProcess, args},
};

const CLUSTER: u16 = 48;

/// Secrets in each part of an RPC URL.
const SECRETS: [&str; 6] = [
    "rpcuser-31337",
    "rpc-pass-7731",
    "anvil-key-5566",
    "dead-pass-8842",
    "deadbeefdeadbeef00",
    "dead-key-9913",
];

fn assert_clean(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{secret} leaked into {what}:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_urls_are_redacted_in_logs_errors_and_health() {
    let net = Devnet::start("secrets", CLUSTER).await;
    let port = net
        .anvil
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/');
    // anvil ignores user info and query: this endpoint works, keys and all.
    let working =
        format!("http://rpcuser-31337:rpc-pass-7731@127.0.0.1:{port}/?apikey=anvil-key-5566");
    // Nothing listens on port 1: this one fails first, every time, and is logged.
    let failing =
        "http://deaduser:dead-pass-8842@127.0.0.1:1/v3/deadbeefdeadbeef00?apikey=dead-key-9913";
    let data = net.dir.join("node");
    let mut a = args([
        "--tcp-port",
        "0",
        "--cluster-id",
        &CLUSTER.to_string(),
        "--rln-contract",
        &net.contract.to_string(),
        "--rln-poll-interval",
        "1",
        "--rln-follow-distance",
        "0",
        "--rln-rpc",
        failing,
        "--rln-rpc",
        &working,
    ]);
    a.extend(args(["--data-dir".into(), data.into_os_string()]));
    let log = net.dir.join("node.log");
    let node = NodeProcess::spawn(&a, &log);
    node.wait_synced(|_| true).await;
    // The failover warning names the failing endpoint, redacted.
    let text = node.log_text();
    assert!(
        text.contains("http://***@127.0.0.1:1/***?***"),
        "the failing endpoint is named, redacted:\n{text}"
    );

    // The chain goes away: the sync fails, and /health says why.
    drop(net.anvil);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let health = loop {
        let health = node.get("/health").await.expect("the node keeps answering");
        if !health["rln"]["lastError"].is_null() {
            break health;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no sync error reported: {health}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let body = health.to_string();
    assert_clean("/health", &body);
    assert!(
        body.contains("127.0.0.1"),
        "the error still says which endpoint: {body}"
    );
    node.kill9();
    assert_clean("the node's log", &std::fs::read_to_string(&log).unwrap());

    // A command that fails on the endpoint reports it redacted.
    let out = Command::new(env!("CARGO_BIN_EXE_wakurln"))
        .args(["membership", "status", "--rpc", failing, "--contract"])
        .arg(net.contract.to_string())
        .args(["--commitment", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot reach"), "{stderr}");
    assert_clean("a command's error", &stderr);
    assert_clean("a command's output", &String::from_utf8_lossy(&out.stdout));
}
