//! Prometheus metrics (`monitoring: true`): Jina 3's metric names and labels, in Prometheus'
//! text format at `/metrics` on the `port_monitoring` of the gateway and of each executor.
//!
//! It owns the metric families and their HTTP endpoint. The gateway and the executor server
//! each hold an optional handle and record into it; with monitoring off they hold none and pay
//! nothing. With it on, a request costs a few atomic adds: the metrics of each label set are
//! looked up once and kept (a histogram or counter handle shares its family's state), so no
//! labels are built, hashed or allocated per request. Built on prometheus-client (the Prometheus project's own Rust client: no global
//! registry, families of labelled metrics, the text format).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

/// Latency buckets: 100 µs to about 52 s, doubling.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

/// Size buckets: 64 bytes to 1 GiB, times four.
fn bytes() -> Histogram {
    Histogram::new(exponential_buckets(64.0, 4.0, 13))
}

/// An executor's request, as Jina labels it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EndpointLabels {
    pub runtime_name: String,
    pub executor: String,
    pub executor_endpoint: String,
}

/// A gateway's request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GatewayLabels {
    pub runtime_name: String,
}

/// A gateway's call to one executor.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HopLabels {
    pub runtime_name: String,
    pub executor: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// The families both the gateway and an executor keep about the requests they answer.
struct RequestFamilies<L: Clone + std::hash::Hash + Eq> {
    receiving: Histograms<L>,
    successful: Family<L, Counter>,
    failed: Family<L, Counter>,
    request_bytes: Histograms<L>,
    response_bytes: Histograms<L>,
}

impl<L> RequestFamilies<L>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    fn new(jina: &mut Registry) -> Self {
        let f = RequestFamilies {
            receiving: Family::new_with_constructor(seconds as fn() -> Histogram),
            successful: Family::default(),
            failed: Family::default(),
            request_bytes: Family::new_with_constructor(bytes as fn() -> Histogram),
            response_bytes: Family::new_with_constructor(bytes as fn() -> Histogram),
        };
        let time = "Time from receiving a request to sending its response";
        jina.register("receiving_request_seconds", time, f.receiving.clone());
        let ok = "Requests answered without an error";
        jina.register("successful_requests", ok, f.successful.clone());
        let failed = "Requests answered with an error";
        jina.register("failed_requests", failed, f.failed.clone());
        let size_in = "Size of each request received";
        jina.register("received_request_bytes", size_in, f.request_bytes.clone());
        let size_out = "Size of each response sent";
        jina.register("sent_response_bytes", size_out, f.response_bytes.clone());
        f
    }

    /// The metrics of one label set, to keep.
    fn handles(&self, labels: &L) -> RequestHandles {
        RequestHandles {
            receiving: self.receiving.get_or_create(labels).clone(),
            successful: self.successful.get_or_create(labels).clone(),
            failed: self.failed.get_or_create(labels).clone(),
            request_bytes: self.request_bytes.get_or_create(labels).clone(),
            response_bytes: self.response_bytes.get_or_create(labels).clone(),
        }
    }
}

/// The request metrics of one label set.
struct RequestHandles {
    receiving: Histogram,
    successful: Counter,
    failed: Counter,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

impl RequestHandles {
    fn record(&self, took: Duration, failed: bool, size_in: usize, size_out: usize) {
        self.receiving.observe(took.as_secs_f64());
        self.request_bytes.observe(size_in as f64);
        self.response_bytes.observe(size_out as f64);
        match failed {
            true => self.failed.inc(),
            false => self.successful.inc(),
        };
    }
}

/// Metrics kept per key (an endpoint, an executor), looked up by `&str` without allocating;
/// made on first use.
struct PerKey<H> {
    kept: std::sync::RwLock<std::collections::HashMap<String, Arc<H>>>,
}

impl<H> PerKey<H> {
    fn new() -> Self {
        PerKey {
            kept: Default::default(),
        }
    }

