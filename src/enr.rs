//! Ethereum Node Records (EIP-778, identity scheme "v4") with the Waku fields of RFC 31, on the
//! `enr` crate (the one discv5 uses): `multiaddrs`, `waku2` (the services a node offers) and
//! `rs`/`rsv` (its cluster and shards), written byte for byte as the reference node writes
//! them.
//!
//! Peer exchange hands these records to light clients and discv5 spreads them. A record is
//! signed with the node's secp256k1 key, so only nodes with such a key (the default) have one,
//! and the peer id a client derives from it is the node's own.

use ::enr::CombinedPublicKey;
use bytes::Bytes;
use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use zeroize::Zeroize;

pub use ::enr::CombinedKey;

/// A record as discv5 holds it.
pub type Record = ::enr::Enr<CombinedKey>;

/// Records are at most 300 bytes (EIP-778).
pub const MAX_RECORD_LEN: usize = 300;

/// From this many shards on, the shards go in the bit vector `rsv` rather than the list `rs`
/// (as the reference node decides).
pub const RSV_FROM: usize = 64;

/// Length of `rsv`: the cluster and a bit per shard of 1,024.
const RSV_LEN: usize = 2 + 128;

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
    /// Store sync (reconciliation and transfer).
    pub const SYNC: u8 = 1 << 4;
}

/// Why a record was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnrError {
    /// Not RLP, or not a list of the expected shape.
    #[error("malformed record: {0}")]
    Malformed(String),
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

/// A verified record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enr {
    raw: Vec<u8>,
    record: Record,
}

/// What a node puts in its own record.
#[derive(Debug, Clone, Default)]
pub struct Content {
    /// The sequence number (bump on every change).
    pub seq: u64,
    /// IPv4 address and TCP port for the `ip` and `tcp` fields.
    pub ip_tcp: Option<(std::net::Ipv4Addr, u16)>,
    /// The discv5 UDP port for `udp`.
    pub udp: Option<u16>,
    /// Further addresses (WebSockets, for example), without `/p2p/`.
    pub multiaddrs: Vec<Multiaddr>,
    /// `waku2` service bits.
    pub services: u8,
    /// Cluster and shards for `rs` (or `rsv` from [`RSV_FROM`] shards on).
    pub shards: Option<(u16, Vec<u16>)>,
}

/// The discv5 signing key of a libp2p secp256k1 key pair.
pub fn signing_key(key: &libp2p::identity::secp256k1::Keypair) -> Result<CombinedKey, EnrError> {
    let mut secret = key.secret().to_bytes();
    // `secp256k1_from_bytes` wipes the bytes it is given.
    let combined = CombinedKey::secp256k1_from_bytes(&mut secret).map_err(|_| EnrError::Scheme);
    secret.zeroize();
    combined
}

/// `address` without its last component when that is a peer id (the node's own). A relayed
/// address keeps the relay's peer id, as the Waku ENR specification asks.
fn without_own_id(address: &Multiaddr) -> Multiaddr {
    let mut bare = address.clone();
    if matches!(bare.iter().last(), Some(Protocol::P2p(_))) {
        bare.pop();
    }
    bare
}

/// The `multiaddrs` value: each address as a 2-byte big-endian length and its bytes.
pub fn multiaddrs_field(addresses: &[Multiaddr]) -> Vec<u8> {
    let mut field = Vec::new();
    for m in addresses {
        let bytes = without_own_id(m).to_vec();
        field.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        field.extend_from_slice(&bytes);
    }
    field
}

/// The `rs` (index list) or `rsv` (bit vector) field of `cluster` and `shards`, as the
/// reference node writes it: the list below [`RSV_FROM`] shards, the vector from there on,
/// shard `s` in bit `s % 8` of byte `s / 8`.
pub fn shards_field(cluster: u16, shards: &[u16]) -> (&'static str, Vec<u8>) {
    let mut field = cluster.to_be_bytes().to_vec();
    if shards.len() < RSV_FROM {
        field.push(shards.len() as u8);
        for s in shards {
            field.extend_from_slice(&s.to_be_bytes());
        }
        ("rs", field)
    } else {
        field.resize(RSV_LEN, 0);
        for &s in shards.iter().filter(|s| **s < 1024) {
            field[2 + usize::from(s / 8)] |= 1 << (s % 8);
        }
        ("rsv", field)
    }
}

