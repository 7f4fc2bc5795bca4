//! The pipeline every relayed message passes before it is forwarded, cheapest stage first:
//!
//! 1. **decode** the bytes into a [`WakuMessage`] ([`decode`]);
//! 2. **cheap checks** ([`Validator::cheap_checks`]): a proof is attached and decodes,
//!    timestamp within the clock drift, proof epoch equal to the message's epoch, the network's
//!    RLN identifier, root in the window of recent roots; the signal `x` is computed from the
//!    message itself, so a proof cannot be moved to another message;
//! 3. **nullifier look-up** before any curve point is touched ([`Validator::before_proof`]): a
//!    copy of a share already accepted is a duplicate however it was re-encoded, and a second
//!    share with the same `y` (or the same `x` and another `y`) cannot come from a valid proof;
//!    then the proof points are decoded;
//! 4. **proof**: every surviving proof of the batch in one batch verification
//!    ([`verify`]); a failing batch still singles out each bad proof;
//! 5. **nullifier log** ([`Validator::record`]): the first share of a nullifier is recorded
//!    (and written to the [`NullifierStore`]), a second one is double signalling and gives
//!    away the sender's secret; the [`Verdict`] follows.
//!
//! Each stage takes the previous stage's type ([`WakuMessage`] -> [`Checked`] -> [`Pending`])
//! and a failure at any stage is the message's verdict.
//!
//! Until the node's first chain sync completes its root window says nothing, so messages are
//! ignored rather than rejected: a reject would lower an honest peer's score. The clock is
//! injectable ([`Validator::with_clock`]) so tests can move time.
//!
//! The node's own proofs skip the proof stage: [`Validator::record_own`] only records their
//! share, so that a second share of a nullifier the node sent never leaves.
//!
//! Everything here is synchronous and CPU-bound: the node runs it on the blocking pool. A
//! panic while a lock is held must not stop validation for good, so poisoned locks are taken
//! over (the data behind them is only ever changed by single inserts).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use ark_bn254::Bn254;
use ark_groth16::Proof;
use rayon::prelude::*;

