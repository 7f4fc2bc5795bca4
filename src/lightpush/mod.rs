//! Lightpush v3 (`/vac/waku/lightpush/3.0.0`): a light client hands a message to a service
//! node, which validates it and relays it, answering with a status code and the number of
//! relay peers it reached. The legacy v2 (`/vac/waku/lightpush/2.0.0-beta1`) is served for
//! older clients through the same path, its answer folded into `is_success` and `info`.
//!
//! A message that carries an RLN proof is validated, never re-proved. A message without one
//! gets a proof lent from the service's pool ([`lending`]): 429 when the client used its
//! share of the epoch, 504 when the pool is exhausted or the service lends none. A lent proof
//! is the node's own, so it is not verified again: only its share is recorded.
//!
//! The service does not know the node: it relays through the [`Relay`] trait, which the
//! node's handle implements.

pub mod lending;

use std::future::Future;

use lending::{Client, LendError};
use libp2p::StreamProtocol;

use crate::{
    codec::ProtoCodec,
    message::{MessageError, WakuMessage},
    proto::{
        lightpush::{LightpushRequest, LightpushResponse},
        lightpush_v2::{PushResponse, PushRpc},
    },
    topics::PubsubTopic,
};

/// Why the relay did not take a pushed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// It failed validation; the text says which check.
    Invalid(String),
    /// The membership tree is not synced yet.
    NotSynced,
    /// Anything else; the text says what.
    Failed(String),
}

/// What the service needs from the node that relays for it.
pub trait Relay: Clone + Send + Sync + 'static {
    /// The node's cluster.
    fn cluster(&self) -> u16;
    /// Shards autosharding spreads content topics over.
    fn shard_count(&self) -> u16;
    /// Whether the node relays `shard` of its cluster.
    fn serves_shard(&self, shard: u16) -> bool;
    /// Whether the network enforces RLN.
    fn enforces_rln(&self) -> bool;
    /// Whether the node lends proofs.
    fn lends(&self) -> bool;
    /// Peers in the node's mesh for `topic`.
    fn mesh_peers(&self, topic: PubsubTopic) -> impl Future<Output = usize> + Send;
    /// A proof lent from the node's pool, attached to `message`.
    fn lend(
        &self,
        client: Client,
        message: WakuMessage,
    ) -> impl Future<Output = Result<WakuMessage, LendError>> + Send;
    /// Relays `message` on `topic`. `lent` says the node proved it itself (its proof is not
    /// verified again, only its share recorded); otherwise its proof is validated as a relayed
    /// message's would be.
    fn relay(
        &self,
        topic: PubsubTopic,
        message: WakuMessage,
        lent: bool,
    ) -> impl Future<Output = Result<(), Refused>> + Send;
}

/// The protocol id.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/vac/waku/lightpush/3.0.0");

/// The legacy protocol id.
pub const PROTOCOL_V2: StreamProtocol = StreamProtocol::new("/vac/waku/lightpush/2.0.0-beta1");

/// A request holds one message of at most 150 KiB plus its envelope. The frame limit is higher
/// so that a somewhat oversized message is answered with 413 rather than a dropped stream.
const MAX_FRAME: usize = 256 * 1024;

/// Status codes of lightpush v3.
pub mod status {
    /// Relayed.
    pub const OK: u32 = 200;
    /// Malformed request.
    pub const BAD_REQUEST: u32 = 400;
    /// Message too large.
    pub const PAYLOAD_TOO_LARGE: u32 = 413;
    /// The message failed validation (RLN or otherwise).
    pub const INVALID_MESSAGE: u32 = 420;
    /// This node does not serve the topic.
    pub const UNSUPPORTED_PUBSUB_TOPIC: u32 = 421;
    /// The client sends too often.
    pub const TOO_MANY_REQUESTS: u32 = 429;
    /// The service failed.
    pub const INTERNAL: u32 = 500;
    /// The service cannot relay now (not synced).
    pub const SERVICE_UNAVAILABLE: u32 = 503;
    /// No RLN proof available for a message without one.
    pub const OUT_OF_RLN_PROOF: u32 = 504;
    /// No relay peer to send to.
    pub const NO_PEERS_TO_RELAY: u32 = 505;
}

/// Reads and writes lightpush v3 frames.
pub type LightpushCodec =
    ProtoCodec<LightpushRequest, LightpushResponse, MAX_FRAME, RESPONSE_FRAME>;

/// A response is a status and a short description.
const RESPONSE_FRAME: usize = 16 * 1024;

/// Reads and writes lightpush v2 frames (one `PushRpc` each way; the response frame of v2
/// is small, but a v2 client may echo the request in it, so the same limit applies).
pub type LightpushV2Codec = ProtoCodec<PushRpc, PushRpc, MAX_FRAME, MAX_FRAME>;

