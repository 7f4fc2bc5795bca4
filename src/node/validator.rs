//! The RLN validator of relayed messages, cheapest check first: decode the proof, timestamp
//! within the clock drift, proof epoch equal to the message's epoch, root in the window of
//! recent roots, then a look at the nullifier log *before* any curve point is touched (a copy
//! of a share already seen is a duplicate however it was re-encoded, and a second share with
//! the same `y` cannot come from a valid proof), then the zero-knowledge proof (over the signal
//! computed from the message itself), then the nullifier log. Proofs of a batch are verified
//! together; a failing batch still singles out each bad proof.
//!
//! Until the node's first chain sync completes its root window says nothing, so messages are
//! ignored rather than rejected: a reject would lower an honest peer's score.
//!
//! Everything here is synchronous and CPU-bound: the node runs it on the blocking pool. A
//! panic while a lock is held must not stop validation for good, so poisoned locks are taken
//! over (the data behind them is only ever changed by single inserts).

use std::{
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use ark_bn254::Bn254;
use ark_groth16::Proof;

use crate::{
    message::WakuMessage,
    rln::{
        field::{self, Fr},
        nullifier_log::{self, NullifierLog},
        nullifier_store::{NullifierStore, StoreError, StoredShare},
        tree::RootWindow,
        verifier::{PublicInputs, Verifier, decode_proof},
        waku::{Epoch, RlnProofData, rln_identifier, signal_x_of},
    },
};

/// What the relay does with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: forward it and hand it to local consumers.
    Accept,
    /// Invalid or spam: drop it and penalise the peer that sent it.
    Reject(Rejection),
    /// Not forwarded, without penalty (a copy of a message already seen, an overloaded node).
    Ignore(Ignored),
}

/// Why a message was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The data is not a valid WakuMessage.
    MalformedMessage(String),
    /// No `rate_limit_proof` although RLN is enforced.
    MissingProof,
    /// The proof protobuf or the proof points are malformed.
    MalformedProof(String),
    /// The message's timestamp is missing or too far from our clock.
    TimestampOutOfRange,
    /// The proof's epoch is not the epoch of the message's timestamp.
    EpochMismatch,
    /// The proof is for another application's RLN identifier.
    WrongRlnIdentifier,
    /// The proof's Merkle root is not among the recent roots.
    UnknownRoot,
    /// The zero-knowledge proof does not verify for this message.
    InvalidProof,
    /// The sender published more than its rate limit allows in this epoch; its secret was
    /// recovered from the two shares.
    DoubleSignal {
        /// The sender's identity secret (its secret hash).
        secret: Fr,
        /// The sender's identity commitment, `Poseidon(secret)`.
        commitment: Fr,
    },
    /// Two shares with the same nullifier and x but different y: impossible for valid proofs.
    InconsistentShare,
    /// The epoch is outside the window the nullifier log keeps.
    OutsideWindow,
}

/// Why a message was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// Exactly this message was validated before.
    Duplicate,
    /// The nullifier log's epoch is full; forwarding could let a nullifier through twice.
    EpochFull,
    /// The validation queue was full.
    Overloaded,
    /// The node's first chain sync has not finished: its roots cannot judge the proof yet.
    NotSynced,
    /// Validation failed inside the node (a panicking validation task); not the sender's
    /// fault.
    Internal,
}

impl Verdict {
    /// A short label for logs and metrics (`valid`, `invalid_proof`, `spam`, ...).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Accept => "valid",
            Self::Reject(r) => match r {
                Rejection::MalformedMessage(_) => "malformed_message",
                Rejection::MissingProof => "missing_proof",
                Rejection::MalformedProof(_) => "malformed_proof",
                Rejection::TimestampOutOfRange => "invalid_timestamp",
                Rejection::EpochMismatch => "invalid_epoch",
                Rejection::WrongRlnIdentifier => "invalid_rln_identifier",
                Rejection::UnknownRoot => "invalid_root",
                Rejection::InvalidProof => "invalid_proof",
                Rejection::DoubleSignal { .. } => "spam",
                Rejection::InconsistentShare => "inconsistent_share",
                Rejection::OutsideWindow => "outside_window",
            },
            Self::Ignore(i) => match i {
                Ignored::Duplicate => "duplicate",
                Ignored::EpochFull => "epoch_full",
                Ignored::Overloaded => "overloaded",
                Ignored::NotSynced => "not_synced",
                Ignored::Internal => "internal_error",
            },
        }
    }
}

