//! The path of one request through the Flow's graph.
//!
//! Every executor becomes one shared future that waits for its parents' answers and then calls
//! the executor; the futures of the leaves are awaited, which drives the whole graph. So
//! executors whose needs are met run at once, a join waits for all its parents (and gets them
//! as one `process_data`), and an error stops the branch it happened on and comes back to the
//! client. The request's documents stay encoded bytes here: the gateway never decodes them
//! except to merge.
//!
//! A streamed document (`stream_doc`) does not walk the graph: it goes to the one executor
//! that streams its endpoint (its handler is a generator, as endpoint discovery says), or the
//! one `target_executor` names, and what that executor yields comes back as it is yielded.

use super::deployment::{self, Deployment};
use crate::flow::Graph;
use crate::proto::jina::{
    DataRequestProto, EndpointsProto, RouteProto, SingleDocumentRequestProto, StatusProto,
};
use crate::request;
use futures::stream::BoxStream;
use prost_types::{Struct, value::Kind};
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tracing::Instrument;

/// The graph and its executors: routes requests. Cheap to share behind an `Arc`.
pub(crate) struct Router {
    graph: Graph,
    deployments: Vec<Arc<Deployment>>,
    /// Where requests and calls are recorded, with monitoring on.
    metrics: Option<Arc<crate::metrics::GatewayMetrics>>,
    /// What each executor answers, as it first said (for `stream_doc`).
    discovered: tokio::sync::OnceCell<Vec<Discovered>>,
    /// The `target_executor` patterns met so far, compiled.
    patterns: Mutex<std::collections::HashMap<String, Arc<regex::Regex>>>,
}

/// The router requests go through now. A reload swaps it whole, between requests: each
/// request takes the router of its moment and keeps it to its end, so a request never sees
/// half of one graph and half of another, and the old router is dropped (its executors'
/// connections closed) once its last request is answered. A reload that must close an
/// executor before its replacement opens pauses it: requests arriving meanwhile wait here.
#[derive(Clone)]
pub(crate) struct Routing(Arc<RoutingState>);

struct RoutingState {
    router: tokio::sync::watch::Sender<Arc<Router>>,
    paused: tokio::sync::watch::Sender<bool>,
}

impl Routing {
    pub(crate) fn new(router: Arc<Router>) -> Routing {
        Routing(Arc::new(RoutingState {
            router: tokio::sync::watch::channel(router).0,
            paused: tokio::sync::watch::channel(false).0,
        }))
    }

    /// The router for a request arriving now (once a pause is over).
    pub(crate) async fn current(&self) -> Arc<Router> {
        if *self.0.paused.borrow() {
            let mut paused = self.0.paused.subscribe();
            let _ = paused.wait_for(|p| !*p).await;
        }
        self.peek()
    }

    /// The router in use, paused or not.
    pub(crate) fn peek(&self) -> Arc<Router> {
        self.0.router.borrow().clone()
    }

    /// Puts `router` in use for every request from now on; returns the one it replaces.
    pub(crate) fn swap(&self, router: Arc<Router>) -> Arc<Router> {
        self.0.router.send_replace(router)
    }

    /// Holds every request arriving from now on, until [`Routing::resume`].
    pub(crate) fn pause(&self) {
        self.0.paused.send_replace(true);
    }

    pub(crate) fn resume(&self) {
        self.0.paused.send_replace(false);
    }

    /// Wakes on each swap.
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<Router>> {
        self.0.router.subscribe()
    }
}

/// How many compiled `target_executor` patterns a gateway keeps (clients choose them).
const TARGET_PATTERNS_KEPT: usize = 256;

/// What `target_executor` selects: every executor, one by its name, or those whose whole
/// name a regular expression matches (Python Jina's rule).
enum Target {
    All,
    Name(String),
    Pattern(Arc<regex::Regex>),
}

