//! Per-credential encryption: a Web3 secret-storage v3 body without `id` and `version`.
//!
//! `derived = KDF(password, salt)` (32 bytes); the AES-128-CTR key is `derived[..16]`; the
//! MAC is `keccak256(derived[16..32] || ciphertext)`. Hex is lowercase.

use aes::cipher::{KeyIvInit, StreamCipher};
use rand::RngCore;
use serde_json::{Value, json};
use sha3::{Digest, Keccak256};
use zeroize::Zeroizing;

use crate::KeystoreError;

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// Iterations of pbkdf2 used by default, as the Nim node and the JS client write.
pub const DEFAULT_PBKDF2_ITERATIONS: u32 = 1_000_000;

/// A key derivation function with its cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kdf {
    /// PBKDF2-HMAC-SHA256 with `c` iterations.
    Pbkdf2 {
        /// Iterations.
        c: u32,
    },
    /// scrypt with `n = 2^log_n`.
    Scrypt {
        /// log2 of the CPU/memory cost.
        log_n: u8,
        /// Block size.
        r: u32,
        /// Parallelism.
        p: u32,
    },
}

/// The cost parameters to encrypt with; decryption reads them from the file.
pub type KdfParams = Kdf;

impl Default for Kdf {
    fn default() -> Self {
        Self::Pbkdf2 {
            c: DEFAULT_PBKDF2_ITERATIONS,
        }
    }
}

impl Kdf {
    /// scrypt with the parameters the Nim node writes (n = 262144, r = 1, p = 8).
    pub const SCRYPT_DEFAULT: Kdf = Kdf::Scrypt {
        log_n: 18,
        r: 1,
        p: 8,
    };

    /// A short description for progress messages ("pbkdf2, 1000000 iterations").
    pub fn describe(&self) -> String {
        match self {
            Self::Pbkdf2 { c } => format!("pbkdf2, {c} iterations"),
            Self::Scrypt { log_n, r, p } => format!("scrypt, n = 2^{log_n}, r = {r}, p = {p}"),
        }
    }

    fn derive(&self, password: &[u8], salt: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        match *self {
            Self::Pbkdf2 { c } => {
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, c, out.as_mut());
            }
            Self::Scrypt { log_n, r, p } => {
                let params = scrypt::Params::new(log_n, r, p, 32)
                    .expect("parameters were validated when read or chosen");
                scrypt::scrypt(password, salt, &params, out.as_mut())
                    .expect("the output length is valid");
            }
        }
        out
    }

    fn params_json(&self, salt: &[u8]) -> (&'static str, Value) {
        match *self {
            Self::Pbkdf2 { c } => (
                "pbkdf2",
                json!({"dklen": 32, "c": c, "prf": "hmac-sha256", "salt": hex::encode(salt)}),
            ),
            Self::Scrypt { log_n, r, p } => (
                "scrypt",
                json!({"dklen": 32, "n": 1u64 << log_n, "r": r, "p": p, "salt": hex::encode(salt)}),
            ),
        }
    }
}

fn mac(derived: &[u8; 32], ciphertext: &[u8]) -> [u8; 32] {
    Keccak256::new()
        .chain_update(&derived[16..])
        .chain_update(ciphertext)
        .finalize()
        .into()
}

/// Encrypts `plaintext` into a `crypto` object.
pub fn encrypt<R: RngCore>(plaintext: &[u8], password: &[u8], kdf: Kdf, rng: &mut R) -> Value {
    let mut salt = [0u8; 32];
    let mut iv = [0u8; 16];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut iv);
    let derived = kdf.derive(password, &salt);
    let mut ciphertext = plaintext.to_vec();
    Aes128Ctr::new(derived[..16].into(), &iv.into()).apply_keystream(&mut ciphertext);
    let (kdf_name, kdf_params) = kdf.params_json(&salt);
    json!({
        "cipher": "aes-128-ctr",
        "cipherparams": {"iv": hex::encode(iv)},
        "ciphertext": hex::encode(&ciphertext),
        "kdf": kdf_name,
        "kdfparams": kdf_params,
        "mac": hex::encode(mac(&derived, &ciphertext)),
    })
}

/// The result of decrypting: the plaintext and whether the MAC matched. The caller decides
/// between "wrong password" and "altered file" by whether the plaintext makes sense.
pub(crate) struct Decrypted {
    pub(crate) plaintext: Zeroizing<Vec<u8>>,
    pub(crate) mac_ok: bool,
}

/// Reads the parameters of a `crypto` object; fails before any expensive derivation.
pub(crate) struct Parsed {
    kdf: Kdf,
    salt: Vec<u8>,
    iv: [u8; 16],
    ciphertext: Vec<u8>,
    mac: [u8; 32],
}

impl Parsed {
    /// The key derivation this credential needs.
    pub(crate) fn kdf(&self) -> Kdf {
        self.kdf
    }
}

