//! The membership contract on a real anvil chain: deploy and register from the CLI, sync the
//! tree and find the member under the contract's root, erase and extend, errors users meet,
//! a reorganisation rolled back, and a sync killed mid-way that resumes.

use crate::common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    str::FromStr,
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, U256},
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use common::{ANVIL_KEYS, anvil as start_anvil};
use serde_json::Value;
use wakurln::chain::anvil::Anvil;
use wakurln::{
    chain::{
        ChainClient, ChainError, Endpoint,
        bindings::MembershipForTesting,
        membership,
        sync::{SyncConfig, Syncer},
    },
    rln::{
        field::{self, Fr},
        identity::{Identity, rate_commitment},
    },
};

const PASSWORD: &str = "correct horse";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wakurln-chain-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn wakurln(args: &[&str], private_key: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wakurln"));
    cmd.args(args)
        .env("WAKURLN_KEYSTORE_PASSWORD", PASSWORD)
        .env_remove("WAKURLN_PRIVATE_KEY")
        .env_remove("WAKURLN_RPC")
        .env_remove("WAKURLN_CONTRACT")
        .stdin(Stdio::null());
    if let Some(key) = private_key {
        cmd.env("WAKURLN_PRIVATE_KEY", key);
    }
    cmd.output().expect("run wakurln")
}

fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "wakurln failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.trim();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("JSON on stdout ({e}): {stdout}"))
}

/// The exit code and the `error:` line of a failed run.
fn failure(out: &Output) -> (i32, String) {
    assert!(!out.status.success(), "expected a failure");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("an error line in {stderr:?}"))
        .to_owned();
    (out.status.code().unwrap(), line)
}

fn address_of(key: &str) -> Address {
    PrivateKeySigner::from_str(key).unwrap().address()
}

/// Deploys with the deployer key (anvil account 0), funding account 1 with tokens.
fn deploy(anvil: &Anvil, extra: &[&str]) -> Value {
    let funded = address_of(ANVIL_KEYS[1]).to_string();
    let mut args = vec!["contract", "deploy", "--rpc", &anvil.url, "--fund", &funded];
    args.extend_from_slice(extra);
    ok_json(&wakurln(&args, Some(ANVIL_KEYS[0])))
}

async fn client(anvil: &Anvil, contract: &str, key: Option<&str>) -> ChainClient {
    ChainClient::connect(
        &[Endpoint(anvil.url.clone())],
        contract.parse().unwrap(),
        None,
        key.map(|k| PrivateKeySigner::from_str(k).unwrap()),
    )
    .await
    .unwrap()
}

async fn contract_root(client: &ChainClient) -> Fr {
    let root = client.contract().root().call().await.unwrap();
    field::from_le_bytes(&root.to_le_bytes::<32>()).unwrap()
}

async fn rpc(anvil: &Anvil, method: &'static str, params: Value) -> Value {
    let provider = ProviderBuilder::new().connect_http(anvil.url.parse().unwrap());
    provider
        .raw_request::<_, Value>(method.into(), params)
        .await
        .unwrap()
}

