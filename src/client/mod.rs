//! The client: sends documents to a gateway in batches and hands back the answers.
//!
//! It owns the client side of the conversation: connecting over gRPC, HTTP or WebSocket
//! (`transport`), turning inputs into documents (`inputs`), cutting them into requests of
//! `request_size`, the reference's callbacks (`on_done`, `on_error`, `on_always`), progress,
//! and the summary; and streaming one document to a streaming endpoint (`stream_doc`). It
//! knows nothing about Flows or executors beyond the wire.
//!
//! Memory is bounded by the requests in flight (`prefetch`, and `max_in_flight_bytes`), not by
//! the input: documents are read lazily on a thread of their own and encoded as they are read,
//! at most one request ahead of those in flight, and answers are handed to the callbacks and
//! dropped unless `return_results` asks to keep them.

pub mod inputs;
mod transport;

pub use inputs::{Documents, FieldResolver, InputError, InputFormat};
pub use transport::Transport;
pub(crate) use transport::mismatch_hint;

use crate::document::{Document, DocumentArray};
use crate::flow::Protocol;
use crate::proto::jina::{DataRequestProto, RouteProto, StatusProto};
use crate::request;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;

/// What can go wrong for a client, each a one-line message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Connect(String),
    #[error("{0}")]
    Transport(String),
    #[error(transparent)]
    Input(#[from] InputError),
    /// A request came back with status ERROR (and `continue_on_error` was off).
    #[error("request {request_id} failed in {executor}: {message}")]
    Failed {
        request_id: String,
        executor: String,
        message: String,
    },
}

/// One answer from the gateway.
#[derive(Clone, Debug)]
pub struct Response {
    pub proto: DataRequestProto,
}

impl Response {
    /// The documents it carries.
    pub fn docs(&self) -> Result<DocumentArray, prost::DecodeError> {
        request::docs(&self.proto)
    }

    /// The request's id, as the gateway gave it or the client sent it.
    pub fn request_id(&self) -> &str {
        self.proto
            .header
            .as_ref()
            .map(|h| h.request_id.as_str())
            .unwrap_or_default()
    }

    /// The status the Flow answered with, if it set one.
    pub fn status(&self) -> Option<&StatusProto> {
        self.proto.header.as_ref().and_then(|h| h.status.as_ref())
    }

    /// Whether the Flow answered with an ERROR status.
    pub fn is_error(&self) -> bool {
        request::is_error(&self.proto)
    }

    /// The executors the request visited, the gateway first, each with its start and end time.
    pub fn routes(&self) -> &[RouteProto] {
        &self.proto.routes
    }

    /// The answer's parameters (the client's, with the executors' `__results__`), as JSON.
    pub fn parameters(&self) -> Map<String, Value> {
        request::parameters(&self.proto)
    }

    /// The failure as an error value (for a response with status ERROR).
    pub fn error(&self) -> ClientError {
        let status = self.status();
        let exception = status.and_then(|s| s.exception.as_ref());
        ClientError::Failed {
            request_id: self.request_id().to_string(),
            executor: exception
                .map(|e| e.executor.clone())
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "the flow".into()),
            message: match exception {
                Some(e) => format!("{}: {}", e.name, e.args.join(", ")),
                None => status.map(|s| s.description.clone()).unwrap_or_default(),
            },
        }
    }
}

/// `<Response request_id=... status=SUCCESS docs=10 routes=[gateway, encoder]>`
impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let docs = self.docs().map(|d| d.len()).unwrap_or(0);
        let routes: Vec<&str> = self.routes().iter().map(|r| r.executor.as_str()).collect();
        let status = if self.is_error() { "ERROR" } else { "SUCCESS" };
        write!(
            f,
            "<Response request_id={} status={status} docs={docs} routes=[{}]>",
            self.request_id(),
            routes.join(", ")
        )
    }
}

/// What to send: documents (any number, lazily) or nothing (one parameters-only request).
pub enum Inputs {
    Nothing,
    /// Documents already in memory: batched where they are, no reader thread.
    Ready(Vec<Document>),
    /// Documents read lazily (a file, a generator) on a thread of their own.
    Documents(Documents),
    Stream(BoxStream<'static, Result<Document, InputError>>),
}

impl Inputs {
    /// Documents from any iterator (the reference's generator input).
    pub fn iter(docs: impl Iterator<Item = Document> + Send + 'static) -> Inputs {
        Inputs::Documents(Box::new(docs.map(Ok)))
    }

