//! A throwaway development chain: anvil on a free loopback port, killed when dropped. Used by
//! the tests, the sync benchmark and the local demo network.

use std::{
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
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
    /// development accounts) plus `extra` arguments, and waits until it accepts connections.
    pub fn start(bin: &Path, extra: &[&str]) -> std::io::Result<Self> {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let mut child = Command::new(bin)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("cannot start {}: {e}", bin.display()))
                })?;
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(20) {
                if child.try_wait()?.is_some() {
                    break; // the port was taken meanwhile: try another
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(Self {
                        child,
                        url: format!("http://127.0.0.1:{port}"),
                        port,
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        Err(std::io::Error::other(format!(
            "{} did not start listening on a loopback port",
            bin.display()
        )))
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
