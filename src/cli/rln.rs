//! `wakurln rln ...`: RLN identities, proofs and verification from the command line, for
//! scripts and for checking other implementations.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::{Value, json};
use wakurln::rln::{
    circuit::graph::RlnInputs,
    field::{self, Fr},
    identity::Identity,
    prover::RlnProver,
    tree::DEPTH,
    verifier::{Verifier, decode_proof},
    waku::RlnProofBytes,
};

use super::{CliError, circuit::CircuitDirArgs};

/// RLN identities and proofs.
#[derive(Debug, Subcommand)]
pub enum RlnCommand {
    /// Generate an identity and print it as JSON (decimal strings).
    Keygen(KeygenArgs),
    /// Prove from a circom-style input file; writes the 288-byte proof layout.
    Prove(ProveArgs),
    /// Verify a proof file against accepted roots: exit 0 valid, 1 invalid, 2 malformed input.
    Verify(VerifyArgs),
}

/// Identity generation.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Derive the identity deterministically from this seed (keep it as secret as the
    /// identity); without it the operating system's CSPRNG is used.
    #[arg(long, value_name = "SEED")]
    seed: Option<String>,
}

/// Proof generation.
#[derive(Debug, Args)]
pub struct ProveArgs {
    /// JSON input with the circuit's signal names (identitySecret, userMessageLimit,
    /// messageId, pathElements, identityPathIndex, x, externalNullifier), decimal strings.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Where to write the proof: proof(128) | root | external_nullifier | x | y | nullifier.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    circuit: CircuitDirArgs,
}

/// Proof verification.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The 288-byte proof file written by `rln prove` (or another implementation).
    #[arg(long, value_name = "FILE")]
    proof: PathBuf,
    /// An accepted Merkle root (decimal or 0x hex); repeat for several.
    #[arg(long = "root", value_name = "ROOT", required = true)]
    roots: Vec<String>,
}

impl RlnCommand {
    pub fn run(self) -> Result<(), CliError> {
        match self {
            Self::Keygen(args) => {
                let identity = match &args.seed {
                    Some(seed) => Identity::from_seed(seed.as_bytes()),
                    None => Identity::generate(),
                };
                println!("{}", identity_json(&identity));
                Ok(())
            }
            Self::Prove(args) => args.run(),
            Self::Verify(args) => args.run(),
        }
    }
}

fn identity_json(identity: &Identity) -> Value {
    json!({
        "idTrapdoor": field::to_decimal(&identity.trapdoor),
        "idNullifier": field::to_decimal(&identity.nullifier),
        "idSecretHash": field::to_decimal(&identity.secret_hash),
        "idCommitment": field::to_decimal(&identity.commitment),
    })
}

/// A circom input file: every value a decimal string (numbers are accepted too).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InputFile {
    identity_secret: Value,
    user_message_limit: Value,
    message_id: Value,
    path_elements: Vec<Value>,
    identity_path_index: Vec<Value>,
    x: Value,
    external_nullifier: Value,
}

fn element(name: &str, value: &Value) -> Result<Fr, CliError> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_u64() => n.to_string(),
        other => {
            return Err(CliError::bad_input(format!(
                "{name}: expected a decimal string, got {other}"
            )));
        }
    };
    field::parse(&text).map_err(|e| CliError::bad_input(format!("{name}: {e}")))
}

fn array<const N: usize>(name: &str, values: &[Value]) -> Result<[Fr; N], CliError> {
    if values.len() != N {
        return Err(CliError::bad_input(format!(
            "{name}: expected {N} values, got {}",
            values.len()
        )));
    }
    let parsed = values
        .iter()
        .enumerate()
        .map(|(i, v)| element(&format!("{name}[{i}]"), v))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(parsed.try_into().expect("length checked"))
}

impl InputFile {
    fn read(path: &Path) -> Result<RlnInputs, CliError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::bad_input(format!("cannot read {}: {e}", path.display())))?;
        let file: InputFile = serde_json::from_str(&text).map_err(|e| {
            CliError::bad_input(format!(
                "{} is not a valid RLN input file: {e}",
                path.display()
            ))
        })?;
        let bits: [Fr; DEPTH] = array("identityPathIndex", &file.identity_path_index)?;
        let mut path_bits = [false; DEPTH];
        for (i, (bit, out)) in bits.iter().zip(&mut path_bits).enumerate() {
            *out = match field::to_decimal(bit).as_str() {
                "0" => false,
                "1" => true,
                other => {
                    return Err(CliError::bad_input(format!(
                        "identityPathIndex[{i}]: expected 0 or 1, got {other}"
                    )));
                }
            };
        }
        Ok(RlnInputs {
            identity_secret: element("identitySecret", &file.identity_secret)?,
            user_message_limit: element("userMessageLimit", &file.user_message_limit)?,
            message_id: element("messageId", &file.message_id)?,
            path_elements: array("pathElements", &file.path_elements)?,
            identity_path_index: path_bits,
            x: element("x", &file.x)?,
            external_nullifier: element("externalNullifier", &file.external_nullifier)?,
        })
    }
}

impl ProveArgs {
    fn run(self) -> Result<(), CliError> {
        let inputs = InputFile::read(&self.input)?;
        let prover = RlnProver::load(&self.circuit.dir).map_err(CliError::failed)?;
        let proof = prover
            .prove(&inputs, &mut rand::rngs::OsRng)
            .map_err(CliError::bad_input)?;
        let bytes = proof.to_layout().to_bytes();
        std::fs::write(&self.out, bytes)
            .map_err(|e| CliError::failed(format!("cannot write {}: {e}", self.out.display())))?;
        println!(
            "{}",
            json!({
                "root": field::to_decimal(&proof.values.root),
                "nullifier": field::to_decimal(&proof.values.nullifier),
            })
        );
        Ok(())
    }
}

impl VerifyArgs {
    fn run(self) -> Result<(), CliError> {
        let roots = self
            .roots
            .iter()
            .map(|r| field::parse(r).map_err(|e| CliError::bad_input(format!("--root {r}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let bytes = std::fs::read(&self.proof).map_err(|e| {
            CliError::bad_input(format!("cannot read {}: {e}", self.proof.display()))
        })?;
        let layout = RlnProofBytes::from_bytes(&bytes).map_err(|e| {
            CliError::bad_input(format!("{} is not an RLN proof: {e}", self.proof.display()))
        })?;
        let proof = decode_proof(&layout.proof).map_err(|e| {
            CliError::bad_input(format!("{} is not an RLN proof: {e}", self.proof.display()))
        })?;
        if !roots.contains(&layout.values.root) {
            return Err(CliError::failed(format!(
                "invalid: the proof's root {} is not one of the accepted roots",
                field::to_decimal(&layout.values.root)
            )));
        }
        if !Verifier::network().verify(&proof, &layout.values.public_inputs()) {
            return Err(CliError::failed("invalid: the proof does not verify"));
        }
        println!("valid");
        Ok(())
    }
}