fn sync_config() -> SyncConfig {
    SyncConfig {
        follow_distance: 0,
        ..SyncConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_from_the_cli_then_find_the_member_in_a_synced_tree() {
    let anvil = start_anvil(&[]);
    let dir = temp_dir("register");
    let deployed = deploy(&anvil, &[]);
    let contract = deployed["contract"].as_str().unwrap().to_owned();
    let keystore = dir.join("keystore.json");
    let base = [
        "--rpc",
        anvil.url.as_str(),
        "--contract",
        contract.as_str(),
        "--keystore",
        s(&keystore),
    ];

    // A dry run sends nothing and writes no keystore.
    let mut args = vec!["membership", "register", "--rate-limit", "20", "--dry-run"];
    args.extend_from_slice(&base);
    let dry = ok_json(&wakurln(&args, Some(ANVIL_KEYS[1])));
    assert_eq!(dry["dryRun"], true);
    let txs = dry["transactions"].as_array().unwrap();
    assert_eq!(txs.len(), 2, "approve, then register: {dry}");
    assert!(txs[1]["data"].as_str().unwrap().starts_with("0x"));
    assert!(!keystore.exists());
    let c = client(&anvil, &contract, None).await;
    let nonce = c
        .provider()
        .get_transaction_count(address_of(ANVIL_KEYS[1]))
        .await
        .unwrap();
    assert_eq!(nonce, 0, "a dry run sends no transaction");

    // Register a new identity: approve, register, filed under its membership key.
    let mut args = vec!["membership", "register", "--rate-limit", "20"];
    args.extend_from_slice(&base);
    let registered = ok_json(&wakurln(&args, Some(ANVIL_KEYS[1])));
    assert_eq!(registered["index"], 0);
    let key = registered["key"].as_str().unwrap().to_owned();
    let list = wakurln(&["keystore", "list", "--path", s(&keystore)], None);
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(list.contains(&key) && list.contains("index 0"), "{list}");
    assert!(!list.contains("pending"), "{list}");

    // A second identity from `keystore new` is registered from its pending credential.
    let new = ok_json(&wakurln(&["keystore", "new", "--path", s(&keystore)], None));
    let mut args = vec!["membership", "register", "--rate-limit", "100"];
    args.extend_from_slice(&base);
    let second = ok_json(&wakurln(&args, Some(ANVIL_KEYS[1])));
    assert_eq!(second["index"], 1);
    assert_eq!(second["idCommitment"], new["idCommitment"]);

    // The synced tree holds both rate commitments and its root is the contract's.
    let db = dir.join("tree.sqlite");
    let synced = ok_json(&wakurln(
        &[
            "tree",
            "sync",
            "--rpc",
            &anvil.url,
            "--contract",
            &contract,
            "--db",
            s(&db),
            "--follow-distance",
            "0",
        ],
        None,
    ));
    assert_eq!(synced["members"], 2);
    assert_eq!(
        synced["root"].as_str().unwrap(),
        field::to_decimal(&contract_root(&c).await)
    );
    let mut syncer = Syncer::open(c, &db, sync_config()).await.unwrap();
    syncer.step().await.unwrap();
    for (entry, limit) in [(&registered, 20), (&second, 100)] {
        let commitment = field::parse(entry["idCommitment"].as_str().unwrap()).unwrap();
        let index = entry["index"].as_u64().unwrap() as usize;
        assert_eq!(
            syncer.tree().leaf(index),
            rate_commitment(commitment, limit)
        );
        let proof = syncer.tree().proof(index).unwrap();
        assert_eq!(
            proof.root_for(rate_commitment(commitment, limit)),
            syncer.tree().root()
        );
    }

    // Status from the keystore (the one credential of this contract needs --key now).
    let status = ok_json(&wakurln(
        &[
            "membership",
            "status",
            "--rpc",
            &anvil.url,
            "--contract",
            &contract,
            "--keystore",
            s(&keystore),
            "--key",
            &key,
        ],
        None,
    ));
    assert_eq!(status["state"], "active");
    assert_eq!(status["rateLimit"], 20);
    assert_eq!(status["index"], 0);
    assert_eq!(status["holder"], address_of(ANVIL_KEYS[1]).to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_users_meet_are_one_sentence_that_says_what_to_do() {
    let anvil = start_anvil(&[]);
    let dir = temp_dir("errors");
    let deployed = deploy(&anvil, &[]);
    let contract = deployed["contract"].as_str().unwrap().to_owned();
    let keystore = dir.join("keystore.json");
    let register = |rpc: &str, contract: &str, limit: &str, extra: &[&str], key: &str| {
        let mut args = vec![
            "membership",
            "register",
            "--rpc",
            rpc,
            "--contract",
            contract,
            "--keystore",
            s(&keystore),
            "--rate-limit",
            limit,
        ];
        args.extend_from_slice(extra);
        wakurln(&args, Some(key))
    };

    let (code, line) = failure(&register(
        "http://127.0.0.1:1",
        &contract,
        "20",
        &[],
        ANVIL_KEYS[1],
    ));
    assert_eq!(code, 1);
    assert!(
        line.contains("cannot reach the Ethereum RPC endpoint"),
        "{line}"
    );

    let (code, line) = failure(&register(
        &anvil.url,
        &contract,
        "20",
        &["--chain-id", "59141"],
        ANVIL_KEYS[1],
    ));
    assert_eq!(code, 2);
    assert!(
        line.contains("serves chain 31337, not chain 59141"),
        "{line}"
    );

    let nowhere = Address::repeat_byte(0x42).to_string();
    let (code, line) = failure(&register(&anvil.url, &nowhere, "20", &[], ANVIL_KEYS[1]));
    assert_eq!(code, 2);
    assert!(line.contains("there is no contract at"), "{line}");

    let (code, line) = failure(&register(&anvil.url, &contract, "5", &[], ANVIL_KEYS[1]));
    assert_eq!(code, 2);
    assert!(
        line.contains("outside the contract's range 20..=600"),
        "{line}"
    );

    // Account 2 has ETH but no deposit tokens.
    let (code, line) = failure(&register(&anvil.url, &contract, "20", &[], ANVIL_KEYS[2]));
    assert_eq!(code, 1);
    assert!(line.contains("acquire more of the token"), "{line}");
    assert!(!keystore.exists(), "nothing is stored when nothing is sent");

    // A fresh account with tokens but no ETH for gas.
    let broke = PrivateKeySigner::random();
    let broke_key = format!("0x{}", hex::encode(broke.to_bytes()));
    let c = client(&anvil, &contract, Some(ANVIL_KEYS[0])).await;
    let token = membership::deposit_token(&c).await.unwrap();
    let test_token = wakurln::chain::bindings::TestToken::new(token, c.provider().clone());
    let mint = test_token.mint(broke.address(), U256::from(10u64).pow(U256::from(24u64)));
    mint.send().await.unwrap().get_receipt().await.unwrap();
    let out = register(&anvil.url, &contract, "20", &[], &broke_key);
    let (code, line) = failure(&out);
    assert_eq!(code, 1);
    assert!(
        line.contains("has no ETH to pay for the transaction"),
        "{line}"
    );
    // The identity was stored before sending and is still pending: nothing was lost.
    let list = wakurln(&["keystore", "list", "--path", s(&keystore)], None);
    assert!(String::from_utf8_lossy(&list.stdout).contains("pending registration"));

    // Registering a commitment twice is refused before anything is sent.
    let identity = Identity::generate();
    let member = client(&anvil, &contract, Some(ANVIL_KEYS[1])).await;
    let plan = membership::plan_register(&member, identity.commitment, 20)
        .await
        .unwrap();
    membership::register(&member, &plan).await.unwrap();
    let again = membership::plan_register(&member, identity.commitment, 20).await;
    assert!(
        matches!(again, Err(ChainError::AlreadyRegistered)),
        "{again:?}"
    );
    // And by the contract's typed error when sent anyway.
    let err = membership::send_all(&member, &plan.transactions[plan.transactions.len() - 1..])
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::AlreadyRegistered), "{err:?}");
    assert!(err.to_string().contains("keystore new"));

    // Erasing an active membership is refused with the contract's reason.
    let erase = membership::erase_transaction(&member, identity.commitment);
    let err = membership::send_all(&member, &[erase]).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("an active membership cannot be erased"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_in_the_grace_period_and_erase_zeroes_the_leaf() {
    let anvil = start_anvil(&[]);
    let dir = temp_dir("erase");
    let deployed = deploy(
        &anvil,
        &["--active-duration", "100", "--grace-period", "1000"],
    );
    let contract = deployed["contract"].as_str().unwrap().to_owned();
    let keystore = dir.join("keystore.json");
    let common = [
        "--rpc",
        anvil.url.as_str(),
        "--contract",
        contract.as_str(),
        "--keystore",
        s(&keystore),
    ];
    let mut args = vec!["membership", "register", "--rate-limit", "50"];
    args.extend_from_slice(&common);
    let registered = ok_json(&wakurln(&args, Some(ANVIL_KEYS[1])));
    let commitment = field::parse(registered["idCommitment"].as_str().unwrap()).unwrap();
    let index = registered["index"].as_u64().unwrap() as usize;

    let c = client(&anvil, &contract, None).await;
    let db = dir.join("tree.sqlite");
    let mut syncer = Syncer::open(c, &db, sync_config()).await.unwrap();
    syncer.step().await.unwrap();
    assert_eq!(syncer.tree().leaf(index), rate_commitment(commitment, 50));

    // Into the grace period: extend (by the holder) makes it active again.
    rpc(&anvil, "evm_increaseTime", serde_json::json!([150])).await;
    rpc(&anvil, "evm_mine", serde_json::json!([])).await;
    let status = |which: &'static str| {
        let mut args = vec!["membership", which];
        args.extend_from_slice(&common);
        args
    };
    assert_eq!(
        ok_json(&wakurln(&status("status"), None))["state"],
        "grace-period"
    );
    let extend = wakurln(&status("extend"), Some(ANVIL_KEYS[2]));
    let (_, line) = failure(&extend);
    assert!(line.contains("only the account that registered"), "{line}");
    ok_json(&wakurln(&status("extend"), Some(ANVIL_KEYS[1])));
    assert_eq!(
        ok_json(&wakurln(&status("status"), None))["state"],
        "active"
    );
    let (_, line) = failure(&wakurln(&status("erase"), Some(ANVIL_KEYS[1])));
    assert!(line.contains("cannot be erased"), "{line}");

    // Past the extension into grace again: the holder erases; the leaf becomes 0.
    rpc(&anvil, "evm_increaseTime", serde_json::json!([1200])).await;
    rpc(&anvil, "evm_mine", serde_json::json!([])).await;
    let mut dry = status("erase");
    dry.push("--dry-run");
    assert_eq!(ok_json(&wakurln(&dry, Some(ANVIL_KEYS[1])))["dryRun"], true);
    ok_json(&wakurln(&status("erase"), Some(ANVIL_KEYS[1])));
    assert_eq!(ok_json(&wakurln(&status("status"), None))["state"], "none");
    let step = syncer.step().await.unwrap();
    assert_eq!(step.applied, 1);
    assert_eq!(syncer.tree().leaf(index), Fr::from(0u64));
    assert_eq!(step.members, 0);
    assert_eq!(syncer.tree().root(), contract_root(syncer.client()).await);

    // The deposit comes back to the holder.
    let before = wakurln::chain::bindings::IERC20::new(
        deployed["token"].as_str().unwrap().parse().unwrap(),
        syncer.client().provider().clone(),
    );
    let held = before
        .balanceOf(address_of(ANVIL_KEYS[1]))
        .call()
        .await
        .unwrap();
    let w = wakurln(
        &[
            "membership",
            "withdraw",
            "--rpc",
            &anvil.url,
            "--contract",
            &contract,
        ],
        Some(ANVIL_KEYS[1]),
    );
    ok_json(&w);
    let after = before
        .balanceOf(address_of(ANVIL_KEYS[1]))
        .call()
        .await
        .unwrap();
    assert_eq!(
        after - held,
        U256::from(50u64) * U256::from(1_000_000_000_000_000u64)
    );
}

async fn register_direct(client: &ChainClient) -> (Fr, u32) {
    let identity = Identity::generate();
    let plan = membership::plan_register(client, identity.commitment, 20)
        .await
        .unwrap();
    let r = membership::register(client, &plan).await.unwrap();
    (identity.commitment, r.index)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorganisation_rolls_the_tree_back() {
    let anvil = start_anvil(&[]);
    let dir = temp_dir("reorg");
    let deployed = deploy(&anvil, &[]);
    let contract = deployed["contract"].as_str().unwrap().to_owned();
    let member = client(&anvil, &contract, Some(ANVIL_KEYS[1])).await;
    let (a, a_index) = register_direct(&member).await;

    let mut syncer = Syncer::open(
        client(&anvil, &contract, None).await,
        &dir.join("tree.sqlite"),
        sync_config(),
    )
    .await
    .unwrap();
    syncer.step().await.unwrap();
    let root_a = syncer.tree().root();

    // A branch that will be abandoned: B registers and the syncer follows it.
    let snapshot = rpc(&anvil, "evm_snapshot", serde_json::json!([])).await;
    let (b, b_index) = register_direct(&member).await;
    for _ in 0..3 {
        rpc(&anvil, "evm_mine", serde_json::json!([])).await;
    }
    let on_branch = syncer.step().await.unwrap();
    assert_eq!(on_branch.members, 2);
    let root_ab = syncer.tree().root();
    assert!(syncer.roots().contains(&root_ab));

    // The chain drops the branch; C registers instead at B's index and the chain grows past
    // the old height, so every stored block hash after the fork is now wrong.
    assert_eq!(
        rpc(&anvil, "evm_revert", serde_json::json!([snapshot])).await,
        Value::Bool(true)
    );
    let (c, c_index) = register_direct(&member).await;
    assert_eq!(c_index, b_index);
    for _ in 0..6 {
        rpc(&anvil, "evm_mine", serde_json::json!([])).await;
    }
    let after = syncer.step().await.unwrap();
    assert!(after.rolled_back > 0, "{after:?}");
    assert_eq!(after.members, 2);
    assert_eq!(syncer.tree().leaf(a_index as usize), rate_commitment(a, 20));
    assert_eq!(syncer.tree().leaf(c_index as usize), rate_commitment(c, 20));
    assert_ne!(syncer.tree().leaf(b_index as usize), rate_commitment(b, 20));
    assert_eq!(syncer.tree().root(), contract_root(syncer.client()).await);
    assert!(
        !syncer.roots().contains(&root_ab),
        "a root of the abandoned branch is no longer accepted"
    );
    assert_ne!(root_a, syncer.tree().root());

    // A restart from the store gives the same tree.
    let root = syncer.tree().root();
    drop(syncer);
    let reopened = Syncer::open(
        client(&anvil, &contract, None).await,
        &dir.join("tree.sqlite"),
        sync_config(),
    )
    .await
    .unwrap();
    assert_eq!(reopened.tree().root(), root);
}

/// Registers `count` members through the testing contract's bulk helper.
async fn bulk_register(client: &ChainClient, count: usize, per_tx: usize) -> Vec<Fr> {
    let bulk = MembershipForTesting::new(client.contract_address(), client.provider().clone());
    let mut commitments = Vec::with_capacity(count);
    let mut rng = rand::thread_rng();
    while commitments.len() < count {
        let n = per_tx.min(count - commitments.len());
        let batch: Vec<Fr> = (0..n)
            .map(|_| Identity::random(&mut rng).commitment)
            .collect();
        let ids = batch
            .iter()
            .map(|c| U256::from_le_bytes(field::to_le_bytes(c)))
            .collect();
        bulk.registerBatchForTesting(ids, 20)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        commitments.extend(batch);
    }
    commitments
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_mid_way_resumes_and_reaches_the_contract_root() {
    let anvil = start_anvil(&["--gas-limit", "300000000"]);
    let dir = temp_dir("resume");
    let deployed = deploy(
        &anvil,
        &["--testing", "--max-total-rate-limit", "4000000000"],
    );
    let contract = deployed["contract"].as_str().unwrap().to_owned();
    let deployer = client(&anvil, &contract, Some(ANVIL_KEYS[0])).await;
    let count: u32 = 2_000;
    let commitments = bulk_register(&deployer, count as usize, 1_000).await;
    let db = dir.join("tree.sqlite");
    let sync_args = [
        "tree",
        "sync",
        "--rpc",
        anvil.url.as_str(),
        "--contract",
        contract.as_str(),
        "--db",
        s(&db),
        "--follow-distance",
        "0",
        "--leaves-per-call",
        "10",
    ];

    // Kill the syncer once some batches, not all, are stored.
    let mut child = Command::new(env!("CARGO_BIN_EXE_wakurln"))
        .args(sync_args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let stored = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the sync made no progress"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sync finished before it could be killed"
        );
        if let Some(next) = initial_next(&db)
            && next >= 100
        {
            break next;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = initial_next(&db).expect("progress survives the kill");
    assert!(
        at_kill >= stored && at_kill < count,
        "killed mid-way: {at_kill} of {count}"
    );

    // The restart continues from the stored batches rather than from 0.
    let out = Command::new(env!("CARGO_BIN_EXE_wakurln"))
        .args(sync_args)
        .env("RUST_LOG", "wakurln=info")
        .output()
        .unwrap();
    let synced = ok_json(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("resuming the initial sync") && log.contains(&format!("next={at_kill}")),
        "{log}"
    );
    assert_eq!(synced["members"], count);
    assert_eq!(
        synced["root"].as_str().unwrap(),
        field::to_decimal(&contract_root(&deployer).await)
    );
    // And the tree holds exactly the registered rate commitments.
    let syncer = Syncer::open(deployer, &db, sync_config()).await.unwrap();
    for (i, c) in commitments.iter().enumerate().step_by(97) {
        assert_eq!(syncer.tree().leaf(i), rate_commitment(*c, 20));
    }
}

/// The next leaf index of an interrupted initial sync, read from the store as another
/// process would.
fn initial_next(db: &Path) -> Option<u32> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.query_row(
        "SELECT value FROM meta WHERE key = 'initial_next'",
        [],
        |r| r.get::<_, String>(0),
    )
    .ok()?
    .parse()
    .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_fails_over_and_a_damaged_store_is_reported_loudly() {
    let anvil = start_anvil(&[]);
    let dir = temp_dir("failover");
    let deployed = deploy(&anvil, &[]);
    let contract = deployed["contract"].as_str().unwrap().to_owned();
    let member = client(&anvil, &contract, Some(ANVIL_KEYS[1])).await;
    register_direct(&member).await;
    let db = dir.join("tree.sqlite");
    // The first endpoint refuses connections; the second answers.
    let synced = ok_json(&wakurln(
        &[
            "tree",
            "sync",
            "--rpc",
            "http://127.0.0.1:1",
            "--rpc",
            &anvil.url,
            "--contract",
            &contract,
            "--db",
            s(&db),
            "--follow-distance",
            "0",
        ],
        None,
    ));
    assert_eq!(synced["members"], 1);

    // Damage a stored leaf behind the syncer's back: the next step says the roots differ.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE leaves SET value = ?1 WHERE idx = 0",
        [vec![7u8; 32]],
    )
    .unwrap();
    drop(conn);
    let out = wakurln(
        &[
            "tree",
            "sync",
            "--rpc",
            &anvil.url,
            "--contract",
            &contract,
            "--db",
            s(&db),
            "--follow-distance",
            "0",
        ],
        None,
    );
    let (code, line) = failure(&out);
    assert_eq!(code, 1);
    assert!(
        line.contains("disagrees with the contract") && line.contains("delete it to resync"),
        "{line}"
    );
}

alloy::sol! {
    /// WakuRlnV2's erasure with the clean-up flag, which the node's bindings leave out.
    #[sol(rpc)]
    interface FullErase {
        function eraseMemberships(uint256[] calldata idCommitments, bool eraseFromMembershipSet) external;
    }
}

fn to_u256(value: &Fr) -> U256 {
    U256::from_le_bytes(field::to_le_bytes(value))
}

/// The `newRoot` of every RootStored event of `contract`, oldest first.
async fn stored_roots(client: &ChainClient) -> Vec<Fr> {
    use alloy::sol_types::SolEvent;
    use wakurln::chain::bindings::WakuRlnV2::RootStored;
    let filter = alloy::rpc::types::Filter::new()
        .address(client.contract_address())
        .event_signature(RootStored::SIGNATURE_HASH)
        .from_block(0);
    let logs = client.provider().get_logs(&filter).await.unwrap();
    logs.iter()
        .map(|log| {
            let event = RootStored::decode_log_data(log.data()).unwrap();
            field::from_le_bytes(&event.newRoot.to_le_bytes::<32>()).unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_keeps_its_recent_roots_and_a_fresh_sync_accepts_them() {
    let anvil = start_anvil(&[]);
    let dir = temp_dir("recent-roots");
    let deployed = deploy(
        &anvil,
        &["--active-duration", "100", "--grace-period", "1000"],
    );
    let contract = deployed["contract"].as_str().unwrap().to_owned();
    let reader = client(&anvil, &contract, None).await;
    let c = reader.contract();

    // Before any registration: zeros, and getRootAt says why it cannot answer.
    let ring = c.getRecentRoots().call().await.unwrap();
    assert!(ring.iter().all(|r| r.is_zero()), "{ring:?}");
    let err = c.getRootAt(0).call().await.unwrap_err().to_string();
    assert!(err.contains("No roots yet"), "{err}");
    let err = c.getRootAt(5).call().await.unwrap_err().to_string();
    assert!(err.contains("Out of range"), "{err}");

    // Seven registrations: one RootStored each, carrying the root a local tree computes.
    let member = client(&anvil, &contract, Some(ANVIL_KEYS[1])).await;
    let mut local = wakurln::rln::tree::MerkleTree::new();
    let mut roots = Vec::new();
    let mut commitments = Vec::new();
    for _ in 0..7 {
        let (commitment, index) = register_direct(&member).await;
        local
            .set(index as usize, rate_commitment(commitment, 20))
            .unwrap();
        assert_eq!(contract_root(&reader).await, local.root());
        roots.push(local.root());
        commitments.push(commitment);
    }
    assert_eq!(stored_roots(&reader).await, roots);

    // The ring holds the last five, newest first, and getRootAt agrees with it.
    let ring = c.getRecentRoots().call().await.unwrap();
    let newest_first: Vec<Fr> = roots.iter().rev().take(5).copied().collect();
    let ring_fields: Vec<Fr> = ring
        .iter()
        .map(|r| field::from_le_bytes(&r.to_le_bytes::<32>()).unwrap())
        .collect();
    assert_eq!(ring_fields, newest_first);
    for (position, root) in newest_first.iter().enumerate() {
        let at = c.getRootAt(position as u8).call().await.unwrap();
        assert_eq!(at, to_u256(root), "getRootAt({position})");
    }

    // A node syncing from scratch reads the leaves at one block, yet accepts proofs made
    // against any of the five recent roots, not the older ones.
    let mut syncer = Syncer::open(
        client(&anvil, &contract, None).await,
        &dir.join("tree.sqlite"),
        sync_config(),
    )
    .await
    .unwrap();
    syncer.step().await.unwrap();
    for root in &newest_first {
        assert!(syncer.roots().contains(root), "recent root not accepted");
    }
    for root in &roots[..2] {
        assert!(!syncer.roots().contains(root), "root older than the ring");
    }

    // Two expired memberships erased in one call with the clean-up flag: both leaves are
    // zeroed, one RootStored carries the root after both.
    rpc(&anvil, "evm_increaseTime", serde_json::json!([1200])).await;
    rpc(&anvil, "evm_mine", serde_json::json!([])).await;
    let eraser = client(&anvil, &contract, Some(ANVIL_KEYS[2])).await;
    FullErase::new(eraser.contract_address(), eraser.provider().clone())
        .eraseMemberships(
            vec![to_u256(&commitments[0]), to_u256(&commitments[1])],
            true,
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    local.set(0, Fr::from(0u64)).unwrap();
    local.set(1, Fr::from(0u64)).unwrap();
    let stored = stored_roots(&reader).await;
    assert_eq!(stored.len(), 8);
    assert_eq!(stored[7], local.root());
    assert_eq!(c.getRootAt(0).call().await.unwrap(), to_u256(&local.root()));
    let step = syncer.step().await.unwrap();
    assert_eq!(
        step.applied, 4,
        "two MembershipExpired and two MembershipErased"
    );
    assert_eq!(syncer.tree().root(), local.root());

    // A contract without the ring (the token stands in for WakuRlnV2 as first deployed, which
    // lacks getRecentRoots): the syncer reads that it is absent instead of failing.
    let token = deployed["token"].as_str().unwrap();
    let without = Syncer::open(
        client(&anvil, token, None).await,
        &dir.join("token.sqlite"),
        sync_config(),
    )
    .await
    .unwrap();
    let head = reader.provider().get_block_number().await.unwrap();
    assert_eq!(without.contract_recent_roots(head).await.unwrap(), None);
    assert!(
        syncer.contract_recent_roots(head).await.unwrap().is_some(),
        "ours keeps them"
    );
}
