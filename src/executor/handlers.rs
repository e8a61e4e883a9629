//! Handlers, and which handler answers which endpoint.
//!
//! An executor binds its methods to endpoints in [`Executor::requests`] (the reference's
//! `@requests(on=...)`): `r.on("/index", Self::index)`. The compiler checks each method's
//! signature there, so a binding cannot name a handler that does not exist or take arguments it
//! cannot give. A handler's name (for YAML `requests:` and `uses_requests`, which bind it by
//! name elsewhere) is its function's name.
//!
//! The [`RequestTable`] is built in three layers, each on top of the last, as the reference
//! does: the bindings of the executor's code, then the YAML's `requests`, then a Flow's
//! `uses_requests`. It maps an endpoint to a handler's *index*, so serving a request matches no
//! string. An endpoint with its own handler gets it; any other endpoint gets the default
//! handler (the reference's bare `@requests`, bound to `/default`); with no default, the
//! documents pass through unchanged.
//!
//! This module must not know how requests arrive (that is `server`) nor how executors are
//! found by name (that is `registry`).

use super::batching::DynamicBatching;
use super::{BoxError, Executor, HandlerError, Metas, Parameters};
use crate::document::{Document, DocumentArray};
use futures::future::BoxFuture;
use futures::stream::{BoxStream, Stream, StreamExt};
use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;

/// The endpoint of a handler bound with no endpoint.
pub const DEFAULT_ENDPOINT: &str = "/default";

/// What a blocking handler gets: the documents to change in place (or to replace by returning
/// new ones), the request's parameters (any serde type; [`Parameters`] for the raw map), the
/// endpoint the request was sent to, and the executor's metas.
///
/// When several requests arrive at once (the answers of a sharded executor's shards, handed to
/// its `uses_after`), `docs` is their documents one after another and `docs_matrix` holds them
/// apart, one list per request in shard order, as Jina's `docs_matrix`. For one request it is
/// `None`: `docs` is all there is.
pub struct Call<'a, P = Parameters> {
    pub docs: &'a mut DocumentArray,
    pub docs_matrix: Option<&'a [DocumentArray]>,
    pub parameters: P,
    pub endpoint: &'a str,
    pub metas: &'a Metas,
}

/// What an async handler gets: the same as [`Call`], owned, so the handler's future can hold it
/// across its awaits. It returns the documents to send on.
pub struct AsyncCall<P = Parameters> {
    pub docs: DocumentArray,
    pub docs_matrix: Option<Vec<DocumentArray>>,
    pub parameters: P,
    pub endpoint: String,
    pub metas: Arc<Metas>,
}

/// What a streaming handler gets: one document (the reference's `doc: MyDoc` of a generator
/// endpoint), the request's parameters, the endpoint and the metas, owned so that the stream
/// it returns can hold them.
pub struct StreamCall<P = Parameters> {
    pub doc: Document,
    pub parameters: P,
    pub endpoint: String,
    pub metas: Arc<Metas>,
}

/// What a blocking handler may return: `()` when it changed the documents in place, or new
/// documents that replace them (`DocumentArray`, or `Option<DocumentArray>` to decide per call).
pub trait Reply {
    fn into_docs(self) -> Option<DocumentArray>;
}

impl Reply for () {
    fn into_docs(self) -> Option<DocumentArray> {
        None
    }
}

impl Reply for DocumentArray {
    fn into_docs(self) -> Option<DocumentArray> {
        Some(self)
    }
}

impl Reply for Option<DocumentArray> {
    fn into_docs(self) -> Option<DocumentArray> {
        self
    }
}

/// Endpoints a handler is bound to: one (`"/index"`) or several (`["/index", "/update"]`).
pub trait Endpoints {
    fn endpoints(self) -> Vec<String>;
}

impl Endpoints for &str {
    fn endpoints(self) -> Vec<String> {
        vec![self.to_string()]
    }
}

impl<const N: usize> Endpoints for [&str; N] {
    fn endpoints(self) -> Vec<String> {
        self.iter().map(|s| s.to_string()).collect()
    }
}

impl Endpoints for &[&str] {
    fn endpoints(self) -> Vec<String> {
        self.iter().map(|s| s.to_string()).collect()
    }
}

type Blocking<E> = Box<
    dyn Fn(
            &E,
            &mut DocumentArray,
            Option<&[DocumentArray]>,
            &Parameters,
            &str,
            &Metas,
        ) -> Result<Option<DocumentArray>, HandlerError>
        + Send
        + Sync,
