//! The gRPC server of one executor: `process_single_data`, `process_data` (several upstream
//! requests merged into one), `stream_doc` (one document in, documents streamed out),
//! `endpoint_discovery`, `_status`, grpc.health.v1 and gRPC reflection (a Python gateway lists
//! our services through it before it talks to us).
//!
//! A request whose endpoint has no handler is answered with the request itself, documents
//! untouched and not even decoded. A handler's error or panic becomes a response with status
//! ERROR naming the executor; the server goes on serving. Endpoints with dynamic batching
//! hand their requests' documents to their `batching::Batcher`, which calls the handler.
//!
//! A streaming handler answers `stream_doc` as it yields; a plain request to it gets all that
//! it yields for each of its documents. A plain handler answers `stream_doc` too: its answer's
//! documents, one message each. A client that goes away drops the handler's stream.

use super::batching::{Batcher, CallHandler};
use super::{
    Answer, DEFAULT_ENDPOINT, HandlerError, HandlerKind, Instance, OwnedCall, Parameters, schema,
};
use crate::document::{Document, DocumentArray};
use crate::metrics::ExecutorMetrics;
use crate::proto::jina::{
    DataRequestListProto, DataRequestProto, EndpointsProto, HeaderProto, JinaInfoProto,
    SingleDocumentRequestProto,
    jina_data_request_rpc_server::{JinaDataRequestRpc, JinaDataRequestRpcServer},
    jina_discover_endpoints_rpc_server::{
        JinaDiscoverEndpointsRpc, JinaDiscoverEndpointsRpcServer,
    },
    jina_info_rpc_server::{JinaInfoRpc, JinaInfoRpcServer},
    jina_single_data_request_rpc_server::{
        JinaSingleDataRequestRpc, JinaSingleDataRequestRpcServer,
    },
    jina_single_document_request_rpc_server::{
        JinaSingleDocumentRequestRpc, JinaSingleDocumentRequestRpcServer,
    },
};
use crate::request;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use tokio::net::TcpListener;
use tonic::{Response, Status};

/// The endpoint Python Jina answers dry runs on; every executor lists it.
const DRY_RUN_ENDPOINT: &str = "_jina_dry_run_";

/// One executor behind the Jina RPC services. Cheap to clone.
#[derive(Clone)]
pub(crate) struct ExecutorService {
    instance: Arc<Instance>,
    /// Where requests are counted and timed, with monitoring on.
    metrics: Option<Arc<ExecutorMetrics>>,
    /// Endpoint → its batching queue, started with the first request (on the runtime that
    /// serves, with the metrics set by then).
    batchers: Arc<OnceLock<HashMap<String, Batcher>>>,
    /// What it takes at once (`ServeSettings::admission`).
    admission: request::Admission,
}

/// The gRPC metadata key with which our gateway hands an executor the parents of a join to
/// merge by id itself (saving the gateway a decode). Without it, several requests are taken as
/// Python Jina's worker takes them: [`Incoming::Many`].
pub(crate) const JOIN_METADATA: &str = "x-jina-rs-join";

/// What arrived: one request; the parents of a join, to merge by id first; or several requests
/// (the answers of a sharded executor's shards, to its `uses_after`), whose documents the
/// handler gets one after another and apart, as Jina's `docs` and `docs_matrix`.
// Moved once per request: boxing the single request would cost an allocation each time.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Incoming {
    One(DataRequestProto),
    Join(Vec<DataRequestProto>),
    Many(Vec<DataRequestProto>),
}

impl Incoming {
    fn first(&self) -> Option<&DataRequestProto> {
        match self {
            Incoming::One(req) => Some(req),
            Incoming::Join(list) | Incoming::Many(list) => list.first(),
        }
    }

    fn endpoint(&self) -> &str {
        self.first().map(request::endpoint).unwrap_or_default()
    }

    fn parts(&self) -> impl Iterator<Item = &DataRequestProto> {
        match self {
            Incoming::One(req) => std::slice::from_ref(req).iter(),
            Incoming::Join(list) | Incoming::Many(list) => list.iter(),
        }
    }
}

/// What a handler is called with: the documents and, when several requests came, each one's.
struct Decoded {
    docs: DocumentArray,
    matrix: Option<Vec<DocumentArray>>,
    /// The executor each request came from ([`OwnedCall::sources`]); none for documents that
    /// came without a request of their own (a batch, a streamed document).
    sources: Vec<Option<String>>,
}

