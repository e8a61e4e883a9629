//! Executors whose code is not Rust: a user's Python class, hosted in a Python process by the
//! `jina_rs` extension (`python/`), and served by this crate's own executor server, with
//! everything a native executor has (admission, TLS, metrics, traces, batching, joins).
//!
//! This module owns the contract a host fulfils ([`HostedExecutor`]), what a host is asked to
//! build ([`HostedLoad`]), and the adapter that lets the server call it like any executor. It
//! must not know Python: every call into the interpreter lives in the extension crate.

use super::batching::DynamicBatching;
use super::instance::{Answer, OwnedCall, Runner, WireDocs, into_wire, read_wire};
use super::{BoxError, HandlerError, Metas, Parameters};
use crate::document::{Document, DocumentArray};
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Arc;

/// An executor hosted outside Rust, callable by handler index.
pub trait HostedExecutor: Send + Sync + 'static {
    /// Each handler's name with the endpoints its code binds it to, in index order.
    fn bindings(&self) -> Vec<(String, Vec<String>)>;
    /// The endpoints its code asks to batch.
    fn batching(&self) -> Vec<(String, DynamicBatching)>;
    /// Whether handler `index` is a generator: one document in, a stream out.
    fn streams(&self, index: usize) -> bool;
    /// Handler `index`'s schema entry for endpoint discovery (`input`, `output`,
    /// `parameters`, `is_generator`, `is_singleton_doc`), as Python Jina reports it.
    fn endpoint_schema(&self, index: usize) -> Option<Value>;
    /// Calls handler `index` on documents in DocArray's wire form, which a host reads and
    /// writes itself: a future of its answer. It must not block the server's runtime; a host
    /// runs the call elsewhere (the Python host, on its Python thread) and the future waits
    /// for it without holding a thread.
    fn call(
        &self,
        index: usize,
        call: OwnedCall<WireDocs>,
    ) -> BoxFuture<'static, Result<Answer<WireDocs>, HandlerError>>;
    /// Calls generator `index` on one document; `emit` takes each document it yields and
    /// answers false once no one listens, when the generator should stop.
    fn call_stream(
        &self,
        index: usize,
        doc: Document,
        parameters: &Parameters,
        endpoint: &str,
        emit: &mut dyn FnMut(Document) -> bool,
    ) -> Result<(), HandlerError>;
    /// Releases what the executor holds (Jina's `close()`), once, after the server stopped.
    fn close(&self);
}

/// Which copy of its executor a process is: Jina's `runtime_args`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::Args)]
pub struct CopyFlags {
    /// Which shard this copy serves (a Python executor's `runtime_args.shard_id`).
    #[arg(long, default_value_t = 0)]
    pub shard_id: u32,
    /// How many shards its executor has.
    #[arg(long, default_value_t = 1)]
    pub shards: u32,
    /// Which replica of its shard this copy is.
    #[arg(long, default_value_t = 0)]
    pub replica_id: u32,
    /// How many replicas each shard has.
    #[arg(long, default_value_t = 1)]
    pub replicas: u32,
}

impl Default for CopyFlags {
    fn default() -> Self {
        CopyFlags {
            shard_id: 0,
            shards: 1,
            replica_id: 0,
            replicas: 1,
        }
    }
}

impl CopyFlags {
    /// The flags, as Python Jina's `jina executor` and ours read them.
    pub fn to_args(&self) -> Vec<String> {
        [
            ("--shard-id", self.shard_id),
            ("--shards", self.shards),
            ("--replica-id", self.replica_id),
            ("--replicas", self.replicas),
        ]
        .into_iter()
        .flat_map(|(flag, n)| [flag.to_string(), n.to_string()])
        .collect()
    }
}

