//! The set a store node reconciles: the (timestamp, hash) of every message it holds within the
//! sync range, with each message's pubsub and content topic, and the answer to a peer's
//! payload.
//!
//! A peer's range is answered as the reference node does: a skip when the fingerprints agree;
//! our items when the range holds few of them; else the range split in [`PARTITIONS`] equal
//! spans of time, each with its fingerprint or its items. An item set is answered with the
//! items the other side lacks (to push) and with ours, marked reconciled.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::codec::{Body, Payload, SyncId};

/// Spans a differing range is split into.
pub const PARTITIONS: i64 = 8;
/// A range with at most this many of our items is answered with the items.
pub const ITEM_SET_THRESHOLD: usize = 100;
/// Items one reply lists at most (about 3.7 MB); past it, ranges get fingerprints and are
/// listed in a later round.
pub const MAX_REPLY_ITEMS: usize = 100_000;

/// Interned topic names, so a million items do not hold a million strings.
#[derive(Debug, Default)]
struct Names {
    index: HashMap<String, u32>,
    names: Vec<String>,
}

impl Names {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(i) = self.index.get(name) {
            return *i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), i);
        i
    }

    fn find(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }
}

/// Which items a payload is about: `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pubsub: Option<HashSet<u32>>,
    content: Option<HashSet<u32>>,
}

/// What answering a payload produced.
#[derive(Debug, Default)]
pub struct Answer {
    /// The reply (final when it has no ranges).
    pub reply: Payload,
    /// Items the peer lacks: push them.
    pub to_send: Vec<SyncId>,
    /// Items we lack, which the peer will push.
    pub to_receive: Vec<SyncId>,
    /// Ranges of the peer's fingerprints whose items we list first (or say we hold none):
    /// the peer pushes what it holds there and we lack as soon as it compares, before its own
    /// list (if it sends one) reaches us, and unlisted where we hold nothing.
    pub open: Vec<(SyncId, SyncId)>,
}

/// The set.
#[derive(Debug, Default)]
pub struct SyncSet {
    items: BTreeMap<SyncId, (u32, u32)>,
    pubsub: Names,
    content: Names,
}

/// The XOR of hashes.
fn xor(acc: &mut [u8; 32], hash: &[u8; 32]) {
    for (a, b) in acc.iter_mut().zip(hash) {
        *a ^= b;
    }
}

/// How to deal with topic sets: both non-empty, their intersection (none in common: nothing to
/// reconcile); one non-empty, that one.
fn common(ours: &[String], theirs: &[String]) -> Option<Vec<String>> {
    match (ours.is_empty(), theirs.is_empty()) {
        (false, false) => {
            let both: Vec<String> = ours
                .iter()
                .filter(|t| theirs.contains(t))
                .cloned()
                .collect();
            (!both.is_empty()).then_some(both)
        }
        (false, true) => Some(ours.to_vec()),
        (true, _) => Some(theirs.to_vec()),
    }
}