/// RLN rules a validator enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RlnRules {
    /// Seconds per epoch.
    pub epoch_period: u64,
    /// Largest accepted difference between a message's timestamp and our clock.
    pub max_clock_drift: Duration,
}

impl Default for RlnRules {
    fn default() -> Self {
        Self {
            epoch_period: crate::rln::waku::DEFAULT_EPOCH_PERIOD_SECS,
            max_clock_drift: Duration::from_secs(20),
        }
    }
}

/// A message that passed the cheap checks: its proof data and the signal `x` computed from
/// the message itself.
struct Checked {
    data: RlnProofData,
    x: Fr,
}

/// A message whose proof points decoded, waiting for its proof check.
struct Pending {
    proof: Proof<Bn254>,
    inputs: PublicInputs,
    data: RlnProofData,
}

/// Validates relayed messages; shared by the node's validation workers.
#[derive(Debug)]
pub struct Validator {
    rules: Option<RlnRules>,
    roots: Arc<RwLock<RootWindow>>,
    log: Mutex<NullifierLog>,
    rln_identifier: Fr,
    synced: Arc<AtomicBool>,
    store: Option<NullifierStore>,
}

impl Validator {
    /// A validator enforcing RLN with `rules` against the roots in `roots`.
    pub fn rln(rules: RlnRules, roots: Arc<RwLock<RootWindow>>) -> Self {
        // The epochs a timestamp within the drift can fall in, plus one for the boundary.
        let gap = rules
            .max_clock_drift
            .as_secs()
            .div_ceil(rules.epoch_period.max(1))
            + 1;
        Self {
            rules: Some(rules),
            roots,
            log: Mutex::new(NullifierLog::new(gap)),
            rln_identifier: rln_identifier(),
            synced: Arc::new(AtomicBool::new(true)),
            store: None,
        }
    }

    /// The same validator, ignoring RLN messages until the returned flag is set (by the chain
    /// sync, once its first step has filled the root window).
    pub fn until_synced(mut self) -> (Self, Arc<AtomicBool>) {
        self.synced = Arc::new(AtomicBool::new(false));
        let flag = self.synced.clone();
        (self, flag)
    }

    /// A validator that only checks messages are well formed (private networks without RLN).
    pub fn without_rln() -> Self {
        Self {
            rules: None,
            roots: Arc::new(RwLock::new(RootWindow::default())),
            log: Mutex::new(NullifierLog::new(1)),
            rln_identifier: rln_identifier(),
            synced: Arc::new(AtomicBool::new(true)),
            store: None,
        }
    }

    /// The same validator, keeping its nullifier log in `store` as well: the shares stored for
    /// the epochs still accepted are loaded now, and every accepted share is written before
    /// its verdict is reported.
    pub fn with_store(mut self, store: NullifierStore) -> Result<Self, StoreError> {
        if let Some(rules) = self.rules {
            let now = Epoch::from_timestamp_ns(crate::clock::now_ns(), rules.epoch_period);
            let from = Epoch(now.0.saturating_sub(self.log().max_epoch_gap()));
            let shares = store.load(from)?;
            let mut log = self.log();
            for (epoch, nullifier, x, y) in &shares {
                log.check_and_insert(*epoch, *nullifier, *x, *y, now);
            }
            drop(log);
            tracing::debug!(shares = shares.len(), "nullifier log restored");
        }
        self.store = Some(store);
        Ok(self)
    }

    /// Writes newly accepted shares to the store, if there is one. A failed write is logged,
    /// not fatal: the shares are still in memory.
    fn persist(&self, shares: &[StoredShare], now_epoch: Epoch) {
        let Some(store) = &self.store else {
            return;
        };
        let gap = self.log().max_epoch_gap();
        if let Err(e) = store.record(shares, Epoch(now_epoch.0.saturating_sub(gap))) {
            tracing::warn!(error = %e, "cannot write the nullifier log; a restart would forget \
                these shares");
        }
    }

