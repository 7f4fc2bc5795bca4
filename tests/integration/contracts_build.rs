//! The committed contract artifacts (`contracts/artifacts/*.json`) are exactly what the pinned
//! solc-js makes of `contracts/src`, and they keep the WakuRlnV2 event and function ABI the node
//! relies on.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common;

fn contracts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contracts")
}

/// Runs a command to completion and panics with its output unless it succeeds.
fn run(command: &mut Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot start {what} ({e}): install Node.js and npm"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Installs the pinned npm packages of contracts/ unless `scripts/test` already did.
fn ensure_npm_packages(dir: &Path) {
    if !dir.join("node_modules/solc").is_dir() {
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--prefix"])
                .arg(dir),
            "npm ci --prefix contracts",
        );
    }
}

fn artifact(name: &str) -> Value {
    let path = contracts_dir()
        .join("artifacts")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// `name(type name, ...)` of an ABI entry, with `indexed` marked, and its output types.
fn describe(entry: &Value) -> (String, Vec<String>) {
    let params = |key: &str| -> Vec<&Value> {
        entry[key]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    };
    let inputs: Vec<String> = params("inputs")
        .iter()
        .map(|p| {
            let indexed = if p["indexed"] == Value::Bool(true) {
                " indexed"
            } else {
                ""
            };
            format!(
                "{}{indexed} {}",
                p["type"].as_str().unwrap(),
                p["name"].as_str().unwrap()
            )
        })
        .collect();
    let outputs = params("outputs")
        .iter()
        .map(|p| p["type"].as_str().unwrap().to_owned())
        .collect();
    (
        format!("{}({})", entry["name"].as_str().unwrap(), inputs.join(", ")),
        outputs,
    )
}

/// The four membership events exactly as WakuRlnV2 declares them: no field is indexed.
const EVENTS: &[&str] = &[
    "MembershipRegistered(uint256 idCommitment, uint256 membershipRateLimit, uint32 index)",
    "MembershipErased(uint256 idCommitment, uint32 membershipRateLimit, uint32 index)",
    "MembershipExpired(uint256 idCommitment, uint32 membershipRateLimit, uint32 index)",
    "MembershipExtended(uint256 idCommitment, uint32 membershipRateLimit, uint32 index, \
     uint256 newGracePeriodStartTimestamp)",
    "RootStored(uint256 newRoot)",
];

/// Functions the node and the CLI call, with WakuRlnV2's return types.
const FUNCTIONS: &[(&str, &[&str])] = &[
    (
        "register(uint256 idCommitment, uint32 rateLimit, uint256[] idCommitmentsToErase)",
        &[],
    ),
    ("root()", &["uint256"]),
    ("nextFreeIndex()", &["uint32"]),
    ("getMerkleProof(uint40 index)", &["uint256[20]"]),
    (
        "getRateCommitmentsInRangeBoundsInclusive(uint32 startIndex, uint32 endIndex)",
        &["uint256[]"],
    ),
    ("minMembershipRateLimit()", &["uint32"]),
    ("maxMembershipRateLimit()", &["uint32"]),
    ("deployedBlockNumber()", &["uint32"]),
    ("isExpired(uint256 idCommitment)", &["bool"]),
    ("isInGracePeriod(uint256 idCommitment)", &["bool"]),
    ("extendMemberships(uint256[] idCommitments)", &[]),
    ("eraseMemberships(uint256[] idCommitments)", &[]),
    ("withdraw(address depositToken)", &[]),
    ("getRecentRoots()", &["uint256[5]"]),
    ("getRootAt(uint8 position)", &["uint256"]),
    ("HISTORY_SIZE()", &["uint8"]),
    (
        "eraseMemberships(uint256[] idCommitments, bool eraseFromMembershipSet)",
        &[],
    ),
];

/// Entries of the network's ABI that ours leaves out, and why.
const NOT_OURS: &[(&str, &str)] = &[
    (
        "initialize",
        "ours is not behind an upgrade proxy: parameters go to the constructor",
    ),
    (
        "owner",
        "ours has no owner: its parameters are fixed at deployment",
    ),
    ("renounceOwnership", "no owner"),
    ("transferOwnership", "no owner"),
    ("upgradeTo", "not upgradeable"),
    ("upgradeToAndCall", "not upgradeable"),
    ("proxiableUUID", "not upgradeable"),
    ("setActiveDuration", "fixed at deployment"),
    ("setGracePeriodDuration", "fixed at deployment"),
    ("setMaxMembershipRateLimit", "fixed at deployment"),
    ("setMaxTotalRateLimit", "fixed at deployment"),
    ("setMinMembershipRateLimit", "fixed at deployment"),
    ("setPriceCalculator", "ours is its own price calculator"),
    (
        "merkleTree",
        "the library's internal counters, not part of the membership interface",
    ),
    (
        "registerWithPermit",
        "needs an EIP-2612 deposit token; ours takes approve + register",
    ),
    ("AdminChanged", "proxy event"),
    ("BeaconUpgraded", "proxy event"),
    ("Upgraded", "proxy event"),
    ("Initialized", "proxy event"),
    ("OwnershipTransferred", "no owner"),
];

#[test]
fn committed_artifacts_match_a_fresh_compile() {
    let dir = contracts_dir();
    ensure_npm_packages(&dir);
    let stdout = run(
        Command::new("node")
            .arg(dir.join("build.mjs"))
            .arg("--check"),
        "node contracts/build.mjs --check",
    );
    assert!(
        stdout.contains("artifacts match"),
        "unexpected output: {stdout}"
    );
}

#[test]
fn membership_abi_keeps_the_waku_rln_v2_shape() {
    let abi = artifact("WakuRlnMembership")["abi"].clone();
    let entries: Vec<(String, String, Vec<String>)> = abi
        .as_array()
        .expect("abi is an array")
        .iter()
        .filter(|e| e["type"] == "event" || e["type"] == "function")
        .map(|e| {
            let (signature, outputs) = describe(e);
            (e["type"].as_str().unwrap().to_owned(), signature, outputs)
        })
        .collect();
    let has = |kind: &str, signature: &str, outputs: &[&str]| {
        assert!(
            entries
                .iter()
                .any(|(k, s, o)| k == kind && s == signature && o == outputs),
            "missing {kind} {signature} -> {outputs:?}"
        );
    };

    for event in EVENTS {
        has("event", event, &[]);
    }
    for (function, outputs) in FUNCTIONS {
        has("function", function, outputs);
    }
}

/// `kind name(types) -> outputs` of every function and event of an ABI, without parameter names.
fn shapes(abi: &Value) -> Vec<(String, String)> {
    abi.as_array()
        .expect("an ABI is an array")
        .iter()
        .filter(|e| e["type"] == "event" || e["type"] == "function")
        .map(|e| {
            let types = |key: &str| -> Vec<String> {
                e[key]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|p| {
                                let indexed = if p["indexed"] == Value::Bool(true) {
                                    " indexed"
                                } else {
                                    ""
                                };
                                format!("{}{indexed}", p["type"].as_str().unwrap())
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            };
            (
                e["name"].as_str().unwrap().to_owned(),
                format!(
                    "{} {}({}) -> ({})",
                    e["type"].as_str().unwrap(),
                    e["name"].as_str().unwrap(),
                    types("inputs").join(","),
                    types("outputs").join(",")
                ),
            )
        })
        .collect()
}

/// Tools written for the network's contract call it through the ABI its client library ships
/// (`@waku/rln`): every function and event of that ABI is in ours with the same types, except
/// the owner and proxy administration listed in `NOT_OURS`.
#[test]
fn every_member_function_of_the_networks_abi_is_in_ours() {
    let theirs: Value = serde_json::from_slice(&common::run_node_script("rln_abi.mjs", &[], b""))
        .expect("rln_abi.mjs prints JSON");
    let ours = shapes(&artifact("WakuRlnMembership")["abi"]);
    let theirs = shapes(&theirs);
    assert!(
        theirs.len() > 40,
        "the network's ABI looks truncated: {theirs:?}"
    );
    let mut missing = Vec::new();
    for (name, shape) in &theirs {
        if NOT_OURS.iter().any(|(n, _)| n == name) {
            continue;
        }
        if !ours.iter().any(|(_, s)| s == shape) {
            missing.push(shape.clone());
        }
    }
    assert!(missing.is_empty(), "missing from ours: {missing:#?}");
    for (name, why) in NOT_OURS {
        assert!(
            theirs.iter().any(|(n, _)| n == name),
            "{name} is listed as left out ({why}) but the network's ABI has no such entry"
        );
    }
}
