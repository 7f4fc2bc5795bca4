//! The keystore file: reading without a password, decrypting one credential, and changes that
//! are atomic (temporary file in the same folder, fsync, rename), serialised between processes
//! by a lock file, and written with mode 0600.
//!
//! Every change re-reads the file under the lock and applies itself to what is there now, so
//! two processes adding credentials at once both land. Key derivation, the slow part, happens
//! before the lock is taken.

use std::{
    fs::{self, File, OpenOptions},
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use rand::RngCore;
use serde_json::{Map, Value, json};

use crate::{
    APP_IDENTIFIER, APPLICATION, KeystoreError, VERSION,
    credential::MembershipCredential,
    crypto::{self, Kdf},
};

/// Non-secret facts about a credential, kept in plaintext beside its `crypto` object (under
/// `membership`) so `list` needs no password. Credentials written by other implementations
/// lack it; readers ignore fields they do not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key the credential is filed under.
    pub key: String,
    /// Chain id, contract and tree index, when the file records them in plaintext.
    pub membership: Option<(String, String, u64)>,
}

/// A keystore file's contents.
#[derive(Debug, Clone)]
pub struct Keystore {
    path: PathBuf,
    doc: Map<String, Value>,
}

fn empty_document() -> Map<String, Value> {
    let Value::Object(doc) = json!({
        "application": APPLICATION,
        "appIdentifier": APP_IDENTIFIER,
        "version": VERSION,
        "credentials": {},
    }) else {
        unreachable!("a JSON object literal")
    };
    doc
}

impl Keystore {
    /// Reads the keystore at `path`; a file that does not exist yet is an empty keystore.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, KeystoreError> {
        let path = path.as_ref().to_path_buf();
        let doc = match fs::read(&path) {
            Ok(bytes) => parse_document(&path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => empty_document(),
            Err(e) => return Err(KeystoreError::io(&path, e)),
        };
        Ok(Self { path, doc })
    }

    /// Parses keystore JSON held in memory (`path` is only used in messages and for saving).
    pub fn from_slice(path: impl AsRef<Path>, bytes: &[u8]) -> Result<Self, KeystoreError> {
        let path = path.as_ref().to_path_buf();
        let doc = parse_document(&path, bytes)?;
        Ok(Self { path, doc })
    }

