//! `wakurln node` as a real process, for tests that kill it (SIGKILL) or stop it (SIGTERM)
//! and read what it logged.

use std::{
    ffi::OsString,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use alloy::transports::http::reqwest;
use serde_json::Value;

/// A running `wakurln node`, its output going to a log file.
pub struct NodeProcess {
    child: Child,
    /// `http://127.0.0.1:PORT` of its REST API.
    pub rest: String,
    /// Where its stdout and stderr go (appended).
    pub log: PathBuf,
    stdout: Option<std::thread::JoinHandle<()>>,
}

impl NodeProcess {
    /// Starts `wakurln node ARGS` (with `--rest-port 0`) and waits until it announces its
    /// REST API. Its stderr and stdout are appended to `log`.
    pub fn spawn(args: &[OsString], log: &Path) -> Self {
        let mut all = args.to_vec();
        all.extend(self::args([
            "--rest-address",
            "127.0.0.1",
            "--rest-port",
            "0",
        ]));
        Self::spawn_exact(&all, log)
    }

    /// Starts `wakurln node ARGS`, exactly those, and waits until it announces its REST API
    /// (reached on 127.0.0.1 when it listens on every address).
    pub fn spawn_exact(args: &[OsString], log: &Path) -> Self {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_wakurln"))
            .arg("node")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut out = std::fs::OpenOptions::new().append(true).open(log).unwrap();
        let mut rest = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            writeln!(out, "{line}").unwrap();
            if let Some(url) = line.strip_prefix("REST API on ") {
                let url = url.split_whitespace().next().unwrap();
                rest = Some(url.replace("://0.0.0.0:", "://127.0.0.1:"));
                break;
            }
        }
        let Some(rest) = rest else {
            let status = child.wait().unwrap();
            panic!(
                "the node exited ({status}) before serving its REST API:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        };
        // Keep draining stdout into the log so the node never blocks on a full pipe.
        let stdout = std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = writeln!(out, "{line}");
            }
        });
        Self {
            child,
            rest,
            log: log.to_path_buf(),
            stdout: Some(stdout),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GET `path` as JSON; `None` when the node does not answer.
    pub async fn get(&self, path: &str) -> Option<Value> {
        let res = reqwest::get(format!("{}{path}", self.rest)).await.ok()?;
        res.json().await.ok()
    }

    /// Waits until the node's chain sync has completed a step and satisfies `done`; returns
    /// the `rln` part of `/health` then.
    pub async fn wait_synced(&self, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(health) = self.get("/health").await
                && health["rln"]["synced"] == true
                && done(&health["rln"])
            {
                return health["rln"].clone();
            }
            assert!(
                Instant::now() < deadline,
                "the node did not sync in time:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the node has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process with SIGKILL: no destructor, no flush, no goodbye.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        if let Some(t) = self.stdout.take() {
            t.join().unwrap();
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the node did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(t) = self.stdout.take() {
            t.join().unwrap();
        }
        status
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `OsString` arguments from anything printable.
pub fn args<I, S>(items: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    items.into_iter().map(Into::into).collect()
}
