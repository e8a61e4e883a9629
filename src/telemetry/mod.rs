//! OpenTelemetry traces (`tracing: true`): every request is a trace, exported over OTLP/gRPC to
//! `traces_exporter_host:traces_exporter_port` (Jina 3's keys).
//!
//! The spans are the `tracing` spans the gateway and the executors already open (a `request`
//! span per request, a `call` span per executor the gateway calls), turned into OpenTelemetry
//! spans by tracing-opentelemetry; there is no second instrumentation. The W3C `traceparent`
//! goes along in gRPC metadata (gateway → executor) and is read from the client's gRPC
//! metadata or HTTP headers, so a client's or a Python executor's spans join the same trace.
//!
//! It owns the exporter, the propagator and the (de)serialising of trace context; the
//! subscriber itself is `logging`'s.

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use std::sync::OnceLock;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// OTLP's gRPC port, where a collector listens unless told otherwise.
pub(crate) const DEFAULT_OTLP_PORT: u16 = 4317;

/// The layer that turns our spans into OpenTelemetry spans ([`start`] makes it; `logging`
/// installs it).
pub(crate) type TracesLayer = tracing_opentelemetry::OpenTelemetryLayer<
    tracing_subscriber::Registry,
    opentelemetry_sdk::trace::SdkTracer,
>;

/// Where traces go.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceExport {
    pub host: String,
    pub port: u16,
}

/// Jina 3's flags for traces, on `jina executor` and `jina client post`: read by clap, and
/// written for a child by [`TracingFlags::to_args`].
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct TracingFlags {
    /// Export traces over OTLP/gRPC (docs/observability.md)
    #[arg(long)]
    pub tracing: bool,
    /// The OTLP collector's host, with --tracing
    #[arg(long, default_value = "127.0.0.1")]
    pub traces_exporter_host: String,
    /// The OTLP collector's port, with --tracing
    #[arg(long, default_value_t = DEFAULT_OTLP_PORT)]
    pub traces_exporter_port: u16,
}

impl Default for TracingFlags {
    fn default() -> Self {
        TracingFlags {
            tracing: false,
            traces_exporter_host: "127.0.0.1".into(),
            traces_exporter_port: DEFAULT_OTLP_PORT,
        }
    }
}

impl TracingFlags {
    /// Where to export, with --tracing.
    pub fn export(&self) -> Option<TraceExport> {
        self.tracing.then(|| TraceExport {
            host: self.traces_exporter_host.clone(),
            port: self.traces_exporter_port,
        })
    }

    /// The flags as `jina executor` (ours or Python Jina's) reads them: none without --tracing.
    pub fn to_args(&self) -> Vec<String> {
        match self.tracing {
            true => vec![
                "--tracing".into(),
                "--traces-exporter-host".into(),
                self.traces_exporter_host.clone(),
                "--traces-exporter-port".into(),
                self.traces_exporter_port.to_string(),
            ],
            false => vec![],
        }
    }
}

impl From<Option<&TraceExport>> for TracingFlags {
    fn from(export: Option<&TraceExport>) -> Self {
        match export {
            Some(t) => TracingFlags {
                tracing: true,
                traces_exporter_host: t.host.clone(),
                traces_exporter_port: t.port,
            },
            None => TracingFlags::default(),
        }
    }
}

impl TraceExport {
    /// What Python Jina's executor needs besides the flags: its OTLP exporter speaks TLS
    /// unless told otherwise, and ours (and a collector on loopback) speak plain gRPC.
    pub fn python_env() -> [(String, String); 1] {
        [("OTEL_EXPORTER_OTLP_TRACES_INSECURE".into(), "true".into())]
    }

    /// The same collector as a container on this machine reaches it: a loopback host would be
    /// the container's own, so it becomes `docker_host`, the name the container has for the
    /// machine. The collector must then listen where containers reach it (`0.0.0.0`, or the
    /// Docker bridge's address), not on loopback.
    pub fn seen_from_container(&self, docker_host: &str) -> TraceExport {
        let loopback = self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        TraceExport {
            host: match loopback {
                true => docker_host.to_string(),
                false => self.host.clone(),
            },
            port: self.port,
        }
    }
}

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TelemetryError {
    #[error("tracing: cannot build the OTLP exporter for {endpoint}: {error}")]
    Exporter { endpoint: String, error: String },
}

static PROVIDER: OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> = OnceLock::new();

