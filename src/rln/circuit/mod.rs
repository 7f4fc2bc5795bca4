//! The RLN v2 circuit: its witness graph and, with it, the native witness calculator.

pub mod graph;
