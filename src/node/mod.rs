//! The Waku relay node: libp2p (TCP and WebSockets, noise, yamux and mplex, identify, ping),
//! gossipsub as Waku relay with every message validated off the swarm task, the metadata
//! protocol, the chain sync feeding the root window, and publishing with the node's own
//! membership.
//!
//! This module is the composition root: it starts the protocols and runs them together.
//! [`start`] (in `start.rs`) returns a [`NodeHandle`] (`handle.rs`); the swarm runs on its own
//! task (`swarm.rs`, with the service protocols' routing in `services.rs`) and is driven by
//! commands from the handle; relayed messages are validated off that task (`validation.rs`);
//! the chain sync and retention run beside it (`tasks.rs`); the archive writer lives in
//! `store::writer`.

mod behaviour;
pub mod config;
pub mod gate;
mod handle;
pub mod keys;
pub mod metrics;
pub mod peers;
mod services;
mod start;
mod swarm;
mod tasks;
mod validation;

use libp2p::{Multiaddr, PeerId, request_response};
use tokio::sync::oneshot;

pub use config::{
    ChainConfig, LendingConfig, MembershipConfig, NodeConfig, PeerManagerConfig, RlnConfig,
    StoreConfig,
};
pub use handle::NodeHandle;
pub use start::{StartError, start};

use crate::{
    message::{MessageHash, WakuMessage},
    peer_exchange,
    relay::publisher::{MemberPaths, PublishError},
    rln::field::Fr,
    topics::PubsubTopic,
};

/// Something the node did that operators and tests want to see.
#[derive(Debug, Clone)]
pub enum NodeEvent {
    /// A relayed message was validated.
    Validated {
        /// The peer it came from.
        from: PeerId,
        /// The message hash, when it decoded.
        hash: Option<MessageHash>,
        /// The verdict's label (`valid`, `spam`, `invalid_proof`, ...).
        verdict: &'static str,
    },
    /// A member exceeded its rate limit; its secret was recovered.
    Spam {
        /// The peer that sent the second message.
        from: PeerId,
        /// The offender's identity commitment.
        commitment: Fr,
        /// The offender's recovered identity secret.
        secret: Fr,
    },
    /// A connection to a peer opened.
    PeerConnected(PeerId),
    /// The last connection to a peer closed.
    PeerDisconnected(PeerId),
    /// A peer's relay score fell below the disconnect threshold: it was disconnected and is
    /// refused for a while.
    ScoredOut {
        /// The peer.
        peer: PeerId,
        /// Its score.
        score: f64,
    },
    /// A peer of another cluster was disconnected.
    ClusterMismatch {
        /// The peer.
        peer: PeerId,
        /// Its cluster (None if it did not say).
        cluster: Option<u32>,
    },
}

/// A peer, connected or known.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerInfo {
    /// Its id.
    pub peer: PeerId,
    /// The addresses we are connected on (connected peers) or would dial.
    pub addresses: Vec<Multiaddr>,
    /// Its protocols, as identify reported them.
    pub protocols: Vec<String>,
    /// Its cluster, as metadata (or its record) reported it.
    pub cluster: Option<u32>,
    /// Its shards.
    pub shards: Vec<u32>,
    /// Where the node heard of it first.
    pub origin: Option<peers::Origin>,
    /// Whether it is connected, and who dialled.
    pub connected: Option<peers::Direction>,
    /// Its relay (gossipsub) score, while connected.
    pub score: Option<f64>,
    /// Failed dials in a row.
    pub failures: u32,
    /// Its agent string, as identify reported it.
    pub agent: Option<String>,
}

/// A peer found by discovery, for the peer manager.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its id.
    pub peer: PeerId,
    /// Where to dial it.
    pub addresses: Vec<Multiaddr>,
    /// Its record, when discovery had one.
    pub record: Option<crate::enr::Enr>,
}

impl Found {
    /// A peer as its record names it.
    pub fn of_record(record: &crate::enr::Enr) -> Self {
        Self {
            peer: record.peer_id(),
            addresses: record.addresses(),
            record: Some(record.clone()),
        }
    }
}

