//! `jina flow` end to end: the real binary starts its executors as child processes, and a
//! client talks to its gateway over gRPC, REST and WebSocket.

mod common;

use common::*;
use jina::document::{Document, DocumentArray};
use jina::proto::jina::DataRequestProto;
use jina::request;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn grpc_request(endpoint: &str, id: &str) -> DataRequestProto {
    let mut d = Document::from_text("hello");
    d.id = id.into();
    request::new_request(endpoint, &DocumentArray::from(vec![d]), &Default::default())
}

/// The status an answer carries (an error's, here).
fn status_of(answer: &DataRequestProto) -> jina::proto::jina::StatusProto {
    answer
        .header
        .as_ref()
        .and_then(|h| h.status.clone())
        .expect("a status")
}

/// The texts of the matches that executors appended to one returned document.
fn visits_grpc(answer: &DataRequestProto) -> Vec<String> {
    assert!(!request::is_error(answer), "error: {answer:?}");
    let docs = request::docs(answer).unwrap();
    docs.iter()
        .next()
        .unwrap()
        .matches
        .iter()
        .map(|m| m.text.clone().unwrap())
        .collect()
}

fn visits_json(answer: &Value) -> Vec<String> {
    assert_eq!(answer["header"]["status"]["code"], "SUCCESS", "{answer}");
    answer["data"][0]["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect()
}

/// Posts one document over each protocol and returns the visits each answer shows.
async fn visits_over_every_protocol(flow: &FlowUnderTest) -> Vec<Vec<String>> {
    // Not /index, which Jina polls ANY whatever the executor's polling says.
    let grpc = post_grpc(flow.grpc, vec![grpc_request("/visit", "g1")]).await;
    let (code, rest) = post_http(
        flow.http,
        "/post",
        json!({"data": [{"id": "h1", "text": "hi"}], "execEndpoint": "/visit"}),
    )
    .await;
    assert_eq!(code, 200, "{rest}");
    let ws = post_ws(flow.ws, vec![json!({"data": [{"id": "w1", "text": "hi"}], "execEndpoint": "/visit", "requestId": "r-ws"})]).await;
    assert_eq!(ws[0]["header"]["requestId"], "r-ws");
    vec![
        visits_grpc(&grpc[0]),
        visits_json(&rest),
        visits_json(&ws[0]),
    ]
}

#[tokio::test]
async fn a_chain_of_four_runs_in_order_over_grpc_rest_and_websocket() {
    let flow = start_flow(
        "  - {name: c1, uses: Visit}\n  - {name: c2, uses: Visit}\n  - {name: c3, uses: Visit}\n  - {name: c4, uses: Visit}\n",
    );
    for visits in visits_over_every_protocol(&flow).await {
        assert_eq!(visits, ["c1", "c2", "c3", "c4"]);
    }
    // Routes: the gateway, then every executor visited.
    let answer = &post_grpc(flow.grpc, vec![grpc_request("/", "x")]).await[0];
    let route: Vec<&str> = answer.routes.iter().map(|r| r.executor.as_str()).collect();
    assert_eq!(route, ["gateway", "c1", "c2", "c3", "c4"]);
    assert!(
        answer
            .routes
            .iter()
            .all(|r| r.start_time.is_some() && r.end_time.is_some())
    );
}

#[tokio::test]
async fn fan_out_and_join_as_in_the_reference() {
    let flow = start_flow(
        "  - {name: p1, uses: Visit, needs: gateway}\n  - {name: p2, uses: Visit, needs: gateway}\n  - {name: p3, uses: Visit, needs: gateway}\n  - {name: r1, uses: Visit, needs: [p1, p2, p3]}\n",
    );
    for mut visits in visits_over_every_protocol(&flow).await {
        // The join sees the three branches merged into one document, then adds its own visit.
        assert_eq!(visits.pop().as_deref(), Some("r1"));
        visits.sort();
        assert_eq!(visits, ["p1", "p2", "p3"]);
    }
}

#[tokio::test]
async fn parallel_three_under_each_polling_mode() {
    let flow = start_flow(
        "  - {name: any, uses: Visit, parallel: 3, polling: ANY}\n  - {name: all, uses: Visit, parallel: 3, polling: ALL}\n  - {name: async, uses: Visit, parallel: 3, polling: ALL_ASYNC}\n",
    );
    let mut any_copies = BTreeMap::<String, usize>::new();
    let mut work = BTreeMap::<&str, usize>::new();
    for _ in 0..2 {
        for visits in visits_over_every_protocol(&flow).await {
            let of = |prefix: &str| {
                visits
                    .iter()
                    .filter(|v| v.starts_with(prefix))
                    .cloned()
                    .collect::<Vec<_>>()
            };
            let any = of("any/");
            let all = of("all/");
            let async_ = of("async/");
            assert_eq!(any.len(), 1, "{visits:?}");
            *any_copies.entry(any[0].clone()).or_default() += 1;
            // ALL: every copy did the work, and the results were merged into one document.
            let mut distinct = all.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(
                distinct,
                ["all/shard-0", "all/shard-1", "all/shard-2"],
                "{visits:?}"
            );
            // ALL_ASYNC: the first copy's answer goes on.
            assert_eq!(async_.len(), 1, "{visits:?}");
            *work.entry("any").or_default() += any.len();
            *work.entry("all").or_default() += all.len();
        }
    }
    assert_eq!(
        work["all"],
        3 * work["any"],
        "ALL does three times the work of ANY"
    );
    // ANY takes its copies in turn: 6 requests, each copy twice.
    assert_eq!(
        any_copies.values().copied().collect::<Vec<_>>(),
        [2, 2, 2],
        "{any_copies:?}"
    );
}

#[tokio::test]
async fn target_executor_restricts_the_request() {
    let flow = start_flow("  - {name: enc, uses: Visit}\n  - {name: idx, uses: Visit}\n");
    let mut req = grpc_request("/", "t");
    request::header_mut(&mut req).target_executor = Some("idx".into());
    assert_eq!(
        visits_grpc(&post_grpc(flow.grpc, vec![req]).await[0]),
        ["idx"]
    );
    let (_, rest) = post_http(
        flow.http,
        "/post",
        json!({"data": [{"text": "a"}], "targetExecutor": "en.*"}),
    )
    .await;
    assert_eq!(visits_json(&rest), ["enc"]);
}

#[tokio::test]
async fn an_executor_error_names_it_and_other_requests_go_on() {
    let flow = start_flow(
        "  - {name: first, uses: Visit}\n  - {name: breaker, uses: Fail, uses_with: {on: /boom}}\n",
    );
    let answers = post_grpc(
        flow.grpc,
        vec![grpc_request("/boom", "a"), grpc_request("/index", "b")],
    )
    .await;
    let failed = answers
        .iter()
        .find(|a| request::is_error(a))
        .expect("one ERROR");
    let status = failed.header.as_ref().unwrap().status.as_ref().unwrap();
    assert_eq!(status.exception.as_ref().unwrap().executor, "breaker");
    assert!(
        answers.iter().any(|a| !request::is_error(a)),
        "the other request succeeds"
    );
    let (code, rest) = post_http(
        flow.http,
        "/post",
        json!({"execEndpoint": "/boom", "data": [{"text": "x"}]}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(rest["header"]["status"]["code"], "ERROR");
    assert_eq!(rest["header"]["status"]["exception"]["executor"], "breaker");
}

#[tokio::test]
async fn a_killed_executor_turns_requests_into_errors_quickly() {
    // Not restarted: the error a client gets while it is down is what this checks.
    let flow = start_flow("  - {name: victim, uses: Visit, restart: never}\n");
    assert_eq!(
        visits_grpc(&post_grpc(flow.grpc, vec![grpc_request("/", "a")]).await[0]),
        ["victim"]
    );
    let children = children_of(flow.proc.child.id());
    assert_eq!(children.len(), 1, "one executor process");
    unsafe { libc::kill(children[0] as i32, libc::SIGKILL) };
    assert!(wait_all_gone(&children, Duration::from_secs(5)).is_empty());
    let start = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        post_grpc(flow.grpc, vec![grpc_request("/", "b")]),
    )
    .await
    .expect("an answer, not a hang");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
    let status = status_of(&answer[0]);
    assert_eq!(status.code, 1);
    assert_eq!(status.exception.unwrap().executor, "victim");
}

#[tokio::test]
async fn rest_extras_status_dry_run_openapi_docs_and_bad_bodies() {
    let flow = start_flow(
        "  - name: e\n    uses: |\n      jtype: Visit\n      requests: {/index: visit}\n",
    );
    let http = http_client();
    let get = |path: &str| {
        http.get(format!("http://127.0.0.1:{}{path}", flow.http))
            .send()
    };
    let dry: Value = get("/dry_run").await.unwrap().json().await.unwrap();
    assert_eq!(
        dry["code"], 0,
        "Python's HTTP client compares an integer code"
    );
    let status: Value = get("/status").await.unwrap().json().await.unwrap();
    assert!(status["jina"].is_object());
    let openapi: Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    assert!(openapi["paths"]["/index"]["post"].is_object(), "{openapi}");
    let docs = get("/docs").await.unwrap().text().await.unwrap();
    assert!(
        docs.contains("/openapi.json") && !docs.contains("cdn"),
        "offline docs page"
    );
    let (code, answer) = post_http(
        flow.http,
        "/index",
        json!({"data": [{"text": "via endpoint"}]}),
    )
    .await;
    assert_eq!((code, visits_json(&answer)), (200, vec!["e".to_string()]));
    let (code, answer) = post_http(flow.http, "/post", json!({"data": [{"text": 5}]})).await;
    assert_eq!(code, 400);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("data: document 0"),
        "{answer}"
    );
    let (code, _) = post_http(flow.http, "/nowhere", json!({})).await;
    assert_eq!(code, 404);
    // The body is optional, as the OpenAPI description says, and every field may be null.
    let empty = http
        .post(format!("http://127.0.0.1:{}/post", flow.http))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status().as_u16(), 200);
    let (code, answer) = post_http(
        flow.http,
        "/post",
        json!({"data": null, "parameters": null, "header": null, "execEndpoint": null}),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
}

#[test]
fn ctrl_c_and_sigkill_leave_no_child_behind() {
    for signal in [libc::SIGINT, libc::SIGKILL] {
        let mut flow =
            start_flow("  - {name: a, uses: Visit}\n  - {name: b, uses: Visit, parallel: 2}\n");
        let children = children_of(flow.proc.child.id());
        assert_eq!(children.len(), 3, "three executor processes");
        flow.proc.signal(signal);
        let status = flow
            .proc
            .wait_exit(Duration::from_secs(10))
            .expect("the flow exits");
        if signal == libc::SIGINT {
            assert!(status.success(), "{status:?}\n{}", flow.proc.output());
        }
        let left = wait_all_gone(&children, Duration::from_secs(5));
        assert!(
            left.is_empty(),
            "signal {signal}: children still alive: {left:?}"
        );
    }
}

#[test]
fn a_client_that_never_hangs_up_does_not_keep_a_stopping_flow_alive() {
    use std::io::Write;
    let mut flow = start_flow("  - {name: a, uses: Visit}\n");
    // An HTTP/2 client that opens its connection, then never reads or answers again.
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", flow.grpc)).unwrap();
    silent
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    // The server's SETTINGS frame: the gateway holds the connection open now.
    let mut settings = [0u8; 9];
    std::io::Read::read_exact(&mut silent, &mut settings).unwrap();
    assert_eq!(settings[3], 4, "a SETTINGS frame first");
    let start = Instant::now();
    flow.proc.signal(libc::SIGINT);
    let status = flow
        .proc
        .wait_exit(Duration::from_secs(15))
        .expect("the flow exits");
    assert!(status.success(), "{status:?}\n{}", flow.proc.output());
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "stopped in {:?}",
        start.elapsed()
    );
    assert!(
        flow.proc.output().contains("connections still open"),
        "{}",
        flow.proc.output()
    );
}

