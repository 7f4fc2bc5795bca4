//! The flat 288-byte proof layout the CLI reads and writes (and zerokit's RLN v2 uses):
//! `proof (128) | root | external_nullifier | x | y | nullifier`, each value a 32-byte
//! little-endian field element.
//!
//! Unlike the `RateLimitProof` protobuf it carries the external nullifier itself rather than
//! the epoch and RLN identifier it is hashed from, which is exactly what the verifier needs.

use crate::field::{FR_BYTES, Fr, from_le_bytes, to_le_bytes};

use super::Epoch;

/// Length of a compressed Groth16 proof: A (32) | B (64) | C (32), arkworks compressed points.
pub const PROOF_BYTES: usize = 128;
/// Length of the five proof values.
pub const VALUES_BYTES: usize = 5 * FR_BYTES;
/// Length of the whole layout.
pub const LAYOUT_BYTES: usize = PROOF_BYTES + VALUES_BYTES;

const VALUE_NAMES: [&str; 5] = ["root", "external_nullifier", "x", "y", "nullifier"];

/// Why bytes could not be read as the flat proof layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The input has the wrong length.
    #[error("an RLN proof is {expected} bytes in this layout, got {got}")]
    WrongLength {
        /// The length this layout has.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// A value is not a canonical field element.
    #[error("`{field}` in the RLN proof is not below the BN254 scalar field modulus")]
    NotCanonical {
        /// Which value.
        field: &'static str,
    },
    /// The layout's external nullifier is not the one of the epoch and identifier supplied.
    #[error(
        "the proof's external nullifier does not match epoch {epoch} with the given RLN identifier"
    )]
    ExternalNullifierMismatch {
        /// The epoch the caller expected.
        epoch: Epoch,
    },
}

/// The values a proof commits to: the circuit's public inputs and outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofValues {
    /// Merkle root of the membership tree the prover used.
    pub root: Fr,
    /// `Poseidon(epoch, rln_identifier)`.
    pub external_nullifier: Fr,
    /// The signal hash (share x).
    pub x: Fr,
    /// The share `y = secret + a1 * x`.
    pub y: Fr,
    /// The message nullifier `Poseidon(a1)`.
    pub nullifier: Fr,
}

impl ProofValues {
    /// The public signals in the order the verifier takes them:
    /// `[y, root, nullifier, x, external_nullifier]`.
    pub fn public_inputs(&self) -> [Fr; 5] {
        [
            self.y,
            self.root,
            self.nullifier,
            self.x,
            self.external_nullifier,
        ]
    }

    /// `root | external_nullifier | x | y | nullifier`, 32 bytes little-endian each.
    pub fn to_bytes(&self) -> [u8; VALUES_BYTES] {
        let mut out = [0u8; VALUES_BYTES];
        let values = [
            self.root,
            self.external_nullifier,
            self.x,
            self.y,
            self.nullifier,
        ];
        for (chunk, value) in out.chunks_exact_mut(FR_BYTES).zip(&values) {
            chunk.copy_from_slice(&to_le_bytes(value));
        }
        out
    }

    /// Reads exactly [`VALUES_BYTES`] bytes written by [`ProofValues::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LayoutError> {
        if bytes.len() != VALUES_BYTES {
            return Err(LayoutError::WrongLength {
                expected: VALUES_BYTES,
                got: bytes.len(),
            });
        }
        let mut values = [Fr::from(0u64); 5];
        for ((value, chunk), field) in values
            .iter_mut()
            .zip(bytes.chunks_exact(FR_BYTES))
            .zip(VALUE_NAMES)
        {
            // The length is right, so the only possible refusal is a value >= r.
            *value = from_le_bytes(chunk).map_err(|_| LayoutError::NotCanonical { field })?;
        }
        let [root, external_nullifier, x, y, nullifier] = values;
        Ok(Self {
            root,
            external_nullifier,
            x,
            y,
            nullifier,
        })
    }
}

/// A proof with its values, in the flat 288-byte layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RlnProofBytes {
    /// The compressed Groth16 proof, kept opaque until the verifier parses it.
    pub proof: [u8; PROOF_BYTES],
    /// The values the proof commits to.
    pub values: ProofValues,
}

