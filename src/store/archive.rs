//! The message archive behind Store v3, one row per message keyed by its deterministic hash
//! and ordered by `(timestamp, hash)`, in one of two databases: SQLite ([`super::sqlite`], the
//! embedded default) or PostgreSQL ([`super::postgres`], for archives that outgrow a machine or
//! are shared by several nodes). Both answer every query with the same pages.
//!
//! Pagination follows the protocol: the cursor is the hash of the last message of the previous
//! page and is exclusive; the default direction is backward (newest first); a page holds at
//! most [`MAX_PAGE`] messages and is always returned in forward (time) order.

use std::{path::PathBuf, sync::Arc};

use crate::{
    message::{MessageHash, WakuMessage},
    sqlite::OpenError,
};

use super::{postgres::Postgres, sqlite::Sqlite};

/// Messages per page when the query does not say.
pub const DEFAULT_PAGE: u64 = 20;
/// Largest page.
pub const MAX_PAGE: u64 = 100;
/// Most content topics or message hashes in one query.
pub const MAX_CRITERIA: usize = 100;
/// Connections a PostgreSQL archive opens at most, by default (as the reference node).
pub const DEFAULT_DB_CONNECTIONS: usize = 50;

/// Why the archive failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The database failed.
    #[error("message archive {path}: {detail}")]
    Db {
        /// The database file, or the PostgreSQL URL without its password.
        path: String,
        /// What failed.
        detail: String,
    },
    /// The query is not acceptable; the text says why (status 400).
    #[error("{0}")]
    BadQuery(String),
    /// The archive file could not be opened.
    #[error("message archive: {0}")]
    Open(#[from] OpenError),
}

/// A Store v3 query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Return the messages (and pubsub topics), not only their hashes.
    pub include_data: bool,
    /// The pubsub topic; required when content topics are given.
    pub pubsub_topic: Option<String>,
    /// Content topics (any of them).
    pub content_topics: Vec<String>,
    /// Inclusive start, nanoseconds.
    pub time_start: Option<i64>,
    /// Exclusive end, nanoseconds.
    pub time_end: Option<i64>,
    /// Look up these hashes (and nothing else may be given but pagination).
    pub message_hashes: Vec<MessageHash>,
    /// The hash after (or before) which the page starts, exclusive.
    pub cursor: Option<MessageHash>,
    /// Oldest first when true; newest first (the default) when false.
    pub forward: bool,
    /// Page size (default [`DEFAULT_PAGE`], at most [`MAX_PAGE`]).
    pub limit: Option<u64>,
}

/// One result.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The message hash.
    pub hash: MessageHash,
    /// The message, when data was asked for.
    pub message: Option<WakuMessage>,
    /// Its pubsub topic, when data was asked for.
    pub pubsub_topic: Option<String>,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// In forward (time) order.
    pub entries: Vec<Entry>,
    /// The cursor for the next page in the same direction, if there may be one.
    pub cursor: Option<MessageHash>,
}

/// Retention limits; each is optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Drop messages whose timestamp is older than this many seconds.
    pub max_age_secs: Option<u64>,
    /// Keep at most this many messages (the newest).
    pub max_messages: Option<u64>,
    /// Keep the stored message bytes under this size.
    pub max_bytes: Option<u64>,
}

impl Query {
    /// Checks what both databases refuse alike (status 400).
    pub fn check(&self) -> Result<(), ArchiveError> {
        if !self.content_topics.is_empty() && self.pubsub_topic.is_none() {
            return Err(ArchiveError::BadQuery(
                "content topics need their pubsub topic".into(),
            ));
        }
        if self.content_topics.len() > MAX_CRITERIA || self.message_hashes.len() > MAX_CRITERIA {
            return Err(ArchiveError::BadQuery(format!(
                "at most {MAX_CRITERIA} content topics or message hashes per query"
            )));
        }
        if !self.message_hashes.is_empty()
            && (self.pubsub_topic.is_some()
                || !self.content_topics.is_empty()
                || self.time_start.is_some()
                || self.time_end.is_some())
        {
            return Err(ArchiveError::BadQuery(
                "a query by message hashes takes no topic or time criteria".into(),
            ));
        }
        if let (Some(start), Some(end)) = (self.time_start, self.time_end)
            && start > end
        {
            return Err(ArchiveError::BadQuery(
                "time_start is after time_end".into(),
            ));
        }
        Ok(())
    }