pub(crate) fn parse(key: &str, crypto: &Value) -> Result<Parsed, KeystoreError> {
    let malformed = |detail: String| KeystoreError::MalformedCredential {
        key: key.to_owned(),
        detail,
    };
    let text = |v: &Value, name: &str| -> Result<String, KeystoreError> {
        v.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| malformed(format!("`{name}` is missing or not a string")))
    };
    let hex_field = |v: &Value, name: &str| -> Result<Vec<u8>, KeystoreError> {
        hex::decode(text(v, name)?).map_err(|e| malformed(format!("`{name}` is not hex: {e}")))
    };
    let number = |v: &Value, name: &str| -> Result<u64, KeystoreError> {
        v.get(name)
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed(format!("kdfparams `{name}` is missing or not a number")))
    };

    let cipher = text(crypto, "cipher")?;
    if cipher != "aes-128-ctr" {
        return Err(KeystoreError::UnknownCipher {
            key: key.to_owned(),
            cipher,
        });
    }
    let params = crypto
        .get("kdfparams")
        .ok_or_else(|| malformed("`kdfparams` is missing".into()))?;
    if number(params, "dklen")? != 32 {
        return Err(malformed("kdfparams `dklen` must be 32".into()));
    }
    let kdf = match text(crypto, "kdf")?.as_str() {
        "pbkdf2" => {
            let prf = text(params, "prf")?;
            if prf != "hmac-sha256" {
                return Err(malformed(format!("pbkdf2 prf `{prf}` is not supported")));
            }
            let c = u32::try_from(number(params, "c")?)
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| malformed("pbkdf2 iteration count is out of range".into()))?;
            Kdf::Pbkdf2 { c }
        }
        "scrypt" => {
            let n = number(params, "n")?;
            let (r, p) = (number(params, "r")?, number(params, "p")?);
            let log_n = (n.is_power_of_two() && n > 1).then(|| n.trailing_zeros() as u8);
            let valid = log_n.and_then(|log_n| {
                let (r, p) = (u32::try_from(r).ok()?, u32::try_from(p).ok()?);
                scrypt::Params::new(log_n, r, p, 32).ok()?;
                Some(Kdf::Scrypt { log_n, r, p })
            });
            valid.ok_or_else(|| {
                malformed(format!("scrypt parameters n={n}, r={r}, p={p} are invalid"))
            })?
        }
        other => {
            return Err(KeystoreError::UnknownKdf {
                key: key.to_owned(),
                kdf: other.to_owned(),
            });
        }
    };
    let salt = hex_field(params, "salt")?;
    let iv: [u8; 16] = crypto
        .get("cipherparams")
        .ok_or_else(|| malformed("`cipherparams` is missing".into()))
        .and_then(|cp| hex_field(cp, "iv"))?
        .try_into()
        .map_err(|_| malformed("the IV is not 16 bytes".into()))?;
    let mac: [u8; 32] = hex_field(crypto, "mac")?
        .try_into()
        .map_err(|_| malformed("the MAC is not 32 bytes".into()))?;
    Ok(Parsed {
        kdf,
        salt,
        iv,
        ciphertext: hex_field(crypto, "ciphertext")?,
        mac,
    })
}

/// Derives the key (the slow part) and decrypts.
pub(crate) fn decrypt(parsed: &Parsed, password: &[u8]) -> Decrypted {
    let derived = parsed.kdf.derive(password, &parsed.salt);
    let mac_ok = mac(&derived, &parsed.ciphertext) == parsed.mac;
    let mut plaintext = Zeroizing::new(parsed.ciphertext.clone());
    Aes128Ctr::new(derived[..16].into(), &parsed.iv.into()).apply_keystream(&mut plaintext);
    Decrypted { plaintext, mac_ok }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn round_trip_with_both_kdfs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for kdf in [
            Kdf::Pbkdf2 { c: 10 },
            Kdf::Scrypt {
                log_n: 4,
                r: 1,
                p: 8,
            },
        ] {
            let crypto = encrypt(b"secret", b"pw", kdf, &mut rng);
            let parsed = parse("K", &crypto).unwrap();
            assert_eq!(parsed.kdf(), kdf);
            let out = decrypt(&parsed, b"pw");
            assert!(out.mac_ok);
            assert_eq!(&out.plaintext[..], b"secret");
            assert!(!decrypt(&parsed, b"wrong").mac_ok);
        }
    }

    #[test]
    fn unknown_kdf_and_cipher_are_named() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let mut crypto = encrypt(b"x", b"pw", Kdf::Pbkdf2 { c: 1 }, &mut rng);
        crypto["kdf"] = json!("argon2");
        assert!(
            matches!(parse("K", &crypto), Err(KeystoreError::UnknownKdf { kdf, .. }) if kdf == "argon2")
        );
        crypto["kdf"] = json!("pbkdf2");
        crypto["cipher"] = json!("aes-256-gcm");
        assert!(matches!(
            parse("K", &crypto),
            Err(KeystoreError::UnknownCipher { .. })
        ));
    }
}
