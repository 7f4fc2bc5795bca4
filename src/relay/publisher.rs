//! Proving the node's own messages with its membership.
//!
//! Each message takes the next message id of its epoch from a SQLite counter, written durably
//! *before* the proof is made: a crash or restart can waste an id but never reuse one, so the
//! node can never double-signal (and have its secret recovered) by restarting within an epoch.
//! The member's share of every proof is prepared once per Merkle path.
//!
//! Only messages dated within the clock drift of now are proved ([`check_timestamp`]): a caller
//! with a wrong clock (or a hostile one) cannot make the node prove for an epoch it does not
//! keep a counter for, and the counter's old rows are pruned by the clock, never by a
//! message's date. The node also passes every proof it makes through its own nullifier log
//! before sending it (see `Validator::record_own`), so even a lost counter cannot send two
//! shares of one nullifier.

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::pipeline::RlnRules;
use crate::{
    message::WakuMessage,
    rln::{
        field::Fr,
        identity::Identity,
        prover::{MemberInputs, MessageInputs, PreparedRln, RlnProver},
        tree::MerkleProof,
        waku::{Epoch, RlnProofData, external_nullifier, rln_identifier},
    },
    sqlite::{Durability, OpenError},
};

/// Why a message could not be proved.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Every message id of this epoch is used.
    #[error(
        "the membership's budget of {limit} messages in epoch {epoch} is spent; publishing \
         frees up in {wait_secs} s, when the next epoch starts"
    )]
    BudgetSpent {
        /// The rate limit.
        limit: u64,
        /// The current epoch.
        epoch: u64,
        /// Seconds until the next epoch.
        wait_secs: u64,
    },
    /// The tree has not been synced up to our membership yet.
    #[error(
        "the membership tree is not synced up to our membership (index {index}) yet; wait for \
         the chain sync"
    )]
    NotSynced {
        /// Our leaf index.
        index: u64,
    },
    /// Our leaf in the synced tree is not our rate commitment.
    #[error(
        "the synced tree does not hold our membership at index {index}: it was erased or \
         expired, or the keystore credential belongs to another contract"
    )]
    NotAMember {
        /// Our leaf index.
        index: u64,
    },
    /// The message's timestamp is missing or too far from the node's clock.
    #[error(transparent)]
    Timestamp(#[from] TimestampError),
    /// The proof would reveal a second share of a nullifier this node already sent.
    #[error(
        "refused to send: the proof would reuse a message id of epoch {epoch} that this node \
         already sent (its message-id counter was lost or rolled back), and a second message \
         with one id reveals the membership's secret"
    )]
    WouldDoubleSignal {
        /// The epoch.
        epoch: u64,
    },
    /// Proving failed.
    #[error("proving failed: {0}")]
    Prove(#[from] crate::rln::prover::RlnProveError),
    /// The proof could not be put in its wire form (a bug: the prover made it).
    #[error("the proof has no wire form: {0}")]
    WireForm(#[from] crate::rln::waku::LayoutError),
    /// The proof could not be attached to the message.
    #[error("the proof cannot be attached: {0}")]
    Attach(#[from] crate::message::MessageError),
    /// The node's own nullifier log refused a proof the node made, for another reason than
    /// a reused message id.
    #[error("the node's nullifier log cannot take its own proof ({0})")]
    OwnLog(&'static str),
    /// The proving task stopped before it finished.
    #[error("the proving task did not finish: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// The message-id counter failed.
    #[error("the message-id counter {path}: {detail}")]
    Counter {
        /// The SQLite file.
        path: String,
        /// What failed.
        detail: String,
    },
    /// The message-id counter could not be opened.
    #[error("the message-id counter: {0}")]
    CounterOpen(#[from] OpenError),
}

/// Version 1 of the counter: the next id per membership and epoch.
const COUNTER_V1: &str = "CREATE TABLE IF NOT EXISTS message_ids (
    membership INTEGER NOT NULL, epoch INTEGER NOT NULL, next INTEGER NOT NULL,
    PRIMARY KEY (membership, epoch))";

impl PublishError {
    /// The error for a proof of `message` that the node's own nullifier log refused with
    /// `verdict`.
    pub fn reused(message: &WakuMessage, verdict: super::pipeline::Verdict) -> Self {
        use super::pipeline::{Rejection, Verdict};
        let epoch = message
            .rate_limit_proof()
            .and_then(|bytes| RlnProofData::decode(bytes).ok())
            .map(|d| d.epoch.0);
        match (verdict, epoch) {
            (
                Verdict::Reject(Rejection::DoubleSignal { .. } | Rejection::InconsistentShare),
                Some(epoch),
            ) => Self::WouldDoubleSignal { epoch },
            (verdict, _) => Self::OwnLog(verdict.label()),
        }
    }
}

/// Why the node will not prove a message for the time it carries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// The message has no timestamp to prove for.
    #[error("the message needs a timestamp (Unix nanoseconds) to be proved")]
    Missing,
    /// The timestamp is further from the node's clock than the network accepts.
    #[error(
        "the message's timestamp is {off_secs} s {direction} this node's clock; the node proves \
         only messages dated within {drift_secs} s of now (omit the timestamp to use the \
         node's clock)",
        direction = if *ahead { "ahead of" } else { "behind" }
    )]
    OutOfRange {
        /// Whether the timestamp lies in the future.
        ahead: bool,
        /// How far it is from the clock, in whole seconds.
        off_secs: u64,
        /// The accepted drift, in seconds.
        drift_secs: u64,
    },
}

