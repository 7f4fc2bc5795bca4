//! The REST API, with the reference node's routes: relay (static and auto-sharded), store,
//! filter and lightpush ([`light`]), health, debug info, admin peers, Prometheus metrics and an
//! OpenAPI description.
//!
//! Messages are JSON `{payload (base64), contentTopic, version, timestamp, meta (base64),
//! ephemeral}`. `GET .../messages/{topic}` returns what arrived on a REST-subscribed topic
//! since the last call (at most [`CACHE_PER_TOPIC`] per topic).

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod admin;
mod guard;
mod light;

pub use guard::{Access, DEFAULT_TIMEOUT};

use crate::{
    message::{MessageHash, WakuMessage},
    store::Query,
    topics::{ContentTopic, PubsubTopic},
};
use crate::{
    node::{NodeError, NodeHandle},
    relay::{Delivered, publisher::PublishError},
    store::protocol::WireError,
};

/// Messages kept per subscribed topic between two reads.
pub const CACHE_PER_TOPIC: usize = 1_000;

/// The content topic of a message that names none, as the reference node's REST API fills it.
pub const DEFAULT_CONTENT_TOPIC: &str = "/waku/2/default-content/proto";

fn default_content_topic() -> String {
    DEFAULT_CONTENT_TOPIC.to_owned()
}

/// A message as the REST API writes and reads it, as the reference node does: `contentTopic`
/// defaults to [`DEFAULT_CONTENT_TOPIC`], a `timestamp` of 0 or none means now, `meta` and
/// `proof` are written only when the message has them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestMessage {
    /// Base64 payload.
    pub payload: String,
    /// The content topic.
    #[serde(default = "default_content_topic")]
    pub content_topic: String,
    /// Version.
    #[serde(default)]
    pub version: u32,
    /// Nanoseconds since the Unix epoch; now when absent or 0.
    #[serde(default)]
    pub timestamp: Option<i64>,
    /// Base64 meta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<String>,
    /// Not to be stored.
    #[serde(default)]
    pub ephemeral: bool,
    /// Base64 RLN proof (`RateLimitProof` protobuf); a message with one is validated, not
    /// proved again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
}

impl RestMessage {
    fn from_message(m: &WakuMessage) -> Self {
        Self {
            payload: B64.encode(m.payload()),
            content_topic: m.content_topic().as_str().to_owned(),
            version: m.version(),
            timestamp: Some(m.timestamp().unwrap_or(0)),
            meta: m.meta().map(|b| B64.encode(b)),
            ephemeral: m.ephemeral(),
            proof: m.rate_limit_proof().map(|b| B64.encode(b)),
        }
    }

    fn to_message(&self) -> Result<WakuMessage, ApiError> {
        let payload = B64
            .decode(&self.payload)
            .map_err(|e| ApiError::bad(format!("payload is not base64: {e}")))?;
        let topic: ContentTopic = self
            .content_topic
            .parse()
            .map_err(|e| ApiError::bad(format!("contentTopic: {e}")))?;
        let now = crate::clock::now_ns();
        let mut b = WakuMessage::builder(topic, payload)
            .version(self.version)
            .timestamp(self.timestamp.filter(|t| *t != 0).unwrap_or(now))
            .ephemeral(self.ephemeral);
        if let Some(meta) = &self.meta {
            b = b.meta(
                B64.decode(meta)
                    .map_err(|e| ApiError::bad(format!("meta is not base64: {e}")))?,
            );
        }
        let message = b.build().map_err(|e| ApiError::bad(e.to_string()))?;
        match &self.proof {
            None => Ok(message),
            Some(proof) => {
                let proof = B64
                    .decode(proof)
                    .map_err(|e| ApiError::bad(format!("proof is not base64: {e}")))?;
                message
                    .with_rate_limit_proof(proof)
                    .map_err(|e| ApiError::bad(format!("proof: {e}")))
            }
        }
    }
}

