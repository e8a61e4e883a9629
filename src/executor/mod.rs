//! Executors: the units of work in a Flow.
//!
//! This module owns the [`Executor`] contract (a Rust type with constructor arguments, an
//! `open` step and handlers bound to endpoints by the compiler), the [`Requests`] that bind
//! them and the [`RequestTable`] that routes endpoints to them (the reference's `@requests`),
//! the [`Registry`] of executor types by name (built-ins plus a user's own), the executor YAML
//! (`jtype` / `with` / `metas` / `requests`, see [`ExecutorConfig`]) and what a `uses` string
//! means, the built-in executors (`builtin`), and the gRPC server of one executor (`server`).
//!
//! It does not know about Flows, graphs or gateways: an executor serves requests on a port and
//! never learns who sent them.
//!
//! Writing one (docs/executors.md has the whole story):
//!
//! ```
//! use jina::executor::{Call, Executor, HandlerError, Metas, Requests};
//!
//! #[derive(serde::Deserialize)]
//! struct Args { suffix: String }
//!
//! struct Shout { suffix: String }
//!
//! impl Executor for Shout {
//!     const NAME: &'static str = "Shout";
//!     type Args = Args;
//!
//!     fn new(args: Args, _: &Metas) -> Result<Self, jina::executor::BoxError> {
//!         Ok(Shout { suffix: args.suffix })
//!     }
//!
//!     fn requests(r: &mut Requests<Self>) {
//!         r.on("/index", Self::shout);
//!     }
//! }
//!
//! impl Shout {
//!     fn shout(&self, call: Call<'_>) -> Result<(), HandlerError> {
//!         for doc in call.docs.iter_mut() {
//!             doc.text = doc.text.take().map(|t| t.to_uppercase() + &self.suffix);
//!         }
//!         Ok(())
//!     }
//! }
//! ```
//!
//! A handler whose signature does not fit is refused by the compiler, where it is bound:
//!
//! ```compile_fail,E0631
//! use jina::executor::{Call, Executor, HandlerError, Metas, NoArgs, Requests};
//! use jina::DocumentArray;
//!
//! struct Wrong;
//!
//! impl Executor for Wrong {
//!     const NAME: &'static str = "Wrong";
//!     type Args = NoArgs;
//!     fn new(_: NoArgs, _: &Metas) -> Result<Self, jina::executor::BoxError> { Ok(Wrong) }
//!     fn requests(r: &mut Requests<Self>) {
//!         r.on("/index", Self::index); // takes the documents, not a Call
//!     }
//! }
//!
//! impl Wrong {
//!     fn index(&self, docs: &mut DocumentArray) -> Result<(), HandlerError> { Ok(()) }
//! }
//! ```

mod batching;
pub mod builtin;
mod config;
mod flags;
mod handlers;
mod hosted;
mod instance;
pub mod python;
mod registry;
mod schema;
pub(crate) mod server;
mod uses;

pub use batching::DynamicBatching;
pub use config::{
    ConfigError, ExecutorConfig, Metas, Overrides, yaml_message as yaml_error_message,
};
pub use flags::{ExecutorFlags, FlagError, json_object};
pub use handlers::{
    AsyncCall, Call, DEFAULT_ENDPOINT, Endpoints, Reply, RequestTable, Requests, StreamCall,
    UnknownHandler,
};
pub use hosted::{CopyFlags, HostedExecutor, HostedLoad};
pub use instance::{Answer, BuildError, HandlerKind, Instance, OpenError, OwnedCall, WireDocs};
pub use python::PythonRuntime;
pub use registry::{AlreadyInstalled, Entry, Registry};
pub(crate) use server::JOIN_METADATA;

/// The executor (Flow entry) a copy belongs to: its name before the first `/` (`enc` of
/// `enc/shard-1/rep-0`, as `orchestrate` names copies), Python Jina's `deployment_name`.
pub(crate) fn deployment_of(copy: &str) -> &str {
    copy.split('/').next().unwrap_or(copy)
}
pub use uses::{ImageRef, Served, Uses, UsesText, resolve as resolve_uses};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Any error a user's constructor, `open` or handler may return (`?` converts most).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request's parameters as JSON, for handlers that take them untyped.
pub type Parameters = Map<String, Value>;

/// A handler's failure. It becomes a response with status ERROR whose exception carries
/// `name`, `message` and the executor's name; the executor goes on serving. A handler may
/// return any error instead: its type's name becomes `name`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct HandlerError {
    /// The kind of error, as Python would name its exception class (e.g. `ValueError`).
    pub name: String,
    pub message: String,
    /// Where it happened, as Python's traceback lines (a Python handler's; none for Rust).
    pub stacks: Vec<String>,
    /// The status's description when not `name: message` (a Python exception's `repr`, as
    /// Python Jina's worker writes it).
    pub description: Option<String>,
}

impl HandlerError {
    /// An error the client sees as the exception `name` with `message`.
    pub fn new(name: impl Into<String>, message: impl Into<String>) -> Self {
        HandlerError {
            name: name.into(),
            message: message.into(),
            stacks: vec![],
            description: None,
        }
    }

    /// The error with its traceback, as Python Jina's status carries one.
    pub fn with_stacks(mut self, stacks: Vec<String>) -> Self {
        self.stacks = stacks;
        self
    }

    /// The error with the description its status shows.
    pub fn with_description(mut self, description: String) -> Self {
        self.description = Some(description);
        self
    }
}

/// The constructor arguments of an executor that takes none: any `with` key is refused.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// An executor: the reference's `class MyExec(Executor)`, as a Rust type.
///
/// - [`Args`](Executor::Args) are its constructor arguments (YAML `with:` and a Flow's
///   `uses_with`), read by serde; a key the type does not take is an error naming it.
/// - [`new`](Executor::new) builds it without side effects, so a Flow can check its whole
///   config before anything starts; [`open`](Executor::open) then takes its resources (files,
///   a database) once, before it serves.
/// - [`requests`](Executor::requests) binds its methods to endpoints. A blocking handler
///   (`r.on`) runs where blocking is allowed; an async one (`r.on_async`) holds no thread while
///   it awaits; a streaming one (`r.on_stream`) takes one document and yields documents. Handlers take `&self` (or `Arc<Self>`): state that changes lives behind the
///   type's own lock or atomics, as requests run concurrently.
pub trait Executor: Sized + Send + Sync + 'static {
    /// The name `jtype:` and `uses:` give it.
    const NAME: &'static str;
    /// One line for listings.
    const SUMMARY: &'static str = "";
    /// Whether it keeps data in its workspace (an index) that must outlive its process: a
    /// deployment (`jina export`) then gives it a volume of its own.
    const KEEPS_WORKSPACE: bool = false;
    /// The constructor arguments.
    type Args: DeserializeOwned;

    /// Builds the executor from its arguments and metas (the reference's `__init__`).
    fn new(args: Self::Args, metas: &Metas) -> Result<Self, BoxError>;

    /// Takes the resources it serves from, once, before serving. The error is one line.
    fn open(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    /// Binds handlers to endpoints: `r.on("/index", Self::index)`, `r.default(Self::foo)`.
    fn requests(r: &mut Requests<Self>);
}
