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

/// Where the circuit files live.
#[derive(Debug, Args)]
pub struct CircuitDirArgs {
    /// Directory holding rln_final.arkzkey (or rln_final.zkey) and graph.bin.
    #[arg(
        long = "circuit-dir",
        value_name = "DIR",
        env = "WAKURLN_CIRCUIT_DIR",
        default_value_os_t = default_circuit_dir()
    )]
    pub dir: PathBuf,
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
    /// A directory holding the network's files (rln_final.arkzkey or rln_final.zkey,
    /// graph.bin). Without it, the files come from the published crates.io package `rln`
    /// 3.0.0, fetched with cargo.
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
    #[command(flatten)]
    target: CircuitDirArgs,
}

impl CircuitCommand {
    pub fn run(self) -> Result<(), CliError> {
        match self {
            Self::Install(args) => {
                let from = match args.from {
                    Some(dir) => dir,
                    None => fetch_from_crates_io()?,
                };
                install(&from, &args.target.dir)
            }
        }
    }
}

/// The package whose sources carry the network's circuit files.
const KEYS_PACKAGE: (&str, &str) = ("rln", "3.0.0");

/// Fetches the published `rln` package with cargo (in a throw-away project, so nothing is
/// built) and returns the folder of its circuit files.
pub fn fetch_from_crates_io() -> Result<PathBuf, CliError> {
    let (name, version) = KEYS_PACKAGE;
    let project =
        std::env::temp_dir().join(format!("wakurln-circuit-fetch-{}", std::process::id()));
    let io =
        |e: std::io::Error| CliError::failed(format!("cannot prepare {}: {e}", project.display()));
    std::fs::create_dir_all(project.join("src")).map_err(io)?;
    std::fs::write(
        project.join("Cargo.toml"),
        format!(
            "[package]\nname = \"wakurln-circuit-fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
             [dependencies]\n{name} = {{ version = \"={version}\", default-features = false }}\n"
        ),
    )
    .map_err(io)?;
    std::fs::write(project.join("src/lib.rs"), "").map_err(io)?;
    let manifest = project.join("Cargo.toml");
    eprintln!("fetching the circuit files from crates.io (package {name} {version}) with cargo...");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(&cargo)
        .args(["fetch", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .status()
        .map_err(|e| {
            CliError::failed(format!(
                "cannot run cargo ({e}); install Rust's cargo or give --from DIR"
            ))
        })?;
    if !status.success() {
        let _ = std::fs::remove_dir_all(&project);
        return Err(CliError::failed(
            "cargo could not fetch the package from crates.io; check the network or give --from DIR",
        ));
    }
    let out = std::process::Command::new(&cargo)
        .args([
            "metadata",
            "--offline",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .map_err(|e| CliError::failed(format!("cannot run cargo metadata: {e}")))?;
    let _ = std::fs::remove_dir_all(&project);
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| CliError::failed(format!("cargo metadata gave no JSON: {e}")))?;
    let manifest_path = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name && p["version"] == version)
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or_else(|| CliError::failed(format!("cargo did not fetch {name} {version}")))?;
    Ok(Path::new(manifest_path)
        .parent()
        .expect("a manifest lies in its package folder")
        .join("resources/tree_depth_20"))
}

/// Checks the files in `from` against the pins and copies them to `to`.
pub fn install(from: &Path, to: &Path) -> Result<(), CliError> {
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
