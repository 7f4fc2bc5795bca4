//! The PostgreSQL archive, for archives larger than one machine's disk or shared by several
//! store nodes. Messages are kept in a table partitioned by the hour of their timestamp: time
//! retention drops whole partitions, and a query bounded in time reads only its hours. The
//! primary key `(timestamp, hash)` is the store's order and makes a message stored twice, by
//! this node or by another writing to the same database, one row.
//!
//! Connections come from a pool (`--store-max-num-db-connections`). Schema changes are
//! versioned migrations, applied at start under an advisory lock so that nodes starting
//! together apply each one once.

use std::{
    collections::HashSet,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{NoTls, Row, error::SqlState, types::ToSql};

use super::archive::{
    ArchiveError, Entry, IdRow, Page, Param, Query, Retention, Stored, ids_statement, page_of_rows,
    page_statement, stored_hash, stored_size,
};
use crate::message::{MessageHash, WakuMessage};

/// Width of a partition: one hour of message timestamps, in nanoseconds.
const PARTITION_NS: i64 = 3_600_000_000_000;
/// The advisory lock key under which migrations and partition changes run.
const LOCK: i64 = 0x7761_6b75_726c_6e00; // "wakurln\0"
/// How long a caller waits for a pooled connection, and a new connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Schema migrations; index `i` moves the database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE messages (
        timestamp BIGINT NOT NULL,
        hash BYTEA NOT NULL,
        pubsub_topic TEXT NOT NULL,
        content_topic TEXT NOT NULL,
        version BIGINT NOT NULL,
        payload BYTEA NOT NULL,
        meta BYTEA,
        proof BYTEA,
        size BIGINT NOT NULL,
        PRIMARY KEY (timestamp, hash)
    ) PARTITION BY RANGE (timestamp);
    CREATE INDEX messages_hash ON messages (hash);
    CREATE INDEX messages_topics ON messages (pubsub_topic, content_topic, timestamp, hash);
    CREATE INDEX messages_pubsub_time ON messages (pubsub_topic, timestamp, hash);
"];

/// The archive in a PostgreSQL database.
#[derive(Debug)]
pub struct Postgres {
    pool: Pool,
    name: String,
    /// Partitions known to exist (by hour number).
    partitions: Mutex<HashSet<i64>>,
}

