//! REST routes for the light protocols: `POST /lightpush/v3/message` and the `/filter/v2`
//! routes.
//!
//! Lightpush goes to the service named by `?peerAddr=`, or, without one, through this node's
//! own lightpush service (with its lending pool, if it has one, where each caller's IP address
//! has its own quota). Filter requests go to the service named by `?peerAddr=`; later requests
//! without one use the last service a subscription was made with. Messages the service pushes are kept per content topic
//! subscribed through this API and returned (and forgotten) by `GET /filter/v2/messages/{topic}`.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    extract::{ConnectInfo, Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use libp2p::PeerId;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Api, ApiError, CACHE_PER_TOPIC, RestMessage, connect, parse_content, parse_pubsub};
use crate::{
    filter::protocol::Kind,
    lightpush::{self, lending::Client},
    proto::lightpush::LightpushRequest,
};

/// What the filter routes remember between requests.
#[derive(Default)]
struct FilterState {
    service: Option<PeerId>,
    messages: HashMap<String, VecDeque<RestMessage>>,
}

#[derive(Clone)]
struct Light {
    api: Api,
    filter: Arc<Mutex<FilterState>>,
}

/// The routes, with a task keeping the messages pushed for subscribed content topics.
pub(super) fn routes(api: &Api) -> Router<Api> {
    let filter = Arc::new(Mutex::new(FilterState::default()));
    let mut pushed = api.node.filter_messages();
    let keep = filter.clone();
    tokio::spawn(async move {
        loop {
            match pushed.recv().await {
                Ok(p) => {
                    let mut state = keep.lock().expect("never poisoned");
                    if let Some(q) = state.messages.get_mut(p.message.content_topic().as_str()) {
                        if q.len() == CACHE_PER_TOPIC {
                            q.pop_front();
                        }
                        q.push_back(RestMessage::from_message(&p.message));
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "REST filter cache fell behind");
                }
                Err(_) => return,
            }
        }
    });
    let state = Light {
        api: api.clone(),
        filter,
    };
    Router::new()
        .route("/lightpush/v3/message", post(lightpush_message))
        .route("/lightpush/v1/message", post(legacy_lightpush_message))
        .route(
            "/filter/v2/subscriptions",
            post(filter_change::<{ Kind::Subscribe as i32 }>)
                // The reference node's "modify": subscribing adds the new criteria.
                .put(filter_change::<{ Kind::Subscribe as i32 }>)
                .delete(filter_change::<{ Kind::Unsubscribe as i32 }>),
        )
        .route(
            "/filter/v2/subscriptions/all",
            delete(filter_change::<{ Kind::UnsubscribeAll as i32 }>),
        )
        .route("/filter/v2/subscriptions/{request_id}", get(filter_ping))
        .route("/filter/v2/messages/{topic}", get(filter_messages))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PeerParam {
    peer_addr: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PushBody {
    pubsub_topic: Option<String>,
    message: RestMessage,
}

/// A status code of a light protocol as an HTTP status (they share the numbers).
fn http_status(code: u32) -> StatusCode {
    u16::try_from(code)
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY)
}

fn body_of<T>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| ApiError::bad(format!("the body is not valid: {}", e.body_text())))
}

/// Pushes through `peerAddr`'s service, or through this node's own.
async fn push(
    light: &Light,
    caller: SocketAddr,
    params: &PeerParam,
    body: Result<Json<PushBody>, axum::extract::rejection::JsonRejection>,
) -> Result<crate::proto::lightpush::LightpushResponse, ApiError> {
    let body = body_of(body)?;
    let message = body.message.to_message()?;
    let topic = body
        .pubsub_topic
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(parse_pubsub)
        .transpose()?;
    let node = &light.api.node;
    let response = match &params.peer_addr {
        Some(addr) => {
            let peer = connect(node, addr, "lightpush").await?;
            node.lightpush(peer, topic, &message).await?
        }
        None => {
            let request = LightpushRequest {
                request_id: crate::node::random_request_id(),
                pubsub_topic: topic.map(|t| t.as_str().to_owned()),
                message: message.to_proto(),
            };
            lightpush::serve(node.clone(), Client::Rest(caller.ip()), request).await
        }
    };
    Ok(response)
}

async fn lightpush_message(
    State(light): State<Light>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
    Query(params): Query<PeerParam>,
    body: Result<Json<PushBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let response = push(&light, caller, &params, body).await?;
    let body = json!({
        "statusDesc": response.status_desc,
        "relayPeerCount": response.relay_peer_count,
    });
    Ok((http_status(response.status_code), Json(body)).into_response())
}