impl Target {
    fn matches(&self, name: &str) -> bool {
        match self {
            Target::All => true,
            Target::Name(n) => n == name,
            Target::Pattern(p) => p.is_match(name),
        }
    }
}

/// One request's walk through the graph: each executor is a future that waits for its
/// parents' answers (one channel per edge), calls the executor, and hands its answer on. An
/// answer is moved to its last reader and cloned only for the others (a fan-out), so a chain
/// copies nothing.
struct Walk<'a> {
    router: &'a Router,
    target: Target,
    client_params: Option<Struct>,
    /// Each executor's route, as it answers.
    routes: Mutex<Vec<RouteProto>>,
    /// What executors return under `__results__`, gathered for the answer.
    results: Mutex<Struct>,
}

impl Walk<'_> {
    /// Sends `req` through the graph and merges the leaves' answers (the request itself for
    /// a Flow with no executors).
    async fn run(&self, req: DataRequestProto) -> DataRequestProto {
        let graph = &self.router.graph;
        let n = graph.nodes.len();
        if n == 0 {
            return req;
        }
        let mut inboxes: Vec<Vec<oneshot::Receiver<DataRequestProto>>> =
            (0..n).map(|_| vec![]).collect();
        let mut outboxes: Vec<Vec<oneshot::Sender<DataRequestProto>>> =
            (0..n).map(|_| vec![]).collect();
        let mut entries = vec![];
        for &i in &graph.order {
            let parents = &graph.nodes[i].parents;
            for &p in parents {
                let (to_child, from_parent) = oneshot::channel();
                outboxes[p].push(to_child);
                inboxes[i].push(from_parent);
            }
            if parents.is_empty() {
                let (to_entry, from_gateway) = oneshot::channel();
                entries.push(to_entry);
                inboxes[i].push(from_gateway);
            }
        }
        let mut leaves = vec![];
        for &l in &graph.leaves {
            let (to_gateway, from_leaf) = oneshot::channel();
            outboxes[l].push(to_gateway);
            leaves.push(from_leaf);
        }
        hand_on(entries, req);
        let nodes =
            inboxes
                .into_iter()
                .zip(outboxes)
                .enumerate()
                .map(|(i, (inbox, outbox))| async move {
                    let inputs = futures::future::join_all(inbox).await;
                    let inputs = inputs
                        .into_iter()
                        .map(|r| r.unwrap_or_else(|_| lost()))
                        .collect();
                    hand_on(outbox, self.visit(i, inputs).await);
                });
        futures::future::join_all(nodes).await;
        let mut answers: Vec<DataRequestProto> = futures::future::join_all(leaves)
            .await
            .into_iter()
            .map(|r| r.unwrap_or_else(|_| lost()))
            .collect();
        match answers.iter().position(request::is_error) {
            Some(failed) => answers.swap_remove(failed),
            None => deployment::merge(answers),
        }
    }

    /// One executor's part: a parent's ERROR passes straight through; an executor that
    /// `target_executor` does not select passes its input on; else it is called.
    async fn visit(&self, i: usize, mut inputs: Vec<DataRequestProto>) -> DataRequestProto {
        if let Some(failed) = inputs.iter().position(request::is_error) {
            return inputs.swap_remove(failed);
        }
        let deployment = &self.router.deployments[i];
        if !self.target.matches(&deployment.name) {
            return deployment::merge(inputs);
        }
        let own = self
            .client_params
            .as_ref()
            .map(|p| request::parameters_for(p, &deployment.name));
        for r in &mut inputs {
            r.parameters.clone_from(&own);
        }
        let mut route = request::start_route(&deployment.name);
        let call = tracing::info_span!(
            "call",
            otel.name = %format!("call {}", deployment.name),
            otel.status_code = tracing::field::Empty,
            executor = %deployment.name,
        );
        let mut answer = match &self.router.metrics {
            None => deployment.process(inputs).instrument(call.clone()).await,
            Some(m) => {
                let start = std::time::Instant::now();
                let size_out: usize = inputs.iter().map(prost::Message::encoded_len).sum();
                let answer = deployment.process(inputs).instrument(call.clone()).await;
                let size_in = prost::Message::encoded_len(&answer);
                m.hop(&deployment.name, start.elapsed(), size_out, size_in);
                answer
            }
        };
        let returned = answer
            .parameters
            .as_mut()
            .and_then(|p| p.fields.remove(request::RESULTS_KEY))
            .and_then(|v| match v.kind {
                Some(Kind::StructValue(s)) => Some(s.fields),
                _ => None,
            });
        if let Some(returned) = returned {
            self.results.lock().unwrap().fields.extend(returned);
        }
        if request::is_error(&answer) {
            call.record("otel.status_code", "ERROR");
        }
        route.end_time = Some(request::now());
        route.status = answer.header.as_ref().and_then(|h| h.status.clone());
        // What the next executor reads as the executor before it (`last_executor`).
        answer.routes = vec![route.clone()];
        self.routes.lock().unwrap().push(route);
        answer
    }
}

