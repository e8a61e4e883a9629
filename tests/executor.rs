//! `jina executor` over the wire: a gRPC client built from our protos talks to the real binary.

mod common;

use common::*;
use jina::document::{Document, DocumentArray, NdArray};
use jina::proto::docarray::NodeProto;
use jina::proto::docarray::node_proto::{Content, DocarrayType};
use jina::proto::jina::{
    DataRequestListProto, jina_data_request_rpc_client::JinaDataRequestRpcClient,
    jina_discover_endpoints_rpc_client::JinaDiscoverEndpointsRpcClient,
    jina_info_rpc_client::JinaInfoRpcClient,
    jina_single_data_request_rpc_client::JinaSingleDataRequestRpcClient,
};
use jina::request;
use serde_json::json;
use std::time::Duration;

fn rich_document() -> Document {
    let mut d = Document::from_text("hello world");
    d.embedding = Some(NdArray::from_f32(&[0.1, 0.2, 0.3]));
    d.tensor = Some(NdArray::from_i64(&[1, 2, 3, 4, 5, 6]).reshaped(vec![2, 3]));
    d.blob = Some(bytes::Bytes::from_static(b"\x00bytes\xff"));
    d.uri = Some("data/hello.txt".into());
    d.mime_type = Some("text/plain".into());
    d.tags = json!({"n": 7, "f": 0.5, "s": "x", "l": [1, "a"], "nested": {"ok": true}})
        .as_object()
        .unwrap()
        .clone();
    let mut m = Document::from_text("a match");
    m.set_score("cosine", 0.875);
    d.matches.push(m);
    d.chunks.push(Document::from_text("a chunk"));
    d.parent_id = Some("parent".into());
    d.granularity = Some(1);
    d.adjacency = Some(2);
    d.weight = Some(1.5);
    d.modality = Some("text".into());
    d.extra.insert(
        "custom_field".into(),
        NodeProto {
            content: Some(Content::Text("kept as sent".into())),
            docarray_type: Some(DocarrayType::Type("str".into())),
        },
    );
    d
}

#[tokio::test]
async fn documents_come_back_with_every_field_intact() {
    let files = Files::new();
    let yml = files.write(
        "exec.yml",
        "jtype: Sleep\nmetas:\n  name: stamp\nrequests:\n  /index: sleep\n",
    );
    let (_p, port) = start_executor(&["--uses", yml.to_str().unwrap()]);
    let mut client = JinaSingleDataRequestRpcClient::new(channel(port).await);
    let sent = rich_document();

    // /index runs a handler: decoded, stamped, re-encoded.
    let resp = client
        .process_single_data(request("/index", vec![sent.clone()]))
        .await
        .unwrap()
        .into_inner();
    assert!(!request::is_error(&resp));
    let mut got = request::docs(&resp).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].tags.remove("stamp"), Some(json!(1)));
    assert_eq!(got[0], sent);

    // BaseExecutor has no handler: passed through untouched.
    let (_base, base_port) = start_executor(&["--uses", "BaseExecutor"]);
    let mut base = JinaSingleDataRequestRpcClient::new(channel(base_port).await);
    let resp = base
        .process_single_data(request("/other", vec![sent.clone()]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(request::docs(&resp).unwrap()[0], sent);
}

#[tokio::test]
async fn health_discovery_status_and_reflection() {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };

    let files = Files::new();
    let yml = files.write(
        "exec.yml",
        "jtype: Sleep\nrequests:\n  /index: sleep\n  /search: sleep\n",
    );
    let (_p, port) = start_executor(&["--uses", yml.to_str().unwrap()]);
    let ch = channel(port).await;

    let health = HealthClient::new(ch.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, 1, "SERVING");

    let endpoints = JinaDiscoverEndpointsRpcClient::new(ch.clone())
        .endpoint_discovery(())
        .await
        .unwrap()
        .into_inner();
    for e in ["/index", "/search", "/default", "_jina_dry_run_"] {
        assert!(
            endpoints.endpoints.contains(&e.to_string()),
            "{e} in {:?}",
            endpoints.endpoints
        );
    }
    let schemas = request::struct_to_json(endpoints.schemas.as_ref().unwrap());
    assert!(schemas["/index"]["input"]["model"]["definitions"].is_object());

    let info = JinaInfoRpcClient::new(ch.clone())
        .status(())
        .await
        .unwrap()
        .into_inner();
    assert!(info.jina.contains_key("jina-rs"));

    let mut reflection = ServerReflectionClient::new(ch);
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }]))
        .await
        .unwrap()
        .into_inner();
    let reply = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply {reply:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for s in [
        "jina.JinaSingleDataRequestRPC",
        "jina.JinaDataRequestRPC",
        "jina.JinaDiscoverEndpointsRPC",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&s.to_string()), "{s} in {names:?}");
    }
}

