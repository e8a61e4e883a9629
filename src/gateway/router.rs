//! The path of one request through the Flow's graph.
//!
//! Every executor becomes one shared future that waits for its parents' answers and then calls
//! the executor; the futures of the leaves are awaited, which drives the whole graph. So
//! executors whose needs are met run at once, a join waits for all its parents (and gets them
//! as one `process_data`), and an error stops the branch it happened on and comes back to the
//! client. The request's documents stay encoded bytes here: the gateway never decodes them
//! except to merge.

use super::deployment::{self, Deployment};
use crate::flow::Graph;
use crate::proto::jina::{DataRequestProto, EndpointsProto, RouteProto, StatusProto};
use crate::request;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex};
use tracing::Instrument;

/// The graph and its executors: routes requests. Cheap to share behind an `Arc`.
pub struct Router {
    graph: Graph,
    deployments: Vec<Arc<Deployment>>,
    /// Where requests and calls are recorded, with monitoring on.
    metrics: Option<Arc<crate::metrics::GatewayMetrics>>,
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
        }
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
        let span = tracing::info_span!(
            "request",
            otel.name = "gateway",
            otel.status_code = tracing::field::Empty,
            request_id = %header.request_id,
            trace_id = tracing::field::Empty,
        );
        adopt(&span);
        crate::telemetry::record_trace_id(&span);
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
