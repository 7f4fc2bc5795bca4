//! Reading the `wtns.graph.001` file format of iden3's circom-witnesscalc.
//!
//! Layout: the 14-byte magic, a u64 little-endian node count, that many length-prefixed
//! protobuf `Node` messages, one length-prefixed `GraphMetadata` message, and a u64
//! little-endian trailer holding the offset of the metadata's length prefix. Every check that
//! does not depend on the inputs happens here, so evaluation only has to index and compute.

use std::collections::BTreeMap;

use ark_ff::{BigInt, BigInteger, PrimeField};
use prost::Message;

use super::ops::{DuoOp, TresOp, UnoOp};
use super::proto::{MetadataMsg, NodeKind, NodeMsg, SignalMsg};
use super::{Graph, GraphError, InputSignal, Node};
use crate::field::Fr;

/// The file magic.
pub(super) const MAGIC: &[u8] = b"wtns.graph.001";

/// Field names circom uses for the BN254 scalar field.
const BN254_NAMES: [&str; 2] = ["bn128", "bn254"];

/// A bounds-checked cursor over the file.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// Why a varint length prefix could not be read.
enum VarintError {
    Truncated,
    TooLong,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, len: u64, what: impl FnOnce() -> String) -> Result<&'a [u8], GraphError> {
        match usize::try_from(len) {
            Ok(len) if len <= self.remaining() => {
                let out = &self.bytes[self.pos..self.pos + len];
                self.pos += len;
                Ok(out)
            }
            _ => Err(GraphError::Truncated(what())),
        }
    }

    fn u64_le(&mut self, what: &str) -> Result<u64, GraphError> {
        let bytes = self.take(8, || what.to_owned())?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("took 8 bytes")))
    }

    fn varint(&mut self) -> Result<u64, VarintError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let &byte = self.bytes.get(self.pos).ok_or(VarintError::Truncated)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(VarintError::TooLong)
    }

    /// A varint length prefix followed by that many bytes.
    fn delimited(
        &mut self,
        what: impl Fn() -> String,
        too_long: impl FnOnce() -> GraphError,
    ) -> Result<&'a [u8], GraphError> {
        let len = self.varint().map_err(|e| match e {
            VarintError::Truncated => GraphError::Truncated(what()),
            VarintError::TooLong => too_long(),
        })?;
        self.take(len, what)
    }
}

/// Parses and validates a whole graph file.
pub(super) fn parse(bytes: &[u8]) -> Result<Graph, GraphError> {
    if !bytes.starts_with(MAGIC) {
        return Err(GraphError::NotAGraph);
    }
    let mut reader = Reader {
        bytes,
        pos: MAGIC.len(),
    };
    let count = reader.u64_le("the node count")?;
    // Every node takes at least one byte, which bounds the allocation below by the file size.
    if count > reader.remaining() as u64 {
        return Err(GraphError::Truncated(format!(
            "the node list ({count} nodes declared, {} bytes left)",
            reader.remaining()
        )));
    }
    let mut nodes = Vec::with_capacity(count as usize);
    // Input nodes name a slot of the flat input buffer; they are resolved to (input, element)
    // once the metadata has said which input owns which slots.
    let mut input_nodes = Vec::new();
    for index in 0..count as usize {
        let msg = reader.delimited(
            || format!("node {index}"),
            || malformed(index, "its length prefix is not a valid varint"),
        )?;
        match node(index, msg)? {
            Parsed::Node(node) => nodes.push(node),
            Parsed::InputSlot(slot) => {
                input_nodes.push((index, slot));
                nodes.push(Node::One);
            }
        }
    }

    let metadata_at = reader.pos as u64;
    let msg = reader.delimited(
        || "the metadata".to_owned(),
        || GraphError::MalformedMetadata("its length prefix is not a valid varint".into()),
    )?;
    let meta = MetadataMsg::decode(msg)
        .map_err(|e| GraphError::MalformedMetadata(format!("cannot decode it: {e}")))?;
    let trailer = reader.u64_le("the trailer (metadata offset)")?;
    if trailer != metadata_at {
        return Err(GraphError::MalformedMetadata(format!(
            "the trailer says the metadata starts at byte {trailer}, but it starts at byte \
             {metadata_at}"
        )));
    }
    if reader.remaining() != 0 {
        return Err(GraphError::MalformedMetadata(format!(
            "{} unexpected bytes after the trailer",
            reader.remaining()
        )));
    }

    check_field(&meta)?;
    let inputs = input_signals(meta.inputs)?;
    for (index, slot) in input_nodes {
        nodes[index] = resolve_input(index, slot, &inputs)?;
    }
    check_wires(&meta.witness_signals, nodes.len())?;
    Ok(Graph {
        nodes,
        wires: meta.witness_signals,
        inputs: inputs.into_iter().map(|(signal, _)| signal).collect(),
    })
}

fn malformed(index: usize, reason: impl Into<String>) -> GraphError {
    GraphError::MalformedNode {
        index,
        reason: reason.into(),
    }
}

/// A decoded node, or an input node still to be resolved.
enum Parsed {
    Node(Node),
    InputSlot(u32),
}

