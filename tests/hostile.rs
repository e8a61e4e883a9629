//! Hostile input, through the real binary: what an attacker or a careless user sends, and
//! what each process pays for it (peak RSS read from /proc), on every face.
//!
//! - a request that is small on the wire and huge once read (JSON of empty documents, a
//!   document of millions of chunks, a list of millions of values): refused before it is
//!   decoded, with the limit named; ten at once do not multiply the memory;
//! - a client trusting the certificate it is given (self-signed with CA:TRUE, or a leaf);
//! - DNS rebinding: a `Host` that is not the gateway's;
//! - the unary face's status codes; `ping` of a TLS port; a port given twice; Ctrl-C while a
//!   Flow waits for an external executor.

mod common;
#[path = "common/raw.rs"]
mod raw;

use common::*;
use jina::document::{Document, DocumentArray};
use jina::request;
use serde_json::{Value, json};
use std::time::Duration;

/// What requests made a process hold at its peak, in MB: its peak RSS less the binary's own
/// pages (the debug binary's code is tens of MB; a release build's a few).
fn peak_mb(pid: u32) -> u64 {
    (status_kb(pid, "VmHWM") - status_kb(pid, "RssFile")) / 1024
}

fn rss_mb(pid: u32) -> u64 {
    (status_kb(pid, "VmRSS") - status_kb(pid, "RssFile")) / 1024
}

/// The pid of the Flow's executor copy named `label` (its `--name`).
fn executor_pid(flow_pid: u32, label: &str) -> u32 {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let parent = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if parent == Some(flow_pid) && cmdline.split('\0').any(|a| a == label) {
            return pid;
        }
    }
    panic!("no executor {label} under {flow_pid}");
}

/// `count` empty documents as one JSON body: tiny on the wire, huge once read.
fn empty_docs_body(count: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(count * 3 + 16);
    body.extend_from_slice(b"{\"data\":[");
    for i in 0..count {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{}");
    }
    body.extend_from_slice(b"]}");
    body
}

