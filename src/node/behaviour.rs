//! The libp2p behaviours of a node, combined.

use std::time::Duration;

use libp2p::{
    connection_limits, gossipsub, identify, identity::Keypair, ping, request_response,
    swarm::NetworkBehaviour,
};

use super::{
    lightpush::{self, LightpushCodec},
    metadata::{self, MetadataCodec},
    relay,
};
use crate::store::protocol::{self as store, StoreCodec};

/// identify's protocol version string.
const IDENTIFY_PROTOCOL: &str = "/ipfs/id/1.0.0";

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub relay: gossipsub::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub metadata: request_response::Behaviour<MetadataCodec>,
    pub store: request_response::Behaviour<StoreCodec>,
    pub lightpush: request_response::Behaviour<LightpushCodec>,
    pub limits: connection_limits::Behaviour,
}

impl Behaviour {
    pub fn new(key: &Keypair, max_connections: u32) -> Self {
        let relay =
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, relay::config())
                .expect("anonymous gossipsub with a valid configuration");
        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                .with_agent_version(format!("wakurln/{}", env!("CARGO_PKG_VERSION"))),
        );
        let metadata = request_response::Behaviour::new(
            [(metadata::PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
        );
        let store = request_response::Behaviour::new(
            [(store::PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(20)),
        );
        let lightpush = request_response::Behaviour::new(
            [(lightpush::PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(20)),
        );
        let limits = connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established(Some(max_connections))
                .with_max_established_per_peer(Some(2)),
        );
        Self {
            relay,
            identify,
            ping: ping::Behaviour::new(ping::Config::new()),
            metadata,
            store,
            lightpush,
            limits,
        }
    }
}
