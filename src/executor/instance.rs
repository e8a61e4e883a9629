//! A built executor, ready to open and serve: its type erased behind [`Runner`], its request
//! table, its metas and its name.
//!
//! This is the one place that turns a typed [`Executor`] and its `with` arguments into
//! something the server can call by handler index. It must not know where the arguments came
//! from (a YAML file, a Flow, the Rust API: that is `config` and `registry`).

use super::batching::DynamicBatching;
use super::handlers::{RequestTable, Requests, Run, UnknownHandler};
use super::{BoxError, Executor, HandlerError, Metas, Parameters};
use crate::document::{Document, DocumentArray};
use crate::proto::docarray::DocProto;
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use indexmap::IndexMap;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Why an executor could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A `with` key the executor's arguments do not have.
    #[error("{key}: {executor} takes no argument `{key}`{expected}")]
    UnknownArgument {
        executor: &'static str,
        key: String,
        /// `(it takes: a, b)` when serde said which it takes.
        expected: String,
    },
    /// An argument of the wrong type, or a missing one.
    #[error("{0}")]
    BadArgument(String),
    /// The constructor refused its arguments.
    #[error("{executor}: {error}")]
    Refused {
        executor: &'static str,
        error: BoxError,
    },
    /// `requests:` or `uses_requests` names a handler the executor lacks.
    #[error(transparent)]
    UnknownHandler(#[from] UnknownHandler),
}

/// An executor's `open` failed: its resources could not be taken.
#[derive(Debug, thiserror::Error)]
#[error("{executor}: cannot open: {error}")]
pub struct OpenError {
    pub executor: String,
    pub error: BoxError,
}

/// How a handler runs, as the server must call it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandlerKind {
    /// On a thread where blocking is allowed, documents changed in place.
    Blocking,
    /// As a future on the server's runtime.
    Async,
    /// One document in, a stream of documents out (a generator endpoint).
    Stream,
}

/// What a blocking handler answers: new documents (`None`: it changed them in place) and, from
/// a Python handler that returned a dict, its results, which the answer carries under
/// `__results__` keyed by the executor's name (as Python Jina's worker does).
/// `D`, the documents' form: ours ([`DocumentArray`]), or DocArray's wire form
/// ([`WireDocs`]) for a runner that reads it itself.
#[derive(Debug, Default)]
pub struct Answer<D = DocumentArray> {
    pub docs: Option<D>,
    pub results: Option<Value>,
}

/// Documents as decoded from a request and written into its answer, `Document`s never built.
pub type WireDocs = Vec<DocProto>;

impl<D> Answer<D> {
    /// The same answer with its documents in another form.
    pub fn map_docs<E>(self, f: impl FnOnce(D) -> E) -> Answer<E> {
        Answer {
            docs: self.docs.map(f),
            results: self.results,
        }
    }
}

impl Answer {
    /// New documents or none, and no results: what a Rust handler answers.
    pub fn docs(docs: Option<DocumentArray>) -> Answer {
        Answer {
            docs,
            results: None,
        }
    }
}

/// What an async or hosted handler's call is given, owned: a request's documents and fields
/// (`D`: as in [`Answer`]).
pub struct OwnedCall<D = DocumentArray> {
    pub docs: D,
    /// One row per request, when several came (a `uses_after`'s shards).
    pub docs_matrix: Option<Vec<D>>,
    /// The executor each request came from (its last route; `gateway` on the first hop), one
    /// per row of `docs_matrix`, else one for `docs`: the keys of Python Jina's `docs_map`.
    pub sources: Vec<Option<String>>,
    pub parameters: Parameters,
    pub endpoint: String,
}

impl<D> OwnedCall<D> {
    /// The same call with its documents in another form.
    pub fn map_docs<E>(self, f: impl Fn(D) -> E) -> OwnedCall<E> {
        OwnedCall {
            docs: f(self.docs),
            docs_matrix: self
                .docs_matrix
                .map(|rows| rows.into_iter().map(&f).collect()),
            sources: self.sources,
            parameters: self.parameters,
            endpoint: self.endpoint,
        }
    }
}