async fn post_bytes(port: u16, body: Vec<u8>) -> (u16, Value) {
    let r = http_client()
        .post(format!("http://127.0.0.1:{port}/post"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_json_bomb_is_refused_before_it_costs_memory_and_ten_do_not_multiply_it() {
    let flow = start_flow("  - {name: e, uses: Visit}\n");
    let gateway = flow.proc.child.id();
    let executor = executor_pid(gateway, "e");
    // 64.5 MB: 21.5 million empty documents, under the 64 MiB max_request_bytes.
    let body = empty_docs_body(21_500_000);
    assert!(body.len() < 64 << 20);
    let before = rss_mb(gateway);
    let (code, answer) = post_bytes(flow.http, body.clone()).await;
    assert_eq!(code, 413, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("max_in_flight_bytes"), "{error}");
    let one = peak_mb(gateway);
    eprintln!("gateway: {before} MB before, peak {one} MB for one body");
    assert!(one < before + 150, "one body: peak {one} MB");

    let bodies = (0..10).map(|_| post_bytes(flow.http, body.clone()));
    for (code, answer) in futures::future::join_all(bodies).await {
        assert_eq!(code, 413, "{answer}");
    }
    let ten = peak_mb(gateway);
    eprintln!("gateway: peak {ten} MB for ten at once");
    // Three fit in the 256 MiB budget at a time; the rest wait their turn.
    assert!(ten < 400, "ten bodies at once: peak {ten} MB");
    assert!(peak_mb(executor) < 100, "the executor saw none of it");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_mb(gateway);
    assert!(after < before + 40, "{before} MB before, {after} MB after");
    // And the gateway still serves.
    let (code, _) = post_http(flow.http, "/post", json!({"data": [{"text": "q"}]})).await;
    assert_eq!(code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_big_grpc_messages_at_once_wait_their_turn_before_they_are_read() {
    let flow = start_flow("  - {name: e, uses: Visit}\n");
    let gateway = flow.proc.child.id();
    // 60 MB of 30 million empty documents, as one message: refused by its document count,
    // but only once read; ten at once must not all be read at once.
    let empty_docs: Vec<u8> = [0x0a, 0x00].repeat(30_000_000);
    let mut bomb = request::new_request("/", &DocumentArray::default(), &Default::default());
    bomb.data = field(1, &empty_docs).into();
    drop(empty_docs);
    let before = rss_mb(gateway);
    let sends = (0..10).map(|_| {
        let bomb = bomb.clone();
        let port = flow.grpc;
        tokio::spawn(async move {
            let mut unary = jina::proto::jina::jina_single_data_request_rpc_client::JinaSingleDataRequestRpcClient::new(channel(port).await)
                .max_encoding_message_size(usize::MAX);
            unary.process_single_data(bomb).await.unwrap_err()
        })
    });
    for status in futures::future::join_all(sends).await {
        let status = status.unwrap();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        assert!(status.message().contains("max_request_docs"), "{status:?}");
    }
    let peak = peak_mb(gateway);
    eprintln!("gateway: {before} MB before, peak {peak} MB for ten 60 MB messages at once");
    // The budget (256 MiB) holds two such messages (each counted twice: as received and as
    // sent on); the others wait with a stream's window read.
    assert!(peak < 400, "ten gRPC messages at once: peak {peak} MB");
}

#[tokio::test]
async fn too_many_documents_are_refused_on_every_face_naming_max_request_docs() {
    let flow = start_flow_with("  max_request_docs: 1000\n", "  - {name: e, uses: Visit}\n");
    let names_the_limit = |text: &str| {
        assert!(
            text.contains("max_request_docs") && text.contains("1000"),
            "{text}"
        )
    };
    // REST: 413.
    let (code, answer) = post_bytes(flow.http, empty_docs_body(1001)).await;
    assert_eq!(code, 413, "{answer}");
    names_the_limit(answer["error"].as_str().unwrap());
    let (code, _) = post_bytes(flow.http, empty_docs_body(1000)).await;
    assert_eq!(code, 200);
    // Nested documents count: 10 documents of 100 chunks each.
    let nested = json!({"data": vec![json!({"chunks": vec![json!({}); 100]}); 10]});
    let (code, answer) = post_http(flow.http, "/post", nested).await;
    assert_eq!(code, 413, "{answer}");

    // gRPC, unary: RESOURCE_EXHAUSTED.
    let many = request::new_request(
        "/",
        &(0..1001)
            .map(|_| Document::default())
            .collect::<DocumentArray>(),
        &Default::default(),
    );
    let mut unary =
        jina::proto::jina::jina_single_data_request_rpc_client::JinaSingleDataRequestRpcClient::new(
            channel(flow.grpc).await,
        );
    let status = unary.process_single_data(many.clone()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    names_the_limit(status.message());
    // gRPC, Call: the answers before it, then the stream ends with RESOURCE_EXHAUSTED.
    let mut client =
        jina::proto::jina::jina_rpc_client::JinaRpcClient::new(channel(flow.grpc).await);
    let small = request::new_request(
        "/",
        &DocumentArray::from(texts(&["a"])),
        &Default::default(),
    );
    let mut answers = client
        .call(tokio_stream::iter(vec![small, many]))
        .await
        .unwrap()
        .into_inner();
    assert!(
        answers.message().await.unwrap().is_some(),
        "the first is answered"
    );
    let end = answers.message().await.unwrap_err();
    assert_eq!(end.code(), tonic::Code::ResourceExhausted, "{end:?}");
    names_the_limit(end.message());
    // A document of 2000 chunks passes the gateway (it does not decode documents) and is
    // refused by the executor, before it decodes them.
    let mut parent = Document::from_text("parent");
    parent.chunks = (0..2000).map(|_| Document::default()).collect();
    let deep = request::new_request("/", &DocumentArray::from(vec![parent]), &Default::default());
    let answer = unary.process_single_data(deep).await.unwrap().into_inner();
    let status = answer.header.unwrap().status.unwrap();
    assert_ne!(status.code, 0, "refused");
    names_the_limit(&status.description);

    // WebSocket: close 1009 with the limit.
    let frame = String::from_utf8(empty_docs_body(1001)).unwrap();
    let (code, reason) = websocket_close_after(flow.ws, frame).await;
    assert_eq!(code, 1009);
    assert!(reason.contains("max_request_docs"), "{reason}");
}

/// A length-delimited protobuf field.
fn field(tag: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// The `data` of a request of one document whose `tags` hold a list of `n` nulls: 2 bytes a
/// value on the wire, about a hundred once decoded.
fn list_bomb(n: usize) -> bytes::Bytes {
    let list: Vec<u8> = [0x0a, 0x00].repeat(n); // ListOfAnyProto: n empty NodeProtos
    let node_list = field(9, &list);
    let entry = [field(1, b"x"), field(2, &node_list)].concat();
    let dict = field(1, &entry);
    let tags = field(12, &dict);
    let doc_entry = [field(1, b"tags"), field(2, &tags)].concat();
    let doc = field(1, &doc_entry);
    let doc_list = field(1, &doc);
    field(1, &doc_list).into()
}

#[tokio::test]
async fn a_values_bomb_is_refused_by_the_executor_before_it_decodes_and_by_jina_executor_alone() {
    let flow = start_flow("  - {name: e, uses: Visit}\n");
    let executor = executor_pid(flow.proc.child.id(), "e");
    // 12 million values in 24 MB: about 1.2 GB once decoded.
    let mut bomb = request::new_request("/", &DocumentArray::default(), &Default::default());
    bomb.data = list_bomb(12_000_000);
    // The refusal comes back with the request's documents, as every failed request does.
    let mut unary =
        jina::proto::jina::jina_single_data_request_rpc_client::JinaSingleDataRequestRpcClient::new(
            channel(flow.grpc).await,
        )
        .max_decoding_message_size(usize::MAX);
    let answer = unary
        .process_single_data(bomb.clone())
        .await
        .unwrap()
        .into_inner();
    let status = answer.header.unwrap().status.unwrap();
    assert_ne!(status.code, 0);
    assert!(
        status.description.contains("max_in_flight_bytes"),
        "{}",
        status.description
    );
    let peak = peak_mb(executor);
    eprintln!("executor: peak {peak} MB");
    assert!(peak < 150, "executor peak {peak} MB");

    // `jina executor` alone: RESOURCE_EXHAUSTED straight to the caller.
    let (_executor, port) = start_executor(&["--uses", "Visit", "--max-request-docs", "10"]);
    let mut alone =
        jina::proto::jina::jina_single_data_request_rpc_client::JinaSingleDataRequestRpcClient::new(
            channel(port).await,
        );
    let status = alone.process_single_data(bomb).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("max_in_flight_bytes"),
        "{status:?}"
    );
    let eleven = request::new_request(
        "/",
        &(0..11)
            .map(|_| Document::default())
            .collect::<DocumentArray>(),
        &Default::default(),
    );
    let status = alone.process_single_data(eleven).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("max_request_docs"), "{status:?}");
}

#[tokio::test]
async fn the_unary_face_says_resource_exhausted_and_invalid_argument_as_call_does() {
    use prost::Message;
    let flow = start_flow_with(
        "  max_request_bytes: 100000\n",
        "  - {name: e, uses: Visit}\n",
    );
    let mut grpc = tonic::client::Grpc::new(channel(flow.grpc).await);
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/jina.JinaSingleDataRequestRPC/process_single_data",
    );
    let big = request::new_request(
        "/",
        &DocumentArray::from(texts(&[&"x".repeat(200_000)])),
        &Default::default(),
    );
    for (message, expected) in [
        (big.encode_to_vec(), tonic::Code::ResourceExhausted),
        (
            vec![0x0a, 0xff, 0xff, 0x01, 0x02],
            tonic::Code::InvalidArgument,
        ),
    ] {
        grpc.ready().await.unwrap();
        let status = grpc
            .unary(tonic::Request::new(message), path.clone(), raw::RawCodec)
            .await
            .unwrap_err();
        assert_eq!(status.code(), expected, "{status:?}");
    }
}

/// A self-signed certificate with CA:TRUE for localhost and 127.0.0.1, as
/// `openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1`
/// makes one: (certificate file, key file).
fn self_signed_ca_cert(files: &Files, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let cert = params.self_signed(&key).unwrap();
    (
        files.write(&format!("{name}.pem"), &cert.pem()),
        files.write(&format!("{name}-key.pem"), &key.serialize_pem()),
    )
}

/// `jina client post` of `inputs` over TLS to 127.0.0.1:`port`, trusting the file `ca`.
fn post_tls(port: u16, protocol: &str, ca: &str, inputs: &str) -> (i32, String) {
    run(&[
        "client",
        "post",
        "/",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--protocol",
        protocol,
        "--tls",
        "--ca-file",
        ca,
        "--inputs",
        inputs,
        "--output",
        "-",
    ])
}

#[tokio::test]
async fn the_client_trusts_the_certificate_it_is_given_and_only_that() {
    let files = Files::new();
    let (cert, key) = self_signed_ca_cert(&files, "flow");
    let (other, _) = self_signed_ca_cert(&files, "other");
    let name = format!("pinned-{}", std::process::id());
    let flow = start_flow_with(
        &format!(
            "  name: {name}\n  ssl_certfile: {}\n  ssl_keyfile: {}\n",
            cert.display(),
            key.display()
        ),
        "  - {name: e, uses: Visit}\n",
    );
    let inputs = files.write("in.jsonl", "{\"text\": \"hello\"}\n");
    let inputs = inputs.to_str().unwrap();
    let ca = cert.to_str().unwrap();
    for (protocol, port) in [
        ("grpc", flow.grpc),
        ("http", flow.http),
        ("websocket", flow.ws),
    ] {
        let post = |ca: &str| post_tls(port, protocol, ca, inputs);
        let (code, out) = post(ca);
        assert_eq!(code, 0, "{protocol}: {out}");
        assert!(out.contains("hello"), "{protocol}: {out}");
        // Another certificate is no trust in this one.
        let (code, out) = post(other.to_str().unwrap());
        assert_ne!(
            code, 0,
            "{protocol}: a stranger's certificate was trusted: {out}"
        );
    }
    let grpc = format!("127.0.0.1:{}", flow.grpc);
    let (code, out) = run(&["ping", &grpc, "--tls", "--ca-file", ca]);
    assert_eq!(code, 0, "{out}");
    // With no flag, the Flow found on this machine: the certificate it recorded.
    let (code, out) = run(&[
        "client", "post", "/", "--flow", &name, "--inputs", inputs, "--output", "-",
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&["ping", "flow", "--flow", &name]);
    assert_eq!(code, 0, "{out}");
    // Without --tls, ping says what the port speaks.
    let (code, out) = run(&["ping", &grpc]);
    assert_eq!(code, 1);
    assert!(out.contains("serves TLS: connect with --tls"), "{out}");

    // A leaf signed by a CA, given as the file to trust: pinned too.
    let certs = certificates();
    let leaf_flow = certs.start_flow("  - {name: e, uses: Visit}\n");
    let (code, out) = post_tls(leaf_flow.grpc, "grpc", certs.cert.to_str().unwrap(), inputs);
    assert_eq!(code, 0, "{out}");
}

async fn post_with_host(port: u16, host: &str, origin: Option<&str>) -> (u16, String) {
    let mut request = http_client()
        .post(format!("http://127.0.0.1:{port}/post"))
        .header("host", host)
        .json(&json!({"data": [{"text": "q"}]}));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let answer = request.send().await.unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

#[tokio::test]
async fn a_host_the_gateway_is_not_is_refused_against_dns_rebinding() {
    let flow = start_flow_with(
        "  allowed_hosts: [search.example.com]\n",
        "  - {name: e, uses: Visit}\n",
    );
    let port = flow.http;
    let evil = format!("rebind.evil.example:{port}");
    let (code, body) = post_with_host(port, &evil, Some(&format!("http://{evil}"))).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("allowed_hosts"), "{body}");
    // Without Origin (a same-origin GET, or a program): still the Host.
    let (code, _) = post_with_host(port, &evil, None).await;
    assert_eq!(code, 403);
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("search.example.com:{port}"),
    ] {
        let (code, body) = post_with_host(port, &host, None).await;
        assert_eq!(code, 200, "{host}: {body}");
    }
    // The right host with the wrong scheme is another origin.
    let host = format!("127.0.0.1:{port}");
    let (code, _) = post_with_host(port, &host, Some(&format!("https://{host}"))).await;
    assert_eq!(code, 403);
    let (code, _) = post_with_host(port, &host, Some(&format!("http://{host}"))).await;
    assert_eq!(code, 200);
    // A WebSocket through a rebinding name is refused at the handshake.
    let mut ws = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://127.0.0.1:{}/", flow.ws),
    )
    .unwrap();
    ws.headers_mut().insert(
        "host",
        format!("rebind.evil.example:{}", flow.ws).parse().unwrap(),
    );
    assert!(tokio_tungstenite::connect_async(ws).await.is_err());
}

#[test]
fn a_port_given_twice_says_so_and_ctrl_c_while_waiting_never_panics() {
    let files = Files::new();
    let twice = files.write(
        "twice.yml",
        "jtype: Flow\nwith:\n  protocol: [grpc, http]\n  port: [45123, 45123]\nexecutors:\n  - {name: e, uses: Visit}\n",
    );
    let (code, out) = run(&["flow", "--uses", twice.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("port 45123 is given twice"), "{out}");
    assert!(!out.contains("busy"), "{out}");

    let port = free_port();
    let waiting = files.write(
        "waiting.yml",
        &format!(
            "jtype: Flow\nexecutors:\n  - {{name: faraway, external: true, host: 127.0.0.1, port: {port}}}\n"
        ),
    );
    let mut flow = Proc::start(&["flow", "--uses", waiting.to_str().unwrap()]);
    flow.wait_for("waiting for the external executor", Duration::from_secs(20));
    flow.signal(libc::SIGINT);
    let status = flow.wait_exit(Duration::from_secs(10)).expect("it stops");
    assert_eq!(status.code(), Some(0), "{}", flow.output());
    assert!(!flow.output().contains("panicked"), "{}", flow.output());
}