impl SyncSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no item is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether `id` is held.
    pub fn contains(&self, id: &SyncId) -> bool {
        self.items.contains_key(id)
    }

    /// Adds a message; `false` when it was there.
    pub fn insert(&mut self, id: SyncId, pubsub_topic: &str, content_topic: &str) -> bool {
        let topics = (
            self.pubsub.intern(pubsub_topic),
            self.content.intern(content_topic),
        );
        self.items.insert(id, topics).is_none()
    }

    /// The time of the `n`-th item in order (the last one's when there are fewer).
    pub fn nth_time(&self, n: usize) -> i64 {
        self.items
            .keys()
            .nth(n)
            .or_else(|| self.items.keys().next_back())
            .map_or(i64::MIN, |id| id.time)
    }

    /// Forgets the items older than `time`; returns how many. The topic tables are rebuilt
    /// when they hold many names no item uses.
    pub fn prune(&mut self, time: i64) -> usize {
        let keep = self.items.split_off(&SyncId::at(time));
        let gone = self.items.len();
        self.items = keep;
        if self.content.names.len() > 1_024 && self.content.names.len() > self.items.len() / 4 {
            self.rebuild_names();
        }
        gone
    }

    fn rebuild_names(&mut self) {
        let (old_pubsub, old_content) = (
            std::mem::take(&mut self.pubsub),
            std::mem::take(&mut self.content),
        );
        for (p, c) in self.items.values_mut() {
            *p = self.pubsub.intern(&old_pubsub.names[*p as usize]);
            *c = self.content.intern(&old_content.names[*c as usize]);
        }
    }

    /// The filter for a payload's (already agreed) topics. Topics we never saw match nothing.
    pub fn filter(&self, pubsub: &[String], content: &[String]) -> Filter {
        let set = |names: &Names, topics: &[String]| {
            (!topics.is_empty()).then(|| topics.iter().filter_map(|t| names.find(t)).collect())
        };
        Filter {
            pubsub: set(&self.pubsub, pubsub),
            content: set(&self.content, content),
        }
    }

    /// Our items in `[lower, upper)` that `filter` matches.
    pub fn items<'a>(
        &'a self,
        lower: SyncId,
        upper: SyncId,
        filter: &'a Filter,
    ) -> impl Iterator<Item = SyncId> + 'a {
        let range = if lower < upper {
            self.items.range(lower..upper)
        } else {
            self.items.range(lower..lower)
        };
        range
            .filter(move |(_, (p, c))| {
                filter.pubsub.as_ref().is_none_or(|s| s.contains(p))
                    && filter.content.as_ref().is_none_or(|s| s.contains(c))
            })
            .map(|(id, _)| *id)
    }

    /// The fingerprint of `[lower, upper)` and how many items it covers.
    pub fn fingerprint(&self, lower: SyncId, upper: SyncId, filter: &Filter) -> ([u8; 32], usize) {
        let mut fp = [0u8; 32];
        let mut n = 0;
        for id in self.items(lower, upper, filter) {
            xor(&mut fp, &id.hash);
            n += 1;
        }
        (fp, n)
    }

    /// The first payload of a session over `[from, to)`.
    pub fn initial(&self, from: i64, to: i64, pubsub: &[String], content: &[String]) -> Payload {
        let filter = self.filter(pubsub, content);
        let (lower, upper) = (SyncId::at(from), SyncId::at(to));
        let (fp, _) = self.fingerprint(lower, upper, &filter);
        Payload {
            pubsub_topics: pubsub.to_vec(),
            content_topics: content.to_vec(),
            ranges: vec![((lower, upper), Body::Fingerprint(fp))],
        }
    }

    /// Our items of a range, as a body: none (the range is settled), or the items, unsettled.
    fn items_body(&self, lower: SyncId, upper: SyncId, filter: &Filter) -> Body {
        let items: Vec<SyncId> = self.items(lower, upper, filter).collect();
        let reconciled = items.is_empty();
        Body::ItemSet { items, reconciled }
    }

    /// The answer to a range whose fingerprint differs from ours; `budget` is how many more
    /// items the reply may list.
    fn split(
        &self,
        (lower, upper): (SyncId, SyncId),
        filter: &Filter,
        budget: &mut usize,
        out: &mut Vec<((SyncId, SyncId), Body)>,
        open: &mut Vec<(SyncId, SyncId)>,
    ) {
        let span = upper.time.saturating_sub(lower.time);
        if span < PARTITIONS {
            // Too short to split in time (the reference node drops such a range): the items.
            let body = self.items_body(lower, upper, filter);
            if let Body::ItemSet { items, .. } = &body {
                *budget = budget.saturating_sub(items.len());
            }
            open.push((lower, upper));
            out.push(((lower, upper), body));
            return;
        }
        let (part, rem) = (span / PARTITIONS, span % PARTITIONS);
        let mut from = lower;
        for i in 0..PARTITIONS {
            let to = if i == PARTITIONS - 1 {
                upper
            } else {
                SyncId::at(from.time + part + i64::from(i < rem))
            };
            let (fp, n) = self.fingerprint(from, to, filter);
            let body = if n <= ITEM_SET_THRESHOLD && n <= *budget {
                *budget -= n;
                open.push((from, to));
                self.items_body(from, to, filter)
            } else {
                Body::Fingerprint(fp)
            };
            out.push(((from, to), body));
            from = to;
        }
    }

    /// Answers `payload`. `ours` are our own topic sets (empty: all); ranges ending before
    /// `window_start` (outside what we keep) are skipped.
    pub fn answer(
        &self,
        payload: &Payload,
        ours: (&[String], &[String]),
        window_start: i64,
    ) -> Answer {
        let mut answer = Answer::default();
        let (Some(pubsub), Some(content)) = (
            common(ours.0, &payload.pubsub_topics),
            common(ours.1, &payload.content_topics),
        ) else {
            // No topic in common: nothing to reconcile.
            return answer;
        };
        let filter = self.filter(&pubsub, &content);
        let mut budget = MAX_REPLY_ITEMS;
        let mut ranges = Vec::with_capacity(payload.ranges.len());
        for ((lower, upper), body) in &payload.ranges {
            let bounds = (*lower, *upper);
            if upper.time <= window_start {
                ranges.push((bounds, Body::Skip));
                continue;
            }
            match body {
                Body::Skip => ranges.push((bounds, Body::Skip)),
                Body::Fingerprint(theirs) => {
                    let (fp, n) = self.fingerprint(*lower, *upper, &filter);
                    if fp == *theirs {
                        ranges.push((bounds, Body::Skip));
                    } else if n <= ITEM_SET_THRESHOLD && n <= budget {
                        budget -= n;
                        answer.open.push(bounds);
                        ranges.push((bounds, self.items_body(*lower, *upper, &filter)));
                    } else if budget == 0 {
                        // Listed in a later round.
                        ranges.push((bounds, Body::Fingerprint(fp)));
                    } else {
                        self.split(bounds, &filter, &mut budget, &mut ranges, &mut answer.open);
                    }
                }
                Body::ItemSet { items, reconciled } => {
                    let mine: Vec<SyncId> = self.items(*lower, *upper, &filter).collect();
                    let theirs: HashSet<&SyncId> = items
                        .iter()
                        .filter(|i| *lower <= **i && **i < *upper)
                        .collect();
                    let mine_set: HashSet<&SyncId> = mine.iter().collect();
                    answer
                        .to_send
                        .extend(mine.iter().filter(|i| !theirs.contains(i)));
                    answer
                        .to_receive
                        .extend(theirs.iter().filter(|i| !mine_set.contains(**i)).copied());
                    ranges.push((
                        bounds,
                        if *reconciled {
                            Body::Skip
                        } else {
                            Body::ItemSet {
                                items: mine,
                                reconciled: true,
                            }
                        },
                    ));
                }
            }
        }
        // Neighbouring skips become one; all skips, the final (empty) payload.
        let mut merged: Vec<((SyncId, SyncId), Body)> = Vec::with_capacity(ranges.len());
        for (bounds, body) in ranges {
            match merged.last_mut() {
                Some(((_, upper), Body::Skip)) if body == Body::Skip => *upper = bounds.1,
                _ => merged.push((bounds, body)),
            }
        }
        if merged.iter().any(|(_, b)| *b != Body::Skip) {
            answer.reply = Payload {
                pubsub_topics: ours.0.to_vec(),
                content_topics: ours.1.to_vec(),
                ranges: merged,
            };
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "/waku/2/rs/1/0";
    const CONTENT: &str = "/app/1/chat/proto";

    fn id(i: u64) -> SyncId {
        let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(i.to_be_bytes()).into();
        SyncId {
            time: 1_000_000 + (i as i64) * 1_000,
            hash: digest,
        }
    }

    /// Runs sessions between `a` and `b` until the final payload; returns what each pushes.
    fn reconcile(
        a: &SyncSet,
        b: &SyncSet,
        from: i64,
        to: i64,
    ) -> (Vec<SyncId>, Vec<SyncId>, usize) {
        let topics = vec![TOPIC.to_owned()];
        let ours: (&[String], &[String]) = (&topics, &[]);
        let mut payload = a.initial(from, to, &topics, &[]);
        let (mut a_sends, mut b_sends, mut rounds) = (Vec::new(), Vec::new(), 0);
        let (mut a_expects, mut b_expects) = (Vec::new(), Vec::new());
        let mut turn_b = true;
        loop {
            rounds += 1;
            let bytes = super::super::codec::encode(&payload);
            let received = super::super::codec::decode(&bytes).unwrap();
            let (set, sends, expects) = if turn_b {
                (b, &mut b_sends, &mut b_expects)
            } else {
                (a, &mut a_sends, &mut a_expects)
            };
            let answer = set.answer(&received, ours, 0);
            sends.extend(answer.to_send);
            expects.extend(answer.to_receive);
            if answer.reply.is_final() {
                break;
            }
            payload = answer.reply;
            turn_b = !turn_b;
        }
        a_sends.sort();
        b_sends.sort();
        a_expects.sort();
        b_expects.sort();
        // What a side expects it is sent; a side that said it holds nothing in a range
        // (an empty, reconciled item set) does not know what will come.
        assert!(
            b_expects.iter().all(|x| a_sends.contains(x)),
            "b expects only what a sends"
        );
        assert!(
            a_expects.iter().all(|x| b_sends.contains(x)),
            "a expects only what b sends"
        );
        (a_sends, b_sends, rounds)
    }

    fn set_of(ids: impl Iterator<Item = u64>) -> SyncSet {
        let mut s = SyncSet::new();
        for i in ids {
            s.insert(id(i), TOPIC, CONTENT);
        }
        s
    }

    #[test]
    fn equal_sets_end_in_one_round() {
        let a = set_of(0..5_000);
        let b = set_of(0..5_000);
        let (x, y, rounds) = reconcile(&a, &b, 0, i64::MAX / 2);
        assert!(x.is_empty() && y.is_empty());
        assert_eq!(rounds, 1);
    }

    #[test]
    fn differing_sets_learn_exactly_what_each_lacks() {
        // 5,000 in common; 40 only in a, 25 only in b, scattered.
        let a = set_of((0..5_000).chain((0..40).map(|k| 10_000 + k * 97)));
        let b = set_of((0..5_000).chain((0..25).map(|k| 20_000 + k * 53)));
        let to = 1_000_000 + 40_000 * 1_000;
        let (a_sends, b_sends, _) = reconcile(&a, &b, 0, to);
        let mut want_a: Vec<SyncId> = (0..40).map(|k| id(10_000 + k * 97)).collect();
        let mut want_b: Vec<SyncId> = (0..25).map(|k| id(20_000 + k * 53)).collect();
        want_a.sort();
        want_b.sort();
        assert_eq!(a_sends, want_a);
        assert_eq!(b_sends, want_b);
        // One side empty.
        let (sends, none, _) = reconcile(&a, &SyncSet::new(), 0, to);
        assert_eq!(sends.len(), a.len());
        assert!(none.is_empty());
    }

    #[test]
    fn a_reply_lists_at_most_its_budget_of_items_and_fingerprints_the_rest() {
        let a = set_of(0..250_000);
        // 2,500 ranges of 100 items each, every fingerprint wrong.
        let bound = |i: u64| SyncId::at(id(i * 100).time);
        let payload = Payload {
            pubsub_topics: vec![],
            content_topics: vec![],
            ranges: (0..2_500u64)
                .map(|r| ((bound(r), bound(r + 1)), Body::Fingerprint([1; 32])))
                .collect(),
        };
        let answer = a.answer(&payload, (&[], &[]), 0);
        let listed: usize = answer
            .reply
            .ranges
            .iter()
            .map(|(_, b)| match b {
                Body::ItemSet { items, .. } => items.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(listed, MAX_REPLY_ITEMS);
        let fingerprints = answer
            .reply
            .ranges
            .iter()
            .filter(|(_, b)| matches!(b, Body::Fingerprint(_)))
            .count();
        assert_eq!(fingerprints, 1_500);
    }

    #[test]
    fn topics_outside_the_common_set_are_not_reconciled() {
        let mut a = set_of(0..10);
        a.insert(id(99), "/waku/2/rs/1/5", CONTENT);
        let b = set_of(0..10);
        let (a_sends, _, _) = reconcile(&a, &b, 0, i64::MAX / 2);
        assert!(a_sends.is_empty(), "shard 5 is not in the session");
        let mut payload = a.initial(0, i64::MAX / 2, &[TOPIC.to_owned()], &[]);
        payload.pubsub_topics = vec!["/waku/2/rs/1/7".into()];
        let answer = b.answer(&payload, (&[TOPIC.to_owned()], &[]), 0);
        assert!(answer.reply.ranges.is_empty(), "no common shard: final");
    }

    #[test]
    fn ranges_before_the_window_are_skipped_and_pruning_forgets_them() {
        let a = set_of(0..100);
        let b = set_of(50..100);
        let cut = id(50).time;
        let payload = a.initial(0, i64::MAX / 2, &[], &[]);
        let answer = b.answer(&payload, (&[], &[]), i64::MAX / 2);
        assert!(answer.reply.ranges.is_empty());
        let mut a = a;
        assert_eq!(a.prune(cut), 50);
        assert_eq!(a.len(), 50);
        let (x, y, _) = reconcile(&a, &b, 0, i64::MAX / 2);
        assert!(x.is_empty() && y.is_empty());
    }
}
