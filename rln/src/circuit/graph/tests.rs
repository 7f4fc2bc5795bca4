//! Loading and evaluation tests on a small hand-built graph, on the real RLN graph, and on
//! corrupted files.

use std::sync::OnceLock;

use ark_ff::{BigInteger, Field, PrimeField, Zero};
use proptest::prelude::*;
use prost::Message;

use super::decode::MAGIC;
use super::proto::{
    BigUIntMsg, ConstantMsg, DuoMsg, InputMsg, MetadataMsg, NodeKind, NodeMsg, SignalMsg, UnoMsg,
};
use super::*;
use crate::field::to_le_bytes;

/// The network's RLN v2 graph from `../shared`, loaded once.
pub(super) fn rln_graph() -> &'static Graph {
    static GRAPH: OnceLock<Graph> = OnceLock::new();
    GRAPH.get_or_init(|| Graph::from_bytes(rln_graph_bytes()).expect("graph.bin loads"))
}

/// The raw bytes of the network's RLN v2 graph.
fn rln_graph_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/circuits/waku-rln-v2/graph.bin"
        );
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
    })
}

fn node(kind: NodeKind) -> NodeMsg {
    NodeMsg { kind: Some(kind) }
}

fn input(idx: u32) -> NodeMsg {
    node(NodeKind::Input(InputMsg { idx }))
}

fn constant_bytes(value_le: Vec<u8>) -> NodeMsg {
    node(NodeKind::Constant(ConstantMsg {
        value: Some(BigUIntMsg { value_le }),
    }))
}

fn constant(x: u64) -> NodeMsg {
    constant_bytes(to_le_bytes(&Fr::from(x)).to_vec())
}

fn duo(op: i32, a: u32, b: u32) -> NodeMsg {
    node(NodeKind::Duo(DuoMsg { op, a, b }))
}

const MUL: i32 = 0;
const ADD: i32 = 2;
const SUB: i32 = 3;
const SHL: i32 = 15;

/// A graph file from its parts, laid out as circom-witnesscalc writes it.
fn encode(nodes: &[NodeMsg], meta: &MetadataMsg) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend((nodes.len() as u64).to_le_bytes());
    for n in nodes {
        n.encode_length_delimited(&mut out).unwrap();
    }
    let metadata_at = out.len() as u64;
    meta.encode_length_delimited(&mut out).unwrap();
    out.extend(metadata_at.to_le_bytes());
    out
}

/// Inputs `a` (1 value) and `b` (2 values); wires `[1, a*b0 + b1 - 5, a, b0, b1, a << 5]`.
fn sample_parts() -> (Vec<NodeMsg>, MetadataMsg) {
    let nodes = vec![
        input(0),
        input(1),
        input(2),
        input(3),
        constant(5),
        duo(MUL, 1, 2),
        duo(ADD, 5, 3),
        duo(SUB, 6, 4),
        duo(SHL, 1, 4),
    ];
    let meta = MetadataMsg {
        witness_signals: vec![0, 7, 1, 2, 3, 8],
        inputs: [
            ("a".to_owned(), SignalMsg { offset: 1, len: 1 }),
            ("b".to_owned(), SignalMsg { offset: 2, len: 2 }),
        ]
        .into(),
        prime: Some(BigUIntMsg {
            value_le: Fr::MODULUS.to_bytes_le(),
        }),
        prime_str: "bn128".to_owned(),
    };
    (nodes, meta)
}

fn sample() -> Graph {
    let (nodes, meta) = sample_parts();
    Graph::from_bytes(&encode(&nodes, &meta)).unwrap()
}

fn f(x: u64) -> Fr {
    Fr::from(x)
}

/// Loads the sample after `edit` changed its parts.
fn load_edited(
    edit: impl FnOnce(&mut Vec<NodeMsg>, &mut MetadataMsg),
) -> Result<Graph, GraphError> {
    let (mut nodes, mut meta) = sample_parts();
    edit(&mut nodes, &mut meta);
    Graph::from_bytes(&encode(&nodes, &meta))
}

