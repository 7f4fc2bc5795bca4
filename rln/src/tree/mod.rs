//! The membership Merkle tree: depth 20, Poseidon nodes, empty leaf 0, and the window of recent
//! roots a validator accepts.
//!
//! Nodes are kept level by level and only up to the highest leaf ever written; everything to
//! its right is an empty subtree whose hash is precomputed. Batch writes rehash each touched
//! parent once, level by level, in parallel, so building a million leaves costs about a
//! million hashes spread over every core. [`MerkleTree::write_to`] and
//! [`MerkleTree::read_from`] save and restore every node, so a restart needs no rehashing.

mod persist;
mod window;

use std::sync::OnceLock;

use ark_ff::Zero;
use rayon::prelude::*;

pub use persist::PersistError;
pub use window::{DEFAULT_ROOT_WINDOW, RootWindow};

use crate::{field::Fr, poseidon::poseidon2};

/// Depth of the membership tree on The Waku Network.
pub const DEPTH: usize = 20;
/// Number of leaves.
pub const CAPACITY: usize = 1 << DEPTH;

/// Parent ranges smaller than this are hashed on the calling thread.
const PARALLEL_THRESHOLD: usize = 512;

/// Why a tree operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// The index (or the end of a batch) lies beyond the tree's capacity.
    #[error("leaf index {index} is outside the tree (capacity {CAPACITY})")]
    OutOfRange {
        /// The first index that does not fit.
        index: usize,
    },
}

/// Hashes of empty subtrees: `empty(0) = 0`, `empty(k + 1) = H(empty(k), empty(k))`.
pub fn empty_subtree(level: usize) -> Fr {
    static EMPTY: OnceLock<[Fr; DEPTH + 1]> = OnceLock::new();
    EMPTY.get_or_init(|| {
        let mut empty = [Fr::zero(); DEPTH + 1];
        for k in 0..DEPTH {
            empty[k + 1] = poseidon2(empty[k], empty[k]);
        }
        empty
    })[level]
}

/// A path from a leaf to the root: the sibling at each level, leaf level first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleProof {
    /// Sibling hashes, leaf level first.
    pub elements: [Fr; DEPTH],
    /// The leaf index; bit `k` says whether the path is the right child at level `k`.
    pub index: u32,
}

impl MerkleProof {
    /// The circuit's `identityPathIndex`: bit `k` of the leaf index, leaf level first.
    pub fn path_bits(&self) -> [bool; DEPTH] {
        std::array::from_fn(|k| (self.index >> k) & 1 == 1)
    }

    /// The root this path leads to from `leaf`.
    pub fn root_for(&self, leaf: Fr) -> Fr {
        self.elements
            .iter()
            .zip(self.path_bits())
            .fold(leaf, |node, (sibling, right)| {
                if right {
                    poseidon2(*sibling, node)
                } else {
                    poseidon2(node, *sibling)
                }
            })
    }
}

/// The membership tree.
#[derive(Clone, PartialEq, Eq)]
pub struct MerkleTree {
    /// `levels[0]` are leaves, `levels[DEPTH]` holds the root once any leaf is written. Level
    /// `k` stores nodes `0 .. ceil(width / 2^k)`, where width is one past the highest leaf.
    levels: Vec<Vec<Fr>>,
}

impl Default for MerkleTree {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MerkleTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerkleTree")
            .field("width", &self.width())
            .field("root", &self.root())
            .finish()
    }
}