    /// Documents from an async stream (the reference's AsyncFlow with async inputs).
    pub fn stream(docs: impl Stream<Item = Document> + Send + 'static) -> Inputs {
        Inputs::Stream(docs.map(Ok).boxed())
    }
}

impl From<Document> for Inputs {
    fn from(d: Document) -> Self {
        Inputs::Ready(vec![d])
    }
}

impl From<Vec<Document>> for Inputs {
    fn from(d: Vec<Document>) -> Self {
        Inputs::Ready(d)
    }
}

impl From<DocumentArray> for Inputs {
    fn from(d: DocumentArray) -> Self {
        Inputs::Ready(d.into_vec())
    }
}

impl From<Documents> for Inputs {
    fn from(d: Documents) -> Self {
        Inputs::Documents(d)
    }
}

type Callback = Box<dyn FnMut(&Response) + Send>;

/// What a request's documents may weigh before it is sent, unless the caller says
/// (`PostOptions::request_bytes`): big enough that small documents go `request_size` at a
/// time, small enough that big ones are several requests in flight.
pub const DEFAULT_REQUEST_BYTES: usize = 1 << 20;

/// When a request is full: `request_size` documents, or `request_bytes` of them.
#[derive(Clone, Copy)]
struct Fill {
    docs: usize,
    bytes: usize,
}

impl Fill {
    fn of(options: &PostOptions) -> Fill {
        Fill {
            docs: options.request_size,
            bytes: options.request_bytes,
        }
    }

