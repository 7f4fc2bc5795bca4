//! DNS discovery (EIP-1459): a tree of node records published in DNS TXT entries under a domain
//! and signed by a key named in the tree's URL, `enrtree://<key>@<domain>`.
//!
//! The root entry `enrtree-root:v1 e=<hash> l=<hash> seq=<n> sig=<sig>` is verified with that
//! key (secp256k1 over the Keccak-256 of the text before ` sig=`). Every other entry lives at
//! `<hash>.<domain>`, where the hash is the base32 form of the first 16 bytes of the Keccak-256
//! of the entry's text, so an entry that does not hash to its name is refused: the signature of
//! the root covers the whole tree. Branches (`enrtree-branch:<hash>,...`) lead to records
//! (`enr:...`). Links to other trees (the `l=` subtree) are not followed.

use std::{collections::HashSet, net::SocketAddr, str::FromStr};

use base64::Engine;
use data_encoding::BASE32_NOPAD;
use k256::ecdsa::{Signature, VerifyingKey, signature::hazmat::PrehashVerifier};
use sha3::{Digest, Keccak256};

use crate::enr::Enr;

/// Entries read from one tree at most: a hostile tree cannot keep the node reading.
pub const MAX_ENTRIES: usize = 2_000;

/// Why a tree could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DnsDiscoveryError {
    /// The URL is not `enrtree://<base32 key>@<domain>`.
    #[error("{0:?} is not an enrtree://KEY@DOMAIN URL")]
    Url(String),
    /// A DNS lookup failed.
    #[error("cannot look up {name}: {detail}")]
    Lookup {
        /// The name.
        name: String,
        /// What the resolver said.
        detail: String,
    },
    /// The root entry is malformed.
    #[error("the tree's root entry is malformed: {0:?}")]
    Root(String),
    /// The root's signature is not the URL key's.
    #[error("the tree's root is not signed by the key in its URL")]
    Signature,
    /// An entry does not hash to its name.
    #[error("the entry at {0} does not hash to its name")]
    Hash(String),
    /// An entry is malformed.
    #[error("malformed tree entry {0:?}")]
    Entry(String),
}

/// `enrtree://<key>@<domain>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeUrl {
    /// The key that signs the root.
    pub key: VerifyingKey,
    /// The domain of the root entry.
    pub domain: String,
}

impl FromStr for TreeUrl {
    type Err = DnsDiscoveryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || DnsDiscoveryError::Url(text.to_owned());
        let rest = text.trim().strip_prefix("enrtree://").ok_or_else(bad)?;
        let (key, domain) = rest.split_once('@').ok_or_else(bad)?;
        let key = BASE32_NOPAD.decode(key.as_bytes()).map_err(|_| bad())?;
        let key = VerifyingKey::from_sec1_bytes(&key).map_err(|_| bad())?;
        if domain.is_empty() || domain.contains(char::is_whitespace) {
            return Err(bad());
        }
        Ok(Self {
            key,
            domain: domain.trim_end_matches('.').to_owned(),
        })
    }
}

/// The name of an entry: base32 of the first 16 bytes of the Keccak-256 of its text.
pub fn hash_of(entry: &str) -> String {
    BASE32_NOPAD.encode(&Keccak256::digest(entry.as_bytes())[..16])
}

/// A verified root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// The hash of the records' subtree.
    pub enr_root: String,
    /// The hash of the links' subtree.
    pub link_root: String,
    /// The tree's sequence number.
    pub seq: u64,
}

/// Parses the root entry and checks its signature against `key`.
pub fn verify_root(text: &str, key: &VerifyingKey) -> Result<Root, DnsDiscoveryError> {
    let bad = || DnsDiscoveryError::Root(text.to_owned());
    let (signed, sig) = text.split_once(" sig=").ok_or_else(bad)?;
    let mut fields = signed.split(' ');
    if fields.next() != Some("enrtree-root:v1") {
        return Err(bad());
    }
    let mut value = |name: &str| {
        fields
            .next()
            .and_then(|f| f.strip_prefix(name))
            .map(str::to_owned)
            .ok_or_else(bad)
    };
    let enr_root = value("e=")?;
    let link_root = value("l=")?;
    let seq = value("seq=")?.parse().map_err(|_| bad())?;
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig.trim())
        .map_err(|_| bad())?;
    // 65 bytes (r, s, recovery id) as published; the key is known, so r and s suffice.
    if sig.len() != 65 && sig.len() != 64 {
        return Err(DnsDiscoveryError::Signature);
    }
    let signature = Signature::from_slice(&sig[..64]).map_err(|_| DnsDiscoveryError::Signature)?;
    key.verify_prehash(&Keccak256::digest(signed.as_bytes()), &signature)
        .map_err(|_| DnsDiscoveryError::Signature)?;
    Ok(Root {
        enr_root,
        link_root,
        seq,
    })
}

/// One entry below the root.
#[derive(Debug, Clone)]
pub enum Entry {
    /// Names of child entries.
    Branch(Vec<String>),
    /// A node record.
    Record(Box<Enr>),
    /// A link to another tree.
    Link(String),
}

/// Parses an entry below the root.
pub fn parse_entry(text: &str) -> Result<Entry, DnsDiscoveryError> {
    let bad = || DnsDiscoveryError::Entry(text.to_owned());
    if let Some(children) = text.strip_prefix("enrtree-branch:") {
        let children: Vec<String> = children
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
        if children
            .iter()
            .any(|c| c.len() > 32 || BASE32_NOPAD.decode(c.as_bytes()).is_err())
        {
            return Err(bad());
        }
        return Ok(Entry::Branch(children));
    }
    if text.starts_with("enr:") {
        return Enr::from_text(text)
            .map(|e| Entry::Record(Box::new(e)))
            .map_err(|_| bad());
    }
    if text.starts_with("enrtree://") {
        return Ok(Entry::Link(text.to_owned()));
    }
    Err(bad())
}

