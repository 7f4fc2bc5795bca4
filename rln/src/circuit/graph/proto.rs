//! The protobuf messages of a circom-witnesscalc graph file (proto3), declared with prost.
//!
//! Field numbers follow circom-witnesscalc's `messages.proto`. Operation enums are read as
//! plain `int32` so unknown operations reach our own "unsupported operation" error. Metadata
//! fields a newer format adds (`input_signal_info`) are skipped by prost as unknown fields.

use std::collections::BTreeMap;

use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub(super) struct NodeMsg {
    #[prost(oneof = "NodeKind", tags = "1, 2, 3, 4, 5")]
    pub(super) kind: Option<NodeKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub(super) enum NodeKind {
    #[prost(message, tag = "1")]
    Input(InputMsg),
    #[prost(message, tag = "2")]
    Constant(ConstantMsg),
    #[prost(message, tag = "3")]
    Uno(UnoMsg),
    #[prost(message, tag = "4")]
    Duo(DuoMsg),
    #[prost(message, tag = "5")]
    Tres(TresMsg),
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct InputMsg {
    #[prost(uint32, tag = "1")]
    pub(super) idx: u32,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct BigUIntMsg {
    #[prost(bytes = "vec", tag = "1")]
    pub(super) value_le: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct ConstantMsg {
    #[prost(message, optional, tag = "1")]
    pub(super) value: Option<BigUIntMsg>,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct UnoMsg {
    #[prost(int32, tag = "1")]
    pub(super) op: i32,
    #[prost(uint32, tag = "2")]
    pub(super) a: u32,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct DuoMsg {
    #[prost(int32, tag = "1")]
    pub(super) op: i32,
    #[prost(uint32, tag = "2")]
    pub(super) a: u32,
    #[prost(uint32, tag = "3")]
    pub(super) b: u32,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct TresMsg {
    #[prost(int32, tag = "1")]
    pub(super) op: i32,
    #[prost(uint32, tag = "2")]
    pub(super) a: u32,
    #[prost(uint32, tag = "3")]
    pub(super) b: u32,
    #[prost(uint32, tag = "4")]
    pub(super) c: u32,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct SignalMsg {
    #[prost(uint32, tag = "1")]
    pub(super) offset: u32,
    #[prost(uint32, tag = "2")]
    pub(super) len: u32,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct MetadataMsg {
    #[prost(uint32, repeated, tag = "1")]
    pub(super) witness_signals: Vec<u32>,
    #[prost(btree_map = "string, message", tag = "2")]
    pub(super) inputs: BTreeMap<String, SignalMsg>,
    #[prost(message, optional, tag = "3")]
    pub(super) prime: Option<BigUIntMsg>,
    #[prost(string, tag = "4")]
    pub(super) prime_str: String,
}