/// Where the chain sync stands, for health reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncState {
    /// Whether a sync step has completed (the root window is usable).
    pub ready: bool,
    /// The last synced block.
    pub block: u64,
    /// Members in the tree.
    pub members: usize,
    /// The tree's root at `block` (equal to the contract's: a step checks it).
    pub root: Option<Fr>,
    /// The last error, if the last step failed.
    pub error: Option<String>,
    /// When the last completed step started: a message that arrived before it was judged on
    /// the roots of the chain as it stood then.
    pub step_started: Option<std::time::Instant>,
}

/// Why a handle request failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The node stopped.
    #[error("the node has stopped")]
    Stopped,
    /// Publishing failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// RLN is enforced and the message has no proof, and we have no membership to make one.
    #[error(
        "this network enforces RLN and the node has no membership to prove messages with; \
         configure --rln-keystore or attach a proof"
    )]
    NoMembership,
    /// The message is not acceptable.
    #[error("{0}")]
    BadMessage(String),
    /// The message's own proof did not pass validation.
    #[error("the message was refused by RLN validation: {0}")]
    Rejected(&'static str),
    /// gossipsub refused to publish.
    #[error("publishing failed: {0}")]
    Relay(#[source] libp2p::gossipsub::PublishError),
    /// Dialling failed.
    #[error("dialling failed: {0}")]
    Dial(#[source] libp2p::swarm::DialError),
    /// Starting failed.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A request to a peer could not be sent or was not answered.
    #[error("{protocol} request failed: {source}")]
    Request {
        /// The protocol.
        protocol: &'static str,
        /// What went wrong.
        #[source]
        source: request_response::OutboundFailure,
    },
    /// A store answered with an error or with bad data.
    #[error("store query failed: {0}")]
    Store(#[from] crate::store::protocol::WireError),
    /// This node's own archive failed, or it keeps none.
    #[error("store query failed: {0}")]
    Archive(#[source] crate::store::ArchiveError),
    /// A store sync session failed.
    #[error("store sync: {0}")]
    StoreSync(#[source] crate::store::sync::SyncError),
    /// This node keeps no archive.
    #[error("store query failed: this node keeps no message archive")]
    NoArchive,
    /// A peer-exchange request was refused.
    #[error("peer exchange failed: {0}")]
    PeerExchange(#[from] peer_exchange::AnswerError),
}

/// What a request of ours to a peer gets: its answer, or why there is none.
pub(crate) type Answer<T> = Result<T, request_response::OutboundFailure>;

/// A request id: 16 random bytes in hex.
pub(crate) fn random_request_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

pub(crate) enum Command {
    Subscribe(PubsubTopic, oneshot::Sender<bool>),
    Unsubscribe(PubsubTopic, oneshot::Sender<bool>),
    Publish(
        PubsubTopic,
        Box<WakuMessage>,
        oneshot::Sender<Result<MessageHash, NodeError>>,
    ),
    Dial(
        Multiaddr,
        oneshot::Sender<Result<(), libp2p::swarm::DialError>>,
    ),
    /// Connected peers, or (true) every peer the book knows.
    Peers(bool, oneshot::Sender<Vec<PeerInfo>>),
    /// Peers found by discovery.
    Learn(peers::Origin, Vec<Found>),
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Topics(oneshot::Sender<Vec<PubsubTopic>>),
    MeshPeers(PubsubTopic, oneshot::Sender<usize>),
    /// The peers in the gossipsub mesh of a topic.
    MeshPeerIds(PubsubTopic, oneshot::Sender<Vec<PeerId>>),
    StoreQuery(
        PeerId,
        Box<crate::proto::store::StoreQueryRequest>,
        oneshot::Sender<Answer<crate::proto::store::StoreQueryResponse>>,
    ),
    Lightpush(
        PeerId,
        Box<crate::proto::lightpush::LightpushRequest>,
        oneshot::Sender<Answer<crate::proto::lightpush::LightpushResponse>>,
    ),
    Filter(
        PeerId,
        Box<crate::proto::filter::FilterSubscribeRequest>,
        oneshot::Sender<Answer<crate::proto::filter::FilterSubscribeResponse>>,
    ),
    PeerExchange(
        PeerId,
        u64,
        oneshot::Sender<Answer<crate::proto::peer_exchange::PeerExchangeRpc>>,
    ),
    Shutdown,
}