#[test]
fn evaluates_the_sample() {
    let graph = sample();
    assert_eq!(graph.input_names().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(graph.witness_len(), 6);
    let w = graph
        .calculate(&[("b", &[f(4), f(2)]), ("a", &[f(3)])])
        .unwrap();
    assert_eq!(w, [f(1), f(9), f(3), f(4), f(2), f(96)]);
}

#[test]
fn refuses_bad_inputs() {
    let graph = sample();
    let (a, b): (&[Fr], &[Fr]) = (&[f(3)], &[f(4), f(2)]);
    assert_eq!(
        graph.calculate(&[("a", a)]),
        Err(GraphError::MissingInput("b".into()))
    );
    let err = graph
        .calculate(&[("a", a), ("b", b), ("c", a)])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown circuit input `c`; the circuit's inputs are a, b"
    );
    assert_eq!(
        graph.calculate(&[("a", a), ("b", b), ("a", a)]),
        Err(GraphError::DuplicateInput("a".into()))
    );
    assert_eq!(
        graph.calculate(&[("a", a), ("b", a)]),
        Err(GraphError::InputLength {
            name: "b".into(),
            expected: 2,
            got: 1
        })
    );
}

#[test]
fn left_shift_out_of_the_field_is_an_error() {
    // 2^250 << 5 = 2^255 fits 256 bits but not the field.
    let a: &[Fr] = &[f(2).pow([250u64])];
    assert_eq!(
        sample().calculate(&[("a", a), ("b", &[f(0), f(0)])]),
        Err(GraphError::ShiftOverflow { index: 8 })
    );
}

#[test]
fn dependencies_follow_operands() {
    let graph = sample();
    let wires = |names: &[&str]| graph.depends_on(names);
    assert_eq!(wires(&["a"]), [false, true, true, false, false, true]);
    assert_eq!(wires(&["b"]), [false, true, false, true, true, false]);
    assert_eq!(wires(&["a", "b"]), [false, true, true, true, true, true]);
    assert_eq!(wires(&["nope"]), [false; 6]);
}

#[test]
fn refuses_foreign_files() {
    assert_eq!(Graph::from_bytes(b""), Err(GraphError::NotAGraph));
    assert_eq!(
        Graph::from_bytes(b"wtns.graph.002\0\0\0\0\0\0\0\0"),
        Err(GraphError::NotAGraph)
    );
    assert_eq!(
        GraphError::NotAGraph.to_string(),
        "not a witness graph: the file does not start with `wtns.graph.001`"
    );
}

#[test]
fn every_truncation_is_an_error() {
    let (nodes, meta) = sample_parts();
    let bytes = encode(&nodes, &meta);
    for len in 0..bytes.len() {
        assert!(Graph::from_bytes(&bytes[..len]).is_err(), "{len} bytes");
    }
    assert!(matches!(
        Graph::from_bytes(&bytes[..40]),
        Err(GraphError::Truncated(_))
    ));
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        Graph::from_bytes(&longer),
        Err(GraphError::MalformedMetadata(_))
    ));
}

#[test]
fn refuses_malformed_nodes() {
    let err = load_edited(|n, _| n[5] = duo(MUL, 1, 9)).unwrap_err();
    assert_eq!(
        err,
        GraphError::ForwardReference {
            index: 5,
            operand: 9
        }
    );
    let err = load_edited(|n, _| n[5] = duo(MUL, 5, 1)).unwrap_err();
    assert_eq!(
        err,
        GraphError::ForwardReference {
            index: 5,
            operand: 5
        }
    );
    let err = load_edited(|n, _| n[5] = node(NodeKind::Uno(UnoMsg { op: 4, a: 1 }))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "witness graph node 5 uses the unsupported operation Sqrt"
    );
    let err = load_edited(|n, _| n[5] = duo(20, 1, 2)).unwrap_err();
    assert!(matches!(err, GraphError::UnsupportedOp { index: 5, .. }));
    let err = load_edited(|n, _| n[4] = constant_bytes(Fr::MODULUS.to_bytes_le())).unwrap_err();
    assert_eq!(err, GraphError::ConstantOutOfField { index: 4 });
    let err = load_edited(|n, _| n[4] = constant_bytes(vec![1; 33])).unwrap_err();
    assert_eq!(err, GraphError::ConstantOutOfField { index: 4 });
    let err = load_edited(|n, _| {
        n[4] = node(NodeKind::Constant(ConstantMsg { value: None }));
    })
    .unwrap_err();
    assert!(matches!(err, GraphError::MalformedNode { index: 4, .. }));
    let err = load_edited(|n, _| n[4] = NodeMsg { kind: None }).unwrap_err();
    assert!(matches!(err, GraphError::MalformedNode { index: 4, .. }));
}

#[test]
fn constants_may_be_minimal_or_padded() {
    let mut padded = vec![5];
    padded.resize(40, 0);
    for value_le in [vec![5], padded] {
        let graph = load_edited(|n, _| n[4] = constant_bytes(value_le)).unwrap();
        let w = graph.calculate(&[("a", &[f(3)]), ("b", &[f(4), f(2)])]);
        assert_eq!(w.unwrap()[1], f(9));
    }
}

