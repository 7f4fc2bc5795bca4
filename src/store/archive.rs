//! The message archive behind Store v3: SQLite in WAL mode, one row per message keyed by its
//! deterministic hash, ordered by `(timestamp, hash)`, with indices for the three query shapes
//! (by pubsub topic and content topics, by time only, by hashes).
//!
//! Pagination follows the protocol: the cursor is the hash of the last message of the previous
//! page and is exclusive; the default direction is backward (newest first); a page holds at
//! most [`MAX_PAGE`] messages and is always returned in forward (time) order.

use std::{path::Path, sync::Mutex};

use rusqlite::{Connection, OptionalExtension, ToSql, params, params_from_iter};

use crate::{
    message::{MessageHash, WakuMessage},
    sqlite::{Durability, OpenError},
};

/// Messages per page when the query does not say.
pub const DEFAULT_PAGE: u64 = 20;
/// Largest page.
pub const MAX_PAGE: u64 = 100;
/// Most content topics or message hashes in one query.
pub const MAX_CRITERIA: usize = 100;

/// Schema migrations, applied in order inside one transaction; index `i` moves the database
/// from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        hash BLOB NOT NULL UNIQUE,
        pubsub_topic TEXT NOT NULL,
        content_topic TEXT NOT NULL,
        timestamp INTEGER NOT NULL,
        version INTEGER NOT NULL,
        payload BLOB NOT NULL,
        meta BLOB,
        proof BLOB,
        size INTEGER NOT NULL
    );
    CREATE INDEX messages_time ON messages (timestamp, hash);
    CREATE INDEX messages_topics ON messages (pubsub_topic, content_topic, timestamp, hash);
",
    "
    CREATE INDEX messages_pubsub_time ON messages (pubsub_topic, timestamp, hash);
",
];

/// Why the archive failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// SQLite failed.
    #[error("message archive {path}: {detail}")]
    Db {
        /// The database file.
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

/// The archive.
#[derive(Debug)]
pub struct Archive {
    conn: Mutex<Connection>,
    path: String,
}

fn hash_of(bytes: Vec<u8>) -> Result<MessageHash, rusqlite::Error> {
    let array: [u8; 32] = bytes.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            "a stored hash is not 32 bytes".into(),
        )
    })?;
    Ok(MessageHash(array))
}

impl Archive {
    /// Opens (creating and migrating) the archive at `path`.
    pub fn open(path: &Path) -> Result<Self, ArchiveError> {
        let conn = crate::sqlite::open(path, Durability::Normal, MIGRATIONS)?;
        let name = path.display().to_string();
        Ok(Self {
            conn: Mutex::new(conn),
            path: name,
        })
    }

    fn err(&self, e: &rusqlite::Error) -> ArchiveError {
        ArchiveError::Db {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }

    /// Stores messages in one transaction; a message already stored is skipped. Returns how
    /// many were new. Messages without a timestamp are not archived.
    pub fn insert(&self, messages: &[(&str, &WakuMessage)]) -> Result<usize, ArchiveError> {
        let mut conn = self.conn.lock().expect("never poisoned");
        let tx = conn.transaction().map_err(|e| self.err(&e))?;
        let mut added = 0;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO messages (hash, pubsub_topic, content_topic, \
                     timestamp, version, payload, meta, proof, size) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(|e| self.err(&e))?;
            for (topic, m) in messages {
                let Some(timestamp) = m.timestamp() else {
                    continue;
                };
                let size = m.payload().len()
                    + m.meta().map_or(0, |b| b.len())
                    + m.rate_limit_proof().map_or(0, |b| b.len());
                added += stmt
                    .execute(params![
                        m.hash(topic).as_bytes().as_slice(),
                        topic,
                        m.content_topic().as_str(),
                        timestamp,
                        m.version(),
                        m.payload().as_ref(),
                        m.meta().map(|b| b.to_vec()),
                        m.rate_limit_proof().map(|b| b.to_vec()),
                        size as i64,
                    ])
                    .map_err(|e| self.err(&e))?;
            }
        }
        tx.commit().map_err(|e| self.err(&e))?;
        Ok(added)
    }

    /// Messages stored.
    pub fn count(&self) -> Result<u64, ArchiveError> {
        let conn = self.conn.lock().expect("never poisoned");
        conn.query_row("SELECT count(*) FROM messages", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(&e))
    }

