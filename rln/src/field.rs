//! The BN254 scalar field `r` as RLN uses it: little-endian 32-byte encodings, decimal strings,
//! and `hash_to_field` (Keccak-256 of the bytes, read little-endian, reduced mod r).

use ark_ff::{BigInteger, PrimeField};
use sha3::{Digest, Keccak256};

pub use ark_bn254::Fr;

/// Byte length of a serialized field element.
pub const FR_BYTES: usize = 32;

/// Why bytes or text could not be read as a field element.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// Not exactly 32 bytes.
    #[error("a field element is 32 bytes, got {0}")]
    WrongLength(usize),
    /// The integer is not below the field modulus.
    #[error("value is not below the BN254 scalar field modulus")]
    NotCanonical,
    /// Text that is neither a decimal nor a 0x-prefixed hex number.
    #[error("`{0}` is not a decimal or 0x-prefixed hex number")]
    BadNumber(String),
}

/// The 32-byte little-endian encoding of `x`.
pub fn to_le_bytes(x: &Fr) -> [u8; FR_BYTES] {
    let mut out = [0u8; FR_BYTES];
    out.copy_from_slice(&x.into_bigint().to_bytes_le());
    out
}

/// Reads a canonical 32-byte little-endian field element (refuses values >= r).
pub fn from_le_bytes(bytes: &[u8]) -> Result<Fr, FieldError> {
    if bytes.len() != FR_BYTES {
        return Err(FieldError::WrongLength(bytes.len()));
    }
    let x = Fr::from_le_bytes_mod_order(bytes);
    if to_le_bytes(&x) != bytes {
        return Err(FieldError::NotCanonical);
    }
    Ok(x)
}

/// `x` as a decimal string, as circom input files and JSON identities write it.
pub fn to_decimal(x: &Fr) -> String {
    x.into_bigint().to_string()
}

/// Parses a decimal or `0x`-prefixed big-endian hex number below r.
pub fn parse(text: &str) -> Result<Fr, FieldError> {
    let bad = || FieldError::BadNumber(text.to_owned());
    let text = text.trim();
    if let Some(hex_digits) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        if hex_digits.is_empty() || hex_digits.len() > 64 {
            return Err(bad());
        }
        let padded = format!("{hex_digits:0>64}");
        let mut be = hex::decode(padded).map_err(|_| bad())?;
        be.reverse();
        return from_le_bytes(&be);
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let x: Fr = text.parse().map_err(|_| bad())?;
    // ark's FromStr reduces silently; a value >= r must be refused, not wrapped.
    if to_decimal(&x) != text.trim_start_matches('0') && !(text.bytes().all(|b| b == b'0')) {
        return Err(FieldError::NotCanonical);
    }
    Ok(x)
}

/// Keccak-256 of `bytes`, read as a little-endian integer and reduced mod r.
pub fn hash_to_field(bytes: &[u8]) -> Fr {
    Fr::from_le_bytes_mod_order(&Keccak256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use ark_ff::{One, Zero};

    use super::*;

    const MODULUS: &str =
        "21888242871839275222246405745257275088548364400416034343698204186575808495617";

    #[test]
    fn le_round_trip_and_canonical_check() {
        let x = Fr::from(0x0102_0304u64);
        let bytes = to_le_bytes(&x);
        assert_eq!(&bytes[..4], &[4, 3, 2, 1]);
        assert_eq!(from_le_bytes(&bytes).unwrap(), x);
        assert_eq!(from_le_bytes(&[0xff; 32]), Err(FieldError::NotCanonical));
        assert_eq!(from_le_bytes(&[0; 31]), Err(FieldError::WrongLength(31)));
    }

    #[test]
    fn parses_decimal_and_hex_and_refuses_out_of_range() {
        assert_eq!(parse("0").unwrap(), Fr::zero());
        assert_eq!(parse("000").unwrap(), Fr::zero());
        assert_eq!(parse("1").unwrap(), Fr::one());
        assert_eq!(parse("0x0a").unwrap(), Fr::from(10u64));
        assert_eq!(parse(MODULUS), Err(FieldError::NotCanonical));
        let r_minus_1 = MODULUS.replace("617", "616");
        assert_eq!(parse(&r_minus_1).unwrap(), -Fr::one());
        assert!(matches!(parse("12a"), Err(FieldError::BadNumber(_))));
        assert!(matches!(parse("-1"), Err(FieldError::BadNumber(_))));
        assert_eq!(to_decimal(&Fr::from(42u64)), "42");
    }

    #[test]
    fn hash_to_field_is_keccak_le_mod_r() {
        // keccak256("") = c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470
        let digest =
            hex::decode("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
                .unwrap();
        assert_eq!(hash_to_field(b""), Fr::from_le_bytes_mod_order(&digest));
    }
}
