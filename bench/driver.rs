//! The benchmark driver: one Rust client, pointed at either our Flow or Python Jina's, so both
//! are measured with the same load generator. `bench/run` starts the Flows and calls it.
//!
//!   driver ready      --port P [--timeout S]      seconds until the gateway's dry_run says SUCCESS
//!   driver throughput --port P [--protocol grpc|http] [--docs N] [--chars C] [--request-size R]
//!   driver latency    --port P [--requests N]      sequential 1-doc requests: p50 / p99 in ms
//!   driver floor      [--requests N]               raw tonic unary round trips on loopback
//!   driver soak       --port P --rate R --seconds S  1-doc requests at R per second on one
//!                     Call stream: sent, answered, failed, lost, latency p50 / p99 / max
//!   driver big        --port P --kind text|tensor [--docs N] [--request-size R] [--passes K]
//!                     big documents (100 KB texts, or 224x224x3 float32 tensors): MB/s of
//!                     payload, and this client's CPU seconds per MB
//!   driver echo       --kind text|tensor [--docs N] [--request-size R] [--passes K]
//!                     the floor for `big`: the same requests to a raw tonic echo server in
//!                     this process, same client settings
//!   driver encode     --model DIR --texts FILE [--batch-size B] [--passes K]
//!                     the transformer encoder's floor: the model alone, in this process, on
//!                     every line of FILE in batches of B: sentences/s and ms per batch
//!   driver concurrent --port P --texts FILE [--requests N] [--concurrency C] [--endpoint E]
//!                     N 1-document requests (the lines of FILE in turn), C at a time, each
//!                     its own post: docs/s and latency p50 / p99
//!   driver otlp-sink  --port P [--seconds S]       an OTLP trace collector that counts the
//!                     spans it is sent, for S seconds (default: until killed by SIGTERM)
//!
//! Each prints one JSON object on stdout.

use jina::client::{Client, Inputs, PostOptions};
use jina::flow::Protocol;
use jina::proto::jina::jina_gateway_dry_run_rpc_client::JinaGatewayDryRunRpcClient;
use serde_json::json;
use std::time::{Duration, Instant};

fn arg<T: std::str::FromStr>(args: &[String], flag: &str, default: T) -> T {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    let i = ((sorted_ms.len() as f64 - 1.0) * p).round() as usize;
    sorted_ms[i]
}