    /// 0 documents: everything in one request, whatever it weighs.
    fn is_full(&self, writer: &request::DocsWriter) -> bool {
        self.docs > 0
            && (writer.docs() >= self.docs || (self.bytes > 0 && writer.len() >= self.bytes))
    }
}

/// The reference's post options. `Default` gives Jina's defaults, and a cap on a request's
/// bytes (`request_bytes`) Jina does not have.
pub struct PostOptions {
    pub parameters: Map<String, Value>,
    /// A regex of executor names (the reference's `target_peapod`).
    pub target_executor: Option<String>,
    /// Documents per request; 0 sends everything in one request.
    pub request_size: usize,
    /// A request is sent once its documents reach this many bytes, with fewer than
    /// `request_size` documents (0: no cap; with `request_size` 0 there is none either):
    /// 100 documents of 100 KB would be a 10 MB request, which the gateway and the executor
    /// could only take one after the other.
    pub request_bytes: usize,
    /// Requests in flight at most.
    pub prefetch: usize,
    /// Bytes of requests in flight at most (0: no limit): with big documents, what bounds the
    /// client's memory and the gateway's.
    pub max_in_flight_bytes: usize,
    pub show_progress: bool,
    /// How many documents the inputs hold, when known: the progress bar then shows a total,
    /// the percent done and an ETA (else a rate).
    pub total_docs: Option<u64>,
    /// Go on after a request fails (its callbacks still run) instead of stopping with an error.
    pub continue_on_error: bool,
    /// Keep every response and return them (memory grows with the input: use with care).
    pub return_results: bool,
    /// Hand the answers over in the order the requests were sent (Jina 3's
    /// `results_in_order`), not as they complete; at most `prefetch` wait for an earlier one.
    pub results_in_order: bool,
    pub on_done: Option<Callback>,
    pub on_error: Option<Callback>,
    pub on_always: Option<Callback>,
}

impl Default for PostOptions {
    fn default() -> Self {
        PostOptions {
            parameters: Map::new(),
            target_executor: None,
            request_size: 100,
            request_bytes: DEFAULT_REQUEST_BYTES,
            prefetch: 1000,
            max_in_flight_bytes: request::DEFAULT_IN_FLIGHT_BYTES,
            show_progress: false,
            total_docs: None,
            continue_on_error: false,
            return_results: false,
            results_in_order: false,
            on_done: None,
            on_error: None,
            on_always: None,
        }
    }
}

impl PostOptions {
    /// Calls `f` with each answer that succeeded (the reference's `on_done`).
    pub fn on_done(mut self, f: impl FnMut(&Response) + Send + 'static) -> Self {
        self.on_done = Some(Box::new(f));
        self
    }
    /// Calls `f` with each answer that failed (the reference's `on_error`).
    pub fn on_error(mut self, f: impl FnMut(&Response) + Send + 'static) -> Self {
        self.on_error = Some(Box::new(f));
        self
    }
    /// Calls `f` with every answer (the reference's `on_always`).
    pub fn on_always(mut self, f: impl FnMut(&Response) + Send + 'static) -> Self {
        self.on_always = Some(Box::new(f));
        self
    }
}

/// What a post did.
#[derive(Debug, Default)]
pub struct PostSummary {
    pub requests: usize,
    pub docs: usize,
    pub failed: usize,
    pub elapsed: Duration,
    /// The responses, when `return_results` was set.
    pub results: Vec<Response>,
}

impl PostSummary {
    /// The closing line, like the reference's: requests, time, rates, failures.
    pub fn line(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        format!(
            "🎉 done: {} requests ({} docs) in {:.2?}, {:.1} requests/s, {:.0} docs/s, {} failed",
            self.requests,
            self.docs,
            self.elapsed,
            self.requests as f64 / secs,
            self.docs as f64 / secs,
            self.failed
        )
    }
}

/// The reference's CRUD shortcuts (`index = partialmethod(post, '/index')`, and `search`,
/// `update`, `delete`) for a type with a `post(on, inputs, options)`, async or blocking.
#[macro_export]
macro_rules! crud_shortcuts {
    (async) => {
        $crate::crud_shortcuts!(@each [async] [.await]);
    };
    (blocking) => {
        $crate::crud_shortcuts!(@each [] []);
    };
    (@each [$($async:tt)?] [$($await:tt)*]) => {
        $crate::crud_shortcuts!(@one index "/index" [$($async)?] [$($await)*]);
        $crate::crud_shortcuts!(@one search "/search" [$($async)?] [$($await)*]);
        $crate::crud_shortcuts!(@one update "/update" [$($async)?] [$($await)*]);
        $crate::crud_shortcuts!(@one delete "/delete" [$($async)?] [$($await)*]);
    };
    (@one $name:ident $on:literal [$($async:tt)?] [$($await:tt)*]) => {
        #[doc = concat!("`post(\"", $on, "\", ...)`")]
        pub $($async)? fn $name(
            &self,
            inputs: impl Into<$crate::client::Inputs>,
            options: $crate::client::PostOptions,
        ) -> Result<$crate::client::PostSummary, $crate::client::ClientError> {
            self.post($on, inputs, options)$($await)*
        }
    };
}

/// A client of one gateway.
#[derive(Clone)]
pub struct Client {
    transport: Transport,
}

/// How long connecting may take before the client gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Client {
    /// Connects to the gateway at `host:port` over `protocol`, waiting at most the default connect timeout.
    pub async fn connect(protocol: Protocol, host: &str, port: u16) -> Result<Client, ClientError> {
        Self::connect_timeout(protocol, host, port, CONNECT_TIMEOUT).await
    }

    /// [`Client::connect`], waiting at most `timeout` for the connection.
    pub async fn connect_timeout(
        protocol: Protocol,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        Self::connect_tls(protocol, host, port, timeout, None).await
    }

    /// Connects over TLS (gRPC with TLS, HTTPS, WSS) when `tls` says whom to trust.
    pub async fn connect_tls(
        protocol: Protocol,
        host: &str,
        port: u16,
        timeout: Duration,
        tls: Option<&crate::tls::ClientTls>,
    ) -> Result<Client, ClientError> {
        Ok(Client {
            transport: Transport::connect(protocol, host, port, timeout, tls).await?,
        })
    }