#[tokio::test]
async fn process_data_merges_three_requests_into_one() {
    let (_p, port) = start_executor(&["--uses", "BaseExecutor"]);
    let mut client = JinaDataRequestRpcClient::new(channel(port).await);

    let shared_id = "shared".to_string();
    let mut requests = Vec::new();
    for i in 0..3 {
        let mut common_doc = Document::from_text("same doc");
        common_doc.id = shared_id.clone();
        common_doc
            .matches
            .push(Document::from_text(format!("match from {i}")));
        let own = Document::from_text(format!("only in {i}"));
        let params = json!({ format!("p{i}"): i }).as_object().unwrap().clone();
        requests.push(request::new_request(
            "/search",
            &vec![common_doc, own].into(),
            &params,
        ));
    }
    // Unmarked, a list is taken as Python Jina's worker takes it: with no handler, the first
    // request comes back.
    let first = client
        .process_data(DataRequestListProto {
            requests: requests.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(request::docs(&first).unwrap().len(), 2);
    // Marked as a join by our gateway, it is merged by id.
    let mut join = tonic::Request::new(DataRequestListProto { requests });
    join.metadata_mut().insert(
        "x-jina-rs-join",
        tonic::metadata::MetadataValue::from_static("merge"),
    );
    let merged = client.process_data(join).await.unwrap().into_inner();
    let docs: DocumentArray = request::docs(&merged).unwrap();
    assert_eq!(docs.len(), 4, "one shared doc + three own docs");
    let shared = docs.get(&shared_id).unwrap();
    assert_eq!(shared.matches.len(), 3);
    // The first request's parameters, as Python Jina keeps them.
    let params = request::parameters(&merged);
    assert_eq!(params.len(), 1, "{params:?}");
    assert_eq!(request::endpoint(&merged), "/search");
}

#[tokio::test]
async fn a_failing_handler_gives_error_and_the_next_request_succeeds() {
    let (_p, port) = start_executor(&[
        "--uses",
        "Fail",
        "--uses-with",
        r#"{"on": "/boom", "message": "kaput"}"#,
        "--name",
        "breaker",
    ]);
    let mut client = JinaSingleDataRequestRpcClient::new(channel(port).await);

    let bad = client
        .process_single_data(request("/boom", vec![Document::from_text("x")]))
        .await
        .unwrap()
        .into_inner();
    assert!(request::is_error(&bad));
    let status = bad.header.unwrap().status.unwrap();
    let ex = status.exception.unwrap();
    assert_eq!(ex.name, "RuntimeError");
    assert_eq!(ex.args, vec!["kaput".to_string()]);
    assert_eq!(ex.executor, "breaker");

    let good = client
        .process_single_data(request("/fine", vec![Document::from_text("y")]))
        .await
        .unwrap()
        .into_inner();
    assert!(!request::is_error(&good));
    assert_eq!(request::docs(&good).unwrap()[0].text.as_deref(), Some("y"));
}

// Many threads: the request's task runs while this one waits, blocking, for the executor's line.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_the_request_in_flight_then_exits_cleanly() {
    let (mut p, port) = start_executor_env(
        &["--uses", "Sleep", "--uses-with", r#"{"ms": 700}"#],
        &[("JINA_LOG_LEVEL", "DEBUG".as_ref())],
    );
    let mut client = JinaSingleDataRequestRpcClient::new(channel(port).await);
    let in_flight = tokio::spawn(async move {
        client
            .process_single_data(request("/", vec![Document::from_text("slow")]))
            .await
    });
    // In flight: the handler has begun.
    p.wait_for("sleeping 700 ms", Duration::from_secs(10));
    p.signal(libc::SIGTERM);
    let resp = in_flight
        .await
        .unwrap()
        .expect("in-flight request answered");
    assert!(!request::is_error(resp.get_ref()));
    let status = p.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status}");
}

#[test]
fn a_sigint_right_after_the_ready_line_stops_it_cleanly() {
    // The handlers must be in place before "ready and listening" is printed: a Flow stops its
    // children as soon as they are ready, and the default action of SIGINT exits with no cleanup.
    // The signal goes out the instant the line is read, to leave no slack for a late handler.
    use std::io::{BufRead, BufReader};
    for _ in 0..10 {
        let port = free_port().to_string();
        let mut child = std::process::Command::new(JINA)
            .args(["executor", "--uses", "BaseExecutor", "--port-in", &port])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start jina");
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        for line in lines.map_while(Result::ok) {
            if line.contains("ready and listening") {
                unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
                break;
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("the executor ignored SIGINT sent right after its ready line");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(status.success(), "{status:?}");
    }
}

#[test]
fn bad_inputs_give_one_clear_line_and_a_nonzero_exit() {
    let files = Files::new();
    let syntax = files.write("syntax.yml", "jtype: Sleep\nwith:\n  ms: [1\n");
    let unknown = files.write("unknown.yml", "jtype: NoSuchExecutor\n");
    let no_handler = files.write(
        "nohandler.yml",
        "jtype: Sleep\nrequests:\n  /index: missing\n",
    );
    let port = free_port().to_string();
    let cases: Vec<(Vec<&str>, i32, String)> = vec![
        (
            vec!["--uses", unknown.to_str().unwrap()],
            1,
            format!(
                "{}: jtype 'NoSuchExecutor' is not a known executor",
                unknown.display()
            ),
        ),
        (
            vec!["--uses", syntax.to_str().unwrap()],
            1,
            format!(
                "{}: did not find expected ',' or ']' at line 4",
                syntax.display()
            ),
        ),
        (
            vec!["--uses", "missing.yml"],
            1,
            "missing.yml: no such file".into(),
        ),
        (
            vec!["--uses", no_handler.to_str().unwrap()],
            1,
            "requests./index: no handler named 'missing'".into(),
        ),
        (
            vec!["--uses", "Sleep", "--uses-with", r#"{"msec": 1}"#],
            1,
            "uses_with.msec: Sleep takes no argument `msec` (it takes: ms)".into(),
        ),
        (
            vec!["--uses", "docker://encoder:latest"],
            1,
            "uses 'docker://encoder:latest': a docker:// image runs as an entry of a Flow".into(),
        ),
        (
            vec!["--listen-fd", "99"],
            1,
            "--listen-fd 99: not an open socket".into(),
        ),
    ];
    for (extra, code, message) in cases {
        let mut args = vec!["executor", "--port-in", port.as_str()];
        args.extend(extra.iter());
        let (got_code, out) = run(&args);
        assert_eq!(got_code, code, "{args:?}: {out}");
        assert!(
            out.contains(&message),
            "{args:?}: expected '{message}' in: {out}"
        );
        assert_eq!(out.trim().lines().count(), 1, "one line: {out}");
        assert!(!out.contains("panicked"), "{out}");
    }

    let (code, out) = run(&["executor", "--port-in", "70000"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("70000 is not in 1..=65535"), "{out}");
    let (code, out) = run(&["executor", "--port-in", "http"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("invalid value 'http' for '--port-in"), "{out}");

    let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port().to_string();
    let (code, out) = run(&["executor", "--port-in", busy_port.as_str()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("port {busy_port} is busy")), "{out}");
}
