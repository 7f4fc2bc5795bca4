//! Registering a membership and filing its credential, in the one order that cannot lose a
//! paid membership: the identity is written to the keystore (as a pending credential) before
//! any transaction is sent, and refiled under its membership once the chain has it.

use std::path::Path;

use wakurln_keystore::{Kdf, Keystore, KeystoreError, MembershipCredential};

use crate::{
    chain::{
        ChainClient, ChainError,
        membership::{self, Plan, Registration},
    },
    credentials,
    rln::identity::Identity,
};

/// Why a registration did not complete. A [`Self::Chain`] error after the identity was
/// stored leaves it pending in the keystore, ready to be registered again.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The chain refused or failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The keystore could not be written.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
}

/// What the workflow is doing, for progress output.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// Writing the new identity to the keystore.
    Storing(&'a Path),
    /// Sending a transaction (its description).
    Sending(&'a str),
    /// Registered at this index; filing the credential under its membership.
    Filing(u32),
}

/// A registered membership and where its credential is filed.
#[derive(Debug, Clone)]
pub struct Filed {
    /// The credential's key in the keystore.
    pub key: String,
    /// The registration as the chain reported it.
    pub registration: Registration,
}

/// Registers `identity` with `rate_limit` along `plan` and files its credential in
/// `keystore`. `pending` is the key of the identity's pending credential when the keystore
/// already holds it; otherwise it is stored first.
#[allow(clippy::too_many_arguments)]
pub async fn register_and_file(
    client: &ChainClient,
    plan: &Plan,
    identity: &Identity,
    rate_limit: u32,
    keystore: &Path,
    pending: Option<String>,
    password: &[u8],
    mut progress: impl FnMut(Step<'_>),
) -> Result<Filed, RegistrationError> {
    let pending = match pending {
        Some(key) => key,
        None => {
            let credential = MembershipCredential::pending(credentials::to_stored(identity));
            progress(Step::Storing(keystore));
            Keystore::add(
                keystore,
                &credential,
                password,
                Kdf::default(),
                &mut rand::rngs::OsRng,
            )?
        }
    };
    for t in &plan.transactions {
        progress(Step::Sending(&t.what));
    }
    let registration = membership::register(client, plan).await?;
    progress(Step::Filing(registration.index));
    let credential = credentials::registered(identity, client, registration.index, rate_limit);
    let key = Keystore::refile(
        keystore,
        &pending,
        &credential,
        password,
        Kdf::default(),
        &mut rand::rngs::OsRng,
    )?;
    Ok(Filed { key, registration })
}