/// Starts exporting this process's spans, under `service` (the gateway, `enc/rep-1`): the
/// returned layer goes to [`crate::logging::init_traced`]. Once per process, inside a tokio
/// runtime.
pub(crate) fn start(export: &TraceExport, service: &str) -> Result<TracesLayer, TelemetryError> {
    use opentelemetry_otlp::WithExportConfig;
    let endpoint = format!("http://{}:{}", export.host, export.port);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
        .map_err(|e| TelemetryError::Exporter {
            endpoint: endpoint.clone(),
            error: e.to_string(),
        })?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_string())
        .build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let tracer = provider.tracer("jina-rs");
    let _ = PROVIDER.set(provider);
    Ok(tracing_opentelemetry::layer().with_tracer(tracer))
}

/// Sends what is left to the collector; call before the process exits.
pub(crate) fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.force_flush();
        let _ = provider.shutdown();
    }
}

struct Metadata<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            self.0.insert(key, value);
        }
    }
}

struct ReadMetadata<'a>(&'a tonic::metadata::MetadataMap);

impl Extractor for ReadMetadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

struct ReadHeaders<'a>(&'a axum::http::HeaderMap);

impl Extractor for ReadHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Whether traces are exported by this process.
pub(crate) fn enabled() -> bool {
    PROVIDER.get().is_some()
}

/// Writes the current span's context into outgoing gRPC metadata (`traceparent`).
pub(crate) fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    if !enabled() {
        return;
    }
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut Metadata(metadata))
    });
}

/// Makes `span` a child of the context in incoming gRPC metadata, when there is one.
pub(crate) fn adopt_from_metadata(span: &tracing::Span, metadata: &tonic::metadata::MetadataMap) {
    if enabled() && metadata.contains_key("traceparent") {
        let parent =
            opentelemetry::global::get_text_map_propagator(|p| p.extract(&ReadMetadata(metadata)));
        let _ = span.set_parent(parent);
    }
}

/// Makes `span` a child of the context in incoming HTTP headers, when there is one.
pub(crate) fn adopt_from_headers(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if enabled() && headers.contains_key("traceparent") {
        let parent =
            opentelemetry::global::get_text_map_propagator(|p| p.extract(&ReadHeaders(headers)));
        let _ = span.set_parent(parent);
    }
}

/// Writes `span`'s trace id into its `trace_id` field (for JSON logs), when traces are on.
pub(crate) fn record_trace_id(span: &tracing::Span) {
    use opentelemetry::trace::TraceContextExt;
    if enabled() {
        let id = span.context().span().span_context().trace_id();
        span.record("trace_id", tracing::field::display(id));
    }
}

/// `stream`, each poll inside `spans` (entered in order, so a parent before its child). A span
/// that outlives the stream's open, such as a streamed document's, is thus last left when the
/// stream ends, which is when tracing-opentelemetry takes the span to have ended; and what the
/// stream logs carries the request's fields.
pub(crate) fn poll_in_spans<T>(
    stream: futures::stream::BoxStream<'static, T>,
    spans: Vec<tracing::Span>,
) -> futures::stream::BoxStream<'static, T>
where
    T: Send + 'static,
{
    struct InSpans<T> {
        stream: futures::stream::BoxStream<'static, T>,
        spans: Vec<tracing::Span>,
    }
    impl<T> futures::Stream for InSpans<T> {
        type Item = T;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            let this = &mut *self;
            let mut entered: Vec<tracing::span::Entered<'_>> =
                this.spans.iter().map(|s| s.enter()).collect();
            let polled = this.stream.as_mut().poll_next(cx);
            // Left child first.
            while entered.pop().is_some() {}
            polled
        }
    }
    Box::pin(InSpans { stream, spans })
}

#[cfg(test)]
mod tests {
    use super::TraceExport;

    #[test]
    fn a_container_reaches_a_loopback_collector_through_the_docker_host() {
        let at = |host: &str| TraceExport {
            host: host.into(),
            port: 4317,
        };
        for loopback in ["127.0.0.1", "localhost", "::1", "127.0.0.2"] {
            assert_eq!(
                at(loopback).seen_from_container("host.docker.internal"),
                at("host.docker.internal")
            );
        }
        assert_eq!(
            at("10.1.2.3").seen_from_container("host.docker.internal"),
            at("10.1.2.3")
        );
        assert_eq!(
            at("otel.example").seen_from_container("host.docker.internal"),
            at("otel.example")
        );
    }
}