    /// The file this keystore lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn credentials(&self) -> &Map<String, Value> {
        self.doc["credentials"]
            .as_object()
            .expect("validated when read")
    }

    fn credentials_mut(&mut self) -> &mut Map<String, Value> {
        self.doc
            .get_mut("credentials")
            .and_then(Value::as_object_mut)
            .expect("validated when read")
    }

    /// Every credential's key, with its plaintext summary where present.
    pub fn entries(&self) -> Vec<Entry> {
        self.credentials()
            .iter()
            .map(|(key, value)| Entry {
                key: key.clone(),
                membership: value.get("membership").and_then(|m| {
                    Some((
                        m.get("chainId")?.as_str()?.to_owned(),
                        m.get("address")?.as_str()?.to_owned(),
                        m.get("treeIndex")?.as_u64()?,
                    ))
                }),
            })
            .collect()
    }

    /// Whether a credential is filed under `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.credentials().contains_key(key)
    }

    /// The raw JSON of one credential (its `crypto` object and summary), for export.
    pub fn raw_entry(&self, key: &str) -> Result<&Value, KeystoreError> {
        self.credentials()
            .get(key)
            .ok_or_else(|| KeystoreError::NotFound(key.to_owned()))
    }

    /// The key derivation a credential needs, to tell users what they are waiting for.
    pub fn kdf_of(&self, key: &str) -> Result<Kdf, KeystoreError> {
        Ok(crypto::parse(key, crypto_of(key, self.raw_entry(key)?)?)?.kdf())
    }

    /// Decrypts one credential. Runs the key derivation once; call it off async threads.
    pub fn decrypt(
        &self,
        key: &str,
        password: &[u8],
    ) -> Result<MembershipCredential, KeystoreError> {
        let parsed = crypto::parse(key, crypto_of(key, self.raw_entry(key)?)?)?;
        let out = crypto::decrypt(&parsed, password);
        let credential = serde_json::from_slice::<MembershipCredential>(&out.plaintext);
        match (out.mac_ok, credential) {
            (true, Ok(credential)) => Ok(credential),
            (true, Err(e)) => Err(KeystoreError::MalformedCredential {
                key: key.to_owned(),
                detail: format!("it decrypts but is not a membership credential: {e}"),
            }),
            // With a wrong password the plaintext is noise; if it reads as a credential, the
            // password was right and the MAC (or ciphertext around it) was changed.
            (false, Ok(_)) => Err(KeystoreError::MacMismatch {
                key: key.to_owned(),
            }),
            (false, Err(_)) => Err(KeystoreError::WrongPassword {
                key: key.to_owned(),
            }),
        }
    }

    /// Encrypts `credential` and adds it to the file at `path`. Returns its key.
    pub fn add<R: RngCore>(
        path: impl AsRef<Path>,
        credential: &MembershipCredential,
        password: &[u8],
        kdf: Kdf,
        rng: &mut R,
    ) -> Result<String, KeystoreError> {
        let key = credential.key();
        let entry = encrypted_entry(credential, password, kdf, rng);
        Self::modify(path, |ks| ks.insert_raw(&key, entry))?;
        Ok(key)
    }

    /// Replaces the credential under `old_key` with `credential` (encrypted anew) in one
    /// atomic write, as registration does when a pending identity gets its membership.
    /// Returns the new key. Nothing is written if `old_key` is missing or the new key exists.
    pub fn refile<R: RngCore>(
        path: impl AsRef<Path>,
        old_key: &str,
        credential: &MembershipCredential,
        password: &[u8],
        kdf: Kdf,
        rng: &mut R,
    ) -> Result<String, KeystoreError> {
        let key = credential.key();
        let entry = encrypted_entry(credential, password, kdf, rng);
        Self::modify(path, |ks| {
            ks.remove(old_key)?;
            ks.insert_raw(&key, entry)
        })?;
        Ok(key)
    }

    /// Adds an already encrypted credential (import); refuses a key already present.
    pub fn insert_raw(&mut self, key: &str, entry: Value) -> Result<(), KeystoreError> {
        crypto::parse(key, crypto_of(key, &entry)?)?;
        if self.contains(key) {
            return Err(KeystoreError::Duplicate(key.to_owned()));
        }
        self.credentials_mut().insert(key.to_owned(), entry);
        Ok(())
    }

    /// Removes a credential, returning its raw JSON.
    pub fn remove(&mut self, key: &str) -> Result<Value, KeystoreError> {
        self.credentials_mut()
            .remove(key)
            .ok_or_else(|| KeystoreError::NotFound(key.to_owned()))
    }

    /// Re-encrypts one credential under a new password (and KDF).
    pub fn change_password<R: RngCore>(
        path: impl AsRef<Path>,
        key: &str,
        old: &[u8],
        new: &[u8],
        kdf: Kdf,
        rng: &mut R,
    ) -> Result<(), KeystoreError> {
        let path = path.as_ref();
        let snapshot = Self::open(path)?;
        let before = snapshot.raw_entry(key)?.clone();
        let credential = snapshot.decrypt(key, old)?;
        let entry = encrypted_entry(&credential, new, kdf, rng);
        Self::modify(path, |ks| {
            if ks.raw_entry(key)? != &before {
                return Err(KeystoreError::MalformedCredential {
                    key: key.to_owned(),
                    detail: "it was changed by another program meanwhile; nothing was written"
                        .into(),
                });
            }
            ks.credentials_mut().insert(key.to_owned(), entry);
            Ok(())
        })
    }

    /// Applies `change` to the current contents of the file under an exclusive lock and
    /// writes the result atomically. If `change` fails, the file is left as it was.
    pub fn modify<T>(
        path: impl AsRef<Path>,
        change: impl FnOnce(&mut Keystore) -> Result<T, KeystoreError>,
    ) -> Result<T, KeystoreError> {
        let path = path.as_ref();
        let lock_path = lock_path(path);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| KeystoreError::io(&lock_path, e))?;
        let mut lock = fd_lock::RwLock::new(lock_file);
        let _guard = lock.write().map_err(|e| KeystoreError::io(&lock_path, e))?;
        let mut keystore = Self::open(path)?;
        let out = change(&mut keystore)?;
        keystore.save()?;
        Ok(out)
    }

    /// Writes the document: a temporary file created exclusively beside the target (mode
    /// 0600, a random name), fsync, rename over the target, fsync the folder. A process killed
    /// at any point leaves either the old file or the new one; its temporary file is removed
    /// by the next write (which holds the lock, so no other writer is using it).
    fn save(&self) -> Result<(), KeystoreError> {
        let path = &self.path;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!(".{name}.");
        remove_stale_temporaries(dir, &prefix);
        let io = |e| KeystoreError::io(path, e);
        let bytes = serde_json::to_vec_pretty(&self.doc).expect("a JSON document serialises");
        let mut file = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(TEMPORARY_SUFFIX)
            .permissions(fs::Permissions::from_mode(0o600))
            .tempfile_in(dir)
            .map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.as_file().sync_all().map_err(io)?;
        // On failure the temporary file is removed when `persist`'s error drops it.
        file.persist(path).map_err(|e| io(e.error))?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)
    }
}

