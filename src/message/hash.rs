//! The deterministic message hash of 14/WAKU2-MESSAGE:
//! `sha256(pubsub_topic || payload || content_topic || meta || timestamp_be8)`.
//!
//! Absent meta contributes no bytes; an absent timestamp contributes eight zero bytes, as in
//! the Nim and Go nodes. The RLN proof and the ephemeral flag are not covered.

use std::fmt;

use sha2::{Digest, Sha256};

/// A 32-byte message hash; displays as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageHash(pub [u8; 32]);

impl MessageHash {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for MessageHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for MessageHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageHash({self})")
    }
}

/// Hashes the parts of a message; see the module docs for the layout.
pub fn message_hash(
    pubsub_topic: &str,
    payload: &[u8],
    content_topic: &str,
    meta: Option<&[u8]>,
    timestamp: Option<i64>,
) -> MessageHash {
    let digest = Sha256::new()
        .chain_update(pubsub_topic)
        .chain_update(payload)
        .chain_update(content_topic)
        .chain_update(meta.unwrap_or_default())
        .chain_update(timestamp.unwrap_or(0).to_be_bytes())
        .finalize();
    MessageHash(digest.into())
}