/// Wire documents read into ours.
pub(crate) fn read_wire(docs: WireDocs) -> DocumentArray {
    docs.into_iter().map(Document::from_proto).collect()
}

/// Our documents in the wire form, moved.
pub(crate) fn into_wire(docs: DocumentArray) -> WireDocs {
    docs.into_proto().docs
}

/// An executor of some type, callable by handler index.
pub(crate) trait Runner: Send + Sync {
    fn open(&mut self) -> Result<(), BoxError>;
    /// Each handler's name with the endpoints its code binds it to, in index order.
    fn bindings(&self) -> Vec<(&str, &[String])>;
    /// The endpoints the code asks to batch.
    fn batching(&self) -> Vec<(String, DynamicBatching)>;
    fn kind(&self, index: usize) -> Option<HandlerKind>;
    fn call_blocking(
        &self,
        index: usize,
        docs: &mut DocumentArray,
        docs_matrix: Option<&[DocumentArray]>,
        parameters: &Parameters,
        endpoint: &str,
        metas: &Metas,
    ) -> Result<Answer, HandlerError>;
    fn call_async(
        &self,
        index: usize,
        call: OwnedCall,
        metas: Arc<Metas>,
    ) -> BoxFuture<'static, Result<Answer, HandlerError>>;
    /// Runs async handler `index` on one request's documents in the wire form. They are read
    /// into `Document`s for [`Runner::call_async`] here; a runner that reads the wire form
    /// itself (a hosted executor) takes them as they came.
    fn call_wire(
        &self,
        index: usize,
        call: OwnedCall<WireDocs>,
        metas: Arc<Metas>,
    ) -> BoxFuture<'static, Result<Answer<WireDocs>, HandlerError>> {
        let answer = self.call_async(index, call.map_docs(read_wire), metas);
        Box::pin(answer.map(|answer| answer.map(|a| a.map_docs(into_wire))))
    }
    fn call_stream(
        &self,
        index: usize,
        doc: Document,
        parameters: &Parameters,
        endpoint: String,
        metas: Arc<Metas>,
    ) -> BoxStream<'static, Result<Document, HandlerError>>;
    /// Handler `index`'s own schema entry for endpoint discovery, when its code declares one
    /// (a Python executor's document and parameters models); `None`: our Document's.
    fn endpoint_schema(&self, _index: usize) -> Option<Value> {
        None
    }
    /// Whether it lists `/default` only when a handler answers it, as Python Jina does (a
    /// Python executor); ours always list it.
    fn lists_default_only_when_bound(&self) -> bool {
        false
    }
}

struct Typed<E> {
    executor: Arc<E>,
    requests: Requests<E>,
}

fn not_a_handler(index: usize) -> HandlerError {
    HandlerError::new("RuntimeError", format!("no handler #{index} of this kind"))
}

impl<E: Executor> Runner for Typed<E> {
    fn open(&mut self) -> Result<(), BoxError> {
        // Nothing holds the executor before it serves.
        Arc::get_mut(&mut self.executor)
            .ok_or("opened while serving")?
            .open()
    }

    fn bindings(&self) -> Vec<(&str, &[String])> {
        self.requests.bindings()
    }

    fn batching(&self) -> Vec<(String, DynamicBatching)> {
        self.requests.batching.clone()
    }

    fn kind(&self, index: usize) -> Option<HandlerKind> {
        Some(match &self.requests.handlers.get(index)?.run {
            Run::Blocking(_) => HandlerKind::Blocking,
            Run::Async(_) => HandlerKind::Async,
            Run::Stream(_) => HandlerKind::Stream,
        })
    }

    fn call_blocking(
        &self,
        index: usize,
        docs: &mut DocumentArray,
        docs_matrix: Option<&[DocumentArray]>,
        parameters: &Parameters,
        endpoint: &str,
        metas: &Metas,
    ) -> Result<Answer, HandlerError> {
        match self.requests.handlers.get(index).map(|h| &h.run) {
            Some(Run::Blocking(run)) => run(
                &self.executor,
                docs,
                docs_matrix,
                parameters,
                endpoint,
                metas,
            )
            .map(Answer::docs),
            _ => Err(not_a_handler(index)),
        }
    }