/// An error answer: a status and one sentence.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad(text: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, text.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        let status = match &e {
            NodeError::Publish(PublishError::BudgetSpent { .. }) => StatusCode::TOO_MANY_REQUESTS,
            NodeError::Publish(PublishError::NotSynced { .. }) | NodeError::NoMembership => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            NodeError::Publish(PublishError::NotAMember { .. }) => StatusCode::FORBIDDEN,
            NodeError::Store(WireError::Status { code: 400, .. }) => StatusCode::BAD_REQUEST,
            NodeError::Store(WireError::Status { code: 503, .. }) | NodeError::NoArchive => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            NodeError::Store(_) | NodeError::Request { .. } => StatusCode::BAD_GATEWAY,
            NodeError::BadMessage(_)
            | NodeError::Rejected(_)
            | NodeError::Publish(PublishError::Timestamp(_)) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self(status, e.to_string())
    }
}

#[derive(Default)]
struct Cache {
    pubsub: HashMap<PubsubTopic, VecDeque<Delivered>>,
    content: HashMap<String, VecDeque<Delivered>>,
}

#[derive(Clone)]
struct Api {
    node: NodeHandle,
    cache: Arc<Mutex<Cache>>,
    /// The filter service used when a request names none and none was named before.
    filter_node: Option<Arc<str>>,
}

fn push(queue: &mut VecDeque<Delivered>, d: Delivered) {
    if queue.len() == CACHE_PER_TOPIC {
        queue.pop_front();
    }
    queue.push_back(d);
}

/// The router, with a task filling the message caches of subscribed topics.
pub fn router(node: NodeHandle) -> Router {
    router_with(node, None)
}

/// The router, with `filter_node` as the filter service of requests that name none.
fn router_with(node: NodeHandle, filter_node: Option<String>) -> Router {
    let cache = Arc::new(Mutex::new(Cache::default()));
    let mut delivered = node.delivered();
    let filler = cache.clone();
    tokio::spawn(async move {
        loop {
            match delivered.recv().await {
                Ok(d) => {
                    let mut c = filler.lock().expect("never poisoned");
                    if let Some(q) = c.pubsub.get_mut(&d.topic) {
                        push(q, d.clone());
                    }
                    if let Some(q) = c.content.get_mut(d.message.content_topic().as_str()) {
                        push(q, d);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "REST message cache fell behind");
                }
                Err(_) => return,
            }
        }
    });
    let api = Api {
        node,
        cache,
        filter_node: filter_node.map(Arc::from),
    };
    Router::new()
        .route("/info", get(info))
        .route("/version", get(version))
        .route("/debug/v1/info", get(info))
        .route("/debug/v1/version", get(version))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route(
            "/relay/v1/subscriptions",
            axum::routing::post(subscribe).delete(unsubscribe),
        )
        .route("/relay/v1/messages/{topic}", get(messages).post(publish))
        .route(
            "/relay/v1/auto/subscriptions",
            axum::routing::post(auto_subscribe).delete(auto_unsubscribe),
        )
        .route("/relay/v1/auto/messages/{topic}", get(auto_messages))
        .route("/relay/v1/auto/messages", axum::routing::post(auto_publish))
        .route("/store/v3/messages", get(store_messages))
        .merge(light::routes(&api))
        .merge(admin::routes())
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
        .with_state(api)
}

/// Serves the API on `address` until the node stops, guarded as the defaults for that address
/// say (see [`Access::for_address`]). Returns the bound address.
pub async fn serve(node: NodeHandle, address: SocketAddr) -> std::io::Result<SocketAddr> {
    serve_with(node, address, Access::for_address(address.ip(), &[])).await
}

