//! The `wakurln` command: parses arguments, runs one command, maps failures to exit codes.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(err) => return cli::report_parse_error(&err),
    };
    // Warnings (a chain reorganisation, a failing RPC endpoint) go to stderr; RUST_LOG asks
    // for more.
    tracing_subscriber::fmt()
        .with_writer(wakurln::redact::Stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(args.default_log_filter())),
        )
        .init();
    match args.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Exit 2 is the user's input; exit 1 is an outcome such as an invalid proof, which
            // the message states itself.
            let text = err.to_string();
            let text = wakurln::redact::scrub(&text);
            if err.exit_code() == 2 {
                eprintln!("error: {text}");
            } else {
                eprintln!("{text}");
            }
            ExitCode::from(err.exit_code())
        }
    }
}