/// Serves one legacy v2 request through the v3 path.
pub async fn serve_v2(node: impl Relay, client: Client, rpc: PushRpc) -> PushRpc {
    let request_id = rpc.request_id.clone();
    let answer = |is_success: bool, info: String| PushRpc {
        request_id: request_id.clone(),
        request: None,
        response: Some(PushResponse {
            is_success,
            info: Some(info),
        }),
    };
    let Some(push) = rpc.request else {
        return answer(false, "the request carries no PushRequest".into());
    };
    let v3 = LightpushRequest {
        request_id: rpc.request_id.clone(),
        pubsub_topic: Some(push.pubsub_topic),
        message: push.message,
    };
    v2_of(serve(node, client, v3).await)
}

/// A v3 answer folded into v2's form: `is_success`, and `info` with the status code in front
/// when it is not 200.
pub fn v2_of(r: LightpushResponse) -> PushRpc {
    let info = r.status_desc.unwrap_or_default();
    let (is_success, info) = if r.status_code == status::OK {
        (true, info)
    } else {
        (false, format!("{}: {info}", r.status_code))
    };
    PushRpc {
        request_id: r.request_id,
        request: None,
        response: Some(PushResponse {
            is_success,
            info: Some(info),
        }),
    }
}

/// A response with `code`, `desc` and the relay peers reached.
pub fn response(
    request_id: String,
    code: u32,
    desc: impl Into<String>,
    peers: Option<u32>,
) -> LightpushResponse {
    LightpushResponse {
        request_id,
        status_code: code,
        status_desc: Some(desc.into()),
        relay_peer_count: peers,
    }
}

/// Serves one request from `client` through `node`.
pub async fn serve(node: impl Relay, client: Client, req: LightpushRequest) -> LightpushResponse {
    let id = req.request_id.clone();
    let message = match WakuMessage::try_from(req.message) {
        Ok(m) => m,
        Err(e) => {
            let code = if matches!(e, MessageError::TooLarge { .. }) {
                status::PAYLOAD_TOO_LARGE
            } else {
                status::BAD_REQUEST
            };
            return response(id, code, format!("not a valid message: {e}"), None);
        }
    };
    let topic: PubsubTopic = match req.pubsub_topic.filter(|t| !t.is_empty()) {
        Some(t) => match t.parse() {
            Ok(t) => t,
            Err(e) => return response(id, status::BAD_REQUEST, format!("pubsub topic: {e}"), None),
        },
        None => match message
            .content_topic()
            .autoshard(node.cluster(), node.shard_count())
        {
            Ok(shard) => shard.pubsub_topic(),
            Err(e) => return response(id, status::BAD_REQUEST, format!("autosharding: {e}"), None),
        },
    };
    let served = topic
        .static_shard()
        .is_some_and(|s| s.cluster == node.cluster() && node.serves_shard(s.shard));
    if !served {
        return response(
            id,
            status::UNSUPPORTED_PUBSUB_TOPIC,
            format!("this node does not relay {topic}"),
            None,
        );
    }
    let peers = node.mesh_peers(topic.clone()).await as u32;
    if peers == 0 {
        return response(
            id,
            status::NO_PEERS_TO_RELAY,
            "no relay peers on the topic",
            Some(0),
        );
    }
    let lent = node.enforces_rln() && message.rate_limit_proof().is_none();
    let message = if lent {
        if !node.lends() {
            return response(
                id,
                status::OUT_OF_RLN_PROOF,
                "the message has no RLN proof and this service lends none",
                Some(peers),
            );
        }
        match node.lend(client, message).await {
            Ok(m) => m,
            Err(e @ (LendError::ClientQuota { .. } | LendError::AddressQuota { .. })) => {
                return response(id, status::TOO_MANY_REQUESTS, e.to_string(), Some(peers));
            }
            Err(e @ (LendError::Exhausted { .. } | LendError::NoPool)) => {
                return response(id, status::OUT_OF_RLN_PROOF, e.to_string(), Some(peers));
            }
            Err(e @ LendError::Timestamp(_)) => {
                return response(id, status::INVALID_MESSAGE, e.to_string(), Some(peers));
            }
            Err(e) => return response(id, status::INTERNAL, e.to_string(), Some(peers)),
        }
    } else {
        message
    };
    match node.relay(topic, message, lent).await {
        Ok(()) => response(id, status::OK, "OK", Some(peers)),
        Err(Refused::Invalid(reason)) => response(
            id,
            status::INVALID_MESSAGE,
            format!("refused by validation: {reason}"),
            Some(peers),
        ),
        Err(Refused::NotSynced) => response(
            id,
            status::SERVICE_UNAVAILABLE,
            "the membership tree is not synced yet",
            Some(peers),
        ),
        Err(Refused::Failed(e)) => response(id, status::INTERNAL, e, Some(peers)),
    }
}
