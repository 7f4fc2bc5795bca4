//! The `wakurln` command: parses arguments, runs one command, maps failures to exit codes.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(err) => return cli::report_parse_error(&err),
    };
    match args.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Exit 2 is the user's input; exit 1 is an outcome such as an invalid proof, which
            // the message states itself.
            if err.exit_code() == 2 {
                eprintln!("error: {err}");
            } else {
                eprintln!("{err}");
            }
            ExitCode::from(err.exit_code())
        }
    }
}