/// Serves the API on `address`, guarded by `access`, until the node stops. Returns the bound
/// address. Listening beyond loopback without an admin token is allowed, with a warning.
pub async fn serve_with(
    node: NodeHandle,
    address: SocketAddr,
    access: Access,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    if !bound.ip().is_loopback() && access.admin_token.is_none() {
        tracing::warn!(
            "the REST API listens on {bound}, beyond loopback, without --rest-admin-token: \
             anyone who reaches it can publish with the node's membership, change its \
             subscriptions and make it dial"
        );
    }
    let app = router_with(node, access.filter_node.clone()).layer(
        axum::middleware::from_fn_with_state(Arc::new(access), guard::guard),
    );
    tokio::spawn(async move {
        // Lending keeps a quota per caller, told apart by the address each request comes from.
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the REST server stopped");
        }
    });
    Ok(bound)
}

/// Serves Prometheus metrics alone on `address` (`GET /metrics`; every other path is 404), so
/// exposing them to a scraper does not expose the API. Returns the bound address.
pub async fn serve_metrics(node: NodeHandle, address: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let node = node.clone();
                async move { metrics_text(&node) }
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "Try /metrics") });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the metrics server stopped");
        }
    });
    Ok(bound)
}

fn metrics_text(node: &NodeHandle) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        node.metrics().encode(),
    )
        .into_response()
}

fn parse_pubsub(topic: &str) -> Result<PubsubTopic, ApiError> {
    topic
        .parse()
        .map_err(|e| ApiError::bad(format!("pubsub topic {topic:?}: {e}")))
}

fn parse_content(topic: &str) -> Result<ContentTopic, ApiError> {
    topic
        .parse()
        .map_err(|e| ApiError::bad(format!("content topic {topic:?}: {e}")))
}

fn topics_body(
    body: Result<Json<Vec<String>>, axum::extract::rejection::JsonRejection>,
) -> Result<Vec<String>, ApiError> {
    let Json(topics) =
        body.map_err(|e| ApiError::bad(format!("expected a JSON array of topics: {e}")))?;
    if topics.is_empty() {
        return Err(ApiError::bad("the list of topics is empty"));
    }
    if topics.len() > 100 {
        return Err(ApiError::bad("at most 100 topics per request"));
    }
    Ok(topics)
}

async fn info(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let peer = api.node.peer_id();
    let addrs: Vec<String> = api
        .node
        .listen_addrs()
        .await?
        .into_iter()
        .map(|a| format!("{a}/p2p/{peer}"))
        .collect();
    Ok(Json(json!({
        "listenAddresses": addrs,
        "enrUri": api.node.enr().map(|e| e.to_text()),
        "peerId": peer.to_string(),
        "clusterId": api.node.cluster(),
        "shards": api.node.shards(),
    })))
}

/// The version as text, as the reference node answers `/version`.
async fn version() -> String {
    format!("wakurln-v{}", env!("CARGO_PKG_VERSION"))
}

/// `address/p2p/peer`, unless the address already ends with the peer id.
fn with_peer_id(address: &libp2p::Multiaddr, peer: libp2p::PeerId) -> String {
    if address
        .iter()
        .any(|p| matches!(p, libp2p::multiaddr::Protocol::P2p(_)))
    {
        address.to_string()
    } else {
        format!("{address}/p2p/{peer}")
    }
}

async fn metrics(State(api): State<Api>) -> Response {
    metrics_text(&api.node)
}

async fn subscribe(
    State(api): State<Api>,
    body: Result<Json<Vec<String>>, axum::extract::rejection::JsonRejection>,
) -> Result<&'static str, ApiError> {
    let topics = topics_body(body)?
        .iter()
        .map(|t| parse_pubsub(t))
        .collect::<Result<Vec<_>, _>>()?;
    for t in topics {
        api.node.subscribe(t.clone()).await?;
        api.cache
            .lock()
            .expect("never poisoned")
            .pubsub
            .entry(t)
            .or_default();
    }
    Ok("OK")
}