    fn call_async(
        &self,
        index: usize,
        call: OwnedCall,
        metas: Arc<Metas>,
    ) -> BoxFuture<'static, Result<Answer, HandlerError>> {
        match self.requests.handlers.get(index).map(|h| &h.run) {
            Some(Run::Async(run)) => Box::pin(
                run(
                    self.executor.clone(),
                    call.docs,
                    call.docs_matrix,
                    &call.parameters,
                    call.endpoint,
                    metas,
                )
                .map(|answered| answered.map(|docs| Answer::docs(Some(docs)))),
            ),
            _ => Box::pin(std::future::ready(Err(not_a_handler(index)))),
        }
    }

    fn call_stream(
        &self,
        index: usize,
        doc: Document,
        parameters: &Parameters,
        endpoint: String,
        metas: Arc<Metas>,
    ) -> BoxStream<'static, Result<Document, HandlerError>> {
        match self.requests.handlers.get(index).map(|h| &h.run) {
            Some(Run::Stream(run)) => run(self.executor.clone(), doc, parameters, endpoint, metas),
            _ => Box::pin(futures::stream::once(std::future::ready(Err(
                not_a_handler(index),
            )))),
        }
    }
}

/// Builds an executor of type `E` from its `with` arguments and metas. A key its arguments do
/// not read is refused, whether or not the type says `deny_unknown_fields`.
pub(crate) fn build<E: Executor>(
    with: &Map<String, Value>,
    metas: &Metas,
) -> Result<Box<dyn Runner>, BuildError> {
    let mut ignored = vec![];
    let args: E::Args = serde_ignored::deserialize(Value::Object(with.clone()), |path| {
        ignored.push(path.to_string())
    })
    .map_err(|e| {
        let message = e.to_string();
        match unknown_field(&message) {
            Some((key, expected)) => BuildError::UnknownArgument {
                executor: E::NAME,
                key,
                expected,
            },
            None => BuildError::BadArgument(message),
        }
    })?;
    if let Some(key) = ignored.into_iter().next() {
        return Err(BuildError::UnknownArgument {
            executor: E::NAME,
            key,
            expected: String::new(),
        });
    }
    let executor = E::new(args, metas).map_err(|source| BuildError::Refused {
        executor: E::NAME,
        error: source,
    })?;
    Ok(Box::new(Typed {
        executor: Arc::new(executor),
        requests: Requests::of(),
    }))
}

/// serde's "unknown field `k`, expected one of `a`, `b`" as the key and `(it takes: a, b)`.
fn unknown_field(message: &str) -> Option<(String, String)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let takes = match rest.split_once("expected ") {
        _ if rest.contains("there are no fields") => " (it takes none)".to_string(),
        Some((_, list)) => format!(
            " (it takes: {})",
            list.trim_start_matches("one of ").replace('`', "")
        ),
        None => String::new(),
    };
    Some((key.to_string(), takes))
}

/// A built executor: its name, metas and request table, ready to open and serve.
pub struct Instance {
    pub name: String,
    pub metas: Arc<Metas>,
    pub table: RequestTable,
    /// Endpoints whose requests are batched: the code's declarations, then the overrides'.
    pub dynamic_batching: IndexMap<String, DynamicBatching>,
    runner: Box<dyn Runner>,
}

