//! `wakurln-keystore`: RLN membership credentials, encrypted, in the keystore format the Nim
//! node and the JS client use (application `waku-rln-relay`, version `0.2`), so a keystore
//! moves between implementations without conversion.
//!
//! - [`credential`]: the plaintext membership credential and the key it is filed under.
//! - [`crypto`]: per-credential encryption (pbkdf2 or scrypt, aes-128-ctr, Keccak MAC).
//! - [`Keystore`]: the file: reading without a password, adding, decrypting, removing, with
//!   atomic, locked, mode-0600 writes that never drop credentials already there.
//!
//! Key derivation is deliberately slow (a second or more): run it off async runtime threads.

pub mod credential;
pub mod crypto;
mod error;
mod file;

pub use credential::{ChainId, IdentityCredential, MembershipContract, MembershipCredential};
pub use crypto::{Kdf, KdfParams};
pub use error::KeystoreError;
pub use file::{Entry, Keystore};

/// The `application` field every keystore carries.
pub const APPLICATION: &str = "waku-rln-relay";
/// The `appIdentifier` field.
pub const APP_IDENTIFIER: &str = "01234567890abcdef";
/// The format version.
pub const VERSION: &str = "0.2";
