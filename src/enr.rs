//! Ethereum Node Records (EIP-778, identity scheme "v4") with the Waku fields of RFC 31:
//! `multiaddrs`, `waku2` (the services a node offers) and `rs` (its cluster and shards).
//!
//! Peer exchange hands these records to light clients. A record is signed with the node's
//! secp256k1 key, so only nodes with such a key (the default) have one, and the peer id a
//! client derives from it is the node's own.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64URL};
use k256::ecdsa::{
    Signature, SigningKey, VerifyingKey,
    signature::hazmat::{PrehashSigner, PrehashVerifier},
};
use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use sha3::{Digest, Keccak256};

/// Records are at most 300 bytes (EIP-778).
pub const MAX_RECORD_LEN: usize = 300;

/// Service bits of the `waku2` field.
pub mod services {
    /// Relay.
    pub const RELAY: u8 = 1;
    /// Store.
    pub const STORE: u8 = 1 << 1;
    /// Filter.
    pub const FILTER: u8 = 1 << 2;
    /// Lightpush.
    pub const LIGHTPUSH: u8 = 1 << 3;
}

/// Why a record was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnrError {
    /// Not RLP, or not a list of the expected shape.
    #[error("malformed record: {0}")]
    Malformed(&'static str),
    /// Longer than 300 bytes.
    #[error("record of {0} bytes exceeds 300")]
    TooLong(usize),
    /// Not the v4 identity scheme, or no secp256k1 key.
    #[error("unsupported identity scheme")]
    Scheme,
    /// The signature does not verify.
    #[error("the signature does not match the record")]
    BadSignature,
}

/// A verified record's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enr {
    raw: Vec<u8>,
    seq: u64,
    key: VerifyingKey,
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What a node puts in its own record.
#[derive(Debug, Clone, Default)]
pub struct Content {
    /// The sequence number (bump on every change).
    pub seq: u64,
    /// IPv4 address and TCP port for the `ip` and `tcp` fields.
    pub ip_tcp: Option<(std::net::Ipv4Addr, u16)>,
    /// Further addresses (WebSockets, for example), without `/p2p/`.
    pub multiaddrs: Vec<Multiaddr>,
    /// `waku2` service bits.
    pub services: u8,
    /// Cluster and shards for `rs`.
    pub shards: Option<(u16, Vec<u16>)>,
}

