//! `/health` and the `/admin/v1` routes, with the reference node's bodies: peers as `WakuPeer`
//! objects (`multiaddr`, `protocols`, `shards`, `connected`, `agent`, `origin`, `score`), the
//! relay and mesh peers per shard, the service peers, peer statistics, connecting to peers and
//! the log level. Our own fields (`peerId`, `clusterId`, `direction`, `failedDials`, the `rln`
//! part of the health report) come on top; clients that do not know them ignore them.

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use super::{Api, ApiError, with_peer_id};
use crate::{
    node::{PeerInfo, peers::Origin},
    topics::StaticShard,
};

const RELAY: &str = "/vac/waku/relay/2.0.0";

/// The service protocols `/admin/v1/peers/service` lists peers of, as the reference node does.
const SERVICE_PROTOCOLS: [&str; 8] = [
    RELAY,
    "/vac/waku/filter-subscribe/2.0.0-beta1",
    "/vac/waku/store-query/3.0.0",
    "/vac/waku/lightpush/2.0.0-beta1",
    "/vac/waku/lightpush/3.0.0",
    "/vac/waku/peer-exchange/2.0.0-alpha1",
    "/vac/waku/reconciliation/1.0.0",
    "/vac/waku/transfer/1.0.0",
];

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/health", get(health))
        .route("/admin/v1/peers", get(all_peers).post(connect_peers))
        .route("/admin/v1/peer/{peer_id}", get(one_peer))
        .route("/admin/v1/peers/connected", get(connected_peers))
        .route("/admin/v1/peers/connected/on/{shard}", get(connected_on))
        .route("/admin/v1/peers/service", get(service_peers))
        .route("/admin/v1/peers/relay", get(relay_peers))
        .route("/admin/v1/peers/relay/on/{shard}", get(relay_on))
        .route("/admin/v1/peers/mesh", get(mesh_peers))
        .route("/admin/v1/peers/mesh/on/{shard}", get(mesh_on))
        .route("/admin/v1/peers/stats", get(stats))
        .route("/admin/v1/log-level/{level}", post(log_level))
        .route("/admin/v1/filter/subscriptions", get(filter_subscriptions))
}

/// The reference node's peer origin names.
fn origin_name(origin: Option<Origin>) -> &'static str {
    match origin {
        Some(Origin::Discv5) => "Discv5",
        Some(Origin::Static) => "Static",
        Some(Origin::PeerExchange) => "PeerExchange",
        Some(Origin::Dns) => "Dns",
        Some(Origin::Inbound) | None => "UnknownOrigin",
    }
}

/// The reference node's connectedness names.
fn connectedness(p: &PeerInfo) -> &'static str {
    if p.connected.is_some() {
        "Connected"
    } else if p.failures > 0 {
        "CannotConnect"
    } else {
        "NotConnected"
    }
}

/// A peer as the reference node's `WakuPeer`, with `protocols` narrowed to `only` when given.
fn waku_peer(p: &PeerInfo, only: Option<&[&str]>) -> Value {
    let protocols: Vec<&String> = p
        .protocols
        .iter()
        .filter(|proto| only.is_none_or(|o| o.contains(&proto.as_str())))
        .collect();
    let mut v = json!({
        "multiaddr": p
            .addresses
            .first()
            .map_or_else(|| format!("/p2p/{}", p.peer), |a| with_peer_id(a, p.peer)),
        "protocols": protocols,
        "shards": p.shards,
        "connected": connectedness(p),
        "agent": p.agent.clone().unwrap_or_default(),
        "origin": origin_name(p.origin),
        "peerId": p.peer.to_string(),
        "clusterId": p.cluster,
        "direction": p.connected.map(|d| d.as_str()),
        "failedDials": p.failures,
    });
    if let Some(score) = p.score {
        v["score"] = json!(score);
    }
    v
}

