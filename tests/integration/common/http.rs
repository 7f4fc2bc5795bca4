//! A small HTTP client for the REST tests.

use alloy::transports::http::reqwest;
use serde_json::Value;

/// The REST API of one node.
pub struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    /// The API served at `bound`.
    pub fn new(bound: std::net::SocketAddr) -> Self {
        Self {
            base: format!("http://{bound}"),
            client: reqwest::Client::new(),
        }
    }

    /// The API served at `bound`, called from the local address `from` (any of 127.0.0.0/8
    /// reaches a loopback server), so that the server sees distinct callers.
    pub fn from(bound: std::net::SocketAddr, from: std::net::IpAddr) -> Self {
        Self {
            base: format!("http://{bound}"),
            client: reqwest::Client::builder()
                .local_address(from)
                .build()
                .unwrap(),
        }
    }

    /// Sends `method path` with an optional JSON body; returns the status and the body text.
    pub async fn call(&self, method: &str, path: &str, body: Option<String>) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.client.get(&url),
            "POST" => self.client.post(&url),
            "DELETE" => self.client.delete(&url),
            "PUT" => self.client.put(&url),
            _ => unreachable!("no test sends {method}"),
        };
        let req = match body {
            Some(b) => req.header("content-type", "application/json").body(b),
            None => req,
        };
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// `call`, with the body read as JSON (a string when it is not JSON).
    pub async fn call_json(&self, method: &str, path: &str, body: Option<String>) -> (u16, Value) {
        let (status, text) = self.call(method, path, body).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A GET that must answer 200 with JSON.
    pub async fn json(&self, path: &str) -> Value {
        let (status, text) = self.call("GET", path, None).await;
        assert_eq!(status, 200, "{path}: {text}");
        serde_json::from_str(&text).unwrap()
    }
}