    /// The page size asked for, within bounds.
    pub(super) fn page_size(&self) -> u64 {
        self.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
    }
}

/// A value bound to a statement.
#[derive(Debug, Clone)]
pub(super) enum Param {
    Text(String),
    Int(i64),
    Bytes(Vec<u8>),
}

/// The one statement both databases run for a page: the same criteria, order and limit, with
/// placeholders written by `placeholder(n)` (`?` for SQLite, `$n` for PostgreSQL).
pub(super) fn page_statement(
    q: &Query,
    cursor_time: Option<i64>,
    placeholder: impl Fn(usize) -> String,
) -> (String, Vec<Param>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    let next = |p: Param, params: &mut Vec<Param>| {
        params.push(p);
        placeholder(params.len())
    };
    if let Some(t) = &q.pubsub_topic {
        let p = next(Param::Text(t.clone()), &mut params);
        clauses.push(format!("pubsub_topic = {p}"));
    }
    if !q.content_topics.is_empty() {
        let list: Vec<String> = q
            .content_topics
            .iter()
            .map(|t| next(Param::Text(t.clone()), &mut params))
            .collect();
        clauses.push(format!("content_topic IN ({})", list.join(", ")));
    }
    if let Some(start) = q.time_start {
        let p = next(Param::Int(start), &mut params);
        clauses.push(format!("timestamp >= {p}"));
    }
    if let Some(end) = q.time_end {
        let p = next(Param::Int(end), &mut params);
        clauses.push(format!("timestamp < {p}"));
    }
    if !q.message_hashes.is_empty() {
        let list: Vec<String> = q
            .message_hashes
            .iter()
            .map(|h| next(Param::Bytes(h.as_bytes().to_vec()), &mut params))
            .collect();
        clauses.push(format!("hash IN ({})", list.join(", ")));
    }
    if let (Some(cursor), Some(at)) = (&q.cursor, cursor_time) {
        let t = next(Param::Int(at), &mut params);
        let h = next(Param::Bytes(cursor.as_bytes().to_vec()), &mut params);
        let op = if q.forward { ">" } else { "<" };
        clauses.push(format!("(timestamp, hash) {op} ({t}, {h})"));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let order = if q.forward { "ASC" } else { "DESC" };
    let columns = if q.include_data {
        "hash, pubsub_topic, content_topic, timestamp, version, payload, meta, proof"
    } else {
        "hash"
    };
    // One more than the page tells whether another page follows.
    let sql = format!(
        "SELECT {columns} FROM messages {filter} \
         ORDER BY timestamp {order}, hash {order} LIMIT {}",
        q.page_size() + 1
    );
    (sql, params)
}

/// A stored message's columns, as both databases return them.
pub(super) struct Stored {
    pub pubsub_topic: String,
    pub content_topic: String,
    pub timestamp: i64,
    pub version: u32,
    pub payload: Vec<u8>,
    pub meta: Option<Vec<u8>>,
    pub proof: Option<Vec<u8>>,
}

/// The bytes of a stored hash, or why they are not one.
pub(super) fn stored_hash(bytes: Vec<u8>) -> Result<MessageHash, String> {
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "a stored hash is not 32 bytes".to_owned())?;
    Ok(MessageHash(array))
}

