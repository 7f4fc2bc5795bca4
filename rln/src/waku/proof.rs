//! [`RlnProofData`]: the `RateLimitProof` a Waku message carries in field 21, with every
//! length and range checked once at decode so the validator works on typed values.

use ark_ff::PrimeField;
use bytes::Bytes;
use prost::Message as _;

use super::{
    Epoch, EpochError, external_nullifier,
    layout::{LayoutError, PROOF_BYTES, ProofValues, RlnProofBytes},
};
use crate::{
    field::{FR_BYTES, Fr, from_le_bytes, to_le_bytes},
    proto::RateLimitProof,
};

/// Why a `RateLimitProof` could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofDecodeError {
    /// The bytes are not a `RateLimitProof` protobuf.
    #[error("the RLN proof is not a valid RateLimitProof protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The zk proof has the wrong length.
    #[error("the zk proof must be {PROOF_BYTES} bytes (compressed Groth16), got {0}")]
    ProofLength(usize),
    /// A field element is not 32 bytes.
    #[error("RLN proof field `{field}` must be a 32-byte field element, got {len} bytes")]
    FieldLength {
        /// The protobuf field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// A field element is not below the field modulus.
    #[error("RLN proof field `{field}` is not below the BN254 scalar field modulus")]
    NotCanonical {
        /// The protobuf field.
        field: &'static str,
    },
    /// The epoch is malformed.
    #[error("RLN proof field `epoch` is malformed: {0}")]
    Epoch(#[from] EpochError),
}

/// A decoded `RateLimitProof`: the proof kept opaque, every other value typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RlnProofData {
    /// Compressed Groth16 proof: A (32) | B (64) | C (32).
    pub proof: [u8; PROOF_BYTES],
    /// Root of the membership tree the proof was made against.
    pub merkle_root: Fr,
    /// The epoch the proof is for.
    pub epoch: Epoch,
    /// The signal hash of the message.
    pub share_x: Fr,
    /// The share `y = secret + a1 * x`.
    pub share_y: Fr,
    /// The message nullifier.
    pub nullifier: Fr,
    /// The application's RLN identifier (see [`super::rln_identifier`]).
    pub rln_identifier: Fr,
}

impl RlnProofData {
    /// Decodes and checks a serialized `RateLimitProof`.
    ///
    /// A `share_x` at or above the modulus is reduced instead of refused: one implementation
    /// writes the raw Keccak-256 of the signal there rather than `hash_to_field` of it, and
    /// both name the same field element, which is all the verifier compares. Every other
    /// value must be canonical, as arkworks and zerokit write them.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProofDecodeError> {
        Self::try_from(RateLimitProof::decode(bytes)?)
    }

    /// Encodes as a `RateLimitProof` protobuf (canonical field elements throughout).
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// The wire form.
    pub fn to_proto(&self) -> RateLimitProof {
        let fr = |x: &Fr| Bytes::copy_from_slice(&to_le_bytes(x));
        RateLimitProof {
            proof: Bytes::copy_from_slice(&self.proof),
            merkle_root: fr(&self.merkle_root),
            epoch: Bytes::copy_from_slice(&self.epoch.to_bytes()),
            share_x: fr(&self.share_x),
            share_y: fr(&self.share_y),
            nullifier: fr(&self.nullifier),
            rln_identifier: fr(&self.rln_identifier),
        }
    }

    /// `Poseidon(epoch, rln_identifier)` for this proof.
    pub fn external_nullifier(&self) -> Fr {
        external_nullifier(self.epoch, self.rln_identifier)
    }

    /// The values the circuit checks, with the external nullifier computed.
    pub fn values(&self) -> ProofValues {
        self.values_with(self.external_nullifier())
    }

    /// The values the circuit checks, given this proof's external nullifier (computed once
    /// for many proofs of one epoch).
    pub fn values_with(&self, external_nullifier: Fr) -> ProofValues {
        ProofValues {
            root: self.merkle_root,
            external_nullifier,
            x: self.share_x,
            y: self.share_y,
            nullifier: self.nullifier,
        }
    }

    /// The flat 288-byte form used by the CLI.
    pub fn to_rln_layout(&self) -> RlnProofBytes {
        RlnProofBytes {
            proof: self.proof,
            values: self.values(),
        }
    }

    /// Rebuilds the protobuf form from the flat layout. The layout holds only the external
    /// nullifier, so the caller names the epoch and RLN identifier, and they must hash to it.
    pub fn from_rln_layout(
        layout: &RlnProofBytes,
        epoch: Epoch,
        rln_identifier: Fr,
    ) -> Result<Self, LayoutError> {
        let values = &layout.values;
        if external_nullifier(epoch, rln_identifier) != values.external_nullifier {
            return Err(LayoutError::ExternalNullifierMismatch { epoch });
        }
        Ok(Self {
            proof: layout.proof,
            merkle_root: values.root,
            epoch,
            share_x: values.x,
            share_y: values.y,
            nullifier: values.nullifier,
            rln_identifier,
        })
    }
}