#[test]
fn refuses_inconsistent_metadata() {
    type Edit = fn(&mut Vec<NodeMsg>, &mut MetadataMsg);
    let cases: [(&str, Edit); 6] = [
        ("wire past the nodes", |_, m| m.witness_signals[1] = 9),
        ("no wires", |_, m| m.witness_signals.clear()),
        ("uncovered slot", |n, _| n[3] = input(4)),
        ("overlap", |_, m| {
            m.inputs.get_mut("a").unwrap().len = 2;
        }),
        ("slot 0", |_, m| {
            m.inputs.get_mut("a").unwrap().offset = 0;
        }),
        ("unused slot beyond inputs", |n, _| n[1] = input(7)),
    ];
    for (what, edit) in cases {
        assert!(
            matches!(load_edited(edit), Err(GraphError::MalformedMetadata(_))),
            "{what}"
        );
    }
}

#[test]
fn refuses_other_fields() {
    let err = load_edited(|_, m| m.prime = Some(BigUIntMsg { value_le: vec![7] })).unwrap_err();
    assert!(matches!(err, GraphError::WrongField(_)));
    let err = load_edited(|_, m| m.prime_str = "goldilocks".into()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "witness graph is for another field (`goldilocks`), not the BN254 scalar field"
    );
    // Both are optional.
    load_edited(|_, m| {
        m.prime = None;
        m.prime_str.clear();
    })
    .unwrap();
}

#[test]
fn refuses_bad_framing() {
    let (nodes, meta) = sample_parts();
    let bytes = encode(&nodes, &meta);
    let mut wrong_trailer = bytes.clone();
    let last = wrong_trailer.len() - 8;
    wrong_trailer[last] ^= 1;
    assert!(matches!(
        Graph::from_bytes(&wrong_trailer),
        Err(GraphError::MalformedMetadata(_))
    ));
    let mut huge_count = bytes.clone();
    huge_count[MAGIC.len()..MAGIC.len() + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        Graph::from_bytes(&huge_count),
        Err(GraphError::Truncated(_))
    ));
    let mut bad_varint = MAGIC.to_vec();
    bad_varint.extend(1u64.to_le_bytes());
    bad_varint.extend([0xff; 12]);
    assert!(matches!(
        Graph::from_bytes(&bad_varint),
        Err(GraphError::MalformedNode { index: 0, .. })
    ));
    let mut garbage_node = MAGIC.to_vec();
    garbage_node.extend(1u64.to_le_bytes());
    garbage_node.extend([2, 0xff, 0xff]);
    assert!(matches!(
        Graph::from_bytes(&garbage_node),
        Err(GraphError::MalformedNode { index: 0, .. })
    ));
}

#[test]
fn loads_the_rln_graph() {
    let graph = rln_graph();
    assert_eq!(graph.nodes.len(), 23_414);
    assert_eq!(graph.witness_len(), 5_844);
}

/// Runs what a caller would on a graph that loaded from corrupted bytes.
fn exercise(graph: &Graph) {
    let total: usize = graph.inputs.iter().map(|s| s.len).sum();
    if total > 100_000 {
        return;
    }
    let zeros: Vec<(String, Vec<Fr>)> = graph
        .inputs
        .iter()
        .map(|s| (s.name.clone(), vec![Fr::zero(); s.len]))
        .collect();
    let given: Vec<(&str, &[Fr])> = zeros.iter().map(|(n, v)| (n.as_str(), &v[..])).collect();
    let _ = graph.calculate(&given);
    let _ = graph.depends_on(&["x"]);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Graph::from_bytes(&bytes);
        let mut with_magic = MAGIC.to_vec();
        with_magic.extend(&bytes);
        if let Ok(graph) = Graph::from_bytes(&with_magic) {
            exercise(&graph);
        }
    }

    #[test]
    fn corrupted_samples_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)
    ) {
        let (nodes, meta) = sample_parts();
        let mut bytes = encode(&nodes, &meta);
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if let Ok(graph) = Graph::from_bytes(&bytes) {
            exercise(&graph);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn truncated_rln_graph_is_an_error(at in any::<prop::sample::Index>()) {
        let bytes = rln_graph_bytes();
        let len = at.index(bytes.len());
        prop_assert!(Graph::from_bytes(&bytes[..len]).is_err());
    }

    #[test]
    fn corrupted_rln_graph_never_panics(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)
    ) {
        let mut bytes = rln_graph_bytes().to_vec();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if let Ok(graph) = Graph::from_bytes(&bytes) {
            exercise(&graph);
        }
    }
}
