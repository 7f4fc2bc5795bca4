//! The networks a node can join by name, and the defaults of a network without one.

use std::time::Duration;

use alloy::primitives::{Address, address};
use serde::{Deserialize, Serialize};

/// The Waku Network's membership contract on Linea Sepolia, as the reference node uses it.
pub const TWN_CONTRACT: Address = address!("B9cd878C90E49F797B4431fBF4fb333108CB90e6");

/// Linea Sepolia's chain id.
pub const TWN_CHAIN_ID: u64 = 59_141;

/// The Waku Network's discv5 bootstrap records, as the reference node's `twn` preset lists
/// them (its sandbox fleet in Amsterdam, Iowa and Hong Kong).
pub const TWN_BOOTSTRAP: [&str; 3] = [
    "enr:-QESuED0qW1BCmF-oH_ARGPr97Nv767bl_43uoy70vrbah3EaCAdK3Q0iRQ6wkSTTpdrg_dU_NC2ydO8leSlRpBX4pxiAYJpZIJ2NIJpcIRA4VDAim11bHRpYWRkcnO4XAArNiZub2RlLTAxLmRvLWFtczMud2FrdS5zYW5kYm94LnN0YXR1cy5pbQZ2XwAtNiZub2RlLTAxLmRvLWFtczMud2FrdS5zYW5kYm94LnN0YXR1cy5pbQYfQN4DgnJzkwABCAAAAAEAAgADAAQABQAGAAeJc2VjcDI1NmsxoQOTd-h5owwj-cx7xrmbvQKU8CV3Fomfdvcv1MBc-67T5oN0Y3CCdl-DdWRwgiMohXdha3UyDw",
    "enr:-QEkuED9X80QF_jcN9gA2ZRhhmwVEeJnsg_Hyg7IFCTYnZD0BDI7a8HArE61NhJZFwygpHCWkgwSt2vqiABXkBxzIqZBAYJpZIJ2NIJpcIQiQlleim11bHRpYWRkcnO4bgA0Ni9ub2RlLTAxLmdjLXVzLWNlbnRyYWwxLWEud2FrdS5zYW5kYm94LnN0YXR1cy5pbQZ2XwA2Ni9ub2RlLTAxLmdjLXVzLWNlbnRyYWwxLWEud2FrdS5zYW5kYm94LnN0YXR1cy5pbQYfQN4DgnJzkwABCAAAAAEAAgADAAQABQAGAAeJc2VjcDI1NmsxoQPFAS8zz2cg1QQhxMaK8CzkGQ5wdHvPJcrgLzJGOiHpwYN0Y3CCdl-DdWRwgiMohXdha3UyDw",
    "enr:-QEkuEBfEzJm_kigJ2HoSS_RBFJYhKHocGdkhhBr6jSUAWjLdFPp6Pj1l4yiTQp7TGHyu1kC6FyaU573VN8klLsEm-XuAYJpZIJ2NIJpcIQI2SVcim11bHRpYWRkcnO4bgA0Ni9ub2RlLTAxLmFjLWNuLWhvbmdrb25nLWMud2FrdS5zYW5kYm94LnN0YXR1cy5pbQZ2XwA2Ni9ub2RlLTAxLmFjLWNuLWhvbmdrb25nLWMud2FrdS5zYW5kYm94LnN0YXR1cy5pbQYfQN4DgnJzkwABCAAAAAEAAgADAAQABQAGAAeJc2VjcDI1NmsxoQOwsS69tgD7u1K50r5-qG5hweuTwa0W26aYPnvivpNlrYN0Y3CCdl-DdWRwgiMohXdha3UyDw",
];

/// The Waku Network's DNS tree, as the reference node's library preset names it.
pub const TWN_DNS_DISCOVERY: &str =
    "enrtree://AIRVQ5DDA4FFWLRBCHJWUWOO6X6S4ZTZ5B667LQ6AJU6PEYDLRD5O@sandbox.waku.nodes.status.im";