/// Decodes node `index` and checks its constant and operands.
fn node(index: usize, msg: &[u8]) -> Result<Parsed, GraphError> {
    let msg = NodeMsg::decode(msg).map_err(|e| malformed(index, e.to_string()))?;
    let unsupported = |op| GraphError::UnsupportedOp { index, op };
    let operand = |i: u32| {
        if (i as usize) < index {
            Ok(i)
        } else {
            Err(GraphError::ForwardReference {
                index,
                operand: i.into(),
            })
        }
    };
    Ok(Parsed::Node(match msg.kind {
        None => return Err(malformed(index, "it holds no node")),
        Some(NodeKind::Input(input)) => return Ok(Parsed::InputSlot(input.idx)),
        Some(NodeKind::Constant(constant)) => {
            let value = constant
                .value
                .ok_or_else(|| malformed(index, "a constant without a value"))?;
            Node::Constant(
                field_from_le(&value.value_le).ok_or(GraphError::ConstantOutOfField { index })?,
            )
        }
        Some(NodeKind::Uno(n)) => {
            Node::Uno(UnoOp::from_code(n.op).map_err(unsupported)?, operand(n.a)?)
        }
        Some(NodeKind::Duo(n)) => Node::Duo(
            DuoOp::from_code(n.op).map_err(unsupported)?,
            operand(n.a)?,
            operand(n.b)?,
        ),
        Some(NodeKind::Tres(n)) => Node::Tres(
            TresOp::from_code(n.op).map_err(unsupported)?,
            operand(n.a)?,
            operand(n.b)?,
            operand(n.c)?,
        ),
    }))
}

/// A little-endian integer of any length as a field element, if it is below the modulus.
fn field_from_le(bytes: &[u8]) -> Option<Fr> {
    let significant = trim_le(bytes);
    if significant.len() > 32 {
        return None;
    }
    let mut padded = [0u8; 32];
    padded[..significant.len()].copy_from_slice(significant);
    let limbs = std::array::from_fn(|i| {
        u64::from_le_bytes(padded[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
    });
    Fr::from_bigint(BigInt::new(limbs))
}

/// A little-endian integer without its high zero bytes.
fn trim_le(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().rev().take_while(|&&b| b == 0).count();
    &bytes[..bytes.len() - zeros]
}

/// Refuses graphs built for another prime. Both fields are optional in the format.
fn check_field(meta: &MetadataMsg) -> Result<(), GraphError> {
    if let Some(prime) = &meta.prime {
        let modulus = Fr::MODULUS.to_bytes_le();
        if trim_le(&prime.value_le) != trim_le(&modulus) {
            return Err(GraphError::WrongField(format!(
                "modulus 0x{} (little-endian)",
                hex::encode(&prime.value_le)
            )));
        }
    }
    if !meta.prime_str.is_empty() && !BN254_NAMES.contains(&meta.prime_str.as_str()) {
        return Err(GraphError::WrongField(format!("`{}`", meta.prime_str)));
    }
    Ok(())
}

/// The declared inputs with their first slot, sorted by slot, checked to be disjoint and clear
/// of slot 0 (the constant one).
fn input_signals(
    map: BTreeMap<String, SignalMsg>,
) -> Result<Vec<(InputSignal, usize)>, GraphError> {
    let mut inputs: Vec<(InputSignal, usize)> = map
        .into_iter()
        .map(|(name, s)| {
            let len = s.len as usize;
            (InputSignal { name, len }, s.offset as usize)
        })
        .collect();
    inputs.sort_by_key(|&(_, offset)| offset);
    if let Some((first, 0)) = inputs.first() {
        return Err(GraphError::MalformedMetadata(format!(
            "input `{}` starts at slot 0, which holds the constant one",
            first.name
        )));
    }
    for pair in inputs.windows(2) {
        let ((a, a_offset), (b, b_offset)) = (&pair[0], &pair[1]);
        if a_offset + a.len > *b_offset {
            return Err(GraphError::MalformedMetadata(format!(
                "inputs `{}` and `{}` overlap",
                a.name, b.name
            )));
        }
    }
    Ok(inputs)
}

/// The node reading input buffer `slot`: slot 0 is the constant one, the others belong to a
/// declared input.
fn resolve_input(
    index: usize,
    slot: u32,
    inputs: &[(InputSignal, usize)],
) -> Result<Node, GraphError> {
    let slot = slot as usize;
    if slot == 0 {
        return Ok(Node::One);
    }
    inputs
        .iter()
        .enumerate()
        .find(|(_, (signal, offset))| (*offset..offset + signal.len).contains(&slot))
        .map(|(signal, (_, offset))| Node::Input {
            signal: u32::try_from(signal).expect("fewer inputs than metadata bytes"),
            element: u32::try_from(slot - offset).expect("slots are u32"),
        })
        .ok_or_else(|| {
            GraphError::MalformedMetadata(format!(
                "node {index} reads input slot {slot}, which no declared input covers"
            ))
        })
}

fn check_wires(wires: &[u32], nodes: usize) -> Result<(), GraphError> {
    if wires.is_empty() {
        return Err(GraphError::MalformedMetadata(
            "it lists no witness wires".into(),
        ));
    }
    match wires.iter().position(|&n| n as usize >= nodes) {
        Some(wire) => Err(GraphError::MalformedMetadata(format!(
            "witness wire {wire} is node {}, but the graph has {nodes} nodes",
            wires[wire]
        ))),
        None => Ok(()),
    }
}