impl MerkleTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self {
            levels: vec![Vec::new(); DEPTH + 1],
        }
    }

    /// One past the highest leaf index ever written (erased leaves still count).
    pub fn width(&self) -> usize {
        self.levels[0].len()
    }

    /// The root.
    pub fn root(&self) -> Fr {
        self.node(DEPTH, 0)
    }

    /// The leaf at `index` (0 if never written or erased).
    pub fn leaf(&self, index: usize) -> Fr {
        self.node(0, index)
    }

    /// Leaves `0 .. width()`.
    pub fn leaves(&self) -> &[Fr] {
        &self.levels[0]
    }

    fn node(&self, level: usize, i: usize) -> Fr {
        self.levels[level]
            .get(i)
            .copied()
            .unwrap_or_else(|| empty_subtree(level))
    }

    /// Writes one leaf.
    pub fn set(&mut self, index: usize, leaf: Fr) -> Result<(), TreeError> {
        self.set_range(index, &[leaf])
    }

    /// Resets a leaf to empty (an erased membership).
    pub fn delete(&mut self, index: usize) -> Result<(), TreeError> {
        self.set(index, Fr::zero())
    }

    /// Writes consecutive leaves starting at `start`, rehashing every touched node once.
    pub fn set_range(&mut self, start: usize, leaves: &[Fr]) -> Result<(), TreeError> {
        let end = start + leaves.len();
        if end > CAPACITY {
            return Err(TreeError::OutOfRange {
                index: start.max(CAPACITY),
            });
        }
        if leaves.is_empty() {
            return Ok(());
        }
        self.grow(end);
        self.levels[0][start..end].copy_from_slice(leaves);
        let (mut lo, mut hi) = (start, end);
        for level in 0..DEPTH {
            (lo, hi) = (lo / 2, (hi - 1) / 2 + 1);
            self.rehash(level + 1, lo, hi);
        }
        Ok(())
    }

    /// Extends every level so that leaves `0 .. width` exist.
    fn grow(&mut self, width: usize) {
        for (level, nodes) in self.levels.iter_mut().enumerate() {
            let needed = (width - 1) / (1 << level) + 1;
            if nodes.len() < needed {
                nodes.resize(needed, empty_subtree(level));
            }
        }
    }

    /// Recomputes nodes `lo .. hi` of `level` from their children.
    fn rehash(&mut self, level: usize, lo: usize, hi: usize) {
        let (below, above) = self.levels.split_at_mut(level);
        let children = &below[level - 1];
        let empty = empty_subtree(level - 1);
        let child = |i: usize| children.get(i).copied().unwrap_or(empty);
        let hash = |(offset, node): (usize, &mut Fr)| {
            let i = lo + offset;
            *node = poseidon2(child(2 * i), child(2 * i + 1));
        };
        let parents = &mut above[0][lo..hi];
        if hi - lo >= PARALLEL_THRESHOLD {
            parents.par_iter_mut().enumerate().for_each(hash);
        } else {
            parents.iter_mut().enumerate().for_each(hash);
        }
    }

    /// The path from leaf `index` to the root.
    pub fn proof(&self, index: usize) -> Result<MerkleProof, TreeError> {
        if index >= CAPACITY {
            return Err(TreeError::OutOfRange { index });
        }
        Ok(MerkleProof {
            elements: std::array::from_fn(|k| self.node(k, (index >> k) ^ 1)),
            index: u32::try_from(index).expect("index < 2^20"),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::field::parse;

    /// Recomputes the root from all leaves without any caching.
    fn naive_root(leaves: &[(usize, Fr)]) -> Fr {
        let mut layer: std::collections::BTreeMap<usize, Fr> = leaves.iter().copied().collect();
        for level in 0..DEPTH {
            let parents: std::collections::BTreeSet<usize> = layer.keys().map(|i| i / 2).collect();
            let get = |m: &std::collections::BTreeMap<usize, Fr>, i| {
                m.get(&i).copied().unwrap_or_else(|| empty_subtree(level))
            };
            layer = parents
                .into_iter()
                .map(|p| (p, poseidon2(get(&layer, 2 * p), get(&layer, 2 * p + 1))))
                .collect();
        }
        layer
            .get(&0)
            .copied()
            .unwrap_or_else(|| empty_subtree(DEPTH))
    }

    #[test]
    fn empty_tree_root_and_known_vector() {
        let tree = MerkleTree::new();
        assert_eq!(tree.root(), empty_subtree(DEPTH));
        // zerokit's hard-coded Merkle vector: the rate commitment of a known secret with limit
        // 100 at index 3 of an empty depth-20 tree.
        let secret = crate::field::hash_to_field(b"test-merkle-proof");
        let leaf = crate::identity::rate_commitment(crate::poseidon::poseidon(&[secret]), 100);
        let mut tree = MerkleTree::new();
        tree.set(3, leaf).unwrap();
        assert_eq!(
            tree.root(),
            parse("0x0ca44928dfaa33b33d7204b1691194ba46ed393ecbe0dad1448bff673f2519af").unwrap()
        );
        let proof = tree.proof(3).unwrap();
        assert_eq!(&proof.path_bits()[..3], &[true, true, false]);
        assert_eq!(proof.root_for(leaf), tree.root());
    }

    #[test]
    fn delete_restores_the_empty_root() {
        let mut tree = MerkleTree::new();
        tree.set(5, Fr::from(9u64)).unwrap();
        tree.delete(5).unwrap();
        assert_eq!(tree.root(), empty_subtree(DEPTH));
        assert_eq!(tree.width(), 6);
    }

    #[test]
    fn out_of_range_is_refused() {
        let mut tree = MerkleTree::new();
        assert_eq!(
            tree.set(CAPACITY, Fr::zero()),
            Err(TreeError::OutOfRange { index: CAPACITY })
        );
        assert!(tree.set_range(CAPACITY - 1, &[Fr::zero(); 2]).is_err());
        assert!(tree.set(CAPACITY - 1, Fr::from(1u64)).is_ok());
        assert!(tree.proof(CAPACITY).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn batch_and_single_writes_agree_with_a_naive_root(
            writes in proptest::collection::vec((0usize..300, 0usize..40, any::<u64>()), 1..6)
        ) {
            let mut batched = MerkleTree::new();
            let mut single = MerkleTree::new();
            let mut all = std::collections::BTreeMap::new();
            for (start, len, seed) in writes {
                let leaves: Vec<Fr> = (0..len as u64).map(|i| Fr::from(seed ^ i)).collect();
                batched.set_range(start, &leaves).unwrap();
                for (i, leaf) in leaves.iter().enumerate() {
                    single.set(start + i, *leaf).unwrap();
                    all.insert(start + i, *leaf);
                }
            }
            let entries: Vec<_> = all.into_iter().collect();
            prop_assert_eq!(batched.root(), naive_root(&entries));
            prop_assert_eq!(single.root(), batched.root());
            for &(i, leaf) in entries.iter().take(4) {
                prop_assert_eq!(batched.proof(i).unwrap().root_for(leaf), batched.root());
            }
        }
    }
}
