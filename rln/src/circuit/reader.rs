//! A bounds-checked cursor over artifact bytes: every read says how far it got when the file
//! ends early, and no length read from the file is trusted before the bytes are there.

use ark_bn254::{Fq, Fq2, Fr, G1Affine, G2Affine};
use ark_ff::{BigInt, PrimeField};
use ark_serialize::CanonicalDeserialize;

use super::ArtifactError;

pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// What is being read, for error messages.
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, pos: 0, what }
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(super) fn truncated(&self, needed: usize) -> ArtifactError {
        ArtifactError::Truncated {
            what: self.what,
            offset: self.pos,
            needed,
            available: self.remaining(),
        }
    }

    pub(super) fn malformed(&self, detail: impl Into<String>) -> ArtifactError {
        ArtifactError::Malformed {
            what: self.what,
            offset: self.pos,
            detail: detail.into(),
        }
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], ArtifactError> {
        if self.remaining() < n {
            return Err(self.truncated(n));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(super) fn skip(&mut self, n: usize) -> Result<(), ArtifactError> {
        self.take(n).map(|_| ())
    }

    pub(super) fn u32(&mut self) -> Result<u32, ArtifactError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub(super) fn u64(&mut self) -> Result<u64, ArtifactError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    /// A count of `elem_size`-byte elements that must all fit in what remains.
    pub(super) fn count(&mut self, elem_size: usize) -> Result<usize, ArtifactError> {
        let n = self.u64()?;
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(elem_size))
            .is_some_and(|bytes| bytes <= self.remaining());
        if !fits {
            return Err(self.malformed(format!(
                "a list claims {n} elements, more than the {} bytes left can hold",
                self.remaining()
            )));
        }
        Ok(n as usize)
    }

    /// A 32-byte little-endian canonical field element.
    pub(super) fn fr(&mut self) -> Result<Fr, ArtifactError> {
        let bytes = self.take(32)?;
        crate::field::from_le_bytes(bytes).map_err(|e| self.malformed(e.to_string()))
    }

    /// An arkworks uncompressed G1 point (flags in the top bits of the last byte). The file's
    /// digest is checked before proving with it, so curve checks are skipped here.
    pub(super) fn ark_g1(&mut self) -> Result<G1Affine, ArtifactError> {
        let bytes = self.take(64)?;
        G1Affine::deserialize_uncompressed_unchecked(bytes)
            .map_err(|e| self.malformed(format!("bad G1 point: {e}")))
    }

    /// An arkworks uncompressed G2 point.
    pub(super) fn ark_g2(&mut self) -> Result<G2Affine, ArtifactError> {
        let bytes = self.take(128)?;
        G2Affine::deserialize_uncompressed_unchecked(bytes)
            .map_err(|e| self.malformed(format!("bad G2 point: {e}")))
    }

    /// A base-field element in snarkjs' Montgomery little-endian form.
    pub(super) fn mont_fq(&mut self) -> Result<Fq, ArtifactError> {
        let limbs = self.limbs()?;
        let raw = BigInt::new(limbs);
        if raw >= Fq::MODULUS {
            return Err(self.malformed("coordinate is not below the base field modulus"));
        }
        Ok(Fq::new_unchecked(raw))
    }

    /// A scalar in Montgomery little-endian form, returned as the value it encodes.
    pub(super) fn mont_fr(&mut self) -> Result<Fr, ArtifactError> {
        let raw = BigInt::new(self.limbs()?);
        if raw >= Fr::MODULUS {
            return Err(self.malformed("scalar is not below the field modulus"));
        }
        Ok(Fr::new_unchecked(raw))
    }

    fn limbs(&mut self) -> Result<[u64; 4], ArtifactError> {
        let bytes = self.take(32)?;
        Ok(std::array::from_fn(|i| {
            u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().expect("8 bytes"))
        }))
    }

    /// A snarkjs G1 point: Montgomery x, y; all zero is the point at infinity.
    pub(super) fn snark_g1(&mut self) -> Result<G1Affine, ArtifactError> {
        let (x, y) = (self.mont_fq()?, self.mont_fq()?);
        Ok(if x == Fq::from(0u64) && y == Fq::from(0u64) {
            G1Affine::identity()
        } else {
            G1Affine::new_unchecked(x, y)
        })
    }

    /// A snarkjs G2 point: x.c0, x.c1, y.c0, y.c1 in Montgomery form.
    pub(super) fn snark_g2(&mut self) -> Result<G2Affine, ArtifactError> {
        let x = Fq2::new(self.mont_fq()?, self.mont_fq()?);
        let y = Fq2::new(self.mont_fq()?, self.mont_fq()?);
        Ok(if x == Fq2::from(0u64) && y == Fq2::from(0u64) {
            G2Affine::identity()
        } else {
            G2Affine::new_unchecked(x, y)
        })
    }
}
