//! Generates the wire types and gRPC services from `proto/` with no system protoc:
//! protox parses the .proto files (Google's well-known types are built into it) and
//! tonic-prost-build turns the descriptors into Rust. The descriptor set is also written
//! out so that every server can answer gRPC reflection (the Python gateway needs it).
use prost::Message;
use prost_types::field_descriptor_proto::Type;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["jina.proto", "docarray.proto"], ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("jina_descriptor.bin"),
        with_canonical_data_field(fds.clone()).encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .bytes(".")
        .codec_path("crate::grpc::Codec")
        .compile_fds(fds)?;
    Ok(())
}

/// Our proto declares `DataRequestProto.data` as bytes (see jina.proto); reflection shows
/// peers the field as Jina declares it: a `DataRequestProto.DataContentProto` message.
fn with_canonical_data_field(
    mut fds: prost_types::FileDescriptorSet,
) -> prost_types::FileDescriptorSet {
    for file in fds.file.iter_mut().filter(|f| f.package() == "jina") {
        for message in file
            .message_type
            .iter_mut()
            .filter(|m| m.name() == "DataRequestProto")
        {
            for field in message.field.iter_mut().filter(|f| f.name() == "data") {
                field.set_type(Type::Message);
                field.type_name = Some(".jina.DataRequestProto.DataContentProto".into());
            }
        }
    }
    fds
}