impl Decoded {
    fn one(docs: DocumentArray) -> Decoded {
        Decoded {
            docs,
            matrix: None,
            sources: Vec::new(),
        }
    }
}

impl ExecutorService {
    pub(crate) fn new(instance: Instance) -> Self {
        ExecutorService {
            instance: Arc::new(instance),
            metrics: None,
            batchers: Arc::default(),
            admission: request::Admission::new(0, 0),
        }
    }

    /// Records every request into `metrics` (`--monitoring`).
    pub(crate) fn with_metrics(mut self, metrics: Arc<ExecutorMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The batching queue of `endpoint`, if it batches.
    fn batcher(&self, endpoint: &str) -> Option<&Batcher> {
        let batchers = self.batchers.get_or_init(|| {
            let instance = &self.instance;
            instance
                .dynamic_batching
                .iter()
                .filter_map(|(endpoint, settings)| {
                    let index = instance.table.resolve(endpoint)?;
                    let (instance, metrics) = (instance.clone(), self.metrics.clone());
                    let name = endpoint.clone();
                    let call: CallHandler = Arc::new(move |docs, parameters| {
                        let call = invoke(
                            instance.clone(),
                            metrics.clone(),
                            index,
                            Decoded::one(docs),
                            parameters,
                            name.clone(),
                        );
                        // A batch's results have no one request to go to (Python Jina drops
                        // them too).
                        Box::pin(call.map(|answered| answered.map(|a| a.docs.unwrap_or_default())))
                    });
                    Some((endpoint.clone(), Batcher::start(settings.clone(), call)))
                })
                .collect()
        });
        batchers.get(endpoint)
    }

    /// Answers what arrived inside its `request` span (what JSON logs take the request id
    /// from), a child of the trace context in `metadata` (the gateway's `call` span) when there
    /// is one, and records it when monitoring is on; a handler's error marks the span.
    async fn answer(
        &self,
        incoming: Incoming,
        metadata: &tonic::metadata::MetadataMap,
        arrived: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<DataRequestProto, Status> {
        use tracing::Instrument;
        let request_id = incoming
            .first()
            .map(request::request_id)
            .unwrap_or_default();
        let span = self.request_span(request_id, metadata);
        // Weighed before anything is decoded; the room is held until the answer is sent. A
        // request no handler takes goes back undecoded (see `answer_now`).
        let parts: Vec<&[u8]> = incoming.parts().map(|r| &r.data[..]).collect();
        let handled = self.instance.table.resolve(incoming.endpoint()).is_some();
        let decoded = handled || matches!(incoming, Incoming::Join(_));
        let _room = self
            .admission
            .admit_decoded(&parts, decoded, arrived)
            .await
            .map_err(|over| Status::resource_exhausted(over.to_string()))?;
        let mut answer = self.answer_measured(incoming).instrument(span).await;
        if let (true, Ok(answer)) = (handled, &mut answer) {
            // As Python Jina's worker signs a request it handled: the next executor reads it
            // as `last_executor` (a `uses_after` gets each shard's answer signed so).
            let deployment = super::deployment_of(&self.instance.name);
            answer.routes.push(request::start_route(deployment));
        }
        answer
    }

    /// The `request` span of one request (what JSON logs take the request id from), a child
    /// of the trace context in `metadata` when there is one.
    fn request_span(
        &self,
        request_id: &str,
        metadata: &tonic::metadata::MetadataMap,
    ) -> tracing::Span {
        let span = tracing::info_span!(
            "request",
            otel.name = %self.instance.name,
            otel.status_code = tracing::field::Empty,
            request_id = %request_id,
            trace_id = tracing::field::Empty,
        );
        crate::telemetry::adopt_from_metadata(&span, metadata);
        crate::telemetry::record_trace_id(&span);
        span
    }

    /// [`ExecutorService::answer_now`], measured when monitoring is on.
    async fn answer_measured(&self, incoming: Incoming) -> Result<DataRequestProto, Status> {
        let measuring = self.metrics.as_deref().map(|m| {
            let size_in = match &incoming {
                Incoming::One(req) => prost::Message::encoded_len(req),
                Incoming::Join(list) | Incoming::Many(list) => {
                    list.iter().map(prost::Message::encoded_len).sum()
                }
            };
            m.begin_request(incoming.endpoint(), size_in)
        });
        let answer = self.answer_now(incoming).await;
        if let Some(measuring) = measuring {
            match &answer {
                Ok(req) => {
                    measuring.finish(request::is_error(req), prost::Message::encoded_len(req))
                }
                Err(_) => measuring.finish(true, 0),
            }
        }
        answer
    }

    /// Answers what arrived: a blocking handler runs where blocking is allowed, an async one
    /// on this task. A request whose endpoint has no handler goes back as it came, its
    /// documents not even decoded; of several requests, the first goes back, as Python Jina's
    /// worker answers them.
    async fn answer_now(&self, incoming: Incoming) -> Result<DataRequestProto, Status> {
        let handler = self.instance.table.resolve(incoming.endpoint());
        // Only a single request is batched: a join's requests are merged into one call.
        let batcher = match (handler, &incoming) {
            (Some(_), Incoming::One(req)) => self.batcher(request::endpoint(req)),
            _ => None,
        };
        match (handler, incoming) {
            (_, Incoming::One(req)) if let Some(batcher) = batcher => {
                Ok(self.run_batched(batcher, req).await)
            }
            (None, Incoming::One(req)) => Ok(req),
            (None, Incoming::Many(list)) => Ok(list.into_iter().next().unwrap_or_default()),
            (Some(index), incoming) if self.instance.kind(index) != HandlerKind::Blocking => {
                Ok(self.run_owned(index, incoming).await)
            }
            (handler, incoming) => {
                let this = self.clone();
                off_the_runtime(move || this.run_blocking(handler, incoming))
                    .await
                    .map_err(|e| Status::internal(format!("executor task failed: {e}")))
            }
        }
    }

    /// Decodes the documents: a join's merged by id, several requests' one after another and
    /// apart. A request that cannot be decoded comes back without documents, marked with the
    /// error.
    fn decode(&self, incoming: Incoming) -> (DataRequestProto, Option<Decoded>) {
        let mut sources: Vec<_> = incoming.parts().map(request::last_executor).collect();
        let decoded = match incoming {
            Incoming::One(req) => match request::docs(&req) {
                Ok(docs) => Ok((req, docs, None)),
                Err(e) => Err((req, e)),
            },
            // One request, as Python Jina's gateway hands a join on: its last executor is
            // the last parent's (the merged routes end with it).
            Incoming::Join(list) => request::merge(list).map(|(req, docs)| {
                sources = vec![request::last_executor(&req)];
                (req, docs, None)
            }),
            Incoming::Many(list) => {
                request::stack(list).map(|(req, docs, matrix)| (req, docs, Some(matrix)))
            }
        };
        match decoded {
            Ok((req, docs, matrix)) => (
                req,
                Some(Decoded {
                    docs,
                    matrix,
                    sources,
                }),
            ),
            Err((mut req, e)) => {
                self.fail(&mut req, HandlerError::new("DecodeError", e.to_string()));
                (req, None)
            }
        }
    }

    fn run_blocking(&self, handler: Option<usize>, incoming: Incoming) -> DataRequestProto {
        let (mut req, decoded) = self.decode(incoming);
        let Some(Decoded {
            mut docs, matrix, ..
        }) = decoded
        else {
            return req;
        };
        let Some(index) = handler else {
            request::set_docs(&mut req, docs); // a join with no handler: merged, unchanged
            return req;
        };
        let parameters = request::parameters(&req);
        let endpoint = request::endpoint(&req).to_string();
        let outcome = call_blocking_recorded(
            &self.instance,
            self.metrics.as_deref(),
            index,
            (&mut docs, matrix.as_deref()),
            &parameters,
            &endpoint,
        );
        match outcome {
            Ok(answer) => {
                request::set_docs(&mut req, answer.docs.unwrap_or(docs));
                if let Some(results) = answer.results {
                    request::set_results(&mut req, &self.instance.name, results);
                }
            }
            Err(e) => self.fail(&mut req, e),
        }
        req
    }

    /// Runs an async or streaming handler on the decoded documents.
    async fn run_owned(&self, index: usize, incoming: Incoming) -> DataRequestProto {
        let incoming = match incoming {
            Incoming::One(req) if self.instance.kind(index) == HandlerKind::Async => {
                return self.run_wire(index, req).await;
            }
            other => other,
        };
        let (mut req, decoded) = self.decode(incoming);
        let Some(decoded) = decoded else { return req };
        let parameters = request::parameters(&req);
        let endpoint = request::endpoint(&req).to_string();
        let (instance, metrics) = (self.instance.clone(), self.metrics.clone());
        let outcome = invoke(instance, metrics, index, decoded, parameters, endpoint).await;
        match outcome {
            Ok(answer) => {
                request::set_docs(&mut req, answer.docs.unwrap_or_default());
                if let Some(results) = answer.results {
                    request::set_results(&mut req, &self.instance.name, results);
                }
            }
            Err(e) => self.fail(&mut req, e),
        }
        req
    }

    /// Runs an async handler on one request's documents in the wire form: a runner that reads
    /// it (a hosted executor) gets them as decoded, no `Document` built, and its answer is
    /// written as it comes (see [`super::instance::Runner::call_wire`]).
    async fn run_wire(&self, index: usize, mut req: DataRequestProto) -> DataRequestProto {
        let docs = match request::doc_list(&req) {
            Ok(list) => list.docs,
            Err(e) => {
                self.fail(&mut req, HandlerError::new("DecodeError", e.to_string()));
                return req;
            }
        };
        let call = OwnedCall {
            docs,
            docs_matrix: None,
            sources: vec![request::last_executor(&req)],
            parameters: request::parameters(&req),
            endpoint: request::endpoint(&req).to_string(),
        };
        let (start, count) = (std::time::Instant::now(), call.docs.len());
        let answer = AssertUnwindSafe(self.instance.call_wire(index, call))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(panicked(panic)));
        if let Some(m) = &self.metrics {
            m.handler(request::endpoint(&req), start.elapsed(), count);
        }
        match answer {
            Ok(answer) => {
                let docs = answer.docs.unwrap_or_default();
                request::set_doc_list(&mut req, crate::proto::docarray::DocListProto { docs });
                if let Some(results) = answer.results {
                    request::set_results(&mut req, &self.instance.name, results);
                }
            }
            Err(e) => self.fail(&mut req, e),
        }
        req
    }

    /// Hands the request's documents to its endpoint's batch and answers with its part.
    async fn run_batched(&self, batcher: &Batcher, req: DataRequestProto) -> DataRequestProto {
        let (mut req, decoded) = self.decode(Incoming::One(req));
        let Some(Decoded { docs, .. }) = decoded else {
            return req;
        };
        match batcher.submit(docs, request::parameters(&req)).await {
            Ok(docs) => request::set_docs(&mut req, docs),
            Err(e) => self.fail(&mut req, e),
        }
        req
    }

    fn fail(&self, req: &mut DataRequestProto, e: HandlerError) {
        tracing::Span::current().record("otel.status_code", "ERROR");
        tracing::warn!("{} failed: {}", request::endpoint(req), e);
        let mut status = request::error_status(&e.name, &e.message, &self.instance.name);
        if let Some(description) = e.description {
            status.description = description;
        }
        if let Some(exception) = status.exception.as_mut() {
            exception.stacks = e.stacks;
        }
        request::set_error(req, status);
    }

    /// Answers `stream_doc`: what the endpoint's handler yields for the one document, a
    /// message each, as it comes; an error is the last message, with status ERROR.
    /// Its `request` span is a child of the trace context in `metadata` (the gateway's `call`
    /// span), when there is one, and lasts until the stream ends or is dropped.
    pub(crate) fn stream_doc(
        &self,
        req: SingleDocumentRequestProto,
        metadata: &tonic::metadata::MetadataMap,
    ) -> BoxStream<'static, SingleDocumentRequestProto> {
        let header = req.header.clone().unwrap_or_default();
        let span = self.request_span(&header.request_id, metadata);
        let endpoint = header.exec_endpoint.clone().unwrap_or_default();
        let reply = move |document: Option<Document>| SingleDocumentRequestProto {
            header: Some(HeaderProto {
                request_id: header.request_id.clone(),
                exec_endpoint: header.exec_endpoint.clone(),
                ..Default::default()
            }),
            parameters: None,
            routes: vec![],
            document: document.map(|d| d.to_proto()),
        };
        let Some(index) = self.instance.table.resolve(&endpoint) else {
            // No handler: the document comes back as it came, as Python Jina answers.
            return futures::stream::once(std::future::ready(req)).boxed();
        };
        let doc = Document::from_proto(req.document.unwrap_or_default());
        let parameters = req
            .parameters
            .as_ref()
            .map(request::struct_to_json)
            .unwrap_or_default();
        let logged = endpoint.clone();
        let docs = match self.instance.kind(index) {
            HandlerKind::Stream => {
                let stream = self
                    .instance
                    .call_stream(index, doc, &parameters, endpoint.clone());
                let caught = AssertUnwindSafe(stream)
                    .catch_unwind()
                    .map(|item| item.unwrap_or_else(|panic| Err(panicked(panic))));
                let recorded = Recorded::new(self.metrics.clone(), &endpoint);
                crate::metrics::record_stream(caught, recorded, |_, _| {})
            }
            // A plain handler: its answer, a document at a time.
            HandlerKind::Blocking | HandlerKind::Async => {
                let (instance, metrics) = (self.instance.clone(), self.metrics.clone());
                let call = invoke(
                    instance,
                    metrics,
                    index,
                    Decoded::one(DocumentArray::from(vec![doc])),
                    parameters,
                    endpoint,
                );
                futures::stream::once(tracing::Instrument::instrument(call, span.clone()))
                    .flat_map(|answer| match answer {
                        Ok(answer) => {
                            let docs = answer.docs.unwrap_or_default();
                            futures::stream::iter(docs.into_iter().map(Ok)).boxed()
                        }
                        Err(e) => futures::stream::once(std::future::ready(Err(e))).boxed(),
                    })
                    .boxed()
            }
        };
        let executor = self.instance.name.clone();
        let failing = span.clone();
        // Up to and including the first error.
        let messages = docs.scan(false, move |failed, item| {
            if *failed {
                return std::future::ready(None);
            }
            let message = match item {
                Ok(doc) => reply(Some(doc)),
                Err(e) => {
                    *failed = true;
                    failing.record("otel.status_code", "ERROR");
                    failing.in_scope(|| tracing::warn!("{logged} failed: {e}"));
                    let mut message = reply(None);
                    if let Some(h) = message.header.as_mut() {
                        h.status = Some(request::error_status(&e.name, &e.message, &executor));
                    }
                    message
                }
            };
            std::future::ready(Some(message))
        });
        crate::telemetry::poll_in_spans(messages.boxed(), vec![span])
    }