>;
type Awaiting<E> = Box<
    dyn Fn(
            Arc<E>,
            DocumentArray,
            Option<Vec<DocumentArray>>,
            &Parameters,
            String,
            Arc<Metas>,
        ) -> BoxFuture<'static, Result<DocumentArray, HandlerError>>
        + Send
        + Sync,
>;

type Streaming<E> = Box<
    dyn Fn(
            Arc<E>,
            Document,
            &Parameters,
            String,
            Arc<Metas>,
        ) -> BoxStream<'static, Result<Document, HandlerError>>
        + Send
        + Sync,
>;

/// How a handler runs: on a thread where blocking is allowed, as a future, or as a stream of
/// documents yielded one at a time.
pub(crate) enum Run<E> {
    Blocking(Blocking<E>),
    Async(Awaiting<E>),
    Stream(Streaming<E>),
}

/// One handler of an executor type: its name, where its code binds it, and the function.
pub(crate) struct Handler<E> {
    pub name: String,
    pub on: Vec<String>,
    pub run: Run<E>,
}

/// The handlers of an executor type, as its [`Executor::requests`] binds them.
pub struct Requests<E> {
    pub(crate) handlers: Vec<Handler<E>>,
    /// Endpoints whose small requests the code asks to batch (Jina 3's `@dynamic_batching`).
    pub(crate) batching: Vec<(String, DynamicBatching)>,
}

impl<E: Executor> Requests<E> {
    pub(crate) fn of() -> Requests<E> {
        let mut r = Requests {
            handlers: vec![],
            batching: vec![],
        };
        E::requests(&mut r);
        r
    }

