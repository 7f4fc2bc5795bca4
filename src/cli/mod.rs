//! Command-line interface: one clap `Args` struct per command group, each a thin layer that
//! parses, calls the library and prints.

mod chain;
mod circuit;
mod demo;
mod keystore;
mod message;
mod node;
mod password;
mod reference;
mod rln;
mod topic;

use std::{fmt, process::ExitCode};

use clap::{Parser, Subcommand, error::ErrorKind};

/// Exit code for input the command cannot accept (bad flag, malformed value).
const EXIT_BAD_INPUT: u8 = 2;
/// Exit code for a command that ran and failed (an invalid proof, an unwritable file).
const EXIT_FAILED: u8 = 1;

/// wakurln: a Waku v2 node with RLN v2 spam protection, and its toolchain.
#[derive(Debug, Parser)]
#[command(name = "wakurln", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with Waku messages (hashing).
    #[command(subcommand)]
    Message(message::MessageCommand),
    /// Work with pubsub and content topics (autosharding).
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// RLN identities, proofs and verification.
    #[command(subcommand)]
    Rln(rln::RlnCommand),
    /// Install the network's circuit files.
    #[command(subcommand)]
    Circuit(circuit::CircuitCommand),
    /// Manage encrypted RLN credentials (nwaku-compatible keystore).
    #[command(subcommand)]
    Keystore(keystore::KeystoreCommand),
    /// Deploy the membership contract (development chains).
    #[command(subcommand)]
    Contract(chain::ContractCommand),
    /// Register, inspect, extend and erase memberships.
    #[command(subcommand)]
    Membership(chain::MembershipCommand),
    /// Sync the membership tree from the contract.
    #[command(subcommand)]
    Tree(chain::TreeCommand),
    /// Run a relay node enforcing RLN.
    Node(Box<node::NodeArgs>),
    /// Start a local network (chain, contract, members, relay nodes), show honest delivery
    /// and spam detection, and exit.
    Demo(demo::DemoArgs),
}

impl Cli {
    /// Runs the chosen command.
    pub fn run(self) -> Result<(), CliError> {
        match self.command {
            Command::Message(cmd) => cmd.run(),
            Command::Topic(cmd) => cmd.run(),
            Command::Rln(cmd) => cmd.run(),
            Command::Circuit(cmd) => cmd.run(),
            Command::Keystore(cmd) => cmd.run(),
            Command::Contract(cmd) => cmd.run(),
            Command::Membership(cmd) => cmd.run(),
            Command::Tree(cmd) => cmd.run(),
            Command::Node(args) => args.run(),
            Command::Demo(args) => args.run(),
        }
    }

    /// Reads what the command needs before logging starts: the node's config file.
    pub fn prepare(mut self) -> Result<Self, CliError> {
        if let Command::Node(args) = self.command {
            self.command = Command::Node(Box::new(args.merged()?));
        }
        Ok(self)
    }

    /// The log filter and whether to write JSON lines. RUST_LOG, when set, is the filter; else
    /// a running node reports what it does at --log-level (INFO by default) and other commands
    /// only warn.
    pub fn log_settings(&self) -> Result<(String, bool), CliError> {
        let (level, json) = match &self.command {
            Command::Node(args) => args.log_settings()?,
            // Gossipsub warns once per message whose verdict comes after it forgot the
            // message: a flooder could fill the log with those. Its errors still show.
            _ => ("warn".to_owned(), false),
        };
        let filter = std::env::var("RUST_LOG")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or(level);
        Ok((filter, json))
    }
}

/// A failed command: what to tell the user and which exit code to use.
#[derive(Debug)]
pub struct CliError {
    message: String,
    code: u8,
}

impl CliError {
    /// The user gave input the command cannot accept (exit code 2).
    pub fn bad_input(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            code: EXIT_BAD_INPUT,
        }
    }

    /// The command ran and failed (exit code 1).
    pub fn failed(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            code: EXIT_FAILED,
        }
    }

    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Prints help and version as clap does, but keeps argument errors to one line on stderr so
/// scripts can show them as they are.
pub fn report_parse_error(err: &clap::Error) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(EXIT_BAD_INPUT)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            // clap's first paragraph says what is wrong, sometimes over several lines (the
            // list of missing arguments); the usage and tips after it are left to --help.
            let rendered = err.render().to_string();
            let summary = rendered
                .lines()
                .take_while(|line| !line.trim().is_empty())
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            let summary = summary.strip_prefix("error: ").unwrap_or(&summary);
            eprintln!("error: {summary} (see --help)");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

/// Parses hex with or without a `0x` prefix, naming the argument in the error.
fn parse_hex(what: &str, value: &str) -> Result<Vec<u8>, CliError> {
    let digits = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
        .unwrap_or(value);
    hex::decode(digits).map_err(|e| CliError::bad_input(format!("{what} is not valid hex: {e}")))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn hex_accepts_optional_prefix() {
        assert_eq!(parse_hex("x", "0x0aff").unwrap(), vec![0x0a, 0xff]);
        assert_eq!(parse_hex("x", "").unwrap(), Vec::<u8>::new());
        let err = parse_hex("payload", "abc").unwrap_err();
        assert_eq!(err.exit_code(), EXIT_BAD_INPUT);
        assert!(err.to_string().starts_with("payload is not valid hex"));
    }
}