async fn unsubscribe(
    State(api): State<Api>,
    body: Result<Json<Vec<String>>, axum::extract::rejection::JsonRejection>,
) -> Result<&'static str, ApiError> {
    let topics = topics_body(body)?
        .iter()
        .map(|t| parse_pubsub(t))
        .collect::<Result<Vec<_>, _>>()?;
    for t in topics {
        api.node.unsubscribe(t.clone()).await?;
        api.cache.lock().expect("never poisoned").pubsub.remove(&t);
    }
    Ok("OK")
}

async fn messages(
    State(api): State<Api>,
    Path(topic): Path<String>,
) -> Result<Json<Vec<RestMessage>>, ApiError> {
    let topic = parse_pubsub(&topic)?;
    let mut cache = api.cache.lock().expect("never poisoned");
    let Some(queue) = cache.pubsub.get_mut(&topic) else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("not subscribed to {topic}; POST it to /relay/v1/subscriptions first"),
        ));
    };
    Ok(Json(
        queue
            .drain(..)
            .map(|d| RestMessage::from_message(&d.message))
            .collect(),
    ))
}

fn message_body(
    body: Result<Json<RestMessage>, axum::extract::rejection::JsonRejection>,
) -> Result<WakuMessage, ApiError> {
    let Json(m) = body.map_err(|e| ApiError::bad(format!("expected a message: {e}")))?;
    m.to_message()
}

async fn publish(
    State(api): State<Api>,
    Path(topic): Path<String>,
    body: Result<Json<RestMessage>, axum::extract::rejection::JsonRejection>,
) -> Result<&'static str, ApiError> {
    let topic = parse_pubsub(&topic)?;
    let message = message_body(body)?;
    api.node.publish(topic, message).await?;
    Ok("OK")
}

async fn auto_subscribe(
    State(api): State<Api>,
    body: Result<Json<Vec<String>>, axum::extract::rejection::JsonRejection>,
) -> Result<&'static str, ApiError> {
    let topics = topics_body(body)?
        .iter()
        .map(|t| parse_content(t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut pubsub = HashSet::new();
    for t in &topics {
        let shard = t
            .autoshard(api.node.cluster(), api.node.shard_count())
            .map_err(|e| ApiError::bad(e.to_string()))?;
        pubsub.insert(shard.pubsub_topic());
    }
    for p in pubsub {
        api.node.subscribe(p).await?;
    }
    let mut cache = api.cache.lock().expect("never poisoned");
    for t in topics {
        cache.content.entry(t.into_string()).or_default();
    }
    Ok("OK")
}

async fn auto_unsubscribe(
    State(api): State<Api>,
    body: Result<Json<Vec<String>>, axum::extract::rejection::JsonRejection>,
) -> Result<&'static str, ApiError> {
    let topics = topics_body(body)?;
    let mut cache = api.cache.lock().expect("never poisoned");
    for t in topics {
        parse_content(&t)?;
        cache.content.remove(&t);
    }
    Ok("OK")
}

async fn auto_messages(
    State(api): State<Api>,
    Path(topic): Path<String>,
) -> Result<Json<Vec<RestMessage>>, ApiError> {
    parse_content(&topic)?;
    let mut cache = api.cache.lock().expect("never poisoned");
    let Some(queue) = cache.content.get_mut(&topic) else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("not subscribed to {topic}; POST it to /relay/v1/auto/subscriptions first"),
        ));
    };
    Ok(Json(
        queue
            .drain(..)
            .map(|d| RestMessage::from_message(&d.message))
            .collect(),
    ))
}

async fn auto_publish(
    State(api): State<Api>,
    body: Result<Json<RestMessage>, axum::extract::rejection::JsonRejection>,
) -> Result<&'static str, ApiError> {
    let message = message_body(body)?;
    let topic = message
        .content_topic()
        .autoshard(api.node.cluster(), api.node.shard_count())
        .map_err(|e| ApiError::bad(e.to_string()))?
        .pubsub_topic();
    api.node.publish(topic, message).await?;
    Ok("OK")
}