    /// Messages and their bytes per pubsub topic.
    pub fn per_topic(&self) -> Result<Vec<(String, u64, u64)>, ArchiveError> {
        let conn = self.conn.lock().expect("never poisoned");
        let mut statement = conn
            .prepare_cached(
                "SELECT pubsub_topic, count(*), sum(size) FROM messages GROUP BY pubsub_topic",
            )
            .map_err(|e| self.err(&e))?;
        let rows = statement
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                ))
            })
            .map_err(|e| self.err(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(&e))
    }

    /// Answers a query.
    pub fn query(&self, q: &Query) -> Result<Page, ArchiveError> {
        if !q.content_topics.is_empty() && q.pubsub_topic.is_none() {
            return Err(ArchiveError::BadQuery(
                "content topics need their pubsub topic".into(),
            ));
        }
        if q.content_topics.len() > MAX_CRITERIA || q.message_hashes.len() > MAX_CRITERIA {
            return Err(ArchiveError::BadQuery(format!(
                "at most {MAX_CRITERIA} content topics or message hashes per query"
            )));
        }
        if !q.message_hashes.is_empty()
            && (q.pubsub_topic.is_some()
                || !q.content_topics.is_empty()
                || q.time_start.is_some()
                || q.time_end.is_some())
        {
            return Err(ArchiveError::BadQuery(
                "a query by message hashes takes no topic or time criteria".into(),
            ));
        }
        if let (Some(start), Some(end)) = (q.time_start, q.time_end)
            && start > end
        {
            return Err(ArchiveError::BadQuery(
                "time_start is after time_end".into(),
            ));
        }
        let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        let conn = self.conn.lock().expect("never poisoned");
        let mut clauses: Vec<String> = Vec::new();
        let mut args: Vec<Box<dyn ToSql>> = Vec::new();
        if let Some(t) = &q.pubsub_topic {
            clauses.push("pubsub_topic = ?".into());
            args.push(Box::new(t.clone()));
        }
        if !q.content_topics.is_empty() {
            clauses.push(format!(
                "content_topic IN ({})",
                vec!["?"; q.content_topics.len()].join(", ")
            ));
            for t in &q.content_topics {
                args.push(Box::new(t.clone()));
            }
        }
        if let Some(start) = q.time_start {
            clauses.push("timestamp >= ?".into());
            args.push(Box::new(start));
        }
        if let Some(end) = q.time_end {
            clauses.push("timestamp < ?".into());
            args.push(Box::new(end));
        }
        if !q.message_hashes.is_empty() {
            clauses.push(format!(
                "hash IN ({})",
                vec!["?"; q.message_hashes.len()].join(", ")
            ));
            for h in &q.message_hashes {
                args.push(Box::new(h.as_bytes().to_vec()));
            }
        }
        if let Some(cursor) = &q.cursor {
            let at: Option<i64> = conn
                .query_row(
                    "SELECT timestamp FROM messages WHERE hash = ?1",
                    [cursor.as_bytes().as_slice()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.err(&e))?;
            let Some(at) = at else {
                return Err(ArchiveError::BadQuery(
                    "the cursor names no stored message".into(),
                ));
            };
            clauses.push(if q.forward {
                "(timestamp, hash) > (?, ?)".into()
            } else {
                "(timestamp, hash) < (?, ?)".into()
            });
            args.push(Box::new(at));
            args.push(Box::new(cursor.as_bytes().to_vec()));
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
            limit + 1
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.err(&e))?;
        let rows = stmt
            .query_map(params_from_iter(args.iter().map(|a| a.as_ref())), |r| {
                let hash = hash_of(r.get(0)?)?;
                if !q.include_data {
                    return Ok((hash, None));
                }
                Ok((
                    hash,
                    Some((
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, u32>(4)?,
                        r.get::<_, Vec<u8>>(5)?,
                        r.get::<_, Option<Vec<u8>>>(6)?,
                        r.get::<_, Option<Vec<u8>>>(7)?,
                    )),
                ))
            })
            .map_err(|e| self.err(&e))?;
        let mut entries = Vec::new();
        for row in rows {
            let (hash, data) = row.map_err(|e| self.err(&e))?;
            let (message, pubsub_topic) = match data {
                None => (None, None),
                Some((topic, content, ts, version, payload, meta, proof)) => {
                    let content = content.parse().map_err(|e| ArchiveError::Db {
                        path: self.path.clone(),
                        detail: format!("a stored content topic is damaged: {e}"),
                    })?;
                    let mut b = WakuMessage::builder(content, payload)
                        .timestamp(ts)
                        .version(version);
                    if let Some(meta) = meta {
                        b = b.meta(meta);
                    }
                    let mut m = b.build().map_err(|e| ArchiveError::Db {
                        path: self.path.clone(),
                        detail: format!("a stored message is damaged: {e}"),
                    })?;
                    if let Some(proof) = proof {
                        m = m
                            .with_rate_limit_proof(proof)
                            .map_err(|e| ArchiveError::Db {
                                path: self.path.clone(),
                                detail: format!("a stored proof is damaged: {e}"),
                            })?;
                    }
                    (Some(m), Some(topic))
                }
            };
            entries.push(Entry {
                hash,
                message,
                pubsub_topic,
            });
        }
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
        Ok(Page { entries, cursor })
    }

    /// Deletes what the retention limits exclude, in batches of at most `batch` rows per
    /// transaction so queries interleave. Returns the rows deleted.
    pub fn enforce(
        &self,
        retention: Retention,
        now_ns: i64,
        batch: u64,
    ) -> Result<u64, ArchiveError> {
        let mut deleted = 0;
        loop {
            let n = self.enforce_once(retention, now_ns, batch)?;
            deleted += n;
            if n < batch {
                return Ok(deleted);
            }
        }
    }

    fn enforce_once(&self, r: Retention, now_ns: i64, batch: u64) -> Result<u64, ArchiveError> {
        let conn = self.conn.lock().expect("never poisoned");
        let mut deleted = 0u64;
        let delete_oldest = |condition: &str, arg: i64, room: u64| -> Result<u64, ArchiveError> {
            if room == 0 {
                return Ok(0);
            }
            conn.execute(
                &format!(
                    "DELETE FROM messages WHERE id IN (SELECT id FROM messages {condition} \
                     ORDER BY timestamp, hash LIMIT {room})"
                ),
                [arg],
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(&e))
        };
        if let Some(age) = r.max_age_secs {
            let floor = now_ns.saturating_sub((age as i64).saturating_mul(1_000_000_000));
            deleted += delete_oldest("WHERE timestamp < ?1", floor, batch)?;
        }
        if let Some(max) = r.max_messages {
            let count: i64 = conn
                .query_row("SELECT count(*) FROM messages", [], |row| row.get(0))
                .map_err(|e| self.err(&e))?;
            let excess = (count as u64)
                .saturating_sub(max)
                .min(batch - deleted.min(batch));
            deleted += delete_oldest("WHERE ?1 = ?1", 0, excess)?;
        }
        if let Some(max) = r.max_bytes {
            let size: i64 = conn
                .query_row("SELECT coalesce(sum(size), 0) FROM messages", [], |row| {
                    row.get(0)
                })
                .map_err(|e| self.err(&e))?;
            if size as u64 > max {
                // The oldest messages whose sizes add up to the excess, and not one more.
                let excess = size as u64 - max;
                let room = batch - deleted.min(batch);
                let mut oldest = conn
                    .prepare_cached(
                        "SELECT id, size FROM messages ORDER BY timestamp, hash LIMIT ?1",
                    )
                    .map_err(|e| self.err(&e))?;
                let rows = oldest
                    .query_map([room as i64], |row| {
                        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
                    })
                    .map_err(|e| self.err(&e))?;
                let mut ids = Vec::new();
                let mut freed = 0u64;
                for row in rows {
                    if freed >= excess {
                        break;
                    }
                    let (id, size) = row.map_err(|e| self.err(&e))?;
                    ids.push(id);
                    freed += size.max(0) as u64;
                }
                let mut delete = conn
                    .prepare_cached("DELETE FROM messages WHERE id = ?1")
                    .map_err(|e| self.err(&e))?;
                conn.execute_batch("BEGIN").map_err(|e| self.err(&e))?;
                for id in &ids {
                    if let Err(e) = delete.execute([id]) {
                        let _ = conn.execute_batch("ROLLBACK");
                        return Err(self.err(&e));
                    }
                }
                conn.execute_batch("COMMIT").map_err(|e| self.err(&e))?;
                deleted += ids.len() as u64;
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(i: i64, content: &str) -> WakuMessage {
        WakuMessage::builder(content.parse().unwrap(), format!("m{i}").into_bytes())
            .timestamp(1_700_000_000_000_000_000 + i * 1_000_000_000)
            .build()
            .unwrap()
    }

    fn archive(name: &str, n: i64) -> Archive {
        let path = std::env::temp_dir().join(format!(
            "wakurln-archive-{name}-{}.sqlite",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let a = Archive::open(&path).unwrap();
        let msgs: Vec<WakuMessage> = (0..n)
            .map(|i| {
                message(
                    i,
                    if i % 2 == 0 {
                        "/a/1/even/proto"
                    } else {
                        "/a/1/odd/proto"
                    },
                )
            })
            .collect();
        let refs: Vec<(&str, &WakuMessage)> = msgs.iter().map(|m| ("/waku/2/rs/1/0", m)).collect();
        assert_eq!(a.insert(&refs).unwrap(), n as usize);
        assert_eq!(a.insert(&refs).unwrap(), 0, "duplicates are skipped");
        a
    }

    fn payloads(p: &Page) -> Vec<String> {
        p.entries
            .iter()
            .map(|e| String::from_utf8(e.message.as_ref().unwrap().payload().to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn pages_backward_by_default_forward_on_request_always_in_time_order() {
        let a = archive("pages", 25);
        let mut q = Query {
            include_data: true,
            limit: Some(10),
            ..Query::default()
        };
        let first = a.query(&q).unwrap();
        assert_eq!(
            payloads(&first),
            (15..25).map(|i| format!("m{i}")).collect::<Vec<_>>()
        );
        q.cursor = first.cursor;
        let second = a.query(&q).unwrap();
        assert_eq!(payloads(&second)[0], "m5");
        q.cursor = second.cursor;
        let third = a.query(&q).unwrap();
        assert_eq!(
            payloads(&third),
            (0..5).map(|i| format!("m{i}")).collect::<Vec<_>>()
        );
        assert_eq!(third.cursor, None);

        let mut q = Query {
            include_data: true,
            forward: true,
            limit: Some(10),
            ..Query::default()
        };
        let mut all = Vec::new();
        loop {
            let page = a.query(&q).unwrap();
            all.extend(payloads(&page));
            match page.cursor {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(all, (0..25).map(|i| format!("m{i}")).collect::<Vec<_>>());
    }

    #[test]
    fn filters_by_topic_time_and_hash() {
        let a = archive("filters", 10);
        let q = Query {
            include_data: true,
            pubsub_topic: Some("/waku/2/rs/1/0".into()),
            content_topics: vec!["/a/1/odd/proto".into()],
            time_start: Some(1_700_000_000_000_000_000 + 3_000_000_000),
            time_end: Some(1_700_000_000_000_000_000 + 7_000_000_000),
            forward: true,
            ..Query::default()
        };
        assert_eq!(payloads(&a.query(&q).unwrap()), vec!["m3", "m5"]);
        let hash = message(4, "/a/1/even/proto").hash("/waku/2/rs/1/0");
        let by_hash = a
            .query(&Query {
                message_hashes: vec![hash],
                ..Query::default()
            })
            .unwrap();
        assert_eq!(by_hash.entries.len(), 1);
        assert_eq!(by_hash.entries[0].hash, hash);
        assert!(by_hash.entries[0].message.is_none(), "include_data off");
        for bad in [
            Query {
                content_topics: vec!["/a/1/odd/proto".into()],
                ..Query::default()
            },
            Query {
                cursor: Some(MessageHash([9; 32])),
                ..Query::default()
            },
            Query {
                time_start: Some(10),
                time_end: Some(5),
                ..Query::default()
            },
        ] {
            assert!(
                matches!(a.query(&bad), Err(ArchiveError::BadQuery(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_older_schema_is_migrated_in_place_keeping_its_messages() {
        let path = std::env::temp_dir().join(format!(
            "wakurln-archive-migrate-{}.sqlite",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO messages (hash, pubsub_topic, content_topic, timestamp, version, \
                 payload, size) VALUES (?1, '/waku/2/rs/1/0', '/a/1/b/proto', 5, 0, x'01', 1)",
                [vec![3u8; 32]],
            )
            .unwrap();
        }
        let a = Archive::open(&path).unwrap();
        assert_eq!(a.count().unwrap(), 1);
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let index: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'messages_pubsub_time'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 1);
    }

    #[test]
    fn retention_by_age_count_and_size() {
        let a = archive("retention", 50);
        let now = 1_700_000_000_000_000_000 + 50 * 1_000_000_000;
        let n = a
            .enforce(
                Retention {
                    max_age_secs: Some(40),
                    ..Retention::default()
                },
                now,
                7,
            )
            .unwrap();
        assert_eq!(n, 10);
        a.enforce(
            Retention {
                max_messages: Some(25),
                ..Retention::default()
            },
            now,
            7,
        )
        .unwrap();
        assert_eq!(a.count().unwrap(), 25);
        a.enforce(
            Retention {
                max_bytes: Some(30),
                ..Retention::default()
            },
            now,
            100,
        )
        .unwrap();
        // 3 bytes each: exactly the newest 10 fit in 30 bytes, no more and no fewer.
        assert_eq!(a.count().unwrap(), 10);
        // What is left is the newest.
        let page = a
            .query(&Query {
                include_data: true,
                limit: Some(1),
                ..Query::default()
            })
            .unwrap();
        assert_eq!(payloads(&page), vec!["m49"]);
    }
}
