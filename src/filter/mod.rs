//! Filter v2: light clients subscribe to content topics on a service node, which pushes every
//! matching relayed message to them.
//!
//! - [`protocol`]: ids, limits, status codes and request parsing;
//! - [`service`]: the server side (subscriptions, limits, TTL, one push stream per
//!   subscriber);
//! - [`client`]: reading the pushes of the services this node subscribed with.

pub mod client;
pub mod protocol;
pub mod service;

pub use client::{Client, Pushed};
pub use service::{Limits, Service};
