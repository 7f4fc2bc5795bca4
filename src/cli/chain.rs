//! `wakurln contract ...`, `wakurln membership ...` and `wakurln tree ...`: the membership
//! contract from the command line. Private keys come from a file or the environment, never a
//! flag value; every write has `--dry-run`.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use alloy::{
    primitives::{Address, U256},
    signers::local::PrivateKeySigner,
};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use wakurln::{
    chain::{
        ChainClient, ChainError, Endpoint,
        deploy::{self, Terms, Variant},
        membership::{self, Transaction},
        sync::{SyncConfig, Syncer},
    },
    credentials,
    registration::{self, RegistrationError, Step},
    rln::{
        field::{self, Fr},
        identity::Identity,
    },
};
use wakurln_keystore::{ChainId, Keystore, MembershipCredential};
use zeroize::Zeroizing;

use super::{CliError, keystore::keystore_error, password::PasswordArgs};

/// Environment variable holding the account's private key (hex).
pub const PRIVATE_KEY_ENV: &str = "WAKURLN_PRIVATE_KEY";

/// The chain endpoints.
#[derive(Debug, Args)]
pub struct RpcArgs {
    /// Ethereum JSON-RPC endpoint; repeat (or separate with commas) for failover.
    #[arg(
        long = "rpc",
        value_name = "URL",
        env = "WAKURLN_RPC",
        value_delimiter = ',',
        required = true
    )]
    rpc: Vec<String>,
    /// Refuse endpoints that serve another chain than this one.
    #[arg(long, value_name = "ID")]
    chain_id: Option<u64>,
}

impl RpcArgs {
    fn endpoints(&self) -> Vec<Endpoint> {
        self.rpc
            .iter()
            .map(|u| Endpoint(u.trim().to_owned()))
            .collect()
    }
}

/// The endpoints and the membership contract.
#[derive(Debug, Args)]
pub struct ContractArgs {
    #[command(flatten)]
    rpc: RpcArgs,
    /// The membership contract's address.
    #[arg(long, value_name = "ADDRESS", env = "WAKURLN_CONTRACT")]
    contract: String,
}

impl ContractArgs {
    fn address(&self) -> Result<Address, CliError> {
        parse_address("--contract", &self.contract)
    }

    async fn connect(&self, signer: Option<PrivateKeySigner>) -> Result<ChainClient, CliError> {
        ChainClient::connect(
            &self.rpc.endpoints(),
            self.address()?,
            self.rpc.chain_id,
            signer,
        )
        .await
        .map_err(chain_error)
    }
}

/// The sending account.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// File holding the account's private key as hex. Without it, the key comes from
    /// WAKURLN_PRIVATE_KEY.
    #[arg(long, value_name = "FILE")]
    private_key_file: Option<PathBuf>,
}

impl KeyArgs {
    fn signer(&self) -> Result<PrivateKeySigner, CliError> {
        let text = match &self.private_key_file {
            Some(file) => Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
                CliError::bad_input(format!(
                    "cannot read the private key file {}: {e}",
                    file.display()
                ))
            })?),
            None => Zeroizing::new(std::env::var(PRIVATE_KEY_ENV).map_err(|_| {
                CliError::bad_input(format!(
                    "a private key is needed: give --private-key-file or set {PRIVATE_KEY_ENV}"
                ))
            })?),
        };
        PrivateKeySigner::from_str(text.trim()).map_err(|_| {
            CliError::bad_input("the private key is not 32 bytes of hex (with or without 0x)")
        })
    }
}

/// Which membership a command is about: a keystore credential or a bare commitment.
#[derive(Debug, Args)]
pub struct WhichArgs {
    /// The keystore holding the member's credential.
    #[arg(long, value_name = "FILE", conflicts_with = "commitment")]
    keystore: Option<PathBuf>,
    /// The credential's key; needed when the keystore holds several for this contract.
    #[arg(long, value_name = "KEY", requires = "keystore")]
    key: Option<String>,
    /// The identity commitment (decimal or 0x-prefixed big-endian hex).
    #[arg(long, value_name = "VALUE")]
    commitment: Option<String>,
    #[command(flatten)]
    password: PasswordArgs,
}

/// `contract` commands.
#[derive(Debug, Subcommand)]
pub enum ContractCommand {
    /// Deploy the deposit token and the membership contract to a development chain and print
    /// their addresses.
    Deploy(DeployArgs),
}