    fn get(&self, key: &str, make: impl FnOnce() -> H) -> Arc<H> {
        if let Some(h) = self.kept.read().unwrap_or_else(|e| e.into_inner()).get(key) {
            return h.clone();
        }
        let mut kept = self.kept.write().unwrap_or_else(|e| e.into_inner());
        kept.entry(key.to_string())
            .or_insert_with(|| Arc::new(make()))
            .clone()
    }
}

/// What an executor keeps about one endpoint.
struct EndpointHandles {
    requests: RequestHandles,
    process: Histogram,
    documents: Counter,
}

/// What one executor copy records.
pub(crate) struct ExecutorMetrics {
    runtime_name: String,
    executor: String,
    requests: RequestFamilies<EndpointLabels>,
    process: Histograms<EndpointLabels>,
    documents: Family<EndpointLabels, Counter>,
    endpoints: PerKey<EndpointHandles>,
}

impl ExecutorMetrics {
    /// Registers an executor's families: `runtime_name` is its copy (`enc/rep-1`),
    /// `executor` its type.
    pub(crate) fn new(registry: &mut Registry, runtime_name: &str, executor: &str) -> Arc<Self> {
        let jina = registry.sub_registry_with_prefix("jina");
        let m = ExecutorMetrics {
            runtime_name: runtime_name.into(),
            executor: executor.into(),
            requests: RequestFamilies::new(jina),
            process: Family::new_with_constructor(seconds),
            documents: Family::default(),
            endpoints: PerKey::new(),
        };
        let handler = "Time the handler took";
        jina.register("process_request_seconds", handler, m.process.clone());
        let given = "Documents given to a handler";
        jina.register("document_processed", given, m.documents.clone());
        Arc::new(m)
    }

    fn endpoint(&self, endpoint: &str) -> Arc<EndpointHandles> {
        self.endpoints.get(endpoint, || {
            let labels = EndpointLabels {
                runtime_name: self.runtime_name.clone(),
                executor: self.executor.clone(),
                executor_endpoint: endpoint.into(),
            };
            EndpointHandles {
                requests: self.requests.handles(&labels),
                process: self.process.get_or_create(&labels).clone(),
                documents: self.documents.get_or_create(&labels).clone(),
            }
        })
    }

    /// A request to `endpoint` of `size_in` bytes came in; it is recorded when its
    /// [`ExecutorRequest`] finishes.
    pub(crate) fn begin_request(&self, endpoint: &str, size_in: usize) -> ExecutorRequest {
        ExecutorRequest {
            handles: self.endpoint(endpoint),
            start: std::time::Instant::now(),
            size_in,
        }
    }

    /// One handler call: how long it took and how many documents it was given.
    pub(crate) fn handler(&self, endpoint: &str, took: Duration, documents: usize) {
        let handles = self.endpoint(endpoint);
        handles.process.observe(took.as_secs_f64());
        handles.documents.inc_by(documents as u64);
    }
}

/// What the gateway records.
pub(crate) struct GatewayMetrics {
    runtime_name: String,
    requests: RequestHandles,
    pending: Gauge,
    sending: Histograms<HopLabels>,
    sent_request_bytes: Histograms<HopLabels>,
    received_response_bytes: Histograms<HopLabels>,
    hops: PerKey<HopHandles>,
}

/// What the gateway keeps about its calls to one executor.
struct HopHandles {
    sending: Histogram,
    sent_request_bytes: Histogram,
    received_response_bytes: Histogram,
}

impl GatewayMetrics {
    pub(crate) fn new(registry: &mut Registry) -> Arc<Self> {
        let jina = registry.sub_registry_with_prefix("jina");
        let labels = GatewayLabels {
            runtime_name: "gateway".into(),
        };
        let pending = Family::<GatewayLabels, Gauge>::default();
        let m = GatewayMetrics {
            runtime_name: labels.runtime_name.clone(),
            requests: RequestFamilies::new(jina).handles(&labels),
            pending: pending.get_or_create(&labels).clone(),
            sending: Family::new_with_constructor(seconds),
            sent_request_bytes: Family::new_with_constructor(bytes),
            received_response_bytes: Family::new_with_constructor(bytes),
            hops: PerKey::new(),
        };
        let help = "Requests being answered";
        jina.register("number_of_pending_requests", help, pending);
        let sending = "Time an executor took to answer the gateway (its shards, retries and uses_before/after included)";
        jina.register("sending_request_seconds", sending, m.sending.clone());
        let sent = "Size of each request sent to an executor";
        jina.register("sent_request_bytes", sent, m.sent_request_bytes.clone());
        let received = "Size of each response received from an executor";
        jina.register(
            "received_response_bytes",
            received,
            m.received_response_bytes.clone(),
        );
        Arc::new(m)
    }

    /// A request of `size_in` bytes came in: pending until its [`GatewayRequest`] is
    /// dropped, which records it.
    pub(crate) fn begin_request(self: &Arc<Self>, size_in: usize) -> GatewayRequest {
        self.pending.inc();
        GatewayRequest {
            metrics: self.clone(),
            start: std::time::Instant::now(),
            size_in,
            size_out: 0,
            failed: false,
        }
    }

