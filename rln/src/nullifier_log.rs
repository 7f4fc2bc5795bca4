//! The nullifier log: the last step of RLN validation, after the zk proof has been verified.
//!
//! Every verified message reveals a share `(x, y)` on its sender's line for one epoch and
//! message id, named by its nullifier. The log remembers the first share per (epoch,
//! nullifier) and classifies each later one: the same share is a duplicate, a different share
//! is double signalling, which gives away the sender's secret.
//!
//! Memory is bounded by construction: only epochs within `max_epoch_gap` of the caller's
//! current epoch are held (older and future ones are refused and pruned), and each epoch holds
//! at most `max_entries_per_epoch` nullifiers. A full epoch refuses new nullifiers rather than
//! forgetting old ones, so nobody can flush the log to replay a nullifier; known nullifiers
//! are still checked against it. The worst case is `(2 * max_epoch_gap + 1) *
//! max_entries_per_epoch` entries of about 100 bytes plus hash-table slack.

use std::collections::{BTreeMap, HashMap};

use crate::{
    field::Fr,
    waku::{Epoch, RecoverError, recover_secret},
};

/// Default cap on the nullifiers held per epoch: with 100 messages per member and epoch this
/// covers 10,000 fully active members, at a worst case of roughly 200 MB per epoch.
pub const DEFAULT_MAX_ENTRIES_PER_EPOCH: usize = 1_000_000;

/// How the log classifies a verified message's share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareStatus {
    /// The first share for this nullifier in this epoch; it is now recorded. Accept.
    Valid,
    /// Exactly this share was seen before: the same message again. Ignore it (no penalty:
    /// honest peers forward copies too).
    Duplicate,
    /// The same nullifier with a different share: the sender exceeded its rate limit. Reject;
    /// `secret` is the sender's identity secret, usable for slashing.
    DoubleSignal {
        /// The recovered identity secret.
        secret: Fr,
    },
    /// The same nullifier and `x` with a different `y`. Two valid proofs cannot produce this
    /// (`y` follows from the nullifier's line and `x`), so the proof check was bypassed or
    /// broken. Reject.
    InconsistentShare,
    /// The epoch is more than `max_epoch_gap` away from the current epoch; nothing recorded.
    /// The validator's epoch check normally refuses such messages earlier. Reject.
    OutsideWindow,
    /// The epoch already holds `max_entries_per_epoch` nullifiers and this one is new; nothing
    /// recorded. Forwarding it could let a nullifier through twice, so do not forward it, but
    /// the sender did nothing provably wrong: ignore without penalty.
    EpochFull,
}

/// One epoch's first share per nullifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Share {
    x: Fr,
    y: Fr,
}

/// Shares seen per (epoch, nullifier), for the epochs a validator still accepts.
#[derive(Debug, Clone)]
pub struct NullifierLog {
    max_epoch_gap: u64,
    max_entries_per_epoch: usize,
    // Few epochs (2 * gap + 1) are live at once, so an ordered map costs nothing and keeps
    // pruning simple; the per-epoch maps carry the O(1) lookups.
    epochs: BTreeMap<Epoch, HashMap<Fr, Share>>,
    pruned_for: Option<Epoch>,
}

impl NullifierLog {
    /// An empty log accepting epochs at most `max_epoch_gap` away from the current one, with
    /// [`DEFAULT_MAX_ENTRIES_PER_EPOCH`].
    pub fn new(max_epoch_gap: u64) -> Self {
        Self {
            max_epoch_gap,
            max_entries_per_epoch: DEFAULT_MAX_ENTRIES_PER_EPOCH,
            epochs: BTreeMap::new(),
            pruned_for: None,
        }
    }

    /// The same log with another cap on nullifiers per epoch.
    pub fn with_max_entries_per_epoch(mut self, max: usize) -> Self {
        self.max_entries_per_epoch = max;
        self
    }

    /// The largest accepted distance between a message's epoch and the current one.
    pub fn max_epoch_gap(&self) -> u64 {
        self.max_epoch_gap
    }

    /// The cap on nullifiers per epoch.
    pub fn max_entries_per_epoch(&self) -> usize {
        self.max_entries_per_epoch
    }