impl ToSql for Param {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Param::Text(t) => t.to_sql(ty, out),
            Param::Int(i) => i.to_sql(ty, out),
            Param::Bytes(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <String as ToSql>::accepts(ty)
            || <i64 as ToSql>::accepts(ty)
            || <Vec<u8> as ToSql>::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}

/// The hour a timestamp falls in.
fn hour_of(timestamp: i64) -> i64 {
    timestamp.div_euclid(PARTITION_NS)
}

/// The partition table of an hour (hours before 1970 are written with an `m`).
fn partition_name(hour: i64) -> String {
    if hour < 0 {
        format!("messages_m{}", hour.unsigned_abs())
    } else {
        format!("messages_{hour}")
    }
}

/// The hour of a partition table's name, if it is one of ours.
fn hour_of_name(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("messages_")?;
    match rest.strip_prefix('m') {
        Some(neg) => neg.parse::<i64>().ok().map(|h| -h),
        None => rest.parse().ok(),
    }
}

/// `postgres://user@host:port/database`, without the password.
fn shown(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let db = config.get_dbname().unwrap_or_default();
    format!("postgres://{user}{host}:{port}/{db}")
}

impl Postgres {
    /// Connects, creates the schema or migrates it, and keeps a pool of at most `connections`.
    pub async fn open(url: &str, connections: usize) -> Result<Self, ArchiveError> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| ArchiveError::Db {
            path: crate::redact::url(url),
            detail: format!("not a PostgreSQL URL: {e}"),
        })?;
        let name = shown(&config);
        crate::redact::register_database_url(url, &name);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| ArchiveError::Db {
                path: name.clone(),
                detail: e.to_string(),
            })?;
        let archive = Self {
            pool,
            name,
            partitions: Mutex::new(HashSet::new()),
        };
        archive.migrate().await?;
        Ok(archive)
    }

    /// The database, without its password.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn err(&self, e: impl std::fmt::Display) -> ArchiveError {
        ArchiveError::Db {
            path: self.name.clone(),
            detail: e.to_string(),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, ArchiveError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Timeout(_) => {
                self.err("no database connection within 10 s (is the server up?)")
            }
            deadpool_postgres::PoolError::Backend(e) => self.err(format!("cannot connect: {e}")),
            other => self.err(other),
        })
    }

    async fn migrate(&self) -> Result<(), ArchiveError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
            .await
            .map_err(|e| self.err(e))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS wakurln_archive_schema (version INTEGER NOT NULL)",
        )
        .await
        .map_err(|e| self.err(e))?;
        let version: Option<i32> = tx
            .query_opt("SELECT version FROM wakurln_archive_schema", &[])
            .await
            .map_err(|e| self.err(e))?
            .map(|r| r.get(0));
        let version = match version {
            Some(v) => v as usize,
            None => {
                // A messages table that is not ours (another node's archive) is left alone.
                let foreign: bool = tx
                    .query_one(
                        "SELECT to_regclass('messages') IS NOT NULL AND NOT EXISTS \
                         (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('messages') \
                         AND attname = 'proof')",
                        &[],
                    )
                    .await
                    .map_err(|e| self.err(e))?
                    .get(0);
                if foreign {
                    return Err(self.err(
                        "the database holds a `messages` table this node did not create \
                         (another node's archive?); give wakurln a database of its own",
                    ));
                }
                tx.execute("INSERT INTO wakurln_archive_schema VALUES (0)", &[])
                    .await
                    .map_err(|e| self.err(e))?;
                0
            }
        };
        if version > MIGRATIONS.len() {
            return Err(self.err(format!(
                "the archive's schema is version {version}, newer than this wakurln knows \
                 ({}); use a newer wakurln",
                MIGRATIONS.len()
            )));
        }
        for (i, step) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.batch_execute(step).await.map_err(|e| self.err(e))?;
            tx.execute(
                "UPDATE wakurln_archive_schema SET version = $1",
                &[&(i as i32 + 1)],
            )
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        if version < MIGRATIONS.len() {
            tracing::info!(
                archive = %self.name,
                from = version,
                to = MIGRATIONS.len(),
                "archive schema migrated"
            );
        }
        Ok(())
    }

    /// Creates the partitions of `hours` that are not known to exist.
    async fn ensure_partitions(&self, hours: &HashSet<i64>) -> Result<(), ArchiveError> {
        let missing: Vec<i64> = {
            let known = self
                .partitions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            hours
                .iter()
                .filter(|h| !known.contains(h))
                .copied()
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
            .await
            .map_err(|e| self.err(e))?;
        for hour in &missing {
            let from = hour.saturating_mul(PARTITION_NS);
            let to = hour.saturating_add(1).saturating_mul(PARTITION_NS);
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF messages FOR VALUES FROM ({from}) TO \
                 ({to})",
                partition_name(*hour)
            ))
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        self.partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(missing);
        Ok(())
    }

    /// Stores messages in one statement; a message already stored is skipped. Returns how many
    /// were new.
    pub async fn insert(&self, messages: &[(&str, &WakuMessage)]) -> Result<usize, ArchiveError> {
        let with_time: Vec<(&str, &WakuMessage, i64)> = messages
            .iter()
            .filter_map(|(t, m)| m.timestamp().map(|ts| (*t, *m, ts)))
            .collect();
        if with_time.is_empty() {
            return Ok(0);
        }
        let hours: HashSet<i64> = with_time.iter().map(|(_, _, ts)| hour_of(*ts)).collect();
        let mut hashes = Vec::with_capacity(with_time.len());
        let mut topics = Vec::with_capacity(with_time.len());
        let mut contents = Vec::with_capacity(with_time.len());
        let mut timestamps = Vec::with_capacity(with_time.len());
        let mut versions = Vec::with_capacity(with_time.len());
        let mut payloads = Vec::with_capacity(with_time.len());
        let mut metas = Vec::with_capacity(with_time.len());
        let mut proofs = Vec::with_capacity(with_time.len());
        let mut sizes = Vec::with_capacity(with_time.len());
        for (topic, m, ts) in &with_time {
            hashes.push(m.hash(topic).as_bytes().to_vec());
            topics.push(*topic);
            contents.push(m.content_topic().as_str());
            timestamps.push(*ts);
            versions.push(i64::from(m.version()));
            payloads.push(m.payload().as_ref());
            metas.push(m.meta().map(|b| b.as_ref()));
            proofs.push(m.rate_limit_proof().map(|b| b.as_ref()));
            sizes.push(stored_size(m));
        }
        let args: [&(dyn ToSql + Sync); 9] = [
            &hashes,
            &topics,
            &contents,
            &timestamps,
            &versions,
            &payloads,
            &metas,
            &proofs,
            &sizes,
        ];
        // A partition another node's retention dropped is created again on the second try.
        for attempt in 0..2 {
            self.ensure_partitions(&hours).await?;
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "INSERT INTO messages (hash, pubsub_topic, content_topic, timestamp, version, \
                     payload, meta, proof, size) SELECT * FROM UNNEST($1::bytea[], $2::text[], \
                     $3::text[], $4::int8[], $5::int8[], $6::bytea[], $7::bytea[], $8::bytea[], \
                     $9::int8[]) ON CONFLICT DO NOTHING",
                )
                .await
                .map_err(|e| self.err(e))?;
            match client.execute(&statement, &args).await {
                Ok(n) => return Ok(n as usize),
                Err(e) if attempt == 0 && e.code() == Some(&SqlState::CHECK_VIOLATION) => {
                    self.partitions
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clear();
                }
                Err(e) => return Err(self.err(e)),
            }
        }
        unreachable!("the second attempt returns")
    }

    /// Messages stored.
    pub async fn count(&self) -> Result<u64, ArchiveError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT count(*) FROM messages", &[])
            .await
            .map_err(|e| self.err(e))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Messages and their bytes per pubsub topic.
    pub async fn per_topic(&self) -> Result<Vec<(String, u64, u64)>, ArchiveError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT pubsub_topic, count(*), coalesce(sum(size), 0)::bigint FROM messages \
                 GROUP BY pubsub_topic",
                &[],
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    r.get::<_, i64>(1) as u64,
                    r.get::<_, i64>(2) as u64,
                )
            })
            .collect())
    }

    fn entry_of(&self, row: &Row, with_data: bool) -> Result<Entry, ArchiveError> {
        let hash: MessageHash =
            stored_hash(row.try_get(0).map_err(|e| self.err(e))?).map_err(|e| self.err(e))?;
        if !with_data {
            return Ok(Entry {
                hash,
                message: None,
                pubsub_topic: None,
            });
        }
        let version: i64 = row.try_get(4).map_err(|e| self.err(e))?;
        let stored = Stored {
            pubsub_topic: row.try_get(1).map_err(|e| self.err(e))?,
            content_topic: row.try_get(2).map_err(|e| self.err(e))?,
            timestamp: row.try_get(3).map_err(|e| self.err(e))?,
            version: u32::try_from(version)
                .map_err(|_| self.err("a stored message's version is out of range"))?,
            payload: row.try_get(5).map_err(|e| self.err(e))?,
            meta: row.try_get(6).map_err(|e| self.err(e))?,
            proof: row.try_get(7).map_err(|e| self.err(e))?,
        };
        let (message, topic) = stored.message().map_err(|e| self.err(e))?;
        Ok(Entry {
            hash,
            message: Some(message),
            pubsub_topic: Some(topic),
        })
    }

    /// Up to `limit` messages after `after` in time order, without their data.
    pub async fn ids_after(
        &self,
        after: (i64, [u8; 32]),
        limit: u64,
    ) -> Result<Vec<IdRow>, ArchiveError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&ids_statement(|n| format!("${n}")))
            .await
            .map_err(|e| self.err(e))?;
        let rows = client
            .query(
                &statement,
                &[&after.0, &after.1.as_slice(), &(limit as i64)],
            )
            .await
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| {
                Ok(IdRow {
                    time: r.try_get(0).map_err(|e| self.err(e))?,
                    hash: stored_hash(r.try_get(1).map_err(|e| self.err(e))?)
                        .map_err(|e| self.err(e))?
                        .0,
                    pubsub_topic: r.try_get(2).map_err(|e| self.err(e))?,
                    content_topic: r.try_get(3).map_err(|e| self.err(e))?,
                })
            })
            .collect()
    }

    /// Answers a query (checked by the caller with [`Query::check`]).
    pub async fn query(&self, q: &Query) -> Result<Page, ArchiveError> {
        let client = self.client().await?;
        let cursor_time = match &q.cursor {
            None => None,
            Some(cursor) => {
                let row = client
                    .query_opt(
                        "SELECT timestamp FROM messages WHERE hash = $1",
                        &[&cursor.as_bytes().as_slice()],
                    )
                    .await
                    .map_err(|e| self.err(e))?;
                Some(row.map(|r| r.get::<_, i64>(0)).ok_or_else(|| {
                    ArchiveError::BadQuery("the cursor names no stored message".into())
                })?)
            }
        };
        let (sql, params) = page_statement(q, cursor_time, |n| format!("${n}"));
        let statement = client.prepare_cached(&sql).await.map_err(|e| self.err(e))?;
        let args: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let rows = client
            .query(&statement, &args)
            .await
            .map_err(|e| self.err(e))?;
        let entries = rows
            .iter()
            .map(|r| self.entry_of(r, q.include_data))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page_of_rows(q, entries))
    }

    /// Our partitions, by hour, oldest first.
    async fn partition_hours(&self) -> Result<Vec<i64>, ArchiveError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 WHERE i.inhparent = 'messages'::regclass",
                &[],
            )
            .await
            .map_err(|e| self.err(e))?;
        let mut hours: Vec<i64> = rows
            .iter()
            .filter_map(|r| hour_of_name(r.get::<_, &str>(0)))
            .collect();
        hours.sort_unstable();
        Ok(hours)
    }

    /// Drops the partitions of `hours`, returning the rows they held.
    async fn drop_partitions(&self, hours: &[i64]) -> Result<u64, ArchiveError> {
        let mut dropped = 0;
        for hour in hours {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(|e| self.err(e))?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
                .await
                .map_err(|e| self.err(e))?;
            let name = partition_name(*hour);
            let exists: bool = tx
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
                .await
                .map_err(|e| self.err(e))?
                .get(0);
            if exists {
                let rows: i64 = tx
                    .query_one(&format!("SELECT count(*) FROM {name}"), &[])
                    .await
                    .map_err(|e| self.err(e))?
                    .get(0);
                tx.batch_execute(&format!("DROP TABLE {name}"))
                    .await
                    .map_err(|e| self.err(e))?;
                dropped += rows as u64;
            }
            tx.commit().await.map_err(|e| self.err(e))?;
            self.partitions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(hour);
        }
        Ok(dropped)
    }

    /// Deletes the oldest messages up to and including the `n`-th oldest (at most `n` rows).
    async fn delete_oldest(&self, n: u64) -> Result<u64, ArchiveError> {
        if n == 0 {
            return Ok(0);
        }
        let client = self.client().await?;
        let deleted = client
            .execute(
                "DELETE FROM messages WHERE (timestamp, hash) IN (SELECT timestamp, hash FROM \
                 messages ORDER BY timestamp, hash LIMIT $1)",
                &[&(n as i64)],
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(deleted)
    }

    /// Deletes what the retention limits exclude, at most `batch` rows per statement. Time
    /// retention drops whole hours first. Returns the rows deleted.
    pub async fn enforce(
        &self,
        r: Retention,
        now_ns: i64,
        batch: u64,
    ) -> Result<u64, ArchiveError> {
        let batch = batch.max(1);
        let mut deleted = 0;
        if let Some(age) = r.max_age_secs {
            let floor = now_ns.saturating_sub((age as i64).saturating_mul(1_000_000_000));
            let whole: Vec<i64> = self
                .partition_hours()
                .await?
                .into_iter()
                .filter(|h| h.saturating_add(1).saturating_mul(PARTITION_NS) <= floor)
                .collect();
            deleted += self.drop_partitions(&whole).await?;
            loop {
                let client = self.client().await?;
                let n = client
                    .execute(
                        "DELETE FROM messages WHERE (timestamp, hash) IN (SELECT timestamp, hash \
                         FROM messages WHERE timestamp < $1 ORDER BY timestamp, hash LIMIT $2)",
                        &[&floor, &(batch as i64)],
                    )
                    .await
                    .map_err(|e| self.err(e))?;
                deleted += n;
                if n < batch {
                    break;
                }
            }
        }
        if let Some(max) = r.max_messages {
            loop {
                let excess = self.count().await?.saturating_sub(max);
                if excess == 0 {
                    break;
                }
                deleted += self.delete_oldest(excess.min(batch)).await?;
            }
        }
        if let Some(max) = r.max_bytes {
            loop {
                let client = self.client().await?;
                let size: i64 = client
                    .query_one("SELECT coalesce(sum(size), 0)::bigint FROM messages", &[])
                    .await
                    .map_err(|e| self.err(e))?
                    .get(0);
                let Some(excess) = (size as u64).checked_sub(max).filter(|e| *e > 0) else {
                    break;
                };
                // The oldest messages whose sizes add up to the excess, and not one more.
                let rows = client
                    .query(
                        "SELECT size FROM messages ORDER BY timestamp, hash LIMIT $1",
                        &[&(batch as i64)],
                    )
                    .await
                    .map_err(|e| self.err(e))?;
                let mut freed = 0u64;
                let mut n = 0u64;
                for row in &rows {
                    if freed >= excess {
                        break;
                    }
                    freed += row.get::<_, i64>(0).max(0) as u64;
                    n += 1;
                }
                drop(client);
                let gone = self.delete_oldest(n).await?;
                deleted += gone;
                if gone == 0 {
                    break;
                }
            }
        }
        // Hours left empty by the deletions above go too.
        let oldest: Option<i64> = self
            .client()
            .await?
            .query_one("SELECT min(timestamp) FROM messages", &[])
            .await
            .map_err(|e| self.err(e))?
            .get(0);
        let empty: Vec<i64> = self
            .partition_hours()
            .await?
            .into_iter()
            .filter(|h| oldest.is_none_or(|t| *h < hour_of(t)))
            .collect();
        self.drop_partitions(&empty).await?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip_on_both_sides_of_1970() {
        for hour in [0, 1, 493_827, -1, -493_827] {
            assert_eq!(hour_of_name(&partition_name(hour)), Some(hour));
        }
        assert_eq!(hour_of(-1), -1);
        assert_eq!(hour_of(PARTITION_NS), 1);
        assert_eq!(hour_of_name("messages_hash"), None);
        assert_eq!(hour_of_name("other"), None);
    }
}