impl Enr {
    /// Signs `content` with `key` (a libp2p secp256k1 key pair).
    pub fn sign(
        key: &libp2p::identity::secp256k1::Keypair,
        content: &Content,
    ) -> Result<Self, EnrError> {
        let signing = signing_key(key)?;
        let mut builder = Record::builder();
        builder.seq(content.seq);
        if let Some((ip, port)) = content.ip_tcp {
            builder.ip4(ip).tcp4(port);
        }
        if let Some(port) = content.udp {
            builder.udp4(port);
        }
        if !content.multiaddrs.is_empty() {
            builder.add_value(
                "multiaddrs",
                &Bytes::from(multiaddrs_field(&content.multiaddrs)),
            );
        }
        if let Some((cluster, shards)) = &content.shards {
            let (key, field) = shards_field(*cluster, shards);
            builder.add_value(key, &Bytes::from(field));
        }
        builder.add_value("waku2", &Bytes::from(vec![content.services]));
        let record = builder
            .build(&signing)
            .map_err(|e| EnrError::Malformed(e.to_string()))?;
        Self::from_record(record)
    }

    /// Wraps a record discv5 handed over (checked like a decoded one).
    pub fn from_record(record: Record) -> Result<Self, EnrError> {
        let raw = alloy_rlp::encode(&record);
        if raw.len() > MAX_RECORD_LEN {
            return Err(EnrError::TooLong(raw.len()));
        }
        if !matches!(record.public_key(), CombinedPublicKey::Secp256k1(_)) {
            return Err(EnrError::Scheme);
        }
        Ok(Self { raw, record })
    }

    /// Decodes and verifies a record.
    pub fn decode(raw: &[u8]) -> Result<Self, EnrError> {
        if raw.len() > MAX_RECORD_LEN {
            return Err(EnrError::TooLong(raw.len()));
        }
        let record =
            <Record as alloy_rlp::Decodable>::decode(&mut &raw[..]).map_err(|e| {
                match e.to_string().as_str() {
                    s if s.contains("Invalid Signature") => EnrError::BadSignature,
                    s if s.contains("identity scheme") || s.contains("public key") => {
                        EnrError::Scheme
                    }
                    s => EnrError::Malformed(s.to_owned()),
                }
            })?;
        let back = alloy_rlp::encode(&record);
        if back != raw {
            return Err(EnrError::Malformed(
                "bytes after the record, or not in canonical form".into(),
            ));
        }
        Self::from_record(record)
    }

    /// The record as discv5 holds it.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// The record's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The text form `enr:<base64url>`.
    pub fn to_text(&self) -> String {
        self.record.to_base64()
    }