    fn log(&self) -> MutexGuard<'_, NullifierLog> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the share of a proof this node made itself, before the message leaves: `Err`
    /// with the log's verdict when it is not the first share of its nullifier (sending it would
    /// double-signal). No zero-knowledge check: the node made the proof. `Ok` without RLN.
    pub fn record_own(&self, message: &WakuMessage, now: i64) -> Result<(), Verdict> {
        let Some(rules) = self.rules else {
            return Ok(());
        };
        let Some(bytes) = message.rate_limit_proof() else {
            return Err(Verdict::Reject(Rejection::MissingProof));
        };
        let data = RlnProofData::decode(bytes)
            .map_err(|e| Verdict::Reject(Rejection::MalformedProof(e.to_string())))?;
        let now_epoch = Epoch::from_timestamp_ns(now, rules.epoch_period);
        let x = signal_x_of(message);
        let verdict =
            self.log()
                .check_and_insert(data.epoch, data.nullifier, x, data.share_y, now_epoch);
        match verdict {
            nullifier_log::Verdict::Valid => {
                self.persist(&[(data.epoch, data.nullifier, x, data.share_y)], now_epoch);
                Ok(())
            }
            nullifier_log::Verdict::Duplicate => Ok(()),
            other => Err(Self::verdict_of(other)),
        }
    }

    fn verdict_of(log_verdict: nullifier_log::Verdict) -> Verdict {
        match log_verdict {
            nullifier_log::Verdict::Valid => Verdict::Accept,
            nullifier_log::Verdict::Duplicate => Verdict::Ignore(Ignored::Duplicate),
            nullifier_log::Verdict::DoubleSignal { secret } => {
                Verdict::Reject(Rejection::DoubleSignal {
                    secret,
                    commitment: crate::rln::poseidon::poseidon(&[secret]),
                })
            }
            nullifier_log::Verdict::InconsistentShare => {
                Verdict::Reject(Rejection::InconsistentShare)
            }
            nullifier_log::Verdict::OutsideWindow => Verdict::Reject(Rejection::OutsideWindow),
            nullifier_log::Verdict::EpochFull => Verdict::Ignore(Ignored::EpochFull),
        }
    }

    /// Whether RLN is enforced.
    pub fn enforces_rln(&self) -> bool {
        self.rules.is_some()
    }

    /// Validates one message now.
    pub fn validate(&self, data: &[u8]) -> (Verdict, Option<WakuMessage>) {
        self.validate_batch(&[data])
            .pop()
            .expect("one verdict per message")
    }

    /// Validates messages together: cheap checks one by one (the nullifier log's view
    /// included), then all surviving proofs in one batch verification, then the nullifier log
    /// in arrival order.
    pub fn validate_batch(&self, batch: &[&[u8]]) -> Vec<(Verdict, Option<WakuMessage>)> {
        self.validate_batch_at(batch, crate::clock::now_ns())
    }