async fn health(State(api): State<Api>) -> Response {
    let node = &api.node;
    let sync = node.sync_state();
    let peers = node.peers().await.unwrap_or_default();
    let relays = |shard: Option<u16>| {
        peers
            .iter()
            .filter(|p| p.protocols.iter().any(|x| x == RELAY))
            .filter(|p| shard.is_none_or(|s| p.shards.contains(&u32::from(s))))
            .count()
    };
    let shards = node.shards();
    let connection = if relays(None) == 0 {
        "Disconnected"
    } else if shards.iter().all(|s| relays(Some(*s)) > 0) {
        "Connected"
    } else {
        "PartiallyConnected"
    };
    let has_service = |protocol: &str| {
        peers
            .iter()
            .any(|p| p.protocols.iter().any(|x| x.starts_with(protocol)))
    };
    let status = |name: &str, state: &str, desc: Option<String>| {
        let mut v = json!({ name: state });
        if let Some(d) = desc {
            v["desc"] = json!(d);
        }
        v
    };
    let mounted =
        |name: &str, on: bool| status(name, if on { "READY" } else { "NOT_MOUNTED" }, None);
    let client = |name: &str, protocol: &str| {
        if has_service(protocol) {
            status(name, "READY", None)
        } else {
            status(
                name,
                "NOT_READY",
                Some(format!("no connected peer offers {protocol}")),
            )
        }
    };
    let rln = if !node.enforces_rln() {
        status("Rln Relay", "NOT_MOUNTED", None)
    } else if sync.ready {
        status("Rln Relay", "READY", None)
    } else {
        status(
            "Rln Relay",
            "NOT_READY",
            Some(sync.error.as_deref().map_or_else(
                || "the membership tree is syncing".to_owned(),
                |e| crate::redact::scrub(e).into_owned(),
            )),
        )
    };
    let relay = if relays(None) > 0 {
        status("Relay", "READY", None)
    } else {
        status("Relay", "NOT_READY", Some("no relay peer connected".into()))
    };
    let protocols = vec![
        relay,
        rln,
        mounted("Store", node.serves_store()),
        mounted("Filter", node.filter_service().is_some()),
        mounted("Lightpush", node.serves_lightpush()),
        mounted("Legacy Lightpush", node.serves_lightpush()),
        mounted("Peer Exchange", node.serves_peer_exchange()),
        mounted("Rendezvous", false),
        mounted("Mix", false),
        client("Store Client", "/vac/waku/store-query/"),
        client("Filter Client", "/vac/waku/filter-subscribe/"),
        client("Lightpush Client", "/vac/waku/lightpush/3"),
        client("Legacy Lightpush Client", "/vac/waku/lightpush/2"),
    ];
    let ready = !node.enforces_rln() || sync.ready;
    let body = json!({
        "nodeHealth": if ready { "READY" } else { "SYNCHRONIZING" },
        "connectionStatus": connection,
        "protocolsHealth": protocols,
        "rln": {
            "enforced": node.enforces_rln(),
            "synced": sync.ready,
            "block": sync.block,
            "members": sync.members,
            "root": sync.root.map(|r| crate::rln::field::to_decimal(&r)),
            "lastError": sync.error.as_deref().map(|e| crate::redact::scrub(e).into_owned()),
            "membership": node.membership().map(|(index, limit)| json!({"index": index, "rateLimit": limit})),
        },
    });
    // 200 with the state, as the reference node answers; load balancers read nodeHealth.
    (StatusCode::OK, Json(body)).into_response()
}

async fn all_peers(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let peers = api.node.known_peers().await?;
    Ok(Json(peers.iter().map(|p| waku_peer(p, None)).collect()))
}

async fn one_peer(
    State(api): State<Api>,
    Path(peer_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: libp2p::PeerId = peer_id
        .parse()
        .map_err(|e| ApiError::bad(format!("invalid peer id {peer_id:?}: {e}")))?;
    let peers = api.node.known_peers().await?;
    let found = peers.iter().find(|p| p.peer == id).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("Peer with ID {peer_id} not found"),
        )
    })?;
    Ok(Json(waku_peer(found, None)))
}

async fn connected_peers(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let peers = api.node.peers().await?;
    Ok(Json(peers.iter().map(|p| waku_peer(p, None)).collect()))
}

fn shard_of(text: &str) -> Result<u16, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad(format!("Invalid shardId: {text:?}")))
}

async fn connected_on(
    State(api): State<Api>,
    Path(shard): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let shard = u32::from(shard_of(&shard)?);
    let peers = api.node.peers().await?;
    Ok(Json(
        peers
            .iter()
            .filter(|p| p.shards.contains(&shard))
            .map(|p| waku_peer(p, None))
            .collect(),
    ))
}

async fn service_peers(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let peers = api.node.known_peers().await?;
    Ok(Json(
        peers
            .iter()
            .filter(|p| {
                p.protocols
                    .iter()
                    .any(|x| SERVICE_PROTOCOLS.contains(&x.as_str()))
            })
            .map(|p| waku_peer(p, Some(&SERVICE_PROTOCOLS)))
            .collect(),
    ))
}