/// Hands an answer to each of its readers: moved to the last, cloned for the others.
fn hand_on(readers: Vec<oneshot::Sender<DataRequestProto>>, answer: DataRequestProto) {
    let mut readers = readers.into_iter();
    let last = readers.next_back();
    for reader in readers {
        let _ = reader.send(answer.clone());
    }
    if let Some(reader) = last {
        let _ = reader.send(answer);
    }
}

/// The answer of an executor whose future ended without one (it cannot, short of a panic).
fn lost() -> DataRequestProto {
    let mut req = DataRequestProto::default();
    request::set_error(
        &mut req,
        request::error_status("RuntimeError", "an executor's answer was lost", "gateway"),
    );
    req
}

fn struct_value(s: Struct) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::StructValue(s)),
    }
}

/// The endpoints one executor answers, and those among them whose handler streams.
struct Discovered {
    endpoints: Vec<String>,
    generators: Vec<String>,
}

impl Discovered {
    fn of(found: EndpointsProto) -> Discovered {
        let schemas = found
            .schemas
            .as_ref()
            .map(request::struct_to_json)
            .unwrap_or_default();
        let generators = schemas
            .iter()
            .filter(|(_, s)| s.get("is_generator") == Some(&Value::Bool(true)))
            .map(|(e, _)| e.clone())
            .collect();
        Discovered {
            endpoints: found.endpoints,
            generators,
        }
    }

    /// Whether the handler that answers `endpoint` streams (the default one, when no handler
    /// has the endpoint as its own).
    fn streams(&self, endpoint: &str) -> bool {
        let answered_by = match self.endpoints.iter().any(|e| e == endpoint) {
            true => endpoint,
            false => crate::executor::DEFAULT_ENDPOINT,
        };
        self.generators.iter().any(|e| e == answered_by)
    }
}

/// Why a streamed document has no executor to go to.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NoStreamingExecutor {
    #[error("{why}")]
    BadTarget { why: String },
    #[error("target_executor '{target}' names no executor of this Flow")]
    NoTarget { target: String },
    #[error(
        "no executor of this Flow streams {endpoint} (none has a generator handler for it); name one with target_executor"
    )]
    None { endpoint: String },
    #[error("several executors stream {endpoint} ({names}): name one with target_executor")]
    Several { endpoint: String, names: String },
    #[error("cannot ask the executors which endpoints stream: {why}")]
    Discovery { why: String },
}

/// The gateway's `request` span of one request, given first to `adopt` (which makes it the
/// child of the client's trace context, when the client sent one).
fn request_span(request_id: &str, adopt: impl FnOnce(&tracing::Span)) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        otel.name = "gateway",
        otel.status_code = tracing::field::Empty,
        request_id = %request_id,
        trace_id = tracing::field::Empty,
    );
    adopt(&span);
    crate::telemetry::record_trace_id(&span);
    span
}