impl Stored {
    /// The message these columns hold, or why they do not hold one.
    pub(super) fn message(self) -> Result<(WakuMessage, String), String> {
        let content = self
            .content_topic
            .parse()
            .map_err(|e| format!("a stored content topic is damaged: {e}"))?;
        let mut b = WakuMessage::builder(content, self.payload)
            .timestamp(self.timestamp)
            .version(self.version);
        if let Some(meta) = self.meta {
            b = b.meta(meta);
        }
        let mut m = b
            .build()
            .map_err(|e| format!("a stored message is damaged: {e}"))?;
        if let Some(proof) = self.proof {
            m = m
                .with_rate_limit_proof(proof)
                .map_err(|e| format!("a stored proof is damaged: {e}"))?;
        }
        Ok((m, self.pubsub_topic))
    }
}

/// Rows of one page (the statement's `limit + 1` at most), in the statement's order, made into
/// a page in forward order with its cursor.
pub(super) fn page_of_rows(q: &Query, mut entries: Vec<Entry>) -> Page {
    let limit = q.page_size();
    let more = entries.len() as u64 > limit;
    entries.truncate(limit as usize);
    let cursor = if more {
        entries.last().map(|e| e.hash)
    } else {
        None
    };
    if !q.forward {
        entries.reverse();
    }
    Page { entries, cursor }
}

/// Bytes a message counts for in size retention: payload, meta and proof.
pub(super) fn stored_size(m: &WakuMessage) -> i64 {
    (m.payload().len()
        + m.meta().map_or(0, |b| b.len())
        + m.rate_limit_proof().map_or(0, |b| b.len())) as i64
}

/// A stored message's place in time order, with its topics (what store sync keeps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdRow {
    /// Its timestamp.
    pub time: i64,
    /// Its hash.
    pub hash: [u8; 32],
    /// Its pubsub topic.
    pub pubsub_topic: String,
    /// Its content topic.
    pub content_topic: String,
}

/// The statement for [`Archive::ids_after`], with `?` or `$n` placeholders.
pub(super) fn ids_statement(placeholder: impl Fn(usize) -> String) -> String {
    format!(
        "SELECT timestamp, hash, pubsub_topic, content_topic FROM messages WHERE (timestamp, \
         hash) > ({}, {}) ORDER BY timestamp, hash LIMIT {}",
        placeholder(1),
        placeholder(2),
        placeholder(3)
    )
}

/// Where the archive lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, shared with other nodes or not.
    Postgres {
        /// `postgres://user:password@host:port/database`.
        url: String,
        /// Connections the pool opens at most.
        connections: usize,
    },
}

impl Backend {
    /// Reads `--store-message-db-url`: `sqlite://<file>`, or `postgres://...` /
    /// `postgresql://...`.
    pub fn from_url(url: &str, connections: usize) -> Result<Self, String> {
        if let Some(file) = url.strip_prefix("sqlite://") {
            if file.is_empty() {
                return Err("sqlite:// needs a file name: sqlite://<file>".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(file)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres {
                url: url.to_owned(),
                connections: connections.max(1),
            });
        }
        Err(format!(
            "{}: use sqlite://<file> or postgres://user:password@host:port/database",
            crate::redact::url(url)
        ))
    }
}

/// The archive, in either database.
#[derive(Debug)]
pub struct Archive {
    db: Db,
}

#[derive(Debug)]
enum Db {
    Sqlite(Arc<Sqlite>),
    Postgres(Postgres),
}

/// Runs `f` on the SQLite archive on the blocking pool, so no async task waits for the disk.
async fn blocking<T: Send + 'static>(
    db: &Arc<Sqlite>,
    f: impl FnOnce(&Sqlite) -> Result<T, ArchiveError> + Send + 'static,
) -> Result<T, ArchiveError> {
    let db = db.clone();
    let name = db.name().to_owned();
    tokio::task::spawn_blocking(move || f(&db))
        .await
        .unwrap_or_else(|e| {
            Err(ArchiveError::Db {
                path: name,
                detail: format!("the archive task stopped: {e}"),
            })
        })
}

