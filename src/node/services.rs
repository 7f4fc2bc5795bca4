//! The swarm task's side of the request-response protocols (store, lightpush v3 and v2,
//! filter, peer exchange): inbound requests go to each protocol's service (off the swarm task
//! where answering takes work), and answers to our own requests are routed back to whoever is
//! waiting for them.

use std::{collections::HashMap, future::Future, net::IpAddr};

use libp2p::{
    PeerId,
    multiaddr::Protocol,
    request_response::{self, OutboundRequestId, ResponseChannel},
};
use tokio::sync::{mpsc, oneshot};

use super::{behaviour::Behaviour, metrics::Metrics, swarm::Runner};
use crate::{
    filter::protocol::{self as filter_protocol, status as filter_status},
    lightpush::{self, lending::Client},
    peer_exchange,
    proto::{
        filter::{FilterSubscribeRequest, FilterSubscribeResponse},
        lightpush::{LightpushRequest, LightpushResponse},
        lightpush_v2::PushRpc,
        peer_exchange::PeerExchangeRpc,
        store::{StoreQueryRequest, StoreQueryResponse},
    },
    rate_limit::Service,
    store::protocol as store_protocol,
};

/// Writes one answer on its inbound stream; made off the swarm task, run on it.
pub(super) type Reply = Box<dyn FnOnce(&mut Behaviour) + Send>;

/// Callers waiting for the answer to a request they sent on one protocol.
type Waiting<Res> = HashMap<OutboundRequestId, oneshot::Sender<super::Answer<Res>>>;

/// Requests of ours that wait for an answer, per protocol.
#[derive(Default)]
pub(super) struct Pending {
    pub store: Waiting<StoreQueryResponse>,
    pub lightpush: Waiting<LightpushResponse>,
    pub filter: Waiting<FilterSubscribeResponse>,
    pub peer_exchange: Waiting<PeerExchangeRpc>,
    /// Peer-exchange requests the node sent on its own to fill its cache.
    pub peer_exchange_own: std::collections::HashSet<OutboundRequestId>,
}