    /// The endpoints this executor answers, with a schema for each.
    pub(crate) fn endpoints(&self) -> EndpointsProto {
        let instance = &self.instance;
        let mut endpoints = vec![DRY_RUN_ENDPOINT.to_string()];
        if !instance.lists_default_only_when_bound()
            || instance.table.resolve(DEFAULT_ENDPOINT).is_some()
        {
            endpoints.push(DEFAULT_ENDPOINT.to_string());
        }
        for e in instance.table.endpoints() {
            if !endpoints.iter().any(|x| x == e) {
                endpoints.push(e.to_string());
            }
        }
        let schemas: Map<String, Value> = endpoints
            .iter()
            .map(|e| {
                let own = instance.endpoint_schema(e);
                (
                    e.clone(),
                    own.unwrap_or_else(|| schema::endpoint_schema(instance.streams(e))),
                )
            })
            .collect();
        EndpointsProto {
            endpoints,
            write_endpoints: vec![],
            schemas: Some(request::json_to_struct(&schemas)),
        }
    }
}

/// Runs blocking handler `index` here: a panic becomes an error; the call is recorded.
fn call_blocking_recorded(
    instance: &Instance,
    metrics: Option<&ExecutorMetrics>,
    index: usize,
    (docs, matrix): (&mut DocumentArray, Option<&[DocumentArray]>),
    parameters: &Parameters,
    endpoint: &str,
) -> Result<Answer, HandlerError> {
    let (start, count) = (std::time::Instant::now(), docs.len());
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        instance.call_blocking(index, docs, matrix, parameters, endpoint)
    }))
    .unwrap_or_else(|panic| Err(panicked(panic)));
    if let Some(m) = metrics {
        m.handler(endpoint, start.elapsed(), count);
    }
    outcome
}