/// The epoch to prove `timestamp` for, if it lies within `drift` of `now_ns`: the same test the
/// network's validators apply, so the node never proves what its peers would refuse, and the
/// epoch is at most one away from the clock's.
pub fn check_timestamp(
    timestamp: Option<i64>,
    now_ns: i64,
    drift: Duration,
    epoch_period: u64,
) -> Result<Epoch, TimestampError> {
    let timestamp = timestamp.ok_or(TimestampError::Missing)?;
    let off = timestamp.abs_diff(now_ns);
    if u128::from(off) > drift.as_nanos() {
        return Err(TimestampError::OutOfRange {
            ahead: timestamp > now_ns,
            off_secs: off / 1_000_000_000,
            drift_secs: drift.as_secs(),
        });
    }
    Ok(Epoch::from_timestamp_ns(timestamp, epoch_period))
}

/// Attaches an RLN proof to `message` for a prepared member, with `message_id` in the epoch
/// of the message's timestamp. The caller answers for the message id: [`Publisher`] takes it
/// from its durable counter; tests and tools may pick one.
pub fn attach_proof(
    prover: &RlnProver,
    member: &PreparedRln,
    message: WakuMessage,
    epoch_period: u64,
    message_id: u64,
) -> Result<WakuMessage, PublishError> {
    let timestamp = message.timestamp().ok_or(TimestampError::Missing)?;
    let epoch = Epoch::from_timestamp_ns(timestamp, epoch_period);
    let rln_id = rln_identifier();
    let inputs = MessageInputs {
        x: message.signal_x(),
        external_nullifier: external_nullifier(epoch, rln_id),
        message_id: Fr::from(message_id),
    };
    let proof = prover.prove_prepared(member, inputs, &mut rand::thread_rng())?;
    let data = RlnProofData::from_rln_layout(&proof.to_layout(), epoch, rln_id)?;
    Ok(message.with_rate_limit_proof(data.encode())?)
}

/// Merkle paths at the latest root of the leaves this node proves for (its own membership
/// and its lending pool): index -> `(root, path, leaf)`.
pub type MemberPaths = std::collections::HashMap<usize, (Fr, MerkleProof, Fr)>;

/// The message ids used per epoch, persisted.
#[derive(Debug)]
pub struct MessageIdCounter {
    conn: Mutex<Connection>,
    path: String,
}

impl MessageIdCounter {
    /// Opens (creating) the counter at `path`.
    pub fn open(path: &Path) -> Result<Self, PublishError> {
        // Every reservation must survive a power cut, not only a crash.
        let conn = crate::sqlite::open(path, Durability::Full, &[COUNTER_V1])?;
        let name = path.display().to_string();
        Ok(Self {
            conn: Mutex::new(conn),
            path: name,
        })
    }

