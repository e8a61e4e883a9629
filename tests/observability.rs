//! Seeing inside a running Flow, through the binary.
//!
//! - `monitoring: true`: after 100 posts, the gateway's and each executor's `/metrics` hold
//!   Jina's counters and histograms, and the numbers add up. A real Prometheus server scrapes
//!   the Flow when one is installed (Debian's `prometheus`, which tests/run installs); without
//!   one the test says so and reads the text format itself.
//! - `JINA_LOG_FORMAT=json`: every line is a JSON object, and those logged while a request was
//!   answered carry its id.

#[path = "common/collector.rs"]
mod collector;
mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// The `📈 Prometheus (WHO): http://ADDRESS/metrics` lines of a Flow's ready message.
fn metrics_addresses(output: &str) -> BTreeMap<String, String> {
    output
        .lines()
        .filter_map(|l| l.trim().strip_prefix("📈 Prometheus ("))
        .filter_map(|l| l.split_once("):"))
        .map(|(who, url)| (who.to_string(), url.trim().replace("0.0.0.0", "127.0.0.1")))
        .collect()
}

/// Every sample of a text exposition: `name{labels}` → value.
async fn scrape(url: &str) -> BTreeMap<String, f64> {
    get_text(url)
        .await
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v)))
        .collect()
}

