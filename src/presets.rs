//! The networks a node can join by name, and the defaults of a network without one.

use std::time::Duration;

use alloy::primitives::{Address, address};
use serde::{Deserialize, Serialize};

/// The Waku Network's membership contract on Linea Sepolia, as the reference node uses it.
pub const TWN_CONTRACT: Address = address!("B9cd878C90E49F797B4431fBF4fb333108CB90e6");

/// Linea Sepolia's chain id.
pub const TWN_CHAIN_ID: u64 = 59_141;

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
