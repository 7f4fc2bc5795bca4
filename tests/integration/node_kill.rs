//! kill -9 at random points: the node process is killed with SIGKILL (no graceful stop) while
//! it publishes under load, while it syncs the membership tree, and while a keystore is
//! written, then restarted. Nothing acknowledged may be lost and no message id may be reused.
//! The seed of the random kill points is printed; `KILL_SEED=N` replays a run.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use alloy::{eips::BlockId, transports::http::reqwest};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;
use wakurln::{
    chain::devnet::Devnet as LocalChain,
    node::NodeEvent,
    rln::{field, identity::Identity, waku::RlnProofData},
    topics::{PubsubTopic, StaticShard},
};
use wakurln_keystore::{Kdf, Keystore};

use crate::common::{
    devnet::{self, Devnet, EPOCH, PASSWORD, circuit_dir},
    process::{NodeProcess, args},
};

const CLUSTER: u16 = 47;

fn rng() -> StdRng {
    let seed = std::env::var("KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().r#gen());
    eprintln!("kill points from seed {seed} (KILL_SEED={seed} replays them)");
    StdRng::seed_from_u64(seed)
}

/// The command line of a node syncing from `net`, keeping its data in `data`.
fn node_args(net: &Devnet, data: &Path) -> Vec<std::ffi::OsString> {
    let mut a = args([
        "--tcp-port",
        "0",
        "--cluster-id",
        &CLUSTER.to_string(),
        "--shard",
        "0",
        "--rln-rpc",
        &net.anvil.url,
        "--rln-contract",
        &net.contract.to_string(),
        "--rln-epoch-period",
        &EPOCH.to_string(),
        "--rln-poll-interval",
        "1",
        "--rln-follow-distance",
        "0",
    ]);
    a.extend(args(["--data-dir".into(), data.as_os_str().to_owned()]));
    a
}

/// The payloads and proofs in the archive file of a node that is not running.
fn archived(path: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare("SELECT payload, proof FROM messages").unwrap();
    stmt.query_map([], |r| {
        Ok((
            String::from_utf8(r.get::<_, Vec<u8>>(0)?).unwrap(),
            r.get::<_, Option<Vec<u8>>>(1)?,
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn topic() -> PubsubTopic {
    StaticShard::new(CLUSTER, 0).pubsub_topic()
}

/// Publishes through `rest` from `workers` concurrent callers until `stop` or the node dies;
/// every payload answered 200 goes into `acked`.
fn load(
    rest: &str,
    round: usize,
    workers: usize,
    acked: &Arc<Mutex<HashSet<String>>>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<HashMap<u16, usize>>> {
    let url = format!(
        "{rest}/relay/v1/messages/{}",
        topic().as_str().replace('/', "%2F")
    );
    (0..workers)
        .map(|w| {
            let (url, acked, stop) = (url.clone(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut statuses = HashMap::new();
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let payload = format!("round {round} caller {w} message {i}");
                    let body = json!({
                        "payload": B64.encode(&payload),
                        "contentTopic": "/kill/1/load/proto",
                    });
                    let Ok(res) = client.post(&url).json(&body).send().await else {
                        break; // the node is gone
                    };
                    let status = res.status().as_u16();
                    *statuses.entry(status).or_default() += 1;
                    if status == 200 {
                        acked.lock().unwrap().insert(payload);
                    } else if statuses.values().sum::<usize>() > 10_000 {
                        break;
                    }
                }
                statuses
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_publishing_the_node_loses_no_acknowledged_message_and_reuses_no_message_id() {
    let mut rng = rng();
    let net = Devnet::start("kill-publish", CLUSTER).await;
    let limit = 100;
    let (keystore, _) = net.member("publisher", limit).await;
    let observer = devnet::start(net.config("observer", None, &[])).await;
    let observer_address = devnet::address(&observer).await;

    // What the observer sees relayed, and any double signal it catches.
    let observed = Arc::new(Mutex::new(HashSet::new()));
    let spam = Arc::new(AtomicUsize::new(0));
    {
        let (observed, spam) = (observed.clone(), spam.clone());
        let mut delivered = observer.delivered();
        let mut events = observer.events();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Ok(d) = delivered.recv() => {
                        let text = String::from_utf8(d.message.payload().to_vec()).unwrap();
                        observed.lock().unwrap().insert(text);
                    }
                    Ok(e) = events.recv() => {
                        if matches!(e, NodeEvent::Spam { .. }) {
                            spam.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    else => break,
                }
            }
        });
    }

    let password = net.dir.join("password");
    std::fs::write(&password, PASSWORD).unwrap();
    let data = net.dir.join("publisher-node");
    let mut a = node_args(&net, &data);
    a.extend(args([
        "--store",
        "--static-peer",
        &observer_address.to_string(),
    ]));
    a.extend(args([
        "--rln-keystore".into(),
        keystore.as_os_str().to_owned(),
        "--rln-password-file".into(),
        password.as_os_str().to_owned(),
        "--circuit-dir".into(),
        circuit_dir().into_os_string(),
    ]));
    let log = net.dir.join("publisher.log");
    let archive = data.join("archive.sqlite");

    let acked = Arc::new(Mutex::new(HashSet::new()));
    let rounds = 3;
    for round in 0..rounds {
        let node = NodeProcess::spawn(&a, &log);
        node.wait_synced(|_| true).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while observer.mesh_peers(topic()).await.unwrap() == 0 {
            assert!(Instant::now() < deadline, "no mesh with the publisher");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Kill once a random number of this round's messages were acknowledged, with the
        // callers' next requests in flight.
        let kill_at = acked.lock().unwrap().len() + rng.gen_range(1..=6);
        let stop = Arc::new(AtomicBool::new(false));
        let workers = load(&node.rest, round, 3, &acked, &stop);
        let deadline = Instant::now() + Duration::from_secs(120);
        while acked.lock().unwrap().len() < kill_at {
            assert!(
                Instant::now() < deadline,
                "publishing stalled:\n{}",
                node.log_text()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        node.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            let statuses = w.await.unwrap();
            assert!(
                statuses.keys().all(|s| *s == 200),
                "only successes before the kill: {statuses:?}"
            );
        }

        let stored = archived(&archive);
        let payloads: HashSet<&str> = stored.iter().map(|(p, _)| p.as_str()).collect();
        let acked_now = acked.lock().unwrap().clone();
        let lost: Vec<_> = acked_now
            .iter()
            .filter(|p| !payloads.contains(p.as_str()))
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged, then lost: {lost:?}"
        );
        let observed_now = observed.lock().unwrap().clone();
        let unarchived: Vec<_> = observed_now
            .iter()
            .filter(|p| !payloads.contains(p.as_str()))
            .collect();
        assert!(
            unarchived.is_empty(),
            "round {round}: relayed to a peer, then lost: {unarchived:?}"
        );
        // Every message that ever left carries its own (epoch, nullifier): no id reused.
        let mut nullifiers = HashSet::new();
        for (payload, proof) in &stored {
            let proof = RlnProofData::decode(proof.as_deref().expect("a proof")).unwrap();
            assert!(
                nullifiers.insert((proof.epoch, proof.nullifier)),
                "round {round}: a message id was used twice (seen again with {payload:?})"
            );
        }
        assert!(stored.len() <= limit as usize);
        eprintln!(
            "round {round}: killed after {} acknowledged; {} archived, {} relayed to the observer",
            acked_now.len(),
            stored.len(),
            observed_now.len()
        );
    }
    assert!(
        !observed.lock().unwrap().is_empty(),
        "the observer got messages"
    );

    // A graceful stop writes what the archive queue holds and says so.
    let node = NodeProcess::spawn(&a, &log);
    node.wait_synced(|_| true).await;
    let before = acked.lock().unwrap().len();
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&node.rest, rounds, 2, &acked, &stop);
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().unwrap().len() < before + 2 {
        assert!(Instant::now() < deadline, "publishing stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let log_text = {
        let pid = node.pid();
        let status = node.terminate();
        assert!(
            status.success(),
            "SIGTERM is a clean stop: {status} (pid {pid})"
        );
        std::fs::read_to_string(&log).unwrap()
    };
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let last_run = &log_text[log_text.rfind("starting the node").unwrap()..];
    assert!(
        last_run.contains("queued messages written; nothing was lost")
            && last_run.contains("stopped"),
        "{last_run}"
    );
    let stored = archived(&archive);
    let payloads: HashSet<&str> = stored.iter().map(|(p, _)| p.as_str()).collect();
    for p in acked.lock().unwrap().iter() {
        assert!(payloads.contains(p.as_str()), "{p} lost at a graceful stop");
    }
    assert_eq!(
        spam.load(Ordering::Relaxed),
        0,
        "no double signal reached the observer"
    );
    observer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_syncing_the_node_resumes_its_tree_exactly() {
    let mut rng = rng();
    let net = Devnet::start("kill-sync", CLUSTER).await;
    let client = Arc::new(net.client().await);
    for _ in 0..20 {
        LocalChain::register(&client, &Identity::generate(), 1)
            .await
            .unwrap();
    }
    // Registrations keep coming while the node syncs, is killed and restarts.
    let registering = Arc::new(AtomicBool::new(true));
    let registrar = {
        let (client, registering) = (client.clone(), registering.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while registering.load(Ordering::Relaxed) {
                LocalChain::register(&client, &Identity::generate(), 1)
                    .await
                    .unwrap();
                n += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            n
        })
    };
    let data = net.dir.join("syncing-node");
    let a = node_args(&net, &data);
    let log = net.dir.join("syncing.log");
    let mut last_seen = None;
    for round in 0..4 {
        let node = NodeProcess::spawn(&a, &log);
        let text = node.log_text();
        let this_run = &text[text.rfind("starting the node").unwrap()..];
        if let Some(seen) = last_seen {
            // The tree came back from the data directory at or after the block the node
            // reported before it was killed: no resync from the contract's first block.
            let resumed = this_run
                .lines()
                .find(|l| l.contains("membership tree restored from the data directory"))
                .unwrap_or_else(|| panic!("round {round}: no resume:\n{this_run}"));
            let block: u64 = resumed
                .split("block=")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no block in {resumed}"));
            assert!(block >= seen, "resumed at {block}, had reached {seen}");
        }
        // Kill at a random point: after a random number of further sync steps.
        let first = node.wait_synced(|_| true).await;
        let steps = rng.gen_range(0..4);
        let target = first["block"].as_u64().unwrap() + steps;
        let rln = node
            .wait_synced(|r| r["block"].as_u64().unwrap() >= target)
            .await;
        last_seen = Some(rln["block"].as_u64().unwrap());
        node.kill9();
    }
    registering.store(false, Ordering::Relaxed);
    let registered = registrar.await.unwrap();
    assert!(registered > 0);

    // The restarted tree equals the contract's, at the block the node reports.
    let node = NodeProcess::spawn(&a, &log);
    let head = {
        use alloy::providers::Provider;
        client.provider().get_block_number().await.unwrap()
    };
    let rln = node
        .wait_synced(|r| r["block"].as_u64().unwrap() >= head)
        .await;
    let block = rln["block"].as_u64().unwrap();
    let contract_root = client
        .contract()
        .root()
        .block(BlockId::number(block))
        .call()
        .await
        .unwrap();
    let contract_root =
        field::to_decimal(&field::from_le_bytes(&contract_root.to_le_bytes::<32>()).unwrap());
    assert_eq!(rln["root"], contract_root.as_str(), "at block {block}");
    assert_eq!(rln["members"].as_u64().unwrap(), 20 + registered);
    let text = node.log_text();
    assert_eq!(
        text.matches("no membership tree stored yet").count(),
        1,
        "only the first start read the tree from scratch:\n{text}"
    );
    node.kill9();
}

#[test]
fn an_interrupted_keystore_write_leaves_the_old_file_intact() {
    let mut rng = rng();
    let dir = std::env::temp_dir().join(format!("wakurln-kill-keystore-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A source with one credential, and a large keystore (its write takes a while) built by
    // copying that credential's encrypted entry under many keys.
    let source = dir.join("source.json");
    let credential = wakurln::credentials::to_stored(&Identity::generate());
    let key = Keystore::add(
        &source,
        &wakurln_keystore::MembershipCredential::pending(credential),
        PASSWORD.as_bytes(),
        Kdf::default(),
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    let entry = Keystore::open(&source)
        .unwrap()
        .raw_entry(&key)
        .unwrap()
        .clone();
    let target = dir.join("big.json");
    Keystore::modify(&target, |ks| {
        for i in 0..4_000 {
            ks.insert_raw(&format!("{i:064x}"), entry.clone())?;
        }
        Ok(())
    })
    .unwrap();
    let import = |key: &str| {
        Command::new(env!("CARGO_BIN_EXE_wakurln"))
            .args(["keystore", "import", "--path"])
            .arg(&target)
            .arg("--from")
            .arg(&source)
            .args(["--key", key])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // How long one uninterrupted write takes.
    let started = Instant::now();
    assert!(import(&key).wait().unwrap().success());
    let whole = started.elapsed();
    let mut count = 4_001;
    let mut interrupted = 0;
    for i in 0..20 {
        // Each run imports the credential under a new key: rename the one there first.
        let new_key = format!("{:064x}", 10_000 + i);
        Keystore::modify(&source, |ks| {
            let e = ks.remove(&Keystore::open(&source)?.entries()[0].key.clone())?;
            ks.insert_raw(&new_key, e)
        })
        .unwrap();
        let mut child = import(&new_key);
        std::thread::sleep(whole.mul_f64(rng.gen_range(0.0..1.2)));
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        let _ = child.kill();
        child.wait().unwrap();
        let ks = Keystore::open(&target)
            .unwrap_or_else(|e| panic!("run {i}: the keystore is damaged: {e}"));
        let n = ks.entries().len();
        assert!(
            n == count || n == count + 1,
            "run {i}: {n} credentials, expected {count} or one more"
        );
        count = n;
        ks.decrypt(&ks.entries()[n - 1].key, PASSWORD.as_bytes())
            .unwrap();
    }
    eprintln!("{interrupted} of 20 imports were killed while running (one takes {whole:?})");
    assert!(interrupted > 0, "no run was interrupted");
    // The next write removes the temporary files killed writers left.
    assert!(import(&key).wait().unwrap().success() || Keystore::open(&target).is_ok());
    Keystore::modify(&target, |_| Ok(())).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(dir);
}