    /// Sends ready-made requests; answers come as they complete (the raw streaming API).
    pub fn stream(
        &self,
        requests: impl Stream<Item = DataRequestProto> + Send + 'static,
        prefetch: usize,
    ) -> BoxStream<'static, Result<Response, ClientError>> {
        self.transport
            .send(requests, prefetch)
            .map(|r| r.map(|proto| Response { proto }))
            .boxed()
    }

    /// [`Client::stream`] for requests that each hold their room in the byte budget: the room
    /// is given back when the request's answer comes.
    fn send_admitted(
        &self,
        requests: BoxStream<'static, Admitted>,
        prefetch: usize,
    ) -> BoxStream<'static, Result<Response, ClientError>> {
        use std::collections::VecDeque;
        let held = Arc::new(Mutex::new(VecDeque::<(String, OwnedSemaphorePermit)>::new()));
        let hold = held.clone();
        let requests = requests.map(move |Admitted { request, room }| {
            let id = request::request_id(&request).to_string();
            hold.lock().unwrap().push_back((id, room));
            request
        });
        self.stream(requests, prefetch)
            .inspect(move |answer| {
                let mut held = held.lock().unwrap();
                // The answer's own request gives its room back; an answer without a known id
                // frees the oldest, so that the budget can never stay spent.
                let at = answer
                    .as_ref()
                    .ok()
                    .and_then(|a| held.iter().position(|(id, _)| id == a.request_id()));
                match at {
                    Some(i) => drop(held.remove(i)),
                    None => drop(held.pop_front()),
                }
            })
            .boxed()
    }

    /// Posts `inputs` to endpoint `on` in requests of `request_size` documents, running the
    /// callbacks on each answer.
    pub async fn post(
        &self,
        on: &str,
        inputs: impl Into<Inputs>,
        options: PostOptions,
    ) -> Result<PostSummary, ClientError> {
        use tracing::Instrument;
        // With traces on, the post is a `client` span, and the Flow's spans join it (gRPC).
        let span = tracing::info_span!("client", otel.name = "client", endpoint = %on);
        self.post_in_span(on, inputs.into(), options)
            .instrument(span)
            .await
    }

    async fn post_in_span(
        &self,
        on: &str,
        inputs: Inputs,
        mut options: PostOptions,
    ) -> Result<PostSummary, ClientError> {
        let started = Instant::now();
        let (mut answers, docs_sent) = self.responses(on, inputs, &options);
        let progress = options
            .show_progress
            .then(|| progress_bar(options.total_docs));
        let mut summary = PostSummary::default();
        while let Some(answer) = answers.next().await {
            let response = answer?;
            summary.requests += 1;
            summary.docs = docs_sent.load(Ordering::Relaxed);
            if let Some(bar) = &progress {
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                match options.total_docs {
                    Some(_) => bar.inc(request::doc_count(&response.proto) as u64),
                    None => bar.set_position(summary.requests as u64),
                }
                bar.set_message(format!(
                    "{:.0} docs/s, {:.1} requests/s",
                    summary.docs as f64 / secs,
                    summary.requests as f64 / secs
                ));
            }
            let failed = response.is_error();
            let callback = if failed {
                &mut options.on_error
            } else {
                &mut options.on_done
            };
            if let Some(f) = callback {
                f(&response);
            }
            if let Some(f) = &mut options.on_always {
                f(&response);
            }
            if failed {
                summary.failed += 1;
                if !options.continue_on_error {
                    if let Some(bar) = &progress {
                        bar.abandon();
                    }
                    return Err(response.error());
                }
            }
            if options.return_results {
                summary.results.push(response);
            }
        }
        summary.elapsed = started.elapsed();
        if let Some(bar) = progress {
            bar.finish_and_clear();
            eprintln!("{}", summary.line());
        }
        Ok(summary)
    }

    /// The answers to a post as an async stream, as they complete (the reference's
    /// `async for resp in f.post(...)`). Callbacks and progress in `options` are not used here;
    /// a bad input ends the stream with its error.
    pub fn post_stream(
        &self,
        on: &str,
        inputs: impl Into<Inputs>,
        options: &PostOptions,
    ) -> BoxStream<'static, Result<Response, ClientError>> {
        self.responses(on, inputs.into(), options).0
    }

    /// Streams one document to a streaming endpoint `on` (the reference's `stream_doc`): the
    /// documents it yields, each as soon as it arrives. A failure ends the stream with its
    /// error. Dropping the stream cancels the executor's handler. Over HTTP the request can
    /// carry no `parameters` (as Python Jina's).
    pub fn stream_doc(
        &self,
        on: &str,
        doc: &Document,
        parameters: &Map<String, Value>,
    ) -> BoxStream<'static, Result<Document, ClientError>> {
        let req = request::new_single_document_request(on, doc, parameters);
        self.transport.stream_doc(req)
    }

    /// The answers, then the input's error if it had one; and a count of documents sent.
    fn responses(
        &self,
        on: &str,
        inputs: Inputs,
        options: &PostOptions,
    ) -> (
        BoxStream<'static, Result<Response, ClientError>>,
        Arc<AtomicUsize>,
    ) {
        let input_error = Arc::new(Mutex::new(None::<InputError>));
        let docs_sent = Arc::new(AtomicUsize::new(0));
        let requests = requests(on, inputs, options, input_error.clone(), docs_sent.clone());
        let trailer = futures::stream::once(async move { input_error.lock().unwrap().take() })
            .filter_map(|e| futures::future::ready(e.map(|e| Err(ClientError::from(e)))));
        let prefetch = options.prefetch;
        let answers = if options.results_in_order {
            in_order(requests, |requests| self.send_admitted(requests, prefetch))
        } else {
            self.send_admitted(requests, prefetch)
        };
        (answers.chain(trailer).boxed(), docs_sent)
    }

    crate::crud_shortcuts!(async);
}

