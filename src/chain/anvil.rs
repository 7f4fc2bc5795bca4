//! A throwaway development chain: anvil on a free loopback port, killed when dropped. Used by
//! the tests, the sync benchmark and the local demo network.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// Where the project's npm install puts anvil (`npm ci --prefix contracts`).
pub fn project_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
}

/// A running anvil.
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    /// The JSON-RPC URL.
    pub url: String,
    /// The port it listens on.
    pub port: u16,
}

impl Anvil {
    /// Starts `bin` on a free loopback port with its defaults (automine, chain 31337, funded
    /// development accounts) plus `extra` arguments, and waits until it listens. Anvil binds
    /// the port itself (`--port 0`) and names it, so no other process can take it meanwhile.
    pub fn start(bin: &Path, extra: &[&str]) -> std::io::Result<Self> {
        let mut child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot start {}: {e}", bin.display()))
            })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        // Reads the announced address, then keeps draining anvil's log so it never blocks.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("Listening on ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(address.trim().to_owned());
                }
            }
        });
        let address = rx.recv_timeout(Duration::from_secs(20)).ok();
        let port = address
            .as_deref()
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse::<u16>().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other(format!(
                "{} did not start listening on a loopback port",
                bin.display()
            )));
        };
        Ok(Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
        })
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