/// Records one streamed call when dropped: at its end, or when the client went away
/// (`metrics::record_stream`).
struct Recorded {
    metrics: Option<Arc<ExecutorMetrics>>,
    endpoint: String,
    start: std::time::Instant,
}

impl Recorded {
    fn new(metrics: Option<Arc<ExecutorMetrics>>, endpoint: &str) -> Recorded {
        Recorded {
            metrics,
            endpoint: endpoint.to_string(),
            start: std::time::Instant::now(),
        }
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        if let Some(m) = &self.metrics {
            m.handler(&self.endpoint, self.start.elapsed(), 1);
        }
    }
}

/// Runs streaming handler `index` on each document in turn and gathers all that it yields; a
/// panic becomes an error.
async fn gather_stream(
    instance: &Instance,
    index: usize,
    docs: DocumentArray,
    parameters: &Parameters,
    endpoint: &str,
) -> Result<DocumentArray, HandlerError> {
    let mut gathered = DocumentArray::new();
    for doc in docs {
        let stream = instance.call_stream(index, doc, parameters, endpoint.to_string());
        let mut stream = AssertUnwindSafe(stream).catch_unwind();
        while let Some(item) = stream.next().await {
            gathered.push(item.unwrap_or_else(|panic| Err(panicked(panic)))?);
        }
    }
    Ok(gathered)
}

