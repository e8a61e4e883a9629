//! Jina's YAML as people wrote it, and the CLI as Jina users type it (issue 12, the parts done
//! so far), through the real binary.

mod common;

use common::*;
use jina::proto::jina::DataRequestProto;
use std::time::Duration;

/// Runs `jina flow` on `yaml` (written as flow.yml, with `files` beside it) and checks that it
/// is refused with `message`, exit code 1, before anything is ready.
fn refused(files: &Files, yaml: &str, message: &str) -> String {
    let path = files.write("flow.yml", yaml);
    let (code, out) = run(&["flow", "--uses", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(message), "expected '{message}' in:\n{out}");
    assert!(!out.contains("Flow is ready"), "{out}");
    out
}

/// Starts `jina flow` on `yaml` (written as flow.yml into `files`) with extra environment
/// variables, and waits until it is ready; returns it and its ports by protocol.
fn serve(
    files: &Files,
    yaml: &str,
    env: &[(&str, &std::ffi::OsStr)],
) -> (Proc, std::collections::BTreeMap<String, u16>) {
    let path = files.write("flow.yml", yaml);
    let mut flow = Proc::start_in(&["flow", "--uses", path.to_str().unwrap()], None, env);
    let ports = flow.wait_for_gateway(Duration::from_secs(30));
    (flow, ports)
}

/// The executors that visited one document posted to `/` over gRPC, in order.
async fn visits_of_one_document(port: u16) -> Vec<String> {
    let answers = post_grpc(
        port,
        vec![request("/", vec![jina::Document::from_text("hi")])],
    )
    .await;
    visits(&answers[0]).remove(0).1
}

/// Each returned document's id with the executors that visited it (`Visit` adds a match
/// named after its copy); an ERROR answer fails the test.
fn visits(answer: &DataRequestProto) -> Vec<(String, Vec<String>)> {
    assert!(!jina::request::is_error(answer), "{answer:?}");
    jina::request::docs(answer)
        .unwrap()
        .iter()
        .map(|d| {
            let seen = d.matches.iter().map(|m| m.text.clone().unwrap()).collect();
            (d.id.clone(), seen)
        })
        .collect()
}

#[test]
fn an_unset_variable_a_custom_gateway_and_a_missing_py_module_are_errors_with_their_lines() {
    let files = Files::new();
    refused(
        &files,
        "executors:\n  - name: a\n    uses: Visit\n    replicas: $NO_SUCH_VARIABLE_SET\n",
        "flow.yml:4: the variable NO_SUCH_VARIABLE_SET is not set",
    );
    refused(
        &files,
        "gateway:\n  uses: MyGateway\n  py_modules: [gateway.py]\nexecutors:\n  - {name: a, uses: Visit}\n",
        "flow.yml:2: gateway.uses: custom gateway classes are not supported",
    );
    let out = refused(
        &files,
        "executors:\n  - name: p\n    uses: MyExecutor\n    py_modules: [missing.py]\n",
        "missing.py: no such file (py_modules of the Flow's entry)",
    );
    assert!(out.contains("flow.yml:4:"), "{out}");
    // `--plot` checks the Flow too.
    let path = files.write(
        "flow.yml",
        "executors:\n  - {name: p, uses: MyExecutor, py_modules: [missing.py]}\n",
    );
    let svg = files.dir.path().join("p.svg");
    let (code, out) = run(&[
        "flow",
        path.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("missing.py: no such file"), "{out}");
}

#[tokio::test]
async fn jina_2s_flow_keys_are_honoured_or_said_to_change_nothing() {
    let files = Files::new();
    let (flow, ports) = serve(
        &files,
        "jtype: Flow\nwith:\n  protocol: grpc\n  restful: true\n  port_ctrl: 5555\n  port_jinad: 8000\n  compress_hwm: 1024\n  sse_logger: false\n  show_exc_info: true\n  read_only: true\nexecutors:\n  - {name: e, uses: Visit}\n",
        &[],
    );
    // `restful: true`: HTTP besides gRPC.
    assert!(ports.contains_key("HTTP"), "{ports:?}");
    let (code, answer) = post_http(
        ports["HTTP"],
        "/post",
        serde_json::json!({"data": [{"text": "hi"}]}),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    let out = flow.output();
    for key in [
        "port_ctrl",
        "port_jinad",
        "compress_hwm",
        "sse_logger",
        "show_exc_info",
        "read_only",
    ] {
        assert!(
            out.contains(&format!("with.{key}:")),
            "a line for {key}:\n{out}"
        );
    }
    assert!(!out.contains("did you mean"), "{out}");
}

#[test]
fn jina_3s_keys_that_would_change_what_runs_are_refused_with_the_reason() {
    let files = Files::new();
    // Each refused alone, with its line and why; none is called unknown.
    for (key, why) in [
        ("floating: true", "a floating executor"),
        (
            "no_reduce: true",
            "always merges its parents' documents by id",
        ),
        (
            "stateful: true",
            "RAFT-replicated stateful executors are not supported",
        ),
        ("reload: true", "restart the Flow"),
        ("output_array_type: numpy", "arrays keep the type they have"),
    ] {
        let out = refused(
            &files,
            &format!("executors:\n  - name: e\n    uses: Visit\n    {key}\n"),
            &format!(
                "flow.yml:4: executors[0].{}",
                key.split(':').next().unwrap()
            ),
        );
        assert!(
            out.contains(why) && !out.contains("unknown key"),
            "{key}: {out}"
        );
    }
    let out = refused(
        &files,
        "gateway:\n  no_debug_endpoints: true\nexecutors:\n  - {name: e, uses: Visit}\n",
        "choosing which HTTP routes the gateway serves is not supported",
    );
    assert!(out.contains("flow.yml:2"), "{out}");
    // Jina 3's keys that change nothing here run, each said to be ignored.
    let (flow, _) = serve(
        &files,
        "executors:\n  - name: e\n    uses: Visit\n    grpc_server_options: {grpc.max_send_message_length: -1}\n    allow_concurrent: true\n    native: true\n",
        &[],
    );
    let out = flow.output();
    for key in ["grpc_server_options", "allow_concurrent", "native"] {
        assert!(
            out.contains(&format!("executors[0].{key}:")),
            "{key}: {out}"
        );
    }
}

#[tokio::test]
async fn a_flow_level_workspace_is_each_executors_when_it_gives_none() {
    let files = Files::new();
    let (_flow, ports) = serve(
        &files,
        "jtype: Flow\nwith:\n  workspace: shared-ws\nexecutors:\n  - {name: encoder, uses: NgramEncoder}\n  - {name: indexer, uses: VectorIndexer}\n",
        &[],
    );
    let answers = post_grpc(
        ports["GRPC"],
        vec![request(
            "/index",
            vec![jina::Document::from_text("Hello there.")],
        )],
    )
    .await;
    assert!(!jina::request::is_error(&answers[0]), "{:?}", answers[0]);
    let workspace = files.dir.path().join("shared-ws");
    let written = walk_files(&workspace);
    assert!(
        !written.is_empty(),
        "the indexer wrote nothing under {}",
        workspace.display()
    );
}

/// Every file under `dir`, at any depth.
fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = vec![];
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        match path.is_dir() {
            true => found.extend(walk_files(&path)),
            false => found.push(path),
        }
    }
    found
}

#[test]
fn a_mistyped_executor_gets_a_did_you_mean() {
    refused(
        &Files::new(),
        "executors:\n  - {name: split, uses: Sentencizr}\n",
        "uses 'Sentencizr': not a known executor; did you mean `Sentencizer`?",
    );
}

#[test]
fn jina_flow_takes_the_yaml_without_uses_too() {
    let files = Files::new();
    let path = files.write("flow.yml", "executors:\n  - {name: a, uses: Visit}\n");
    let svg = files.dir.path().join("flow.svg");
    let (code, out) = run(&[
        "flow",
        path.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(svg.is_file(), "{out}");
    let (code, out) = run(&["flow"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--uses"), "{out}");
}

#[test]
fn a_typo_of_executors_is_an_error_not_a_flow_without_executors() {
    refused(
        &Files::new(),
        "jtype: Flow\nexecutorz:\n  - {name: a, uses: Visit}\n",
        "flow.yml:2: executorz: unknown key; did you mean `executors`?",
    );
}

#[tokio::test]
async fn pods_lists_the_executors_as_in_jina_1() {
    let files = Files::new();
    let (_flow, ports) = serve(
        &files,
        "jtype: Flow\nversion: '1'\nwith: {protocol: [grpc]}\npods:\n  - {name: first, uses: Visit}\n  - {name: second, uses: Visit}\n",
        &[],
    );
    assert_eq!(
        visits_of_one_document(ports["GRPC"]).await,
        ["first", "second"]
    );
}

#[test]
fn jina_dash_v_prints_the_version() {
    let (code, out) = run(&["-v"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("jina {}", env!("CARGO_PKG_VERSION")));
}

#[tokio::test]
async fn jina_ping_flow_gateway_and_executor_as_jina_3_spells_it() {
    let flow = start_flow("  - {name: victim, uses: Visit, restart: never}\n");
    let gateway = format!("127.0.0.1:{}", flow.grpc);
    for what in ["flow", "gateway"] {
        let (code, out) = run(&["ping", what, &gateway]);
        assert_eq!(code, 0, "ping {what}: {out}");
    }
    let (_executor, port) = start_executor(&["--uses", "Visit"]);
    let (code, out) = run(&["ping", "executor", &format!("127.0.0.1:{port}")]);
    assert_eq!(code, 0, "{out}");
    // A Flow whose executor is down is not ready: `ping flow` says which.
    let victim = children_of(flow.proc.child.id())[0];
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    assert!(wait_all_gone(&[victim], Duration::from_secs(5)).is_empty());
    // Its supervisor marks it down as it reaps it.
    eventually(Duration::from_secs(5), || {
        run(&["ping", "flow", &gateway]).0 == 1
    });
    let (code, out) = run(&["ping", "flow", &gateway]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("victim"), "{out}");
    let (code, out) = run(&["ping", "pod", &gateway]);
    assert_eq!(code, 1);
    assert!(out.contains("expected flow, gateway or executor"), "{out}");
}

#[test]
fn variables_are_substituted_before_types_are_checked() {
    let files = Files::new();
    let (flow, _) = serve(
        &files,
        "jtype: Flow\nexecutors:\n  - name: ${{ ENV.EXEC_NAME }}\n    uses: Visit\n    replicas: ${{ ENV.REPLICAS }}\n    timeout_ready: '-1'\n",
        &[("REPLICAS", "2".as_ref()), ("EXEC_NAME", "worker".as_ref())],
    );
    assert_eq!(children_of(flow.child.id()).len(), 2, "{}", flow.output());
    assert!(flow.output().contains("worker/rep-1"), "{}", flow.output());
    refused(
        &files,
        "executors:\n  - name: a\n    replicas: ${{ ENV.JINA_RS_TEST_UNSET }}\n",
        "flow.yml:3: the variable JINA_RS_TEST_UNSET is not set",
    );
}

#[tokio::test]
async fn jina_2s_reserved_executors_mean_what_they_meant() {
    let flow = start_flow(
        "  - {name: pass, uses: _pass}\n  - {name: sharded, uses: Visit, shards: 2, polling: ALL, uses_after: _merge}\n  - {name: fwd, uses: _forward, uses_before: _merge_chunks}\n",
    );
    let answers = post_grpc(
        flow.grpc,
        vec![request("/", vec![jina::Document::from_text("hi")])],
    )
    .await;
    let docs = visits(&answers[0]);
    assert_eq!(docs.len(), 1, "the shards' copies merged into one document");
    let mut seen = docs[0].1.clone();
    seen.sort();
    assert_eq!(seen, ["sharded/shard-0", "sharded/shard-1"]);
}

#[tokio::test]
async fn the_flow_tag_and_jina_3s_gateway_section_run() {
    let files = Files::new();
    let (_flow, ports) = serve(
        &files,
        "!Flow\ngateway:\n  protocol: [http]\n  cors: true\nexecutors:\n  - {name: e, uses: Visit}\n",
        &[],
    );
    let (code, answer) = post_http(
        ports["HTTP"],
        "/post",
        serde_json::json!({"data": [{"text": "hi"}]}),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["data"][0]["matches"][0]["text"], "e");
}

/// Documents of these ids, `lang` tags and texts.
fn tagged(docs: &[(&str, &str, &str)]) -> Vec<jina::Document> {
    docs.iter()
        .map(|(id, lang, text)| {
            let mut d = jina::Document::from_text(*text);
            d.id = id.to_string();
            d.tags.insert("lang".into(), (*lang).into());
            d
        })
        .collect()
}

#[tokio::test]
async fn when_filters_route_english_and_french_to_their_branches() {
    let flow = start_flow(
        "  - {name: english, uses: Visit, needs: gateway, when: {tags__lang: {$eq: en}}}\n  - {name: french, uses: Visit, needs: gateway, when: {tags__lang: {$eq: fr}}}\n  - {name: joined, uses: BaseExecutor, needs: [english, french]}\n",
    );
    let docs = tagged(&[
        ("d0", "en", "hello"),
        ("d1", "fr", "hello"),
        ("d2", "en", "hello"),
        ("d3", "de", "hello"),
    ]);
    let answers = post_grpc(flow.grpc, vec![request("/", docs)]).await;
    assert_eq!(
        visits(&answers[0]),
        [
            ("d0".to_string(), vec!["english".to_string()]),
            ("d2".to_string(), vec!["english".to_string()]),
            ("d1".to_string(), vec!["french".to_string()]),
        ],
        "each document reaches only its language's branch and goes on from there, joined in \
         the order of `needs`; d3 matches no branch and is dropped, as in Jina"
    );
}

#[tokio::test]
async fn when_filters_take_docarrays_neq_size_and_not() {
    let flow = start_flow(
        "  - {name: not_english, uses: Visit, needs: gateway, when: {tags__lang: {$neq: en}}}\n  - {name: five, uses: Visit, needs: gateway, when: {text: {$size: 5}}}\n  - {name: not_french, uses: Visit, needs: gateway, when: {$not: {tags__lang: fr}}}\n  - {name: joined, uses: BaseExecutor, needs: [not_english, five, not_french]}\n",
    );
    let docs = tagged(&[("d0", "en", "hello"), ("d1", "fr", "bonjour")]);
    let answers = post_grpc(flow.grpc, vec![request("/", docs)]).await;
    assert_eq!(
        visits(&answers[0]),
        [
            ("d1".to_string(), vec!["not_english".to_string()]),
            (
                "d0".to_string(),
                vec!["five".to_string(), "not_french".to_string()]
            ),
        ]
    );
}

#[test]
fn a_bad_when_filter_is_an_error_with_its_line() {
    refused(
        &Files::new(),
        "executors:\n  - name: a\n    uses: Visit\n    when: {tags__lang: {$like: en}}\n",
        "flow.yml:4: executors[0].when: tags__lang: unknown operator $like",
    );
}

#[tokio::test]
async fn class_tags_work_and_jina_1_drivers_get_one_clear_error() {
    let files = Files::new();
    files.write("visit.yml", "!Visit\nmetas: {name: tagged}\n");
    let (flow, _) = serve(&files, "executors:\n  - {name: v, uses: visit.yml}\n", &[]);
    drop(flow);

    files.write(
        "old.yml",
        "!BaseExecutor\nrequests:\n  on:\n    IndexRequest:\n      - !KVIndexDriver {}\n",
    );
    let out = refused(
        &files,
        "executors:\n  - {name: old, uses: old.yml}\n",
        "Jina 1's syntax",
    );
    assert_eq!(out.matches("error:").count(), 1, "one error: {out}");
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_and_results_stay_in_order() {
    let flow = start_flow("  - {name: e, uses: Visit, replicas: 3}\n");
    let lines: String = (0..3000).map(|i| format!("line {i:05}\n")).collect();
    let input = flow.files.write("many.txt", &lines);
    let port = flow.grpc.to_string();
    // In order: the NDJSON comes back as the lines went out.
    let out = std::process::Command::new(JINA)
        .args([
            "client",
            "post",
            "/",
            "--port",
            &port,
            "--request-size",
            "7",
        ])
        .args([
            "--inputs",
            input.to_str().unwrap(),
            "--output",
            "-",
            "--results-in-order",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let texts: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let sent: Vec<String> = lines.lines().map(str::to_string).collect();
    assert_eq!(texts, sent);
    // Into `head`: exit 0, nothing on stderr.
    let err = flow.files.dir.path().join("err.txt");
    let script = format!(
        "'{JINA}' client post / --port {port} --inputs '{}' --output - 2>'{}' | head -n 3 >/dev/null; echo ${{PIPESTATUS[0]}}",
        input.display(),
        err.display()
    );
    let status = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&status.stdout).trim().to_string();
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert_eq!(code, "0", "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

#[test]
fn a_client_on_the_wrong_port_is_told_what_the_port_speaks() {
    let flow = start_flow("  - {name: e, uses: Visit}\n");
    let post = |port: u16, protocol: &str| {
        run(&[
            "client",
            "post",
            "/",
            "--port",
            &port.to_string(),
            "--protocol",
            protocol,
        ])
    };
    let (code, out) = post(flow.grpc, "http");
    assert_eq!(code, 1);
    assert!(
        out.contains("speaks gRPC, not HTTP: try --protocol grpc"),
        "{out}"
    );
    let (code, out) = post(flow.grpc, "websocket");
    assert_eq!(code, 1);
    assert!(
        out.contains("speaks gRPC, not HTTP: try --protocol grpc"),
        "{out}"
    );
    let (code, out) = post(flow.http, "grpc");
    assert_eq!(code, 1);
    assert!(
        out.contains("speaks HTTP, not gRPC: try --protocol http"),
        "{out}"
    );
    let (_executor, port) = start_executor(&["--uses", "Visit"]);
    let (code, out) = post(port, "grpc");
    assert_eq!(code, 1);
    assert!(
        out.contains("it is an executor, not a Flow's gateway"),
        "{out}"
    );
    assert_eq!(out.matches("error:").count(), 1, "one line: {out}");
}

#[test]
fn a_flow_with_no_executors_says_so() {
    let (flow, _) = serve(
        &Files::new(),
        "jtype: Flow\nwith: {protocol: [grpc]}\n",
        &[],
    );
    let out = flow.output();
    assert!(out.contains("this Flow has no executors"), "{out}");
}

#[tokio::test]
async fn debug_logs_leave_out_frame_dumps_and_colour_codes_in_a_pipe() {
    let (flow, ports) = serve(
        &Files::new(),
        "with: {protocol: [grpc]}\nexecutors:\n  - {name: e, uses: Visit}\n",
        &[("JINA_LOG_LEVEL", "DEBUG".as_ref())],
    );
    post_grpc(ports["GRPC"], vec![request("/", vec![])]).await;
    // What must not be printed has no event to wait for: the request's lines are written by
    // the time its answer came, give the relay of the output a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = flow.output();
    assert!(!out.contains('\u{1b}'), "colour codes in a pipe:\n{out}");
    assert!(!out.contains("frame="), "frame dumps:\n{out}");
}

#[test]
fn csv_mistakes_are_named() {
    let flow = start_flow("  - {name: e, uses: Visit}\n");
    let port = flow.grpc.to_string();
    let unclosed = flow
        .files
        .write("q.csv", "text,lang\nfine,en\n\"never closed,de\nmore,fr\n");
    let (code, out) = run(&[
        "client",
        "post",
        "/",
        "--port",
        &port,
        "--inputs",
        unclosed.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        out.contains("q.csv:3: a quote opened on this line is never closed"),
        "{out}"
    );
    let no_text = flow.files.write("t.csv", "sentence,lang\nhello,en\n");
    let (code, out) = run(&[
        "client",
        "post",
        "/",
        "--port",
        &port,
        "--inputs",
        no_text.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("t.csv has no `text` column: sentence, lang go to tags"),
        "{out}"
    );
}

#[tokio::test]
async fn polling_per_endpoint_as_jina_3_writes_it() {
    let flow = start_flow(
        "  - name: s\n    uses: Visit\n    shards: 2\n    polling: {/search: ALL, '*': ANY}\n",
    );
    let copies_seen = |endpoint: &'static str| {
        let grpc = flow.grpc;
        async move {
            let one = vec![jina::Document::from_text("q")];
            let answers = post_grpc(grpc, vec![request(endpoint, one)]).await;
            visits(&answers[0])[0].1.len()
        }
    };
    assert_eq!(copies_seen("/search").await, 2, "ALL: every shard");
    assert_eq!(copies_seen("/index").await, 1, "the rest: ANY, one shard");
}

#[test]
fn a_jina_3_deployment_entry_runs_with_its_replicas() {
    let (flow, _) = serve(
        &Files::new(),
        "jtype: Flow\ndeployments:\n  - jtype: Deployment\n    with:\n      name: enc\n      uses: Visit\n      replicas: 2\n",
        &[],
    );
    assert_eq!(children_of(flow.child.id()).len(), 2, "{}", flow.output());
}

#[test]
fn a_deployment_yaml_file_as_an_entry() {
    let files = Files::new();
    files.write(
        "encoder-deployment.yml",
        "jtype: Deployment\nwith:\n  uses: Visit\n  replicas: 2\n",
    );
    let (flow, _) = serve(
        &files,
        "executors:\n  - {name: enc, uses: encoder-deployment.yml}\n",
        &[],
    );
    assert_eq!(children_of(flow.child.id()).len(), 2, "{}", flow.output());
}

#[test]
fn a_deployment_yaml_path_is_an_entry_of_its_own() {
    // Jina 3's `executors: [dep.yml]`: the list's item is the file's path.
    let files = Files::new();
    files.write(
        "encoder-deployment.yml",
        "jtype: Deployment\nwith:\n  name: enc\n  uses: Visit\n  replicas: 2\n",
    );
    let (flow, _) = serve(&files, "executors:\n  - encoder-deployment.yml\n", &[]);
    assert_eq!(children_of(flow.child.id()).len(), 2, "{}", flow.output());
}

#[tokio::test]
async fn jina_1s_pods_map_is_a_chain_in_its_order() {
    // Jina 1 wrote `pods:` as a map of name to settings; the map's order is the chain's.
    let files = Files::new();
    let (_flow, ports) = serve(
        &files,
        "!Flow\npods:\n  second:\n    uses: Visit\n  first:\n    uses: Visit\n  joined:\n    uses: Visit\n    needs: [second, first]\n",
        &[],
    );
    let seen = &visits_of_one_document(ports["GRPC"]).await;
    assert_eq!(seen, &["second", "first", "joined"]);
    // An entry with no settings is an executor with defaults; a value of another kind is an
    // error naming its line.
    let out = refused(
        &files,
        "pods:\n  a:\n  b: 3\n",
        "flow.yml:3: executors[1]: expected a mapping, found",
    );
    assert!(!out.contains("executors[0]"), "{out}");
}

#[tokio::test]
async fn an_inline_tag_under_uses_names_the_executor() {
    // Jina's `uses: !MyExecutor` with its `with:`/`metas:` under the tag.
    let files = Files::new();
    let (_flow, ports) = serve(
        &files,
        "executors:\n  - name: tagged\n    uses: !Visit\n      metas:\n        name: from-the-tag\n  - name: bare\n    uses: !Visit {}\n",
        &[],
    );
    let seen = &visits_of_one_document(ports["GRPC"]).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1], "bare");
    // A tag on something that is not a mapping says what it found.
    refused(
        &files,
        "executors:\n  - name: t\n    uses: !Visit [1]\n",
        "flow.yml:3: executors[0].uses: expected a name, a YAML path or a mapping",
    );
}

#[test]
fn an_executor_yaml_reports_every_unknown_key_at_once() {
    let files = Files::new();
    files.write("exec.yml", "jtype: Visit\nwiht: {}\nmetaz: {}\n");
    let out = refused(
        &files,
        "executors:\n  - {name: e, uses: exec.yml}\n",
        "wiht: unknown key; did you mean `with`?",
    );
    assert!(
        out.contains("metaz: unknown key; did you mean `metas`?"),
        "{out}"
    );
}

#[test]
fn env_and_envs_reach_the_executor_process() {
    let (flow, _) = serve(
        &Files::new(),
        "with:\n  envs: {FLOW_WIDE: everyone}\nexecutors:\n  - name: e\n    uses: Visit\n    env: {OWN: mine}\n",
        &[],
    );
    let child = children_of(flow.child.id())[0];
    let environ = std::fs::read(format!("/proc/{child}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.contains("FLOW_WIDE=everyone"), "{environ}");
    assert!(environ.contains("OWN=mine"), "{environ}");
}
