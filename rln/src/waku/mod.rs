//! The rules 17/WAKU2-RLN-RELAY puts around RLN, as the deployed nodes apply them: the RLN
//! identifier, epochs, the external nullifier, the signal hash of a message, the proof's wire
//! forms, and recovering a double-signaller's secret.
//!
//! Nothing here verifies a zk proof; the validator does that with these values.

mod epoch;
mod layout;
mod proof;

use ark_ff::{Field, PrimeField};

pub use epoch::{DEFAULT_EPOCH_PERIOD_SECS, Epoch, EpochError};
pub use layout::{
    LAYOUT_BYTES, LayoutError, PROOF_BYTES, ProofValues, RlnProofBytes, VALUES_BYTES,
};
pub use proof::{ProofDecodeError, RlnProofData};

use crate::{
    field::{FR_BYTES, Fr, hash_to_field},
    poseidon::poseidon2,
};

/// The RLN identifier of Waku relay, as ASCII.
pub const RLN_IDENTIFIER: &[u8] = b"rln/waku-rln-relay/v2.0.0";

/// [`RLN_IDENTIFIER`] as a field element: the ASCII zero-padded to 32 bytes and read
/// little-endian. The deployed nodes use these bytes directly; they are not hashed.
pub fn rln_identifier() -> Fr {
    let mut padded = [0u8; FR_BYTES];
    padded[..RLN_IDENTIFIER.len()].copy_from_slice(RLN_IDENTIFIER);
    // 25 bytes of ASCII are far below r, so nothing is reduced.
    Fr::from_le_bytes_mod_order(&padded)
}

/// `Poseidon(epoch, rln_identifier)`: what makes one member's nullifiers differ per epoch and
/// per application.
pub fn external_nullifier(epoch: Epoch, rln_identifier: Fr) -> Fr {
    poseidon2(epoch.to_field(), rln_identifier)
}

/// The signal hash `x` of a message: `hash_to_field(payload || content_topic || timestamp)`,
/// the timestamp as 8 bytes little-endian (a negative value keeps its two's-complement bits).
pub fn signal_x(payload: &[u8], content_topic: &str, timestamp_ns: i64) -> Fr {
    let timestamp = (timestamp_ns as u64).to_le_bytes();
    hash_to_field(&[payload, content_topic.as_bytes(), &timestamp].concat())
}

/// Why a secret could not be recovered from two shares.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoverError {
    /// Two points with the same x do not determine a line.
    #[error("both shares have the same x, so they do not determine the secret")]
    SameX,
}

/// Recovers the identity secret from two shares `(x, y)` of the same line
/// `y = secret + a1 * x`, i.e. two messages with the same nullifier.
pub fn recover_secret(first: (Fr, Fr), second: (Fr, Fr)) -> Result<Fr, RecoverError> {
    let ((x1, y1), (x2, y2)) = (first, second);
    let inverse = (x1 - x2).inverse().ok_or(RecoverError::SameX)?;
    let a1 = (y1 - y2) * inverse;
    Ok(y1 - x1 * a1)
}

#[cfg(test)]
mod tests {
    use ark_ff::UniformRand;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;
    use sha3::{Digest, Keccak256};

    use super::*;
    use crate::field::{parse, to_le_bytes};

    #[test]
    fn rln_identifier_is_the_padded_ascii() {
        let bytes = to_le_bytes(&rln_identifier());
        assert_eq!(&bytes[..25], b"rln/waku-rln-relay/v2.0.0");
        assert!(bytes[25..].iter().all(|b| *b == 0));
        // int.from_bytes(b"rln/waku-rln-relay/v2.0.0", "little")
        assert_eq!(
            rln_identifier(),
            parse("302433414787653651225422236142598556031702078997114865478770").unwrap()
        );
    }

    #[test]
    fn external_nullifier_is_poseidon_of_epoch_and_identifier() {
        let epoch = Epoch(2_833_333);
        assert_eq!(
            external_nullifier(epoch, rln_identifier()),
            poseidon2(Fr::from(2_833_333u64), rln_identifier())
        );
        assert_ne!(
            external_nullifier(epoch, rln_identifier()),
            external_nullifier(Epoch(2_833_334), rln_identifier())
        );
    }

    #[test]
    fn signal_x_hashes_payload_topic_and_le_timestamp() {
        let ts: i64 = 0x0102_0304_0506_0708;
        let mut hasher = Keccak256::new();
        hasher.update(b"hello");
        hasher.update(b"/toychat/2/huilong/proto");
        hasher.update([8, 7, 6, 5, 4, 3, 2, 1]);
        let expected = Fr::from_le_bytes_mod_order(&hasher.finalize());
        assert_eq!(signal_x(b"hello", "/toychat/2/huilong/proto", ts), expected);
        // A big-endian timestamp would give a different x.
        assert_ne!(
            signal_x(b"hello", "/toychat/2/huilong/proto", ts.swap_bytes()),
            expected
        );
    }

    #[test]
    fn recovers_the_secret_from_two_shares() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for _ in 0..8 {
            let secret = Fr::rand(&mut rng);
            let a1 = Fr::rand(&mut rng);
            let share = |x: Fr| (x, secret + a1 * x);
            let (x1, x2) = (Fr::rand(&mut rng), Fr::rand(&mut rng));
            assert_eq!(recover_secret(share(x1), share(x2)), Ok(secret));
            assert_eq!(recover_secret(share(x2), share(x1)), Ok(secret));
        }
    }

    #[test]
    fn the_same_x_twice_recovers_nothing() {
        let x = Fr::from(5u64);
        assert_eq!(
            recover_secret((x, Fr::from(1u64)), (x, Fr::from(2u64))),
            Err(RecoverError::SameX)
        );
    }
}