/// Query parameters of `GET /store/v3/messages`, named as the reference node names them. An
/// empty parameter counts as absent, as there.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoreParams {
    peer_addr: Option<String>,
    include_data: Option<String>,
    pubsub_topic: Option<String>,
    content_topics: Option<String>,
    start_time: Option<String>,
    end_time: Option<String>,
    hashes: Option<String>,
    cursor: Option<String>,
    ascending: Option<String>,
    page_size: Option<String>,
}

/// The largest page the REST API asks for, as the reference node caps it.
const REST_MAX_PAGE: u64 = 100;
/// The page size when none is given.
const REST_DEFAULT_PAGE: u64 = 20;

fn given(p: &Option<String>) -> Option<&str> {
    p.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl StoreParams {
    /// The query, with the reference node's defaults: no data, oldest first, 20 per page (at
    /// most 100); times of 0 or below are no bound.
    fn query(&self) -> Result<Query, ApiError> {
        let include_data = match given(&self.include_data) {
            None => false,
            Some(v) => v
                .parse()
                .map_err(|_| ApiError::bad(format!("includeData {v:?}: use true or false")))?,
        };
        let time = |name: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
            match given(v) {
                None => Ok(None),
                Some(t) => {
                    let t: i64 = t
                        .parse()
                        .map_err(|_| ApiError::bad(format!("{name} {t:?}: not a number")))?;
                    Ok((t > 0).then_some(t))
                }
            }
        };
        let limit = match given(&self.page_size) {
            None => REST_DEFAULT_PAGE,
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| ApiError::bad(format!("pageSize {v:?}: not a number")))?
                .min(REST_MAX_PAGE),
        };
        Ok(Query {
            include_data,
            pubsub_topic: given(&self.pubsub_topic).map(str::to_owned),
            content_topics: list(given(&self.content_topics)),
            time_start: time("startTime", &self.start_time)?,
            time_end: time("endTime", &self.end_time)?,
            message_hashes: list(given(&self.hashes))
                .iter()
                .map(|h| parse_hash(h))
                .collect::<Result<_, _>>()?,
            cursor: given(&self.cursor).map(parse_hash).transpose()?,
            // "true" is oldest first; any other value newest first; none oldest first.
            forward: given(&self.ascending).is_none_or(|v| v == "true"),
            limit: Some(limit),
        })
    }
}