/// `contract deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    rpc: RpcArgs,
    #[command(flatten)]
    key: KeyArgs,
    /// Deposit token units per message per epoch.
    #[arg(long, default_value_t = 1_000_000_000_000_000u64)]
    price: u64,
    /// Smallest rate limit (messages per epoch) of a membership.
    #[arg(long, default_value_t = 20)]
    min_rate_limit: u32,
    /// Largest rate limit of a membership.
    #[arg(long, default_value_t = 600)]
    max_rate_limit: u32,
    /// Sum of the rate limits of all memberships.
    #[arg(long, default_value_t = 160_000)]
    max_total_rate_limit: u32,
    /// Seconds a membership is active.
    #[arg(long, default_value_t = 180 * 24 * 3600)]
    active_duration: u32,
    /// Seconds of grace period after that.
    #[arg(long, default_value_t = 30 * 24 * 3600)]
    grace_period: u32,
    /// Deploy the testing variant, which lets the deployer register members in bulk without
    /// deposits (tests and benchmarks only).
    #[arg(long)]
    testing: bool,
    /// Mint test tokens to this account (repeatable); the deployer always gets some.
    #[arg(long, value_name = "ADDRESS")]
    fund: Vec<String>,
    /// Token units minted to each funded account.
    #[arg(long, default_value = "1000000000000000000000000")]
    fund_amount: String,
}

/// `membership` commands.
#[derive(Debug, Subcommand)]
pub enum MembershipCommand {
    /// Register a membership: approve the deposit if needed, register, and file the
    /// credential in the keystore under its tree index.
    Register(RegisterArgs),
    /// Show a membership: state, rate limit, index, holder, when its grace period starts and
    /// when it expires.
    Status(StatusArgs),
    /// Extend a membership in its grace period (holder only).
    Extend(WriteArgs),
    /// Erase a membership: the holder's in its grace period, anyone's once expired.
    Erase(WriteArgs),
    /// Withdraw the deposits of erased memberships.
    Withdraw(WithdrawArgs),
}

/// `membership register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    contract: ContractArgs,
    #[command(flatten)]
    key: KeyArgs,
    /// The keystore: the identity to register is its pending credential (from `keystore
    /// new`), or a new one when it has none; created if missing.
    #[arg(long, value_name = "FILE")]
    keystore: PathBuf,
    /// Which pending credential to register, when the keystore holds several.
    #[arg(long = "key", value_name = "KEY")]
    credential: Option<String>,
    /// Messages per epoch.
    #[arg(long, value_name = "N")]
    rate_limit: u32,
    #[command(flatten)]
    password: PasswordArgs,
    /// Print the transactions without sending them (and without changing the keystore).
    #[arg(long)]
    dry_run: bool,
}

/// `membership status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    contract: ContractArgs,
    #[command(flatten)]
    which: WhichArgs,
}

/// `membership extend` and `membership erase`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    #[command(flatten)]
    contract: ContractArgs,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    which: WhichArgs,
    /// Print the transaction without sending it.
    #[arg(long)]
    dry_run: bool,
}

/// `membership withdraw`.
#[derive(Debug, Args)]
pub struct WithdrawArgs {
    #[command(flatten)]
    contract: ContractArgs,
    #[command(flatten)]
    key: KeyArgs,
    /// Print the transaction without sending it.
    #[arg(long)]
    dry_run: bool,
}

/// `tree` commands.
#[derive(Debug, Subcommand)]
pub enum TreeCommand {
    /// Sync the membership tree from the contract into a SQLite file and print its root, the
    /// number of members and the last block.
    Sync(SyncArgs),
}

/// `tree sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    contract: ContractArgs,
    /// The SQLite file holding the tree (created if missing).
    #[arg(long, value_name = "FILE")]
    db: PathBuf,
    /// Blocks to stay behind the head.
    #[arg(long, default_value_t = SyncConfig::default().follow_distance)]
    follow_distance: u64,
    /// Leaves read per bulk call in the initial sync.
    #[arg(long, default_value_t = SyncConfig::default().leaves_per_call)]
    leaves_per_call: u32,
    /// Keep following the chain, printing a line per change, until interrupted.
    #[arg(long)]
    follow: bool,
    /// Seconds between polls with --follow.
    #[arg(long, default_value_t = 2.0)]
    poll_interval: f64,
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))
}

/// Errors about the user's configuration exit with 2; what happened on the chain with 1.
fn chain_error(e: ChainError) -> CliError {
    match e {
        ChainError::WrongChain { .. }
        | ChainError::NoContract { .. }
        | ChainError::RateLimitOutOfRange { .. } => CliError::bad_input(e),
        _ => CliError::failed(format!("error: {e}")),
    }
}