/// A named network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// The Waku Network: cluster 1, 8 shards, RLN with 600 s epochs on Linea Sepolia.
    Twn,
    /// A local development network: cluster 66, shard 0, RLN against your own contract, a chain
    /// polled every second and read without a follow distance.
    Dev,
}

/// What a network fixes, and the defaults it suggests for what it leaves open.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    /// The cluster id.
    pub cluster: u16,
    /// How many shards autosharding spreads content topics over.
    pub shard_count: u16,
    /// The shards a node relays unless told otherwise.
    pub shards: Vec<u16>,
    /// Whether RLN is part of the network (it cannot be turned off).
    pub requires_rln: bool,
    /// Seconds per RLN epoch.
    pub epoch_period: u64,
    /// The membership contract, when the network has one.
    pub contract: Option<Address>,
    /// The chain the contract lives on, when the network fixes it.
    pub chain_id: Option<u64>,
    /// How often the chain is polled for new memberships.
    pub poll_interval: Duration,
    /// Blocks behind the chain head that the membership sync stays.
    pub follow_distance: u64,
    /// Whether discv5 is on unless told otherwise.
    pub discv5: bool,
    /// discv5 bootstrap records.
    pub bootstrap: &'static [&'static str],
    /// DNS trees to read at start.
    pub dns_discovery: &'static [&'static str],
}

impl Network {
    /// A network without a preset: cluster 66, shard 0 of 8, 600 s epochs, a chain polled
    /// every 5 s and read 2 blocks behind its head.
    pub fn custom() -> Self {
        Self {
            cluster: 66,
            shard_count: 8,
            shards: vec![0],
            requires_rln: false,
            epoch_period: 600,
            contract: None,
            chain_id: None,
            poll_interval: Duration::from_secs(5),
            follow_distance: 2,
            discv5: false,
            bootstrap: &[],
            dns_discovery: &[],
        }
    }
}

impl Preset {
    /// The network this preset names.
    pub fn network(self) -> Network {
        match self {
            Self::Twn => Network {
                cluster: 1,
                shards: (0..8).collect(),
                requires_rln: true,
                contract: Some(TWN_CONTRACT),
                chain_id: Some(TWN_CHAIN_ID),
                discv5: true,
                bootstrap: &TWN_BOOTSTRAP,
                dns_discovery: &[TWN_DNS_DISCOVERY],
                ..Network::custom()
            },
            Self::Dev => Network {
                poll_interval: Duration::from_secs(1),
                follow_distance: 0,
                ..Network::custom()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waku_network_is_cluster_1_with_8_shards_and_rln() {
        let twn = Preset::Twn.network();
        assert_eq!((twn.cluster, twn.shard_count, twn.shards.len()), (1, 8, 8));
        assert!(twn.requires_rln);
        assert_eq!(
            twn.contract.unwrap().to_string(),
            "0xB9cd878C90E49F797B4431fBF4fb333108CB90e6"
        );
        assert_eq!(twn.chain_id, Some(59_141));
    }
}

#[cfg(test)]
mod twn_tests {
    use super::*;

    /// The reference node's bootstrap records are real signed records of The Waku Network:
    /// they verify, and name cluster 1 with shards 0-7, the four services and discv5's UDP.
    #[test]
    fn the_twn_bootstrap_records_verify_and_name_the_network() {
        for text in TWN_BOOTSTRAP {
            let r = crate::enr::Enr::from_text(text).unwrap();
            assert_eq!(r.shards(), Some((1, (0..8).collect())), "{text}");
            assert_eq!(r.services(), 0x0f);
            assert_eq!(r.udp().map(|u| u.port()), Some(9000));
            assert!(crate::discovery::wanted(&r, 1, &[3]));
            assert!(!r.addresses().is_empty());
        }
        let url: crate::dns_discovery::TreeUrl = TWN_DNS_DISCOVERY.parse().unwrap();
        assert_eq!(url.domain, "sandbox.waku.nodes.status.im");
        let twn = Preset::Twn.network();
        assert!(twn.discv5);
        assert_eq!(twn.bootstrap.len(), 3);
    }
}
