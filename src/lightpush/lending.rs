//! RLN proof lending: a service node holding a pool of memberships attaches proofs to messages
//! that light clients push without one.
//!
//! The pool is separate from the node's own publishing membership, so clients can never spend
//! the node's budget nor the node theirs. Per epoch, the pool's capacity (the sum of its rate
//! limits) is split into a shared part and a reserve:
//!
//! - each client may take at most `per_client_quota` proofs from the shared part (429 beyond);
//! - once the shared part is spent, a client that has had nothing yet this epoch may still
//!   take one proof from the reserve, so heavy clients cannot starve newcomers;
//! - when both are spent the pool is exhausted (504) until the next epoch.
//!
//! A client is a libp2p peer, or, for the REST API's `POST /lightpush/v3/message`, the address
//! the HTTP request came from.
//!
//! Message ids come from the same durable counter as the node's own messages (keyed by
//! membership and epoch), so a restart never reuses one. The per-client accounting is kept in
//! memory: a restart forgets who used what, never which ids were used.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use libp2p::PeerId;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
};

use crate::{
    message::WakuMessage,
    relay::{
        pipeline::RlnRules,
        publisher::{
            Member, MemberPaths, MessageIdCounter, PublishError, TimestampError, attach_proof,
            check_timestamp, prepare_member,
        },
    },
    rln::{
        field::Fr,
        prover::{PreparedRln, RlnProver},
        tree::MerkleProof,
        waku::Epoch,
    },
};

/// The label of a lending counter: the pool membership's leaf index.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolMember {
    /// The membership's leaf index.
    pub membership: String,
}

/// The label of a refusal: why (`client_quota`, `exhausted`, ...).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Refusal {
    /// The reason.
    pub r#type: String,
}

/// Counters of the pool, exported as Prometheus metrics (`waku_rln_lent_proofs`,
/// `waku_rln_lending_refused`).
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Proofs lent, by pool membership.
    pub lent: Family<PoolMember, Counter>,
    /// Lending requests refused, by reason.
    pub refused: Family<Refusal, Counter>,
}

impl Counters {
    /// Counts a proof lent by pool membership `index`.
    pub fn count_lent(&self, index: u64) {
        self.lent
            .get_or_create(&PoolMember {
                membership: index.to_string(),
            })
            .inc();
    }

    /// Counts a refused lending request.
    pub fn count_refusal(&self, reason: &str) {
        self.refused
            .get_or_create(&Refusal {
                r#type: reason.to_owned(),
            })
            .inc();
    }
}

/// Why no proof was lent.
#[derive(Debug, thiserror::Error)]
pub enum LendError {
    /// This client used its share of the epoch.
    #[error(
        "this client used its {quota} lent proofs of the epoch; more in {wait_secs} s, when \
         the next epoch starts"
    )]
    ClientQuota {
        /// The per-client quota.
        quota: u64,
        /// Seconds until the next epoch.
        wait_secs: u64,
    },
    /// The clients at this client's IP address used their share of the epoch.
    #[error(
        "the clients at this address used their {quota} lent proofs of the epoch; more in \
         {wait_secs} s, when the next epoch starts"
    )]
    AddressQuota {
        /// The per-address quota.
        quota: u64,
        /// Seconds until the next epoch.
        wait_secs: u64,
    },
    /// The pool has no proof left this epoch.
    #[error("the service's RLN proof pool is exhausted; it refills in {wait_secs} s")]
    Exhausted {
        /// Seconds until the next epoch.
        wait_secs: u64,
    },
    /// This node has no lending pool.
    #[error("this service lends no RLN proofs")]
    NoPool,
    /// The message has no timestamp, or one too far from the node's clock.
    #[error(transparent)]
    Timestamp(#[from] TimestampError),
    /// Proving failed.
    #[error(transparent)]
    Prove(#[from] PublishError),
}

/// How the pool is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LendingRules {
    /// Proofs one client may take per epoch.
    pub per_client_quota: u64,
    /// Proofs held back for clients that had none yet this epoch.
    pub reserve: u64,
}

/// Who a proof is lent to: each has its own quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    /// A peer pushing over lightpush (its address unknown).
    Peer(PeerId),
    /// A peer pushing over lightpush from an IP address: its address has a quota too.
    PeerAt(PeerId, IpAddr),
    /// A caller of the REST API, by the address its request came from.
    Rest(IpAddr),
}

impl Client {
    /// The IP address the client's requests come from, when known.
    pub fn address(&self) -> Option<IpAddr> {
        match self {
            Self::Peer(_) => None,
            Self::PeerAt(_, ip) | Self::Rest(ip) => Some(*ip),
        }
    }
}

