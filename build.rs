//! Generates the wire types and gRPC services from `proto/` with no system protoc:
//! protox parses the .proto files (Google's well-known types are built into it) and
//! tonic-prost-build turns the descriptors into Rust. The descriptor set is also written
//! out so that every server can answer gRPC reflection (the Python gateway needs it).
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["jina.proto", "docarray.proto"], ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("jina_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().bytes(".").compile_fds(fds)?;
    Ok(())
}