impl Instance {
    /// Puts a built executor together with its request table: the code's bindings, then each
    /// layer of overrides (YAML `requests`, a Flow's `uses_requests`).
    pub(crate) fn new<'a>(
        name: String,
        metas: Metas,
        runner: Box<dyn Runner>,
        layers: impl IntoIterator<Item = (&'static str, &'a IndexMap<String, String>)>,
    ) -> Result<Instance, BuildError> {
        let table = RequestTable::build(&runner.bindings(), layers)?;
        let declared: IndexMap<String, DynamicBatching> = runner.batching().into_iter().collect();
        let mut instance = Instance {
            name,
            metas: Arc::new(metas),
            table,
            dynamic_batching: IndexMap::new(),
            runner,
        };
        instance.batch("dynamic_batching", &declared)?;
        Ok(instance)
    }

    /// Batches these endpoints too (a Flow's `uses_dynamic_batching`, which wins over the
    /// code's). Each must be answered by a handler, and its settings must batch.
    pub fn batch(
        &mut self,
        key: &str,
        endpoints: &IndexMap<String, DynamicBatching>,
    ) -> Result<(), BuildError> {
        for (endpoint, settings) in endpoints {
            let endpoint = super::handlers::normalise(endpoint);
            settings
                .check()
                .map_err(|e| BuildError::BadArgument(format!("{key}.{endpoint}.{e}")))?;
            match self.table.resolve(&endpoint).map(|i| self.kind(i)) {
                None => {
                    return Err(BuildError::BadArgument(format!(
                        "{key}.{endpoint}: no handler answers this endpoint"
                    )));
                }
                Some(HandlerKind::Stream) => {
                    return Err(BuildError::BadArgument(format!(
                        "{key}.{endpoint}: a streaming handler answers this endpoint; it takes one document at a time and cannot be batched"
                    )));
                }
                Some(_) => {}
            }
            self.dynamic_batching.insert(endpoint, settings.clone());
        }
        Ok(())
    }

    /// Takes the executor's resources, once, before it serves.
    pub fn open(&mut self) -> Result<(), OpenError> {
        self.runner.open().map_err(|source| OpenError {
            executor: self.name.clone(),
            error: source,
        })
    }

    /// How handler `index` runs (an index from [`Instance::table`] always has a handler).
    pub fn kind(&self, index: usize) -> HandlerKind {
        self.runner.kind(index).unwrap_or(HandlerKind::Blocking)
    }

    /// Runs blocking handler `index`: it changes `docs` in place or returns new ones.
    pub fn call_blocking(
        &self,
        index: usize,
        docs: &mut DocumentArray,
        docs_matrix: Option<&[DocumentArray]>,
        parameters: &Parameters,
        endpoint: &str,
    ) -> Result<Answer, HandlerError> {
        self.runner
            .call_blocking(index, docs, docs_matrix, parameters, endpoint, &self.metas)
    }

    /// Runs async handler `index`: a future that owns what it needs.
    pub fn call_async(
        &self,
        index: usize,
        call: OwnedCall,
    ) -> BoxFuture<'static, Result<Answer, HandlerError>> {
        self.runner.call_async(index, call, self.metas.clone())
    }

    /// Runs async handler `index` on documents in the wire form (see [`Runner::call_wire`]).
    pub fn call_wire(
        &self,
        index: usize,
        call: OwnedCall<WireDocs>,
    ) -> BoxFuture<'static, Result<Answer<WireDocs>, HandlerError>> {
        self.runner.call_wire(index, call, self.metas.clone())
    }

    /// Runs streaming handler `index` on one document: a stream that owns what it needs.
    pub fn call_stream(
        &self,
        index: usize,
        doc: Document,
        parameters: &Parameters,
        endpoint: String,
    ) -> BoxStream<'static, Result<Document, HandlerError>> {
        self.runner
            .call_stream(index, doc, parameters, endpoint, self.metas.clone())
    }

    /// What endpoint discovery reports for `endpoint`: its handler's own schema when its code
    /// declares one, else our Document's.
    pub fn endpoint_schema(&self, endpoint: &str) -> Option<Value> {
        self.table
            .resolve(endpoint)
            .and_then(|i| self.runner.endpoint_schema(i))
    }

    /// Whether endpoint discovery lists `/default` only when a handler answers it.
    pub fn lists_default_only_when_bound(&self) -> bool {
        self.runner.lists_default_only_when_bound()
    }

    /// Whether a streaming handler answers `endpoint` (what endpoint discovery calls
    /// `is_generator`).
    pub fn streams(&self, endpoint: &str) -> bool {
        self.table
            .resolve(endpoint)
            .is_some_and(|i| self.kind(i) == HandlerKind::Stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_serdes_unknown_field_message() {
        assert_eq!(
            unknown_field("unknown field `wiht`, expected one of `ms`, `x`"),
            Some(("wiht".into(), " (it takes: ms, x)".into()))
        );
        assert_eq!(
            unknown_field("unknown field `a`, there are no fields"),
            Some(("a".into(), " (it takes none)".into()))
        );
        assert_eq!(unknown_field("invalid type: string"), None);
    }
}