/// The legacy lightpush route: `200 OK` as text on success, the status and its reason
/// otherwise, as the reference node's v1 route answers.
async fn legacy_lightpush_message(
    State(light): State<Light>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
    Query(params): Query<PeerParam>,
    body: Result<Json<PushBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let response = push(&light, caller, &params, body).await?;
    if response.status_code == lightpush::status::OK {
        return Ok("OK".into_response());
    }
    Ok((
        http_status(response.status_code),
        response.status_desc.unwrap_or_default(),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilterBody {
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    content_filters: Vec<String>,
    pubsub_topic: Option<String>,
}

impl Light {
    /// The filter service to ask: `peerAddr` when given (remembered), else the last one.
    async fn service(&self, params: &PeerParam) -> Result<PeerId, ApiError> {
        if let Some(addr) = &params.peer_addr {
            let peer = connect(&self.api.node, addr, "filter").await?;
            self.filter.lock().expect("never poisoned").service = Some(peer);
            return Ok(peer);
        }
        let remembered = self.filter.lock().expect("never poisoned").service;
        if let Some(peer) = remembered {
            return Ok(peer);
        }
        let peer = match &self.api.filter_node {
            Some(addr) => connect(&self.api.node, addr, "filter").await?,
            // None configured: a connected peer that serves filter, as the reference node
            // picks one.
            None => self
                .api
                .node
                .peers()
                .await?
                .into_iter()
                .find(|p| {
                    p.protocols
                        .iter()
                        .any(|x| x.starts_with("/vac/waku/filter-subscribe/"))
                })
                .map(|p| p.peer)
                .ok_or_else(|| {
                    ApiError::bad(
                        "no filter service: name one with ?peerAddr=<multiaddr>/p2p/<id>, start \
                         the node with --filternode, or connect to a peer that serves filter",
                    )
                })?,
        };
        self.filter.lock().expect("never poisoned").service = Some(peer);
        Ok(peer)
    }

    async fn ask(
        &self,
        params: &PeerParam,
        kind: Kind,
        body: &FilterBody,
    ) -> Result<Response, ApiError> {
        let topic = body
            .pubsub_topic
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(parse_pubsub)
            .transpose()?;
        let contents = body
            .content_filters
            .iter()
            .map(|c| parse_content(c))
            .collect::<Result<Vec<_>, _>>()?;
        let service = self.service(params).await?;
        let response = self
            .api
            .node
            .filter_request(service, kind, topic.as_ref(), &contents)
            .await?;
        if response.status_code == 200 {
            let mut state = self.filter.lock().expect("never poisoned");
            for c in &body.content_filters {
                match kind {
                    Kind::Subscribe => {
                        state.messages.entry(c.clone()).or_default();
                    }
                    Kind::Unsubscribe => {
                        state.messages.remove(c);
                    }
                    Kind::UnsubscribeAll | Kind::SubscriberPing => {}
                }
            }
            if kind == Kind::UnsubscribeAll {
                state.messages.clear();
            }
        }
        let answer = json!({
            "requestId": body.request_id,
            "statusCode": response.status_code,
            "statusDesc": response.status_desc,
        });
        Ok((http_status(response.status_code), Json(answer)).into_response())
    }
}

/// Subscribe, unsubscribe or unsubscribe-all (`KIND` is the request type's wire value).
async fn filter_change<const KIND: i32>(
    State(light): State<Light>,
    Query(params): Query<PeerParam>,
    body: Result<Json<FilterBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let kind = Kind::try_from(KIND).expect("routes name valid request types");
    light.ask(&params, kind, &body_of(body)?).await
}

async fn filter_ping(
    State(light): State<Light>,
    Path(request_id): Path<String>,
    Query(params): Query<PeerParam>,
) -> Result<Response, ApiError> {
    let body = FilterBody {
        request_id,
        content_filters: Vec::new(),
        pubsub_topic: None,
    };
    light.ask(&params, Kind::SubscriberPing, &body).await
}

async fn filter_messages(
    State(light): State<Light>,
    Path(topic): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut state = light.filter.lock().expect("never poisoned");
    let Some(queue) = state.messages.get_mut(&topic) else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("not subscribed to {topic} through this API"),
        ));
    };
    let messages: Vec<RestMessage> = queue.drain(..).collect();
    Ok(Json(json!(messages)))
}