fn parse_address(what: &str, text: &str) -> Result<Address, CliError> {
    Address::from_str(text.trim()).map_err(|_| {
        CliError::bad_input(format!(
            "{what} is not an address (0x followed by 40 hex digits)"
        ))
    })
}

fn u256(x: &Fr) -> String {
    field::to_decimal(x)
}

fn transactions_json(from: Address, transactions: &[Transaction]) -> Value {
    Value::from(
        transactions
            .iter()
            .map(|t| {
                json!({
                    "what": t.what,
                    "from": from.to_string(),
                    "to": t.to.to_string(),
                    "data": format!("{}", t.data),
                })
            })
            .collect::<Vec<_>>(),
    )
}

impl ContractCommand {
    pub fn run(self) -> Result<(), CliError> {
        match self {
            Self::Deploy(args) => runtime()?.block_on(deploy_contract(&args)),
        }
    }
}

async fn deploy_contract(args: &DeployArgs) -> Result<(), CliError> {
    let signer = args.key.signer()?;
    let mut fund = vec![signer.address()];
    for text in &args.fund {
        fund.push(parse_address("--fund", text)?);
    }
    let fund_amount = U256::from_str(&args.fund_amount)
        .map_err(|_| CliError::bad_input("--fund-amount is not a whole number"))?;
    let terms = Terms {
        price: U256::from(args.price),
        min_rate_limit: args.min_rate_limit,
        max_rate_limit: args.max_rate_limit,
        max_total_rate_limit: args.max_total_rate_limit,
        active_duration: args.active_duration,
        grace_period: args.grace_period,
    };
    if terms.min_rate_limit == 0 || terms.min_rate_limit > terms.max_rate_limit {
        return Err(CliError::bad_input(
            "--min-rate-limit must be at least 1 and at most --max-rate-limit",
        ));
    }
    let variant = if args.testing {
        Variant::Testing
    } else {
        Variant::Standard
    };
    let endpoints = args.rpc.endpoints();
    eprintln!("deploying the deposit token, PoseidonT3 and the membership contract...");
    let d = deploy::deploy(&endpoints[0], signer, terms, variant, &fund, fund_amount)
        .await
        .map_err(chain_error)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "chainId": d.chain_id,
            "contract": d.contract.to_string(),
            "token": d.token.to_string(),
            "poseidonT3": d.poseidon.to_string(),
            "deployBlock": d.block,
            "testing": args.testing,
            "funded": fund.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }))
        .expect("JSON serialises")
    );
    Ok(())
}

impl MembershipCommand {
    pub fn run(self) -> Result<(), CliError> {
        let rt = runtime()?;
        match self {
            Self::Register(args) => rt.block_on(register(&args)),
            Self::Status(args) => rt.block_on(status(&args)),
            Self::Extend(args) => rt.block_on(write(&args, Write::Extend)),
            Self::Erase(args) => rt.block_on(write(&args, Write::Erase)),
            Self::Withdraw(args) => rt.block_on(withdraw(&args)),
        }
    }
}

/// The pending credential to register: `--key`, else the only pending one, else none (a new
/// identity is made).
fn pending_key(keystore: &Path, wanted: Option<&str>) -> Result<Option<String>, CliError> {
    if !keystore.exists() {
        return match wanted {
            Some(_) => Err(CliError::bad_input(format!(
                "keystore {} does not exist",
                keystore.display()
            ))),
            None => Ok(None),
        };
    }
    let store = Keystore::open(keystore).map_err(keystore_error)?;
    let entries = store.entries();
    let pending: Vec<&str> = entries
        .iter()
        .filter(|e| matches!(&e.membership, Some((c, a, _)) if c.is_empty() && a.is_empty()))
        .map(|e| e.key.as_str())
        .collect();
    match wanted {
        Some(key) if !store.contains(key) => Err(CliError::bad_input(format!(
            "the keystore holds no credential {key}; `wakurln keystore list` shows them"
        ))),
        Some(key) if !pending.contains(&key) => Err(CliError::bad_input(format!(
            "credential {key} is registered already; `wakurln keystore new` makes a new identity"
        ))),
        Some(key) => Ok(Some(key.to_owned())),
        None => match pending.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some((*one).to_owned())),
            many => Err(CliError::bad_input(format!(
                "the keystore holds {} pending identities; pick one with --key ({})",
                many.len(),
                many.join(", ")
            ))),
        },
    }
}

async fn decrypt(
    keystore: &Path,
    key: &str,
    password: &Zeroizing<String>,
) -> Result<MembershipCredential, CliError> {
    eprintln!("unlocking credential {key}...");
    credentials::unlock(keystore.to_path_buf(), key.to_owned(), password.clone())
        .await
        .map_err(|e| match e {
            credentials::CredentialError::Keystore(k) => keystore_error(k),
            other => CliError::bad_input(other),
        })
}