    /// [`Self::validate_batch`] with the clock reading `now` (Unix nanoseconds).
    pub fn validate_batch_at(
        &self,
        batch: &[&[u8]],
        now: i64,
    ) -> Vec<(Verdict, Option<WakuMessage>)> {
        let mut out: Vec<(Verdict, Option<WakuMessage>)> = Vec::with_capacity(batch.len());
        let mut checked: Vec<(usize, Checked)> = Vec::new();
        for (i, data) in batch.iter().enumerate() {
            let message = match WakuMessage::decode(data) {
                Ok(m) => m,
                Err(e) => {
                    out.push((
                        Verdict::Reject(Rejection::MalformedMessage(e.to_string())),
                        None,
                    ));
                    continue;
                }
            };
            match self.precheck(&message, now) {
                Ok(Some(c)) => checked.push((i, c)),
                Ok(None) => {}
                Err(verdict) => {
                    out.push((verdict, Some(message)));
                    continue;
                }
            }
            out.push((Verdict::Accept, Some(message)));
        }
        let Some(rules) = self.rules else {
            return out;
        };
        let now_epoch = Epoch::from_timestamp_ns(now, rules.epoch_period);
        let mut pending: Vec<(usize, Pending)> = Vec::with_capacity(checked.len());
        {
            let log = self.log();
            for (i, c) in checked {
                match log.seen(c.data.epoch, &c.data.nullifier) {
                    // The very share already accepted: a copy, however it was re-encoded.
                    Some((x, y)) if x == c.x && y == c.data.share_y => {
                        out[i].0 = Verdict::Ignore(Ignored::Duplicate);
                        continue;
                    }
                    // On the sender's line `y` follows from `x`: the same `y` for another
                    // `x`, or another `y` for the same `x`, cannot come from a valid proof.
                    Some((x, y)) if (x == c.x) != (y == c.data.share_y) => {
                        out[i].0 = Verdict::Reject(Rejection::InvalidProof);
                        continue;
                    }
                    _ => {}
                }
                match decode_proof(&c.data.proof) {
                    Ok(proof) => {
                        let mut values = c.data.values();
                        values.x = c.x;
                        pending.push((
                            i,
                            Pending {
                                proof,
                                inputs: values.public_inputs(),
                                data: c.data,
                            },
                        ));
                    }
                    Err(e) => {
                        out[i].0 = Verdict::Reject(Rejection::MalformedProof(e.to_string()));
                    }
                }
            }
        }
        if pending.is_empty() {
            return out;
        }
        let proofs: Vec<(Proof<Bn254>, PublicInputs)> = pending
            .iter()
            .map(|(_, p)| (p.proof.clone(), p.inputs))
            .collect();
        let valid = if proofs.len() == 1 {
            vec![Verifier::network().verify(&proofs[0].0, &proofs[0].1)]
        } else {
            Verifier::network().verify_batch(&proofs, &mut rand::thread_rng())
        };
        let mut accepted: Vec<StoredShare> = Vec::new();
        let mut log = self.log();
        for ((i, p), ok) in pending.iter().zip(valid) {
            if !ok {
                out[*i].0 = Verdict::Reject(Rejection::InvalidProof);
                continue;
            }
            let d = &p.data;
            // inputs[3] is x as verified: the signal computed from the message.
            let share = (d.epoch, d.nullifier, p.inputs[3], d.share_y);
            let verdict = log.check_and_insert(share.0, share.1, share.2, share.3, now_epoch);
            if verdict == nullifier_log::Verdict::Valid {
                accepted.push(share);
            }
            out[*i].0 = Self::verdict_of(verdict);
        }
        drop(log);
        self.persist(&accepted, now_epoch);
        out
    }

    /// The checks before the nullifier log and the proof points: `Ok(None)` when RLN is off,
    /// `Ok(Some)` with the proof data to go on with, `Err` with the verdict of the first check
    /// that failed.
    fn precheck(&self, message: &WakuMessage, now: i64) -> Result<Option<Checked>, Verdict> {
        let Some(rules) = self.rules else {
            return Ok(None);
        };
        if !self.synced.load(Ordering::Acquire) {
            return Err(Verdict::Ignore(Ignored::NotSynced));
        }
        let reject = |r| Err(Verdict::Reject(r));
        let Some(bytes) = message.rate_limit_proof() else {
            return reject(Rejection::MissingProof);
        };
        let data = match RlnProofData::decode(bytes) {
            Ok(d) => d,
            Err(e) => return reject(Rejection::MalformedProof(e.to_string())),
        };
        let Some(timestamp) = message.timestamp() else {
            return reject(Rejection::TimestampOutOfRange);
        };
        if u128::from(timestamp.abs_diff(now)) > rules.max_clock_drift.as_nanos() {
            return reject(Rejection::TimestampOutOfRange);
        }
        if data.epoch != Epoch::from_timestamp_ns(timestamp, rules.epoch_period) {
            return reject(Rejection::EpochMismatch);
        }
        if data.rln_identifier != self.rln_identifier {
            return reject(Rejection::WrongRlnIdentifier);
        }
        let known_root = self
            .roots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&data.merkle_root);
        if !known_root {
            return reject(Rejection::UnknownRoot);
        }
        // The signal is the message's own, so a proof cannot be moved to another message.
        Ok(Some(Checked {
            x: signal_x_of(message),
            data,
        }))
    }
}

/// The secret and commitment of a double-signalling sender, for logs.
pub fn describe_spam(secret: &Fr, commitment: &Fr) -> String {
    format!(
        "identity commitment {} (recovered secret {})",
        field::to_decimal(commitment),
        field::to_decimal(secret)
    )
}
