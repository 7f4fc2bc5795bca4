//! `wakurln message ...`: message utilities.

use clap::{Args, Subcommand};
use wakurln::{
    message::WakuMessage,
    topics::{ContentTopic, PubsubTopic},
};

use super::{CliError, parse_hex};

/// Message utilities.
#[derive(Debug, Subcommand)]
pub enum MessageCommand {
    /// Print the deterministic hash of a message (lowercase hex) as store and filter name it.
    Hash(HashArgs),
}

/// The parts of a message that its hash covers.
#[derive(Debug, Args)]
pub struct HashArgs {
    /// Pubsub topic the message travels on, e.g. /waku/2/rs/1/3.
    #[arg(long, value_name = "TOPIC")]
    pubsub_topic: String,
    /// Content topic, e.g. /toychat/2/huilong/proto.
    #[arg(long, value_name = "TOPIC")]
    content_topic: String,
    /// Payload as hex (a 0x prefix is allowed; empty for an empty payload).
    #[arg(long, value_name = "HEX", allow_hyphen_values = false)]
    payload_hex: String,
    /// Application metadata as hex, at most 64 bytes.
    #[arg(long, value_name = "HEX")]
    meta_hex: Option<String>,
    /// Sender timestamp in Unix nanoseconds.
    #[arg(long, value_name = "NS")]
    timestamp: Option<i64>,
}

impl MessageCommand {
    pub fn run(self) -> Result<(), CliError> {
        match self {
            Self::Hash(args) => {
                println!("{}", args.hash()?);
                Ok(())
            }
        }
    }
}

impl HashArgs {
    fn hash(&self) -> Result<String, CliError> {
        let pubsub: PubsubTopic = self.pubsub_topic.parse().map_err(CliError::bad_input)?;
        let content: ContentTopic = self.content_topic.parse().map_err(CliError::bad_input)?;
        let mut builder = WakuMessage::builder(content, parse_hex("payload", &self.payload_hex)?);
        if let Some(meta) = &self.meta_hex {
            builder = builder.meta(parse_hex("meta", meta)?);
        }
        if let Some(ts) = self.timestamp {
            builder = builder.timestamp(ts);
        }
        let message = builder.build().map_err(CliError::bad_input)?;
        Ok(message.hash(pubsub.as_str()).to_string())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(subcommand)]
        cmd: MessageCommand,
    }

    #[test]
    fn parses_hash_flags() {
        let w = Wrapper::try_parse_from([
            "x",
            "hash",
            "--pubsub-topic",
            "/waku/2/rs/1/0",
            "--content-topic",
            "/a/1/b/proto",
            "--payload-hex",
            "0x01",
            "--meta-hex",
            "02",
            "--timestamp",
            "1700000000000000000",
        ])
        .unwrap();
        let MessageCommand::Hash(args) = w.cmd;
        assert_eq!(args.meta_hex.as_deref(), Some("02"));
        assert_eq!(args.timestamp, Some(1_700_000_000_000_000_000));
        assert_eq!(args.hash().unwrap().len(), 64);
    }

    #[test]
    fn payload_is_required() {
        let err =
            Wrapper::try_parse_from(["x", "hash", "--pubsub-topic", "t", "--content-topic", "c"])
                .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }
}
