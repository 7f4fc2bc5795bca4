//! The integration tests, built as one binary so that the workspace links the node's whole
//! dependency tree (libp2p, alloy, arkworks) once rather than once per test file. Each module is
//! one area; `common` holds what they share (the `../shared` material, anvil, devnets, HTTP).

mod common;

mod archive_backends;
mod chain_anvil;
mod circuit_artifacts;
mod circuit_r1cs;
mod cli;
mod cli_demo;
mod cli_keystore;
mod cli_rln;
mod contracts_build;
mod dns_discovery;
mod enr_js;
mod fleet;
mod graph_vs_wasm;
mod keystore_js;
mod light_js;
mod node_bad_input;
mod node_dashboard;
mod node_discovery;
mod node_filter;
mod node_hardening;
mod node_kill;
mod node_lifecycle;
mod node_nat;
mod node_network;
mod node_peer_exchange;
mod node_rate_limits;
mod node_reference_cli;
mod node_relay;
mod node_rest;
mod node_store;
mod node_validator;
mod poseidon_vs_circomlibjs;
mod prover;
mod reference_vectors;
mod relay_js;
mod rest_access;
mod rest_light;
mod rest_reference;
mod secrets;
mod store_sync;
mod vectors;
mod verifier;
mod wire_bytes;