/// The value of the first sample whose name is `name` and whose labels include each of `with`.
fn value(samples: &BTreeMap<String, f64>, name: &str, with: &[&str]) -> f64 {
    samples
        .iter()
        .find(|(k, _)| k.starts_with(&format!("{name}{{")) && with.iter().all(|w| k.contains(w)))
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no {name} with {with:?} in {samples:#?}"))
}

fn requests(n: usize) -> Vec<jina::proto::jina::DataRequestProto> {
    (0..n)
        .map(|i| {
            request(
                "/index",
                vec![jina::Document::from_text(format!("doc {i}"))],
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_document_is_one_request_at_the_gateway_and_one_call_at_the_executor() {
    use futures::StreamExt;
    let flow = start_flow_with(
        "  monitoring: true\n",
        "  - {name: tokens, uses: Tokenizer}\n",
    );
    let addresses = metrics_addresses(&flow.proc.output());
    let client = jina::client::Client::connect(jina::flow::Protocol::Grpc, "127.0.0.1", flow.grpc)
        .await
        .unwrap();
    let doc = jina::Document::from_text("one two three");
    let docs: Vec<_> = client
        .stream_doc("/generate", &doc, &Default::default())
        .collect()
        .await;
    assert_eq!(docs.len(), 3);
    let gateway = scrape(&addresses["gateway"]).await;
    assert_eq!(
        value(&gateway, "jina_successful_requests_total", &["gateway"]),
        1.0
    );
    assert_eq!(value(&gateway, "jina_number_of_pending_requests", &[]), 0.0);
    let executor = scrape(&addresses["tokens"]).await;
    let endpoint = ["executor_endpoint=\"/generate\""];
    assert_eq!(
        value(&executor, "jina_process_request_seconds_count", &endpoint),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_monitored_chain_counts_every_request_at_the_gateway_and_each_executor() {
    let flow = start_flow_with(
        "  monitoring: true\n",
        "  - {name: e1, uses: Visit}\n  - {name: e2, uses: Visit}\n",
    );
    let addresses = metrics_addresses(&flow.proc.output());
    assert_eq!(
        addresses.keys().collect::<Vec<_>>(),
        ["e1", "e2", "gateway"],
        "{}",
        flow.proc.output()
    );
    let answers = post_grpc(flow.grpc, requests(100)).await;
    assert_eq!(answers.len(), 100);

    let gateway = scrape(&addresses["gateway"]).await;
    assert_eq!(
        value(&gateway, "jina_successful_requests_total", &["gateway"]),
        100.0
    );
    assert_eq!(
        value(&gateway, "jina_receiving_request_seconds_count", &[]),
        100.0
    );
    assert_eq!(value(&gateway, "jina_number_of_pending_requests", &[]), 0.0);
    for e in ["e1", "e2"] {
        let hop = format!("executor=\"{e}\"");
        assert_eq!(
            value(&gateway, "jina_sending_request_seconds_count", &[&hop]),
            100.0
        );
        assert_eq!(
            value(&gateway, "jina_sent_request_bytes_count", &[&hop]),
            100.0
        );
    }
    for e in ["e1", "e2"] {
        let executor = scrape(&addresses[e]).await;
        let labels = [
            format!("runtime_name=\"{e}\""),
            "executor_endpoint=\"/index\"".into(),
        ];
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        assert_eq!(
            value(&executor, "jina_successful_requests_total", &labels),
            100.0,
            "{e}"
        );
        assert_eq!(
            value(&executor, "jina_receiving_request_seconds_count", &labels),
            100.0
        );
        assert_eq!(
            value(&executor, "jina_process_request_seconds_count", &labels),
            100.0
        );
        assert_eq!(
            value(&executor, "jina_document_processed_total", &labels),
            100.0
        );
        // The latency histogram's last bucket holds every request.
        assert_eq!(
            value(
                &executor,
                "jina_receiving_request_seconds_bucket",
                &[labels[0], "le=\"+Inf\""]
            ),
            100.0
        );
    }
    prometheus_sees(&addresses, 100.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_executor_counts_its_failures_and_the_gateway_too() {
    let flow = start_flow_with(
        "  monitoring: true\n",
        "  - {name: ok, uses: Visit}\n  - {name: bad, uses: Fail}\n",
    );
    let addresses = metrics_addresses(&flow.proc.output());
    let answers = post_grpc(flow.grpc, requests(10)).await;
    assert!(answers.iter().all(jina::request::is_error));
    let gateway = scrape(&addresses["gateway"]).await;
    assert_eq!(
        value(&gateway, "jina_failed_requests_total", &["gateway"]),
        10.0
    );
    let bad = scrape(&addresses["bad"]).await;
    assert_eq!(value(&bad, "jina_failed_requests_total", &["/index"]), 10.0);
    let ok = scrape(&addresses["ok"]).await;
    assert_eq!(
        value(&ok, "jina_successful_requests_total", &["/index"]),
        10.0
    );
}

/// A real Prometheus scrapes every `/metrics` once and must see `expected` successes at the
/// gateway. Without a Prometheus on the machine, says so (the counts were read above).
async fn prometheus_sees(addresses: &BTreeMap<String, String>, expected: f64) {
    let Some(prometheus) = ["prometheus", "/usr/bin/prometheus"].into_iter().find(|p| {
        std::process::Command::new(p)
            .arg("--version")
            .output()
            .is_ok()
    }) else {
        eprintln!(
            "NOTE: no Prometheus server on this machine: the counts above were read from the text format by this test, not by Prometheus"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let targets: Vec<String> = addresses
        .values()
        .map(|u| {
            format!(
                "'{}'",
                u.trim_start_matches("http://").trim_end_matches("/metrics")
            )
        })
        .collect();
    let config = format!(
        "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: flow\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let server = Proc::start_cmd(
        &[
            prometheus,
            &format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ),
            &format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            &format!("--web.listen-address=127.0.0.1:{port}"),
        ],
        None,
        &[],
    );
    let query = format!(
        "http://127.0.0.1:{port}/api/v1/query?query=jina_successful_requests_total%7Bruntime_name%3D%22gateway%22%7D"
    );
    let start = std::time::Instant::now();
    loop {
        if let Ok(r) = http_client().get(&query).send().await
            && let Ok(body) = r.json::<serde_json::Value>().await
            && let Some(v) = body["data"]["result"][0]["value"][1].as_str()
        {
            assert_eq!(v.parse::<f64>().unwrap(), expected);
            eprintln!(
                "Prometheus {prometheus} scraped the Flow and sees {v} successes at the gateway"
            );
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "Prometheus did not see the Flow: {}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Starts `jina flow` on a gRPC-only Flow YAML (with these extra `with:` keys and executors)
/// that logs in JSON, and waits until it is ready: the process and its port.
fn start_json_flow(files: &Files, with: &str, executors: &str) -> (Proc, u16) {
    start_json_flow_on("grpc", files, with, executors, &[])
}

/// [`start_json_flow`] serving `protocol`, with more variables in its environment.
fn start_json_flow_on(
    protocol: &str,
    files: &Files,
    with: &str,
    executors: &str,
    env: &[(&str, &std::ffi::OsStr)],
) -> (Proc, u16) {
    let port = free_port();
    let flow_yaml = files.write(
        "flow.yml",
        &format!(
            "jtype: Flow\nwith: {{protocol: {protocol}, port: {port}{with}}}\nexecutors:\n{executors}"
        ),
    );
    let mut env = env.to_vec();
    env.push(("JINA_LOG_FORMAT", std::ffi::OsStr::new("json")));
    let mut flow = Proc::start_in(&["flow", "--uses", flow_yaml.to_str().unwrap()], None, &env);
    flow.wait_for("Flow is ready to use!", Duration::from_secs(60));
    (flow, port)
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_parse_line_by_line_and_carry_the_request_id() {
    let files = Files::new();
    let (mut flow, port) = start_json_flow(
        &files,
        "",
        "  - {name: ok, uses: Visit}\n  - {name: bad, uses: Fail}\n",
    );
    let sent = requests(3);
    let ids: Vec<String> = sent
        .iter()
        .map(|r| jina::request::request_id(r).to_string())
        .collect();
    post_grpc(port, sent).await;
    flow.wait_for("failed on purpose", Duration::from_secs(10));
    let output = flow.output();
    let lines: Vec<serde_json::Value> = output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for line in &lines {
        for key in ["time", "level", "name", "pid", "message"] {
            assert!(!line[key].is_null(), "no {key} in {line}");
        }
    }
    let failures: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["name"] == "bad" && l["level"] == "WARN")
        .collect();
    assert!(!failures.is_empty(), "{output}");
    for failure in failures {
        let id = failure["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no request_id: {failure}"));
        assert!(ids.iter().any(|sent| sent == id), "{id} is none of {ids:?}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "SUCCESS" && l["name"] == "ok")
    );
}

/// A gRPC request carrying `traceparent` in its metadata.
fn traced<T>(message: T, traceparent: &str) -> tonic::Request<T> {
    let mut call = tonic::Request::new(message);
    call.metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    call
}

/// Every message of a gRPC answer stream.
async fn collect<T>(answer: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>) -> Vec<T> {
    use futures::TryStreamExt;
    answer.unwrap().into_inner().try_collect().await.unwrap()
}

/// Starts a traced Flow of `executors`, sends it one request (with `protocol` "stream", one
/// document streamed to /generate) under a trace of the test's own (a `traceparent` in the gRPC metadata, as a traced client sends it), stops the Flow so
/// that every process flushes, and returns the spans collected, by name, with the test's
/// (trace id, span id).
/// The Flow logs in JSON (`JINA_LOG_FORMAT=json`); its output comes back too.
async fn one_traced_request(
    executors: &str,
    protocol: &str,
    env: &[(&str, &std::ffi::OsStr)],
    also: &[&str],
) -> (
    std::collections::BTreeMap<String, opentelemetry_proto::tonic::trace::v1::Span>,
    (Vec<u8>, Vec<u8>),
    String,
) {
    let (collector_port, collector) = collector::start().await;
    let files = Files::new();
    let with = format!(
        ", tracing: true, traces_exporter_host: 127.0.0.1, traces_exporter_port: {collector_port}"
    );
    // `stream`: one document streamed over gRPC (`stream_doc`).
    let served = if protocol == "stream" {
        "grpc"
    } else {
        protocol
    };
    let (mut flow, port) = start_json_flow_on(served, &files, &with, executors, env);
    let (trace_id, client_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    // The gateway's span, and a `call` span and its own span per executor.
    let expected = 1 + 2 * executors.lines().count();
    let traceparent = format!("00-{trace_id}-{client_span}-01");
    if protocol == "http" {
        let answer = http_client()
            .post(format!("http://127.0.0.1:{port}/post"))
            .header("traceparent", &traceparent)
            .json(&serde_json::json!({"data": [{"text": "hi"}], "execEndpoint": "/index"}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 200);
    } else if protocol == "stream" {
        use jina::proto::jina::jina_single_document_request_rpc_client::JinaSingleDocumentRequestRpcClient;
        let mut client = JinaSingleDocumentRequestRpcClient::new(channel(port).await);
        let doc = jina::Document::from_text("one two three");
        let req =
            jina::request::new_single_document_request("/generate", &doc, &Default::default());
        let replies = client.stream_doc(traced(req, &traceparent)).await;
        assert_eq!(collect(replies).await.len(), 3);
    } else {
        let mut client =
            jina::proto::jina::jina_rpc_client::JinaRpcClient::new(channel(port).await);
        let answers = client
            .call(traced(tokio_stream::iter(requests(1)), &traceparent))
            .await;
        assert_eq!(collect(answers).await.len(), 1);
    }
    flow.signal(libc::SIGINT);
    assert!(
        flow.wait_exit(Duration::from_secs(30)).is_some(),
        "{}",
        flow.output()
    );
    let start = std::time::Instant::now();
    let hex = |s: &str| {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
    };
    loop {
        let spans: std::collections::BTreeMap<_, _> = collector
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| (s.name.clone(), s.clone()))
            .collect();
        let complete = spans.len() >= expected && also.iter().all(|n| spans.contains_key(*n));
        if complete || start.elapsed() > Duration::from_secs(15) {
            return (spans, (hex(trace_id), hex(client_span)), flow.output());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_post_is_one_trace_from_the_client_through_the_gateway_to_each_executor() {
    let (spans, (trace_id, client_span), _) = one_traced_request(
        "  - {name: e1, uses: Visit}\n  - {name: e2, uses: Visit}\n",
        "grpc",
        &[],
        &[],
    )
    .await;
    let names: Vec<&String> = spans.keys().collect();
    assert_eq!(
        names,
        ["call e1", "call e2", "e1", "e2", "gateway"],
        "{spans:#?}"
    );
    for span in spans.values() {
        assert_eq!(span.trace_id, trace_id, "{} is in another trace", span.name);
    }
    let id = |name: &str| spans[name].span_id.clone();
    let parent = |name: &str| spans[name].parent_span_id.clone();
    assert_eq!(parent("gateway"), client_span);
    assert_eq!(parent("call e1"), id("gateway"));
    assert_eq!(parent("call e2"), id("gateway"));
    assert_eq!(parent("e1"), id("call e1"));
    assert_eq!(parent("e2"), id("call e2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_document_is_one_trace_from_the_client_to_the_streaming_executor() {
    let (spans, (trace_id, client_span), _) = one_traced_request(
        "  - {name: tokens, uses: Tokenizer, uses_with: {delay_ms: 100}}\n",
        "stream",
        &[],
        &[],
    )
    .await;
    let names: Vec<&String> = spans.keys().collect();
    assert_eq!(names, ["call tokens", "gateway", "tokens"], "{spans:#?}");
    for span in spans.values() {
        assert_eq!(span.trace_id, trace_id, "{} is in another trace", span.name);
    }
    let id = |name: &str| spans[name].span_id.clone();
    let parent = |name: &str| spans[name].parent_span_id.clone();
    assert_eq!(parent("gateway"), client_span);
    assert_eq!(parent("call tokens"), id("gateway"));
    assert_eq!(parent("tokens"), id("call tokens"));
    // The spans last as long as the stream: three documents, 100 ms apart.
    let took = |name: &str| spans[name].end_time_unix_nano - spans[name].start_time_unix_nano;
    let took_all: Vec<u64> = ["gateway", "call tokens", "tokens"]
        .iter()
        .map(|n| took(n))
        .collect();
    for name in ["gateway", "call tokens", "tokens"] {
        assert!(
            took(name) >= 250_000_000,
            "{name} took {} ns: {took_all:?}",
            took(name)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_executors_spans_join_the_trace_under_the_gateways_call() {
    let Some(python) = peer_python() else { return };
    let tagger = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peer/tagger.yml");
    // Python Jina's own spans: its gRPC server's, under our call, and its handler's (named by
    // endpoint, below spans of Python Jina's own).
    let (server, handler) = (
        "/jina.JinaSingleDataRequestRPC/process_single_data",
        "/default",
    );
    let (spans, (trace_id, _), output) = one_traced_request(
        &format!("  - {{name: e1, uses: Visit}}\n  - {{name: py, uses: {tagger}}}\n"),
        "grpc",
        &[("JINA_PYTHON", python.as_os_str())],
        &[server, handler],
    )
    .await;
    let span = |name: &str| {
        spans
            .get(name)
            .unwrap_or_else(|| panic!("no span {name}: {spans:#?}\n{output}"))
    };
    for name in ["call py", server, handler] {
        assert_eq!(span(name).trace_id, trace_id, "{name} is in another trace");
    }
    assert_eq!(span(server).parent_span_id, span("call py").span_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_executors_error_is_marked_on_its_span() {
    let (spans, _, output) = one_traced_request(
        "  - {name: ok, uses: Visit}\n  - {name: bad, uses: Fail}\n",
        "grpc",
        &[],
        &[],
    )
    .await;
    // The executor's log line about the failure names the request's trace.
    let failure: serde_json::Value = output
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["name"] == "bad" && l["level"] == "WARN")
        .unwrap_or_else(|| panic!("{output}"));
    assert_eq!(
        failure["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
        "{failure}"
    );
    let code = |name: &str| {
        spans
            .get(name)
            .unwrap_or_else(|| panic!("no span {name}: {spans:#?}"))
            .status
            .as_ref()
            .map_or(0, |s| s.code)
    };
    // 2 is STATUS_CODE_ERROR.
    assert_eq!(code("bad"), 2);
    assert_eq!(code("call bad"), 2);
    assert_eq!(code("gateway"), 2);
    assert_ne!(code("ok"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_post_with_a_traceparent_joins_the_clients_trace() {
    let (spans, (trace_id, client_span), _) =
        one_traced_request("  - {name: e1, uses: Visit}\n", "http", &[], &[]).await;
    let gateway = spans.get("gateway").unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(gateway.trace_id, trace_id);
    assert_eq!(gateway.parent_span_id, client_span);
    assert_eq!(spans["e1"].trace_id, trace_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn jina_client_post_with_tracing_is_the_root_of_the_trace() {
    let (collector_port, collector) = collector::start().await;
    let files = Files::new();
    let with = format!(", tracing: true, traces_exporter_port: {collector_port}");
    let (mut flow, port) = start_json_flow(&files, &with, "  - {name: e1, uses: Visit}\n");
    let docs = files.write("docs.txt", "one line\n");
    let (code, said) = run(&[
        "client",
        "post",
        "/index",
        "--inputs",
        docs.to_str().unwrap(),
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--tracing",
        "--traces-exporter-port",
        &collector_port.to_string(),
    ]);
    assert_eq!(code, 0, "{said}");
    flow.signal(libc::SIGINT);
    assert!(flow.wait_exit(Duration::from_secs(30)).is_some());
    let start = std::time::Instant::now();
    let spans = loop {
        let spans: std::collections::BTreeMap<String, _> = collector
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| (s.name.clone(), s.clone()))
            .collect();
        if spans.len() >= 4 || start.elapsed() > Duration::from_secs(15) {
            break spans;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let names: Vec<&String> = spans.keys().collect();
    assert_eq!(names, ["call e1", "client", "e1", "gateway"], "{spans:#?}");
    let client = &spans["client"];
    assert!(
        client.parent_span_id.is_empty(),
        "the client's span is the root"
    );
    for span in spans.values() {
        assert_eq!(
            span.trace_id, client.trace_id,
            "{} is in another trace",
            span.name
        );
    }
    assert_eq!(spans["gateway"].parent_span_id, client.span_id);
}
