//! Waku's libp2p protocols. Each request/response protocol shares the framing in [`codec`].

pub mod codec;