/// Runs handler `index` on owned documents (a batch, or a request to an async or streaming
/// handler): a blocking one where blocking is allowed, the others on this task. A panic
/// becomes an error; the call is recorded.
async fn invoke(
    instance: Arc<Instance>,
    metrics: Option<Arc<ExecutorMetrics>>,
    index: usize,
    Decoded {
        docs,
        matrix,
        sources,
    }: Decoded,
    parameters: Parameters,
    endpoint: String,
) -> Result<Answer, HandlerError> {
    let (start, count) = (std::time::Instant::now(), docs.len());
    let outcome = match instance.kind(index) {
        HandlerKind::Async => {
            let call = instance.call_async(
                index,
                OwnedCall {
                    docs,
                    docs_matrix: matrix,
                    sources,
                    parameters: parameters.clone(),
                    endpoint: endpoint.clone(),
                },
            );
            AssertUnwindSafe(call)
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(panicked(panic)))
        }
        HandlerKind::Stream => gather_stream(&instance, index, docs, &parameters, &endpoint)
            .await
            .map(|docs| Answer::docs(Some(docs))),
        // Recorded where it runs.
        HandlerKind::Blocking => {
            let run = move || {
                let mut docs = docs;
                let metrics = metrics.as_deref();
                let input = (&mut docs, matrix.as_deref());
                call_blocking_recorded(&instance, metrics, index, input, &parameters, &endpoint)
                    .map(|answer| Answer {
                        docs: Some(answer.docs.unwrap_or(docs)),
                        results: answer.results,
                    })
            };
            return off_the_runtime(run).await.unwrap_or_else(|e| {
                Err(HandlerError::new(
                    "RuntimeError",
                    format!("executor task failed: {e}"),
                ))
            });
        }
    };
    if let Some(m) = &metrics {
        m.handler(&endpoint, start.elapsed(), count);
    }
    outcome
}

