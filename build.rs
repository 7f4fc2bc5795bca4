//! Compiles `proto/` into Rust with prost, using protox so that no system `protoc` is needed.

use std::path::Path;

const PROTOS: &[&str] = &[
    "waku/message/v1/message.proto",
    "waku/store/v3/store.proto",
    "waku/filter/v2/filter.proto",
    "waku/lightpush/v3/lightpush.proto",
    "waku/lightpush/v2/lightpush.proto",
    "waku/metadata/v1/metadata.proto",
    "waku/peer_exchange/v2/peer_exchange.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new("proto");
    println!("cargo:rerun-if-changed=proto");
    let files: Vec<_> = PROTOS.iter().map(|p| root.join(p)).collect();
    let descriptors = protox::compile(&files, [root])?;
    prost_build::Config::new()
        .bytes(["."])
        .include_file("waku_protos.rs")
        .compile_fds(descriptors)?;
    Ok(())
}
