//! jina-rs: Jina's Flow system in Rust. See docs/architecture.md for the map of modules.

pub mod document;
pub mod proto;

pub use document::{Document, DocumentArray, NdArray};