/// Routes one event of a request-response protocol: an answer or failure goes to the caller
/// that waits for it; an inbound request is returned for the protocol to serve.
fn route<Req: prost::Message, Res>(
    (protocol, service): (&'static str, Service),
    metrics: &Metrics,
    event: request_response::Event<Req, Res>,
    waiting: &mut Waiting<Res>,
) -> Option<(PeerId, Req, ResponseChannel<Res>)> {
    match event {
        request_response::Event::Message {
            peer,
            message:
                request_response::Message::Request {
                    request, channel, ..
                },
            ..
        } => {
            metrics.count_service_bytes(service.name(), "in", request.encoded_len());
            return Some((peer, request, channel));
        }
        request_response::Event::Message {
            message:
                request_response::Message::Response {
                    request_id,
                    response,
                },
            ..
        } => {
            if let Some(reply) = waiting.remove(&request_id) {
                let _ = reply.send(Ok(response));
            }
        }
        request_response::Event::OutboundFailure {
            request_id, error, ..
        } => {
            if let Some(reply) = waiting.remove(&request_id) {
                let _ = reply.send(Err(error));
            }
        }
        request_response::Event::InboundFailure { peer, error, .. } => {
            tracing::debug!(%peer, %error, protocol, "an inbound request failed");
        }
        request_response::Event::ResponseSent { .. } => {}
    }
    None
}

/// The answer's description when a request is over its rate limit.
const SLOW_DOWN: &str = "too many requests from this peer or its address; slow down";

impl Runner {
    /// The IP address `peer` is connected from, if known.
    fn address_of(&self, peer: &PeerId) -> Option<IpAddr> {
        let address = self.peers.get(peer)?.addresses.first()?;
        address.iter().find_map(|p| match p {
            Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
            Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
            _ => None,
        })
    }

    /// Takes one request of `service` from `peer`, or counts it as refused.
    fn within_rate(&self, service: Service, peer: PeerId) -> bool {
        let allowed = self
            .rate_limits
            .allow(service, peer, self.address_of(&peer));
        self.metrics.count_service_request(service.name(), allowed);
        if !allowed {
            self.metrics.count_rate_limited(service.name());
            tracing::debug!(%peer, service = service.name(), "request over its rate limit");
        }
        allowed
    }

    /// Counts the bytes of a response written for `service`.
    fn sent(&self, service: Service, response: &impl prost::Message) {
        self.metrics
            .count_service_bytes(service.name(), "out", response.encoded_len());
    }

    /// Runs `work` off the swarm task; its reply is written when the swarm task gets to it.
    fn serve_later(&self, work: impl Future<Output = Reply> + Send + 'static) {
        let replies: mpsc::Sender<Reply> = self.replies.0.clone();
        tokio::spawn(async move {
            let _ = replies.send(work.await).await;
        });
    }

    pub(super) fn on_store(
        &mut self,
        event: request_response::Event<StoreQueryRequest, StoreQueryResponse>,
    ) {
        let Some((peer, request, channel)) = route(
            ("store", Service::Store),
            &self.metrics,
            event,
            &mut self.pending.store,
        ) else {
            return;
        };
        if !self.within_rate(Service::Store, peer) {
            let response = store_protocol::error_of(
                request.request_id,
                store_protocol::status::TOO_MANY_REQUESTS,
                SLOW_DOWN,
            );
            self.sent(Service::Store, &response);
            let _ = self
                .swarm
                .behaviour_mut()
                .store
                .send_response(channel, response);
            return;
        }
        let archive = self.archive.clone();
        let metrics = self.metrics.clone();
        self.serve_later(async move {
            let response = crate::store::service::answer(archive, request).await;
            metrics.count_service_bytes("store", "out", prost::Message::encoded_len(&response));
            let reply: Reply = Box::new(move |b: &mut Behaviour| {
                let _ = b.store.send_response(channel, response);
            });
            reply
        });
    }

    pub(super) fn on_lightpush(
        &mut self,
        event: request_response::Event<LightpushRequest, LightpushResponse>,
    ) {
        let Some((peer, request, channel)) = route(
            ("lightpush", Service::Lightpush),
            &self.metrics,
            event,
            &mut self.pending.lightpush,
        ) else {
            return;
        };
        if !self.within_rate(Service::Lightpush, peer) {
            let response = lightpush::response(
                request.request_id,
                lightpush::status::TOO_MANY_REQUESTS,
                SLOW_DOWN,
                None,
            );
            self.sent(Service::Lightpush, &response);
            let _ = self
                .swarm
                .behaviour_mut()
                .lightpush
                .send_response(channel, response);
            return;
        }
        let Some(handle) = self.handle.clone() else {
            return;
        };
        let client = self.client_of(peer);
        let metrics = self.metrics.clone();
        self.serve_later(async move {
            let response = lightpush::serve(handle, client, request).await;
            metrics.count_service_bytes("lightpush", "out", prost::Message::encoded_len(&response));
            let reply: Reply = Box::new(move |b: &mut Behaviour| {
                let _ = b.lightpush.send_response(channel, response);
            });
            reply
        });
    }

    pub(super) fn on_lightpush_v2(&mut self, event: request_response::Event<PushRpc, PushRpc>) {
        // This node never sends v2 requests, so nothing waits for a v2 answer.
        let Some((peer, request, channel)) = route(
            ("lightpush v2", Service::Lightpush),
            &self.metrics,
            event,
            &mut HashMap::new(),
        ) else {
            return;
        };
        if !self.within_rate(Service::Lightpush, peer) {
            let response = lightpush::v2_of(lightpush::response(
                request.request_id,
                lightpush::status::TOO_MANY_REQUESTS,
                SLOW_DOWN,
                None,
            ));
            self.sent(Service::Lightpush, &response);
            let _ = self
                .swarm
                .behaviour_mut()
                .lightpush_v2
                .send_response(channel, response);
            return;
        }
        let Some(handle) = self.handle.clone() else {
            return;
        };
        let client = self.client_of(peer);
        let metrics = self.metrics.clone();
        self.serve_later(async move {
            let response = lightpush::serve_v2(handle, client, request).await;
            metrics.count_service_bytes("lightpush", "out", prost::Message::encoded_len(&response));
            let reply: Reply = Box::new(move |b: &mut Behaviour| {
                let _ = b.lightpush_v2.send_response(channel, response);
            });
            reply
        });
    }

    pub(super) fn on_filter(
        &mut self,
        event: request_response::Event<FilterSubscribeRequest, FilterSubscribeResponse>,
    ) {
        let Some((peer, request, channel)) = route(
            ("filter", Service::Filter),
            &self.metrics,
            event,
            &mut self.pending.filter,
        ) else {
            return;
        };
        // Answering is a map lookup: no need to leave the swarm task.
        let response = match &self.filter_service {
            Some(_) if !self.within_rate(Service::Filter, peer) => filter_protocol::response_of(
                request.request_id,
                filter_status::TOO_MANY_REQUESTS,
                SLOW_DOWN,
            ),
            Some(service) => service.handle(peer, &request),
            None => filter_protocol::response_of(
                request.request_id,
                filter_status::SERVICE_UNAVAILABLE,
                "this node serves no filter subscriptions",
            ),
        };
        self.sent(Service::Filter, &response);
        let _ = self
            .swarm
            .behaviour_mut()
            .filter
            .send_response(channel, response);
    }
}

impl Runner {
    /// The lending client a lightpush peer is: by its address too, when known.
    fn client_of(&self, peer: PeerId) -> Client {
        match self.address_of(&peer) {
            Some(ip) => Client::PeerAt(peer, ip),
            None => Client::Peer(peer),
        }
    }

    /// Asks `peer` for the records it knows, to hand them on to our own clients.
    pub(super) fn fill_peer_exchange_cache(&mut self, peer: PeerId) {
        let id = self.swarm.behaviour_mut().peer_exchange.send_request(
            &peer,
            peer_exchange::request_of(peer_exchange::MAX_PEERS_PER_RESPONSE),
        );
        self.pending.peer_exchange_own.insert(id);
    }

    pub(super) fn on_peer_exchange(
        &mut self,
        event: request_response::Event<PeerExchangeRpc, PeerExchangeRpc>,
    ) {
        match &event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } if self.pending.peer_exchange_own.remove(request_id) => {
                match peer_exchange::records_of(response) {
                    Ok(records) => self.peer_exchange.learn(records),
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "peer exchange answered no records")
                    }
                }
                return;
            }
            request_response::Event::OutboundFailure { request_id, .. }
                if self.pending.peer_exchange_own.remove(request_id) =>
            {
                return;
            }
            _ => {}
        }
        let Some((peer, request, channel)) = route(
            ("peer exchange", Service::PeerExchange),
            &self.metrics,
            event,
            &mut self.pending.peer_exchange,
        ) else {
            return;
        };
        let response = if self.within_rate(Service::PeerExchange, peer) {
            self.peer_exchange.answer(peer, &request)
        } else {
            peer_exchange::response_of(
                peer_exchange::status::TOO_MANY_REQUESTS,
                SLOW_DOWN,
                Vec::new(),
            )
        };
        self.sent(Service::PeerExchange, &response);
        let _ = self
            .swarm
            .behaviour_mut()
            .peer_exchange
            .send_response(channel, response);
    }
}
