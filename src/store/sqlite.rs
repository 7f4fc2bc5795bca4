//! The SQLite archive: one file in WAL mode, with indices for the three query shapes (by
//! pubsub topic and content topics, by time only, by hashes). Its calls block; [`super::Archive`]
//! runs them on the blocking pool.

use std::{path::Path, sync::Mutex};

use rusqlite::{Connection, OptionalExtension, params, params_from_iter, types::ToSqlOutput};

use super::archive::{
    ArchiveError, Entry, IdRow, Page, Param, Query, Retention, Stored, ids_statement, page_of_rows,
    page_statement, stored_hash, stored_size,
};
use crate::{message::WakuMessage, sqlite::Durability};

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

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Param::Text(t) => ToSqlOutput::from(t.as_str()),
            Param::Int(i) => ToSqlOutput::from(*i),
            Param::Bytes(b) => ToSqlOutput::from(b.as_slice()),
        })
    }
}

/// The archive in an SQLite file.
#[derive(Debug)]
pub struct Sqlite {
    conn: Mutex<Connection>,
    path: String,
}

fn hash_of(bytes: Vec<u8>) -> Result<crate::message::MessageHash, rusqlite::Error> {
    stored_hash(bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, e.into())
    })
}

impl Sqlite {
    /// The file.
    pub fn name(&self) -> &str {
        &self.path
    }

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
                        stored_size(m),
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

    /// Up to `limit` messages after `after` in time order, without their data.
    pub fn ids_after(
        &self,
        after: (i64, [u8; 32]),
        limit: u64,
    ) -> Result<Vec<IdRow>, ArchiveError> {
        let conn = self.conn.lock().expect("never poisoned");
        let mut stmt = conn
            .prepare_cached(&ids_statement(|_| "?".to_owned()))
            .map_err(|e| self.err(&e))?;
        let rows = stmt
            .query_map(params![after.0, after.1.as_slice(), limit as i64], |r| {
                Ok(IdRow {
                    time: r.get(0)?,
                    hash: hash_of(r.get(1)?)?.0,
                    pubsub_topic: r.get(2)?,
                    content_topic: r.get(3)?,
                })
            })
            .map_err(|e| self.err(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(&e))
    }

    /// Answers a query (checked by the caller with [`Query::check`]).
    pub fn query(&self, q: &Query) -> Result<Page, ArchiveError> {
        let conn = self.conn.lock().expect("never poisoned");
        let cursor_time = match &q.cursor {
            None => None,
            Some(cursor) => {
                let at: Option<i64> = conn
                    .query_row(
                        "SELECT timestamp FROM messages WHERE hash = ?1",
                        [cursor.as_bytes().as_slice()],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(|e| self.err(&e))?;
                Some(at.ok_or_else(|| {
                    ArchiveError::BadQuery("the cursor names no stored message".into())
                })?)
            }
        };
        let (sql, args) = page_statement(q, cursor_time, |_| "?".to_owned());
        let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.err(&e))?;
        let rows = stmt
            .query_map(params_from_iter(args.iter()), |r| {
                let hash = hash_of(r.get(0)?)?;
                if !q.include_data {
                    return Ok((hash, None));
                }
                Ok((
                    hash,
                    Some(Stored {
                        pubsub_topic: r.get(1)?,
                        content_topic: r.get(2)?,
                        timestamp: r.get(3)?,
                        version: r.get(4)?,
                        payload: r.get(5)?,
                        meta: r.get(6)?,
                        proof: r.get(7)?,
                    }),
                ))
            })
            .map_err(|e| self.err(&e))?;
        let mut entries = Vec::new();
        for row in rows {
            let (hash, data) = row.map_err(|e| self.err(&e))?;
            let (message, pubsub_topic) = match data {
                None => (None, None),
                Some(stored) => {
                    let (m, topic) = stored.message().map_err(|detail| ArchiveError::Db {
                        path: self.path.clone(),
                        detail,
                    })?;
                    (Some(m), Some(topic))
                }
            };
            entries.push(Entry {
                hash,
                message,
                pubsub_topic,
            });
        }
        Ok(page_of_rows(q, entries))
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
        let a = Sqlite::open(&path).unwrap();
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
}
