//! Executors: the units of work in a Flow.
//!
//! This module owns the [`Executor`] contract (what a handler receives and may return), the
//! [`RequestTable`] that maps endpoints to handlers (the reference's `@requests`), the executor
//! YAML (`jtype` / `with` / `metas` / `requests`, see [`ExecutorConfig`]), the built-in
//! executors (`builtin`), and the gRPC server that serves one executor (`server`).
//!
//! It does not know about Flows, graphs or gateways: an executor serves requests on a port and
//! never learns who sent them.

pub mod builtin;
mod config;
mod native;
mod requests;
mod schema;
pub mod server;

pub use config::{
    ConfigError, ExecutorConfig, Instance, Metas, Overrides, yaml_message as yaml_error_message,
};
pub use native::Native;
pub use requests::{DEFAULT_ENDPOINT, HandlerSpec, RequestTable};

use crate::document::DocumentArray;
use serde_json::{Map, Value};

/// What one handler call sees: the request's endpoint, documents (to change in place),
/// parameters, and the executor's metas.
pub struct Request<'a> {
    pub endpoint: &'a str,
    pub docs: &'a mut DocumentArray,
    pub parameters: &'a Map<String, Value>,
    pub metas: &'a Metas,
}

/// A handler's failure. It becomes a response with status ERROR whose exception carries
/// `name`, `message` and the executor's name; the executor goes on serving.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct HandlerError {
    /// The kind of error, as Python would name its exception class (e.g. `ValueError`).
    pub name: String,
    pub message: String,
}

impl HandlerError {
    pub fn new(name: impl Into<String>, message: impl Into<String>) -> Self {
        HandlerError {
            name: name.into(),
            message: message.into(),
        }
    }
}

/// The contract of an executor: a set of named handlers, some bound to endpoints by the
/// executor's own code (the reference's `@requests` decorators), all callable by name (so YAML
/// `requests` and `uses_requests` can bind them elsewhere).
///
/// Handlers are synchronous and take `&self`: an executor with state keeps it behind its own
/// lock. The server runs them where blocking is allowed, so a slow handler holds up only its
/// own requests.
pub trait Executor: Send + Sync + 'static {
    /// The handlers this executor has, with the endpoints its code binds them to.
    fn handlers(&self) -> Vec<HandlerSpec>;

    /// Runs the handler named `handler`. It may change `req.docs` in place, or return new
    /// documents that replace them.
    fn call(&self, handler: &str, req: Request<'_>) -> Result<Option<DocumentArray>, HandlerError>;

    /// Takes the resources the executor serves from (files, a database) once, before it
    /// serves. Construction stays free of side effects, so a Flow can check a config by
    /// building it without touching the workspace. The error is one line.
    fn open(&self) -> Result<(), String> {
        Ok(())
    }
}
