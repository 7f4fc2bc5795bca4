//! `wakurln keystore ...`: managing encrypted RLN credentials in the nwaku-format keystore.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use wakurln::rln::{
    field::{self, Fr},
    identity::Identity,
};
use wakurln_keystore::{IdentityCredential, Kdf, Keystore, KeystoreError, MembershipCredential};

use super::{
    CliError,
    password::{NEW_PASSWORD_ENV, PasswordArgs, obtain},
};

/// Keystore management.
#[derive(Debug, Subcommand)]
pub enum KeystoreCommand {
    /// Generate an identity and store it, pending registration of a membership.
    New(NewArgs),
    /// List the credentials (no password needed): key, chain id, contract, tree index.
    List(PathArg),
    /// Decrypt one credential and print it as JSON; secrets only with --reveal.
    Show(ShowArgs),
    /// Copy one credential, still encrypted, from another keystore into this one.
    Import(ImportArgs),
    /// Copy one credential, still encrypted, from this keystore into another.
    Export(ExportArgs),
    /// Re-encrypt one credential under a new password.
    ChangePassword(ChangePasswordArgs),
}

/// The keystore file.
#[derive(Debug, Args)]
pub struct PathArg {
    /// The keystore file.
    #[arg(long, value_name = "FILE")]
    path: PathBuf,
}

/// Key derivation for newly encrypted credentials.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum KdfChoice {
    /// PBKDF2-HMAC-SHA256, 1,000,000 iterations (what other implementations write).
    Pbkdf2,
    /// scrypt, n = 262144, r = 1, p = 8.
    Scrypt,
}

impl From<KdfChoice> for Kdf {
    fn from(choice: KdfChoice) -> Self {
        match choice {
            KdfChoice::Pbkdf2 => Kdf::default(),
            KdfChoice::Scrypt => Kdf::SCRYPT_DEFAULT,
        }
    }
}

/// `keystore new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    #[command(flatten)]
    path: PathArg,
    #[command(flatten)]
    password: PasswordArgs,
    /// Key derivation function.
    #[arg(long, value_enum, default_value = "pbkdf2")]
    kdf: KdfChoice,
}

/// `keystore show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    path: PathArg,
    /// The credential's key (from `keystore list`).
    #[arg(long, value_name = "KEY")]
    key: String,
    /// Also print the identity secrets (trapdoor, nullifier, secret hash).
    #[arg(long)]
    reveal: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

/// `keystore import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    path: PathArg,
    /// The keystore to copy from.
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// The credential's key.
    #[arg(long, value_name = "KEY")]
    key: String,
}

/// `keystore export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    path: PathArg,
    /// The keystore to copy into (created if missing).
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
    /// The credential's key.
    #[arg(long, value_name = "KEY")]
    key: String,
}

/// `keystore change-password`.
#[derive(Debug, Args)]
pub struct ChangePasswordArgs {
    #[command(flatten)]
    path: PathArg,
    /// The credential's key.
    #[arg(long, value_name = "KEY")]
    key: String,
    #[command(flatten)]
    password: PasswordArgs,
    /// Read the new password from this file; without it, from WAKURLN_KEYSTORE_NEW_PASSWORD
    /// or a prompt.
    #[arg(long, value_name = "FILE")]
    new_password_file: Option<PathBuf>,
    /// Key derivation function for the re-encrypted credential.
    #[arg(long, value_enum, default_value = "pbkdf2")]
    kdf: KdfChoice,
}

impl KeystoreCommand {
    pub fn run(self) -> Result<(), CliError> {
        match self {
            Self::New(args) => new(&args),
            Self::List(args) => list(&args.path),
            Self::Show(args) => show(&args),
            Self::Import(args) => copy(&args.from, &args.path.path, &args.key),
            Self::Export(args) => copy(&args.path.path, &args.to, &args.key),
            Self::ChangePassword(args) => change_password(&args),
        }
    }
}

/// Maps keystore errors: damaged files and wrong passwords are the user's input (exit 2),
/// I/O failures are failures (exit 1).
pub(super) fn keystore_error(e: KeystoreError) -> CliError {
    match e {
        KeystoreError::Io { .. } => CliError::failed(e),
        _ => CliError::bad_input(e),
    }
}

fn working(kdf: Kdf) {
    eprintln!("deriving the encryption key ({})...", kdf.describe());
}

