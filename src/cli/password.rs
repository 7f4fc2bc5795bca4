//! Where passwords come from: a file, an environment variable, or a prompt that does not echo.
//! Never a flag value, which would land in shell history and process listings.

use std::{io::IsTerminal, path::PathBuf};

use clap::Args;
use zeroize::Zeroizing;

use super::CliError;

/// Environment variable holding the keystore password.
pub const PASSWORD_ENV: &str = "WAKURLN_KEYSTORE_PASSWORD";
/// Environment variable holding the new password for `change-password`.
pub const NEW_PASSWORD_ENV: &str = "WAKURLN_KEYSTORE_NEW_PASSWORD";

/// How to obtain the keystore password.
#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// Read the password from this file (one trailing newline is ignored). Without it, the
    /// password comes from WAKURLN_KEYSTORE_PASSWORD or a prompt.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

impl PasswordArgs {
    /// The password; `confirm` asks twice at a prompt (for a password being set).
    pub fn read(&self, confirm: bool) -> Result<Zeroizing<String>, CliError> {
        obtain(
            self.password_file.as_ref(),
            PASSWORD_ENV,
            "keystore password",
            confirm,
        )
    }
}

/// Reads a password from `file`, else the environment variable `env`, else a prompt.
pub fn obtain(
    file: Option<&PathBuf>,
    env: &str,
    what: &str,
    confirm: bool,
) -> Result<Zeroizing<String>, CliError> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file).map_err(|e| {
            CliError::bad_input(format!(
                "cannot read the password file {}: {e}",
                file.display()
            ))
        })?;
        let trimmed = text.strip_suffix('\n').unwrap_or(&text);
        let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
        return non_empty(Zeroizing::new(trimmed.to_owned()));
    }
    if let Ok(value) = std::env::var(env) {
        return non_empty(Zeroizing::new(value));
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::bad_input(format!(
            "no {what}: give --password-file or set {env} (no terminal to prompt on)"
        )));
    }
    let first = Zeroizing::new(
        rpassword::prompt_password(format!("{what}: "))
            .map_err(|e| CliError::failed(format!("cannot read the {what}: {e}")))?,
    );
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password(format!("repeat the {what}: "))
                .map_err(|e| CliError::failed(format!("cannot read the {what}: {e}")))?,
        );
        if *first != *again {
            return Err(CliError::bad_input("the two passwords differ"));
        }
    }
    non_empty(first)
}

fn non_empty(password: Zeroizing<String>) -> Result<Zeroizing<String>, CliError> {
    if password.is_empty() {
        return Err(CliError::bad_input("the password is empty"));
    }
    Ok(password)
}