async fn ready(port: u16, timeout: Duration) -> f64 {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(channel) =
            jina::grpc::channel("127.0.0.1", port, Duration::from_millis(200), None)
        {
            let mut client = JinaGatewayDryRunRpcClient::new(channel);
            if let Ok(Ok(status)) =
                tokio::time::timeout(Duration::from_millis(500), client.dry_run(())).await
                && status.into_inner().code == 0
            {
                return start.elapsed().as_secs_f64();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f64::NAN
}

async fn throughput(
    port: u16,
    protocol: Protocol,
    docs: usize,
    chars: usize,
    request_size: usize,
) -> serde_json::Value {
    let client = Client::connect(protocol, "127.0.0.1", port)
        .await
        .expect("connect");
    let text: String = "abcdefghij".chars().cycle().take(chars).collect();
    let make = || {
        let text = text.clone();
        Inputs::iter((0..docs).map(move |i| {
            jina::Document::from_text(format!("{i:08}{}", &text[8.min(text.len())..]))
        }))
    };
    // One warm-up pass so connections and caches are set up, then five measured ones: the
    // median is reported (a single 10,000-doc pass is short enough for noise to matter).
    let options = || PostOptions {
        request_size,
        ..Default::default()
    };
    client
        .post("/index", make(), options())
        .await
        .expect("warm-up");
    let mut rates = vec![];
    let mut requests = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let summary = client
            .post("/index", make(), options())
            .await
            .expect("post");
        rates.push(summary.docs as f64 / start.elapsed().as_secs_f64());
        requests = summary.requests;
    }
    rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
    json!({"docs": docs, "requests": requests, "runs": rates.len(), "docs_per_s": rates[rates.len() / 2]})
}

async fn latency(port: u16, requests: usize) -> serde_json::Value {
    let client = Client::connect(Protocol::Grpc, "127.0.0.1", port)
        .await
        .expect("connect");
    let mut ms = Vec::with_capacity(requests);
    for i in 0..requests + 50 {
        let t = Instant::now();
        client
            .post(
                "/",
                jina::Document::from_text("x".repeat(100)),
                PostOptions::default(),
            )
            .await
            .expect("post");
        if i >= 50 {
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    json!({"requests": requests, "p50_ms": percentile(&ms, 0.5), "p99_ms": percentile(&ms, 0.99)})
}

/// Many small requests at once, as many users of one model send them (dynamic batching's case).
async fn concurrent(
    port: u16,
    texts: &str,
    requests: usize,
    concurrency: usize,
    endpoint: &str,
) -> serde_json::Value {
    use futures::StreamExt;
    let text = std::fs::read_to_string(texts).expect("--texts");
    let lines: Vec<&str> = text.lines().collect();
    let client = Client::connect(Protocol::Grpc, "127.0.0.1", port)
        .await
        .expect("connect");
    let one = |i: usize| {
        let (client, doc) = (&client, jina::Document::from_text(lines[i % lines.len()]));
        async move {
            let t = Instant::now();
            client
                .post(endpoint, doc, PostOptions::default())
                .await
                .expect("post");
            t.elapsed().as_secs_f64() * 1000.0
        }
    };
    // A warm-up round, then the measured one.
    let _: Vec<f64> = futures::stream::iter(0..concurrency)
        .map(one)
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let start = Instant::now();
    let mut ms: Vec<f64> = futures::stream::iter(0..requests)
        .map(one)
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let seconds = start.elapsed().as_secs_f64();
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    json!({"requests": requests, "concurrency": concurrency, "docs_per_s": requests as f64 / seconds,
           "p50_ms": percentile(&ms, 0.5), "p99_ms": percentile(&ms, 0.99)})
}

/// The floor: a plain tonic unary call (grpc.health Check) to a server in this process, on
/// loopback.
async fn floor(requests: usize) -> serde_json::Value {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_reporter, service) = tonic_health::server::health_reporter();
    tokio::spawn(
        jina::grpc::server_builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    // tonic's own channel, none of our settings: the floor is what a plain gRPC call costs.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .tcp_nodelay(true)
        .connect_lazy();
    let mut client = HealthClient::new(channel);
    let mut ms = Vec::with_capacity(requests);
    for i in 0..requests + 100 {
        let t = Instant::now();
        client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap();
        if i >= 100 {
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    json!({"requests": requests, "p50_ms": percentile(&ms, 0.5), "p99_ms": percentile(&ms, 0.99)})
}

/// Sends 1-doc requests at `rate` per second for `seconds` on one `JinaRPC.Call` stream and
/// accounts for every one: answered (of which failed, with the first errors) or lost (no answer
/// 10 s after the last was sent).
async fn soak(port: u16, rate: f64, seconds: f64) -> serde_json::Value {
    use futures::StreamExt;
    use jina::proto::jina::jina_rpc_client::JinaRpcClient;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    // tonic's own channel, none of our settings: the floor is what a plain gRPC call costs.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .tcp_nodelay(true)
        .connect_lazy();
    let mut client = jina::unlimited!(JinaRpcClient::new(channel));
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let total = (rate * seconds) as usize;
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    let pending = sent_at.clone();
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = sent.clone();
    let feeder = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for i in 0..total {
            ticks.tick().await;
            let request = jina::request::new_request(
                "/",
                &jina::DocumentArray::from(vec![jina::Document::from_text(format!("soak {i}"))]),
                &Default::default(),
            );
            let id = request.header.as_ref().unwrap().request_id.clone();
            pending.lock().unwrap().insert(id, Instant::now());
            if tx.send(request).await.is_err() {
                break;
            }
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let mut answers = client
        .call(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("Call")
        .into_inner();
    let (mut answered, mut failed) = (0usize, 0usize);
    let mut errors: Vec<String> = vec![];
    let mut ms = Vec::with_capacity(total);
    let mut stream_error = None;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), answers.next()).await;
        let answer = match next {
            Ok(Some(Ok(a))) => a,
            Ok(Some(Err(status))) => {
                stream_error = Some(status.to_string());
                break;
            }
            Ok(None) | Err(_) => break,
        };
        answered += 1;
        let id = answer
            .header
            .as_ref()
            .map(|h| h.request_id.clone())
            .unwrap_or_default();
        if let Some(t) = sent_at.lock().unwrap().remove(&id) {
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        if jina::request::is_error(&answer) {
            failed += 1;
            if errors.len() < 3 {
                let status = answer.header.and_then(|h| h.status).unwrap_or_default();
                errors.push(status.description);
            }
        }
        if answered == total {
            break;
        }
    }
    feeder.abort();
    let lost = sent_at.lock().unwrap().len();
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p| {
        if ms.is_empty() {
            f64::NAN
        } else {
            percentile(&ms, p)
        }
    };
    json!({
        "sent": sent.load(std::sync::atomic::Ordering::Relaxed), "answered": answered, "failed": failed, "lost": lost,
        "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": ms.last().copied().unwrap_or(f64::NAN),
        "first_errors": errors, "stream_error": stream_error,
    })
}

/// The documents of a `big` run, and their payload in bytes.
fn big_docs(kind: &str, docs: usize) -> (Vec<jina::Document>, usize) {
    match kind {
        "text" => {
            let text: String = "abcdefghij".chars().cycle().take(100_000).collect();
            let list = (0..docs)
                .map(|i| jina::Document::from_text(format!("{i:08}{}", &text[8..])))
                .collect();
            (list, docs * 100_000)
        }
        "tensor" => {
            let values: Vec<f32> = (0..224 * 224 * 3)
                .map(|i| (i % 255) as f32 / 255.0)
                .collect();
            let tensor = jina::NdArray::from_f32(&values).reshaped(vec![224, 224, 3]);
            let bytes = tensor.buffer.len();
            let list = (0..docs)
                .map(|i| {
                    let mut d = jina::Document::new();
                    d.id = format!("{i:08}");
                    d.tensor = Some(tensor.clone());
                    d
                })
                .collect();
            (list, docs * bytes)
        }
        other => panic!("--kind {other}: text or tensor"),
    }
}

/// This process's CPU time (user + system) so far, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Posts the big documents `passes` times after one warm-up; the median MB/s of payload, the
/// client's CPU per MB, and the total payload moved (for the Flow's CPU per MB).
async fn big(
    port: u16,
    kind: &str,
    docs: usize,
    request_size: usize,
    passes: usize,
) -> serde_json::Value {
    let client = Client::connect(Protocol::Grpc, "127.0.0.1", port)
        .await
        .expect("connect");
    let (list, payload) = big_docs(kind, docs);
    let options = || PostOptions {
        request_size,
        ..Default::default()
    };
    let mut rates = vec![];
    let mut cpu = 0.0;
    for pass in 0..=passes {
        let inputs = Inputs::iter(list.clone().into_iter());
        let (t, c) = (Instant::now(), cpu_seconds());
        let summary = client
            .post("/index", inputs, options())
            .await
            .expect("post");
        assert_eq!(summary.docs, docs, "every document came back");
        if pass > 0 {
            rates.push(payload as f64 / 1e6 / t.elapsed().as_secs_f64());
            cpu += cpu_seconds() - c;
        }
    }
    rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mb = payload as f64 / 1e6;
    json!({"kind": kind, "docs": docs, "mb_per_pass": mb, "passes": passes + 1, "mb_total": mb * (passes + 1) as f64,
           "mb_per_s": rates[rates.len() / 2], "client_cpu_s_per_mb": cpu / (mb * passes as f64)})
}

/// A raw tonic server that answers each request with itself.
#[derive(Clone)]
struct Echo;

#[tonic::async_trait]
impl jina::proto::jina::jina_single_data_request_rpc_server::JinaSingleDataRequestRpc for Echo {
    async fn process_single_data(
        &self,
        req: tonic::Request<jina::proto::jina::DataRequestProto>,
    ) -> Result<tonic::Response<jina::proto::jina::DataRequestProto>, tonic::Status> {
        Ok(tonic::Response::new(req.into_inner()))
    }
}

/// The floor for `big`: the same requests, built the same way, to an echo server on loopback,
/// sent with the client's concurrency.
async fn echo(kind: &str, docs: usize, request_size: usize, passes: usize) -> serde_json::Value {
    use futures::StreamExt;
    use jina::proto::jina::jina_single_data_request_rpc_client::JinaSingleDataRequestRpcClient;
    use jina::proto::jina::jina_single_data_request_rpc_server::JinaSingleDataRequestRpcServer;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        jina::grpc::server_builder()
            .add_service(jina::unlimited!(JinaSingleDataRequestRpcServer::new(Echo)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = jina::grpc::channel("127.0.0.1", port, Duration::from_secs(1), None).unwrap();
    let client = jina::unlimited!(JinaSingleDataRequestRpcClient::new(channel));
    let (list, payload) = big_docs(kind, docs);
    let mut rates = vec![];
    for pass in 0..=passes {
        let t = Instant::now();
        let requests = list.chunks(request_size.max(1)).map(|chunk| {
            let request = jina::request::new_request(
                "/index",
                &jina::DocumentArray::from(chunk.to_vec()),
                &Default::default(),
            );
            let mut client = client.clone();
            async move {
                client
                    .process_single_data(request)
                    .await
                    .expect("echo")
                    .into_inner()
            }
        });
        let answers: Vec<_> = futures::stream::iter(requests)
            .buffer_unordered(16)
            .collect()
            .await;
        let back: usize = answers.iter().map(jina::request::doc_count).sum();
        assert_eq!(back, docs);
        if pass > 0 {
            rates.push(payload as f64 / 1e6 / t.elapsed().as_secs_f64());
        }
    }
    rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
    json!({"kind": kind, "docs": docs, "mb_per_s": rates[rates.len() / 2]})
}

/// The transformer encoder with no Flow around it: what indexing the texts would cost at best.
fn encode(model: &str, texts: &str, batch_size: usize, passes: usize) -> serde_json::Value {
    use jina::executor::Executor;
    use jina::executor::builtin::TransformerEncoder;
    let text = std::fs::read_to_string(texts).expect("--texts");
    let lines: Vec<&str> = text.lines().collect();
    let args = serde_json::from_value(json!({"model_dir": model, "batch_size": batch_size}))
        .expect("arguments");
    let mut encoder = TransformerEncoder::new(args, &Default::default()).expect("model_dir");
    encoder.open().expect("load the model");
    encoder
        .embed(&lines[..batch_size.min(lines.len())])
        .expect("warm-up");
    let mut seconds = vec![];
    for _ in 0..passes {
        let start = Instant::now();
        encoder.embed(&lines).expect("embed");
        seconds.push(start.elapsed().as_secs_f64());
    }
    seconds.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = seconds[seconds.len() / 2];
    let batches = lines.len().div_ceil(batch_size);
    json!({"sentences": lines.len(), "sentences_per_s": lines.len() as f64 / median,
           "ms_per_batch": median * 1000.0 / batches as f64, "batch_size": batch_size})
}

/// An OTLP/gRPC trace service that only counts: where traced Flows send their spans when
/// tracing's cost is measured.
mod sink {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    };
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Clone, Default)]
    struct Counter(Arc<AtomicU64>);

    #[tonic::async_trait]
    impl TraceService for Counter {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let spans: usize = request
                .into_inner()
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            self.0.fetch_add(spans as u64, Ordering::Relaxed);
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    pub async fn run(port: u16, seconds: f64) -> serde_json::Value {
        let counter = Counter::default();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(counter.clone()))
            .serve(([127, 0, 0, 1], port).into());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        let wait = async {
            if seconds > 0.0 {
                tokio::time::sleep(std::time::Duration::from_secs_f64(seconds)).await;
            } else {
                term.recv().await;
            }
        };
        tokio::select! {
            served = server => served.expect("serve"),
            _ = wait => {}
        }
        serde_json::json!({"spans": counter.0.load(Ordering::Relaxed)})
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let port: u16 = arg(&args, "--port", 0);
    let result = match args.first().map(String::as_str) {
        Some("ready") => {
            json!({"seconds": ready(port, Duration::from_secs_f64(arg(&args, "--timeout", 120.0))).await})
        }
        Some("throughput") => {
            let protocol =
                Protocol::parse(&arg(&args, "--protocol", "grpc".to_string())).expect("protocol");
            throughput(
                port,
                protocol,
                arg(&args, "--docs", 10_000),
                arg(&args, "--chars", 100),
                arg(&args, "--request-size", 100),
            )
            .await
        }
        Some("latency") => latency(port, arg(&args, "--requests", 1000)).await,
        Some("floor") => floor(arg(&args, "--requests", 10_000)).await,
        Some("big") => {
            big(
                port,
                &arg(&args, "--kind", "text".to_string()),
                arg(&args, "--docs", 1000),
                arg(&args, "--request-size", 10),
                arg(&args, "--passes", 3),
            )
            .await
        }
        Some("echo") => {
            echo(
                &arg(&args, "--kind", "text".to_string()),
                arg(&args, "--docs", 1000),
                arg(&args, "--request-size", 10),
                arg(&args, "--passes", 3),
            )
            .await
        }
        Some("soak") => {
            soak(
                port,
                arg(&args, "--rate", 1000.0),
                arg(&args, "--seconds", 60.0),
            )
            .await
        }
        Some("concurrent") => {
            concurrent(
                port,
                &arg(&args, "--texts", String::new()),
                arg(&args, "--requests", 1000),
                arg(&args, "--concurrency", 64),
                &arg(&args, "--endpoint", "/search".to_string()),
            )
            .await
        }
        Some("otlp-sink") => sink::run(port, arg(&args, "--seconds", 0.0)).await,
        Some("encode") => encode(
            &arg(&args, "--model", String::new()),
            &arg(&args, "--texts", String::new()),
            arg(&args, "--batch-size", 32),
            arg(&args, "--passes", 3),
        ),
        _ => {
            eprintln!(
                "usage: driver ready|throughput|latency|floor|soak|big|echo|encode|concurrent|otlp-sink [--port P] ..."
            );
            std::process::exit(2);
        }
    };
    println!("{result}");
}