const TEMPORARY_SUFFIX: &str = ".tmp";

/// Removes the temporary files a killed writer of the keystore left in `dir`.
fn remove_stale_temporaries(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(prefix) && name.ends_with(TEMPORARY_SUFFIX) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

fn crypto_of<'a>(key: &str, entry: &'a Value) -> Result<&'a Value, KeystoreError> {
    entry
        .get("crypto")
        .filter(|c| c.is_object())
        .ok_or_else(|| KeystoreError::MalformedCredential {
            key: key.to_owned(),
            detail: "it has no `crypto` object".into(),
        })
}

fn encrypted_entry<R: RngCore>(
    credential: &MembershipCredential,
    password: &[u8],
    kdf: Kdf,
    rng: &mut R,
) -> Value {
    let plaintext =
        zeroize::Zeroizing::new(serde_json::to_vec(credential).expect("a credential serialises"));
    let contract = &credential.membership_contract;
    json!({
        "crypto": crypto::encrypt(&plaintext, password, kdf, rng),
        "membership": {
            "chainId": contract.chain_id.0,
            "address": contract.address,
            "treeIndex": credential.tree_index,
        },
    })
}

fn parse_document(path: &Path, bytes: &[u8]) -> Result<Map<String, Value>, KeystoreError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| KeystoreError::InvalidJson {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let not_keystore = |detail: &str| KeystoreError::NotAKeystore {
        path: path.to_path_buf(),
        detail: detail.to_owned(),
    };
    let Value::Object(doc) = value else {
        return Err(not_keystore("the top level is not a JSON object"));
    };
    if doc.get("application").and_then(Value::as_str) != Some(APPLICATION) {
        return Err(not_keystore("`application` is not \"waku-rln-relay\""));
    }
    match doc.get("version").and_then(Value::as_str) {
        Some(VERSION) => {}
        Some(other) => return Err(KeystoreError::UnsupportedVersion(other.to_owned())),
        None => return Err(not_keystore("`version` is missing")),
    }
    if !doc.get("credentials").is_some_and(Value::is_object) {
        return Err(not_keystore("`credentials` is missing or not an object"));
    }
    Ok(doc)
}
