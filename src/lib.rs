//! jina-rs: Jina's Flow system in Rust. See docs/architecture.md for the map of modules.
//!
//! The library's surface, as mini-redis's is curated: the Flow API ([`flow`]: `Flow`, `Exec`,
//! starting one and posting to it), executors of your own ([`executor`]: the `Executor` trait,
//! its handlers, the registry, `jina executor`'s flags), the client ([`client`]), documents
//! ([`document`]), the wire protocol ([`proto`], [`request`]), the gRPC and TLS plumbing a
//! program speaking it needs ([`grpc`], [`tls`]), and the command line for a binary of your
//! own ([`cli::main_with`]). Everything else (orchestration, the gateway, containers, the
//! daemon, metrics, traces, logging) is the runtime's own, reached through those.

#![warn(unreachable_pub)]

pub mod allocator;
pub mod cli;
pub mod client;
pub mod document;
pub mod executor;
pub mod flow;
pub mod grpc;
pub mod proto;
pub mod request;
pub mod tls;

mod container;
mod daemon;
mod errors;
mod export;
mod gateway;
mod health;
mod local_flows;
mod logging;
mod metrics;
mod net;
mod orchestrate;
mod procs;
mod running;
mod shutdown;
mod telemetry;
mod topology;

pub use document::{Document, DocumentArray, NdArray};
pub use net::free_port;
pub use orchestrate::jina_binary;
pub use running::{BlockingFlow, FileWatch, FlowError, ReloadError, Reloaded, RunningFlow, Scaled};
// What `FlowError` holds, nameable so that a caller can match on what happened.
pub use container::ContainerError;
pub use daemon::client::DaemonError;
pub use gateway::GatewayError;
pub use net::ListenError;
pub use orchestrate::StartError;

/// What this project's own tests and examples reach inside for: not the library's API, and
/// free to change in any release.
#[doc(hidden)]
pub mod testing {
    pub use crate::daemon::client::LEASE;
    pub use crate::procs::{alive, children, descendants};
}
