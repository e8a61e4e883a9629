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
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use futures::stream::BoxStream;
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex};
use tracing::Instrument;

/// The graph and its executors: routes requests. Cheap to share behind an `Arc`.
pub struct Router {
    graph: Graph,
    deployments: Vec<Arc<Deployment>>,
    /// Where requests and calls are recorded, with monitoring on.
    metrics: Option<Arc<crate::metrics::GatewayMetrics>>,
    /// What each executor answers, as it first said (for `stream_doc`).
    discovered: tokio::sync::OnceCell<Vec<Discovered>>,
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
pub enum NoStreamingExecutor {
    #[error("target_executor '{target}' is not a valid regular expression: {why}")]
    BadTarget { target: String, why: String },
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

type NodeOutput = Shared<BoxFuture<'static, Arc<DataRequestProto>>>;

impl Router {
    pub fn new(
        graph: Graph,
        deployments: Vec<Deployment>,
        metrics: Option<Arc<crate::metrics::GatewayMetrics>>,
    ) -> Router {
        Router {
            graph,
            deployments: deployments.into_iter().map(Arc::new).collect(),
            metrics,
            discovered: tokio::sync::OnceCell::new(),
        }
    }

    /// The executor a streamed document to `endpoint` goes to: the one `target` names, else
    /// the one whose handler for `endpoint` is a generator. (Not merely the Flow's only
    /// executor: a `GET /favicon.ico` must not run a handler that does not stream.)
    pub async fn streaming_deployment(
        &self,
        endpoint: &str,
        target: Option<&str>,
    ) -> Result<Arc<Deployment>, NoStreamingExecutor> {
        let mut candidates: Vec<usize> = (0..self.deployments.len()).collect();
        if let Some(t) = target.filter(|t| !t.is_empty()) {
            let pattern = regex::Regex::new(&format!("^(?:{t})$")).map_err(|e| {
                NoStreamingExecutor::BadTarget {
                    target: t.into(),
                    why: e.to_string(),
                }
            })?;
            candidates.retain(|&i| pattern.is_match(&self.deployments[i].name));
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
    pub async fn stream_doc(
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
            .map(|m| crate::metrics::StreamedRequest::start(m, prost::Message::encoded_len(&req)));
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
    pub async fn route(&self, req: DataRequestProto) -> DataRequestProto {
        self.route_with(req, |_| {}).await
    }

    /// [`Router::route`], its `request` span first given to `adopt` (which makes it the child
    /// of the client's trace context, when the client sent one).
    pub async fn route_with(
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
        let answer = self.route_recorded(req).instrument(span.clone()).await;
        if request::is_error(&answer) {
            span.record("otel.status_code", "ERROR");
        }
        answer
    }

    async fn route_recorded(&self, req: DataRequestProto) -> DataRequestProto {
        let Some(metrics) = &self.metrics else {
            return self.route_unrecorded(req).await;
        };
        let _pending = metrics.pending();
        let (start, size_in) = (std::time::Instant::now(), prost::Message::encoded_len(&req));
        let answer = self.route_unrecorded(req).await;
        let size_out = prost::Message::encoded_len(&answer);
        metrics.request(
            start.elapsed(),
            request::is_error(&answer),
            size_in,
            size_out,
        );
        answer
    }

    async fn route_unrecorded(&self, req: DataRequestProto) -> DataRequestProto {
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
                    request::error_status("TimeoutError", &message, "gateway"),
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
        let target = match header.target_executor.as_deref().filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => match regex::Regex::new(&format!("^(?:{t})$")) {
                Ok(r) => Some(r),
                Err(e) => {
                    let message =
                        format!("target_executor '{t}' is not a valid regular expression: {e}");
                    request::set_error(
                        &mut req,
                        request::error_status("ValueError", &message, "gateway"),
                    );
                    return req;
                }
            },
        };
        req.routes.clear();
        let routes = Arc::new(Mutex::new(Vec::<RouteProto>::new()));
        // Every executor gets the client's parameters (as Python Jina sends them: its own
        // `name__key`s applied), not what the executors before it answered; what they return
        // under `__results__` is gathered here for the answer.
        let client_params: Option<Arc<Map<String, Value>>> = req
            .parameters
            .as_ref()
            .map(|p| Arc::new(request::struct_to_json(p)));
        let results = Arc::new(Mutex::new(Map::<String, Value>::new()));
        let input = Arc::new(req);
        let mut outputs: Vec<Option<NodeOutput>> = vec![None; self.graph.nodes.len()];
        for &i in &self.graph.order {
            let node = &self.graph.nodes[i];
            let parents: Vec<NodeOutput> = node
                .parents
                .iter()
                .map(|&p| outputs[p].clone().expect("parents come first"))
                .collect();
            let input = input.clone();
            let deployment = self.deployments[i].clone();
            let selected = target.as_ref().is_none_or(|r| r.is_match(&deployment.name));
            let routes = routes.clone();
            let (client_params, results) = (client_params.clone(), results.clone());
            let metrics = self.metrics.clone();
            let output = async move {
                let inputs: Vec<Arc<DataRequestProto>> = if parents.is_empty() {
                    vec![input]
                } else {
                    futures::future::join_all(parents).await
                };
                if let Some(failed) = inputs.iter().find(|r| request::is_error(r)) {
                    return failed.clone();
                }
                let mut inputs: Vec<DataRequestProto> =
                    inputs.iter().map(|r| (**r).clone()).collect();
                if !selected {
                    return Arc::new(deployment::merge(inputs));
                }
                let own = client_params.as_deref().map(|p| {
                    request::json_to_struct(&request::parameters_for(p, &deployment.name))
                });
                for r in &mut inputs {
                    r.parameters = own.clone();
                }
                let mut route = request::start_route(&deployment.name);
                let call = tracing::info_span!(
                    "call",
                    otel.name = %format!("call {}", deployment.name),
                    otel.status_code = tracing::field::Empty,
                    executor = %deployment.name,
                );
                let mut answer = match &metrics {
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
                if let Some(Value::Object(returned)) = answer
                    .parameters
                    .as_ref()
                    .and_then(|p| request::struct_to_json(p).remove(request::RESULTS_KEY))
                {
                    results.lock().unwrap().extend(returned);
                }
                if request::is_error(&answer) {
                    call.record("otel.status_code", "ERROR");
                }
                answer.routes.clear();
                route.end_time = Some(request::now());
                route.status = answer.header.as_ref().and_then(|h| h.status.clone());
                routes.lock().unwrap().push(route);
                Arc::new(answer)
            }
            .boxed()
            .shared();
            outputs[i] = Some(output);
        }
        let leaves = self
            .graph
            .leaves
            .iter()
            .map(|&l| outputs[l].clone().expect("every node has a future"));
        let answers: Vec<Arc<DataRequestProto>> = futures::future::join_all(leaves).await;
        let mut answer = match answers.iter().find(|r| request::is_error(r)) {
            Some(failed) => (**failed).clone(),
            // A Flow with no executors answers with the request itself.
            None if answers.is_empty() => (*input).clone(),
            None => deployment::merge(answers.iter().map(|r| (**r).clone()).collect()),
        };
        // The client's parameters come back, with every executor's `__results__`.
        let results = std::mem::take(&mut *results.lock().unwrap());
        let mut params = client_params.as_deref().cloned().unwrap_or_default();
        if !results.is_empty() {
            params.insert(request::RESULTS_KEY.into(), Value::Object(results));
        }
        answer.parameters = (!params.is_empty()).then(|| request::json_to_struct(&params));
        gateway_route.end_time = Some(request::now());
        let mut visited = std::mem::take(&mut *routes.lock().unwrap());
        visited.sort_by_key(|r| r.start_time.map(|t| (t.seconds, t.nanos)));
        answer.routes = std::iter::once(gateway_route).chain(visited).collect();
        answer
    }

    /// The union of the executors' endpoints, with their schemas.
    pub async fn endpoints(&self) -> EndpointsProto {
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
    pub async fn dry_run(&self) -> StatusProto {
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
    pub fn liveness(&self) -> Vec<crate::health::Liveness> {
        self.deployments
            .iter()
            .flat_map(|d| d.copies().map(|c| c.liveness().clone()))
            .collect()
    }
}
