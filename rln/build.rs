//! Compiles the one wire type this crate owns, `RateLimitProof`, from the workspace's `proto/`
//! with protox, so that no system `protoc` is needed.

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new("../proto");
    let file = root.join("waku/rln/v1/rate_limit_proof.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let descriptors = protox::compile([&file], [root])?;
    prost_build::Config::new()
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
