//! `wakurln topic ...`: topic utilities.

use clap::{Args, Subcommand};
use wakurln::topics::ContentTopic;

use super::CliError;

/// Topic utilities.
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Print the pubsub topic autosharding assigns a content topic to.
    Shard(ShardArgs),
}

/// A content topic and the cluster layout to shard it into.
#[derive(Debug, Args)]
pub struct ShardArgs {
    /// Content topic, e.g. /toychat/2/huilong/proto.
    #[arg(value_name = "CONTENT_TOPIC")]
    content_topic: String,
    /// Cluster id (1 is The Waku Network).
    #[arg(long, value_name = "N", default_value_t = 1)]
    cluster: u16,
    /// Number of shards in the cluster (8 on The Waku Network).
    #[arg(long, value_name = "K", default_value_t = 8)]
    shards: u16,
}

impl TopicCommand {
    pub fn run(self) -> Result<(), CliError> {
        match self {
            Self::Shard(args) => {
                println!("{}", args.pubsub_topic()?);
                Ok(())
            }
        }
    }
}

impl ShardArgs {
    fn pubsub_topic(&self) -> Result<String, CliError> {
        let topic: ContentTopic = self.content_topic.parse().map_err(CliError::bad_input)?;
        let shard = topic
            .autoshard(self.cluster, self.shards)
            .map_err(CliError::bad_input)?;
        Ok(shard.to_string())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(subcommand)]
        cmd: TopicCommand,
    }

    #[test]
    fn parses_shard_flags_and_defaults() {
        let w = Wrapper::try_parse_from(["x", "shard", "/toychat/2/huilong/proto"]).unwrap();
        let TopicCommand::Shard(args) = w.cmd;
        assert_eq!((args.cluster, args.shards), (1, 8));
        assert_eq!(args.pubsub_topic().unwrap(), "/waku/2/rs/1/3");
        assert!(Wrapper::try_parse_from(["x", "shard", "/a/1/b/c", "--shards", "x"]).is_err());
    }
}
