//! The plaintext membership credential and the key it is filed under.
//!
//! The key is the uppercase hex SHA-256 of `chainId + address + treeIndex` exactly as the
//! strings are written in the credential, so the same membership has the same key in every
//! implementation. Identity secrets are 32-byte little-endian arrays, written as JSON arrays
//! of integers.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A chain id as written in the credential: the JS client writes hex (`"0xAA36A7"`), the Nim
/// node decimal. Kept verbatim because the key hashes the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ChainId(pub String);

impl ChainId {
    /// The numeric chain id, whether written in hex or decimal.
    pub fn value(&self) -> Option<u64> {
        let s = self.0.trim();
        match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(hex_digits) => u64::from_str_radix(hex_digits, 16).ok(),
            None => s.parse().ok(),
        }
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ChainId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u64),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Text(s) => Self(s),
            Raw::Number(n) => Self(n.to_string()),
        })
    }
}

/// The membership contract a credential is registered with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipContract {
    /// The chain.
    pub chain_id: ChainId,
    /// The contract address (as written, checksummed or not).
    pub address: String,
}

/// The identity secrets: each a 32-byte little-endian field element. Zeroed on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(rename_all = "camelCase")]
pub struct IdentityCredential {
    /// Random trapdoor.
    pub id_trapdoor: [u8; 32],
    /// Random nullifier.
    pub id_nullifier: [u8; 32],
    /// `Poseidon(trapdoor, nullifier)`.
    pub id_secret_hash: [u8; 32],
    /// `Poseidon(secret_hash)`, the public commitment.
    pub id_commitment: [u8; 32],
}

impl fmt::Debug for IdentityCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityCredential")
            .field("id_commitment", &hex::encode(self.id_commitment))
            .finish_non_exhaustive()
    }
}

/// A member's credential: its identity and where its membership lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipCredential {
    /// The contract the membership is registered with (empty before registration).
    pub membership_contract: MembershipContract,
    /// The member's leaf index in the membership tree.
    pub tree_index: u64,
    /// The identity.
    pub identity_credential: IdentityCredential,
    /// Messages per epoch; absent in files written before RLN v2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_message_limit: Option<u64>,
}

impl MembershipCredential {
    /// A credential for an identity not registered yet (no contract, no tree index).
    pub fn pending(identity: IdentityCredential) -> Self {
        Self {
            membership_contract: MembershipContract {
                chain_id: ChainId(String::new()),
                address: String::new(),
            },
            tree_index: 0,
            identity_credential: identity,
            user_message_limit: None,
        }
    }

    /// Whether the identity is still waiting for its registration.
    pub fn is_pending(&self) -> bool {
        self.membership_contract.chain_id.0.is_empty()
            && self.membership_contract.address.is_empty()
    }

    /// The key the credential is filed under. A registered credential uses the common key
    /// `SHA-256(chainId + address + treeIndex)`. A pending one has no tree index to hash, so
    /// its key hashes its commitment instead (`"pending:" + hex commitment`), which keeps two
    /// pending identities apart; registration refiles it under the common key.
    pub fn key(&self) -> String {
        let text = if self.is_pending() {
            format!(
                "pending:{}",
                hex::encode(self.identity_credential.id_commitment)
            )
        } else {
            format!(
                "{}{}{}",
                self.membership_contract.chain_id,
                self.membership_contract.address,
                self.tree_index
            )
        };
        hex::encode_upper(Sha256::digest(text.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_of_the_published_vector() {
        let cred = MembershipCredential {
            membership_contract: MembershipContract {
                chain_id: ChainId("0xAA36A7".into()),
                address: "0x8e1F3742B987d8BA376c0CBbD7357fE1F003ED71".into(),
            },
            tree_index: 8,
            identity_credential: IdentityCredential {
                id_trapdoor: [0; 32],
                id_nullifier: [0; 32],
                id_secret_hash: [0; 32],
                id_commitment: [0; 32],
            },
            user_message_limit: None,
        };
        assert_eq!(
            cred.key(),
            "9DB2B4718A97485B9F70F68D1CC19F4E10F0B4CE943418838E94956CB8E57548"
        );
        assert_eq!(cred.membership_contract.chain_id.value(), Some(11_155_111));
        assert!(!cred.is_pending());
    }

    #[test]
    fn chain_id_reads_numbers_and_strings() {
        let n: ChainId = serde_json::from_str("59141").unwrap();
        let s: ChainId = serde_json::from_str("\"59141\"").unwrap();
        assert_eq!((n.value(), s.value()), (Some(59141), Some(59141)));
    }
}