impl TryFrom<RateLimitProof> for RlnProofData {
    type Error = ProofDecodeError;

    fn try_from(wire: RateLimitProof) -> Result<Self, Self::Error> {
        let proof = <[u8; PROOF_BYTES]>::try_from(&wire.proof[..])
            .map_err(|_| ProofDecodeError::ProofLength(wire.proof.len()))?;
        Ok(Self {
            proof,
            merkle_root: canonical("merkle_root", &wire.merkle_root)?,
            epoch: Epoch::from_bytes(&wire.epoch)?,
            share_x: Fr::from_le_bytes_mod_order(checked_len("share_x", &wire.share_x)?),
            share_y: canonical("share_y", &wire.share_y)?,
            nullifier: canonical("nullifier", &wire.nullifier)?,
            rln_identifier: canonical("rln_identifier", &wire.rln_identifier)?,
        })
    }
}

fn checked_len<'a>(field: &'static str, bytes: &'a [u8]) -> Result<&'a [u8], ProofDecodeError> {
    if bytes.len() == FR_BYTES {
        Ok(bytes)
    } else {
        Err(ProofDecodeError::FieldLength {
            field,
            len: bytes.len(),
        })
    }
}

fn canonical(field: &'static str, bytes: &[u8]) -> Result<Fr, ProofDecodeError> {
    // With the length checked, the only refusal left is a value >= r.
    from_le_bytes(checked_len(field, bytes)?).map_err(|_| ProofDecodeError::NotCanonical { field })
}

