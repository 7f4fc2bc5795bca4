//! Peer exchange (`/vac/waku/peer-exchange/2.0.0-alpha1`): light clients ask a node for the
//! records (ENRs) of service peers and dial them.
//!
//! The node answers from a bounded cache of verified records: its own (when it has a
//! secp256k1 key and a dialable address), and those its relay peers returned when it asked
//! them in turn, so a client learns about nodes one hop beyond the one it knows. A requester
//! never gets its own record back. Requests are rate limited per peer (429).

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use libp2p::{PeerId, StreamProtocol};

use crate::enr::Enr;
use crate::{
    codec::ProtoCodec,
    proto::peer_exchange::{PeerExchangeQuery, PeerExchangeResponse, PeerExchangeRpc, PeerInfo},
};

/// The protocol id.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/vac/waku/peer-exchange/2.0.0-alpha1");

/// Records kept for answering.
pub const CACHE_SIZE: usize = 60;
/// Most records in one answer.
pub const MAX_PEERS_PER_RESPONSE: u64 = 60;
/// Requests one peer may make per minute.
const REQUESTS_PER_MINUTE: u32 = 30;

/// Peers whose request windows are remembered at most. When full, windows that ended are
/// dropped (one pass, amortised over the insertions that filled the map); if none had, new
/// peers wait for the oldest windows to end.
const MAX_WINDOWS: usize = 10_000;

/// A request is a number; an answer is at most 60 records of 300 bytes and their envelopes.
const MAX_REQUEST_FRAME: usize = 1024;
const MAX_RESPONSE_FRAME: usize = 64 * 1024;

/// Reads and writes peer-exchange frames.
pub type PeerExchangeCodec =
    ProtoCodec<PeerExchangeRpc, PeerExchangeRpc, MAX_REQUEST_FRAME, MAX_RESPONSE_FRAME>;

/// Status codes.
pub mod status {
    /// Records follow.
    pub const OK: u32 = 200;
    /// Malformed request.
    pub const BAD_REQUEST: u32 = 400;
    /// The peer asks too often.
    pub const TOO_MANY_REQUESTS: u32 = 429;
    /// The node has no records to give.
    pub const SERVICE_UNAVAILABLE: u32 = 503;
}

/// A request for `num_peers` records.
pub fn request_of(num_peers: u64) -> PeerExchangeRpc {
    PeerExchangeRpc {
        query: PeerExchangeQuery {
            num_peers: Some(num_peers),
        },
        response: None,
    }
}

/// A response with `code`, `desc` and `records`.
pub fn response_of(code: u32, desc: &str, records: Vec<Vec<u8>>) -> PeerExchangeRpc {
    PeerExchangeRpc {
        // The Nim decoder requires the query field, even in a response.
        query: PeerExchangeQuery { num_peers: None },
        response: Some(PeerExchangeResponse {
            peer_infos: records
                .into_iter()
                .map(|enr| PeerInfo {
                    enr: Some(enr.into()),
                })
                .collect(),
            status_code: code,
            status_desc: Some(desc.to_owned()),
        }),
    }
}

/// Why an answer gave no records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// The answer holds no response.
    #[error("the answer holds no response")]
    NoResponse,
    /// The service refused.
    #[error("status {code}: {desc}")]
    Status {
        /// The status code.
        code: u32,
        /// Its description.
        desc: String,
    },
}

/// The records of a response, verified; records that do not verify are dropped.
pub fn records_of(rpc: &PeerExchangeRpc) -> Result<Vec<Enr>, AnswerError> {
    let Some(r) = &rpc.response else {
        return Err(AnswerError::NoResponse);
    };
    if r.status_code != status::OK {
        return Err(AnswerError::Status {
            code: r.status_code,
            desc: r.status_desc.clone().unwrap_or_default(),
        });
    }
    Ok(r.peer_infos
        .iter()
        .filter_map(|p| Enr::decode(p.enr.as_deref()?).ok())
        .collect())
}

#[derive(Default)]
struct State {
    own: Option<Enr>,
    /// Learned records, oldest first, at most one per peer.
    learned: VecDeque<Enr>,
    windows: HashMap<PeerId, (Instant, u32)>,
}

/// The records a node hands out.
#[derive(Default)]
pub struct Cache {
    state: Mutex<State>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("peer_exchange::Cache")
            .finish_non_exhaustive()
    }
}

