//! Our circom source of the RLN v2 circuit (`circuits/rln.circom`), compiled by `circuits/build.sh`,
//! against The Waku Network's proving key: same sizes, same public signals in the same wires,
//! the same A and B matrices row for row, and a C matrix that the network's witnesses satisfy.
//!
//! The `.r1cs` and `.sym` files are parsed here, independently of the library's key readers.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use ark_ff::{BigInteger, PrimeField, UniformRand, Zero};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wakurln::rln::circuit::graph::{Graph, RlnInputs};
use wakurln::rln::circuit::{Artifact, NUM_WIRES, ProvingKey, parse_arkzkey, read_pinned};
use wakurln::rln::field::{Fr, from_le_bytes};

/// One linear combination: `(wire, coefficient)` pairs.
type Lc = Vec<(usize, Fr)>;

/// An R1CS constraint `A·w * B·w = C·w`.
#[derive(Debug)]
struct Constraint {
    a: Lc,
    b: Lc,
    c: Lc,
}

/// The parts of a circom `.r1cs` file this test compares.
#[derive(Debug)]
struct R1cs {
    prime: Vec<u8>,
    wires: usize,
    public_outputs: usize,
    public_inputs: usize,
    private_inputs: usize,
    labels: u64,
    constraints: Vec<Constraint>,
}

/// A little-endian reader over a byte slice that panics with the offset on truncation.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.unwrap_or_else(|| panic!("r1cs truncated at byte {}", self.at));
        let slice = &self.bytes[self.at..end];
        self.at = end;
        slice
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().expect("4 bytes"))
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().expect("8 bytes"))
    }

    fn usize32(&mut self) -> usize {
        usize::try_from(self.u32()).expect("u32 fits usize")
    }

    fn lc(&mut self, field_bytes: usize) -> Lc {
        let terms = self.usize32();
        (0..terms)
            .map(|_| {
                let wire = self.usize32();
                let value = from_le_bytes(self.take(field_bytes))
                    .unwrap_or_else(|e| panic!("coefficient of wire {wire}: {e}"));
                (wire, value)
            })
            .collect()
    }
}

const HEADER_SECTION: u32 = 1;
const CONSTRAINTS_SECTION: u32 = 2;

/// Parses a circom `.r1cs` file: magic, version 1, then sections (u32 type, u64 length, body)
/// in any order; the header must be read before the constraints can be decoded.
fn parse_r1cs(bytes: &[u8]) -> R1cs {
    let mut r = Reader { bytes, at: 0 };
    assert_eq!(r.take(4), b"r1cs", "r1cs magic");
    assert_eq!(r.u32(), 1, "r1cs version");
    let mut sections = BTreeMap::new();
    for _ in 0..r.u32() {
        let kind = r.u32();
        let len = usize::try_from(r.u64()).expect("section length fits usize");
        let body = r.take(len);
        assert!(
            sections.insert(kind, body).is_none(),
            "section {kind} twice"
        );
    }
    assert_eq!(r.at, bytes.len(), "bytes after the last section");

    let mut h = Reader {
        bytes: sections[&HEADER_SECTION],
        at: 0,
    };
    let field_bytes = h.usize32();
    let prime = h.take(field_bytes).to_vec();
    let wires = h.usize32();
    let public_outputs = h.usize32();
    let public_inputs = h.usize32();
    let private_inputs = h.usize32();
    let labels = h.u64();
    let count = h.usize32();
    assert_eq!(h.at, h.bytes.len(), "header section length");

    let mut c = Reader {
        bytes: sections[&CONSTRAINTS_SECTION],
        at: 0,
    };
    let constraints = (0..count)
        .map(|_| Constraint {
            a: c.lc(field_bytes),
            b: c.lc(field_bytes),
            c: c.lc(field_bytes),
        })
        .collect();
    assert_eq!(c.at, c.bytes.len(), "constraints section length");
    R1cs {
        prime,
        wires,
        public_outputs,
        public_inputs,
        private_inputs,
        labels,
        constraints,
    }
}

/// The signal name of every wire, from the `.sym` file (`label,wire,component,name` lines;
/// wire -1 marks a signal the optimiser removed).
fn wire_names(sym: &str) -> BTreeMap<usize, String> {
    let mut names = BTreeMap::new();
    for line in sym.lines().filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.splitn(4, ',').collect();
        assert_eq!(fields.len(), 4, "sym line {line:?}");
        if let Ok(wire) = fields[1].parse::<usize>() {
            names.entry(wire).or_insert_with(|| fields[3].to_owned());
        }
    }
    names
}

/// What the build produced, shared by the tests of this file (the compiler runs once).
struct Compiled {
    r1cs: R1cs,
    names: BTreeMap<usize, String>,
}

fn circuits_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("circuits")
}

/// Runs `circuits/build.sh` (npm ci when needed, then circom2) and parses its output. Panics,
/// never skips, when Node.js or the packages are missing.
fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        const SETUP: &str = "install Node.js and npm, then run `scripts/test`, which installs \
                             the npm packages of circuits/";
        let dir = circuits_dir();
        let started = Instant::now();
        let output = Command::new("bash")
            .arg(dir.join("build.sh"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run circuits/build.sh ({e}): {SETUP}"));
        assert!(
            output.status.success(),
            "circuits/build.sh failed ({}); {SETUP}:\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!("circuits/build.sh took {:.1?}", started.elapsed());
        let read = |name: &str| {
            let path = dir.join("build").join(name);
            std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        };
        let sym = String::from_utf8(read("rln.sym")).expect("rln.sym is UTF-8");
        Compiled {
            r1cs: parse_r1cs(&read("rln.r1cs")),
            names: wire_names(&sym),
        }
    })
}