async fn register(args: &RegisterArgs) -> Result<(), CliError> {
    let signer = args.key.signer()?;
    let pending = pending_key(&args.keystore, args.credential.as_deref())?;
    let new_file = !args.keystore.exists();
    let password = args.password.read(new_file)?;
    let (identity, pending) = match pending {
        Some(key) => {
            let credential = decrypt(&args.keystore, &key, &password).await?;
            let identity = credentials::from_stored(&credential.identity_credential)
                .map_err(CliError::bad_input)?;
            (identity, Some(key))
        }
        None => (Identity::generate(), None),
    };
    let client = args.contract.connect(Some(signer)).await?;
    let plan = membership::plan_register(&client, identity.commitment, args.rate_limit)
        .await
        .map_err(chain_error)?;
    if args.dry_run {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "dryRun": true,
                "idCommitment": u256(&identity.commitment),
                "deposit": plan.deposit.to_string(),
                "token": plan.token.to_string(),
                "transactions": transactions_json(plan.from, &plan.transactions),
            }))
            .expect("JSON serialises")
        );
        return Ok(());
    }
    // The identity is on disk before any transaction, so no crash can lose a paid membership.
    let filed = registration::register_and_file(
        &client,
        &plan,
        &identity,
        args.rate_limit,
        &args.keystore,
        pending,
        password.as_bytes(),
        |step| match step {
            Step::Storing(path) => eprintln!("storing the new identity in {}...", path.display()),
            Step::Sending(what) => eprintln!("sending: {what}"),
            Step::Filing(index) => eprintln!(
                "registered at index {index}; filing the credential under its membership..."
            ),
        },
    )
    .await
    .map_err(|e| match e {
        RegistrationError::Chain(e) => chain_error(e),
        RegistrationError::Keystore(e) => keystore_error(e),
    })?;
    let (key, registration) = (filed.key, filed.registration);
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "key": key,
            "index": registration.index,
            "idCommitment": u256(&identity.commitment),
            "rateLimit": args.rate_limit,
            "chainId": client.chain_id(),
            "contract": client.contract_address().to_string(),
            "transaction": registration.transaction.to_string(),
            "block": registration.block,
        }))
        .expect("JSON serialises")
    );
    Ok(())
}

/// The commitment a command is about: `--commitment`, or the keystore credential registered
/// with this contract (`--key` when there are several).
async fn which_commitment(which: &WhichArgs, client: &ChainClient) -> Result<Fr, CliError> {
    if let Some(text) = &which.commitment {
        return field::parse(text).map_err(|e| CliError::bad_input(format!("--commitment: {e}")));
    }
    let Some(path) = &which.keystore else {
        return Err(CliError::bad_input(
            "say which membership: --keystore (with --key if needed) or --commitment",
        ));
    };
    let key = match &which.key {
        Some(key) => key.clone(),
        None => {
            if !path.exists() {
                return Err(CliError::bad_input(format!(
                    "keystore {} does not exist",
                    path.display()
                )));
            }
            let store = Keystore::open(path).map_err(keystore_error)?;
            let chain = client.chain_id();
            let address = client.contract_address();
            let mine: Vec<String> = store
                .entries()
                .into_iter()
                .filter(|e| {
                    matches!(&e.membership, Some((c, a, _))
                        if ChainId(c.clone()).value() == Some(chain)
                            && Address::from_str(a).ok() == Some(address))
                })
                .map(|e| e.key)
                .collect();
            match mine.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(CliError::bad_input(format!(
                        "the keystore holds no membership of contract {address} on chain \
                         {chain}; give --key or --commitment"
                    )));
                }
                many => {
                    return Err(CliError::bad_input(format!(
                        "the keystore holds {} memberships of this contract; pick one with --key \
                         ({})",
                        many.len(),
                        many.join(", ")
                    )));
                }
            }
        }
    };
    let password = which.password.read(false)?;
    let credential = decrypt(path, &key, &password).await?;
    let identity =
        credentials::from_stored(&credential.identity_credential).map_err(CliError::bad_input)?;
    Ok(identity.commitment)
}

