//! RLN identities: `secret_hash = Poseidon(trapdoor, nullifier)`,
//! `commitment = Poseidon(secret_hash)`, and the membership leaf
//! `rate_commitment = Poseidon(commitment, user_message_limit)`.

use ark_ff::UniformRand;
use rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha3::{Digest, Keccak256};

use crate::{
    field::Fr,
    poseidon::{poseidon, poseidon2},
};

/// A member's identity. The secret hash is what the circuit proves knowledge of; the
/// commitment is what the contract stores (with the rate limit, as the rate commitment).
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// Random trapdoor.
    pub trapdoor: Fr,
    /// Random nullifier (of the identity, not of a message).
    pub nullifier: Fr,
    /// `Poseidon(trapdoor, nullifier)`: the circuit's `identitySecret`.
    pub secret_hash: Fr,
    /// `Poseidon(secret_hash)`: the public identity commitment.
    pub commitment: Fr,
}

impl Identity {
    /// Derives the identity of a trapdoor and nullifier.
    pub fn from_parts(trapdoor: Fr, nullifier: Fr) -> Self {
        let secret_hash = poseidon2(trapdoor, nullifier);
        Self {
            trapdoor,
            nullifier,
            secret_hash,
            commitment: poseidon(&[secret_hash]),
        }
    }

    /// A fresh identity from a cryptographically secure random number generator.
    pub fn random<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self::from_parts(Fr::rand(rng), Fr::rand(rng))
    }

    /// A fresh identity from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self::random(&mut rand::rngs::OsRng)
    }

    /// A deterministic identity: ChaCha20 seeded with Keccak-256 of `seed` draws the trapdoor,
    /// then the nullifier. The same seed always gives the same identity, so a seed is as
    /// secret as the identity itself.
    pub fn from_seed(seed: &[u8]) -> Self {
        let mut rng = ChaCha20Rng::from_seed(Keccak256::digest(seed).into());
        Self::random(&mut rng)
    }

    /// The membership leaf for this identity at `user_message_limit` messages per epoch.
    pub fn rate_commitment(&self, user_message_limit: u64) -> Fr {
        rate_commitment(self.commitment, user_message_limit)
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets stay out of logs; the commitment is public.
        f.debug_struct("Identity")
            .field("commitment", &self.commitment)
            .finish_non_exhaustive()
    }
}

impl Drop for Identity {
    /// Wipes the secrets (the commitment is public).
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.trapdoor.zeroize();
        self.nullifier.zeroize();
        self.secret_hash.zeroize();
    }
}

/// `Poseidon(commitment, user_message_limit)`: the leaf stored in the membership tree.
pub fn rate_commitment(commitment: Fr, user_message_limit: u64) -> Fr {
    poseidon2(commitment, Fr::from(user_message_limit))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn seeded_identities_are_deterministic_and_distinct() {
        let a = Identity::from_seed(b"alice");
        assert_eq!(a, Identity::from_seed(b"alice"));
        assert_ne!(a, Identity::from_seed(b"bob"));
        assert_eq!(a.secret_hash, poseidon2(a.trapdoor, a.nullifier));
        assert_eq!(a.commitment, poseidon(&[a.secret_hash]));
    }

    #[test]
    fn random_identities_differ_and_debug_hides_secrets() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let a = Identity::random(&mut rng);
        let b = Identity::random(&mut rng);
        assert_ne!(a.commitment, b.commitment);
        let shown = format!("{a:?}");
        assert!(!shown.contains("trapdoor"), "{shown}");
        assert_eq!(
            a.rate_commitment(100),
            poseidon2(a.commitment, Fr::from(100u64))
        );
    }
}
