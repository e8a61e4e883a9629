//! Streaming endpoints (Jina 3's generator endpoints, `stream_doc`) through the real binary:
//! each yielded document reaches the client as it is yielded, over gRPC, HTTP (Server-Sent
//! Events) and WebSocket; the Python Jina Client streams from our Flow; a Python generator
//! executor streams through our gateway; a Python Flow streams through our executor; a client
//! that goes away ends the handler.

mod common;

use common::*;
use futures::StreamExt;
use jina::Document;
use jina::client::Client;
use jina::flow::Protocol;
use std::time::{Duration, Instant};

const PEER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peer");

/// Ten words: a stream of ten documents from a tokenizer.
const TEN_WORDS: &str = "one two three four five six seven eight nine ten";

/// "Well under a second" for the first of ten documents yielded 200 ms apart: the stream is
/// not gathered first (that would take two seconds).
const FIRST_DOC_WITHIN: Duration = Duration::from_millis(700);

/// Streams `text` to `endpoint` with our client; each document with its arrival time.
async fn stream(
    protocol: Protocol,
    port: u16,
    endpoint: &str,
    text: &str,
) -> Vec<(Duration, Document)> {
    let client = Client::connect(protocol, "127.0.0.1", port).await.unwrap();
    let start = Instant::now();
    let docs = client.stream_doc(endpoint, &Document::from_text(text), &Default::default());
    docs.map(|d| {
        (
            start.elapsed(),
            d.unwrap_or_else(|e| panic!("{protocol:?}: {e}")),
        )
    })
    .collect()
    .await
}