    /// Reserves the next message id of `epoch` for membership `index`, below `limit`.
    /// `now_epoch` is the clock's epoch: rows more than two epochs behind it are dropped, never
    /// rows relative to `epoch`, so a message dated far from now cannot erase the current
    /// epoch's count.
    pub fn reserve(
        &self,
        index: u64,
        epoch: u64,
        limit: u64,
        now_epoch: u64,
    ) -> Result<Option<u64>, PublishError> {
        let err = |e: rusqlite::Error| PublishError::Counter {
            path: self.path.clone(),
            detail: e.to_string(),
        };
        let mut conn = self
            .conn
            .lock()
            .expect("the counter lock is never poisoned");
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let next: u64 = tx
            .query_row(
                "SELECT next FROM message_ids WHERE membership = ?1 AND epoch = ?2",
                params![index as i64, epoch as i64],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map_err(err)?
            .map_or(0, |n| n as u64);
        if next >= limit {
            return Ok(None);
        }
        tx.execute(
            "INSERT OR REPLACE INTO message_ids (membership, epoch, next) VALUES (?1, ?2, ?3)",
            params![index as i64, epoch as i64, (next + 1) as i64],
        )
        .map_err(err)?;
        // Epochs this far behind the clock are outside every validator's window: no message
        // of theirs can be proved or accepted again.
        tx.execute(
            "DELETE FROM message_ids WHERE membership = ?1 AND epoch < ?2",
            params![index as i64, now_epoch.saturating_sub(2) as i64],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Some(next))
    }

    /// Message ids used in `epoch` by membership `index`.
    pub fn used(&self, index: u64, epoch: u64) -> Result<u64, PublishError> {
        let conn = self
            .conn
            .lock()
            .expect("the counter lock is never poisoned");
        conn.query_row(
            "SELECT next FROM message_ids WHERE membership = ?1 AND epoch = ?2",
            params![index as i64, epoch as i64],
            |r| r.get::<_, i64>(0),
        )
        .optional()
        .map(|n| n.map_or(0, |n| n as u64))
        .map_err(|e| PublishError::Counter {
            path: self.path.clone(),
            detail: e.to_string(),
        })
    }
}

/// A membership able to prove messages.
#[derive(Debug)]
pub struct Member {
    /// The identity.
    pub identity: Identity,
    /// The leaf index.
    pub index: u64,
    /// Messages per epoch.
    pub limit: u64,
}

impl Member {
    /// The prover's inputs for this member on `path`.
    pub fn inputs(&self, path: &MerkleProof) -> MemberInputs {
        MemberInputs {
            identity_secret: self.identity.secret_hash,
            user_message_limit: Fr::from(self.limit),
            path_elements: path.elements,
            identity_path_index: path.path_bits(),
        }
    }

    /// Whether `leaf` is this member's leaf (else its path proves someone else's).
    pub fn owns(&self, leaf: Fr) -> bool {
        leaf == self.identity.rate_commitment(self.limit)
    }
}

/// The member's precomputation for `path`: `base` (the same member at another root) brought
/// up to date when there is one, which pays only for the path levels that changed.
pub fn prepare_member(
    prover: &RlnProver,
    member: &Member,
    path: &MerkleProof,
    base: Option<&PreparedRln>,
) -> Result<PreparedRln, PublishError> {
    let inputs = member.inputs(path);
    Ok(match base {
        Some(base) => prover.refresh(base, &inputs)?,
        None => prover.prepare(&inputs)?,
    })
}

/// Proves the node's own messages.
#[derive(Debug)]
pub struct Publisher {
    prover: RlnProver,
    member: Member,
    rules: RlnRules,
    counter: MessageIdCounter,
    /// Shared so that a proof runs outside the lock: two messages prove at once.
    prepared: Mutex<Prepared<Arc<PreparedRln>>>,
    root_grace: Duration,
}

/// The member's precomputation and the newest root seen.
#[derive(Debug)]
struct Prepared<P> {
    /// The root the precomputation was made for, and the precomputation.
    at: Option<(Fr, P)>,
    /// The newest root the sync reported, and when it first did.
    newest: Option<(Fr, Instant)>,
    /// A precomputation made in the background for a newer root, waiting for the proofs to
    /// move to that root.
    ready: Option<(Fr, P)>,
}

impl<P> Default for Prepared<P> {
    fn default() -> Self {
        Self {
            at: None,
            newest: None,
            ready: None,
        }
    }
}

impl<P> Prepared<P> {
    /// Whether proving may stay on the prepared root although `root` is newer: peers sync at
    /// their own pace, and a proof against a root they have not reached yet would wait for
    /// their sync (or be refused by nodes that do not wait). A root only just seen is used
    /// once `grace` has passed.
    fn stays_on_old_root(&mut self, root: Fr, grace: Duration, now: Instant) -> bool {
        let Some((prepared_root, _)) = &self.at else {
            return false;
        };
        if *prepared_root == root {
            return true;
        }
        match self.newest {
            Some((newest, since)) if newest == root => now.saturating_duration_since(since) < grace,
            _ => {
                self.newest = Some((root, now));
                !grace.is_zero()
            }
        }
    }
}

impl Publisher {
    /// A publisher for `member` under the network's `rules`, with its message-id counter at
    /// `counter`.
    pub fn new(
        prover: RlnProver,
        member: Member,
        rules: RlnRules,
        counter: MessageIdCounter,
    ) -> Self {
        Self {
            prover,
            member,
            rules,
            counter,
            prepared: Mutex::new(Prepared::default()),
            root_grace: Duration::ZERO,
        }
    }

    /// The same publisher, proving against the previous root for `grace` after a new one
    /// appears (about how far its peers' chain sync may lag behind its own).
    pub fn with_root_grace(mut self, grace: Duration) -> Self {
        self.root_grace = grace;
        self
    }

    /// The membership.
    pub fn member(&self) -> &Member {
        &self.member
    }

