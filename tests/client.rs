//! The client, library and CLI, against a real `jina flow` over gRPC, HTTP and WebSocket.

mod common;

use common::*;
use jina::client::{Client, ClientError, InputFormat, PostOptions, inputs};
use jina::flow::Protocol;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A CSV of `n` documents: id, sentence (→ text), lang (→ tags).
fn csv_of(files: &Files, n: usize) -> std::path::PathBuf {
    let mut text = String::from("id,sentence,lang\n");
    for i in 0..n {
        text.push_str(&format!("doc{i},sentence number {i},en\n"));
    }
    files.write("docs.csv", &text)
}

#[tokio::test]
async fn ten_thousand_csv_docs_in_requests_of_100_over_every_protocol() {
    let flow = start_flow("  - {name: stamp, uses: Visit}\n");
    let csv = csv_of(&flow.files, 10_000);
    for (protocol, port) in [
        (Protocol::Grpc, flow.grpc),
        (Protocol::Http, flow.http),
        (Protocol::Websocket, flow.ws),
    ] {
        let client = Client::connect(protocol, "127.0.0.1", port).await.unwrap();
        let resolver = [("sentence".to_string(), "text".to_string())].into();
        let docs = inputs::open(csv.to_str().unwrap(), InputFormat::Csv, &resolver).unwrap();
        let seen = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
        let responses = Arc::new(Mutex::new(0usize));
        let (s, r) = (seen.clone(), responses.clone());
        let options = PostOptions {
            request_size: 100,
            ..Default::default()
        }
        .on_done(move |resp| {
            *r.lock().unwrap() += 1;
            let docs = resp.docs().unwrap();
            assert_eq!(docs.len(), 100);
            for d in docs.iter() {
                assert_eq!(d.matches.len(), 1, "the executor saw it");
                assert!(d.text.as_deref().unwrap().starts_with("sentence number"));
                *s.lock().unwrap().entry(d.id.clone()).or_default() += 1;
            }
        });
        let summary = client.index(docs, options).await.unwrap();
        assert_eq!(
            (summary.requests, summary.docs, summary.failed),
            (100, 10_000, 0),
            "{protocol:?}"
        );
        assert_eq!(*responses.lock().unwrap(), 100, "{protocol:?}");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 10_000, "{protocol:?}: every doc back");
        assert!(seen.values().all(|&n| n == 1), "{protocol:?}: each once");
    }
}

#[test]
fn the_cli_streams_a_csv_and_writes_ndjson_with_a_summary() {
    let flow = start_flow("  - {name: stamp, uses: Visit}\n");
    let csv = csv_of(&flow.files, 1_000);
    let out = flow.files.dir.path().join("out.ndjson");
    for (protocol, port) in [
        ("grpc", flow.grpc),
        ("http", flow.http),
        ("websocket", flow.ws),
    ] {
        let port = port.to_string();
        let (code, text) = run(&[
            "client",
            "post",
            "/index",
            "--port",
            &port,
            "--protocol",
            protocol,
            "--inputs",
            csv.to_str().unwrap(),
            "--field-resolver",
            "sentence=text",
            "--request-size",
            "50",
            "--show-progress",
            "--output",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("done: 20 requests (1000 docs)"), "{text}");
        let lines = std::fs::read_to_string(&out).unwrap();
        let ids: std::collections::HashSet<String> = lines
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            (lines.lines().count(), ids.len()),
            (1000, 1000),
            "{protocol}"
        );
    }
}

