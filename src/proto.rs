//! The wire types of Jina's protocol, generated from `proto/` by build.rs. Nothing else lives
//! here: conversions belong to `document`, behaviour to `executor` and `gateway`.

#![allow(clippy::all, missing_docs, non_camel_case_types)]

pub mod docarray {
    tonic::include_proto!("docarray");
}

pub mod jina {
    tonic::include_proto!("jina");
}

/// The encoded FileDescriptorSet of our protos, served through gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("jina_descriptor");