#[test]
fn a_yaml_with_three_mistakes_reports_all_three() {
    let files = Files::new();
    let path = files.write(
        "broken.yml",
        "jtype: Flow\nexecutors:\n  - name: a\n    uses: NoSuchExecutor\n  - name: b\n    parallel: three\n  - name: c\n    needs: [nobody]\n    colour: blue\n    port_out: 5555\n",
    );
    let (code, out) = run(&["flow", "--uses", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 4, "{out}");
    assert!(
        errors[0].contains("broken.yml:4: executors[0].uses:")
            && errors[0].contains("NoSuchExecutor"),
        "{out}"
    );
    assert!(
        errors[1]
            .contains("broken.yml:6: executors[1].parallel: expected an integer, found 'three'"),
        "{out}"
    );
    assert!(
        errors[2].contains("broken.yml:8: executors[2].needs: unknown executor 'nobody'"),
        "{out}"
    );
    assert!(
        out.contains("broken.yml:9: executors[2].colour: unknown key"),
        "an unknown key is an error: it could change what runs: {out}"
    );
    assert!(
        out.contains("broken.yml:10: executors[2].port_out: Jina 2's remote-local wiring"),
        "a Jina key that means nothing here says why: {out}"
    );
    assert!(!out.contains("panicked"));
}

#[tokio::test]
async fn a_standalone_gateway_routes_over_running_executors() {
    let (_a, pa) = start_executor(&["--uses", "Visit", "--name", "a"]);
    let (_b, pb) = start_executor(&["--uses", "Visit", "--name", "b"]);
    let http = free_port();
    let graph = json!({"start-gateway": ["a"], "a": ["b"], "b": ["end-gateway"]}).to_string();
    let addresses =
        json!({"a": [format!("127.0.0.1:{pa}")], "b": [format!("127.0.0.1:{pb}")]}).to_string();
    let http_s = http.to_string();
    let mut gw = Proc::start(&[
        "gateway",
        "--graph-description",
        &graph,
        "--deployments-addresses",
        &addresses,
        "--protocol",
        "http",
        "--port",
        &http_s,
    ]);
    gw.wait_for("ready and listening", Duration::from_secs(20));
    let (_, answer) = post_http(http, "/post", json!({"data": [{"text": "x"}]})).await;
    assert_eq!(visits_json(&answer), ["a", "b"]);
    let (code, out) = run(&[
        "gateway",
        "--graph-description",
        "{\"start-gateway\": [\"zz\"]}",
        "--deployments-addresses",
        "{}",
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("no address for 'zz'"), "{out}");
}

#[tokio::test]
async fn uses_after_gets_every_shards_answer_and_a_request_timeout_gives_an_error() {
    let flow = start_flow(
        "  - {name: slow, uses: Sleep, uses_with: {ms: 300}}\n  - {name: s, uses: Visit, parallel: 2, polling: ALL, uses_after: Visit}\n",
    );
    // As in Jina, the uses_after gets the shards' answers one after another (and apart, as
    // docs_matrix): Visit does not fold them, so each shard's copy comes back, in shard order,
    // visited by the tail too.
    let answer = &post_grpc(flow.grpc, vec![grpc_request("/", "a")]).await[0];
    let docs = request::docs(answer).unwrap();
    let visits: Vec<Vec<String>> = docs
        .iter()
        .map(|d| d.matches.iter().map(|m| m.text.clone().unwrap()).collect())
        .collect();
    assert_eq!(
        visits,
        [["s/shard-0", "s/tail"], ["s/shard-1", "s/tail"]],
        "{answer:?}"
    );
    let mut hurried = grpc_request("/", "b");
    request::header_mut(&mut hurried).timeout = Some(50);
    let answer = &post_grpc(flow.grpc, vec![hurried]).await[0];
    assert_eq!(status_of(answer).exception.unwrap().name, "TimeoutError");
}

#[test]
fn a_child_that_exits_early_fails_the_start_with_its_output() {
    let files = Files::new();
    // The indexer cannot make its workspace: the child says why and exits before it is ready.
    let path = files.write(
        "flow.yml",
        "jtype: Flow\nexecutors:\n  - {name: stuck, uses: VectorIndexer, workspace: /dev/null/ws}\n",
    );
    let (code, out) = run(&["flow", "--uses", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let error = out
        .lines()
        .find(|l| l.starts_with("error: ") && l.contains("stuck exited"))
        .expect("an error line");
    assert!(
        error.contains("flow.yml") && error.contains("before it was ready"),
        "{out}"
    );
    assert!(
        out.contains(
            "its last output: error: stuck: cannot open: workspace /dev/null/ws: Not a directory"
        ),
        "the child's own output is shown: {out}"
    );

    // A busy port_in is found by the Flow itself, before any child starts.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let path = files.write(
        "busy.yml",
        &format!("jtype: Flow\nexecutors:\n  - {{name: stuck, port_in: {port}}}\n"),
    );
    let (code, out) = run(&["flow", "--uses", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "busy.yml: stuck: port {port} is busy (address in use)"
        )),
        "{out}"
    );
}

#[tokio::test]
async fn a_library_user_matches_on_what_went_wrong() {
    use jina::flow::{Exec, Flow};
    use jina::{FlowError, ListenError, StartError};
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let started = Flow::new()
        .add(Exec::new().uses("Visit").port_in(port))
        .start()
        .await;
    match started {
        Err(FlowError::Executors(StartError::Listen {
            error: ListenError::PortBusy { port: busy },
            ..
        })) => assert_eq!(busy, port),
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("started on a busy port"),
    }
}
