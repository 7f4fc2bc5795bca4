//! `wakurln circuit ...`: putting the network's circuit files where the node looks for them.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use wakurln::rln::circuit::{Artifact, ArtifactError, read_pinned};

use super::CliError;

/// The default circuit directory: `$HOME/.wakurln/circuits/waku-rln-v2`.
pub fn default_circuit_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".wakurln").join("circuits").join("waku-rln-v2")
}

/// Circuit files.
#[derive(Debug, Subcommand)]
pub enum CircuitCommand {
    /// Copy the network's circuit files into the circuit directory, checking pinned digests.
    Install(InstallArgs),
}

/// Installation source and target.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// A directory holding the network's files (rln_final.arkzkey or rln_final.zkey, graph.bin).
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    #[command(flatten)]
    target: super::rln::CircuitDirArgs,
}

impl CircuitCommand {
    pub fn run(self) -> Result<(), CliError> {
        match self {
            Self::Install(args) => install(&args.from, &args.target.dir),
        }
    }
}

fn install(from: &Path, to: &Path) -> Result<(), CliError> {
    // Check every file before writing any, so a bad source leaves the target untouched.
    let mut found = Vec::new();
    for artifact in Artifact::ALL {
        match read_pinned(from, artifact) {
            Ok(bytes) => found.push((artifact, bytes)),
            Err(ArtifactError::Missing { .. }) => {}
            Err(e) => return Err(CliError::bad_input(e)),
        }
    }
    let has = |a: Artifact| found.iter().any(|(f, _)| *f == a);
    if !(has(Artifact::ArkZkey) || has(Artifact::Zkey)) || !has(Artifact::Graph) {
        return Err(CliError::bad_input(format!(
            "{} must hold graph.bin and rln_final.arkzkey or rln_final.zkey",
            from.display()
        )));
    }
    std::fs::create_dir_all(to)
        .map_err(|e| CliError::failed(format!("cannot create {}: {e}", to.display())))?;
    for (artifact, bytes) in found {
        // Write beside the target and rename, so a crash never leaves a half-written key.
        let target = to.join(artifact.file_name());
        let partial = to.join(format!(".{}.partial", artifact.file_name()));
        std::fs::write(&partial, &bytes)
            .and_then(|()| std::fs::rename(&partial, &target))
            .map_err(|e| CliError::failed(format!("cannot write {}: {e}", target.display())))?;
        println!(
            "installed {} (sha256 {})",
            target.display(),
            artifact.sha256()
        );
    }
    Ok(())
}
