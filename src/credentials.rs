//! Glue between the keystore (`wakurln-keystore`) and the RLN engine: converting identities
//! to and from their stored form, and unlocking a credential from async code.
//!
//! Unlocking derives a key on purpose slowly (about a second with the default pbkdf2 cost), so
//! [`unlock`] runs it on the blocking pool and says what it is doing, keeping the node's async
//! threads free while it waits.

use std::{path::PathBuf, time::Instant};

use wakurln_keystore::{IdentityCredential, Keystore, KeystoreError, MembershipCredential};
use zeroize::Zeroizing;

use crate::rln::{
    field::{self, FieldError},
    identity::Identity,
};

/// The stored form of an identity: four 32-byte little-endian field elements.
pub fn to_stored(identity: &Identity) -> IdentityCredential {
    IdentityCredential {
        id_trapdoor: field::to_le_bytes(&identity.trapdoor),
        id_nullifier: field::to_le_bytes(&identity.nullifier),
        id_secret_hash: field::to_le_bytes(&identity.secret_hash),
        id_commitment: field::to_le_bytes(&identity.commitment),
    }
}

/// The credential of `identity` registered at leaf `index` with `rate_limit` on the contract
/// `client` talks to, as the keystore files it (chain id in decimal, checksummed address).
pub fn registered(
    identity: &Identity,
    client: &crate::chain::ChainClient,
    index: u32,
    rate_limit: u32,
) -> MembershipCredential {
    MembershipCredential {
        membership_contract: wakurln_keystore::MembershipContract {
            chain_id: wakurln_keystore::ChainId(client.chain_id().to_string()),
            address: client.contract_address().to_string(),
        },
        tree_index: u64::from(index),
        identity_credential: to_stored(identity),
        user_message_limit: Some(u64::from(rate_limit)),
    }
}

/// The identity of a stored credential, checking that its parts are consistent (the secret
/// hash and commitment follow from the trapdoor and nullifier), so a damaged credential is
/// refused rather than used to make proofs no one accepts.
pub fn from_stored(stored: &IdentityCredential) -> Result<Identity, CredentialError> {
    let identity = Identity::from_parts(
        field::from_le_bytes(&stored.id_trapdoor)?,
        field::from_le_bytes(&stored.id_nullifier)?,
    );
    if to_stored(&identity) != *stored {
        return Err(CredentialError::Inconsistent);
    }
    Ok(identity)
}

/// Why a stored identity cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// A stored value is not a field element.
    #[error("the stored identity is not valid: {0}")]
    Field(#[from] FieldError),
    /// The secret hash or commitment do not follow from the trapdoor and nullifier.
    #[error("the stored identity is inconsistent: its commitment does not match its secrets")]
    Inconsistent,
    /// Reading or decrypting the keystore failed.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// The blocking task was cancelled (the runtime is shutting down).
    #[error("unlocking was interrupted")]
    Interrupted,
}

/// Decrypts credential `key` of the keystore at `path` on the blocking pool, logging what it
/// waits for.
pub async fn unlock(
    path: PathBuf,
    key: String,
    password: Zeroizing<String>,
) -> Result<MembershipCredential, CredentialError> {
    tokio::task::spawn_blocking(move || {
        let keystore = Keystore::open(&path)?;
        let kdf = keystore.kdf_of(&key)?;
        tracing::info!(%key, kdf = %kdf.describe(), "unlocking RLN credential; key derivation takes a moment");
        let started = Instant::now();
        let credential = keystore.decrypt(&key, password.as_bytes())?;
        tracing::info!(%key, elapsed_ms = started.elapsed().as_millis() as u64, "RLN credential unlocked");
        Ok(credential)
    })
    .await
    .map_err(|_| CredentialError::Interrupted)?
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    };

    use rand::SeedableRng;
    use wakurln_keystore::{Kdf, MembershipCredential};

    use super::*;

    #[test]
    fn stored_identities_round_trip_and_damage_is_caught() {
        let identity = Identity::from_seed(b"glue");
        let stored = to_stored(&identity);
        assert_eq!(from_stored(&stored).unwrap(), identity);
        let mut damaged = stored.clone();
        damaged.id_commitment[0] ^= 1;
        assert!(matches!(
            from_stored(&damaged),
            Err(CredentialError::Inconsistent)
        ));
    }

    #[test]
    fn unlocking_leaves_the_async_thread_free() {
        let dir = std::env::temp_dir().join(format!("wakurln-unlock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keystore.json");
        let credential = MembershipCredential::pending(to_stored(&Identity::from_seed(b"u")));
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let kdf = Kdf::Pbkdf2 { c: 300_000 };
        let key = Keystore::add(&path, &credential, b"pw", kdf, &mut rng).unwrap();

        // One runtime thread: if derivation ran on it, the ticker could not tick meanwhile.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let ticks = Arc::new(AtomicU64::new(0));
        let unlocked = runtime.block_on(async {
            let counter = ticks.clone();
            let ticker = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
            let out = unlock(path.clone(), key, Zeroizing::new("pw".into())).await;
            ticker.abort();
            out
        });
        assert_eq!(unlocked.unwrap(), credential);
        assert!(
            ticks.load(Ordering::Relaxed) >= 3,
            "the runtime thread was blocked"
        );
    }
}