impl Cache {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("never poisoned")
    }

    /// Sets the node's own record.
    pub fn set_own(&self, enr: Option<Enr>) {
        self.lock().own = enr;
    }

    /// The node's own record.
    pub fn own(&self) -> Option<Enr> {
        self.lock().own.clone()
    }

    /// Adds records learned from a peer (newer sequence numbers replace older ones).
    pub fn learn(&self, records: Vec<Enr>) {
        let mut state = self.lock();
        let own = state.own.as_ref().map(Enr::peer_id);
        for enr in records {
            let peer = enr.peer_id();
            if Some(peer) == own {
                continue;
            }
            if let Some(i) = state.learned.iter().position(|e| e.peer_id() == peer) {
                if state.learned[i].seq() >= enr.seq() {
                    continue;
                }
                state.learned.remove(i);
            }
            if state.learned.len() == CACHE_SIZE {
                state.learned.pop_front();
            }
            state.learned.push_back(enr);
        }
    }

    /// Records known now (own first).
    pub fn records(&self) -> Vec<Enr> {
        let state = self.lock();
        state
            .own
            .iter()
            .chain(state.learned.iter())
            .cloned()
            .collect()
    }

    /// Answers `rpc` from `peer`.
    pub fn answer(&self, peer: PeerId, rpc: &PeerExchangeRpc) -> PeerExchangeRpc {
        let mut state = self.lock();
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        let too_many = || {
            response_of(
                status::TOO_MANY_REQUESTS,
                "too many peer-exchange requests; ask again in a minute",
                Vec::new(),
            )
        };
        if !state.windows.contains_key(&peer) && state.windows.len() >= MAX_WINDOWS {
            state
                .windows
                .retain(|_, (started, _)| now.duration_since(*started) < minute);
            if state.windows.len() >= MAX_WINDOWS {
                return too_many();
            }
        }
        let w = state.windows.entry(peer).or_insert((now, 0));
        if now.duration_since(w.0) >= minute {
            *w = (now, 0);
        }
        w.1 += 1;
        if w.1 > REQUESTS_PER_MINUTE {
            return too_many();
        }
        let wanted = rpc.query.num_peers.unwrap_or(0);
        if wanted == 0 {
            return response_of(
                status::BAD_REQUEST,
                "the request asks for no peers",
                Vec::new(),
            );
        }
        let records: Vec<Vec<u8>> = state
            .own
            .iter()
            .chain(state.learned.iter().rev())
            .filter(|e| e.peer_id() != peer)
            .take(wanted.min(MAX_PEERS_PER_RESPONSE) as usize)
            .map(|e| e.as_bytes().to_vec())
            .collect();
        if records.is_empty() {
            return response_of(
                status::SERVICE_UNAVAILABLE,
                "no peers to share yet",
                records,
            );
        }
        response_of(status::OK, "OK", records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Enr {
        let key = libp2p::identity::secp256k1::Keypair::generate();
        Enr::sign(&key, &crate::enr::Content::default()).unwrap()
    }

    #[test]
    fn an_answer_holds_at_most_sixty_records_newest_first_never_the_askers() {
        let cache = Cache::default();
        let own = record();
        cache.set_own(Some(own.clone()));
        let learned: Vec<Enr> = (0..100).map(|_| record()).collect();
        cache.learn(learned.clone());
        // The cache keeps the newest CACHE_SIZE learned records, and the node's own.
        assert_eq!(cache.records().len(), CACHE_SIZE + 1);
        // A stranger could be given 61: the cap holds it to 60, own first, then the newest.
        let answer = cache.answer(PeerId::random(), &request_of(u64::MAX));
        let records = records_of(&answer).unwrap();
        assert_eq!(records.len(), 60);
        assert_eq!(records[0].peer_id(), own.peer_id(), "own record first");
        let newest: Vec<PeerId> = learned.iter().rev().take(59).map(Enr::peer_id).collect();
        let got: Vec<PeerId> = records[1..].iter().map(Enr::peer_id).collect();
        assert_eq!(got, newest);
        // A peer in the cache is never handed its own record.
        let asker = learned[99].peer_id();
        let records = records_of(&cache.answer(asker, &request_of(u64::MAX))).unwrap();
        assert_eq!(records.len(), 60);
        assert!(records.iter().all(|r| r.peer_id() != asker));
        // Fewer asked, fewer given.
        let few = records_of(&cache.answer(PeerId::random(), &request_of(3))).unwrap();
        assert_eq!(few.len(), 3);
    }

    /// Found by fuzzing: every request used to sweep all remembered windows, so a stream of
    /// fresh peer ids made each request slower than the last, without bound.
    #[test]
    fn the_request_windows_stay_bounded() {
        let cache = Cache::default();
        let rpc = request_of(5);
        for _ in 0..MAX_WINDOWS {
            cache.answer(PeerId::random(), &rpc);
        }
        let refused = cache.answer(PeerId::random(), &rpc);
        assert_eq!(
            refused.response.unwrap().status_code,
            status::TOO_MANY_REQUESTS
        );
        assert_eq!(cache.lock().windows.len(), MAX_WINDOWS);
    }
}
