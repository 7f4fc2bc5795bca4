//! The sync store: SQLite (WAL) holding the tree's leaves, the last synced block and its hash,
//! the hashes of recent blocks and the leaf values they replaced, so a restart resumes without
//! refetching and a chain reorganisation can be rolled back.
//!
//! Schema versions are migrated at open, in one transaction.

use std::path::Path;

use alloy::primitives::{Address, B256};
use rusqlite::{Connection, OptionalExtension, params};

use super::ChainError;
use crate::rln::{
    field::{self, Fr},
    tree::MerkleTree,
};
use crate::sqlite::Durability;

/// Recent blocks kept for reorg detection and rollback.
pub const KEPT_BLOCKS: u64 = 256;

const SCHEMA_V1: &str = "
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE leaves (idx INTEGER PRIMARY KEY, value BLOB NOT NULL);
    CREATE TABLE blocks (number INTEGER PRIMARY KEY, hash BLOB NOT NULL);
    CREATE TABLE undo (number INTEGER NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL,
                       old BLOB NOT NULL, PRIMARY KEY (number, seq));
";

/// One leaf change of a block: index, value before, value after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafChange {
    /// The leaf index.
    pub index: u32,
    /// The value before the block.
    pub old: Fr,
    /// The value after.
    pub new: Fr,
}

/// The SQLite sync store.
#[derive(Debug)]
pub struct SyncStore {
    conn: Connection,
    path: String,
}