use super::nullifier_store::{NullifierStore, StoreError, StoredShare};
use crate::{
    clock::{Clock, SystemClock},
    message::WakuMessage,
    rln::{
        field::{self, Fr},
        nullifier_log::{NullifierLog, ShareStatus},
        tree::RootWindow,
        verifier::{PublicInputs, Verifier, decode_proof_on_curves},
        waku::{Epoch, RlnProofData, rln_identifier},
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

/// Stage 2's output: a message that passed the cheap checks, with its proof data and the
/// signal `x` computed from the message itself.
#[derive(Debug)]
pub struct Checked {
    data: RlnProofData,
    x: Fr,
}

/// Stage 3's output: a message whose share is new to the log and whose proof points decoded,
/// waiting for the proof stage.
#[derive(Debug)]
pub struct Pending {
    proof: Proof<Bn254>,
    inputs: PublicInputs,
    data: RlnProofData,
}

/// Stage 1: the bytes as a message.
pub fn decode(data: &[u8]) -> Result<WakuMessage, Verdict> {
    WakuMessage::decode(data)
        .map_err(|e| Verdict::Reject(Rejection::MalformedMessage(e.to_string())))
}

/// Stage 4: checks the proofs of `pending`, all in one batch; one answer per proof.
pub fn verify(pending: &[(usize, Pending)]) -> Vec<bool> {
    let proofs: Vec<(Proof<Bn254>, PublicInputs)> = pending
        .iter()
        .map(|(_, p)| (p.proof.clone(), p.inputs))
        .collect();
    match proofs.as_slice() {
        [] => Vec::new(),
        [(proof, inputs)] => vec![Verifier::network().verify(proof, inputs)],
        _ => Verifier::network().verify_batch(&proofs, &mut rand::thread_rng()),
    }
}

/// Decodes the proof points of `checked`, on the rayon pool when there are several (a decode
/// is a few square roots, tens of microseconds); the ones that do not decode get their
/// verdict through `reject`. B's G2 check is left to the proof stage, which reads it off
/// B's lines.
fn decode_points(
    checked: Vec<(usize, Checked)>,
    mut reject: impl FnMut(usize, Verdict),
) -> Vec<(usize, Pending)> {
    // One Poseidon hash per distinct (epoch, RLN identifier) of the batch, not one per
    // message: a batch's messages almost all share their epoch.
    let mut external_nullifiers: HashMap<(Epoch, Fr), Fr> = HashMap::new();
    for (_, c) in &checked {
        external_nullifiers
            .entry((c.data.epoch, c.data.rln_identifier))
            .or_insert_with(|| c.data.external_nullifier());
    }
    let decode =
        |(i, c): (usize, Checked)| (i, decode_proof_on_curves(&c.data.proof).map(|p| (p, c)));
    let decoded: Vec<_> = if checked.len() > 1 {
        checked.into_par_iter().map(decode).collect()
    } else {
        checked.into_iter().map(decode).collect()
    };
    let mut pending = Vec::with_capacity(decoded.len());
    for (i, result) in decoded {
        match result {
            Ok((proof, c)) => {
                let mut values = c
                    .data
                    .values_with(external_nullifiers[&(c.data.epoch, c.data.rln_identifier)]);
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
            Err(e) => reject(i, Verdict::Reject(Rejection::MalformedProof(e.to_string()))),
        }
    }
    pending
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
    clock: Arc<dyn Clock>,
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
            clock: Arc::new(SystemClock),
        }
    }

    /// The same validator, reading `clock` for "now".
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
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
            clock: Arc::new(SystemClock),
        }
    }

    /// The same validator, keeping its nullifier log in `store` as well: the shares stored for
    /// the epochs still accepted are loaded now, and every accepted share is written before
    /// its verdict is reported.
    pub fn with_store(mut self, store: NullifierStore) -> Result<Self, StoreError> {
        if let Some(rules) = self.rules {
            let now = Epoch::from_timestamp_ns(self.clock.now_ns(), rules.epoch_period);
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
        let x = message.signal_x();
        let verdict =
            self.log()
                .check_and_insert(data.epoch, data.nullifier, x, data.share_y, now_epoch);
        match verdict {
            ShareStatus::Valid => {
                self.persist(&[(data.epoch, data.nullifier, x, data.share_y)], now_epoch);
                Ok(())
            }
            ShareStatus::Duplicate => Ok(()),
            other => Err(Self::verdict_of(other)),
        }
    }

    fn verdict_of(status: ShareStatus) -> Verdict {
        match status {
            ShareStatus::Valid => Verdict::Accept,
            ShareStatus::Duplicate => Verdict::Ignore(Ignored::Duplicate),
            ShareStatus::DoubleSignal { secret } => Verdict::Reject(Rejection::DoubleSignal {
                secret,
                commitment: crate::rln::poseidon::poseidon(&[secret]),
            }),
            ShareStatus::InconsistentShare => Verdict::Reject(Rejection::InconsistentShare),
            ShareStatus::OutsideWindow => Verdict::Reject(Rejection::OutsideWindow),
            ShareStatus::EpochFull => Verdict::Ignore(Ignored::EpochFull),
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

    /// Validates messages together, now by the validator's clock: see the module's stages.
    pub fn validate_batch(&self, batch: &[&[u8]]) -> Vec<(Verdict, Option<WakuMessage>)> {
        self.validate_batch_at(batch, self.clock.now_ns())
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
            // 1. decode
            let message = match decode(data) {
                Ok(m) => m,
                Err(verdict) => {
                    out.push((verdict, None));
                    continue;
                }
            };
            // 2. cheap checks
            let verdict = match self.cheap_checks(&message, now) {
                Ok(Some(c)) => {
                    checked.push((i, c));
                    Verdict::Accept
                }
                Ok(None) => Verdict::Accept,
                Err(verdict) => verdict,
            };
            out.push((verdict, Some(message)));
        }
        let Some(rules) = self.rules else {
            return out;
        };
        // 3. nullifier look-up, proof points
        let pending = self.before_proof(checked, &mut out);
        if pending.is_empty() {
            return out;
        }
        // 4. proof
        let valid = verify(&pending);
        // 5. nullifier log
        let now_epoch = Epoch::from_timestamp_ns(now, rules.epoch_period);
        self.record(&pending, &valid, now_epoch, &mut out);
        out
    }

    /// Stage 3: looks each share up in the nullifier log (copies and impossible shares end
    /// here) and decodes the proof points of the rest.
    fn before_proof(
        &self,
        checked: Vec<(usize, Checked)>,
        out: &mut [(Verdict, Option<WakuMessage>)],
    ) -> Vec<(usize, Pending)> {
        let mut fresh = Vec::with_capacity(checked.len());
        let log = self.log();
        for (i, c) in checked {
            match log.seen(c.data.epoch, &c.data.nullifier) {
                // The very share already accepted: a copy, however it was re-encoded.
                Some((x, y)) if x == c.x && y == c.data.share_y => {
                    out[i].0 = Verdict::Ignore(Ignored::Duplicate);
                }
                // On the sender's line `y` follows from `x`: the same `y` for another `x`, or
                // another `y` for the same `x`, cannot come from a valid proof.
                Some((x, y)) if (x == c.x) != (y == c.data.share_y) => {
                    out[i].0 = Verdict::Reject(Rejection::InvalidProof);
                }
                _ => fresh.push((i, c)),
            }
        }
        // The points are decoded after the log is released: decoding is most of this stage's
        // time, and other workers need the log meanwhile.
        drop(log);
        decode_points(fresh, |i, v| out[i].0 = v)
    }

    /// Stage 5: records the share of every verified proof in the nullifier log (and its
    /// store) and sets the verdicts.
    fn record(
        &self,
        pending: &[(usize, Pending)],
        valid: &[bool],
        now_epoch: Epoch,
        out: &mut [(Verdict, Option<WakuMessage>)],
    ) {
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
            let status = log.check_and_insert(share.0, share.1, share.2, share.3, now_epoch);
            if status == ShareStatus::Valid {
                accepted.push(share);
            }
            out[*i].0 = Self::verdict_of(status);
        }
        drop(log);
        self.persist(&accepted, now_epoch);
    }

    /// Stage 2, the checks before the nullifier log and the proof points: `Ok(None)` when RLN
    /// is off, `Ok(Some)` with the proof data to go on with, `Err` with the verdict of the
    /// first check that failed.
    pub fn cheap_checks(
        &self,
        message: &WakuMessage,
        now: i64,
    ) -> Result<Option<Checked>, Verdict> {
        self.proof_checks(message, Some(now))
    }

    /// Checks messages store sync brought, which relay accepted elsewhere up to an hour ago:
    /// a valid proof of this application, of the epoch of the message's timestamp, against a
    /// root of the window. The caller bounds the timestamps (the sync range); the nullifier log
    /// is not consulted (it keeps only the epochs around now). All `Ok` without RLN.
    pub fn check_synced(&self, messages: &[&WakuMessage]) -> Vec<Result<(), Verdict>> {
        let mut out: Vec<Result<(), Verdict>> = messages.iter().map(|_| Ok(())).collect();
        let mut checked = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            match self.proof_checks(m, None) {
                Ok(Some(c)) => checked.push((i, c)),
                Ok(None) => {}
                Err(v) => out[i] = Err(v),
            }
        }
        let pending = decode_points(checked, |i, v| out[i] = Err(v));
        for ((i, _), ok) in pending.iter().zip(verify(&pending)) {
            if !ok {
                out[*i] = Err(Verdict::Reject(Rejection::InvalidProof));
            }
        }
        out
    }

    /// The checks before the proof, with the clock-drift check when `now` is given.
    fn proof_checks(
        &self,
        message: &WakuMessage,
        now: Option<i64>,
    ) -> Result<Option<Checked>, Verdict> {
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
        if let Some(now) = now
            && u128::from(timestamp.abs_diff(now)) > rules.max_clock_drift.as_nanos()
        {
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
            x: message.signal_x(),
            data,
        }))
    }
}

/// A double-signalling sender, for logs: its commitment (public) and the first digits of its
/// recovered secret, enough to tell members apart. Logs never hold a whole secret, not even a
/// spammer's; the whole one is in [`crate::node::NodeEvent::Spam`] for a program that acts on
/// it.
pub fn describe_spam(secret: &Fr, commitment: &Fr) -> String {
    let secret = field::to_decimal(secret);
    format!(
        "identity commitment {} (its secret was recovered: {}…)",
        field::to_decimal(commitment),
        &secret[..secret.len().min(10)]
    )
}
