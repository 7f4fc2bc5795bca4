//! Opening the node's SQLite files the same way everywhere: the folder created, write-ahead
//! logging, the durability the file needs, a busy timeout, and versioned migrations recorded
//! in `user_version`. A file written by a newer wakurln is refused, never rewritten.

use std::{path::Path, time::Duration};

use rusqlite::Connection;

/// How much a commit must survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A crash of the process loses nothing committed; a power cut may lose the last commits
    /// (`synchronous = NORMAL` under WAL).
    Normal,
    /// A power cut loses nothing committed (`synchronous = FULL`): for files whose loss would
    /// make the node reuse a message id.
    Full,
}

/// Why a SQLite file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Its folder could not be created.
    #[error("cannot create the folder of {path}: {source}")]
    Folder {
        /// The file.
        path: String,
        /// What the file system said.
        source: std::io::Error,
    },
    /// SQLite refused to open or migrate it.
    #[error("cannot open {path}: {source}")]
    Db {
        /// The file.
        path: String,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// It was written by a newer wakurln.
    #[error("{path} was written by a newer wakurln (schema {found}, this one reads up to {known})")]
    Newer {
        /// The file.
        path: String,
        /// Its schema version.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
}

/// Opens (creating) the database at `path` and brings its schema up to date: `migrations[i]`
/// takes a file from version `i` to `i + 1`, all pending ones in one transaction.
pub fn open(
    path: &Path,
    durability: Durability,
    migrations: &[&str],
) -> Result<Connection, OpenError> {
    let name = path.display().to_string();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| OpenError::Folder {
            path: name.clone(),
            source,
        })?;
    }
    let db = |source| OpenError::Db {
        path: name.clone(),
        source,
    };
    let mut conn = Connection::open(path).map_err(db)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(db)?;
    let synchronous = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(db)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(db)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(db)?;
    let known = migrations.len() as i64;
    if version > known {
        return Err(OpenError::Newer {
            path: name,
            found: version,
            known,
        });
    }
    if version < known {
        let tx = conn.transaction().map_err(db)?;
        for migration in &migrations[version as usize..] {
            tx.execute_batch(migration).map_err(db)?;
        }
        tx.pragma_update(None, "user_version", known).map_err(db)?;
        tx.commit().map_err(db)?;
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "CREATE TABLE a (x INTEGER)";
    const V2: &str = "ALTER TABLE a ADD COLUMN y INTEGER";

    #[test]
    fn migrates_step_by_step_and_refuses_newer_files() {
        let dir = std::env::temp_dir().join(format!("wakurln-sqlite-{}", std::process::id()));
        let path = dir.join("nested/test.sqlite");
        let _ = std::fs::remove_dir_all(&dir);
        let conn = open(&path, Durability::Normal, &[V1]).unwrap();
        conn.execute("INSERT INTO a (x) VALUES (1)", []).unwrap();
        drop(conn);
        let conn = open(&path, Durability::Full, &[V1, V2]).unwrap();
        let (x, y): (i64, Option<i64>) = conn
            .query_row("SELECT x, y FROM a", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((x, y), (1, None));
        drop(conn);
        let error = open(&path, Durability::Normal, &[V1]).unwrap_err();
        assert!(
            matches!(
                error,
                OpenError::Newer {
                    found: 2,
                    known: 1,
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("newer wakurln"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