    /// Binds a blocking handler (CPU work) to `endpoints`. It runs on a thread where blocking
    /// is allowed, so a slow handler holds up only its own request.
    pub fn on<P, R, Err, F>(&mut self, endpoints: impl Endpoints, handler: F) -> &mut Self
    where
        F: Fn(&E, Call<'_, P>) -> Result<R, Err> + Send + Sync + 'static,
        P: DeserializeOwned,
        R: Reply,
        Err: Into<BoxError>,
    {
        let run: Blocking<E> = Box::new(
            move |executor, docs, docs_matrix, parameters, endpoint, metas| {
                let parameters = read_parameters::<P>(parameters)?;
                let call = Call {
                    docs,
                    docs_matrix,
                    parameters,
                    endpoint,
                    metas,
                };
                handler(executor, call)
                    .map(Reply::into_docs)
                    .map_err(handler_error::<Err>)
            },
        );
        self.add(
            handler_name::<F>(),
            endpoints.endpoints(),
            Run::Blocking(run),
        )
    }

    /// Binds an async handler (one that awaits I/O, a call to another service) to `endpoints`.
    /// It takes the executor as `self: Arc<Self>` and returns the documents to send on; while
    /// it waits, it holds no thread.
    pub fn on_async<P, Err, F, Fut>(&mut self, endpoints: impl Endpoints, handler: F) -> &mut Self
    where
        F: Fn(Arc<E>, AsyncCall<P>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<DocumentArray, Err>> + Send + 'static,
        P: DeserializeOwned + Send + 'static,
        Err: Into<BoxError>,
    {
        let run: Awaiting<E> = Box::new(
            move |executor, docs, docs_matrix, parameters, endpoint, metas| {
                let parameters = match read_parameters::<P>(parameters) {
                    Ok(p) => p,
                    Err(e) => return Box::pin(std::future::ready(Err(e))),
                };
                let call = AsyncCall {
                    docs,
                    docs_matrix,
                    parameters,
                    endpoint,
                    metas,
                };
                let future = handler(executor, call);
                Box::pin(async move { future.await.map_err(handler_error::<Err>) })
            },
        );
        self.add(handler_name::<F>(), endpoints.endpoints(), Run::Async(run))
    }

    /// Binds a streaming handler (Jina 3's generator endpoint) to `endpoints`: it takes one
    /// document and returns a stream of documents, each sent to the client as soon as it is
    /// yielded (`stream_doc` over gRPC, Server-Sent Events over HTTP, frames over WebSocket).
    /// Dropping the stream is how it learns the client went away. A request of many documents
    /// (a plain `post`) gets every document each of them yields, in order.
    pub fn on_stream<P, Err, F, S>(&mut self, endpoints: impl Endpoints, handler: F) -> &mut Self
    where
        F: Fn(Arc<E>, StreamCall<P>) -> S + Send + Sync + 'static,
        S: Stream<Item = Result<Document, Err>> + Send + 'static,
        P: DeserializeOwned + Send + 'static,
        Err: Into<BoxError>,
    {
        let run: Streaming<E> = Box::new(move |executor, doc, parameters, endpoint, metas| {
            let parameters = match read_parameters::<P>(parameters) {
                Ok(p) => p,
                Err(e) => return futures::stream::once(std::future::ready(Err(e))).boxed(),
            };
            let call = StreamCall {
                doc,
                parameters,
                endpoint,
                metas,
            };
            handler(executor, call)
                .map(|item| item.map_err(handler_error::<Err>))
                .boxed()
        });
        self.add(handler_name::<F>(), endpoints.endpoints(), Run::Stream(run))
    }

    /// Binds a blocking handler to every endpoint without a handler of its own (the reference's
    /// bare `@requests`).
    pub fn default<P, R, Err, F>(&mut self, handler: F) -> &mut Self
    where
        F: Fn(&E, Call<'_, P>) -> Result<R, Err> + Send + Sync + 'static,
        P: DeserializeOwned,
        R: Reply,
        Err: Into<BoxError>,
    {
        self.on(DEFAULT_ENDPOINT, handler)
    }

    /// Binds an async handler to every endpoint without a handler of its own.
    pub fn default_async<P, Err, F, Fut>(&mut self, handler: F) -> &mut Self
    where
        F: Fn(Arc<E>, AsyncCall<P>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<DocumentArray, Err>> + Send + 'static,
        P: DeserializeOwned + Send + 'static,
        Err: Into<BoxError>,
    {
        self.on_async(DEFAULT_ENDPOINT, handler)
    }

    /// A blocking handler that the code binds nowhere: only a YAML `requests:` or a Flow's
    /// `uses_requests` binds it, by its name.
    pub fn unbound<P, R, Err, F>(&mut self, handler: F) -> &mut Self
    where
        F: Fn(&E, Call<'_, P>) -> Result<R, Err> + Send + Sync + 'static,
        P: DeserializeOwned,
        R: Reply,
        Err: Into<BoxError>,
    {
        self.on::<P, R, Err, F>(&[][..], handler)
    }

    /// Batches the small requests to `endpoint` into one call of its handler (Jina 3's
    /// `@dynamic_batching`); a Flow's `uses_dynamic_batching` may set it too, and wins. The
    /// handler must answer one document per document, in order.
    pub fn dynamic_batching(&mut self, endpoint: &str, settings: DynamicBatching) -> &mut Self {
        self.batching.push((normalise(endpoint), settings));
        self
    }

    fn add(&mut self, name: String, on: Vec<String>, run: Run<E>) -> &mut Self {
        match self.handlers.iter_mut().find(|h| h.name == name) {
            // The same method bound again: one handler, more endpoints.
            Some(h) => h.on.extend(on),
            None => self.handlers.push(Handler { name, on, run }),
        }
        self
    }

    /// Each handler's name with the endpoints its code binds it to.
    pub(crate) fn bindings(&self) -> Vec<(&str, &[String])> {
        self.handlers
            .iter()
            .map(|h| (h.name.as_str(), h.on.as_slice()))
            .collect()
    }
}

/// A handler's name: its function's (`index` for `Self::index`).
fn handler_name<F>() -> String {
    short_type_name::<F>()
}

/// The parameters as the handler's type; a mismatch fails the request, naming the field.
fn read_parameters<P: DeserializeOwned>(parameters: &Parameters) -> Result<P, HandlerError> {
    serde_json::from_value(Value::Object(parameters.clone()))
        .map_err(|e| HandlerError::new("ParameterError", format!("parameters: {e}")))
}

/// A handler's error as the response carries it: a [`HandlerError`] as it is, any other error
/// named by its type (`WordCountError`), with its message.
fn handler_error<Err: Into<BoxError>>(e: Err) -> HandlerError {
    let type_name = short_type_name::<Err>();
    match e.into().downcast::<HandlerError>() {
        Ok(h) => *h,
        Err(other) => {
            let name = match type_name.as_str() {
                "String" | "&str" | "Box" => "Error".to_string(),
                _ => type_name,
            };
            HandlerError::new(name, other.to_string())
        }
    }
}

/// The last segment of a type's path, without generics: `WordCountError`, or for a function
/// item its name.
fn short_type_name<T>() -> String {
    let path = std::any::type_name::<T>();
    let path = path.split('<').next().unwrap_or(path);
    path.rsplit("::").next().unwrap_or(path).to_string()
}

/// Endpoint → index of the handler that answers it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestTable {
    bindings: IndexMap<String, usize>,
}

/// A `requests:` or `uses_requests` entry naming a handler the executor lacks.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{layer}.{endpoint}: no handler named '{handler}' (this executor has: {known})")]
pub struct UnknownHandler {
    pub layer: &'static str,
    pub endpoint: String,
    pub handler: String,
    /// The handlers it has, comma-separated, or `none`.
    pub known: String,
}

impl RequestTable {
    /// Builds the table from the code's bindings (handler name and endpoints, in the handlers'
    /// order) and then each layer of overrides (endpoint → handler name).
    pub fn build<'a>(
        handlers: &[(&str, &[String])],
        layers: impl IntoIterator<Item = (&'static str, &'a IndexMap<String, String>)>,
    ) -> Result<RequestTable, UnknownHandler> {
        let mut bindings = IndexMap::new();
        for (index, (_, on)) in handlers.iter().enumerate() {
            for endpoint in on.iter() {
                bindings.insert(endpoint.clone(), index);
            }
        }
        for (layer, entries) in layers {
            for (endpoint, handler) in entries {
                let Some(index) = handlers.iter().position(|(name, _)| name == handler) else {
                    let known: Vec<&str> = handlers.iter().map(|(name, _)| *name).collect();
                    return Err(UnknownHandler {
                        layer,
                        endpoint: endpoint.clone(),
                        handler: handler.clone(),
                        known: match known.is_empty() {
                            true => "none".into(),
                            false => known.join(", "),
                        },
                    });
                };
                bindings.insert(normalise(endpoint), index);
            }
        }
        Ok(RequestTable { bindings })
    }

    /// The index of the handler for this endpoint, if any.
    pub fn resolve(&self, endpoint: &str) -> Option<usize> {
        self.bindings
            .get(endpoint)
            .or_else(|| self.bindings.get(DEFAULT_ENDPOINT))
            .copied()
    }

    /// The endpoints this table names, in binding order.
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.bindings.keys().map(String::as_str)
    }
}

/// `default` and `/default` both name the default endpoint; other endpoints are kept as given.
pub(crate) fn normalise(endpoint: &str) -> String {
    match endpoint {
        "default" => DEFAULT_ENDPOINT.into(),
        e => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(pairs: &[(&str, &str)]) -> IndexMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn on(endpoints: &[&str]) -> Vec<String> {
        endpoints.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn uses_requests_binds_on_top_of_the_default() {
        // The reference: foo is bare @requests, bar is bound to /index by uses_requests.
        let (foo, bar) = (on(&[DEFAULT_ENDPOINT]), on(&[]));
        let handlers = [("foo", &foo[..]), ("bar", &bar[..])];
        let over = layer(&[("/index", "bar")]);
        let t = RequestTable::build(&handlers, [("uses_requests", &over)]).unwrap();
        assert_eq!(t.resolve("/index"), Some(1));
        assert_eq!(t.resolve("/dummy"), Some(0));
    }

    #[test]
    fn no_default_means_pass_through() {
        let a = on(&["/index"]);
        let t = RequestTable::build(&[("a", &a[..])], []).unwrap();
        assert_eq!(t.resolve("/search"), None);
    }

    #[test]
    fn an_unknown_handler_names_layer_endpoint_and_handler() {
        let over = layer(&[("/x", "nope")]);
        let foo = on(&[DEFAULT_ENDPOINT]);
        let e = RequestTable::build(&[("foo", &foo[..])], [("requests", &over)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "requests./x: no handler named 'nope' (this executor has: foo)"
        );
    }

    #[test]
    fn a_handler_is_named_by_its_function_and_errors_by_their_type() {
        #[derive(Debug, thiserror::Error)]
        #[error("disk on fire")]
        struct DiskError;
        struct Counter;
        impl Counter {
            fn count_words(&self, _: Call<'_>) -> Result<(), DiskError> {
                Err(DiskError)
            }
        }
        fn name_of<F: Fn(&Counter, Call<'_>) -> Result<(), DiskError>>(_: F) -> String {
            handler_name::<F>()
        }
        assert_eq!(name_of(Counter::count_words), "count_words");
        let e = handler_error(
            Counter
                .count_words(Call {
                    docs: &mut DocumentArray::default(),
                    docs_matrix: None,
                    parameters: Parameters::new(),
                    endpoint: "/",
                    metas: &Metas::default(),
                })
                .unwrap_err(),
        );
        assert_eq!(e, HandlerError::new("DiskError", "disk on fire"));
        assert_eq!(handler_error("bad".to_string()).name, "Error");
        let e = handler_error(HandlerError::new("ValueError", "no"));
        assert_eq!(e, HandlerError::new("ValueError", "no"));
    }
}