#[cfg(test)]
mod tests {
    use ark_ff::{BigInteger, UniformRand};
    use proptest::prelude::*;
    use rand::{RngCore, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    use super::*;
    use crate::waku::rln_identifier;

    fn sample(seed: u64) -> RlnProofData {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut proof = [0u8; PROOF_BYTES];
        rng.fill_bytes(&mut proof);
        RlnProofData {
            proof,
            merkle_root: Fr::rand(&mut rng),
            epoch: Epoch(2_833_333),
            share_x: Fr::rand(&mut rng),
            share_y: Fr::rand(&mut rng),
            nullifier: Fr::rand(&mut rng),
            rln_identifier: rln_identifier(),
        }
    }

    fn decode_wire(wire: &RateLimitProof) -> Result<RlnProofData, ProofDecodeError> {
        RlnProofData::decode(&wire.encode_to_vec())
    }

    #[test]
    fn protobuf_round_trip() {
        let data = sample(1);
        let bytes = data.encode();
        assert_eq!(RlnProofData::decode(&bytes), Ok(data.clone()));
        let wire = RateLimitProof::decode(&bytes[..]).unwrap();
        assert_eq!(&wire.epoch[..], &data.epoch.to_bytes());
        assert_eq!(&wire.share_y[..], &to_le_bytes(&data.share_y));
    }

    #[test]
    fn refuses_bytes_that_are_not_protobuf() {
        let err = RlnProofData::decode(&[0xff, 0xff, 0xff]).unwrap_err();
        assert!(matches!(err, ProofDecodeError::Protobuf(_)), "{err}");
    }

    #[test]
    fn refuses_a_proof_of_the_wrong_length() {
        let mut wire = sample(2).to_proto();
        wire.proof = Bytes::from(vec![0u8; 127]);
        assert_eq!(decode_wire(&wire), Err(ProofDecodeError::ProofLength(127)));
        wire.proof = Bytes::new();
        assert_eq!(decode_wire(&wire), Err(ProofDecodeError::ProofLength(0)));
    }

    #[test]
    fn refuses_field_elements_of_the_wrong_length() {
        type Setter = fn(&mut RateLimitProof, Bytes);
        let setters: [(&str, Setter); 5] = [
            ("merkle_root", |w, b| w.merkle_root = b),
            ("share_x", |w, b| w.share_x = b),
            ("share_y", |w, b| w.share_y = b),
            ("nullifier", |w, b| w.nullifier = b),
            ("rln_identifier", |w, b| w.rln_identifier = b),
        ];
        for (field, set) in setters {
            let mut wire = sample(3).to_proto();
            set(&mut wire, Bytes::from(vec![1u8; 31]));
            assert_eq!(
                decode_wire(&wire),
                Err(ProofDecodeError::FieldLength { field, len: 31 })
            );
        }
        let mut wire = sample(3).to_proto();
        wire.epoch = Bytes::from(vec![0u8; 8]);
        assert_eq!(
            decode_wire(&wire),
            Err(ProofDecodeError::Epoch(EpochError::WrongLength(8)))
        );
    }

    #[test]
    fn refuses_non_canonical_values_and_a_wide_epoch() {
        type Setter = fn(&mut RateLimitProof, Bytes);
        let setters: [(&str, Setter); 4] = [
            ("merkle_root", |w, b| w.merkle_root = b),
            ("share_y", |w, b| w.share_y = b),
            ("nullifier", |w, b| w.nullifier = b),
            ("rln_identifier", |w, b| w.rln_identifier = b),
        ];
        for (field, set) in setters {
            let mut wire = sample(4).to_proto();
            set(&mut wire, Bytes::from(vec![0xffu8; 32]));
            assert_eq!(
                decode_wire(&wire),
                Err(ProofDecodeError::NotCanonical { field })
            );
        }
        let mut wire = sample(4).to_proto();
        let mut epoch = [0u8; 32];
        epoch[20] = 7;
        wire.epoch = Bytes::copy_from_slice(&epoch);
        assert_eq!(
            decode_wire(&wire),
            Err(ProofDecodeError::Epoch(EpochError::HighBytesNotZero {
                index: 20,
                value: 7
            }))
        );
    }

    #[test]
    fn reduces_a_raw_keccak_share_x() {
        let data = sample(5);
        // x + r: the same field element, written without reduction.
        let mut modulus = Fr::MODULUS;
        modulus.add_with_carry(&data.share_x.into_bigint());
        let unreduced = modulus.to_bytes_le();
        assert!(
            from_le_bytes(&unreduced).is_err(),
            "test value must be >= r"
        );
        let mut wire = data.to_proto();
        wire.share_x = Bytes::from(unreduced);
        assert_eq!(decode_wire(&wire), Ok(data));
    }

    #[test]
    fn layout_round_trip_needs_the_matching_epoch() {
        let data = sample(6);
        let layout = data.to_rln_layout();
        assert_eq!(
            layout.values.external_nullifier,
            external_nullifier(data.epoch, data.rln_identifier)
        );
        let parsed = RlnProofBytes::from_bytes(&layout.to_bytes()).unwrap();
        assert_eq!(
            RlnProofData::from_rln_layout(&parsed, data.epoch, data.rln_identifier),
            Ok(data.clone())
        );
        let other = Epoch(data.epoch.0 + 1);
        assert_eq!(
            RlnProofData::from_rln_layout(&parsed, other, data.rln_identifier),
            Err(LayoutError::ExternalNullifierMismatch { epoch: other })
        );
    }

    fn field_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..40),
            prop::collection::vec(any::<u8>(), 32),
            prop::collection::vec(0u8..0x20, 32),
            prop::collection::vec(any::<u8>(), 8).prop_map(|mut v| {
                v.resize(32, 0);
                v
            }),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = RlnProofData::decode(&bytes);
        }

        #[test]
        fn arbitrary_fields_never_panic(
            proof in prop::collection::vec(any::<u8>(), 126..130),
            fields in prop::collection::vec(field_bytes(), 6),
        ) {
            let wire = RateLimitProof {
                proof: proof.into(),
                merkle_root: fields[0].clone().into(),
                epoch: fields[1].clone().into(),
                share_x: fields[2].clone().into(),
                share_y: fields[3].clone().into(),
                nullifier: fields[4].clone().into(),
                rln_identifier: fields[5].clone().into(),
            };
            if let Ok(data) = decode_wire(&wire) {
                prop_assert_eq!(RlnProofData::decode(&data.encode()), Ok(data));
            }
        }
    }
}
