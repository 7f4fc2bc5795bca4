//! The sync engine: the membership tree follows the contract.
//!
//! - **Initial sync** reads every leaf in bulk (`getRateCommitmentsInRangeBoundsInclusive`,
//!   many thousands per call) at one block, then checks the root against the contract's.
//! - **Following** fetches the contract's events for the blocks since, in ranges that shrink
//!   when a provider refuses a range as too large and grow while it is quiet, staying a
//!   configurable number of blocks behind the head.
//! - **Reorgs**: before each step the stored hash of the last synced block is compared with
//!   the chain's; on a mismatch the store walks back to the newest block both agree on and
//!   undoes the leaf changes after it.
//! - After each step the local root is compared with `root()` at that block; a mismatch is an
//!   error that says so loudly. Every new root enters the window of recent roots.
//! - **Recent roots** of a contract that keeps them (`getRecentRoots()`, the current WakuRlnV2
//!   interface and ours) seed the window after the initial sync, so proofs made by publishers
//!   whose trees lag a few registrations behind are accepted from the start. A contract without
//!   them (WakuRlnV2 as first deployed) is synced the same way, with a window that starts at
//!   the current root.

use std::{collections::HashMap, path::Path};

use alloy::{
    eips::{BlockId, BlockNumberOrTag},
    primitives::{B256, U256},
    providers::Provider,
    rpc::types::{Filter, Log},
    sol_types::SolEvent,
};
use indicatif::{ProgressBar, ProgressStyle};

use super::{
    ChainClient, ChainError, SyncStore,
    bindings::WakuRlnV2::{MembershipErased, MembershipExpired, MembershipRegistered},
    store::LeafChange,
};
use crate::rln::{
    field::{self, Fr},
    identity::rate_commitment,
    tree::{MerkleTree, RootWindow},
};

/// Tuning of the sync engine.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Blocks to stay behind the head (protection against shallow reorgs).
    pub follow_distance: u64,
    /// Leaves read per bulk call during the initial sync.
    pub leaves_per_call: u32,
    /// First block range of `eth_getLogs`.
    pub initial_log_range: u64,
    /// Largest block range of `eth_getLogs`.
    pub max_log_range: u64,
    /// Recent roots accepted by the validator.
    pub root_window: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            follow_distance: 2,
            leaves_per_call: 5_000,
            initial_log_range: 2_000,
            max_log_range: 100_000,
            root_window: crate::rln::tree::DEFAULT_ROOT_WINDOW,
        }
    }
}

/// Where the sync stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStatus {
    /// The last synced block.
    pub block: u64,
    /// The tree's root, equal to the contract's at that block.
    pub root: Fr,
    /// Non-empty leaves.
    pub members: usize,
    /// Leaf changes applied in this step.
    pub applied: usize,
    /// Blocks rolled back in this step because of a reorg.
    pub rolled_back: u64,
}

/// Keeps a membership tree in sync with the contract.
#[derive(Debug)]
pub struct Syncer {
    client: ChainClient,
    // Behind a mutex only so the syncer is Sync and its futures Send; never held across an
    // await.
    store: std::sync::Mutex<SyncStore>,
    tree: MerkleTree,
    roots: RootWindow,
    config: SyncConfig,
    log_range: u64,
}

fn to_field(value: U256, what: &str) -> Result<Fr, ChainError> {
    field::from_le_bytes(&value.to_le_bytes::<32>())
        .map_err(|e| ChainError::rpc(format!("decoding {what}"), e))
}

/// Where a sync restored from its store continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Following the chain after `block`.
    Follow {
        /// The last synced block.
        block: u64,
    },
    /// Reading the leaves at `block` from index `next` on.
    Initial {
        /// The block the initial sync reads at.
        block: u64,
        /// The next leaf to read.
        next: u32,
    },
}