#[derive(Default)]
struct Usage {
    epoch: u64,
    per_client: HashMap<Client, u64>,
    /// Proofs per IP address: many peer ids from one address share
    /// [`crate::rate_limit::PEERS_PER_ADDRESS`] clients' quotas.
    per_address: HashMap<IpAddr, u64>,
    shared: u64,
    reserve: u64,
}

/// Why [`Usage::take`] refused, with the quota that was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shortfall {
    Client(u64),
    Address(u64),
    Exhausted,
}

impl Usage {
    /// Takes one proof of `epoch`'s budget (`capacity` proofs) for `client`, or says why not:
    /// the client's quota first, then its address's (five clients' worth), then the shared part
    /// and, for a client that has had nothing yet, the reserve.
    fn take(
        &mut self,
        client: Client,
        epoch: u64,
        capacity: u64,
        rules: LendingRules,
    ) -> Result<(), Shortfall> {
        if self.epoch != epoch {
            *self = Usage {
                epoch,
                ..Usage::default()
            };
        }
        let used = self.per_client.get(&client).copied().unwrap_or(0);
        if used >= rules.per_client_quota {
            return Err(Shortfall::Client(rules.per_client_quota));
        }
        let address_quota = rules
            .per_client_quota
            .saturating_mul(u64::from(crate::rate_limit::PEERS_PER_ADDRESS));
        let address = client.address();
        let address_used = address
            .and_then(|a| self.per_address.get(&a).copied())
            .unwrap_or(0);
        if address_used >= address_quota {
            return Err(Shortfall::Address(address_quota));
        }
        let shared = capacity.saturating_sub(rules.reserve);
        if self.shared < shared {
            self.shared += 1;
        } else if used == 0 && self.reserve < rules.reserve {
            self.reserve += 1;
        } else {
            return Err(Shortfall::Exhausted);
        }
        if let Some(a) = address {
            *self.per_address.entry(a).or_default() += 1;
        }
        *self.per_client.entry(client).or_default() += 1;
        Ok(())
    }
}

/// A pool of memberships lending proofs.
pub struct LendingPool {
    prover: RlnProver,
    members: Vec<Member>,
    counter: MessageIdCounter,
    rln: RlnRules,
    rules: LendingRules,
    usage: Mutex<Usage>,
    /// Each member's precomputation at the root it was made for; proofs run outside the lock.
    prepared: Mutex<HashMap<u64, (Fr, Arc<PreparedRln>)>>,
    /// One lock per member (in `members`' order), held while its precomputation is made, so
    /// that lends and the background refresh arriving together make it once.
    preparing: Vec<Mutex<()>>,
}

