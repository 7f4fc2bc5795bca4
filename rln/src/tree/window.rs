//! The window of recent roots a validator accepts: proofs are made against the root the sender
//! saw, which may be a few membership changes behind ours.

use std::collections::VecDeque;

use crate::field::Fr;

/// Roots kept by default, as on The Waku Network.
pub const DEFAULT_ROOT_WINDOW: usize = 50;

/// The most recent distinct roots, newest last, at most `capacity` of them.
#[derive(Debug, Clone)]
pub struct RootWindow {
    capacity: usize,
    roots: VecDeque<Fr>,
}

impl Default for RootWindow {
    fn default() -> Self {
        Self::new(DEFAULT_ROOT_WINDOW)
    }
}

impl RootWindow {
    /// An empty window of `capacity` roots (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            roots: VecDeque::with_capacity(capacity),
        }
    }

    /// Records a new root; a root equal to the newest is not recorded twice.
    pub fn push(&mut self, root: Fr) {
        if self.roots.back() == Some(&root) {
            return;
        }
        if self.roots.len() == self.capacity {
            self.roots.pop_front();
        }
        self.roots.push_back(root);
    }

    /// Forgets the newest root (used when a chain reorganisation undoes an update).
    pub fn pop(&mut self) -> Option<Fr> {
        self.roots.pop_back()
    }

    /// Whether `root` is one of the recent roots.
    pub fn contains(&self, root: &Fr) -> bool {
        self.roots.contains(root)
    }

    /// How many roots the window keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The newest root.
    pub fn latest(&self) -> Option<Fr> {
        self.roots.back().copied()
    }

    /// Recent roots, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Fr> {
        self.roots.iter()
    }

    /// Number of roots held.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// Whether no root has been recorded.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_distinct_roots() {
        let mut window = RootWindow::new(3);
        for i in [1u64, 1, 2, 3, 4] {
            window.push(Fr::from(i));
        }
        let held: Vec<Fr> = window.iter().copied().collect();
        assert_eq!(held, vec![Fr::from(2u64), Fr::from(3u64), Fr::from(4u64)]);
        assert!(!window.contains(&Fr::from(1u64)));
        assert_eq!(window.latest(), Some(Fr::from(4u64)));
        assert_eq!(window.pop(), Some(Fr::from(4u64)));
        assert_eq!(RootWindow::default().capacity, DEFAULT_ROOT_WINDOW);
    }
}