fn to_credential(identity: &Identity) -> IdentityCredential {
    IdentityCredential {
        id_trapdoor: field::to_le_bytes(&identity.trapdoor),
        id_nullifier: field::to_le_bytes(&identity.nullifier),
        id_secret_hash: field::to_le_bytes(&identity.secret_hash),
        id_commitment: field::to_le_bytes(&identity.commitment),
    }
}

fn decimal(bytes: &[u8; 32]) -> String {
    field::to_decimal(&<Fr as ark_ff::PrimeField>::from_le_bytes_mod_order(bytes))
}

fn new(args: &NewArgs) -> Result<(), CliError> {
    let password = args.password.read(true)?;
    let identity = Identity::generate();
    let credential = MembershipCredential::pending(to_credential(&identity));
    let kdf = Kdf::from(args.kdf);
    working(kdf);
    let key = Keystore::add(
        &args.path.path,
        &credential,
        password.as_bytes(),
        kdf,
        &mut rand::rngs::OsRng,
    )
    .map_err(keystore_error)?;
    println!(
        "{}",
        json!({"key": key, "idCommitment": field::to_decimal(&identity.commitment)})
    );
    Ok(())
}

fn open_existing(path: &Path) -> Result<Keystore, CliError> {
    if !path.exists() {
        return Err(CliError::bad_input(format!(
            "keystore {} does not exist",
            path.display()
        )));
    }
    Keystore::open(path).map_err(keystore_error)
}

fn list(path: &Path) -> Result<(), CliError> {
    for entry in open_existing(path)?.entries() {
        match entry.membership {
            Some((chain, address, _)) if chain.is_empty() && address.is_empty() => {
                println!("{}  pending registration", entry.key);
            }
            Some((chain, address, index)) => {
                println!(
                    "{}  chain {chain}  contract {address}  index {index}",
                    entry.key
                );
            }
            None => println!(
                "{}  (written elsewhere; `keystore show` decrypts it)",
                entry.key
            ),
        }
    }
    Ok(())
}

fn show(args: &ShowArgs) -> Result<(), CliError> {
    let keystore = open_existing(&args.path.path)?;
    let kdf = keystore.kdf_of(&args.key).map_err(keystore_error)?;
    let password = args.password.read(false)?;
    working(kdf);
    let c = keystore
        .decrypt(&args.key, password.as_bytes())
        .map_err(keystore_error)?;
    let id = &c.identity_credential;
    let mut identity = json!({"idCommitment": decimal(&id.id_commitment)});
    if args.reveal {
        identity["idTrapdoor"] = Value::from(decimal(&id.id_trapdoor));
        identity["idNullifier"] = Value::from(decimal(&id.id_nullifier));
        identity["idSecretHash"] = Value::from(decimal(&id.id_secret_hash));
    }
    let out = json!({
        "key": args.key,
        "pending": c.is_pending(),
        "membershipContract": {
            "chainId": c.membership_contract.chain_id.0,
            "address": c.membership_contract.address,
        },
        "treeIndex": c.tree_index,
        "userMessageLimit": c.user_message_limit,
        "identityCredential": identity,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&out).expect("JSON serialises")
    );
    Ok(())
}

fn copy(from: &Path, to: &Path, key: &str) -> Result<(), CliError> {
    let source = open_existing(from)?;
    let entry = source.raw_entry(key).map_err(keystore_error)?.clone();
    Keystore::modify(to, |ks| ks.insert_raw(key, entry)).map_err(keystore_error)?;
    println!("copied {key} from {} to {}", from.display(), to.display());
    Ok(())
}

fn change_password(args: &ChangePasswordArgs) -> Result<(), CliError> {
    let keystore = open_existing(&args.path.path)?;
    let old_kdf = keystore.kdf_of(&args.key).map_err(keystore_error)?;
    let old = args.password.read(false)?;
    let new = obtain(
        args.new_password_file.as_ref(),
        NEW_PASSWORD_ENV,
        "new keystore password",
        true,
    )?;
    let kdf = Kdf::from(args.kdf);
    eprintln!(
        "deriving the old key ({}) and the new key ({})...",
        old_kdf.describe(),
        kdf.describe()
    );
    Keystore::change_password(
        &args.path.path,
        &args.key,
        old.as_bytes(),
        new.as_bytes(),
        kdf,
        &mut rand::rngs::OsRng,
    )
    .map_err(keystore_error)?;
    println!("changed the password of {}", args.key);
    Ok(())
}
