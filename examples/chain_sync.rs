//! Measures the chain sync on a local anvil: the initial sync of many memberships (time and
//! peak memory of this process) and the time to apply a new block's events.
//!
//! ```text
//! cargo run --release --example chain_sync -- [MEMBERS] [NEW_BLOCKS]
//! ```
//!
//! MEMBERS (default 100,000) are registered first through the testing contract's bulk helper;
//! that setup is not timed. Needs anvil from `npm ci --prefix contracts`.

use std::{str::FromStr, time::Instant};

use alloy::{primitives::U256, signers::local::PrivateKeySigner};
use wakurln::{
    chain::{
        ChainClient, Endpoint,
        anvil::{Anvil, project_binary},
        bindings::MembershipForTesting,
        deploy::{self, Terms, Variant},
        membership,
        sync::{SyncConfig, Syncer},
    },
    rln::{field, identity::Identity},
};

/// anvil's first development key (public, funded on every fresh anvil chain).
const DEV_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
/// Members per bulk registration transaction.
const PER_TX: usize = 5_000;

/// Peak resident memory of this process in MiB since the last reset.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Resets the peak to the current resident memory (Linux >= 4.0).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let members: usize = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let new_blocks: usize = args.next().map_or(Ok(20), |a| a.parse())?;
    let anvil = Anvil::start(
        &project_binary(),
        &["--gas-limit", "1000000000", "--code-size-limit", "100000"],
    )?;
    let signer = PrivateKeySigner::from_str(DEV_KEY)?;
    let terms = Terms {
        max_total_rate_limit: u32::MAX,
        ..Terms::waku_network(U256::from(1u64))
    };
    let d = deploy::deploy(
        &Endpoint(anvil.url.clone()),
        signer.clone(),
        terms,
        Variant::Testing,
        &[signer.address()],
        U256::from(10u64).pow(U256::from(24u64)),
    )
    .await?;
    let client = ChainClient::connect(
        &[Endpoint(anvil.url.clone())],
        d.contract,
        None,
        Some(signer),
    )
    .await?;
    let bulk = MembershipForTesting::new(d.contract, client.provider().clone());
    let setup = Instant::now();
    let mut rng = rand::thread_rng();
    let mut done = 0;
    while done < members {
        let n = PER_TX.min(members - done);
        let ids = (0..n)
            .map(|_| {
                U256::from_le_bytes(field::to_le_bytes(&Identity::random(&mut rng).commitment))
            })
            .collect();
        let pending = bulk.registerBatchForTesting(ids, 20).send().await?;
        deploy::mined(client.provider(), *pending.tx_hash()).await?;
        done += n;
        eprintln!("setup: {done}/{members} members registered");
    }
    eprintln!("setup took {:.1} s", setup.elapsed().as_secs_f64());

    let dir = std::env::temp_dir().join(format!("wakurln-sync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("tree.sqlite");
    let config = SyncConfig {
        follow_distance: 0,
        leaves_per_call: 10_000,
        ..SyncConfig::default()
    };
    reset_peak();
    let base = peak_mib();
    let started = Instant::now();
    let mut syncer = Syncer::open(client, &db, config).await?;
    let status = syncer.step().await?;
    let initial = started.elapsed().as_secs_f64();
    let peak = peak_mib();
    println!(
        "initial sync: {} members in {initial:.2} s; peak memory {peak:.0} MiB ({:.0} MiB above the process before the sync)",
        status.members,
        peak - base
    );

    // One registration per block, then the step that applies it.
    let mut times = Vec::with_capacity(new_blocks);
    for _ in 0..new_blocks {
        let plan =
            membership::plan_register(syncer.client(), Identity::generate().commitment, 20).await?;
        membership::register(syncer.client(), &plan).await?;
        let t = Instant::now();
        let s = syncer.step().await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(s.applied >= 1);
    }
    let max = times.iter().copied().fold(0.0, f64::max);
    println!(
        "new block applied (events, store, tree, root check): median {:.1} ms, max {max:.1} ms over {new_blocks} blocks",
        median(&mut times)
    );
    let restart = Instant::now();
    drop(syncer);
    let client =
        ChainClient::connect(&[Endpoint(anvil.url.clone())], d.contract, None, None).await?;
    let mut syncer = Syncer::open(
        client,
        &db,
        SyncConfig {
            follow_distance: 0,
            ..SyncConfig::default()
        },
    )
    .await?;
    syncer.step().await?;
    println!(
        "restart from the store (no refetch): {:.2} s",
        restart.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