/// A handler's panic as the error the response carries.
fn panicked(panic: Box<dyn std::any::Any + Send>) -> HandlerError {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "handler panicked".into());
    HandlerError::new("Panic", message)
}

/// Runs blocking work (a handler) off the async threads, in the caller's span: the one way a
/// blocking handler runs.
async fn off_the_runtime<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f)).await
}

#[tonic::async_trait]
impl JinaSingleDataRequestRpc for ExecutorService {
    async fn process_single_data(
        &self,
        req: tonic::Request<DataRequestProto>,
    ) -> Result<Response<DataRequestProto>, Status> {
        let metadata = req.metadata().clone();
        let arrived = crate::grpc::Admitted::of(req.extensions()).and_then(|a| a.next());
        let answer = self.answer(Incoming::One(req.into_inner()), &metadata, arrived);
        Ok(Response::new(answer.await?))
    }
}

#[tonic::async_trait]
impl JinaDataRequestRpc for ExecutorService {
    async fn process_data(
        &self,
        req: tonic::Request<DataRequestListProto>,
    ) -> Result<Response<DataRequestProto>, Status> {
        let metadata = req.metadata().clone();
        let arrived = crate::grpc::Admitted::of(req.extensions()).and_then(|a| a.next());
        let list = req.into_inner().requests;
        let incoming = match metadata.contains_key(JOIN_METADATA) {
            true => Incoming::Join(list),
            false => Incoming::Many(list),
        };
        let answer = self.answer(incoming, &metadata, arrived);
        Ok(Response::new(answer.await?))
    }
}

type DocStream = crate::grpc::ReplyStream<SingleDocumentRequestProto>;