    /// Parses the text form.
    pub fn from_text(text: &str) -> Result<Self, EnrError> {
        use base64::Engine;
        let body = text
            .trim()
            .strip_prefix("enr:")
            .ok_or_else(|| EnrError::Malformed("no enr: prefix".into()))?;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| EnrError::Malformed("not base64url".into()))?;
        Self::decode(&raw)
    }

    /// The sequence number.
    pub fn seq(&self) -> u64 {
        self.record.seq()
    }

    fn field(&self, name: &str) -> Option<Bytes> {
        self.record
            .get_decodable::<Bytes>(name)
            .and_then(Result::ok)
    }

    /// The libp2p peer id of the record's key.
    pub fn peer_id(&self) -> PeerId {
        use ::enr::EnrPublicKey;
        let key = self.record.public_key();
        debug_assert!(matches!(key, CombinedPublicKey::Secp256k1(_)));
        // The compressed 33 bytes of a secp256k1 key.
        let compressed = key.encode();
        let public = libp2p::identity::secp256k1::PublicKey::try_from_bytes(&compressed)
            .expect("a valid secp256k1 key stays valid");
        libp2p::identity::PublicKey::from(public).to_peer_id()
    }

    /// The `waku2` service bits (0 if absent or not one byte).
    pub fn services(&self) -> u8 {
        self.field("waku2")
            .filter(|v| v.len() == 1)
            .map_or(0, |v| v[0])
    }

    /// The cluster and shards of `rs` if it is well formed, or else of `rsv`.
    pub fn shards(&self) -> Option<(u16, Vec<u16>)> {
        let list = |v: Bytes| -> Option<(u16, Vec<u16>)> {
            let cluster = u16::from_be_bytes(v.get(0..2)?.try_into().ok()?);
            let n = usize::from(*v.get(2)?);
            if v.len() != 3 + 2 * n {
                return None;
            }
            let shards = v[3..]
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            Some((cluster, shards))
        };
        if let Some(found) = self.field("rs").and_then(list) {
            return Some(found);
        }
        let v = self.field("rsv")?;
        if v.len() != RSV_LEN {
            return None;
        }
        let cluster = u16::from_be_bytes([v[0], v[1]]);
        let shards = (0..1024u16)
            .filter(|s| v[2 + usize::from(s / 8)] & (1 << (s % 8)) != 0)
            .collect();
        Some((cluster, shards))
    }

    /// The discv5 UDP address, if the record has one.
    pub fn udp(&self) -> Option<std::net::SocketAddrV4> {
        self.record.udp4_socket()
    }

    /// Every address the record names, each ending in `/p2p/<peer id>`.
    pub fn addresses(&self) -> Vec<Multiaddr> {
        let peer = self.peer_id();
        let mut out = Vec::new();
        if let Some(socket) = self.record.tcp4_socket() {
            out.push(
                Multiaddr::empty()
                    .with(Protocol::Ip4(*socket.ip()))
                    .with(Protocol::Tcp(socket.port())),
            );
        }
        out.extend(self.listed_multiaddrs());
        out.into_iter()
            .map(|m| without_own_id(&m).with(Protocol::P2p(peer)))
            .collect()
    }

    /// The addresses of the `multiaddrs` field, as listed (an entry that does not parse is
    /// skipped).
    pub fn listed_multiaddrs(&self) -> Vec<Multiaddr> {
        let mut out = Vec::new();
        if let Some(field) = self.field("multiaddrs") {
            let mut field: &[u8] = &field;
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
        out
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
            udp: Some(9_000),
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

    /// The reference node's sharding vectors (`tests/waku_enr/test_sharding.nim`): cluster 73
    /// with shards 1 and 10, as an index list and as a bit vector (shard `s` in bit `s % 8`,
    /// least significant first, of byte `s / 8`).
    #[test]
    fn shard_fields_match_the_reference_nodes_bytes() {
        assert_eq!(
            shards_field(73, &[1, 10]),
            ("rs", vec![0, 73, 2, 0, 1, 0, 10])
        );
        let many: Vec<u16> = (0..64).collect();
        let (key, field) = shards_field(73, &many);
        assert_eq!(key, "rsv");
        assert_eq!(field.len(), 130);
        assert_eq!(&field[2..10], &[0xff; 8]);
        assert!(field[10..].iter().all(|b| *b == 0));
        // Decoding the reference node's rsv vector.
        let mut rsv = vec![0u8, 73, 2, 4];
        rsv.resize(130, 0);
        let mut builder = Record::builder();
        builder
            .add_value("rsv", &Bytes::from(rsv))
            .add_value("waku2", &Bytes::from(vec![1u8]));
        let signing = signing_key(&key_pair()).unwrap();
        let enr = Enr::from_record(builder.build(&signing).unwrap()).unwrap();
        assert_eq!(enr.shards(), Some((73, vec![1, 10])));
    }

    fn key_pair() -> libp2p::identity::secp256k1::Keypair {
        key()
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