    /// Classifies the share of a message whose proof has already been verified, and records
    /// it if it is the first for its nullifier. Prunes first whenever `now_epoch` changes.
    pub fn check_and_insert(
        &mut self,
        epoch: Epoch,
        nullifier: Fr,
        share_x: Fr,
        share_y: Fr,
        now_epoch: Epoch,
    ) -> ShareStatus {
        if self.pruned_for != Some(now_epoch) {
            self.prune(now_epoch);
        }
        if epoch.abs_diff(now_epoch) > self.max_epoch_gap {
            return ShareStatus::OutsideWindow;
        }
        let share = Share {
            x: share_x,
            y: share_y,
        };
        let cap = self.max_entries_per_epoch;
        let shares = self.epochs.entry(epoch).or_default();
        match shares.get(&nullifier) {
            Some(seen) if *seen == share => ShareStatus::Duplicate,
            Some(seen) => match recover_secret((seen.x, seen.y), (share.x, share.y)) {
                Ok(secret) => ShareStatus::DoubleSignal { secret },
                Err(RecoverError::SameX) => ShareStatus::InconsistentShare,
            },
            None if shares.len() >= cap => ShareStatus::EpochFull,
            None => {
                shares.insert(nullifier, share);
                ShareStatus::Valid
            }
        }
    }

    /// The share recorded for `nullifier` in `epoch`, as `(x, y)`: lets a validator spot a
    /// copy of a known share before it pays for the proof check.
    pub fn seen(&self, epoch: Epoch, nullifier: &Fr) -> Option<(Fr, Fr)> {
        self.epochs
            .get(&epoch)
            .and_then(|shares| shares.get(nullifier))
            .map(|s| (s.x, s.y))
    }

    /// Drops every epoch more than `max_epoch_gap` away from `now_epoch`.
    pub fn prune(&mut self, now_epoch: Epoch) {
        let gap = self.max_epoch_gap;
        self.epochs
            .retain(|epoch, _| epoch.abs_diff(now_epoch) <= gap);
        self.pruned_for = Some(now_epoch);
    }

    /// Nullifiers held across all epochs.
    pub fn len(&self) -> usize {
        self.epochs.values().map(HashMap::len).sum()
    }

    /// Whether no nullifier is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Nullifiers held for `epoch`.
    pub fn entries_in(&self, epoch: Epoch) -> usize {
        self.epochs.get(&epoch).map_or(0, HashMap::len)
    }
}

#[cfg(test)]
mod tests {
    use ark_ff::UniformRand;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    const NOW: Epoch = Epoch(100);

    fn fr(n: u64) -> Fr {
        Fr::from(n)
    }

    #[test]
    fn first_share_is_valid_and_the_same_share_is_a_duplicate() {
        let mut log = NullifierLog::new(1);
        assert_eq!(
            log.check_and_insert(NOW, fr(1), fr(2), fr(3), NOW),
            ShareStatus::Valid
        );
        assert_eq!(
            log.check_and_insert(NOW, fr(1), fr(2), fr(3), NOW),
            ShareStatus::Duplicate
        );
        // The same nullifier in another epoch is unrelated.
        assert_eq!(
            log.check_and_insert(Epoch(99), fr(1), fr(5), fr(6), NOW),
            ShareStatus::Valid
        );
        assert_eq!(log.len(), 2);
    }