impl std::fmt::Debug for LendingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LendingPool")
            .field("members", &self.members.len())
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl LendingPool {
    /// A pool of `members`.
    pub fn new(
        prover: RlnProver,
        members: Vec<Member>,
        counter: MessageIdCounter,
        rln: RlnRules,
        rules: LendingRules,
    ) -> Self {
        Self {
            prover,
            preparing: members.iter().map(|_| Mutex::new(())).collect(),
            members,
            counter,
            rln,
            rules,
            usage: Mutex::new(Usage::default()),
            prepared: Mutex::new(HashMap::new()),
        }
    }

    /// The leaf indices of the pool's memberships.
    pub fn indices(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.index).collect()
    }

    /// Proofs the pool can lend per epoch.
    pub fn capacity(&self) -> u64 {
        self.members.iter().map(|m| m.limit).sum()
    }

    fn wait_secs(&self, epoch: u64) -> u64 {
        ((epoch + 1) * self.rln.epoch_period).saturating_sub(crate::clock::now_secs())
    }

    /// Takes one unit of the epoch's budget for `client`, or says why not.
    fn admit(&self, client: Client, epoch: u64) -> Result<(), LendError> {
        let taken = self.usage.lock().expect("never poisoned").take(
            client,
            epoch,
            self.capacity(),
            self.rules,
        );
        let wait_secs = self.wait_secs(epoch);
        taken.map_err(|refusal| match refusal {
            Shortfall::Client(quota) => LendError::ClientQuota { quota, wait_secs },
            Shortfall::Address(quota) => LendError::AddressQuota { quota, wait_secs },
            Shortfall::Exhausted => LendError::Exhausted { wait_secs },
        })
    }

    /// Attaches a lent proof to `message` pushed by `client`. Blocking (a proof takes tens of
    /// milliseconds): call it off async threads.
    pub fn lend(
        &self,
        client: Client,
        message: WakuMessage,
        paths: &MemberPaths,
        metrics: &Counters,
    ) -> Result<WakuMessage, LendError> {
        let now = crate::clock::now_ns();
        let period = self.rln.epoch_period;
        let epoch = check_timestamp(message.timestamp(), now, self.rln.max_clock_drift, period)?.0;
        let now_epoch = Epoch::from_timestamp_ns(now, period).0;
        if let Err(e) = self.admit(client, epoch) {
            metrics.count_refusal(match e {
                LendError::ClientQuota { .. } => "client_quota",
                LendError::AddressQuota { .. } => "address_quota",
                _ => "exhausted",
            });
            return Err(e);
        }
        for (slot, member) in self.members.iter().enumerate() {
            let Some((root, path, leaf)) = paths.get(&(member.index as usize)) else {
                continue;
            };
            if !member.owns(*leaf) {
                continue;
            }
            let Some(id) = self
                .counter
                .reserve(member.index, epoch, member.limit, now_epoch)?
            else {
                continue;
            };
            let p = self.prepared_at(slot, *root, path)?;
            let proved = attach_proof(&self.prover, &p, message, period, id)?;
            metrics.count_lent(member.index);
            return Ok(proved);
        }
        metrics.count_refusal("exhausted");
        Err(LendError::Exhausted {
            wait_secs: self.wait_secs(epoch),
        })
    }

    /// The member's precomputation at `root`: the one held, else the one held for an older
    /// root brought up to date (or a fresh one for a member not prepared yet).
    fn prepared_at(
        &self,
        slot: usize,
        root: Fr,
        path: &MerkleProof,
    ) -> Result<Arc<PreparedRln>, PublishError> {
        let member = &self.members[slot];
        let held = || {
            self.prepared
                .lock()
                .expect("never poisoned")
                .get(&member.index)
                .cloned()
        };
        if let Some((r, p)) = held()
            && r == root
        {
            return Ok(p);
        }
        let _preparing = self.preparing[slot].lock().expect("never poisoned");
        // Another thread may have made it while this one waited.
        let base = match held() {
            Some((r, p)) if r == root => return Ok(p),
            Some((_, p)) => Some(p),
            None => None,
        };
        let p = Arc::new(prepare_member(&self.prover, member, path, base.as_deref())?);
        self.prepared
            .lock()
            .expect("never poisoned")
            .insert(member.index, (root, p.clone()));
        Ok(p)
    }

    /// Prepares every member for the roots of `paths` ahead of the proofs that will need
    /// them, so that no light client waits for it. Blocking: call it off async threads.
    /// Returns how many members were prepared.
    pub fn refresh(&self, paths: &MemberPaths) -> Result<usize, PublishError> {
        let mut prepared = 0;
        for (slot, member) in self.members.iter().enumerate() {
            let Some((root, path, leaf)) = paths.get(&(member.index as usize)) else {
                continue;
            };
            let held = self
                .prepared
                .lock()
                .expect("never poisoned")
                .get(&member.index)
                .is_some_and(|(r, _)| r == root);
            if member.owns(*leaf) && !held {
                self.prepared_at(slot, *root, path)?;
                prepared += 1;
            }
        }
        Ok(prepared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_peer_ids_from_one_address_share_five_clients_quotas() {
        let rules = LendingRules {
            per_client_quota: 2,
            reserve: 0,
        };
        let mut usage = Usage::default();
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let mut lent = 0;
        let mut refusals = Vec::new();
        for _ in 0..8 {
            let client = Client::PeerAt(PeerId::random(), ip);
            for _ in 0..2 {
                match usage.take(client, 7, 1_000, rules) {
                    Ok(()) => lent += 1,
                    Err(r) => refusals.push(r),
                }
            }
        }
        assert_eq!(lent, 10, "five clients' quotas");
        assert_eq!(refusals, vec![Shortfall::Address(10); 6]);
        // A peer id alone still has its own quota, and so has another address.
        let one = Client::PeerAt(PeerId::random(), "198.51.100.2".parse().unwrap());
        assert_eq!(usage.take(one, 7, 1_000, rules), Ok(()));
        assert_eq!(usage.take(one, 7, 1_000, rules), Ok(()));
        assert_eq!(usage.take(one, 7, 1_000, rules), Err(Shortfall::Client(2)));
        // The next epoch starts over.
        let again = Client::PeerAt(PeerId::random(), ip);
        assert_eq!(usage.take(again, 8, 1_000, rules), Ok(()));
    }
}