#[tonic::async_trait]
impl JinaSingleDocumentRequestRpc for ExecutorService {
    type stream_docStream = DocStream;

    async fn stream_doc(
        &self,
        req: tonic::Request<SingleDocumentRequestProto>,
    ) -> Result<Response<DocStream>, Status> {
        let metadata = req.metadata().clone();
        let replies = ExecutorService::stream_doc(self, req.into_inner(), &metadata);
        Ok(Response::new(replies.map(Ok).boxed()))
    }
}

#[tonic::async_trait]
impl JinaDiscoverEndpointsRpc for ExecutorService {
    async fn endpoint_discovery(
        &self,
        _: tonic::Request<()>,
    ) -> Result<Response<EndpointsProto>, Status> {
        Ok(Response::new(self.endpoints()))
    }
}

#[tonic::async_trait]
impl JinaInfoRpc for ExecutorService {
    async fn status(&self, _: tonic::Request<()>) -> Result<Response<JinaInfoProto>, Status> {
        Ok(Response::new(crate::grpc::jina_info()))
    }
}

/// How an executor serves: TLS, the largest request it takes, and what it admits at once.
pub(crate) struct ServeSettings {
    pub tls: Option<crate::tls::ServerTls>,
    /// None: no limit (a Flow's own child: the gateway has checked every request).
    pub max_request_bytes: Option<usize>,
    /// Documents per request (each part of a join on its own) and memory in flight.
    pub admission: request::Admission,
}

