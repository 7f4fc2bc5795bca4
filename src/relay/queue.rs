//! The queue of relayed messages waiting for validation: one queue per peer, served round
//! robin, bounded in messages and in bytes.
//!
//! A flooding peer fills only its own queue: when the whole queue is full, the peer with the
//! most bytes waiting loses its newest message (if that peer is the one pushing, its new
//! message is refused instead). A peer sending at an honest rate never holds more than a few
//! messages, so it is never the one to lose them while a flooder is around; and workers take
//! one message per peer in turn, so the flooder's backlog does not delay anyone else's.

use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
};

/// Bounds of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Messages waiting, across all peers.
    pub max_items: usize,
    /// Bytes waiting, across all peers.
    pub max_bytes: usize,
}

/// Per-peer queues served round robin.
#[derive(Debug)]
pub struct FairQueue<K, T> {
    limits: QueueLimits,
    queues: HashMap<K, VecDeque<(T, usize)>>,
    /// Peers with something queued, in serving order; each appears once.
    turn: VecDeque<K>,
    items: usize,
    bytes: usize,
}

impl<K: Hash + Eq + Clone, T> FairQueue<K, T> {
    /// An empty queue.
    pub fn new(limits: QueueLimits) -> Self {
        Self {
            limits,
            queues: HashMap::new(),
            turn: VecDeque::new(),
            items: 0,
            bytes: 0,
        }
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.items
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Messages waiting from `key`.
    pub fn len_of(&self, key: &K) -> usize {
        self.queues.get(key).map_or(0, VecDeque::len)
    }

    fn over(&self, size: usize) -> bool {
        self.items >= self.limits.max_items || self.bytes + size > self.limits.max_bytes
    }

    /// The peer with the most bytes waiting.
    fn heaviest(&self) -> Option<K> {
        self.queues
            .iter()
            .max_by_key(|(_, q)| q.iter().map(|(_, size)| size).sum::<usize>())
            .map(|(k, _)| k.clone())
    }

    fn pop_back(&mut self, key: &K) -> Option<T> {
        let queue = self.queues.get_mut(key)?;
        let (item, size) = queue.pop_back()?;
        if queue.is_empty() {
            self.queues.remove(key);
            self.turn.retain(|k| k != key);
        }
        self.items -= 1;
        self.bytes -= size;
        Some(item)
    }

    /// Queues `item` of `size` bytes from `key`. Returns what was dropped to make room: the
    /// heaviest peer's newest messages, or `item` itself when `key` is the heaviest peer or the
    /// item alone exceeds the byte bound.
    pub fn push(&mut self, key: K, item: T, size: usize) -> Vec<T> {
        let mut dropped = Vec::new();
        if size > self.limits.max_bytes || self.limits.max_items == 0 {
            dropped.push(item);
            return dropped;
        }
        while self.over(size) {
            let Some(heaviest) = self.heaviest() else {
                break;
            };
            let own = self
                .queues
                .get(&key)
                .map_or(0, |q| q.iter().map(|(_, s)| s).sum::<usize>());
            let theirs: usize = self.queues[&heaviest].iter().map(|(_, s)| s).sum();
            if heaviest == key || own + size >= theirs {
                dropped.push(item);
                return dropped;
            }
            if let Some(victim) = self.pop_back(&heaviest) {
                dropped.push(victim);
            }
        }
        let queue = self.queues.entry(key.clone()).or_default();
        if queue.is_empty() {
            self.turn.push_back(key);
        }
        queue.push_back((item, size));
        self.items += 1;
        self.bytes += size;
        dropped
    }

    /// Takes up to `max` messages, one per peer in turn and at most `per_key` from one peer,
    /// so that no peer's backlog makes up most of a batch.
    pub fn pop_batch(&mut self, max: usize, per_key: usize) -> Vec<T> {
        let mut batch = Vec::new();
        let mut rounds = 0;
        while batch.len() < max && rounds < per_key && !self.turn.is_empty() {
            rounds += 1;
            // One round: each peer in turn once.
            for _ in 0..self.turn.len() {
                if batch.len() >= max {
                    break;
                }
                let key = self.turn.pop_front().expect("counted above");
                let queue = self
                    .queues
                    .get_mut(&key)
                    .expect("a peer in turn has a queue");
                let (item, size) = queue.pop_front().expect("queues in turn are not empty");
                if queue.is_empty() {
                    self.queues.remove(&key);
                } else {
                    self.turn.push_back(key);
                }
                self.items -= 1;
                self.bytes -= size;
                batch.push(item);
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn limits(items: usize, bytes: usize) -> QueueLimits {
        QueueLimits {
            max_items: items,
            max_bytes: bytes,
        }
    }

    #[test]
    fn peers_are_served_in_turn() {
        let mut q = FairQueue::new(limits(100, 10_000));
        for n in 0..5 {
            assert!(q.push("flood", ("flood", n), 10).is_empty());
        }
        assert!(q.push("honest", ("honest", 0), 10).is_empty());
        assert!(q.push("other", ("other", 0), 10).is_empty());
        let batch = q.pop_batch(4, usize::MAX);
        assert_eq!(
            batch,
            vec![("flood", 0), ("honest", 0), ("other", 0), ("flood", 1)]
        );
        assert_eq!(q.len(), 3);
        assert_eq!(q.bytes(), 30);
        // At most two of one peer per batch, however much room is left.
        assert!(q.push("honest", ("honest", 1), 10).is_empty());
        assert_eq!(
            q.pop_batch(64, 2),
            vec![("flood", 2), ("honest", 1), ("flood", 3)]
        );
        assert_eq!(q.pop_batch(64, 2), vec![("flood", 4)]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_full_queue_drops_the_flooders_messages_not_the_honest_ones() {
        let mut q = FairQueue::new(limits(10, 1_000_000));
        for n in 0..10 {
            assert!(q.push("flood", n, 100).is_empty());
        }
        // The flooder's own next message is refused.
        assert_eq!(q.push("flood", 10, 100), vec![10]);
        // An honest message makes room by dropping the flooder's newest.
        assert_eq!(q.push("honest", 100, 100), vec![9]);
        assert_eq!(q.len_of(&"honest"), 1);
        assert_eq!(q.len_of(&"flood"), 9);
    }

    #[test]
    fn the_byte_bound_holds_too() {
        let mut q = FairQueue::new(limits(1_000, 1_000));
        assert!(q.push("flood", 0, 600).is_empty());
        assert_eq!(q.push("flood", 1, 600), vec![1]);
        assert_eq!(q.push("honest", 2, 1_001), vec![2], "larger than the bound");
        assert_eq!(q.push("honest", 3, 500), vec![0]);
        assert_eq!(q.bytes(), 500);
    }

    proptest! {
        #[test]
        fn bounds_hold_and_nothing_is_lost(
            ops in prop::collection::vec((0u8..4, 1usize..300, any::<bool>()), 0..400)
        ) {
            let max_items = 20;
            let max_bytes = 2_000;
            let mut q = FairQueue::new(limits(max_items, max_bytes));
            let (mut pushed, mut out) = (0usize, 0usize);
            for (i, (peer, size, pop)) in ops.into_iter().enumerate() {
                if pop {
                    out += q.pop_batch(3, 2).len();
                } else {
                    pushed += 1;
                    out += q.push(peer, i, size).len();
                }
                prop_assert!(q.len() <= max_items);
                prop_assert!(q.bytes() <= max_bytes);
                prop_assert_eq!(q.turn.len(), q.queues.len());
            }
            out += q.pop_batch(usize::MAX, usize::MAX).len();
            prop_assert_eq!(pushed, out);
            prop_assert!(q.is_empty());
            prop_assert_eq!(q.bytes(), 0);
        }
    }
}
