//! A bare libp2p peer that opens streams and writes whatever bytes a test likes, as a broken or
//! hostile peer would.

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, noise,
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux,
};
use prost::Message;
use wakurln::codec::{encode_frame, read_message};

/// A swarm of a fresh identity over TCP, noise and yamux (the node's own transport) with
/// `behaviour` and nothing else, its idle connections kept for `idle`.
pub fn tcp_swarm<B: NetworkBehaviour>(behaviour: B, idle: Duration) -> Swarm<B> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| behaviour)
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .build()
}

/// A bare libp2p peer that opens streams and writes raw bytes.
pub struct RawPeer {
    /// Opens streams to the node.
    pub control: libp2p_stream::Control,
}

impl RawPeer {
    /// Connects to `to`.
    pub async fn connect(to: Multiaddr) -> Self {
        let mut swarm = tcp_swarm(libp2p_stream::Behaviour::new(), Duration::from_secs(60));
        let control = swarm.behaviour().new_control();
        swarm.dial(to).unwrap();
        let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut connected = Some(connected_tx);
            loop {
                if let SwarmEvent::ConnectionEstablished { .. } = swarm.select_next_some().await
                    && let Some(tx) = connected.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), connected_rx)
            .await
            .expect("the raw peer connects")
            .unwrap();
        Self { control }
    }

    /// Writes `bytes` on a new stream of `protocol` and returns what comes back before the
    /// stream closes (empty when the node answers nothing).
    pub async fn exchange(
        &mut self,
        peer: PeerId,
        protocol: StreamProtocol,
        bytes: &[u8],
    ) -> Vec<u8> {
        let mut stream = self
            .control
            .open_stream(peer, protocol.clone())
            .await
            .unwrap();
        // The node may close the stream before we finish writing: that is an answer too.
        let _ = stream.write_all(bytes).await;
        let _ = stream.close().await;
        let mut back = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut back));
        assert!(
            read.await.is_ok(),
            "the node closes every stream it is done with"
        );
        back
    }

    /// Sends one request frame on a new stream and reads one response frame.
    pub async fn ask<Req: Message, Res: Message + Default>(
        &mut self,
        peer: PeerId,
        protocol: StreamProtocol,
        request: &Req,
    ) -> Res {
        let back = self.exchange(peer, protocol, &encode_frame(request)).await;
        read_message(&mut futures::io::Cursor::new(back), 1 << 24)
            .await
            .unwrap()
            .expect("an answer")
    }
}
