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
                path.send_replace(paths);
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
        let a = archive.clone();
        if let Ok(Ok(topics)) = tokio::task::spawn_blocking(move || a.per_topic()).await {
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
        let a = archive.clone();
        let now = crate::clock::now_ns();
        match tokio::task::spawn_blocking(move || a.enforce(retention, now, 5_000)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(deleted = n, "archive retention"),
            Ok(Err(e)) => tracing::warn!(error = %e, "archive retention failed"),
            Err(_) => return,
        }
    }
}