impl SyncStore {
    /// Opens (creating and migrating as needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, ChainError> {
        let conn = crate::sqlite::open(path, Durability::Normal, &[SCHEMA_V1])?;
        let name = path.display().to_string();
        Ok(Self { conn, path: name })
    }

    fn err(&self, e: &rusqlite::Error) -> ChainError {
        ChainError::Store {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }

    fn meta(&self, key: &str) -> Result<Option<String>, ChainError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(&e))
    }

    /// Binds the store to one contract on one chain, refusing another.
    pub fn bind(&self, chain_id: u64, contract: Address) -> Result<(), ChainError> {
        let wanted = format!("{chain_id}:{contract}");
        match self.meta("contract")? {
            Some(bound) if bound != wanted => Err(ChainError::Store {
                path: self.path.clone(),
                detail: format!(
                    "it holds the tree of {bound} (chain:contract), not {wanted}; use another --db"
                ),
            }),
            Some(_) => Ok(()),
            None => self
                .conn
                .execute(
                    "INSERT INTO meta (key, value) VALUES ('contract', ?1)",
                    [wanted],
                )
                .map(drop)
                .map_err(|e| self.err(&e)),
        }
    }

    /// The last synced block and its hash.
    pub fn last_synced(&self) -> Result<Option<(u64, B256)>, ChainError> {
        let (Some(number), Some(hash)) = (self.meta("last_block")?, self.meta("last_hash")?) else {
            return Ok(None);
        };
        let number = number.parse().map_err(|_| ChainError::Store {
            path: self.path.clone(),
            detail: "last_block is not a number".into(),
        })?;
        let hash = hash.parse().map_err(|_| ChainError::Store {
            path: self.path.clone(),
            detail: "last_hash is not a block hash".into(),
        })?;
        Ok(Some((number, hash)))
    }

    /// The stored hash of a recent block.
    pub fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
        self.conn
            .query_row(
                "SELECT hash FROM blocks WHERE number = ?1",
                [number as i64],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .optional()
            .map(|h| h.map(|h| B256::from_slice(&h)))
            .map_err(|e| self.err(&e))
    }

    /// Recent stored block numbers, newest first.
    pub fn recent_blocks(&self) -> Result<Vec<u64>, ChainError> {
        let mut stmt = self
            .conn
            .prepare("SELECT number FROM blocks ORDER BY number DESC")
            .map_err(|e| self.err(&e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, i64>(0))
            .map_err(|e| self.err(&e))?;
        rows.map(|r| r.map(|n| n as u64).map_err(|e| self.err(&e)))
            .collect()
    }

    /// Rebuilds the tree from the stored leaves (one batch write, no RPC).
    pub fn load_tree(&self) -> Result<MerkleTree, ChainError> {
        let mut stmt = self
            .conn
            .prepare("SELECT idx, value FROM leaves ORDER BY idx")
            .map_err(|e| self.err(&e))?;
        let mut leaves = Vec::new();
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .map_err(|e| self.err(&e))?;
        for row in rows {
            let (idx, bytes) = row.map_err(|e| self.err(&e))?;
            let value = field::from_le_bytes(&bytes).map_err(|e| ChainError::Store {
                path: self.path.clone(),
                detail: format!("leaf {idx} is damaged: {e}"),
            })?;
            let idx = idx as usize;
            if leaves.len() < idx {
                leaves.resize(idx, Fr::from(0u64));
            }
            leaves.push(value);
        }
        let mut tree = MerkleTree::new();
        tree.set_range(0, &leaves).map_err(|e| ChainError::Store {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        Ok(tree)
    }

    /// The initial sync in progress: the block it reads at, that block's hash, and the next
    /// leaf index to read. Leaves below that index are stored already.
    pub fn initial_progress(&self) -> Result<Option<(u64, B256, u32)>, ChainError> {
        let (Some(block), Some(hash), Some(next)) = (
            self.meta("initial_block")?,
            self.meta("initial_hash")?,
            self.meta("initial_next")?,
        ) else {
            return Ok(None);
        };
        let damaged = |what: &str| ChainError::Store {
            path: self.path.clone(),
            detail: format!("{what} of the initial sync is damaged"),
        };
        Ok(Some((
            block.parse().map_err(|_| damaged("the block"))?,
            hash.parse().map_err(|_| damaged("the block hash"))?,
            next.parse().map_err(|_| damaged("the next index"))?,
        )))
    }

    /// Stores one batch of the initial sync, leaves `start..start + leaves.len()` read at
    /// `block`, and the index to continue from, in one transaction: a process killed between
    /// batches resumes after the last one stored.
    pub fn commit_initial_batch(
        &mut self,
        (block, hash): (u64, B256),
        start: u32,
        leaves: &[Fr],
    ) -> Result<(), ChainError> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| ChainError::Store {
            path: path.clone(),
            detail: e.to_string(),
        };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut leaf = tx
                .prepare_cached("INSERT OR REPLACE INTO leaves (idx, value) VALUES (?1, ?2)")
                .map_err(err)?;
            for (i, value) in leaves.iter().enumerate() {
                if *value == Fr::from(0u64) {
                    continue;
                }
                leaf.execute(params![
                    start as usize + i,
                    field::to_le_bytes(value).to_vec()
                ])
                .map_err(err)?;
            }
            let mut meta = tx
                .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")
                .map_err(err)?;
            meta.execute(params!["initial_block", block.to_string()])
                .map_err(err)?;
            meta.execute(params!["initial_hash", hash.to_string()])
                .map_err(err)?;
            meta.execute(params![
                "initial_next",
                (start as usize + leaves.len()).to_string()
            ])
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Ends the initial sync: `block` becomes the last synced block.
    pub fn finish_initial(&mut self, last: (u64, B256)) -> Result<(), ChainError> {
        self.commit(&[], &[], last)?;
        self.conn
            .execute(
                "DELETE FROM meta WHERE key IN ('initial_block', 'initial_hash', 'initial_next')",
                [],
            )
            .map(drop)
            .map_err(|e| self.err(&e))
    }

    /// Records a synced range: its leaf changes (in order), the hash of every block that had
    /// changes and of the range's last block, all in one transaction.
    pub fn commit(
        &mut self,
        changes: &[(u64, LeafChange)],
        hashes: &[(u64, B256)],
        last: (u64, B256),
    ) -> Result<(), ChainError> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| ChainError::Store {
            path: path.clone(),
            detail: e.to_string(),
        };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut leaf = tx
                .prepare_cached("INSERT OR REPLACE INTO leaves (idx, value) VALUES (?1, ?2)")
                .map_err(err)?;
            let mut undo = tx
                .prepare_cached("INSERT INTO undo (number, seq, idx, old) VALUES (?1, ?2, ?3, ?4)")
                .map_err(err)?;
            for (seq, (number, change)) in changes.iter().enumerate() {
                leaf.execute(params![
                    change.index,
                    field::to_le_bytes(&change.new).to_vec()
                ])
                .map_err(err)?;
                undo.execute(params![
                    *number as i64,
                    seq as i64,
                    change.index,
                    field::to_le_bytes(&change.old).to_vec()
                ])
                .map_err(err)?;
            }
            let mut block = tx
                .prepare_cached("INSERT OR REPLACE INTO blocks (number, hash) VALUES (?1, ?2)")
                .map_err(err)?;
            for (number, hash) in hashes.iter().chain([&last]) {
                block
                    .execute(params![*number as i64, hash.to_vec()])
                    .map_err(err)?;
            }
            let floor = last.0.saturating_sub(KEPT_BLOCKS) as i64;
            tx.execute("DELETE FROM blocks WHERE number < ?1", [floor])
                .map_err(err)?;
            tx.execute("DELETE FROM undo WHERE number < ?1", [floor])
                .map_err(err)?;
            let mut meta = tx
                .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")
                .map_err(err)?;
            meta.execute(params!["last_block", last.0.to_string()])
                .map_err(err)?;
            meta.execute(params!["last_hash", last.1.to_string()])
                .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Undoes every block after `number` (which must be stored): returns the restored
    /// `(index, old value)` pairs, newest change first, for the caller to apply to its tree.
    pub fn rollback_to(&mut self, number: u64) -> Result<Vec<(u32, Fr)>, ChainError> {
        let hash = self.block_hash(number)?.ok_or_else(|| ChainError::Store {
            path: self.path.clone(),
            detail: format!("block {number} is not among the recent blocks kept"),
        })?;
        let path = self.path.clone();
        let err = |e: rusqlite::Error| ChainError::Store {
            path: path.clone(),
            detail: e.to_string(),
        };
        let tx = self.conn.transaction().map_err(err)?;
        let restored: Vec<(u32, Vec<u8>)> = {
            let mut stmt = tx
                .prepare(
                    "SELECT idx, old FROM undo WHERE number > ?1 ORDER BY number DESC, seq DESC",
                )
                .map_err(err)?;
            let rows = stmt
                .query_map([number as i64], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(err)?;
            rows.collect::<Result<_, _>>().map_err(err)?
        };
        let mut out = Vec::with_capacity(restored.len());
        for (idx, old) in restored {
            tx.execute(
                "INSERT OR REPLACE INTO leaves (idx, value) VALUES (?1, ?2)",
                params![idx, old],
            )
            .map_err(err)?;
            let value = field::from_le_bytes(&old).map_err(|e| ChainError::Store {
                path: path.clone(),
                detail: format!("undo record of leaf {idx} is damaged: {e}"),
            })?;
            out.push((idx, value));
        }
        tx.execute("DELETE FROM undo WHERE number > ?1", [number as i64])
            .map_err(err)?;
        tx.execute("DELETE FROM blocks WHERE number > ?1", [number as i64])
            .map_err(err)?;
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_block', ?1), ('last_hash', ?2)",
            params![number.to_string(), hash.to_string()],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(out)
    }

    /// Records the window of recent roots, oldest first.
    pub fn save_roots(&self, roots: &[Fr]) -> Result<(), ChainError> {
        let text: Vec<String> = roots
            .iter()
            .map(|r| hex::encode(field::to_le_bytes(r)))
            .collect();
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('recent_roots', ?1)",
                [text.join(",")],
            )
            .map(drop)
            .map_err(|e| self.err(&e))
    }

    /// The window of recent roots as last saved, oldest first (empty if none was).
    pub fn load_roots(&self) -> Result<Vec<Fr>, ChainError> {
        let Some(text) = self.meta("recent_roots")? else {
            return Ok(Vec::new());
        };
        text.split(',')
            .filter(|s| !s.is_empty())
            .map(|s| {
                hex::decode(s)
                    .ok()
                    .and_then(|bytes| field::from_le_bytes(&bytes).ok())
                    .ok_or_else(|| ChainError::Store {
                        path: self.path.clone(),
                        detail: format!("a saved root is damaged: {s}"),
                    })
            })
            .collect()
    }

    /// Forgets everything synced (the contract binding stays).
    pub fn reset(&mut self) -> Result<(), ChainError> {
        self.conn
            .execute_batch(
                "DELETE FROM leaves; DELETE FROM blocks; DELETE FROM undo;
                 DELETE FROM meta WHERE key IN ('last_block', 'last_hash', 'initial_block',
                                                'initial_hash', 'initial_next',
                                                'recent_roots');",
            )
            .map_err(|e| self.err(&e))
    }
}
