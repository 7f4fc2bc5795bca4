//! A real Prometheus server (Debian's `prometheus` package, which `scripts/test` installs)
//! scraping the node under test, so dashboard queries are evaluated by the real thing.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use alloy::transports::http::reqwest;
use serde_json::Value;

/// A running Prometheus.
pub struct Prometheus {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log: PathBuf,
}

/// The `prometheus` binary, or a panic saying how to get it.
pub fn binary(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("{name} is missing: run `scripts/test`, which installs Debian's prometheus package")
    })
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML) in `dir`, listening on a free loopback port, and
    /// waits until it is ready.
    pub async fn start(dir: &Path, config: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("prometheus.log");
        let child = Command::new(binary("prometheus"))
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("prometheus starts");
        let me = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/-/ready", me.url)).await
                && r.status().is_success()
            {
                return me;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not become ready:\n{}",
                std::fs::read_to_string(&me.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The result vector of an instant query (empty when no series matches).
    pub async fn query(&self, expr: &str) -> Vec<Value> {
        let encoded: String = expr
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let response: Value = reqwest::Client::new()
            .post(format!("{}/api/v1/query", self.url))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("query={encoded}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(response["status"], "success", "{expr}: {response}");
        response["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