/// What a host is asked to build: the executor's class and everything Jina gives its
/// constructor.
#[derive(Clone, Debug)]
pub struct HostedLoad {
    /// The class name (`jtype`).
    pub jtype: String,
    /// The Python files (or module names) that define it, files made absolute.
    pub py_modules: Vec<String>,
    /// `with:` after `uses_with`: the constructor's keyword arguments.
    pub with: Map<String, Value>,
    /// `metas:` after `uses_metas`, as Jina's `self.metas` shows them.
    pub metas: Map<String, Value>,
    /// The copy's name (`runtime_args.name`, the key of its `__results__`).
    pub name: String,
    /// Where the executor keeps its files (`self.workspace`), when it has one.
    pub workspace: Option<PathBuf>,
    pub copy: CopyFlags,
    /// Where its config came from (a YAML file, or the flags), for errors.
    pub origin: String,
}

/// The server's view of a hosted executor.
pub(crate) struct Hosted {
    executor: Arc<dyn HostedExecutor>,
    bindings: Vec<(String, Vec<String>)>,
}

impl Hosted {
    pub(crate) fn new(executor: Arc<dyn HostedExecutor>) -> Hosted {
        Hosted {
            bindings: executor.bindings(),
            executor,
        }
    }
}

fn not_a_handler(index: usize) -> HandlerError {
    HandlerError::new("RuntimeError", format!("no handler #{index} of this kind"))
}

impl Runner for Hosted {
    fn open(&mut self) -> Result<(), BoxError> {
        // The host built and set up the executor before it handed it over.
        Ok(())
    }

    fn bindings(&self) -> Vec<(&str, &[String])> {
        self.bindings
            .iter()
            .map(|(name, endpoints)| (name.as_str(), endpoints.as_slice()))
            .collect()
    }

    fn batching(&self) -> Vec<(String, DynamicBatching)> {
        self.executor.batching()
    }

    fn endpoint_schema(&self, index: usize) -> Option<Value> {
        self.executor.endpoint_schema(index)
    }

    fn lists_default_only_when_bound(&self) -> bool {
        true
    }

    fn kind(&self, index: usize) -> Option<super::HandlerKind> {
        (index < self.bindings.len()).then(|| match self.executor.streams(index) {
            true => super::HandlerKind::Stream,
            false => super::HandlerKind::Async,
        })
    }

    fn call_blocking(
        &self,
        index: usize,
        _: &mut DocumentArray,
        _: Option<&[DocumentArray]>,
        _: &Parameters,
        _: &str,
        _: &Metas,
    ) -> Result<Answer, HandlerError> {
        // Every hosted handler is a future (or a generator): the host runs the code itself.
        Err(not_a_handler(index))
    }

    /// A join's, several requests' or a batch's documents: in the wire form for the host.
    fn call_async(
        &self,
        index: usize,
        call: OwnedCall,
        _: Arc<Metas>,
    ) -> BoxFuture<'static, Result<Answer, HandlerError>> {
        let answer = self.executor.call(index, call.map_docs(into_wire));
        Box::pin(answer.map(|answer| answer.map(|a| a.map_docs(read_wire))))
    }

    /// One request's documents, as they came: no `Document` is built on the way in or out.
    fn call_wire(
        &self,
        index: usize,
        call: OwnedCall<WireDocs>,
        _: Arc<Metas>,
    ) -> BoxFuture<'static, Result<Answer<WireDocs>, HandlerError>> {
        self.executor.call(index, call)
    }

    fn call_stream(
        &self,
        index: usize,
        doc: Document,
        parameters: &Parameters,
        endpoint: String,
        _: Arc<Metas>,
    ) -> BoxStream<'static, Result<Document, HandlerError>> {
        // The generator runs on a blocking thread; what it yields comes through a small
        // channel, so a slow client holds the generator back rather than filling memory.
        let (sender, receiver) = tokio::sync::mpsc::channel(8);
        let executor = self.executor.clone();
        let parameters = parameters.clone();
        tokio::task::spawn_blocking(move || {
            let mut emit = |doc| sender.blocking_send(Ok(doc)).is_ok();
            if let Err(e) = executor.call_stream(index, doc, &parameters, &endpoint, &mut emit) {
                let _ = sender.blocking_send(Err(e));
            }
        });
        Box::pin(futures::stream::unfold(receiver, |mut receiver| async {
            receiver.recv().await.map(|item| (item, receiver))
        }))
    }
}
