//! The RLN validator of relayed messages, with the checks in the order the reference nodes
//! use: decode the proof, timestamp within the clock drift, proof epoch equal to the
//! message's epoch, root in the window of recent roots, zero-knowledge proof (over the signal
//! computed from the message itself), then the nullifier log. Proofs of a batch are verified
//! together; a failing batch still singles out each bad proof.
//!
//! Everything here is synchronous and CPU-bound: the node runs it on the blocking pool.

use std::{
    sync::{Arc, Mutex, RwLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ark_bn254::Bn254;
use ark_groth16::Proof;

use crate::{
    message::WakuMessage,
    rln::{
        field::{self, Fr},
        nullifier_log::{self, NullifierLog},
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

/// A message that passed the cheap checks, waiting for its proof check.
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
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
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
        }
    }

    /// A validator that only checks messages are well formed (private networks without RLN).
    pub fn without_rln() -> Self {
        Self {
            rules: None,
            roots: Arc::new(RwLock::new(RootWindow::default())),
            log: Mutex::new(NullifierLog::new(1)),
            rln_identifier: rln_identifier(),
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

    /// Validates messages together: cheap checks one by one, then all surviving proofs in one
    /// batch verification, then the nullifier log in arrival order.
    pub fn validate_batch(&self, batch: &[&[u8]]) -> Vec<(Verdict, Option<WakuMessage>)> {
        let now = now_ns();
        let mut out: Vec<(Verdict, Option<WakuMessage>)> = Vec::with_capacity(batch.len());
        let mut pending: Vec<(usize, Pending)> = Vec::new();
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
                Ok(Some(p)) => pending.push((i, p)),
                Ok(None) => {}
                Err(verdict) => {
                    out.push((verdict, Some(message)));
                    continue;
                }
            }
            out.push((Verdict::Accept, Some(message)));
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
        let Some(rules) = self.rules else {
            return out;
        };
        let now_epoch = Epoch::from_timestamp_ns(now, rules.epoch_period);
        let mut log = self
            .log
            .lock()
            .expect("the nullifier log is never poisoned");
        for ((i, p), ok) in pending.iter().zip(valid) {
            if !ok {
                out[*i].0 = Verdict::Reject(Rejection::InvalidProof);
                continue;
            }
            let d = &p.data;
            // inputs[3] is x as verified: the signal computed from the message.
            out[*i].0 =
                match log.check_and_insert(d.epoch, d.nullifier, p.inputs[3], d.share_y, now_epoch)
                {
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
                    nullifier_log::Verdict::OutsideWindow => {
                        Verdict::Reject(Rejection::OutsideWindow)
                    }
                    nullifier_log::Verdict::EpochFull => Verdict::Ignore(Ignored::EpochFull),
                };
        }
        out
    }

    /// The checks before the proof: `Ok(None)` when RLN is off, `Ok(Some)` with the proof
    /// to verify, `Err` with the verdict of the first check that failed.
    fn precheck(&self, message: &WakuMessage, now: i64) -> Result<Option<Pending>, Verdict> {
        let Some(rules) = self.rules else {
            return Ok(None);
        };
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
        let drift = rules.max_clock_drift.as_nanos() as i64;
        if timestamp.abs_diff(now) > drift as u64 {
            return reject(Rejection::TimestampOutOfRange);
        }
        if data.epoch != Epoch::from_timestamp_ns(timestamp, rules.epoch_period) {
            return reject(Rejection::EpochMismatch);
        }
        if data.rln_identifier != self.rln_identifier {
            return reject(Rejection::WrongRlnIdentifier);
        }
        if !self
            .roots
            .read()
            .expect("the root window is never poisoned")
            .contains(&data.merkle_root)
        {
            return reject(Rejection::UnknownRoot);
        }
        let proof = match decode_proof(&data.proof) {
            Ok(p) => p,
            Err(e) => return reject(Rejection::MalformedProof(e.to_string())),
        };
        // The signal is the message's own, so a proof cannot be moved to another message.
        let mut values = data.values();
        values.x = signal_x_of(message);
        Ok(Some(Pending {
            proof,
            inputs: values.public_inputs(),
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
