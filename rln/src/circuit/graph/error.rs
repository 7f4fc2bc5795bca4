//! Why a witness graph could not be loaded or evaluated.

/// An error loading a witness graph or computing a witness with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// The file does not start with the `wtns.graph.001` magic.
    #[error("not a witness graph: the file does not start with `wtns.graph.001`")]
    NotAGraph,
    /// The file ends inside the named part.
    #[error("witness graph is truncated: the file ends inside {0}")]
    Truncated(String),
    /// A node message could not be decoded or is incomplete.
    #[error("witness graph node {index} is malformed: {reason}")]
    MalformedNode {
        /// Position of the node in the file.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A node reads a node that is not before it, so the graph cannot be evaluated in order.
    #[error("witness graph node {index} reads node {operand}, which is not an earlier node")]
    ForwardReference {
        /// The reading node.
        index: usize,
        /// The node it refers to.
        operand: u64,
    },
    /// A node uses an operation this evaluator does not implement.
    #[error("witness graph node {index} uses the unsupported operation {op}")]
    UnsupportedOp {
        /// The node.
        index: usize,
        /// The operation.
        op: super::ops::UnknownOp,
    },
    /// A constant node holds an integer not below the BN254 scalar field modulus.
    #[error("witness graph node {index} holds a constant not below the field modulus")]
    ConstantOutOfField {
        /// The node.
        index: usize,
    },
    /// The graph was built for a different prime field.
    #[error("witness graph is for another field ({0}), not the BN254 scalar field")]
    WrongField(String),
    /// The metadata (input map, witness wires, trailer) is inconsistent.
    #[error("witness graph metadata is malformed: {0}")]
    MalformedMetadata(String),
    /// A declared circuit input was not given.
    #[error("missing circuit input `{0}`")]
    MissingInput(String),
    /// A given input name is not declared by the graph.
    #[error("unknown circuit input `{name}`; the circuit's inputs are {known}")]
    UnknownInput {
        /// The name given.
        name: String,
        /// The declared names, comma separated.
        known: String,
    },
    /// The same input was given more than once.
    #[error("circuit input `{0}` is given twice")]
    DuplicateInput(String),
    /// An input was given with the wrong number of values.
    #[error("circuit input `{name}` takes {expected} values, got {got}")]
    InputLength {
        /// The input.
        name: String,
        /// The declared length.
        expected: usize,
        /// The number of values given.
        got: usize,
    },
    /// `a << b` at this node would leave the field, which circom-witnesscalc refuses too.
    #[error("witness graph node {index}: left shift result is not below the field modulus")]
    ShiftOverflow {
        /// The node.
        index: usize,
    },
}