    #[test]
    fn a_second_share_reveals_the_secret() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let (secret, a1, nullifier) = (Fr::rand(&mut rng), Fr::rand(&mut rng), Fr::rand(&mut rng));
        let y = |x: Fr| secret + a1 * x;
        let (x1, x2) = (Fr::rand(&mut rng), Fr::rand(&mut rng));
        let mut log = NullifierLog::new(1);
        assert_eq!(
            log.check_and_insert(NOW, nullifier, x1, y(x1), NOW),
            ShareStatus::Valid
        );
        assert_eq!(
            log.check_and_insert(NOW, nullifier, x2, y(x2), NOW),
            ShareStatus::DoubleSignal { secret }
        );
        assert_eq!(log.len(), 1, "a double signal is not recorded");
    }

    #[test]
    fn same_x_with_another_y_is_inconsistent() {
        let mut log = NullifierLog::new(1);
        log.check_and_insert(NOW, fr(1), fr(2), fr(3), NOW);
        assert_eq!(
            log.check_and_insert(NOW, fr(1), fr(2), fr(4), NOW),
            ShareStatus::InconsistentShare
        );
    }

    #[test]
    fn epochs_outside_the_gap_are_refused_and_pruned() {
        let mut log = NullifierLog::new(1);
        for (epoch, verdict) in [
            (98, ShareStatus::OutsideWindow),
            (99, ShareStatus::Valid),
            (100, ShareStatus::Valid),
            (101, ShareStatus::Valid),
            (102, ShareStatus::OutsideWindow),
        ] {
            assert_eq!(
                log.check_and_insert(Epoch(epoch), fr(1), fr(1), fr(1), NOW),
                verdict,
                "epoch {epoch}"
            );
        }
        assert_eq!(log.len(), 3);
        log.prune(Epoch(101));
        assert_eq!(log.entries_in(Epoch(99)), 0);
        assert_eq!(log.len(), 2);
        // Moving on prunes without an explicit call.
        log.check_and_insert(Epoch(103), fr(1), fr(1), fr(1), Epoch(103));
        assert_eq!(log.entries_in(Epoch(100)), 0);
        assert_eq!(log.entries_in(Epoch(101)), 0);
        assert_eq!(log.len(), 1);
    }

    #[test]
    fn a_full_epoch_refuses_new_nullifiers_but_still_catches_old_ones() {
        let mut log = NullifierLog::new(0).with_max_entries_per_epoch(2);
        assert_eq!(log.max_entries_per_epoch(), 2);
        assert_eq!(log.max_epoch_gap(), 0);
        for n in 0..2 {
            assert_eq!(
                log.check_and_insert(NOW, fr(n), fr(1), fr(1), NOW),
                ShareStatus::Valid
            );
        }
        assert_eq!(
            log.check_and_insert(NOW, fr(9), fr(1), fr(1), NOW),
            ShareStatus::EpochFull
        );
        assert_eq!(
            log.check_and_insert(NOW, fr(0), fr(1), fr(1), NOW),
            ShareStatus::Duplicate
        );
        assert!(matches!(
            log.check_and_insert(NOW, fr(1), fr(2), fr(5), NOW),
            ShareStatus::DoubleSignal { .. }
        ));
        assert_eq!(log.len(), 2);
        // The next epoch has room again.
        let next = Epoch(NOW.0 + 1);
        assert_eq!(
            log.check_and_insert(next, fr(9), fr(1), fr(1), next),
            ShareStatus::Valid
        );
        assert!(!log.is_empty());
    }

    #[derive(Debug, Clone)]
    struct Op {
        advance: u64,
        offset: i64,
        nullifier: u64,
        x: u64,
        y: u64,
    }

    fn op() -> impl Strategy<Value = Op> {
        (0u64..3, -4i64..=4, 0u64..8, 0u64..3, 0u64..3).prop_map(
            |(advance, offset, nullifier, x, y)| Op {
                advance,
                offset,
                nullifier,
                x,
                y,
            },
        )
    }

    proptest! {
        #[test]
        fn never_grows_past_its_bounds(
            gap in 0u64..3,
            cap in 0usize..5,
            ops in prop::collection::vec(op(), 0..200),
        ) {
            let mut log = NullifierLog::new(gap).with_max_entries_per_epoch(cap);
            let mut now = Epoch(1_000);
            for op in ops {
                now = Epoch(now.0 + op.advance);
                let epoch = Epoch(now.0.saturating_add_signed(op.offset));
                let verdict =
                    log.check_and_insert(epoch, fr(op.nullifier), fr(op.x), fr(op.y), now);
                if verdict == ShareStatus::Valid {
                    prop_assert_eq!(
                        log.check_and_insert(epoch, fr(op.nullifier), fr(op.x), fr(op.y), now),
                        ShareStatus::Duplicate
                    );
                }
                prop_assert!(log.epochs.len() as u64 <= 2 * gap + 1);
                for (epoch, shares) in &log.epochs {
                    prop_assert!(epoch.abs_diff(now) <= gap);
                    prop_assert!(shares.len() <= cap);
                }
                prop_assert!(log.len() as u64 <= (2 * gap + 1) * cap as u64);
            }
        }
    }
}
