//! The filter v2 client side: reading the push streams that service nodes open to us.
//!
//! Pushes are accepted only from peers this node subscribed with; each push stream is read
//! frame by frame until the service closes it. Messages that do not decode are dropped with a
//! log line and do not end the stream's reader.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use futures::StreamExt;
use libp2p::PeerId;
use tokio::sync::broadcast;

use super::protocol::{MAX_PUSH_FRAME, PUSH_PROTOCOL};
use crate::{
    codec::{CodecError, read_message},
    message::WakuMessage,
    proto::filter::MessagePush,
    topics::PubsubTopic,
};

/// A message a filter service pushed to us.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The service that pushed it.
    pub from: PeerId,
    /// Its pubsub topic.
    pub topic: PubsubTopic,
    /// The message.
    pub message: WakuMessage,
}

/// The services this node is subscribed with, and where their pushes go.
#[derive(Debug, Clone)]
pub struct Client {
    services: Arc<Mutex<HashSet<PeerId>>>,
    pushed: broadcast::Sender<Pushed>,
    streams: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for Client {
    fn default() -> Self {
        Self {
            services: Arc::default(),
            pushed: broadcast::channel(4_096).0,
            streams: Arc::default(),
        }
    }
}

impl Client {
    /// Notes that we hold a subscription with `service`.
    pub fn subscribed_with(&self, service: PeerId) {
        self.services
            .lock()
            .expect("never poisoned")
            .insert(service);
    }

    /// Notes that we hold no subscription with `service` any more.
    pub fn unsubscribed_from(&self, service: &PeerId) {
        self.services
            .lock()
            .expect("never poisoned")
            .remove(service);
    }

    fn accepts(&self, service: &PeerId) -> bool {
        self.services
            .lock()
            .expect("never poisoned")
            .contains(service)
    }

    /// Messages pushed from now on.
    pub fn pushed(&self) -> broadcast::Receiver<Pushed> {
        self.pushed.subscribe()
    }

    /// Push streams accepted so far (a service reuses one per subscriber).
    pub fn streams_accepted(&self) -> u64 {
        self.streams.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Accepts push streams on `control` until the node stops.
    pub fn listen(&self, mut control: libp2p_stream::Control) {
        let mut incoming = match control.accept(PUSH_PROTOCOL) {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(error = %e, "cannot accept filter push streams");
                return;
            }
        };
        let client = self.clone();
        tokio::spawn(async move {
            while let Some((peer, stream)) = incoming.next().await {
                if !client.accepts(&peer) {
                    tracing::debug!(%peer, "refused a filter push stream from a peer we did not subscribe with");
                    continue;
                }
                client
                    .streams
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::spawn(client.clone().read_pushes(peer, stream));
            }
        });
    }

    async fn read_pushes(self, peer: PeerId, mut stream: libp2p::Stream) {
        loop {
            match read_message::<MessagePush, _>(&mut stream, MAX_PUSH_FRAME).await {
                Ok(Some(push)) => match pushed_of(peer, push) {
                    Ok(p) => {
                        let _ = self.pushed.send(p);
                    }
                    Err(reason) => {
                        tracing::debug!(%peer, %reason, "dropped a malformed filter push");
                    }
                },
                Ok(None) => return,
                Err(CodecError::Decode(e)) => {
                    tracing::debug!(%peer, error = %e, "dropped an undecodable filter push");
                }
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "a filter push stream ended");
                    return;
                }
            }
        }
    }
}

/// Why a push was dropped.
#[derive(Debug, thiserror::Error)]
enum PushError {
    #[error("pubsub topic: {0}")]
    Topic(#[from] crate::topics::TopicError),
    #[error(transparent)]
    Message(#[from] crate::message::MessageError),
}

fn pushed_of(from: PeerId, push: MessagePush) -> Result<Pushed, PushError> {
    let topic = push.pubsub_topic.parse()?;
    let message = WakuMessage::try_from(push.waku_message)?;
    Ok(Pushed {
        from,
        topic,
        message,
    })
}
