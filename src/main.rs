//! The `wakurln` command: parses arguments, runs one command, maps failures to exit codes.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(err) => return cli::report_parse_error(&err),
    };
    // Warnings (a chain reorganisation, a failing RPC endpoint) go to stderr; RUST_LOG or the
    // node's --log-level asks for more.
    let args = match args
        .prepare()
        .and_then(|a| a.log_settings().map(|l| (a, l)))
    {
        Ok((args, (filter, json))) => {
            wakurln::logging::init(&filter, json);
            args
        }
        Err(err) => return report(&err),
    };
    match args.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(&err),
    }
}

fn report(err: &cli::CliError) -> ExitCode {
    // Exit 2 is the user's input; exit 1 is an outcome such as an invalid proof, which the
    // message states itself.
    let text = err.to_string();
    let text = wakurln::redact::scrub(&text);
    if err.exit_code() == 2 {
        eprintln!("error: {text}");
    } else {
        eprintln!("{text}");
    }
    ExitCode::from(err.exit_code())
}
