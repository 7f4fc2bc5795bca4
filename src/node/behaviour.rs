//! The libp2p behaviours of a node, combined.

use std::time::Duration;

use libp2p::{
    StreamProtocol, autonat, dcutr, gossipsub, identify,
    identity::Keypair,
    ping, relay as circuit,
    request_response::{self, ProtocolSupport},
    swarm::{NetworkBehaviour, behaviour::toggle::Toggle},
};

use super::gate;
use crate::{
    filter::protocol::{self as filter, FilterCodec},
    lightpush::{self, LightpushCodec, LightpushV2Codec},
    metadata::{self, MetadataCodec},
    peer_exchange::{self, PeerExchangeCodec},
    relay::gossip as relay,
    store::protocol::{self as store, StoreCodec},
};

/// identify's protocol version string.
const IDENTIFY_PROTOCOL: &str = "/ipfs/id/1.0.0";

/// Which service protocols the node answers (it speaks all of them as a client).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Serves {
    pub store: bool,
    pub filter: bool,
    pub lightpush: bool,
    pub peer_exchange: bool,
    /// Circuit relay v2: other nodes (behind NATs) may reserve a slot and be reached through us.
    pub circuit_relay: bool,
    /// Store sync.
    pub store_sync: bool,
}

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub relay: gossipsub::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub metadata: request_response::Behaviour<MetadataCodec>,
    pub store: request_response::Behaviour<StoreCodec>,
    pub lightpush: request_response::Behaviour<LightpushCodec>,
    pub lightpush_v2: request_response::Behaviour<LightpushV2Codec>,
    pub filter: request_response::Behaviour<FilterCodec>,
    pub peer_exchange: request_response::Behaviour<PeerExchangeCodec>,
    /// Filter push streams, which outlive one request.
    pub streams: libp2p_stream::Behaviour,
    pub gate: gate::Behaviour,
    /// Circuit relay v2 client: reservations on relays, and dialling through them.
    pub relay_client: circuit::client::Behaviour,
    /// Circuit relay v2 server, when the node offers it.
    pub circuit_relay: Toggle<circuit::Behaviour>,
    /// Hole punching over relayed connections (DCUtR).
    pub dcutr: dcutr::Behaviour,
    /// Whether the node is reachable from outside (AutoNAT v1).
    pub autonat: autonat::Behaviour,
}

/// A request-response behaviour for `protocol`, answering inbound requests only when `serve`
/// (so identify advertises only the services the node really offers), with at most `streams`
/// requests in flight per connection: together with each protocol's frame limit, that bounds
/// the memory one peer can make the node hold.
fn exchange<C>(
    protocol: StreamProtocol,
    serve: bool,
    timeout: Duration,
    streams: usize,
) -> request_response::Behaviour<C>
where
    C: request_response::Codec<Protocol = StreamProtocol> + Default + Clone + Send + 'static,
{
    let support = if serve {
        ProtocolSupport::Full
    } else {
        ProtocolSupport::Outbound
    };
    request_response::Behaviour::new(
        [(protocol, support)],
        request_response::Config::default()
            .with_request_timeout(timeout)
            .with_max_concurrent_streams(streams),
    )
}

impl Behaviour {
    pub fn new(
        key: &Keypair,
        limits: gate::Limits,
        serves: Serves,
        relay_client: circuit::client::Behaviour,
    ) -> Self {
        let me = key.public().to_peer_id();
        let mut relay =
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, relay::config())
                .expect("anonymous gossipsub with a valid configuration");
        relay
            .with_peer_score(relay::peer_score_params(), relay::peer_score_thresholds())
            .expect("the relay's scoring parameters are valid (tested)");
        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                .with_agent_version(format!("wakurln/{}", env!("CARGO_PKG_VERSION"))),
        );
        let short = Duration::from_secs(10);
        let long = Duration::from_secs(20);
        Self {
            relay,
            identify,
            ping: ping::Behaviour::new(ping::Config::new()),
            metadata: exchange(metadata::PROTOCOL, true, short, 8),
            store: exchange(store::PROTOCOL, serves.store, long, 32),
            lightpush: exchange(lightpush::PROTOCOL, serves.lightpush, long, 16),
            lightpush_v2: exchange(lightpush::PROTOCOL_V2, serves.lightpush, long, 16),
            filter: exchange(filter::SUBSCRIBE_PROTOCOL, serves.filter, short, 32),
            peer_exchange: exchange(peer_exchange::PROTOCOL, serves.peer_exchange, short, 8),
            streams: libp2p_stream::Behaviour::new(),
            gate: gate::Behaviour::new(limits),
            relay_client,
            // libp2p's defaults bound what others can take: 128 reservations (4 per peer), 16
            // circuits (4 per peer), each circuit 2 minutes and 128 KiB, requests rate limited
            // per peer and per address.
            circuit_relay: serves
                .circuit_relay
                .then(|| {
                    let mut server = circuit::Behaviour::new(me, circuit::Config::default());
                    // Offered because the operator asked, not only once AutoNAT finds the
                    // node reachable.
                    server.set_status(Some(circuit::Status::Enable));
                    server
                })
                .into(),
            dcutr: dcutr::Behaviour::new(me),
            // As a server it dials back only public addresses, at most 30 clients at once and
            // 3 per peer (libp2p's defaults).
            autonat: autonat::Behaviour::new(me, autonat::Config::default()),
        }
    }
}