/// Sends `requests` through `send` and hands the answers back in the order the requests were
/// sent: each request's id gets its position as it goes out; an answer that comes early waits
/// for those before it. Errors pass at once.
fn in_order<R: std::borrow::Borrow<DataRequestProto> + Send + 'static>(
    requests: BoxStream<'static, R>,
    send: impl FnOnce(BoxStream<'static, R>) -> BoxStream<'static, Result<Response, ClientError>>,
) -> BoxStream<'static, Result<Response, ClientError>> {
    use std::collections::{BTreeMap, HashMap};
    let positions = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
    let record = positions.clone();
    let mut sent = 0u64;
    let requests = requests
        .inspect(move |r| {
            let id = request::request_id(r.borrow()).to_string();
            record.lock().unwrap().insert(id, sent);
            sent += 1;
        })
        .boxed();
    let mut next = 0u64;
    let mut waiting = BTreeMap::<u64, Response>::new();
    send(requests)
        .flat_map(move |answer| {
            let ready: Vec<Result<Response, ClientError>> = match answer {
                Err(e) => vec![Err(e)],
                Ok(response) => {
                    let at = positions.lock().unwrap().remove(response.request_id());
                    match at {
                        // An answer we cannot place (no id echoed) goes on as it is.
                        None => vec![Ok(response)],
                        Some(at) => {
                            waiting.insert(at, response);
                            let mut out = vec![];
                            while let Some(r) = waiting.remove(&next) {
                                out.push(Ok(r));
                                next += 1;
                            }
                            out
                        }
                    }
                }
            };
            futures::stream::iter(ready)
        })
        .boxed()
}