impl Enr {
    /// Signs `content` with `key` (a libp2p secp256k1 key pair).
    pub fn sign(
        key: &libp2p::identity::secp256k1::Keypair,
        content: &Content,
    ) -> Result<Self, EnrError> {
        let secret =
            SigningKey::from_slice(&key.secret().to_bytes()).map_err(|_| EnrError::Scheme)?;
        let public = *secret.verifying_key();
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"id".to_vec(), rlp::string(b"v4")),
            (
                b"secp256k1".to_vec(),
                rlp::string(public.to_encoded_point(true).as_bytes()),
            ),
        ];
        if let Some((ip, port)) = content.ip_tcp {
            pairs.push((b"ip".to_vec(), rlp::string(&ip.octets())));
            pairs.push((b"tcp".to_vec(), rlp::uint(u64::from(port))));
        }
        if !content.multiaddrs.is_empty() {
            let mut field = Vec::new();
            for m in &content.multiaddrs {
                let bytes = m.to_vec();
                field.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
                field.extend_from_slice(&bytes);
            }
            pairs.push((b"multiaddrs".to_vec(), rlp::string(&field)));
        }
        if let Some((cluster, shards)) = &content.shards {
            let mut field = cluster.to_be_bytes().to_vec();
            field.push(shards.len() as u8);
            for s in shards {
                field.extend_from_slice(&s.to_be_bytes());
            }
            pairs.push((b"rs".to_vec(), rlp::string(&field)));
        }
        pairs.push((b"waku2".to_vec(), rlp::string(&[content.services])));
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let body = |sig: Option<&[u8]>| {
            let mut items = Vec::new();
            if let Some(s) = sig {
                items.push(rlp::string(s));
            }
            items.push(rlp::uint(content.seq));
            for (k, v) in &pairs {
                items.push(rlp::string(k));
                items.push(v.clone());
            }
            rlp::list(&items)
        };
        let digest = Keccak256::digest(body(None));
        let signature: Signature = secret.sign_prehash(&digest).map_err(|_| EnrError::Scheme)?;
        let raw = body(Some(&signature.to_bytes()));
        if raw.len() > MAX_RECORD_LEN {
            return Err(EnrError::TooLong(raw.len()));
        }
        Self::decode(&raw)
    }

    /// Decodes and verifies a record.
    pub fn decode(raw: &[u8]) -> Result<Self, EnrError> {
        if raw.len() > MAX_RECORD_LEN {
            return Err(EnrError::TooLong(raw.len()));
        }
        let items = rlp::decode_list(raw)?;
        if items.len() < 2 || items.len() % 2 != 0 {
            return Err(EnrError::Malformed("wrong number of items"));
        }
        let signature = items[0].as_string()?;
        let seq = rlp::to_uint(items[1].as_string()?)?;
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for kv in items[2..].chunks(2) {
            let k = kv[0].as_string()?.to_vec();
            if pairs.last().is_some_and(|(last, _)| *last >= k) {
                return Err(EnrError::Malformed("keys not sorted or repeated"));
            }
            pairs.push((k, kv[1].raw.to_vec()));
        }
        let get = |name: &[u8]| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_slice())
        };
        if get(b"id").map(rlp::decode_string).transpose()? != Some(b"v4".as_slice()) {
            return Err(EnrError::Scheme);
        }
        let public = get(b"secp256k1")
            .map(rlp::decode_string)
            .transpose()?
            .ok_or(EnrError::Scheme)?;
        let key = VerifyingKey::from_sec1_bytes(public).map_err(|_| EnrError::Scheme)?;
        let mut content = vec![items[1].raw.to_vec()];
        for item in &items[2..] {
            content.push(item.raw.to_vec());
        }
        let digest = Keccak256::digest(rlp::list(&content));
        let signature = Signature::from_slice(signature).map_err(|_| EnrError::BadSignature)?;
        key.verify_prehash(&digest, &signature)
            .map_err(|_| EnrError::BadSignature)?;
        Ok(Self {
            raw: raw.to_vec(),
            seq,
            key,
            pairs,
        })
    }

    /// The record's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The text form `enr:<base64url>`.
    pub fn to_text(&self) -> String {
        format!("enr:{}", B64URL.encode(&self.raw))
    }

    /// Parses the text form.
    pub fn from_text(text: &str) -> Result<Self, EnrError> {
        let body = text
            .strip_prefix("enr:")
            .ok_or(EnrError::Malformed("no enr: prefix"))?;
        let raw = B64URL
            .decode(body)
            .map_err(|_| EnrError::Malformed("not base64url"))?;
        Self::decode(&raw)
    }

    /// The sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    fn field(&self, name: &[u8]) -> Option<&[u8]> {
        let v = self.pairs.iter().find(|(k, _)| k == name)?;
        rlp::decode_string(&v.1).ok()
    }

    /// The libp2p peer id of the record's key.
    pub fn peer_id(&self) -> PeerId {
        let compressed = self.key.to_encoded_point(true);
        let public = libp2p::identity::secp256k1::PublicKey::try_from_bytes(compressed.as_bytes())
            .expect("a valid secp256k1 key stays valid");
        libp2p::identity::PublicKey::from(public).to_peer_id()
    }

    /// The `waku2` service bits (0 if absent).
    pub fn services(&self) -> u8 {
        self.field(b"waku2")
            .and_then(|v| v.first().copied())
            .unwrap_or(0)
    }

    /// The cluster and shards of `rs`, if present and well formed.
    pub fn shards(&self) -> Option<(u16, Vec<u16>)> {
        let v = self.field(b"rs")?;
        let cluster = u16::from_be_bytes(v.get(0..2)?.try_into().ok()?);
        let n = usize::from(*v.get(2)?);
        let shards = v
            .get(3..3 + 2 * n)?
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        Some((cluster, shards))
    }

    /// Every address the record names, each ending in `/p2p/<peer id>`.
    pub fn addresses(&self) -> Vec<Multiaddr> {
        let peer = self.peer_id();
        let mut out = Vec::new();
        let ip = self.field(b"ip").and_then(|v| <[u8; 4]>::try_from(v).ok());
        let tcp = self.field(b"tcp").and_then(|v| rlp::to_uint(v).ok());
        if let (Some(ip), Some(port)) = (ip, tcp.and_then(|p| u16::try_from(p).ok())) {
            out.push(
                Multiaddr::empty()
                    .with(Protocol::Ip4(ip.into()))
                    .with(Protocol::Tcp(port)),
            );
        }
        if let Some(mut field) = self.field(b"multiaddrs") {
            while field.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([field[0], field[1]]));
                let Some(bytes) = field.get(2..2 + len) else {
                    break;
                };
                if let Ok(m) = Multiaddr::try_from(bytes.to_vec()) {
                    out.push(m);
                }
                field = &field[2 + len..];
            }
        }
        out.into_iter()
            .map(|m| {
                let bare: Multiaddr = m
                    .iter()
                    .filter(|p| !matches!(p, Protocol::P2p(_)))
                    .collect();
                bare.with(Protocol::P2p(peer))
            })
            .collect()
    }
}