/// Connects to the service at `addr` (which must end in `/p2p/<peer id>`) unless already
/// connected, and returns its peer id.
async fn connect(node: &NodeHandle, addr: &str, service: &str) -> Result<libp2p::PeerId, ApiError> {
    let addr: libp2p::Multiaddr = addr
        .parse()
        .map_err(|e| ApiError::bad(format!("peerAddr: {e}")))?;
    let Some(peer) = addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    }) else {
        return Err(ApiError::bad("peerAddr must end in /p2p/<peer id>"));
    };
    if node.peers().await?.iter().any(|i| i.peer == peer) {
        return Ok(peer);
    }
    node.dial(addr).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !node.peers().await?.iter().any(|i| i.peer == peer) {
        if std::time::Instant::now() > deadline {
            return Err(ApiError(
                StatusCode::GATEWAY_TIMEOUT,
                format!("cannot connect to the {service} peer"),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(peer)
}

fn parse_hash(text: &str) -> Result<MessageHash, ApiError> {
    let digits = text.trim().trim_start_matches("0x");
    let bytes = hex::decode(digits)
        .map_err(|_| ApiError::bad(format!("{text:?} is not a hex message hash")))?;
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| ApiError::bad(format!("{text:?} is not 32 bytes")))?;
    Ok(MessageHash(array))
}

fn list(text: Option<&str>) -> Vec<String> {
    text.map(|t| {
        t.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

async fn store_messages(
    State(api): State<Api>,
    params: Result<axum::extract::Query<StoreParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let axum::extract::Query(p) = params.map_err(|e| ApiError::bad(e.to_string()))?;
    let query = p.query()?;
    let page = match given(&p.peer_addr) {
        None if api.node.serves_store() => api.node.local_store_query(query).await?,
        None => {
            // No archive here: a connected store node answers, as the reference node picks one.
            let peers = api.node.peers().await?;
            let Some(service) = peers.iter().find(|i| {
                i.protocols
                    .iter()
                    .any(|x| x.as_str() == crate::store::protocol::PROTOCOL.as_ref())
            }) else {
                return Err(ApiError(
                    StatusCode::PRECONDITION_FAILED,
                    "No suitable service peer: this node keeps no archive and no store node is \
                     connected; name one with ?peerAddr= or start with --storenode"
                        .into(),
                ));
            };
            api.node.store_query(service.peer, &query).await?
        }
        Some(addr) => {
            let peer = connect(&api.node, addr, "store").await?;
            api.node.store_query(peer, &query).await?
        }
    };
    let messages: Vec<Value> = page
        .entries
        .iter()
        .map(|e| {
            let mut entry = json!({"messageHash": format!("0x{}", hex::encode(e.hash.as_bytes()))});
            if let Some(m) = &e.message {
                entry["message"] = json!(RestMessage::from_message(m));
            }
            if let Some(t) = &e.pubsub_topic {
                entry["pubsubTopic"] = json!(t);
            }
            entry
        })
        .collect();
    let mut body = json!({
        "requestId": crate::node::random_request_id(),
        "statusCode": 200,
        "statusDesc": "OK",
        "messages": messages,
    });
    if let Some(c) = page.cursor {
        body["paginationCursor"] = json!(format!("0x{}", hex::encode(c.as_bytes())));
    }
    Ok(Json(body))
}

async fn openapi() -> Json<Value> {
    let store_params: Vec<Value> = [
        "peerAddr",
        "includeData",
        "pubsubTopic",
        "contentTopics",
        "startTime",
        "endTime",
        "hashes",
        "cursor",
        "ascending",
        "pageSize",
    ]
    .iter()
    .map(|n| json!({"name": n, "in": "query", "required": false, "schema": {"type": "string"}}))
    .collect();
    let message = json!({
        "type": "object",
        "required": ["payload"],
        "properties": {
            "payload": {"type": "string", "format": "byte"},
            "contentTopic": {"type": "string", "default": DEFAULT_CONTENT_TOPIC},
            "version": {"type": "integer"},
            "timestamp": {"type": "integer", "description": "nanoseconds since the Unix epoch; 0 or none is now"},
            "meta": {"type": "string", "format": "byte"},
            "ephemeral": {"type": "boolean"},
            "proof": {"type": "string", "format": "byte", "description": "RateLimitProof protobuf; a message with one is validated, one without is proved by the node's membership"}
        }
    });
    let topics = json!({"type": "array", "items": {"type": "string"}, "maxItems": 100});
    let ok = json!({"200": {"description": "OK"}, "400": {"description": "a bad request, with the reason"}});
    let publish = json!({
        "200": {"description": "published"},
        "400": {"description": "malformed message or refused by RLN validation"},
        "429": {"description": "the membership's budget for this epoch is spent; the text says when it frees up"},
        "503": {"description": "no membership, or the membership tree is not synced yet"}
    });
    let peer_addr =
        json!({"name": "peerAddr", "in": "query", "required": false, "schema": {"type": "string"}});
    let light_push = json!({
        "200": {"description": "relayed; relayPeerCount says to how many peers"},
        "400": {"description": "malformed request"}, "413": {"description": "message too large"},
        "420": {"description": "invalid message (RLN)"}, "421": {"description": "pubsub topic not served"},
        "429": {"description": "the client's share of lent proofs is used up for this epoch"},
        "503": {"description": "not synced"}, "504": {"description": "no RLN proof available; the text says when the pool refills"},
        "505": {"description": "no relay peers"}
    });
    let filter_body = json!({"type": "object", "properties": {"requestId": {"type": "string"}, "pubsubTopic": {"type": "string"}, "contentFilters": topics}});
    let filter = json!({
        "200": {"description": "done"}, "400": {"description": "malformed request or no service named"},
        "404": {"description": "no such subscription"}, "429": {"description": "too many requests"},
        "503": {"description": "the service is full"}
    });
    let admin = json!({
            "/admin/v1/peers": {
            "get": {"summary": "the peers the node knows, connected ones first (WakuPeer: multiaddr, protocols, shards, connected, agent, origin, score)", "responses": {"200": {"description": "OK"}}},
            "post": {"summary": "connect to peers", "requestBody": {"content": {"application/json": {"schema": topics}}}, "responses": {"200": {"description": "all connected"}, "400": {"description": "an address is malformed or did not connect"}}}
        },
        "/admin/v1/peer/{peerId}": {"get": {"summary": "one peer", "responses": {"200": {"description": "OK"}, "400": {"description": "not a peer id"}, "404": {"description": "unknown peer"}}}},
        "/admin/v1/peers/connected": {"get": {"summary": "connected peers", "responses": {"200": {"description": "OK"}}}},
        "/admin/v1/peers/connected/on/{shardId}": {"get": {"summary": "connected peers on a shard", "responses": {"200": {"description": "OK"}}}},
        "/admin/v1/peers/service": {"get": {"summary": "peers offering a service protocol (protocols narrowed to those)", "responses": {"200": {"description": "OK"}}}},
        "/admin/v1/peers/relay": {"get": {"summary": "connected relay peers per shard", "responses": {"200": {"description": "OK"}}}},
        "/admin/v1/peers/relay/on/{shardId}": {"get": {"summary": "connected relay peers of a shard", "responses": {"200": {"description": "OK"}}}},
        "/admin/v1/peers/mesh": {"get": {"summary": "gossipsub mesh peers per shard", "responses": {"200": {"description": "OK"}}}},
        "/admin/v1/peers/mesh/on/{shardId}": {"get": {"summary": "gossipsub mesh peers of a shard", "responses": {"200": {"description": "OK"}}}},
        "/admin/v1/peers/stats": {"get": {"summary": "peer counts by connectedness, shard and protocol", "responses": {"200": {"description": "OK"}}}},
        "/admin/v1/filter/subscriptions": {"get": {"summary": "the subscribers of this node's filter service and their criteria", "responses": {"200": {"description": "OK"}, "400": {"description": "this node serves no filter"}}}},
        "/admin/v1/log-level/{logLevel}": {"post": {"summary": "change the log level (TRACE, DEBUG, INFO, NOTICE, WARN, ERROR, FATAL, NONE)", "responses": {"200": {"description": "changed"}, "400": {"description": "not a level"}}}}
    });
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {"title": "wakurln REST API", "version": env!("CARGO_PKG_VERSION")},
        "components": {"schemas": {"WakuMessage": message}},
        "paths": {
            "/health": {"get": {"summary": "nodeHealth (READY, SYNCHRONIZING), connectionStatus, protocolsHealth, and the RLN sync state", "responses": {"200": {"description": "the report, whatever the state"}}}},
            "/info": {"get": {"summary": "listen addresses, record (enrUri), peer id, cluster and shards", "responses": {"200": {"description": "OK"}}}},
            "/version": {"get": {"summary": "version, as text", "responses": {"200": {"description": "OK"}}}},
            "/debug/v1/info": {"get": {"summary": "as /info", "deprecated": true, "responses": {"200": {"description": "OK"}}}},
            "/debug/v1/version": {"get": {"summary": "as /version", "deprecated": true, "responses": {"200": {"description": "OK"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "OK"}}}},
            "/relay/v1/subscriptions": {
                "post": {"summary": "subscribe to pubsub topics", "requestBody": {"content": {"application/json": {"schema": topics}}}, "responses": ok},
                "delete": {"summary": "unsubscribe", "requestBody": {"content": {"application/json": {"schema": topics}}}, "responses": ok}
            },
            "/relay/v1/messages/{pubsubTopic}": {
                "get": {"summary": "messages received since the last call", "responses": {"200": {"description": "OK"}, "404": {"description": "not subscribed"}}},
                "post": {"summary": "publish (the node attaches an RLN proof when the message has none)", "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/WakuMessage"}}}}, "responses": publish}
            },
            "/relay/v1/auto/subscriptions": {
                "post": {"summary": "subscribe to content topics (autosharding)", "requestBody": {"content": {"application/json": {"schema": topics}}}, "responses": ok},
                "delete": {"summary": "unsubscribe", "requestBody": {"content": {"application/json": {"schema": topics}}}, "responses": ok}
            },
            "/relay/v1/auto/messages/{contentTopic}": {"get": {"summary": "messages received since the last call", "responses": {"200": {"description": "OK"}, "404": {"description": "not subscribed"}}}},
            "/relay/v1/auto/messages": {"post": {"summary": "publish on the content topic's shard", "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/WakuMessage"}}}}, "responses": publish}},
            "/store/v3/messages": {"get": {
                "summary": "Store v3 query of this node's archive, or of peerAddr's (or a connected store node's when this node keeps none); defaults: includeData false, ascending, pageSize 20 (at most 100)",
                "parameters": store_params,
                "responses": {"200": {"description": "requestId, statusCode, statusDesc, messages; paginationCursor when more follow"}, "400": {"description": "a bad query"}, "412": {"description": "no archive here and no store node connected"}}
            }},
            "/lightpush/v1/message": {"post": {
                "summary": "the legacy route: as /lightpush/v3/message, answered 200 OK as text or the status and its reason",
                "parameters": [peer_addr],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["message"], "properties": {"pubsubTopic": {"type": "string"}, "message": {"$ref": "#/components/schemas/WakuMessage"}}}}}},
                "responses": light_push
            }},
            "/lightpush/v3/message": {"post": {
                "summary": "lightpush a message to peerAddr's service, or through this node's own (which lends a proof when it has a pool)",
                "parameters": [peer_addr],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["message"], "properties": {"pubsubTopic": {"type": "string"}, "message": {"$ref": "#/components/schemas/WakuMessage"}}}}}},
                "responses": light_push
            }},
            "/filter/v2/subscriptions": {
                "post": {"summary": "subscribe at peerAddr's filter service (remembered for later calls)", "parameters": [peer_addr], "requestBody": {"content": {"application/json": {"schema": filter_body}}}, "responses": filter},
                "put": {"summary": "modify a subscription: add content topics (as post)", "parameters": [peer_addr], "requestBody": {"content": {"application/json": {"schema": filter_body}}}, "responses": filter},
                "delete": {"summary": "unsubscribe content topics", "parameters": [peer_addr], "requestBody": {"content": {"application/json": {"schema": filter_body}}}, "responses": filter}
            },
            "/filter/v2/subscriptions/all": {"delete": {"summary": "unsubscribe from everything", "parameters": [peer_addr], "responses": filter}},
            "/filter/v2/subscriptions/{requestId}": {"get": {"summary": "ping the subscription", "parameters": [peer_addr], "responses": filter}},
            "/filter/v2/messages/{contentTopic}": {"get": {"summary": "messages pushed since the last call", "responses": {"200": {"description": "OK"}, "404": {"description": "not subscribed through this API"}}}}
        }
    });
    if let (Some(paths), Value::Object(more)) = (doc["paths"].as_object_mut(), admin) {
        paths.extend(more);
    }
    Json(doc)
}