/// A bar over the documents when their number is known (total, percent, ETA), else a spinner
/// counting requests.
fn progress_bar(total_docs: Option<u64>) -> indicatif::ProgressBar {
    let (bar, template) = match total_docs {
        Some(total) => (
            indicatif::ProgressBar::new(total),
            "{bar:30} {pos}/{len} docs {percent}% ETA {eta} ({msg}) [{elapsed}]",
        ),
        None => (
            indicatif::ProgressBar::new_spinner(),
            "{spinner} {pos} requests done, {msg} [{elapsed}]",
        ),
    };
    bar.set_style(indicatif::ProgressStyle::with_template(template).expect("a valid template"));
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// A request's worth of documents, already encoded as a request's `data`.
struct Batch {
    docs: usize,
    data: bytes::Bytes,
}

impl From<request::DocsWriter> for Batch {
    fn from(writer: request::DocsWriter) -> Batch {
        Batch {
            docs: writer.docs(),
            data: writer.finish(),
        }
    }
}

/// A batch holding its room in the byte budget, from before its request is made until the
/// request's answer comes.
type AdmittedBatch = (Batch, OwnedSemaphorePermit);

/// A request holding its room in the byte budget until its answer comes.
struct Admitted {
    request: DataRequestProto,
    room: OwnedSemaphorePermit,
}

impl std::borrow::Borrow<DataRequestProto> for Admitted {
    fn borrow(&self) -> &DataRequestProto {
        &self.request
    }
}

/// Batches read on their own thread (a blocking file read never stalls the async runtime),
/// each encoded as its documents are read: a document is dropped once written, so a batch
/// never exists twice. The thread waits for the batch's room in the byte budget before it
/// reads on, so that what is read ahead is bounded by the budget too: at most one batch
/// beyond it.
fn batches(
    docs: Documents,
    fill: Fill,
    budget: request::ByteBudget,
) -> BoxStream<'static, Result<AdmittedBatch, InputError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    std::thread::spawn(move || {
        let send = |batch: Batch| {
            let room = futures::executor::block_on(budget.admit_bytes(batch.data.len()));
            tx.blocking_send(Ok((batch, room))).is_ok()
        };
        // The largest batch so far: the next is written into one buffer of about that much.
        let mut room = 0;
        let mut writer = request::DocsWriter::default();
        for doc in docs {
            match doc {
                Ok(d) => writer.push(&d.into_proto()),
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
            if fill.is_full(&writer) {
                room = room.max(writer.len() + writer.len() / 16);
                if !send(Batch::from(std::mem::take(&mut writer))) {
                    return;
                }
                writer = request::DocsWriter::with_capacity(room);
            }
        }
        if writer.docs() > 0 {
            send(Batch::from(writer));
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
}

/// The requests of a post, made lazily, each admitted to the byte budget before it is made.
/// An input error ends them and is kept for the caller.
fn requests(
    on: &str,
    inputs: Inputs,
    options: &PostOptions,
    input_error: Arc<Mutex<Option<InputError>>>,
    docs_sent: Arc<AtomicUsize>,
) -> BoxStream<'static, Admitted> {
    let budget = request::ByteBudget::new(options.max_in_flight_bytes);
    let encoded = match inputs {
        Inputs::Nothing => {
            let empty = Batch::from(request::DocsWriter::default());
            futures::stream::once(async { Ok(empty) }).boxed()
        }
        Inputs::Ready(docs) => {
            let fill = Fill::of(options);
            let mut docs = docs.into_iter().peekable();
            let chunks = std::iter::from_fn(move || {
                docs.peek()?;
                let mut writer = request::DocsWriter::default();
                for doc in docs.by_ref() {
                    writer.push(&doc.into_proto());
                    if fill.is_full(&writer) {
                        break;
                    }
                }
                Some(Ok(Batch::from(writer)))
            });
            futures::stream::iter(chunks).boxed()
        }
        Inputs::Documents(docs) => {
            return made_requests(
                batches(docs, Fill::of(options), budget),
                on,
                options,
                input_error,
                docs_sent,
            );
        }
        Inputs::Stream(docs) => {
            let fill = Fill::of(options);
            // (the documents, the request being filled; None once the documents ended)
            let start = (docs, Some(request::DocsWriter::default()));
            futures::stream::unfold(start, move |(mut docs, writer)| async move {
                let mut writer = writer?;
                while let Some(doc) = docs.next().await {
                    match doc {
                        Ok(d) => writer.push(&d.into_proto()),
                        Err(e) => return Some((Err(e), (docs, None))),
                    }
                    if fill.is_full(&writer) {
                        let next = Some(request::DocsWriter::default());
                        return Some((Ok(Batch::from(writer)), (docs, next)));
                    }
                }
                (writer.docs() > 0).then(|| (Ok(Batch::from(writer)), (docs, None)))
            })
            .boxed()
        }
    };
    let admitted = encoded
        .then(move |batch| {
            let budget = budget.clone();
            async move {
                let batch = batch?;
                let room = budget.admit_bytes(batch.data.len()).await;
                Ok((batch, room))
            }
        })
        .boxed();
    made_requests(admitted, on, options, input_error, docs_sent)
}

/// Each admitted batch as a request to `on`, until the first input error.
fn made_requests(
    batches: BoxStream<'static, Result<AdmittedBatch, InputError>>,
    on: &str,
    options: &PostOptions,
    input_error: Arc<Mutex<Option<InputError>>>,
    docs_sent: Arc<AtomicUsize>,
) -> BoxStream<'static, Admitted> {
    let (on, parameters, target) = (
        on.to_string(),
        options.parameters.clone(),
        options.target_executor.clone(),
    );
    tokio_stream::StreamExt::map_while(batches, move |batch| match batch {
        Ok((batch, room)) => {
            docs_sent.fetch_add(batch.docs, Ordering::Relaxed);
            let mut request = request::new_request_with_data(&on, batch.data, &parameters);
            request::header_mut(&mut request).target_executor = target.clone();
            Some(Admitted { request, room })
        }
        Err(e) => {
            *input_error.lock().unwrap() = Some(e);
            None
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reader reads on only when its last batch has room in the budget: with the first
    /// batch held (its answer not come), it reads at most one more batch and waits.
    #[tokio::test]
    async fn the_reader_waits_for_room_in_the_budget_before_reading_on() {
        let read = Arc::new(AtomicUsize::new(0));
        let counter = read.clone();
        let docs: Documents = Box::new((0..1000).map(move |i| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(Document::from_text(format!("{i:04}{}", "x".repeat(10_000))))
        }));
        // Batches of 10 documents (about 100 KB); room for one of them.
        let fill = Fill { docs: 10, bytes: 0 };
        let mut batches = batches(docs, fill, request::ByteBudget::new(150 * 1024));
        let (first, room) = batches.next().await.unwrap().unwrap();
        assert_eq!(first.docs, 10);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after_first = read.load(Ordering::SeqCst);
        assert!(
            (11..=20).contains(&after_first),
            "read {after_first} documents while one batch is in flight"
        );
        drop(room);
        let (second, room) = batches.next().await.unwrap().unwrap();
        assert_eq!(second.docs, 10);
        drop(room);
        let mut rest = 0;
        while let Some(batch) = batches.next().await {
            rest += batch.unwrap().0.docs;
        }
        assert_eq!(rest, 980);
    }

    /// Documents of 300 KB, 100 per request and a 1 MiB cap: 4 documents per request (the
    /// one that reaches the cap is its last), whichever way the inputs come; 0 per request is
    /// one request whatever it weighs.
    #[tokio::test]
    async fn a_request_is_sent_once_its_documents_reach_request_bytes() {
        let doc = |i: usize| Document::from_text(format!("{i:04}{}", "x".repeat(300_000)));
        let sizes = |inputs: Inputs, request_size: usize| {
            let options = PostOptions {
                request_size,
                ..Default::default()
            };
            let made = requests(
                "/",
                inputs,
                &options,
                Arc::default(),
                Arc::new(AtomicUsize::new(0)),
            );
            made.map(|a| request::doc_count(&a.request))
                .collect::<Vec<_>>()
        };
        let ready = || Inputs::Ready((0..10).map(doc).collect());
        let stream = || Inputs::Stream(futures::stream::iter((0..10).map(doc).map(Ok)).boxed());
        let read = || Inputs::Documents(Box::new((0..10).map(doc).map(Ok)));
        for inputs in [ready(), stream(), read()] {
            assert_eq!(sizes(inputs, 100).await, vec![4, 4, 2]);
        }
        assert_eq!(sizes(ready(), 0).await, vec![10]);
        assert_eq!(sizes(ready(), 3).await, vec![3, 3, 3, 1]);
    }

    #[tokio::test]
    async fn in_order_hands_answers_back_in_the_order_sent() {
        let requests: Vec<DataRequestProto> = (0..5)
            .map(|i| {
                let mut r = request::new_request("/", &DocumentArray::new(), &Map::new());
                r.header.as_mut().unwrap().request_id = format!("r{i}");
                r
            })
            .collect();
        // A gateway that answers the last request first.
        let reversed = |requests: BoxStream<'static, DataRequestProto>| {
            futures::stream::once(async move {
                let mut all: Vec<DataRequestProto> = requests.collect().await;
                all.reverse();
                futures::stream::iter(all.into_iter().map(|proto| Ok(Response { proto })))
            })
            .flatten()
            .boxed()
        };
        let ids: Vec<String> = in_order(futures::stream::iter(requests).boxed(), reversed)
            .map(|r| r.unwrap().request_id().to_string())
            .collect()
            .await;
        assert_eq!(ids, ["r0", "r1", "r2", "r3", "r4"]);
    }
}