impl Router {
    pub(crate) fn new(
        graph: Graph,
        deployments: Vec<Arc<Deployment>>,
        metrics: Option<Arc<crate::metrics::GatewayMetrics>>,
    ) -> Router {
        Router {
            graph,
            deployments,
            metrics,
            discovered: tokio::sync::OnceCell::new(),
            patterns: Mutex::default(),
        }
    }

    /// Executor `i` of the graph: its copies' connections and health.
    pub(crate) fn deployment(&self, i: usize) -> Arc<Deployment> {
        self.deployments[i].clone()
    }

    /// The executor a streamed document to `endpoint` goes to: the one `target` names, else
    /// the one whose handler for `endpoint` is a generator. (Not merely the Flow's only
    /// executor: a `GET /favicon.ico` must not run a handler that does not stream.)
    pub(crate) async fn streaming_deployment(
        &self,
        endpoint: &str,
        target: Option<&str>,
    ) -> Result<Arc<Deployment>, NoStreamingExecutor> {
        let mut candidates: Vec<usize> = (0..self.deployments.len()).collect();
        let selected = self
            .target(target)
            .map_err(|why| NoStreamingExecutor::BadTarget { why })?;
        if let Some(t) = target.filter(|_| !matches!(selected, Target::All)) {
            candidates.retain(|&i| selected.matches(&self.deployments[i].name));
            match candidates[..] {
                [] => return Err(NoStreamingExecutor::NoTarget { target: t.into() }),
                // Named: it answers, streaming or not.
                [only] => return Ok(self.deployments[only].clone()),
                _ => {}
            }
        }
        let discovered = self
            .discovered
            .get_or_try_init(|| async {
                let asks = self.deployments.iter().map(|d| async move {
                    let copy = d.copies().next().expect("a deployment has a copy");
                    copy.endpoints()
                        .await
                        .map(Discovered::of)
                        .map_err(|e| format!("{}: {}", d.name, e.message()))
                });
                futures::future::try_join_all(asks).await
            })
            .await
            .map_err(|why| NoStreamingExecutor::Discovery { why })?;
        candidates.retain(|&i| discovered[i].streams(endpoint));
        match candidates[..] {
            [] => Err(NoStreamingExecutor::None {
                endpoint: endpoint.into(),
            }),
            [only] => Ok(self.deployments[only].clone()),
            _ => Err(NoStreamingExecutor::Several {
                endpoint: endpoint.into(),
                names: candidates
                    .iter()
                    .map(|&i| self.deployments[i].name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Streams one document to the executor that streams its endpoint; what it yields comes
    /// back as it is yielded. The request gets an id here when it has none. As for
    /// [`Router::route_with`], its `request` span is first given to `adopt`; that span and the
    /// `call` span under it last until the stream ends (or the client leaves), and a message
    /// with an error marks them. With monitoring on, the stream is one request.
    pub(crate) async fn stream_doc(
        &self,
        mut req: SingleDocumentRequestProto,
        adopt: impl FnOnce(&tracing::Span),
    ) -> Result<BoxStream<'static, SingleDocumentRequestProto>, NoStreamingExecutor> {
        let header = req.header.get_or_insert_with(Default::default);
        if header.request_id.is_empty() {
            header.request_id = request::new_request_id();
        }
        let endpoint = header.exec_endpoint.clone().unwrap_or_default();
        let target = header.target_executor.clone();
        let span = request_span(&header.request_id, adopt);
        let deployment = self
            .streaming_deployment(&endpoint, target.as_deref())
            .instrument(span.clone())
            .await?;
        let call = tracing::info_span!(
            parent: &span,
            "call",
            otel.name = %format!("call {}", deployment.name),
            otel.status_code = tracing::field::Empty,
            executor = %deployment.name,
        );
        let recorded = self
            .metrics
            .as_ref()
            .map(|m| m.begin_request(prost::Message::encoded_len(&req)));
        let replies = deployment.stream_doc(req).instrument(call.clone()).await;
        let spans = vec![span.clone(), call.clone()];
        let replies = crate::metrics::record_stream(
            replies,
            (recorded, span, call),
            |(recorded, span, call), reply| {
                let failed = reply
                    .header
                    .as_ref()
                    .and_then(|h| h.status.as_ref())
                    .is_some_and(|s| s.code != 0);
                if failed {
                    span.record("otel.status_code", "ERROR");
                    call.record("otel.status_code", "ERROR");
                }
                if let Some(recorded) = recorded {
                    recorded.sent(prost::Message::encoded_len(reply), failed);
                }
            },
        );
        Ok(crate::telemetry::poll_in_spans(replies, spans))
    }

    /// Sends a request through the graph and returns the merged answer of its leaves, with a
    /// route for the gateway and for every executor visited. A request whose header sets
    /// `timeout` (ms) and is not answered in time gets an ERROR answer.
    pub(crate) async fn route(&self, req: DataRequestProto) -> DataRequestProto {
        self.route_with(req, |_| {}).await
    }

    /// [`Router::route`], its `request` span first given to `adopt` (which makes it the child
    /// of the client's trace context, when the client sent one).
    pub(crate) async fn route_with(
        &self,
        mut req: DataRequestProto,
        adopt: impl FnOnce(&tracing::Span),
    ) -> DataRequestProto {
        // The id is given here, so that the gateway's log lines about it carry it.
        let header = request::header_mut(&mut req);
        if header.request_id.is_empty() {
            header.request_id = request::new_request_id();
        }
        let span = request_span(&header.request_id, adopt);
        let answer = self.route_measured(req).instrument(span.clone()).await;
        if request::is_error(&answer) {
            span.record("otel.status_code", "ERROR");
        }
        answer
    }

    /// [`Router::route_in_time`], measured when monitoring is on (pending while it runs).
    async fn route_measured(&self, req: DataRequestProto) -> DataRequestProto {
        let mut measuring = self
            .metrics
            .as_ref()
            .map(|m| m.begin_request(prost::Message::encoded_len(&req)));
        let answer = self.route_in_time(req).await;
        if let Some(measuring) = &mut measuring {
            measuring.sent(
                prost::Message::encoded_len(&answer),
                request::is_error(&answer),
            );
        }
        answer
    }

    /// Walks the graph, within the request's own `timeout` when it sets one.
    async fn route_in_time(&self, req: DataRequestProto) -> DataRequestProto {
        let timeout = req
            .header
            .as_ref()
            .and_then(|h| h.timeout)
            .filter(|&t| t > 0);
        let Some(ms) = timeout else {
            return self.walk(req).await;
        };
        let mut fallback = req.clone();
        match tokio::time::timeout(std::time::Duration::from_millis(ms.into()), self.walk(req))
            .await
        {
            Ok(answer) => answer,
            Err(_) => {
                let message = format!("no answer within the request's timeout of {ms} ms");
                request::set_error(
                    &mut fallback,
                    request::InTransit::Timeout.status(&message, "gateway"),
                );
                fallback
            }
        }
    }

    async fn walk(&self, mut req: DataRequestProto) -> DataRequestProto {
        let mut gateway_route = request::start_route("gateway");
        let header = request::header_mut(&mut req);
        if header.request_id.is_empty() {
            header.request_id = request::new_request_id();
        }
        let target = match self.target(header.target_executor.as_deref()) {
            Ok(target) => target,
            Err(message) => {
                request::set_error(
                    &mut req,
                    request::error_status("ValueError", &message, "gateway"),
                );
                return req;
            }
        };
        // As Python Jina's gateway sends it: the first executor's `last_executor` is `gateway`.
        req.routes = vec![gateway_route.clone()];
        let walk = Walk {
            router: self,
            target,
            // Every executor gets the client's parameters (as Python Jina sends them: its own
            // `name__key`s applied), not what the executors before it answered.
            client_params: req.parameters.clone(),
            routes: Mutex::new(vec![]),
            results: Mutex::new(Struct::default()),
        };
        let mut answer = walk.run(req).await;
        // The client's parameters come back, with every executor's `__results__`.
        let results = std::mem::take(&mut *walk.results.lock().unwrap());
        let mut params = walk.client_params.unwrap_or_default();
        if !results.fields.is_empty() {
            params
                .fields
                .insert(request::RESULTS_KEY.into(), struct_value(results));
        }
        answer.parameters = (!params.fields.is_empty()).then_some(params);
        gateway_route.end_time = Some(request::now());
        let mut visited = std::mem::take(&mut *walk.routes.lock().unwrap());
        visited.sort_by_key(|r| r.start_time.map(|t| (t.seconds, t.nanos)));
        answer.routes = std::iter::once(gateway_route).chain(visited).collect();
        answer
    }

    /// What a request's `target_executor` selects. A regular expression is compiled once and
    /// kept (a few hundred at most); a plain name needs none.
    fn target(&self, given: Option<&str>) -> Result<Target, String> {
        let Some(t) = given.filter(|t| !t.is_empty()) else {
            return Ok(Target::All);
        };
        if regex::escape(t) == t {
            return Ok(Target::Name(t.to_string()));
        }
        let mut patterns = self.patterns.lock().unwrap();
        if let Some(pattern) = patterns.get(t) {
            return Ok(Target::Pattern(pattern.clone()));
        }
        let pattern = regex::Regex::new(&format!("^(?:{t})$"))
            .map(Arc::new)
            .map_err(|e| format!("target_executor '{t}' is not a valid regular expression: {e}"))?;
        if patterns.len() >= TARGET_PATTERNS_KEPT {
            patterns.clear();
        }
        patterns.insert(t.to_string(), pattern.clone());
        Ok(Target::Pattern(pattern))
    }

    /// The union of the executors' endpoints, with their schemas.
    pub(crate) async fn endpoints(&self) -> EndpointsProto {
        let asks = self.deployments.iter().map(|d| async move {
            let copy = d.copies().next().expect("a deployment has a copy");
            copy.endpoints().await.ok()
        });
        let mut endpoints: Vec<String> = vec![];
        let mut schemas = Map::new();
        for found in futures::future::join_all(asks).await.into_iter().flatten() {
            for e in found.endpoints {
                if !endpoints.contains(&e) {
                    endpoints.push(e);
                }
            }
            if let Some(s) = found.schemas {
                for (k, v) in request::struct_to_json(&s) {
                    schemas.entry(k).or_insert(v);
                }
            }
        }
        EndpointsProto {
            endpoints,
            write_endpoints: vec![],
            schemas: Some(request::json_to_struct(&schemas)),
        }
    }

    /// Whether every executor copy is serving: SUCCESS, or ERROR naming those that are not.
    pub(crate) async fn dry_run(&self) -> StatusProto {
        let checks = self
            .deployments
            .iter()
            .flat_map(|d| d.copies().map(move |c| (d, c)))
            .map(|(d, c)| async move {
                c.is_serving()
                    .await
                    .err()
                    .map(|why| format!("{}: {why}", d.name))
            });
        let problems: Vec<String> = futures::future::join_all(checks)
            .await
            .into_iter()
            .flatten()
            .collect();
        if problems.is_empty() {
            StatusProto {
                code: 0,
                description: String::new(),
                exception: None,
            }
        } else {
            request::error_status("FlowNotReady", &problems.join("; "), "gateway")
        }
    }

    /// Whether each executor copy is up, as its supervisor says.
    pub(crate) fn liveness(&self) -> Vec<crate::health::Liveness> {
        self.deployments
            .iter()
            .flat_map(|d| d.copies().map(|c| c.liveness().clone()))
            .collect()
    }
}