/// The little of RLP that records need.
mod rlp {
    use super::EnrError;

    fn header(short: u8, long: u8, len: usize) -> Vec<u8> {
        if len <= 55 {
            vec![short + len as u8]
        } else {
            let be = len.to_be_bytes();
            let skip = be.iter().take_while(|b| **b == 0).count();
            let mut h = vec![long + (be.len() - skip) as u8];
            h.extend_from_slice(&be[skip..]);
            h
        }
    }

    /// A byte string.
    pub fn string(bytes: &[u8]) -> Vec<u8> {
        if bytes.len() == 1 && bytes[0] < 0x80 {
            return bytes.to_vec();
        }
        let mut out = header(0x80, 0xb7, bytes.len());
        out.extend_from_slice(bytes);
        out
    }

    /// An unsigned integer (minimal big-endian bytes).
    pub fn uint(value: u64) -> Vec<u8> {
        let be = value.to_be_bytes();
        let skip = be.iter().take_while(|b| **b == 0).count();
        string(&be[skip..])
    }

    /// A list of already encoded items.
    pub fn list(items: &[Vec<u8>]) -> Vec<u8> {
        let len = items.iter().map(Vec::len).sum();
        let mut out = header(0xc0, 0xf7, len);
        for i in items {
            out.extend_from_slice(i);
        }
        out
    }

