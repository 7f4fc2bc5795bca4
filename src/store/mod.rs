//! Store v3: the message archive (SQLite) behind the store protocol.

pub mod archive;
pub mod protocol;
pub mod service;

pub use archive::{Archive, ArchiveError, Entry, Page, Query, Retention};
