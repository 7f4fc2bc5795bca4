//! The node's background tasks beside the swarm loop: the chain sync feeding the root window
//! and the members' Merkle paths, and archive retention.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use tokio::sync::{Notify, watch};

use super::{MemberPaths, SyncState, metrics::Metrics};
use crate::{
    chain::sync::Syncer,
    lightpush::lending::LendingPool,
    relay::publisher::{PublishError, Publisher},
    rln::tree::RootWindow,
    store::{Archive, Retention},
};

/// Fewest time between two sync steps forced by unknown roots.
const FORCED_SYNC_GAP: Duration = Duration::from_secs(1);

/// Steps the chain sync, publishing the root window, our Merkle path and the sync state.
/// Where the sync task publishes what it learns.
pub(super) struct SyncOutputs {
    pub(super) roots: Arc<RwLock<RootWindow>>,
    pub(super) state: watch::Sender<SyncState>,
    pub(super) path: watch::Sender<MemberPaths>,
    pub(super) metrics: Arc<Metrics>,
    /// Asks for a step now (a message waits on an unknown root).
    pub(super) sync_now: Arc<Notify>,
}

pub(super) async fn sync_task(
    mut syncer: Syncer,
    ours: Vec<usize>,
    outputs: SyncOutputs,
    synced: Arc<std::sync::atomic::AtomicBool>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let SyncOutputs {
        roots,
        state,
        path,
        metrics,
        sync_now,
    } = outputs;
    loop {
        let started = Instant::now();
        match syncer.step().await {
            Ok(status) => {
                if status.applied > 0 {
                    metrics
                        .membership_insertion
                        .set(started.elapsed().as_secs_f64());
                }
                *roots
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = syncer.roots().clone();
                synced.store(true, std::sync::atomic::Ordering::Release);
                metrics.root_window.set(syncer.roots().len() as i64);
                metrics.sync_block.set(status.block as i64);
                metrics.members.set(status.members as i64);
                let tree = syncer.tree();
                let paths: MemberPaths = ours
                    .iter()
                    .filter_map(|&index| {
                        let proof = tree.proof(index).ok()?;
                        Some((index, (tree.root(), proof, tree.leaf(index))))
                    })
                    .collect();
                // Only a new root (or a new member of ours) wakes the refresh task.
                path.send_if_modified(|current| {
                    let changed = *current != paths;
                    if changed {
                        *current = paths;
                    }
                    changed
                });
                state.send_replace(SyncState {
                    ready: true,
                    block: status.block,
                    members: status.members,
                    root: Some(status.root),
                    error: None,
                    step_started: Some(started),
                });
            }
            // A node that is stopping has no use for the step, nor for a warning about it.
            Err(_) if *stop.borrow() => return,
            Err(e) => {
                tracing::warn!(error = %e, "membership sync step failed; retrying");
                state.send_modify(|s| s.error = Some(e.to_string()));
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(interval) => {}
            // A message with an unknown root is waiting: step early, but not more often than
            // FORCED_SYNC_GAP however many such messages arrive.
            () = async {
                sync_now.notified().await;
                tokio::time::sleep_until((started + FORCED_SYNC_GAP).into()).await;
            } => {}
        }
    }
}

/// Keeps the node's membership and its lending pool prepared for the newest root: each new
/// set of Merkle paths is worked into their precomputations off the async threads, paying
/// only for the path levels a registration changed, so that no message waits for it.
pub(super) async fn refresh_task(
    publisher: Option<Arc<Publisher>>,
    pool: Option<Arc<LendingPool>>,
    mut paths: watch::Receiver<MemberPaths>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            changed = paths.changed() => if changed.is_err() {
                return;
            },
        }
        let current = paths.borrow_and_update().clone();
        let (publisher, pool) = (publisher.clone(), pool.clone());
        let refreshed = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut work = false;
            if let Some(p) = &publisher
                && let Some((root, path, leaf)) = current.get(&(p.member().index as usize))
            {
                work |= p.refresh(*root, path, *leaf)?;
            }
            if let Some(pool) = &pool {
                work |= pool.refresh(&current)? > 0;
            }
            Ok::<_, PublishError>(work.then(|| started.elapsed()))
        })
        .await;
        match refreshed {
            Ok(Ok(None)) => {}
            Ok(Ok(Some(elapsed))) => metrics.member_refresh.observe(elapsed.as_secs_f64()),
            Ok(Err(e)) => tracing::warn!(
                error = %e,
                "could not prepare the memberships for the new root ahead of time; the next proof will"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "preparing the memberships for the new root failed")
            }
        }
    }
}