    /// One decoded item: its raw encoding and whether it is a list.
    pub struct Item<'a> {
        pub raw: &'a [u8],
        list: bool,
        body: &'a [u8],
    }

    impl<'a> Item<'a> {
        pub fn as_string(&self) -> Result<&'a [u8], EnrError> {
            if self.list {
                return Err(EnrError::Malformed("a list where a string belongs"));
            }
            Ok(self.body)
        }
    }

    /// Splits the first item off `buf`.
    fn item(buf: &[u8]) -> Result<(Item<'_>, usize), EnrError> {
        let first = *buf.first().ok_or(EnrError::Malformed("truncated"))?;
        let (list, offset, len) = match first {
            0x00..=0x7f => (false, 0, 1),
            0x80..=0xb7 => (false, 1, usize::from(first - 0x80)),
            0xc0..=0xf7 => (true, 1, usize::from(first - 0xc0)),
            _ => {
                let (list, n) = if first >= 0xf8 {
                    (true, usize::from(first - 0xf7))
                } else {
                    (false, usize::from(first - 0xb7))
                };
                let bytes = buf.get(1..1 + n).ok_or(EnrError::Malformed("truncated"))?;
                if n > 4 || bytes.first() == Some(&0) {
                    return Err(EnrError::Malformed("bad length"));
                }
                let len = bytes.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b));
                (list, 1 + n, len)
            }
        };
        let end = offset
            .checked_add(len)
            .ok_or(EnrError::Malformed("bad length"))?;
        let body = if first < 0x80 {
            &buf[..1]
        } else {
            buf.get(offset..end)
                .ok_or(EnrError::Malformed("truncated"))?
        };
        Ok((
            Item {
                raw: &buf[..end],
                list,
                body,
            },
            end,
        ))
    }

    /// The items of the list that is all of `buf`.
    pub fn decode_list(buf: &[u8]) -> Result<Vec<Item<'_>>, EnrError> {
        let (outer, used) = item(buf)?;
        if !outer.list || used != buf.len() {
            return Err(EnrError::Malformed("not a single list"));
        }
        let mut rest = outer.body;
        let mut items = Vec::new();
        while !rest.is_empty() {
            let (i, n) = item(rest)?;
            items.push(i);
            rest = &rest[n..];
        }
        Ok(items)
    }

    /// The string that is all of `buf`.
    pub fn decode_string(buf: &[u8]) -> Result<&[u8], EnrError> {
        let (i, used) = item(buf)?;
        if used != buf.len() {
            return Err(EnrError::Malformed("trailing bytes"));
        }
        i.as_string()
    }

    /// An unsigned integer from its minimal big-endian bytes.
    pub fn to_uint(bytes: &[u8]) -> Result<u64, EnrError> {
        if bytes.len() > 8 || bytes.first() == Some(&0) {
            return Err(EnrError::Malformed("not a minimal 64-bit integer"));
        }
        Ok(bytes.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> libp2p::identity::secp256k1::Keypair {
        let mut secret = [7u8; 32];
        libp2p::identity::secp256k1::SecretKey::try_from_bytes(&mut secret)
            .unwrap()
            .into()
    }

    #[test]
    fn eip778_example_record_verifies() {
        // The example record of EIP-778 (private key b71c71a6...c291).
        let text = "enr:-IS4QHCYrYZbAKWCBRlAy5zzaDZXJBGkcnh4MHcBFZntXNFrdvJjX04jRzjzCBOonrkTfj499SZuOh8R33Ls8RRcy5wBgmlkgnY0gmlwhH8AAAGJc2VjcDI1NmsxoQPKY0yuDUmstAHYpMa2_oxVtw0RW_QAdpzBQA8yWM0xOIN1ZHCCdl8";
        let enr = Enr::from_text(text).unwrap();
        assert_eq!(enr.seq(), 1);
        assert_eq!(enr.to_text(), text);
        // ip 127.0.0.1 without tcp: no dialable TCP address.
        assert!(enr.addresses().is_empty());
    }

    #[test]
    fn signs_and_reads_back_the_waku_fields() {
        let content = Content {
            seq: 3,
            ip_tcp: Some((std::net::Ipv4Addr::LOCALHOST, 60_000)),
            multiaddrs: vec!["/ip4/127.0.0.1/tcp/8000/ws".parse().unwrap()],
            services: services::RELAY | services::FILTER | services::LIGHTPUSH,
            shards: Some((66, vec![0, 3])),
        };
        let k = key();
        let enr = Enr::sign(&k, &content).unwrap();
        let peer = libp2p::identity::PublicKey::from(k.public().clone()).to_peer_id();
        assert_eq!(enr.peer_id(), peer);
        assert_eq!(enr.services(), 0b1101);
        assert_eq!(enr.shards(), Some((66, vec![0, 3])));
        let addrs: Vec<String> = enr.addresses().iter().map(ToString::to_string).collect();
        assert_eq!(
            addrs,
            [
                format!("/ip4/127.0.0.1/tcp/60000/p2p/{peer}"),
                format!("/ip4/127.0.0.1/tcp/8000/ws/p2p/{peer}")
            ]
        );
        let back = Enr::from_text(&enr.to_text()).unwrap();
        assert_eq!(back, enr);
    }

    #[test]
    fn tampering_and_garbage_are_refused() {
        let enr = Enr::sign(&key(), &Content::default()).unwrap();
        let mut raw = enr.as_bytes().to_vec();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert!(Enr::decode(&raw).is_err());
        for garbage in [&[][..], &[0xc0], &[0xff; 10], &[0xf8, 0x02, 0x80]] {
            assert!(Enr::decode(garbage).is_err());
        }
        assert_eq!(Enr::decode(&[0u8; 301]), Err(EnrError::TooLong(301)));
    }
}