/// Serves `service` on `listener` until `shutdown` resolves, then finishes the requests in
/// flight and returns.
pub(crate) async fn serve(
    service: ExecutorService,
    listener: TcpListener,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let limit = settings.max_request_bytes.unwrap_or(usize::MAX);
    // Each message takes room as it arrives (its bytes, and its answer's), before tonic
    // reads it; the handler grows that room to what decoding will take.
    let admit = crate::grpc::AdmitMessages::new(&settings.admission.budget, limit);
    let service = ExecutorService {
        admission: settings.admission,
        ..service
    };
    use tower::Layer;
    let routes = tonic::service::Routes::new(admit.layer(crate::limited!(
        JinaSingleDataRequestRpcServer::new(service.clone()),
        limit
    )))
    .add_service(admit.layer(crate::limited!(
        JinaDataRequestRpcServer::new(service.clone()),
        limit
    )))
    .add_service(crate::limited!(
        JinaSingleDocumentRequestRpcServer::new(service.clone()),
        limit
    ))
    .add_service(JinaDiscoverEndpointsRpcServer::new(service.clone()))
    .add_service(JinaInfoRpcServer::new(service));
    let options = crate::grpc::ServeOptions {
        tls: settings.tls,
        serving: None,
        // Handlers may run on the server's own thread (an async one, a Python host's quick
        // call): an answer must not wait for the turn that runs the next one.
        gather_writes: false,
    };
    crate::grpc::serve(routes, listener, options, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::{
        AsyncCall, BoxError, Entry, Executor, Metas, NoArgs, Requests, StreamCall,
    };
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Yields documents forever, one per millisecond; drops its guard when its stream is
    /// dropped.
    struct Forever {
        dropped: Arc<AtomicBool>,
    }

    struct Guard(Arc<AtomicBool>);

    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    static DROPPED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

    impl Executor for Forever {
        const NAME: &'static str = "Forever";
        type Args = NoArgs;
        fn new(_: NoArgs, _: &Metas) -> Result<Self, BoxError> {
            Ok(Forever {
                dropped: DROPPED.get_or_init(Arc::default).clone(),
            })
        }
        fn requests(r: &mut Requests<Self>) {
            r.on_stream("/forever", Self::forever);
        }
    }

    impl Forever {
        fn forever(
            self: Arc<Self>,
            _: StreamCall,
        ) -> impl futures::Stream<Item = Result<Document, HandlerError>> + use<> {
            let guard = Guard(self.dropped.clone());
            futures::stream::repeat(()).then(move |_| {
                let _held = &guard;
                async {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    Ok(Document::from_text("again"))
                }
            })
        }
    }

    /// Yields one document, then fails.
    struct Breaks;

    impl Executor for Breaks {
        const NAME: &'static str = "Breaks";
        type Args = NoArgs;
        fn new(_: NoArgs, _: &Metas) -> Result<Self, BoxError> {
            Ok(Breaks)
        }
        fn requests(r: &mut Requests<Self>) {
            r.on_stream("/breaks", Self::breaks);
        }
    }

    impl Breaks {
        fn breaks(
            self: Arc<Self>,
            _: StreamCall,
        ) -> impl futures::Stream<Item = Result<Document, HandlerError>> + use<> {
            futures::stream::iter([
                Ok(Document::from_text("one")),
                Err(HandlerError::new("ValueError", "broke")),
                Ok(Document::from_text("never sent")),
            ])
        }
    }

    #[tokio::test]
    async fn an_error_ends_the_stream_with_an_error_message_after_what_came_before() {
        let instance = Entry::of::<Breaks>()
            .instantiate("breaks".into(), &Map::new(), Metas::default(), [])
            .unwrap();
        let req =
            request::new_single_document_request("/breaks", &Document::from_text("x"), &Map::new());
        let replies: Vec<_> = ExecutorService::new(instance)
            .stream_doc(req, &Default::default())
            .collect()
            .await;
        assert_eq!(replies.len(), 2, "{replies:?}");
        let first = Document::from_proto(replies[0].document.clone().unwrap());
        assert_eq!(first.text.as_deref(), Some("one"));
        let status = replies[1].header.as_ref().unwrap().status.clone().unwrap();
        assert_eq!(status.code, 1);
        let exception = status.exception.unwrap();
        assert_eq!(
            (exception.name.as_str(), exception.executor.as_str()),
            ("ValueError", "breaks")
        );
        assert_eq!(exception.args, ["broke"]);
    }

    fn service() -> ExecutorService {
        let instance = Entry::of::<Forever>()
            .instantiate("forever".into(), &Map::new(), Metas::default(), [])
            .unwrap();
        ExecutorService::new(instance)
    }

    #[tokio::test]
    async fn dropping_a_stream_drops_the_handlers_stream() {
        let service = service();
        let req = request::new_single_document_request(
            "/forever",
            &Document::from_text("x"),
            &Map::new(),
        );
        let mut replies = service.stream_doc(req, &Default::default());
        for _ in 0..3 {
            let reply = replies.next().await.unwrap();
            assert_eq!(
                reply
                    .document
                    .map(Document::from_proto)
                    .unwrap()
                    .text
                    .as_deref(),
                Some("again")
            );
        }
        let dropped = DROPPED.get().unwrap();
        assert!(!dropped.load(Ordering::SeqCst));
        drop(replies);
        assert!(
            dropped.load(Ordering::SeqCst),
            "the handler's stream lives on"
        );
    }

    /// Answers every endpoint with an async handler.
    struct Shouts;

    impl Executor for Shouts {
        const NAME: &'static str = "Shouts";
        type Args = NoArgs;
        fn new(_: NoArgs, _: &Metas) -> Result<Self, BoxError> {
            Ok(Shouts)
        }
        fn requests(r: &mut Requests<Self>) {
            r.default_async(Self::shout);
        }
    }

    impl Shouts {
        async fn shout(self: Arc<Self>, call: AsyncCall) -> Result<DocumentArray, HandlerError> {
            let mut docs = call.docs;
            for doc in docs.iter_mut() {
                doc.text = doc.text.as_deref().map(str::to_uppercase);
            }
            Ok(docs)
        }
    }

    #[tokio::test]
    async fn a_default_async_handler_answers_every_endpoint() {
        let instance = Entry::of::<Shouts>()
            .instantiate("shouts".into(), &Map::new(), Metas::default(), [])
            .unwrap();
        let service = ExecutorService::new(instance);
        for endpoint in ["/", "/anything"] {
            let docs: DocumentArray = vec![Document::from_text("hi")].into();
            let req = request::new_request(endpoint, &docs, &Map::new());
            let answer = service
                .answer(Incoming::One(req), &Default::default(), None)
                .await
                .unwrap();
            let docs = request::docs(&answer).unwrap();
            assert_eq!(docs.iter().next().unwrap().text.as_deref(), Some("HI"));
        }
    }

    #[test]
    fn endpoint_discovery_marks_a_streaming_endpoint_a_generator() {
        let found = service().endpoints();
        let schemas = request::struct_to_json(&found.schemas.unwrap());
        assert_eq!(schemas["/forever"]["is_generator"], true);
        assert_eq!(schemas["/default"]["is_generator"], false);
    }
}