/// Asserts that `got` is `words` in order, the first within [`FIRST_DOC_WITHIN`] and the
/// last a good while after it (they came one by one).
fn assert_streamed(protocol: Protocol, got: &[(Duration, Document)], words: &[String]) {
    let texts: Vec<&str> = got
        .iter()
        .map(|(_, d)| d.text.as_deref().unwrap())
        .collect();
    assert_eq!(texts, words, "{protocol:?}");
    let (first, last) = (got[0].0, got[got.len() - 1].0);
    assert!(
        first < FIRST_DOC_WITHIN,
        "{protocol:?}: the first document came after {first:?}"
    );
    assert!(
        last - first > Duration::from_millis(1500),
        "{protocol:?}: all came at once ({first:?} .. {last:?}): buffered"
    );
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_document_of_a_slow_stream_arrives_as_it_is_yielded_over_every_protocol() {
    // Visit does not stream: the gateway picks the tokenizer, whose handler is a generator.
    let flow = start_flow(
        "  - {name: visit, uses: Visit}\n  - name: tokens\n    uses: Tokenizer\n    uses_with: {delay_ms: 200}\n",
    );
    for (protocol, port) in [
        (Protocol::Grpc, flow.grpc),
        (Protocol::Http, flow.http),
        (Protocol::Websocket, flow.ws),
    ] {
        let got = stream(protocol, port, "/generate", TEN_WORDS).await;
        assert_streamed(protocol, &got, &words(TEN_WORDS));
        for (i, (_, doc)) in got.iter().enumerate() {
            assert_eq!(doc.tags["position"], i, "{protocol:?}");
        }
    }
    // A plain post to the streaming endpoint gets all that it yields.
    let client = Client::connect(Protocol::Grpc, "127.0.0.1", flow.grpc)
        .await
        .unwrap();
    let summary = client
        .post(
            "/generate",
            Document::from_text("a b c"),
            jina::client::PostOptions {
                return_results: true,
                parameters: serde_json::json!({"delay_ms": 0})
                    .as_object()
                    .unwrap()
                    .clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let docs = summary.results[0].docs().unwrap();
    let texts: Vec<&str> = docs.iter().filter_map(|d| d.text.as_deref()).collect();
    assert_eq!(texts, ["a", "b", "c"]);
}

#[test]
fn jina_client_stream_prints_each_document_as_it_arrives() {
    let flow = start_flow("  - {name: tokens, uses: Tokenizer, uses_with: {delay_ms: 100}}\n");
    for (protocol, port) in [
        ("grpc", flow.grpc),
        ("http", flow.http),
        ("websocket", flow.ws),
    ] {
        let port = port.to_string();
        let args = [
            "client",
            "stream",
            "/generate",
            "--port",
            &port,
            "--protocol",
            protocol,
        ];
        let (code, out) = run(&[&args[..], &["--text", "streams arrive one at a time"]].concat());
        assert_eq!(code, 0, "{protocol}: {out}");
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            words("streams arrive one at a time"),
            "{protocol}"
        );
        let (code, out) = run(&[
            &args[..],
            &["--doc", r#"{"text": "a b", "tags": {"k": 1}}"#, "--json"],
        ]
        .concat());
        assert_eq!(code, 0, "{protocol}: {out}");
        let docs: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(docs.len(), 2, "{protocol}: {out}");
        assert_eq!(docs[1]["text"], "b");
        assert_eq!(docs[1]["tags"]["position"], 1);
    }
    let port = flow.grpc.to_string();
    let (code, out) = run(&["client", "stream", "/generate", "--port", &port]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("--text TEXT or --doc JSON"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_nothing_answers_is_a_clear_error_on_every_face() {
    // One executor, which does not stream: it is not streamed to merely for being the only one.
    let flow = start_flow("  - {name: a, uses: Visit}\n");
    for (protocol, port) in [
        (Protocol::Grpc, flow.grpc),
        (Protocol::Http, flow.http),
        (Protocol::Websocket, flow.ws),
    ] {
        let client = Client::connect(protocol, "127.0.0.1", port).await.unwrap();
        let mut docs =
            client.stream_doc("/generate", &Document::from_text("x"), &Default::default());
        let e = docs.next().await.unwrap().unwrap_err().to_string();
        assert!(
            e.contains("no executor of this Flow streams /generate"),
            "{protocol:?}: {e}"
        );
        assert!(
            docs.next().await.is_none(),
            "{protocol:?}: the stream goes on"
        );
    }
    for path in ["/generate?text=x", "/favicon.ico"] {
        let url = format!("http://127.0.0.1:{}{path}", flow.http);
        let answer = http_client().get(url).send().await.unwrap();
        assert_eq!(answer.status(), 404, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_stream_request_gets_a_one_line_error() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let flow = start_flow("  - {name: tokens, uses: Tokenizer}\n");
    let url = format!("http://127.0.0.1:{}/generate", flow.http);
    for (body, expected) in [
        (
            "[1]",
            "request body: a document must be a JSON object, not a list",
        ),
        ("{\"text\": 3}", "field 'text': expected a string"),
        ("{\"text\": ", "request body: not JSON"),
    ] {
        let answer = http_client()
            .get(&url)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400, "{body}");
        let error: serde_json::Value = answer.json().await.unwrap();
        let error = error["error"].as_str().unwrap();
        assert!(error.contains(expected), "{body}: {error}");
    }
    let ws = format!("ws://127.0.0.1:{}/generate", flow.ws);
    for (frame, expected) in [
        (
            Message::Binary(vec![1u8, 2].into()),
            "the first frame must be text",
        ),
        (Message::Text("[1]".into()), "frame: no `data`"),
        (
            Message::Text("{\"data\": 3}".into()),
            "frame: data: a document must be a JSON object",
        ),
    ] {
        let (mut socket, _) = tokio_tungstenite::connect_async(&ws).await.unwrap();
        socket.send(frame).await.unwrap();
        let Some(Ok(Message::Text(answer))) = socket.next().await else {
            panic!("no error frame for {expected}");
        };
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["event"], "error");
        assert!(
            answer["error"].as_str().unwrap().contains(expected),
            "{answer}"
        );
    }
}

#[test]
fn a_streaming_endpoint_cannot_be_batched() {
    let files = Files::new();
    let flow = files.write(
        "flow.yml",
        "executors:\n  - name: tokens\n    uses: Tokenizer\n    uses_dynamic_batching: {/generate: {preferred_batch_size: 8}}\n",
    );
    let (code, out) = run(&["flow", "--uses", flow.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("uses_dynamic_batching./generate: a streaming handler answers this endpoint"),
        "{out}"
    );
}

/// Runs tests/peer/stream_client.py: the Python Client's `stream_doc`; each line is
/// `SECONDS TEXT POSITION`.
fn python_stream(
    python: &std::path::Path,
    protocol: &str,
    port: u16,
    text: &str,
) -> Vec<(f64, String)> {
    let out = std::process::Command::new(python)
        .args([
            "stream_client.py",
            protocol,
            &port.to_string(),
            "/generate",
            text,
        ])
        .env("JINA_OPTOUT_TELEMETRY", "1")
        .current_dir(PEER_DIR)
        .output()
        .unwrap();
    let printed = text_of(&out);
    assert!(out.status.success(), "{protocol}: {printed}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut parts = l.split_whitespace();
            let seconds: f64 = parts.next().unwrap().parse().unwrap();
            (seconds, parts.next().unwrap().to_string())
        })
        .collect()
}

#[test]
fn the_python_clients_stream_doc_gets_every_document_in_order_over_grpc_and_http() {
    let Some(python) = peer_python() else { return };
    let flow = start_flow(
        "  - {name: visit, uses: Visit}\n  - name: tokens\n    uses: Tokenizer\n    uses_with: {delay_ms: 200}\n",
    );
    for (protocol, port) in [("grpc", flow.grpc), ("http", flow.http)] {
        let got = python_stream(&python, protocol, port, TEN_WORDS);
        let texts: Vec<String> = got.iter().map(|(_, t)| t.clone()).collect();
        assert_eq!(texts, words(TEN_WORDS), "{protocol}");
        assert!(
            got[0].0 < 1.0,
            "{protocol}: the first document came after {} s",
            got[0].0
        );
        assert!(
            got[9].0 - got[0].0 > 1.5,
            "{protocol}: all came at once: {got:?}"
        );
    }
}

/// A Flow whose second executor is tests/peer/streamer.py's generator endpoint (Python),
/// upper-casing each word `delay` seconds apart.
fn python_streaming_flow(python: &std::path::Path, uses_with: &str) -> FlowUnderTest {
    start_flow_env(
        "",
        &format!(
            "  - {{name: visit, uses: Visit}}\n  - name: py\n    uses: PyStreamer\n    py_modules: [{PEER_DIR}/streamer.py]\n    uses_with: {uses_with}\n"
        ),
        &[("JINA_PYTHON", python.as_os_str())],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_generator_executor_streams_through_our_gateway_to_our_client() {
    let Some(python) = peer_python() else { return };
    let flow = python_streaming_flow(&python, "{delay: 0.2}");
    let upper: Vec<String> = words(&TEN_WORDS.to_uppercase());
    for (protocol, port) in [
        (Protocol::Grpc, flow.grpc),
        (Protocol::Http, flow.http),
        (Protocol::Websocket, flow.ws),
    ] {
        let got = stream(protocol, port, "/stream", TEN_WORDS).await;
        assert_streamed(protocol, &got, &upper);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_goes_away_ends_the_handlers_stream() {
    let Some(python) = peer_python() else { return };
    let files = Files::new();
    let log = files.dir.path().join("yielded.log");
    // Fifty words, 100 ms apart: five seconds if nobody stops it.
    let flow = python_streaming_flow(&python, &format!("{{delay: 0.1, log: {}}}", log.display()));
    let text = (0..50)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    for (protocol, port) in [
        (Protocol::Grpc, flow.grpc),
        (Protocol::Http, flow.http),
        (Protocol::Websocket, flow.ws),
    ] {
        let _ = std::fs::remove_file(&log);
        let client = Client::connect(protocol, "127.0.0.1", port).await.unwrap();
        let mut docs =
            client.stream_doc("/stream", &Document::from_text(&text), &Default::default());
        for _ in 0..2 {
            docs.next().await.unwrap().unwrap();
        }
        drop(docs);
        drop(client);
        // What must not happen has no event to wait for: long enough that a handler still
        // running would have yielded 15 more.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let yielded = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count();
        assert!(
            yielded <= 6,
            "{protocol:?}: the handler went on after the client left: {yielded} of 50 yielded"
        );
    }
}

#[test]
fn a_python_flow_streams_through_our_executor() {
    let Some(python) = peer_python() else { return };
    let files = Files::new();
    let tokenizer = files.write("tokenizer.yml", "jtype: Tokenizer\nwith: {delay_ms: 50}\n");
    let (_executor, port) = start_executor(&["--uses", tokenizer.to_str().unwrap()]);
    let out = std::process::Command::new(&python)
        .args(["stream_flow_to_rust.py", &port.to_string()])
        .env("JINA_OPTOUT_TELEMETRY", "1")
        .current_dir(PEER_DIR)
        .output()
        .unwrap();
    let printed = text_of(&out);
    assert!(
        out.status.success() && printed.contains("OK stream"),
        "{printed}"
    );
}