impl RlnProofBytes {
    /// `proof | values`, [`LAYOUT_BYTES`] bytes.
    pub fn to_bytes(&self) -> [u8; LAYOUT_BYTES] {
        let mut out = [0u8; LAYOUT_BYTES];
        out[..PROOF_BYTES].copy_from_slice(&self.proof);
        out[PROOF_BYTES..].copy_from_slice(&self.values.to_bytes());
        out
    }

    /// Reads exactly [`LAYOUT_BYTES`] bytes written by [`RlnProofBytes::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LayoutError> {
        if bytes.len() != LAYOUT_BYTES {
            return Err(LayoutError::WrongLength {
                expected: LAYOUT_BYTES,
                got: bytes.len(),
            });
        }
        let (proof_bytes, values) = bytes.split_at(PROOF_BYTES);
        let mut proof = [0u8; PROOF_BYTES];
        proof.copy_from_slice(proof_bytes);
        Ok(Self {
            proof,
            values: ProofValues::from_bytes(values)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use ark_ff::UniformRand;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    fn sample(seed: u64) -> RlnProofBytes {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut proof = [0u8; PROOF_BYTES];
        rand::RngCore::fill_bytes(&mut rng, &mut proof);
        RlnProofBytes {
            proof,
            values: ProofValues {
                root: Fr::rand(&mut rng),
                external_nullifier: Fr::rand(&mut rng),
                x: Fr::rand(&mut rng),
                y: Fr::rand(&mut rng),
                nullifier: Fr::rand(&mut rng),
            },
        }
    }

    #[test]
    fn layout_round_trip_and_offsets() {
        let original = sample(1);
        let bytes = original.to_bytes();
        assert_eq!(bytes.len(), 288);
        assert_eq!(&bytes[..128], &original.proof);
        let v = &original.values;
        let at = |i: usize| &bytes[128 + 32 * i..160 + 32 * i];
        assert_eq!(at(0), to_le_bytes(&v.root));
        assert_eq!(at(1), to_le_bytes(&v.external_nullifier));
        assert_eq!(at(2), to_le_bytes(&v.x));
        assert_eq!(at(3), to_le_bytes(&v.y));
        assert_eq!(at(4), to_le_bytes(&v.nullifier));
        assert_eq!(RlnProofBytes::from_bytes(&bytes), Ok(original));
    }

    #[test]
    fn public_inputs_follow_the_verifier_order() {
        let v = sample(2).values;
        assert_eq!(
            v.public_inputs(),
            [v.y, v.root, v.nullifier, v.x, v.external_nullifier]
        );
    }

    #[test]
    fn refuses_bad_lengths_and_non_canonical_values() {
        assert_eq!(
            RlnProofBytes::from_bytes(&[0; 287]),
            Err(LayoutError::WrongLength {
                expected: 288,
                got: 287
            })
        );
        assert_eq!(
            ProofValues::from_bytes(&[0; 161]),
            Err(LayoutError::WrongLength {
                expected: 160,
                got: 161
            })
        );
        for (i, field) in VALUE_NAMES.into_iter().enumerate() {
            let mut bytes = sample(3).to_bytes();
            let start = PROOF_BYTES + i * FR_BYTES;
            bytes[start..start + FR_BYTES].fill(0xff);
            assert_eq!(
                RlnProofBytes::from_bytes(&bytes),
                Err(LayoutError::NotCanonical { field })
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = RlnProofBytes::from_bytes(&bytes);
            let _ = ProofValues::from_bytes(&bytes);
        }

        #[test]
        fn values_below_2_pow_253_round_trip(
            mut bytes in prop::collection::vec(any::<u8>(), LAYOUT_BYTES)
        ) {
            // Clearing the top three bits of each value keeps it below r (about 2^253.6).
            for end in (PROOF_BYTES + FR_BYTES..=LAYOUT_BYTES).step_by(FR_BYTES) {
                bytes[end - 1] &= 0x1f;
            }
            let parsed = RlnProofBytes::from_bytes(&bytes).unwrap();
            prop_assert_eq!(&parsed.to_bytes()[..], &bytes[..]);
        }
    }
}