/// Deletes what the retention limits exclude, in small batches so queries are not held up.
/// The archive's per-shard gauges are refreshed at start and after each pass.
pub(super) async fn retention_task(
    archive: Arc<Archive>,
    retention: Retention,
    interval: Duration,
    (metrics, relayed): (Arc<Metrics>, Vec<u16>),
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Ok(topics) = archive.per_topic().await {
            // The shards the node relays show 0 until they hold messages.
            let mut shards: Vec<(u16, u64, u64)> = relayed.iter().map(|s| (*s, 0, 0)).collect();
            for (topic, count, bytes) in &topics {
                let Some(shard) = topic
                    .parse::<crate::topics::PubsubTopic>()
                    .ok()
                    .and_then(|t| t.static_shard())
                else {
                    continue;
                };
                match shards.iter_mut().find(|(s, _, _)| *s == shard.shard) {
                    Some(entry) => *entry = (shard.shard, *count, *bytes),
                    None => shards.push((shard.shard, *count, *bytes)),
                }
            }
            metrics.set_archive_shards(&shards);
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let now = crate::clock::now_ns();
        match archive.enforce(retention, now, 5_000).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "archive retention"),
            Err(e) => tracing::warn!(error = %e, "archive retention failed"),
        }
    }
}

/// Store sync: a session with a sync peer of our shards every interval, the first as soon as
/// one is connected; the set forgets what left the range. With an interval of 0 the node only
/// answers.
pub(super) async fn store_sync_task(
    handle: super::NodeHandle,
    sync: Arc<crate::store::sync::StoreSync>,
    mut stop: watch::Receiver<bool>,
) {
    let config = sync.config();
    let prune_every = if config.interval.is_zero() {
        Duration::from_secs(60)
    } else {
        config.interval
    };
    let mut next_prune = Instant::now() + prune_every;
    let mut next_sync = Instant::now();
    let mut synced_once = false;
    loop {
        let wake = if config.interval.is_zero() {
            next_prune
        } else {
            next_sync.min(next_prune)
        };
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep_until(wake.into()) => {}
        }
        if Instant::now() >= next_prune {
            let gone = sync.prune().await;
            tracing::debug!(
                forgotten = gone,
                held = sync.len(),
                "store sync: set pruned"
            );
            next_prune = Instant::now() + prune_every;
        }
        if config.interval.is_zero() || Instant::now() < next_sync {
            continue;
        }
        let Some(peer) = sync_peer(&handle, config.peer).await else {
            // Until a first session, look again soon; then wait a whole interval.
            next_sync = Instant::now()
                + if synced_once {
                    config.interval
                } else {
                    Duration::from_secs(1)
                };
            continue;
        };
        let started = Instant::now();
        match sync.sync_with(peer).await {
            Ok(report) => {
                synced_once = true;
                tracing::info!(
                    %peer,
                    rounds = report.rounds,
                    pushed = report.sent,
                    expected = report.expected,
                    bytes = report.reconciliation_bytes,
                    ms = started.elapsed().as_millis() as u64,
                    "store sync: session done"
                );
                next_sync = Instant::now() + config.interval;
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "store sync: session failed; another peer next time");
                next_sync = Instant::now() + config.interval.min(Duration::from_secs(30));
            }
        }
    }
}

/// The configured sync peer when connected, else a connected peer that serves store sync on
/// one of our shards (at random).
async fn sync_peer(
    handle: &super::NodeHandle,
    configured: Option<libp2p::PeerId>,
) -> Option<libp2p::PeerId> {
    let peers = handle.peers().await.ok()?;
    let serves = |p: &super::PeerInfo| {
        p.protocols
            .iter()
            .any(|x| x.as_str() == crate::store::sync::codec::RECONCILIATION.as_ref())
    };
    if let Some(c) = configured
        && peers.iter().any(|p| p.peer == c && serves(p))
    {
        return Some(c);
    }
    let ours = handle.shards();
    let candidates: Vec<libp2p::PeerId> = peers
        .iter()
        .filter(|p| serves(p))
        .filter(|p| {
            p.cluster.is_none_or(|c| c == u32::from(handle.cluster()))
                && (p.shards.is_empty() || p.shards.iter().any(|s| ours.contains(&(*s as u16))))
        })
        .map(|p| p.peer)
        .collect();
    use rand::seq::SliceRandom;
    candidates.choose(&mut rand::thread_rng()).copied()
}
