//! A native witness calculator for circom circuits, driven by the witness graph (`graph.bin`)
//! that iden3's circom-witnesscalc extracts from a circuit.
//!
//! The graph is a list of nodes (inputs, constants and field operations on earlier nodes) and a
//! map from each circuit wire to the node holding its value. [`Graph::from_bytes`] validates the
//! whole file once (operand order, constants, input map), so [`Graph::calculate`] is a single
//! pass over the nodes into one preallocated vector. [`Graph::rln_witness`] wraps it for the
//! RLN v2 circuit, and [`Graph::depends_on`] tells which wires a set of inputs can change, so a
//! prover can cache the rest.

mod decode;
mod error;
mod ops;
mod proto;
mod rln;

use ark_ff::One;

pub use error::GraphError;
pub use ops::UnknownOp;
pub use rln::RlnInputs;

use self::ops::{DuoOp, OpError, TresOp, UnoOp};
use crate::field::Fr;

/// A loaded, validated witness graph.
#[derive(Clone, PartialEq, Eq)]
pub struct Graph {
    /// In evaluation order; operands always refer to earlier nodes.
    nodes: Vec<Node>,
    /// The node holding each witness wire, in circom's wire order.
    wires: Vec<u32>,
    /// The declared inputs, in the order of their slots in circom's input buffer.
    inputs: Vec<InputSignal>,
}

/// A declared circuit input: a named array of field elements.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InputSignal {
    name: String,
    len: usize,
}

/// One graph node. Operands are indices of earlier nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    /// The constant-one slot of the input buffer.
    One,
    /// Element `element` of declared input `signal`.
    Input {
        signal: u32,
        element: u32,
    },
    Constant(Fr),
    Uno(UnoOp, u32),
    Duo(DuoOp, u32, u32),
    Tres(TresOp, u32, u32, u32),
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("nodes", &self.nodes.len())
            .field("witness_len", &self.wires.len())
            .field("inputs", &self.inputs)
            .finish()
    }
}

impl Graph {
    /// Parses and validates a `wtns.graph.001` file. Any truncation or corruption is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, GraphError> {
        decode::parse(bytes)
    }

    /// The declared input names, in input-buffer order.
    pub fn input_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.inputs.iter().map(|s| s.name.as_str())
    }

    /// How many values input `name` takes, or `None` if the graph declares no such input.
    pub fn input_len(&self, name: &str) -> Option<usize> {
        self.inputs.iter().find(|s| s.name == name).map(|s| s.len)
    }

    /// The number of witness wires, wire 0 (the constant one) included.
    pub fn witness_len(&self) -> usize {
        self.wires.len()
    }

    /// The full witness for `inputs`, in circom wire order (wire 0 is 1).
    ///
    /// Every declared input must be given exactly once, with exactly its declared length.
    pub fn calculate(&self, inputs: &[(&str, &[Fr])]) -> Result<Vec<Fr>, GraphError> {
        let bound = self.bind(inputs)?;
        let values = self.evaluate(&bound)?;
        Ok(self.wires.iter().map(|&n| values[n as usize]).collect())
    }

    /// For each witness wire, whether its value depends (transitively) on any of the named
    /// inputs. Names the graph does not declare match nothing.
    pub fn depends_on(&self, names: &[&str]) -> Vec<bool> {
        let chosen: Vec<bool> = self
            .inputs
            .iter()
            .map(|s| names.contains(&s.name.as_str()))
            .collect();
        let mut depends: Vec<bool> = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let d = |i: u32| depends[i as usize];
            let value = match *node {
                Node::One | Node::Constant(_) => false,
                Node::Input { signal, .. } => chosen[signal as usize],
                Node::Uno(_, a) => d(a),
                Node::Duo(_, a, b) => d(a) || d(b),
                Node::Tres(_, a, b, c) => d(a) || d(b) || d(c),
            };
            depends.push(value);
        }
        self.wires.iter().map(|&n| depends[n as usize]).collect()
    }

    /// The given inputs in declaration order, after checking names and lengths.
    fn bind<'a>(&self, inputs: &[(&str, &'a [Fr])]) -> Result<Vec<&'a [Fr]>, GraphError> {
        let mut bound: Vec<Option<&'a [Fr]>> = vec![None; self.inputs.len()];
        for &(name, values) in inputs {
            let i = self
                .inputs
                .iter()
                .position(|s| s.name == name)
                .ok_or_else(|| GraphError::UnknownInput {
                    name: name.to_owned(),
                    known: self.input_names().collect::<Vec<_>>().join(", "),
                })?;
            if bound[i].is_some() {
                return Err(GraphError::DuplicateInput(name.to_owned()));
            }
            if values.len() != self.inputs[i].len {
                return Err(GraphError::InputLength {
                    name: name.to_owned(),
                    expected: self.inputs[i].len,
                    got: values.len(),
                });
            }
            bound[i] = Some(values);
        }
        bound
            .into_iter()
            .zip(&self.inputs)
            .map(|(b, s)| b.ok_or_else(|| GraphError::MissingInput(s.name.clone())))
            .collect()
    }

    /// Every node's value, in one pass. Loading guaranteed that operands precede their nodes
    /// and that input elements are within the declared (and checked) lengths.
    fn evaluate(&self, inputs: &[&[Fr]]) -> Result<Vec<Fr>, GraphError> {
        let mut values: Vec<Fr> = Vec::with_capacity(self.nodes.len());
        for (index, node) in self.nodes.iter().enumerate() {
            let v = |i: u32| values[i as usize];
            let value = match *node {
                Node::Duo(op, a, b) => op.apply(v(a), v(b)).map_err(|e| match e {
                    OpError::ShlOverflow => GraphError::ShiftOverflow { index },
                })?,
                Node::Constant(c) => c,
                Node::Input { signal, element } => inputs[signal as usize][element as usize],
                Node::One => Fr::one(),
                Node::Uno(op, a) => op.apply(v(a)),
                Node::Tres(op, a, b, c) => op.apply(v(a), v(b), v(c)),
            };
            values.push(value);
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests;