/// The relay peers of `shard`, connected and (`mesh_only`) in our mesh.
async fn of_shard(api: &Api, shard: u16, mesh_only: bool) -> Result<Value, ApiError> {
    let peers = api.node.peers().await?;
    let topic = StaticShard::new(api.node.cluster(), shard).pubsub_topic();
    let listed: Vec<Value> = if mesh_only {
        let mesh = api.node.mesh_peer_ids(topic).await?;
        peers
            .iter()
            .filter(|p| mesh.contains(&p.peer))
            .map(|p| waku_peer(p, None))
            .collect()
    } else {
        peers
            .iter()
            .filter(|p| {
                p.protocols.iter().any(|x| x == RELAY) && p.shards.contains(&u32::from(shard))
            })
            .map(|p| waku_peer(p, None))
            .collect()
    };
    Ok(json!({"shard": shard, "peers": listed}))
}

async fn per_shard(api: &Api, mesh_only: bool) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for shard in api.node.shards() {
        out.push(of_shard(api, shard, mesh_only).await?);
    }
    Ok(Json(Value::from(out)))
}

async fn relay_peers(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    per_shard(&api, false).await
}

async fn mesh_peers(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    per_shard(&api, true).await
}

async fn relay_on(
    State(api): State<Api>,
    Path(shard): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(of_shard(&api, shard_of(&shard)?, false).await?))
}

async fn mesh_on(
    State(api): State<Api>,
    Path(shard): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(of_shard(&api, shard_of(&shard)?, true).await?))
}

async fn stats(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let known = api.node.known_peers().await?;
    let mut by_connectedness: BTreeMap<&str, usize> = [
        ("Connected", 0),
        ("NotConnected", 0),
        ("CannotConnect", 0),
        ("CanConnect", 0),
    ]
    .into_iter()
    .collect();
    for p in &known {
        *by_connectedness.entry(connectedness(p)).or_default() += 1;
    }
    let mut relay = serde_json::Map::new();
    let mut mesh = serde_json::Map::new();
    let shards = api.node.shards();
    for shard in &shards {
        let r = of_shard(&api, *shard, false).await?;
        let m = of_shard(&api, *shard, true).await?;
        relay.insert(
            shard.to_string(),
            json!(r["peers"].as_array().map_or(0, Vec::len)),
        );
        mesh.insert(
            shard.to_string(),
            json!(m["peers"].as_array().map_or(0, Vec::len)),
        );
    }
    relay.insert("Total relay peers".into(), json!(shards.len()));
    mesh.insert("Total mesh peers".into(), json!(shards.len()));
    let mut protocols = serde_json::Map::new();
    for proto in SERVICE_PROTOCOLS {
        let n = known
            .iter()
            .filter(|p| p.protocols.iter().any(|x| x == proto))
            .count();
        protocols.insert(proto.to_owned(), json!(n));
    }
    Ok(Json(json!({
        "Sum": {"Total peers": known.len()},
        "By Connectedness": by_connectedness,
        "Relay peers": relay,
        "Mesh peers": mesh,
        "By Protocols": protocols,
    })))
}

/// `POST /admin/v1/peers`: a JSON array of multiaddrs ending in `/p2p/<id>`; each is dialled
/// and must connect.
async fn connect_peers(
    State(api): State<Api>,
    body: Result<Json<Vec<String>>, axum::extract::rejection::JsonRejection>,
) -> Result<&'static str, ApiError> {
    let Json(addrs) = body.map_err(|e| ApiError::bad(format!("Failed to decode request: {e}")))?;
    if addrs.len() > 50 {
        return Err(ApiError::bad("at most 50 peers per request"));
    }
    for (i, addr) in addrs.iter().enumerate() {
        super::connect(&api.node, addr, "requested")
            .await
            .map_err(|e| {
                ApiError::bad(format!(
                    "Failed to connect to peer at index: {i} - {addr}: {}",
                    e.1
                ))
            })?;
    }
    Ok("OK")
}

/// The subscribers of this node's filter service and their criteria.
async fn filter_subscriptions(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let service = api
        .node
        .filter_service()
        .ok_or_else(|| ApiError::bad("Error: Filter Protocol is not mounted to the node"))?;
    Ok(Json(
        service
            .subscriptions()
            .iter()
            .map(|(peer, criteria)| {
                json!({
                    "peerId": peer.to_string(),
                    "filterCriteria": criteria
                        .iter()
                        .map(|(p, c)| json!({"pubsubTopic": p.as_str(), "contentTopic": c.as_str()}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect(),
    ))
}

async fn log_level(Path(level): Path<String>) -> Result<String, ApiError> {
    crate::logging::set_level(&level).map_err(ApiError::bad)?;
    tracing::info!(%level, "log level changed through the REST API");
    Ok(format!("log level set to {level}"))
}