impl Archive {
    /// Opens the archive, creating and migrating its schema.
    pub async fn open(backend: &Backend) -> Result<Self, ArchiveError> {
        let db = match backend {
            Backend::Sqlite(path) => {
                let path = path.clone();
                let db = tokio::task::spawn_blocking(move || Sqlite::open(&path))
                    .await
                    .map_err(|e| ArchiveError::Db {
                        path: "archive".into(),
                        detail: e.to_string(),
                    })??;
                Db::Sqlite(Arc::new(db))
            }
            Backend::Postgres { url, connections } => {
                Db::Postgres(Postgres::open(url, *connections).await?)
            }
        };
        Ok(Self { db })
    }

    /// Opens an SQLite archive without a runtime (tools and tests).
    pub fn open_sqlite(path: &std::path::Path) -> Result<Self, ArchiveError> {
        Ok(Self {
            db: Db::Sqlite(Arc::new(Sqlite::open(path)?)),
        })
    }

    /// The database, as logs show it: a file, or a URL without its password.
    pub fn name(&self) -> &str {
        match &self.db {
            Db::Sqlite(db) => db.name(),
            Db::Postgres(db) => db.name(),
        }
    }

    /// Stores messages in one transaction; a message already stored (by this node or another
    /// sharing the database) is skipped. Returns how many were new. Messages without a
    /// timestamp are not archived.
    pub async fn insert(&self, messages: &[(&str, &WakuMessage)]) -> Result<usize, ArchiveError> {
        match &self.db {
            Db::Sqlite(db) => {
                let owned: Vec<(String, WakuMessage)> = messages
                    .iter()
                    .map(|(t, m)| ((*t).to_owned(), (*m).clone()))
                    .collect();
                blocking(db, move |db| {
                    let refs: Vec<(&str, &WakuMessage)> =
                        owned.iter().map(|(t, m)| (t.as_str(), m)).collect();
                    db.insert(&refs)
                })
                .await
            }
            Db::Postgres(db) => db.insert(messages).await,
        }
    }

    /// Messages stored.
    pub async fn count(&self) -> Result<u64, ArchiveError> {
        match &self.db {
            Db::Sqlite(db) => blocking(db, Sqlite::count).await,
            Db::Postgres(db) => db.count().await,
        }
    }

    /// Messages and their bytes per pubsub topic.
    pub async fn per_topic(&self) -> Result<Vec<(String, u64, u64)>, ArchiveError> {
        match &self.db {
            Db::Sqlite(db) => blocking(db, Sqlite::per_topic).await,
            Db::Postgres(db) => db.per_topic().await,
        }
    }

    /// Answers a query.
    pub async fn query(&self, q: &Query) -> Result<Page, ArchiveError> {
        q.check()?;
        match &self.db {
            Db::Sqlite(db) => {
                let q = q.clone();
                blocking(db, move |db| db.query(&q)).await
            }
            Db::Postgres(db) => db.query(q).await,
        }
    }

    /// Up to `limit` messages after `after` in time order, without their data.
    pub async fn ids_after(
        &self,
        after: (i64, [u8; 32]),
        limit: u64,
    ) -> Result<Vec<IdRow>, ArchiveError> {
        match &self.db {
            Db::Sqlite(db) => blocking(db, move |db| db.ids_after(after, limit)).await,
            Db::Postgres(db) => db.ids_after(after, limit).await,
        }
    }

    /// Deletes what the retention limits exclude, in batches of at most `batch` rows per
    /// transaction so queries interleave. Returns the rows deleted.
    pub async fn enforce(
        &self,
        retention: Retention,
        now_ns: i64,
        batch: u64,
    ) -> Result<u64, ArchiveError> {
        match &self.db {
            Db::Sqlite(db) => blocking(db, move |db| db.enforce(retention, now_ns, batch)).await,
            Db::Postgres(db) => db.enforce(retention, now_ns, batch).await,
        }
    }
}