/// Reads the records of the tree at `url`, looking each name up with `txt` (which answers the
/// TXT text of a name, its strings joined). Bounded by [`MAX_ENTRIES`].
pub async fn read_tree<F, Fut>(url: &TreeUrl, txt: F) -> Result<Vec<Enr>, DnsDiscoveryError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<String, DnsDiscoveryError>>,
{
    let root = verify_root(&txt(url.domain.clone()).await?, &url.key)?;
    let mut records = Vec::new();
    let mut pending = vec![root.enr_root];
    let mut seen = HashSet::new();
    while let Some(hash) = pending.pop() {
        if !seen.insert(hash.clone()) {
            continue;
        }
        if seen.len() > MAX_ENTRIES {
            tracing::warn!(domain = %url.domain, "DNS tree has more than {MAX_ENTRIES} entries; the rest is skipped");
            break;
        }
        let name = format!("{hash}.{}", url.domain);
        let text = txt(name.clone()).await?;
        if !hash_of(&text).starts_with(&hash) || hash.len() < 16 {
            return Err(DnsDiscoveryError::Hash(name));
        }
        match parse_entry(&text)? {
            Entry::Branch(children) => pending.extend(children),
            Entry::Record(r) => records.push(*r),
            Entry::Link(_) => {}
        }
    }
    Ok(records)
}

/// Reads the tree at `url` through DNS: the system's resolvers, or `name_servers`.
pub async fn resolve(
    url: &TreeUrl,
    name_servers: &[SocketAddr],
) -> Result<Vec<Enr>, DnsDiscoveryError> {
    use hickory_resolver::{
        Resolver,
        config::{NameServerConfig, ResolverConfig},
        net::runtime::TokioRuntimeProvider,
        proto::rr::RData,
    };
    let lookup_error = |name: &str, detail: String| DnsDiscoveryError::Lookup {
        name: name.to_owned(),
        detail,
    };
    let resolver = if name_servers.is_empty() {
        Resolver::builder_tokio()
            .and_then(hickory_resolver::ResolverBuilder::build)
            .map_err(|e| lookup_error(&url.domain, e.to_string()))?
    } else {
        let servers = name_servers
            .iter()
            .map(|a| {
                let mut ns = NameServerConfig::udp(a.ip());
                for c in &mut ns.connections {
                    c.port = a.port();
                }
                ns
            })
            .collect();
        Resolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
        .build()
        .map_err(|e| lookup_error(&url.domain, e.to_string()))?
    };
    let resolver = &resolver;
    read_tree(url, |name: String| async move {
        let fqdn = format!("{name}.");
        let lookup = resolver
            .txt_lookup(fqdn.as_str())
            .await
            .map_err(|e| lookup_error(&name, e.to_string()))?;
        lookup
            .answers()
            .iter()
            .find_map(|r| match &r.data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .ok_or_else(|| lookup_error(&name, "no TXT record".into()))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example zone of EIP-1459: its names are the hashes of its entries, and its root is
    /// signed by the key AKPYQIUQIL7PSIACI32J7FGZW56E5FKHEFCCOFHILBIMW3M6LWXS2 (recovered from
    /// the signature; the EIP's example URL names the key of its link entry instead).
    #[test]
    fn the_eip_example_zone_verifies() {
        assert_eq!(
            hash_of(
                "enrtree-branch:2XS2367YHAXJFGLZHVAWLQD4ZY,H4FHT4B454P6UXFD7JCYQ5PWDY,MHTDO6TMUBRIA2XWG5LUDACK24"
            ),
            "JWXYDBPXYWG6FX3GMDIBFA6CJ4"
        );
        assert_eq!(
            hash_of(
                "enrtree://AM5FCQLWIZX2QFPNJAP7VUERCCRNGRHWZG3YYHIUV7BVDQ5FDPRT2@morenodes.example.org"
            ),
            "C7HRFPF3BLGF3YR4DY5KX3SMBE"
        );
        let url: TreeUrl =
            "enrtree://AKPYQIUQIL7PSIACI32J7FGZW56E5FKHEFCCOFHILBIMW3M6LWXS2@nodes.example.org"
                .parse()
                .unwrap();
        let root = "enrtree-root:v1 e=JWXYDBPXYWG6FX3GMDIBFA6CJ4 l=C7HRFPF3BLGF3YR4DY5KX3SMBE seq=1 sig=o908WmNp7LibOfPsr4btQwatZJ5URBr2ZAuxvK4UWHlsB9sUOTJQaGAlLPVAhM__XJesCHxLISo94z5Z2a463gA";
        let verified = verify_root(root, &url.key).unwrap();
        assert_eq!(verified.enr_root, "JWXYDBPXYWG6FX3GMDIBFA6CJ4");
        assert_eq!(verified.seq, 1);
        // Another key, or a changed field, fails.
        let other: TreeUrl =
            "enrtree://AM5FCQLWIZX2QFPNJAP7VUERCCRNGRHWZG3YYHIUV7BVDQ5FDPRT2@nodes.example.org"
                .parse()
                .unwrap();
        assert_eq!(
            verify_root(root, &other.key),
            Err(DnsDiscoveryError::Signature)
        );
        assert_eq!(
            verify_root(&root.replace("seq=1", "seq=2"), &url.key),
            Err(DnsDiscoveryError::Signature)
        );
        assert!(verify_root("enrtree-root:v2 e=A l=B seq=1 sig=x", &url.key).is_err());
        assert!(parse_entry("enrtree-branch:not base32!").is_err());
        assert!(parse_entry("something else").is_err());
    }
}