#[tokio::test]
async fn one_failing_request_fires_on_error_once_and_the_others_succeed() {
    let flow = start_flow("  - {name: flaky, uses: Fail, uses_with: {every: 5}}\n");
    let client = Client::connect(Protocol::Grpc, "127.0.0.1", flow.grpc)
        .await
        .unwrap();
    let counts = Arc::new(Mutex::new((0, 0, 0)));
    let (d, e, a) = (counts.clone(), counts.clone(), counts.clone());
    let options = PostOptions {
        request_size: 1,
        continue_on_error: true,
        ..Default::default()
    }
    .on_done(move |_| d.lock().unwrap().0 += 1)
    .on_error(move |r| {
        assert_eq!(
            r.status().unwrap().exception.as_ref().unwrap().executor,
            "flaky"
        );
        e.lock().unwrap().1 += 1
    })
    .on_always(move |_| a.lock().unwrap().2 += 1);
    let docs: Vec<_> = (0..5)
        .map(|i| jina::Document::from_text(format!("d{i}")))
        .collect();
    let summary = client.post("/", docs.clone(), options).await.unwrap();
    assert_eq!(*counts.lock().unwrap(), (4, 1, 5));
    assert_eq!(summary.failed, 1);
    // Without continue_on_error the post stops with the failure, naming the executor.
    let err = client
        .post(
            "/",
            docs,
            PostOptions {
                request_size: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Failed { executor, .. } if executor == "flaky"),
        "{err}"
    );

    let csv = csv_of(&flow.files, 5);
    let port = flow.grpc.to_string();
    let args = [
        "client",
        "post",
        "/",
        "--port",
        &port,
        "--inputs",
        csv.to_str().unwrap(),
        "--request-size",
        "1",
    ];
    let (code, text) = run(&[&args[..], &["--continue-on-error"]].concat());
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("1 of 5 requests failed"), "{text}");
    let (code, text) = run(&args);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("error: request") && text.contains("failed in flaky"),
        "{text}"
    );
}

#[test]
fn bad_inputs_and_unreachable_gateways_give_one_clear_line() {
    let flow = start_flow("  - {name: a, uses: BaseExecutor}\n");
    let files = &flow.files;
    let bad_csv = files.write("bad.csv", "id,text\n1,a\n2,b,extra\n");
    let bad_ndjson = files.write("bad.ndjson", "{\"text\": \"ok\"}\n{oops\n");
    let unknown = files.write("data.bin", "x");
    let closed = free_port().to_string();
    let serving = flow.grpc.to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--inputs", bad_csv.to_str().unwrap()],
            "bad.csv:3: expected 2 fields as in the header, found 3",
        ),
        (
            vec!["--inputs", bad_ndjson.to_str().unwrap()],
            "bad.ndjson:2: not valid JSON",
        ),
        (
            vec!["--inputs", unknown.to_str().unwrap()],
            "cannot tell its format",
        ),
        (
            vec!["--inputs", "/no/such.csv"],
            "/no/such.csv: no such file",
        ),
        (
            vec!["--inputs", "/no/such/*.txt"],
            "/no/such/*.txt: matches no file",
        ),
        (vec![], "cannot reach the gateway at 127.0.0.1:"),
    ];
    for (extra, expected) in cases {
        let port = if expected.starts_with("cannot reach") {
            closed.as_str()
        } else {
            serving.as_str()
        };
        let start = Instant::now();
        let args = [
            &["client", "post", "/index", "--port", port][..],
            &extra[..],
        ]
        .concat();
        let (code, out) = run(&args);
        assert_eq!(code, 1, "{args:?}: {out}");
        let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(errors.len(), 1, "{out}");
        assert_eq!(
            errors[0].matches(expected).count(),
            1,
            "said once: {args:?}: {out}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "within the connect timeout"
        );
    }
    let (code, out) = run(&["ping", &format!("127.0.0.1:{closed}")]);
    assert_eq!(code, 1);
    assert!(out.contains("Connection refused"), "{out}");
}

#[test]
fn ping_says_serving() {
    let flow = start_flow("  - {name: a, uses: BaseExecutor}\n");
    for (protocol, port) in [
        ("grpc", flow.grpc),
        ("http", flow.http),
        ("websocket", flow.ws),
    ] {
        let (code, out) = run(&["ping", &format!("127.0.0.1:{port}"), "--protocol", protocol]);
        assert_eq!(code, 0, "{protocol}: {out}");
        assert!(out.contains("is serving"));
    }
}