fn unix_time(seconds: u64) -> String {
    let now = wakurln::clock::now_secs();
    if seconds >= now {
        format!("in {}", human(Duration::from_secs(seconds - now)))
    } else {
        format!("{} ago", human(Duration::from_secs(now - seconds)))
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

async fn status(args: &StatusArgs) -> Result<(), CliError> {
    let client = args.contract.connect(None).await?;
    let commitment = which_commitment(&args.which, &client).await?;
    let s = membership::status(&client, commitment)
        .await
        .map_err(chain_error)?;
    let mut out = json!({
        "idCommitment": u256(&commitment),
        "state": s.state.name(),
    });
    if s.state != membership::State::None {
        out["rateLimit"] = Value::from(s.rate_limit);
        out["index"] = Value::from(s.index);
        out["holder"] = Value::from(s.holder.to_string());
        out["deposit"] = Value::from(s.deposit.to_string());
        out["gracePeriodStart"] = Value::from(s.grace_period_start);
        out["gracePeriodStartsOrStarted"] = Value::from(unix_time(s.grace_period_start));
        out["expires"] = Value::from(s.expires);
        out["expiresOrExpired"] = Value::from(unix_time(s.expires));
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&out).expect("JSON serialises")
    );
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Write {
    Extend,
    Erase,
}

async fn send_or_show(
    client: &ChainClient,
    transaction: Transaction,
    dry_run: bool,
) -> Result<(), CliError> {
    let from = client
        .account()
        .expect("write commands connect with a signer");
    if dry_run {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "dryRun": true,
                "transactions": transactions_json(from, std::slice::from_ref(&transaction)),
            }))
            .expect("JSON serialises")
        );
        return Ok(());
    }
    eprintln!("sending: {}", transaction.what);
    let receipts = membership::send_all(client, std::slice::from_ref(&transaction))
        .await
        .map_err(chain_error)?;
    let receipt = &receipts[0];
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "done": transaction.what,
            "transaction": receipt.transaction_hash.to_string(),
            "block": receipt.block_number,
        }))
        .expect("JSON serialises")
    );
    Ok(())
}

async fn write(args: &WriteArgs, what: Write) -> Result<(), CliError> {
    let signer = args.key.signer()?;
    let client = args.contract.connect(Some(signer)).await?;
    let commitment = which_commitment(&args.which, &client).await?;
    let transaction = match what {
        Write::Extend => membership::extend_transaction(&client, commitment),
        Write::Erase => membership::erase_transaction(&client, commitment),
    };
    send_or_show(&client, transaction, args.dry_run).await
}

async fn withdraw(args: &WithdrawArgs) -> Result<(), CliError> {
    let signer = args.key.signer()?;
    let client = args.contract.connect(Some(signer)).await?;
    let token = membership::deposit_token(&client)
        .await
        .map_err(chain_error)?;
    let transaction = membership::withdraw_transaction(&client, token);
    send_or_show(&client, transaction, args.dry_run).await
}

impl TreeCommand {
    pub fn run(self) -> Result<(), CliError> {
        match self {
            Self::Sync(args) => runtime()?.block_on(sync(&args)),
        }
    }
}

async fn sync(args: &SyncArgs) -> Result<(), CliError> {
    if args.leaves_per_call == 0 {
        return Err(CliError::bad_input("--leaves-per-call must be at least 1"));
    }
    if !(args.poll_interval > 0.0 && args.poll_interval.is_finite()) {
        return Err(CliError::bad_input(
            "--poll-interval must be a positive number",
        ));
    }
    let client = args.contract.connect(None).await?;
    let config = SyncConfig {
        follow_distance: args.follow_distance,
        leaves_per_call: args.leaves_per_call,
        ..SyncConfig::default()
    };
    let mut syncer = Syncer::open(client, &args.db, config)
        .await
        .map_err(chain_error)?;
    let started = std::time::Instant::now();
    let status = syncer.step().await.map_err(chain_error)?;
    let print = |s: &wakurln::chain::sync::SyncStatus, elapsed: Duration| {
        println!(
            "{}",
            json!({
                "root": u256(&s.root),
                "members": s.members,
                "block": s.block,
                "applied": s.applied,
                "rolledBack": s.rolled_back,
                "seconds": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            })
        );
    };
    print(&status, started.elapsed());
    if !args.follow {
        return Ok(());
    }
    let interval = Duration::from_secs_f64(args.poll_interval);
    let mut last = status.block;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            () = tokio::time::sleep(interval) => {}
        }
        let started = std::time::Instant::now();
        match syncer.step().await {
            Ok(s) if s.block != last || s.applied > 0 || s.rolled_back > 0 => {
                last = s.block;
                print(&s, started.elapsed());
            }
            Ok(_) => {}
            Err(e) if e.is_transient() => eprintln!("warning: {e}; retrying"),
            Err(e) => return Err(chain_error(e)),
        }
    }
}
