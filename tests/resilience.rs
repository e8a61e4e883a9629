//! A Flow that heals and holds, through the real binary: supervision and restarts, retries
//! across replicas, timeouts, size limits, errors on the gRPC stream, and the checks that keep
//! other web pages out.

mod common;
#[path = "common/raw.rs"]
mod raw;

use common::*;
use jina::document::{Document, DocumentArray};
use jina::proto::jina::DataRequestProto;
use jina::request;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn one_doc_request(endpoint: &str, id: &str) -> DataRequestProto {
    request(endpoint, vec![doc_with_id("hello", id)])
}

fn exception_of(answer: &DataRequestProto) -> (String, String) {
    let status = answer.header.as_ref().unwrap().status.clone().unwrap();
    let e = status.exception.unwrap_or_default();
    (e.name, status.description)
}

fn kill(pid: u32) {
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

#[tokio::test]
async fn a_killed_executor_is_reaped_logged_once_restarted_and_serves_again() {
    let flow = start_flow("  - {name: victim, uses: Visit}\n");
    let old = children_of(flow.proc.child.id());
    assert_eq!(old.len(), 1);
    kill(old[0]);
    let killed = Instant::now();
    loop {
        let answer = &post_grpc(flow.grpc, vec![one_doc_request("/", "a")]).await[0];
        if !request::is_error(answer) {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "no success 5 s after the kill: {:?}",
            exception_of(answer)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Reaped: not even a zombie is left of the old process.
    assert!(
        !std::path::Path::new(&format!("/proc/{}", old[0])).exists(),
        "the killed child was not reaped"
    );
    let new = children_of(flow.proc.child.id());
    assert_eq!(new.len(), 1, "one executor again");
    assert_ne!(new, old);
    let output = flow.proc.output();
    assert_eq!(
        output.matches("[E]: victim exited (signal: 9").count(),
        1,
        "the exit is logged once as an error:\n{output}"
    );
    assert!(output.contains("victim restarted and ready"), "{output}");
}

#[tokio::test]
async fn while_an_executor_is_down_health_dry_run_and_errors_name_it() {
    let flow = start_flow(
        "  - {name: victim, uses: Visit, restart: never}\n  - {name: other, uses: Visit}\n",
    );
    let address = format!("127.0.0.1:{}", flow.grpc);
    let (code, _) = run(&["ping", &address]);
    assert_eq!(code, 0);
    let victim = children_of(flow.proc.child.id())[0];
    kill(victim);
    assert!(wait_all_gone(&[victim], Duration::from_secs(5)).is_empty());
    // Its supervisor marks it down as it reaps it.
    eventually(Duration::from_secs(5), || run(&["ping", &address]).0 == 1);
    let (code, out) = run(&["ping", &address]);
    assert_eq!(code, 1, "the gateway's health says NOT_SERVING: {out}");
    assert!(out.contains("not serving"), "{out}");
    let dry: Value = http_client()
        .get(format!("http://127.0.0.1:{}/dry_run", flow.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dry["code"], 1, "{dry}");
    assert!(
        dry["description"]
            .as_str()
            .unwrap()
            .contains("victim exited"),
        "{dry}"
    );
    // Many requests while it is down: each fails at once, naming it; the log stays short.
    let requests = (0..300)
        .map(|i| one_doc_request("/", &i.to_string()))
        .collect();
    let started = Instant::now();
    let answers = post_grpc(flow.grpc, requests).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    for a in &answers {
        let (name, description) = exception_of(a);
        assert_eq!(name, "ConnectionError");
        assert!(
            description.contains("executor 'victim' is down"),
            "{description}"
        );
    }
    let output = flow.proc.output();
    let warnings = output.matches("executor 'victim' is down").count();
    assert!(
        warnings <= 2,
        "{warnings} warnings for 300 failures:\n{output}"
    );
}

#[tokio::test]
async fn killing_one_of_two_replicas_under_load_fails_no_request() {
    let flow = start_flow("  - {name: pair, uses: Visit, replicas: 2, idempotent: true}\n");
    let replicas = children_of(flow.proc.child.id());
    assert_eq!(replicas.len(), 2);
    let (tx, rx) = tokio::sync::mpsc::channel::<DataRequestProto>(16);
    let feeder = tokio::spawn(async move {
        for i in 0..2000 {
            if i == 1000 {
                kill(replicas[0]);
            }
            tx.send(one_doc_request("/", &i.to_string())).await.unwrap();
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    });
    let mut client =
        jina::proto::jina::jina_rpc_client::JinaRpcClient::new(channel(flow.grpc).await);
    let answers: Vec<DataRequestProto> = {
        use futures::TryStreamExt;
        client
            .call(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner()
            .try_collect()
            .await
            .unwrap()
    };
    feeder.await.unwrap();
    assert_eq!(answers.len(), 2000);
    let failed: Vec<_> = answers
        .iter()
        .filter(|a| request::is_error(a))
        .map(exception_of)
        .collect();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        failed.first()
    );
    assert!(flow.proc.output().contains("pair/rep-0 exited"));
}

#[tokio::test]
async fn timeout_send_gives_a_timeout_error_on_every_protocol() {
    let flow = start_flow_with(
        "  timeout_send: 500\n",
        "  - name: slow\n    uses: {jtype: Sleep, with: {ms: 5000}}\n",
    );
    let check = |name: &str, description: &str, took: Duration| {
        assert_eq!(name, "TimeoutError", "{description}");
        assert!(description.contains("slow"), "{description}");
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
            "took {took:?}"
        );
    };
    let t = Instant::now();
    let grpc = &post_grpc(flow.grpc, vec![one_doc_request("/", "g")]).await[0];
    let (name, description) = exception_of(grpc);
    check(&name, &description, t.elapsed());
    let t = Instant::now();
    // Over HTTP a 504 with the error's header, as Python Jina's face answers.
    let (code, rest) = post_http(flow.http, "/post", json!({"data": [{"text": "h"}]})).await;
    assert_eq!(code, 504, "{rest}");
    let status = &rest["header"]["status"];
    check(
        status["exception"]["name"].as_str().unwrap(),
        status["description"].as_str().unwrap(),
        t.elapsed(),
    );
    // Over WebSocket the socket closes with 1011 and the reason, as Python Jina's face does.
    let t = Instant::now();
    let ws = post_ws(flow.ws, vec![json!({"data": [{"text": "w"}]})]).await;
    let closed = &ws[0]["closed"];
    assert_eq!(closed["code"], 1011, "{ws:?}");
    check(
        "TimeoutError",
        closed["reason"].as_str().unwrap(),
        t.elapsed(),
    );
}

#[tokio::test]
async fn the_request_headers_timeout_holds_over_rest() {
    let flow = start_flow("  - name: slow\n    uses: {jtype: Sleep, with: {ms: 5000}}\n");
    let t = Instant::now();
    let (code, rest) = post_http(
        flow.http,
        "/post",
        json!({"data": [{"text": "h"}], "header": {"timeout": 300}}),
    )
    .await;
    assert_eq!(code, 504, "{rest}");
    assert_eq!(
        rest["header"]["status"]["exception"]["name"],
        "TimeoutError"
    );
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn garbage_on_the_call_stream_is_invalid_argument_after_the_answers_before_it() {
    use prost::Message;
    let flow = start_flow("  - {name: e, uses: Visit}\n");
    let mut grpc = tonic::client::Grpc::new(channel(flow.grpc).await);
    grpc.ready().await.unwrap();
    let valid = one_doc_request("/", "before").encode_to_vec();
    // Field 1 as a length-delimited value whose length runs past the end.
    let garbage = vec![0x0a, 0xff, 0xff, 0x01, 0x02];
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/jina.JinaRPC/Call");
    let messages = futures::stream::iter([valid, garbage]);
    let mut answers = grpc
        .streaming(tonic::Request::new(messages), path, raw::RawCodec)
        .await
        .unwrap()
        .into_inner();
    let first = answers
        .message()
        .await
        .expect("the request before is answered");
    let first = first.expect("an answer, not the end");
    assert_eq!(
        request::docs(&first).unwrap().iter().next().unwrap().id,
        "before"
    );
    let end = answers.message().await.expect_err("then the stream fails");
    assert_eq!(end.code(), tonic::Code::InvalidArgument, "{end:?}");
    assert!(
        end.message().contains("DataRequestProto"),
        "{}",
        end.message()
    );
}

#[tokio::test]
async fn one_size_limit_holds_on_grpc_http_and_websocket() {
    let flow = start_flow_with(
        "  max_request_bytes: 100000\n",
        "  - {name: e, uses: Visit}\n",
    );
    let big = "x".repeat(200_000);
    // gRPC: RESOURCE_EXHAUSTED.
    let mut client =
        jina::proto::jina::jina_rpc_client::JinaRpcClient::new(channel(flow.grpc).await);
    let req = request::new_request(
        "/",
        &DocumentArray::from(vec![Document::from_text(&big)]),
        &Default::default(),
    );
    let outcome = match client.call(tokio_stream::iter(vec![req])).await {
        Ok(answers) => {
            let mut answers = answers.into_inner();
            answers.message().await.map(|_| ())
        }
        Err(status) => Err(status),
    };
    let status = outcome.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    // HTTP: 413 with the JSON error.
    let (code, answer) = post_http(flow.http, "/post", json!({"data": [{"text": big}]})).await;
    assert_eq!(code, 413, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("100000 bytes"),
        "{answer}"
    );
    // A small one still goes through.
    let (code, _) = post_http(flow.http, "/post", json!({"data": [{"text": "small"}]})).await;
    assert_eq!(code, 200);
    // WebSocket: a close frame with code 1009 and the reason.
    let frame = json!({"data": [{"text": big}]}).to_string();
    let (code, reason) = websocket_close_after(flow.ws, frame).await;
    assert_eq!(code, 1009);
    assert!(reason.contains("max_request_bytes"), "{reason}");
}

#[tokio::test]
async fn an_external_executor_that_never_answers_fails_the_start_naming_it() {
    let files = Files::new();
    let port = free_port();
    let yaml = files.write(
        "flow.yml",
        &format!(
            "executors:\n  - {{name: faraway, external: true, host: 127.0.0.1, port_in: {port}, timeout_ready: 1000}}\n"
        ),
    );
    let started = Instant::now();
    let (code, out) = run(&["flow", "--uses", yaml.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        out.contains(&format!(
            "faraway: the external executor at 127.0.0.1:{port} did not answer within 1s (timeout_ready)"
        )),
        "{out}"
    );
    assert!(!out.contains("Flow is ready to use!"), "{out}");
}

#[tokio::test]
async fn cross_origin_pages_are_refused_unless_cors_is_on() {
    let flow = start_flow("  - {name: e, uses: Visit}\n");
    let http = http_client();
    let url = format!("http://127.0.0.1:{}/post", flow.http);
    // A text/plain POST (a page may send one anywhere without asking) is refused.
    let plain = http
        .post(&url)
        .header("content-type", "text/plain")
        .body(r#"{"data": []}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status().as_u16(), 415);
    // So is a JSON POST from another origin.
    let foreign = http
        .post(&url)
        .header("origin", "http://evil.example")
        .json(&json!({"data": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status().as_u16(), 403);
    let why: Value = foreign.json().await.unwrap();
    assert!(
        why["error"].as_str().unwrap().contains("cors: true"),
        "{why}"
    );
    // The gateway's own page (same origin) still works.
    let own = http
        .post(format!("http://127.0.0.1:{}/post", flow.http))
        .header("origin", format!("http://127.0.0.1:{}", flow.http))
        .json(&json!({"data": [{"text": "q"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status().as_u16(), 200);
    // A WebSocket from another origin is refused at the handshake.
    let mut ws = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://127.0.0.1:{}/", flow.ws),
    )
    .unwrap();
    ws.headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(ws).await;
    assert!(
        refused.is_err(),
        "a foreign origin's WebSocket was accepted"
    );

    // With cors: true, the preflight is answered and other origins may call.
    let open = start_flow_with("  cors: true\n", "  - {name: e, uses: Visit}\n");
    let preflight = http
        .request(
            reqwest::Method::OPTIONS,
            format!("http://127.0.0.1:{}/post", open.http),
        )
        .header("origin", "http://elsewhere.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert!(
        preflight
            .headers()
            .contains_key("access-control-allow-origin"),
        "{:?}",
        preflight.headers()
    );
    let allowed = http
        .post(format!("http://127.0.0.1:{}/post", open.http))
        .header("origin", "http://elsewhere.example")
        .json(&json!({"data": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status().as_u16(), 200);
}

#[tokio::test]
async fn workspaces_resolve_against_the_yaml_and_index_names_stay_inside() {
    let files = Files::new();
    let elsewhere = Files::new();
    let yaml = files.write(
        "flow.yml",
        "executors:\n  - {name: idx, uses: VectorIndexer, workspace: ws}\n",
    );
    let mut proc = Proc::start_in(
        &["flow", "--uses", yaml.to_str().unwrap()],
        Some(elsewhere.dir.path()),
        &[],
    );
    proc.wait_for_gateway(Duration::from_secs(30));
    assert!(
        files.dir.path().join("ws/idx.redb").exists(),
        "{}",
        proc.output()
    );
    assert!(!elsewhere.dir.path().join("ws").exists());
    drop(proc);

    let bad = files.write(
        "bad.yml",
        "executors:\n  - {name: idx, uses: VectorIndexer, uses_with: {index_name: ../../x}}\n",
    );
    let (code, out) = run(&["flow", "--uses", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        out.contains("index_name '../../x': must be a file name"),
        "{out}"
    );
}

#[test]
fn a_stopped_executor_with_a_slow_request_exits_within_the_grace() {
    let (mut proc, port) = start_executor_env(
        &["--uses", "jtype: Sleep\nwith: {ms: 20000}\n"],
        &[("JINA_LOG_LEVEL", "DEBUG".as_ref())],
    );
    let request = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let mut client =
                jina::proto::jina::jina_single_data_request_rpc_client::JinaSingleDataRequestRpcClient::new(
                    channel(port).await,
                );
            let _ = client.process_single_data(one_doc_request("/", "slow")).await;
        })
    });
    // In flight: the handler has begun.
    proc.wait_for("sleeping 20000 ms", Duration::from_secs(10));
    let stopped = Instant::now();
    proc.signal(libc::SIGTERM);
    proc.wait_exit(Duration::from_secs(10)).expect("exits");
    let took = stopped.elapsed();
    assert!(
        took < Duration::from_millis(4500),
        "took {took:?}; the grace is 3 s"
    );
    let _ = request.join();
}

#[tokio::test]
async fn two_megabytes_of_empty_docs_over_rest_stay_small_and_memory_comes_back() {
    // Over the default max_request_docs (100,000), which this test lifts: it is about what
    // the JSON path costs, whatever the count.
    let flow = start_flow_with(
        "  max_request_docs: 1000000\n",
        "  - {name: e, uses: BaseExecutor}\n",
    );
    let pid = flow.proc.child.id();
    let body = format!("{{\"data\":[{}]}}", vec!["{}"; 700_000].join(","));
    assert!(body.len() > 2_000_000);
    let before = status_kb(pid, "VmRSS");
    for _ in 0..2 {
        let answer = http_client()
            .post(format!("http://127.0.0.1:{}/post", flow.http))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 200);
        let answer: Value = answer.json().await.unwrap();
        assert_eq!(answer["data"].as_array().unwrap().len(), 700_000);
        assert_eq!(answer["header"]["status"]["code"], "SUCCESS");
    }
    // The test runs the debug binary, whose own code is ~20 MB of the RSS (file pages, a few MB
    // in a release build): what the requests cost is the peak less those pages.
    let peak = status_kb(pid, "VmHWM");
    let code = status_kb(pid, "RssFile");
    eprintln!("gateway: peak RSS {peak} kB, of which {code} kB are the binary's pages");
    assert!(
        peak - code < 100 * 1024,
        "peak {peak} kB less {code} kB of code is over 100 MB"
    );
    let after = status_kb(pid, "VmRSS");
    assert!(
        after < before + 25 * 1024,
        "RSS {before} kB before, {after} kB after two posts"
    );
}