    /// One call to an executor.
    pub(crate) fn hop(&self, executor: &str, took: Duration, size_out: usize, size_in: usize) {
        let hop = self.hops.get(executor, || {
            let labels = HopLabels {
                runtime_name: self.runtime_name.clone(),
                executor: executor.into(),
            };
            HopHandles {
                sending: self.sending.get_or_create(&labels).clone(),
                sent_request_bytes: self.sent_request_bytes.get_or_create(&labels).clone(),
                received_response_bytes: self
                    .received_response_bytes
                    .get_or_create(&labels)
                    .clone(),
            }
        });
        hop.sending.observe(took.as_secs_f64());
        hop.sent_request_bytes.observe(size_out as f64);
        hop.received_response_bytes.observe(size_in as f64);
    }
}

/// One request as the gateway records it: pending while it lives, then one request whose
/// response size is that of all it sent back (one answer, or each message of a streamed
/// document), failed when one carried an error. It is recorded when dropped: when the answer
/// is sent, at a stream's end, or when the client went away.
pub(crate) struct GatewayRequest {
    metrics: Arc<GatewayMetrics>,
    start: std::time::Instant,
    size_in: usize,
    size_out: usize,
    failed: bool,
}

impl GatewayRequest {
    /// An answer (or one message of a stream) went back, of `size` bytes.
    pub(crate) fn sent(&mut self, size: usize, failed: bool) {
        self.size_out += size;
        self.failed |= failed;
    }
}

impl Drop for GatewayRequest {
    fn drop(&mut self) {
        let m = &self.metrics;
        m.pending.dec();
        let took = self.start.elapsed();
        m.requests
            .record(took, self.failed, self.size_in, self.size_out);
    }
}

/// One request as an executor records it, per endpoint, when it finishes.
pub(crate) struct ExecutorRequest {
    handles: Arc<EndpointHandles>,
    start: std::time::Instant,
    size_in: usize,
}

impl ExecutorRequest {
    /// It was answered (`failed`: with an error status, or none), with `size_out` bytes.
    pub(crate) fn finish(self, failed: bool, size_out: usize) {
        let took = self.start.elapsed();
        let requests = &self.handles.requests;
        requests.record(took, failed, self.size_in, size_out);
    }
}

/// `stream`, with `record` seeing each item and `state` dropped (which is when a record such as
/// [`GatewayRequest`] is written, or a span held there ends) as soon as the stream ends, or
/// when it is dropped before its end (the client went away). Dropping at the end, not when
/// the server gets round to dropping the stream, means a client that has seen the end finds
/// the stream counted.
pub(crate) fn record_stream<S, G>(
    stream: S,
    state: G,
    mut record: impl FnMut(&mut G, &S::Item) + Send + 'static,
) -> futures::stream::BoxStream<'static, S::Item>
where
    S: futures::Stream + Send + 'static,
    S::Item: Send,
    G: Send + 'static,
{
    use futures::StreamExt;
    let held = Arc::new(std::sync::Mutex::new(Some(state)));
    let at_end = held.clone();
    let items = stream.map(move |item| {
        if let Some(state) = held.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            record(state, &item);
        }
        item
    });
    let end = futures::stream::once(async move {
        at_end.lock().unwrap_or_else(|e| e.into_inner()).take();
    })
    .filter_map(|()| std::future::ready(None));
    items.chain(end).boxed()
}

/// The gateway's metrics and where they are served.
pub(crate) struct GatewayMonitoring {
    pub metrics: Arc<GatewayMetrics>,
    pub port: u16,
}

/// With `monitoring` on, registers the gateway's metrics and serves them on `host` and
/// `port_monitoring` (a free port when None) until `shutdown`; None with it off.
pub(crate) async fn serve_gateway(
    monitoring: bool,
    host: &str,
    port_monitoring: Option<u16>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Option<GatewayMonitoring>, crate::net::ListenError> {
    if !monitoring {
        return Ok(None);
    }
    let port = port_monitoring.unwrap_or(0);
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|e| crate::net::ListenError::of(host, port, e))?;
    let port = listener
        .local_addr()
        .map_err(|e| crate::net::ListenError::of(host, port, e))?
        .port();
    let mut registry = Registry::default();
    let metrics = GatewayMetrics::new(&mut registry);
    tokio::spawn(serve(Arc::new(registry), listener, shutdown));
    tracing::info!("serving the gateway's metrics on http://{host}:{port}/metrics");
    Ok(Some(GatewayMonitoring { metrics, port }))
}

/// Serves `GET /metrics` (Prometheus' text format) on `listener` until `shutdown`.
pub(crate) async fn serve(
    registry: Arc<Registry>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move {
                let mut text = String::new();
                match prometheus_client::encoding::text::encode(&mut text, &registry) {
                    Ok(()) => (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                        .into_response(),
                    Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
                        .into_response(),
                }
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

use axum::response::IntoResponse;
