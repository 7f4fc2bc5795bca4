//! DNS discovery against a real DNS server on loopback (hickory's, serving a zone built here):
//! the test publishes a tree of node records signed with its own key, and a node given only the
//! tree's URL reads it, verifies it and dials the records of its cluster. A tree signed by
//! another key, or with an entry that does not hash to its name, is refused.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use base64::Engine;
use data_encoding::BASE32_NOPAD;
use hickory_server::{
    Server,
    proto::rr::{
        Name, RData, Record,
        rdata::{SOA, TXT},
    },
    store::in_memory::InMemoryZoneHandler,
    zone_handler::{AxfrPolicy, Catalog, ZoneType},
};
use k256::ecdsa::SigningKey;
use sha3::{Digest, Keccak256};
use wakurln::{
    dns_discovery::{self, DnsDiscoveryError, TreeUrl, hash_of},
    node::{self, NodeConfig, NodeHandle},
};

const CLUSTER: u16 = 54;

/// The TXT entries of a tree under `domain` holding `records`, the root signed with `key`.
fn tree(domain: &str, key: &SigningKey, records: &[String]) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> =
        records.iter().map(|r| (hash_of(r), r.clone())).collect();
    let branch = format!(
        "enrtree-branch:{}",
        entries
            .iter()
            .map(|(h, _)| h.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    let links = "enrtree-branch:".to_owned();
    let signed = format!(
        "enrtree-root:v1 e={} l={} seq=1",
        hash_of(&branch),
        hash_of(&links)
    );
    let (signature, recovery) = key
        .sign_prehash_recoverable(&Keccak256::digest(signed.as_bytes()))
        .unwrap();
    let mut sig = signature.to_bytes().to_vec();
    sig.push(recovery.to_byte());
    let root = format!(
        "{signed} sig={}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
    );
    entries.push((hash_of(&branch), branch));
    entries.push((hash_of(&links), links));
    let mut named: Vec<(String, String)> = entries
        .into_iter()
        .map(|(h, text)| (format!("{h}.{domain}"), text))
        .collect();
    named.push((domain.to_owned(), root));
    named
}

/// Serves `entries` (name, TXT text) on a UDP port of loopback; returns its address.
async fn serve(origin: &str, entries: &[(String, String)]) -> (SocketAddr, Server<Catalog>) {
    let origin_name = Name::from_ascii(format!("{origin}.")).unwrap();
    let mut zone = InMemoryZoneHandler::<hickory_server::net::runtime::TokioRuntimeProvider>::empty(
        origin_name.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
    );
    let soa = SOA::new(
        Name::from_ascii(format!("ns.{origin}.")).unwrap(),
        Name::from_ascii(format!("admin.{origin}.")).unwrap(),
        1,
        3600,
        600,
        86400,
        60,
    );
    zone.upsert_mut(
        Record::from_rdata(origin_name.clone(), 60, RData::SOA(soa)),
        1,
    );
    for (name, text) in entries {
        // One TXT string holds at most 255 bytes: longer texts are split, and joined again by
        // the reader.
        let parts: Vec<String> = text
            .as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        let name = Name::from_ascii(format!("{name}.")).unwrap();
        zone.upsert_mut(Record::from_rdata(name, 60, RData::TXT(TXT::new(parts))), 1);
    }
    let mut catalog = Catalog::new();
    catalog.upsert(origin_name.into(), vec![Arc::new(zone)]);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    let mut server = Server::new(catalog);
    server.register_socket(socket);
    (address, server)
}

fn url_of(key: &SigningKey, domain: &str) -> TreeUrl {
    let public = key.verifying_key().to_encoded_point(true);
    format!(
        "enrtree://{}@{domain}",
        BASE32_NOPAD.encode(public.as_bytes())
    )
    .parse()
    .unwrap()
}

async fn member(dir: &std::path::Path, name: &str, cluster: u16) -> NodeHandle {
    node::start(NodeConfig::local(dir.join(name), cluster))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reads_a_signed_dns_tree_and_dials_its_cluster() {
    let dir = std::env::temp_dir().join(format!("wakurln-dnsdisc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut members = Vec::new();
    for i in 0..3 {
        members.push(member(&dir, &format!("member{i}"), CLUSTER).await);
    }
    let stranger = member(&dir, "stranger", CLUSTER + 1).await;
    let records: Vec<String> = members
        .iter()
        .chain([&stranger])
        .map(|n| n.enr().unwrap().to_text())
        .collect();
    let domain = "nodes.wakurln.test";
    let key = SigningKey::random(&mut rand::rngs::OsRng);
    let (address, mut server) = serve(domain, &tree(domain, &key, &records)).await;
    let url = url_of(&key, domain);

    // Read directly: every record, verified.
    let read = dns_discovery::resolve(&url, &[address]).await.unwrap();
    let mut got: Vec<String> = read.iter().map(|r| r.to_text()).collect();
    got.sort();
    let mut want = records.clone();
    want.sort();
    assert_eq!(got, want);

    // A node given only the URL dials the three of its cluster, not the stranger.
    let mut config = NodeConfig::local(dir.join("reader"), CLUSTER);
    config.dns_discovery = vec![url.clone()];
    config.dns_name_servers = vec![address];
    let reader = node::start(config).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let peers: Vec<_> = reader
            .peers()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.peer)
            .collect();
        if members.iter().all(|m| peers.contains(&m.peer_id())) {
            assert!(
                !peers.contains(&stranger.peer_id()),
                "dialled another cluster"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the tree's nodes were not dialled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The same tree under a key the URL does not name is refused.
    let other = SigningKey::random(&mut rand::rngs::OsRng);
    assert_eq!(
        dns_discovery::resolve(&url_of(&other, domain), &[address])
            .await
            .unwrap_err(),
        DnsDiscoveryError::Signature
    );
    server.shutdown_gracefully().await.unwrap();

    // An entry swapped for another record no longer hashes to its name.
    let mut forged = tree(domain, &key, &records);
    let swapped = forged
        .iter()
        .position(|(_, text)| text.starts_with("enr:"))
        .unwrap();
    forged[swapped].1 = records[(swapped + 1) % records.len()].clone();
    let (address, mut server) = serve(domain, &forged).await;
    assert!(matches!(
        dns_discovery::resolve(&url, &[address]).await,
        Err(DnsDiscoveryError::Hash(_))
    ));
    server.shutdown_gracefully().await.unwrap();

    for n in members.iter().chain([&stranger, &reader]) {
        n.shutdown().await;
    }
}
