//! Saving and restoring a tree with every node, so a restart costs a read, not a rebuild.
//!
//! Layout: magic `wakurln-tree-v1\n`, width (u64 LE), the nodes of each level in order (32-byte
//! LE field elements), then SHA-256 of everything before it. The checksum catches truncation
//! and corruption; reading checks it before trusting a single node.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use super::{CAPACITY, DEPTH, MerkleTree};
use crate::field::{self, FR_BYTES};

const MAGIC: &[u8; 16] = b"wakurln-tree-v1\n";

/// Why a saved tree could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Reading or writing failed.
    #[error("tree file I/O failed: {0}")]
    Io(#[from] io::Error),
    /// The data does not start with the expected magic.
    #[error("not a wakurln tree file (wrong header)")]
    BadMagic,
    /// The width is larger than the tree.
    #[error("tree file claims {0} leaves, more than the tree holds")]
    BadWidth(u64),
    /// The checksum does not match: the file is truncated or corrupt.
    #[error("tree file is corrupt or truncated (checksum mismatch)")]
    Checksum,
    /// A node is not a canonical field element.
    #[error("tree file holds an invalid node: {0}")]
    BadNode(#[from] field::FieldError),
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl MerkleTree {
    /// Writes the whole tree (every stored node) to `out`.
    pub fn write_to<W: Write>(&self, out: W) -> Result<(), PersistError> {
        let mut out = HashingWriter {
            inner: io::BufWriter::new(out),
            hasher: Sha256::new(),
        };
        out.write_all(MAGIC)?;
        out.write_all(&(self.width() as u64).to_le_bytes())?;
        for nodes in &self.levels {
            for node in nodes {
                out.write_all(&field::to_le_bytes(node))?;
            }
        }
        let digest = out.hasher.finalize();
        out.inner.write_all(&digest)?;
        out.inner.flush()?;
        Ok(())
    }

    /// Reads a tree written by [`MerkleTree::write_to`], without rehashing.
    pub fn read_from<R: Read>(input: R) -> Result<Self, PersistError> {
        let mut input = io::BufReader::new(input);
        let mut hasher = Sha256::new();
        let mut header = [0u8; 24];
        read_exact_or_corrupt(&mut input, &mut header)?;
        hasher.update(header);
        if &header[..16] != MAGIC {
            return Err(PersistError::BadMagic);
        }
        let width = u64::from_le_bytes(header[16..].try_into().expect("8 bytes"));
        if width > CAPACITY as u64 {
            return Err(PersistError::BadWidth(width));
        }
        let width = width as usize;
        let mut levels = Vec::with_capacity(DEPTH + 1);
        let mut buf = [0u8; FR_BYTES];
        for level in 0..=DEPTH {
            let count = if width == 0 {
                0
            } else {
                (width - 1) / (1 << level) + 1
            };
            let mut nodes = Vec::with_capacity(count);
            for _ in 0..count {
                read_exact_or_corrupt(&mut input, &mut buf)?;
                hasher.update(buf);
                nodes.push(buf);
            }
            levels.push(nodes);
        }
        let mut digest = [0u8; 32];
        read_exact_or_corrupt(&mut input, &mut digest)?;
        if digest[..] != hasher.finalize()[..] || input.read(&mut [0u8; 1])? != 0 {
            return Err(PersistError::Checksum);
        }
        let levels = levels
            .into_iter()
            .map(|nodes| nodes.iter().map(|b| field::from_le_bytes(b)).collect())
            .collect::<Result<_, _>>()?;
        Ok(Self { levels })
    }
}

fn read_exact_or_corrupt<R: Read>(input: &mut R, buf: &mut [u8]) -> Result<(), PersistError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => PersistError::Checksum,
        _ => PersistError::Io(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::Fr;

    fn sample() -> MerkleTree {
        let mut tree = MerkleTree::new();
        let leaves: Vec<Fr> = (1..=100u64).map(Fr::from).collect();
        tree.set_range(7, &leaves).unwrap();
        tree.delete(50).unwrap();
        tree
    }

    #[test]
    fn round_trip_keeps_every_node() {
        let tree = sample();
        let mut bytes = Vec::new();
        tree.write_to(&mut bytes).unwrap();
        let back = MerkleTree::read_from(bytes.as_slice()).unwrap();
        assert_eq!(back, tree);
        let mut empty = Vec::new();
        MerkleTree::new().write_to(&mut empty).unwrap();
        assert_eq!(
            MerkleTree::read_from(empty.as_slice()).unwrap(),
            MerkleTree::new()
        );
    }

    #[test]
    fn corruption_and_truncation_are_detected() {
        let mut bytes = Vec::new();
        sample().write_to(&mut bytes).unwrap();
        let mut flipped = bytes.clone();
        flipped[100] ^= 1;
        assert!(matches!(
            MerkleTree::read_from(flipped.as_slice()),
            Err(PersistError::Checksum)
        ));
        assert!(matches!(
            MerkleTree::read_from(&bytes[..bytes.len() - 1]),
            Err(PersistError::Checksum)
        ));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            MerkleTree::read_from(longer.as_slice()),
            Err(PersistError::Checksum)
        ));
        assert!(matches!(
            MerkleTree::read_from(&b"nonsense"[..]),
            Err(PersistError::Checksum)
        ));
        let mut wrong = bytes;
        wrong[0] = b'x';
        assert!(matches!(
            MerkleTree::read_from(wrong.as_slice()),
            Err(PersistError::BadMagic)
        ));
    }
}