    /// The message-id counter.
    pub fn counter(&self) -> &MessageIdCounter {
        &self.counter
    }

    /// Proofs the membership may still make in the epoch of `now_ns`; `None` when the
    /// counter cannot be read.
    pub fn remaining(&self, now_ns: i64) -> Option<u64> {
        let epoch = Epoch::from_timestamp_ns(now_ns, self.rules.epoch_period);
        let used = self.counter.used(self.member.index, epoch.0).ok()?;
        Some(self.member.limit.saturating_sub(used))
    }

    /// Attaches a proof to `message` using the Merkle `path` of our leaf at `root`, if the
    /// message is dated within the clock drift of `now_ns`. Blocking (tens of milliseconds):
    /// call it off async threads.
    pub fn prove(
        &self,
        message: WakuMessage,
        path: Option<(Fr, MerkleProof, Fr)>,
        now_ns: i64,
    ) -> Result<WakuMessage, PublishError> {
        let index = self.member.index;
        let period = self.rules.epoch_period;
        let epoch = check_timestamp(
            message.timestamp(),
            now_ns,
            self.rules.max_clock_drift,
            period,
        )?;
        let Some((root, path, leaf)) = path else {
            return Err(PublishError::NotSynced { index });
        };
        if !self.member.owns(leaf) {
            return Err(PublishError::NotAMember { index });
        }
        let now_epoch = Epoch::from_timestamp_ns(now_ns, period);
        let reserved = self
            .counter
            .reserve(index, epoch.0, self.member.limit, now_epoch.0)?;
        let Some(message_id) = reserved else {
            let now = u64::try_from(now_ns).unwrap_or(0) / 1_000_000_000;
            let next_start = (epoch.0 + 1) * period;
            return Err(PublishError::BudgetSpent {
                limit: self.member.limit,
                epoch: epoch.0,
                wait_secs: next_start.saturating_sub(now),
            });
        };
        let mut prepared = self
            .prepared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !prepared.stays_on_old_root(root, self.root_grace, Instant::now()) {
            let ready = prepared.ready.take_if(|(r, _)| *r == root);
            let p = match ready {
                Some((_, p)) => p,
                // Not refreshed in the background yet: update the one we have (under the
                // lock, so that messages arriving meanwhile wait for it instead of repeating
                // it).
                None => Arc::new(prepare_member(
                    &self.prover,
                    &self.member,
                    &path,
                    prepared.at.as_ref().map(|(_, p)| &**p),
                )?),
            };
            prepared.at = Some((root, p));
        }
        let member = Arc::clone(&prepared.at.as_ref().expect("prepared above").1);
        drop(prepared);
        attach_proof(&self.prover, &member, message, period, message_id)
    }

    /// Prepares the member for `root` ahead of the proofs that will need it, from the newest
    /// precomputation held, so that no message waits for it. Blocking (milliseconds for a new
    /// registration far from the member, about as long as a full precomputation for the first
    /// one): call it off async threads. Says whether there was anything to do.
    pub fn refresh(&self, root: Fr, path: &MerkleProof, leaf: Fr) -> Result<bool, PublishError> {
        if !self.member.owns(leaf) {
            return Ok(false);
        }
        let base = {
            let prepared = self
                .prepared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let newest = prepared.ready.as_ref().or(prepared.at.as_ref());
            if newest.is_some_and(|(r, _)| *r == root) {
                return Ok(false);
            }
            newest.map(|(_, p)| p.clone())
        };
        let started = Instant::now();
        let p = Arc::new(prepare_member(
            &self.prover,
            &self.member,
            path,
            base.as_deref(),
        )?);
        tracing::debug!(
            index = self.member.index,
            incremental = base.is_some(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "membership prepared for a new root"
        );
        let mut prepared = self
            .prepared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if prepared.at.as_ref().is_none_or(|(r, _)| *r != root) {
            prepared.ready = Some((root, p));
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_root_is_used_once_the_grace_has_passed() {
        let grace = Duration::from_secs(6);
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let mut p = Prepared::<()>::default();
        assert!(
            !p.stays_on_old_root(Fr::from(1u64), grace, at(0)),
            "nothing prepared yet"
        );
        p.at = Some((Fr::from(1u64), ()));
        assert!(p.stays_on_old_root(Fr::from(1u64), grace, at(0)));
        // Root 2 appears at 10 s: root 1 is kept for the grace, then dropped.
        assert!(p.stays_on_old_root(Fr::from(2u64), grace, at(10)));
        assert!(p.stays_on_old_root(Fr::from(2u64), grace, at(15)));
        assert!(!p.stays_on_old_root(Fr::from(2u64), grace, at(16)));
        // Without a grace, a new root is used at once.
        assert!(!p.stays_on_old_root(Fr::from(3u64), Duration::ZERO, at(20)));
    }
}