impl Syncer {
    /// Opens the store at `db` (binding it to the client's contract) and restores the tree
    /// from it without any RPC call.
    pub async fn open(
        client: ChainClient,
        db: &Path,
        config: SyncConfig,
    ) -> Result<Self, ChainError> {
        let db = db.to_path_buf();
        let (chain, contract) = (client.chain_id(), client.contract_address());
        let (store, tree, saved_roots) = tokio::task::spawn_blocking(move || {
            let store = SyncStore::open(&db)?;
            store.bind(chain, contract)?;
            let tree = store.load_tree()?;
            let roots = store.load_roots()?;
            Ok::<_, ChainError>((store, tree, roots))
        })
        .await
        .expect("the tree loader does not panic")?;
        let mut roots = RootWindow::new(config.root_window);
        for root in saved_roots {
            roots.push(root);
        }
        roots.push(tree.root());
        Ok(Self {
            log_range: config.initial_log_range,
            client,
            store: std::sync::Mutex::new(store),
            tree,
            roots,
            config,
        })
    }

    fn store(&self) -> std::sync::MutexGuard<'_, SyncStore> {
        self.store
            .lock()
            .expect("the sync store lock is never poisoned")
    }

    /// Where the stored sync stands: the last synced block, or the block and next leaf of an
    /// interrupted initial sync. `None` for a fresh store.
    pub fn resumes_at(&self) -> Result<Option<Resume>, ChainError> {
        let store = self.store();
        if let Some((block, _)) = store.last_synced()? {
            return Ok(Some(Resume::Follow { block }));
        }
        Ok(store
            .initial_progress()?
            .map(|(block, _, next)| Resume::Initial { block, next }))
    }

    /// The tree as of the last step.
    pub fn tree(&self) -> &MerkleTree {
        &self.tree
    }

    /// The recent roots.
    pub fn roots(&self) -> &RootWindow {
        &self.roots
    }

    /// The client in use.
    pub fn client(&self) -> &ChainClient {
        &self.client
    }

    async fn block_hash(&self, number: u64) -> Result<B256, ChainError> {
        let block = self
            .client
            .request("eth_getBlockByNumber", |p| async move {
                p.get_block_by_number(BlockNumberOrTag::Number(number))
                    .await
            })
            .await?;
        block.map(|b| b.header.hash).ok_or_else(|| {
            ChainError::rpc(format!("block {number}"), "the endpoint does not know it")
        })
    }

    async fn contract_root(&self, block: u64) -> Result<Fr, ChainError> {
        let contract = self.client.contract();
        let root = self
            .client
            .request("root()", |_| {
                let c = contract.clone();
                async move { c.root().block(BlockId::number(block)).call().await }
            })
            .await?;
        to_field(root, "root()")
    }

    /// The contract's recent roots at `block`, newest first, or `None` when it does not keep
    /// them (the call reverts or returns nothing).
    pub async fn contract_recent_roots(&self, block: u64) -> Result<Option<Vec<Fr>>, ChainError> {
        let contract = self.client.contract();
        let ring = self
            .client
            .request("getRecentRoots()", |_| {
                let c = contract.clone();
                async move {
                    match c
                        .getRecentRoots()
                        .block(BlockId::number(block))
                        .call()
                        .await
                    {
                        Ok(ring) => Ok(Some(ring)),
                        Err(e) if lacks_function(&e) => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            })
            .await?;
        ring.map(|ring| {
            ring.into_iter()
                .map(|root| to_field(root, "getRecentRoots()"))
                .collect()
        })
        .transpose()
    }

    /// Puts the contract's older recent roots into the window, oldest first, when its newest
    /// is the tree's root at `block`.
    async fn seed_recent_roots(&mut self, block: u64) -> Result<(), ChainError> {
        let Some(ring) = self.contract_recent_roots(block).await? else {
            tracing::debug!("the contract keeps no recent roots; the root window starts now");
            return Ok(());
        };
        let zero = Fr::from(0u64);
        match ring.first() {
            Some(newest) if *newest == self.tree.root() => {}
            // Nothing stored yet, or a tree that does not match: the root check after the
            // step reports the latter.
            _ => return Ok(()),
        }
        let older: Vec<Fr> = ring[1..].iter().copied().filter(|r| *r != zero).collect();
        for root in older.iter().rev() {
            self.roots.push(*root);
        }
        tracing::debug!(
            roots = older.len(),
            "root window seeded with the contract's recent roots"
        );
        Ok(())
    }

    /// Syncs up to the head minus the follow distance.
    pub async fn step(&mut self) -> Result<SyncStatus, ChainError> {
        let head = self
            .client
            .request(
                "eth_blockNumber",
                |p| async move { p.get_block_number().await },
            )
            .await?;
        let target = head.saturating_sub(self.config.follow_distance);
        let mut rolled_back = 0;
        let last_synced = self.store().last_synced()?;
        let applied = match last_synced {
            None => {
                let applied = self.initial(target).await?;
                // The chain may have moved on while the leaves were read.
                let (block, _) = self
                    .store()
                    .last_synced()?
                    .expect("the initial sync records its block");
                applied + self.follow(block, target.max(block)).await?
            }
            Some((last, hash)) => {
                let resume = if self.block_hash(last).await? == hash {
                    last
                } else {
                    let common = self.rollback().await?;
                    rolled_back = last - common;
                    common
                };
                self.follow(resume, target).await?
            }
        };
        let (block, _) = self
            .store()
            .last_synced()?
            .expect("a step records its last block");
        let contract_root = self.contract_root(block).await?;
        if contract_root != self.tree.root() {
            return Err(ChainError::RootMismatch {
                local: field::to_decimal(&self.tree.root()),
                contract: field::to_decimal(&contract_root),
                block,
            });
        }
        Ok(SyncStatus {
            block,
            root: self.tree.root(),
            members: self
                .tree
                .leaves()
                .iter()
                .filter(|l| **l != Fr::from(0u64))
                .count(),
            applied,
            rolled_back,
        })
    }

    /// Reads every leaf at one block in bulk, storing each batch as it arrives so a restart
    /// continues after the last stored batch (at the same block, when the chain still has it).
    async fn initial(&mut self, target: u64) -> Result<usize, ChainError> {
        let interrupted = self.store().initial_progress()?;
        let (block, hash, mut start) = match interrupted {
            Some((block, hash, next)) if self.block_hash(block).await? == hash => {
                tracing::info!(block, next, "resuming the initial sync");
                (block, hash, next)
            }
            Some(_) => {
                tracing::warn!(
                    "the block of the interrupted initial sync was reorganised away; starting over"
                );
                self.store().reset()?;
                self.tree = MerkleTree::new();
                (target, self.block_hash(target).await?, 0)
            }
            None => (target, self.block_hash(target).await?, 0),
        };
        let contract = self.client.contract();
        let count = self
            .client
            .request("nextFreeIndex()", |_| {
                let c = contract.clone();
                async move { c.nextFreeIndex().block(BlockId::number(block)).call().await }
            })
            .await?;
        let bar = progress(u64::from(count), "reading members");
        bar.set_position(u64::from(start.min(count)));
        let mut read = 0;
        while start < count {
            let end = (start + self.config.leaves_per_call).min(count) - 1;
            let batch = self
                .client
                .request(&format!("leaves {start}..={end} at block {block}"), |_| {
                    let c = contract.clone();
                    async move {
                        c.getRateCommitmentsInRangeBoundsInclusive(start, end)
                            .block(BlockId::number(block))
                            .call()
                            .await
                    }
                })
                .await?;
            let leaves = batch
                .into_iter()
                .map(|value| to_field(value, "a rate commitment"))
                .collect::<Result<Vec<_>, _>>()?;
            if leaves.len() != (end - start + 1) as usize {
                return Err(ChainError::rpc(
                    format!("leaves {start}..={end}"),
                    format!("the contract returned {} leaves", leaves.len()),
                ));
            }
            self.store()
                .commit_initial_batch((block, hash), start, &leaves)?;
            self.tree
                .set_range(start as usize, &leaves)
                .map_err(|e| ChainError::rpc("building the tree", e))?;
            read += leaves.len();
            bar.inc(leaves.len() as u64);
            start = end + 1;
        }
        bar.finish_and_clear();
        self.store().finish_initial((block, hash))?;
        self.seed_recent_roots(block).await?;
        self.roots.push(self.tree.root());
        Ok(read)
    }

    /// Applies the events of blocks `after + 1 ..= target`.
    async fn follow(&mut self, after: u64, target: u64) -> Result<usize, ChainError> {
        let mut from = after + 1;
        let mut applied = 0;
        let bar = progress(target.saturating_sub(after), "following blocks");
        while from <= target {
            let to = (from + self.log_range - 1).min(target);
            let logs = match self.logs(from, to).await {
                Ok(logs) => logs,
                Err(e) if self.log_range > 1 && refuses_range(&e) => {
                    self.log_range = (self.log_range / 2).max(1);
                    tracing::debug!(
                        range = self.log_range,
                        "provider refused the block range; shrinking"
                    );
                    continue;
                }
                Err(e) => return Err(e),
            };
            applied += self.apply(&logs, to).await?;
            if logs.len() < 1_000 {
                self.log_range = (self.log_range * 2).min(self.config.max_log_range);
            }
            bar.inc(to - from + 1);
            from = to + 1;
        }
        bar.finish_and_clear();
        if after >= target {
            // Nothing new: still record where we are so the reorg check has a fresh hash.
            let hash = self.block_hash(after).await?;
            self.store().commit(&[], &[], (after, hash))?;
        }
        Ok(applied)
    }

    async fn logs(&self, from: u64, to: u64) -> Result<Vec<Log>, ChainError> {
        let filter = Filter::new()
            .address(self.client.contract_address())
            .from_block(from)
            .to_block(to);
        self.client
            .request(&format!("eth_getLogs for blocks {from}..={to}"), |p| {
                let f = filter.clone();
                async move { p.get_logs(&f).await }
            })
            .await
    }

    /// Applies one range's logs to the tree (batched) and the store (one transaction).
    async fn apply(&mut self, logs: &[Log], last: u64) -> Result<usize, ChainError> {
        let mut overlay: HashMap<u32, Fr> = HashMap::new();
        let mut changes = Vec::new();
        let mut hashes = Vec::new();
        for log in logs {
            let Some(number) = log.block_number else {
                continue;
            };
            let Some((index, new)) = leaf_update(log)? else {
                continue;
            };
            let old = overlay
                .get(&index)
                .copied()
                .unwrap_or_else(|| self.tree.leaf(index as usize));
            overlay.insert(index, new);
            changes.push((number, LeafChange { index, old, new }));
            if let Some(hash) = log.block_hash
                && hashes.last() != Some(&(number, hash))
            {
                hashes.push((number, hash));
            }
        }
        let last_hash = self.block_hash(last).await?;
        self.store().commit(&changes, &hashes, (last, last_hash))?;
        // A publisher may have proved against the root after any block: every block's root
        // enters the window. Blocks too old to stay in it are applied in one batch.
        let mut blocks: Vec<(u64, HashMap<u32, Fr>)> = Vec::new();
        for (number, change) in &changes {
            match blocks.last_mut() {
                Some((n, leaves)) if n == number => {
                    leaves.insert(change.index, change.new);
                }
                _ => blocks.push((*number, HashMap::from([(change.index, change.new)]))),
            }
        }
        let batched = blocks.len().saturating_sub(self.roots.capacity());
        let mut early: HashMap<u32, Fr> = HashMap::new();
        for (_, leaves) in &blocks[..batched] {
            early.extend(leaves);
        }
        if !early.is_empty() {
            self.set_leaves(early)?;
        }
        for (_, leaves) in &blocks[batched..] {
            self.set_leaves(leaves.clone())?;
            self.roots.push(self.tree.root());
        }
        if !changes.is_empty() {
            self.save_roots()?;
        }
        Ok(changes.len())
    }

    /// Sets leaves in the tree, in runs of consecutive indices.
    fn set_leaves(&mut self, leaves: HashMap<u32, Fr>) -> Result<(), ChainError> {
        let mut finals: Vec<(u32, Fr)> = leaves.into_iter().collect();
        finals.sort_by_key(|(i, _)| *i);
        for run in runs(&finals) {
            let values: Vec<Fr> = run.iter().map(|(_, v)| *v).collect();
            self.tree
                .set_range(run[0].0 as usize, &values)
                .map_err(|e| ChainError::rpc("applying events", e))?;
        }
        Ok(())
    }

    /// Persists the root window, so a restarted node accepts the same roots at once.
    fn save_roots(&self) -> Result<(), ChainError> {
        let roots: Vec<Fr> = self.roots.iter().copied().collect();
        self.store().save_roots(&roots)
    }

    /// Walks back to the newest stored block the chain still has, undoing what came after.
    async fn rollback(&mut self) -> Result<u64, ChainError> {
        let recent = self.store().recent_blocks()?;
        for number in recent {
            let stored = self.store().block_hash(number)?;
            if stored == Some(self.block_hash(number).await?) {
                let restored = self.store().rollback_to(number)?;
                for (index, old) in restored {
                    self.tree
                        .set(index as usize, old)
                        .map_err(|e| ChainError::rpc("rolling back", e))?;
                }
                // Roots made on the abandoned branch must no longer be accepted.
                self.roots = RootWindow::new(self.config.root_window);
                self.roots.push(self.tree.root());
                self.save_roots()?;
                tracing::warn!(
                    block = number,
                    "chain reorganisation: rolled the membership tree back"
                );
                return Ok(number);
            }
        }
        tracing::warn!("chain reorganisation deeper than the blocks kept: resyncing from scratch");
        self.store().reset()?;
        self.tree = MerkleTree::new();
        Ok(0)
    }
}

/// The leaf a membership event sets: registrations write the rate commitment, erasures and
/// expiries write 0, extensions change nothing.
fn leaf_update(log: &Log) -> Result<Option<(u32, Fr)>, ChainError> {
    let decode_err = |e: alloy::sol_types::Error| ChainError::rpc("decoding a membership event", e);
    match log.topic0() {
        Some(&MembershipRegistered::SIGNATURE_HASH) => {
            let e = MembershipRegistered::decode_log_data(log.data()).map_err(decode_err)?;
            let commitment = to_field(e.idCommitment, "an id commitment")?;
            let limit = u64::try_from(e.membershipRateLimit).map_err(|_| {
                ChainError::rpc("decoding a membership event", "rate limit too large")
            })?;
            Ok(Some((e.index, rate_commitment(commitment, limit))))
        }
        Some(&MembershipErased::SIGNATURE_HASH) => {
            let e = MembershipErased::decode_log_data(log.data()).map_err(decode_err)?;
            Ok(Some((e.index, Fr::from(0u64))))
        }
        Some(&MembershipExpired::SIGNATURE_HASH) => {
            let e = MembershipExpired::decode_log_data(log.data()).map_err(decode_err)?;
            Ok(Some((e.index, Fr::from(0u64))))
        }
        _ => Ok(None),
    }
}

/// Whether a call failed because the contract has no such function: it reverted without
/// data (no fallback) or returned nothing.
fn lacks_function(e: &alloy::contract::Error) -> bool {
    match e {
        alloy::contract::Error::ZeroData(..) => true,
        alloy::contract::Error::TransportError(t) => t.as_error_resp().is_some_and(|r| {
            r.message.contains("revert") && r.as_revert_data().is_none_or(|d| d.is_empty())
        }),
        _ => false,
    }
}

/// Splits sorted `(index, value)` pairs into runs of consecutive indices.
fn runs(sorted: &[(u32, Fr)]) -> impl Iterator<Item = &[(u32, Fr)]> {
    sorted.chunk_by(|a, b| b.0 == a.0 + 1)
}

/// Whether an error is a provider refusing a block range as too large.
fn refuses_range(e: &ChainError) -> bool {
    let text = e.to_string().to_lowercase();
    [
        "range",
        "too many",
        "limit",
        "exceed",
        "query returned more than",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// A progress bar on stderr for long work, hidden for short work and when stderr is no
/// terminal.
fn progress(total: u64, what: &'static str) -> ProgressBar {
    if total < 10_000 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_split_on_gaps() {
        let one = Fr::from(1u64);
        let pairs = [(1, one), (2, one), (5, one), (6, one), (9, one)];
        let lens: Vec<usize> = runs(&pairs).map(<[_]>::len).collect();
        assert_eq!(lens, vec![2, 2, 1]);
    }
}
