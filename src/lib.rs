//! jina-rs: Jina's Flow system in Rust. See docs/architecture.md for the map of modules.

pub mod allocator;
pub mod cli;
pub mod client;
pub mod container;
pub mod daemon;
pub mod document;
pub mod errors;
pub mod executor;
pub mod export;
pub mod flow;
pub mod gateway;
pub mod grpc;
pub mod health;
pub mod local_flows;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod orchestrate;
pub mod proto;
pub mod request;
pub mod running;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod topology;

pub use document::{Document, DocumentArray, NdArray};