fn network_key() -> ProvingKey {
    let key_file = common::shared_file("circuits/waku-rln-v2/rln_final.arkzkey");
    let dir = key_file.parent().expect("key directory");
    parse_arkzkey(&read_pinned(dir, Artifact::ArkZkey).expect("pinned arkzkey"))
        .expect("network key parses")
}

#[test]
fn sizes_and_public_signals_match_the_network_circuit() {
    let Compiled { r1cs, names } = compiled();
    let key = network_key();

    assert_eq!(
        r1cs.prime,
        Fr::MODULUS.to_bytes_le(),
        "the BN254 scalar field"
    );
    assert_eq!(r1cs.constraints.len(), key.matrices.num_constraints);
    assert_eq!(r1cs.wires, NUM_WIRES);
    assert_eq!((r1cs.public_outputs, r1cs.public_inputs), (3, 2));
    assert_eq!(r1cs.private_inputs, 1 + 1 + 1 + 20 + 20);
    assert_eq!(
        1 + r1cs.public_outputs + r1cs.public_inputs,
        key.matrices.num_instance
    );
    let public: Vec<&str> = (1..=5).map(|w| names[&w].as_str()).collect();
    assert_eq!(
        public,
        [
            "main.y",
            "main.root",
            "main.nullifier",
            "main.x",
            "main.externalNullifier"
        ]
    );
    eprintln!(
        "{} constraints, {} wires, {} labels",
        r1cs.constraints.len(),
        r1cs.wires,
        r1cs.labels
    );
}

/// A row as a sorted set of `(wire, coefficient)`.
fn sorted(row: impl IntoIterator<Item = (usize, Fr)>) -> Vec<(usize, Fr)> {
    let mut row: Vec<_> = row.into_iter().collect();
    row.sort();
    row
}

#[test]
fn a_and_b_equal_the_network_key_row_for_row() {
    let r1cs = &compiled().r1cs;
    let key = network_key();
    let swap = |row: &Vec<(Fr, usize)>| sorted(row.iter().map(|&(v, w)| (w, v)));
    let differing = |ours: fn(&Constraint) -> &Lc, theirs: &Vec<Vec<(Fr, usize)>>| {
        let rows = r1cs.constraints.iter().zip(theirs);
        rows.enumerate()
            .filter(|(_, (c, k))| sorted(ours(c).iter().copied()) != swap(k))
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    };
    for (name, rows) in [
        ("A", differing(|c| &c.a, &key.matrices.a)),
        ("B", differing(|c| &c.b, &key.matrices.b)),
    ] {
        assert!(
            rows.is_empty(),
            "{} of {} rows of {name} differ from the network key, the first: {:?}",
            rows.len(),
            r1cs.constraints.len(),
            &rows[..rows.len().min(5)]
        );
    }
}

/// Random valid inputs for the network's witness graph.
fn random_inputs(rng: &mut ChaCha8Rng) -> RlnInputs {
    let limit: u64 = rng.gen_range(1..=u64::from(u16::MAX));
    RlnInputs {
        identity_secret: Fr::rand(rng),
        user_message_limit: Fr::from(limit),
        message_id: Fr::from(rng.gen_range(0..limit)),
        path_elements: std::array::from_fn(|_| Fr::rand(rng)),
        identity_path_index: std::array::from_fn(|_| rng.r#gen()),
        x: Fr::rand(rng),
        external_nullifier: Fr::rand(rng),
    }
}

fn eval(lc: &Lc, witness: &[Fr]) -> Fr {
    lc.iter().map(|&(wire, v)| v * witness[wire]).sum()
}

/// The first constraint `witness` violates, if any.
fn first_unsatisfied(r1cs: &R1cs, witness: &[Fr]) -> Option<usize> {
    r1cs.constraints
        .iter()
        .position(|c| !(eval(&c.a, witness) * eval(&c.b, witness) - eval(&c.c, witness)).is_zero())
}

/// The key has no C matrix (circom's reduction takes C·w = A·w · B·w), so what it implies about
/// C is that every witness of the network circuit satisfies all constraints: check ours
/// against witnesses computed by the network's own witness graph.
#[test]
fn network_witnesses_satisfy_every_constraint() {
    let r1cs = &compiled().r1cs;
    let graph_file = common::shared_file("circuits/waku-rln-v2/graph.bin");
    let graph = Graph::from_bytes(&std::fs::read(graph_file).expect("graph.bin is readable"))
        .expect("graph.bin loads");
    let mut rng = ChaCha8Rng::seed_from_u64(0xc1c0_7a11);
    for case in 0..8 {
        let mut witness = graph
            .rln_witness(&random_inputs(&mut rng))
            .expect("network witness");
        assert_eq!(witness.len(), r1cs.wires);
        assert_eq!(first_unsatisfied(r1cs, &witness), None, "case {case}");
        // A share that is off the line must be caught.
        witness[1] += Fr::from(1u64);
        assert!(
            first_unsatisfied(r1cs, &witness).is_some(),
            "case {case}: a wrong y satisfies every constraint"
        );
    }
}
