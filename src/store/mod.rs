//! Store v3: the message archive ([`archive`], in SQLite ([`sqlite`]) or PostgreSQL
//! ([`postgres`])), the wire protocol ([`protocol`]: requests, pages, status codes) and the
//! service that answers peers from the archive ([`service`]), and the writer that commits what
//! the node acknowledges ([`writer`]). A node's client side is `NodeHandle::store_query`.

pub mod archive;
pub mod postgres;
pub mod protocol;
pub mod service;
pub mod sqlite;
pub mod sync;
pub mod writer;

pub use archive::{Archive, ArchiveError, Backend, Entry, IdRow, Page, Query, Retention};
