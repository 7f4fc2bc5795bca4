//! The nullifier log on disk: every accepted share of the epochs a validator still accepts, so
//! a double signal straddling a restart is still caught.
//!
//! Writes come in one transaction per validation batch, before the batch's verdicts are
//! reported, so what a peer saw accepted is on disk (WAL, `synchronous=NORMAL`: a crash of
//! the process loses nothing committed; a power cut may lose the last moments). Epochs leave
//! the file as the clock leaves them behind.

use std::{path::Path, sync::Mutex};

use rusqlite::{Connection, params};

use crate::rln::{
    field::{self, Fr},
    waku::Epoch,
};
use crate::sqlite::{Durability, OpenError};

/// One accepted share: epoch, nullifier, x, y.
pub type StoredShare = (Epoch, Fr, Fr, Fr);

/// Why the nullifier file failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing failed.
    #[error("the nullifier log {path}: {detail}")]
    Db {
        /// The file.
        path: String,
        /// What failed.
        detail: String,
    },
    /// The file could not be opened.
    #[error("the nullifier log: {0}")]
    Open(#[from] OpenError),
}

/// Version 1: one share per epoch and nullifier.
const SHARES_V1: &str = "CREATE TABLE IF NOT EXISTS shares (
    epoch INTEGER NOT NULL, nullifier BLOB NOT NULL, x BLOB NOT NULL,
    y BLOB NOT NULL, PRIMARY KEY (epoch, nullifier))";

/// The nullifier log's SQLite file.
#[derive(Debug)]
pub struct NullifierStore {
    conn: Mutex<Connection>,
    path: String,
    pruned_below: Mutex<u64>,
}

impl NullifierStore {
    /// Opens (creating) the file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = crate::sqlite::open(path, Durability::Normal, &[SHARES_V1])?;
        let name = path.display().to_string();
        Ok(Self {
            conn: Mutex::new(conn),
            path: name,
            pruned_below: Mutex::new(0),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The shares of epochs from `from` on, in the order they were written.
    pub fn load(&self, from: Epoch) -> Result<Vec<StoredShare>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT epoch, nullifier, x, y FROM shares WHERE epoch >= ?1 ORDER BY rowid")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([from.0 as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (epoch, n, x, y) = row.map_err(|e| self.err(e))?;
            let read = |b: &[u8]| {
                field::from_le_bytes(b)
                    .map_err(|e| self.err(format!("a stored share is damaged: {e}")))
            };
            out.push((Epoch(epoch as u64), read(&n)?, read(&x)?, read(&y)?));
        }
        Ok(out)
    }

    /// Records `shares` in one transaction, and drops epochs before `keep_from`.
    pub fn record(&self, shares: &[StoredShare], keep_from: Epoch) -> Result<(), StoreError> {
        let mut pruned_below = self
            .pruned_below
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if shares.is_empty() && *pruned_below >= keep_from.0 {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO shares (epoch, nullifier, x, y) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(|e| self.err(e))?;
            for (epoch, nullifier, x, y) in shares {
                insert
                    .execute(params![
                        epoch.0 as i64,
                        field::to_le_bytes(nullifier).to_vec(),
                        field::to_le_bytes(x).to_vec(),
                        field::to_le_bytes(y).to_vec()
                    ])
                    .map_err(|e| self.err(e))?;
            }
        }
        if *pruned_below < keep_from.0 {
            tx.execute("DELETE FROM shares WHERE epoch < ?1", [keep_from.0 as i64])
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        *pruned_below = keep_from.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_survive_reopening_and_old_epochs_are_pruned() {
        let dir = std::env::temp_dir().join(format!("wakurln-nullstore-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nullifiers.sqlite");
        let f = |n: u64| Fr::from(n);
        {
            let store = NullifierStore::open(&path).unwrap();
            store
                .record(
                    &[(Epoch(9), f(1), f(2), f(3)), (Epoch(10), f(4), f(5), f(6))],
                    Epoch(9),
                )
                .unwrap();
            // The same share again is not an error.
            store
                .record(&[(Epoch(10), f(4), f(5), f(6))], Epoch(9))
                .unwrap();
        }
        let store = NullifierStore::open(&path).unwrap();
        assert_eq!(
            store.load(Epoch(0)).unwrap(),
            vec![(Epoch(9), f(1), f(2), f(3)), (Epoch(10), f(4), f(5), f(6))]
        );
        store.record(&[], Epoch(10)).unwrap();
        assert_eq!(
            store.load(Epoch(0)).unwrap(),
            vec![(Epoch(10), f(4), f(5), f(6))]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
