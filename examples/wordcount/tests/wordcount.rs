//! The worked example through its own binary, `wordcount`: a jina command line that knows one
//! more executor. Its Flows start their executor copies from the same binary.

#[path = "../../../tests/common/mod.rs"]
mod common;

use common::*;
use jina::document::{Document, DocumentArray};
use jina::proto::jina::jina_single_data_request_rpc_client::JinaSingleDataRequestRpcClient;
use jina::request;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The example's own folder (its flow.yml and wordcount.yml).
fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn texts() -> Vec<Document> {
    [
        "It is a truth universally acknowledged. The truth was told.",
        "Mr. Bennet replied that he had not. Bennet, Bennet!",
        "The sun rose and the sun set.",
        "A single man in possession of a good fortune.",
    ]
    .iter()
    .map(|t| Document::from_text(*t))
    .collect()
}

fn tags(answer: &Value) -> Vec<serde_json::Map<String, Value>> {
    answer["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {answer}"))
        .iter()
        .map(|d| d["tags"].as_object().cloned().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn the_example_flow_runs_wordcount_in_shards_and_replicas_next_to_builtins() {
    let flow_yml = example_dir().join("flow.yml");
    let files = Files::new();
    // Run from a scratch folder: the Flow's relative paths resolve against its YAML's folder.
    let mut flow = Proc::start_in(
        &["flow", "--uses", flow_yml.to_str().unwrap()],
        Some(files.dir.path()),
        &[],
    );
    let ports = flow.wait_for_gateway(Duration::from_secs(60));
    let (grpc, http) = (ports["GRPC"], ports["HTTP"]);

    // Every copy is this binary: a `jina` would not know `jtype: WordCount` and fail to start.
    let children = children_of(flow.child.id());
    assert_eq!(
        children.len(),
        1 + 4 + 1,
        "split, 2 shards x 2 replicas, encode"
    );
    for pid in &children {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert_eq!(exe, PathBuf::from(JINA), "child {pid}");
    }

    // gRPC: /index counts the words (min_len 3, without the stopwords of wordcount.yml).
    let requests: Vec<_> = (0..8)
        .map(|_| request::new_request("/index", &DocumentArray::from(texts()), &Default::default()))
        .collect();
    let mut copies = BTreeSet::new();
    for answer in post_grpc(grpc, requests).await {
        assert!(!request::is_error(&answer), "{answer:?}");
        let docs = request::docs(&answer).unwrap();
        assert_eq!(docs.len(), 4);
        // "It is a truth universally acknowledged. The truth was told." without it, is, a,
        // the, was: truth, universally, acknowledged, truth, told.
        assert_eq!(docs[0].tags["words"], json!(5), "{:?}", docs[0].tags);
        assert_eq!(docs[2].tags["words"], json!(4)); // sun, rose, sun, set
        assert!(docs[0].embedding.is_some(), "NgramEncoder ran after it");
        assert!(!docs[0].chunks.is_empty(), "Sentencizer ran before it");
        copies.insert(docs[0].tags["indexed_by"].as_str().unwrap().to_string());
    }
    assert!(
        copies.len() >= 2 && copies.iter().all(|c| c.starts_with("count/shard-")),
        "requests spread over the copies: {copies:?}"
    );

    // HTTP: /search tags the keywords, `top_k` read from the parameters by a serde type.
    let (status, answer) = post_http(
        http,
        "/post",
        json!({"execEndpoint": "/search", "data": [{"text": "Bennet said Bennet. Darcy said nothing."}], "parameters": {"top_k": 2}}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(tags(&answer)[0]["keywords"], json!(["bennet", "said"]));

    // A handler's own error type names the error a client sees.
    let (_, answer) = post_http(
        http,
        "/post",
        json!({"execEndpoint": "/search", "data": [{"id": "no-text"}]}),
    )
    .await;
    let description = answer["header"]["status"]["description"]
        .as_str()
        .unwrap_or("");
    assert!(
        description.starts_with("WordCountError: document no-text has no text"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_flow_entry_sets_its_arguments_bindings_and_workspace() {
    // `uses: WordCount` by its name, with everything a Flow's entry lays over it.
    let flow = start_flow(
        "  - name: count\n    uses: WordCount\n    shards: 2\n    replicas: 2\n    workspace: ws\n    uses_with: {min_len: 2}\n    uses_requests: {/count: index}\n",
    );
    for _ in 0..8 {
        let (status, answer) = post_http(
            flow.http,
            "/post",
            json!({"execEndpoint": "/count", "data": [{"id": "d", "text": "to be or not to be"}]}),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            tags(&answer)[0]["words"],
            json!(6),
            "min_len 2 counts every word"
        );
    }
    // Each copy opened its own journal in the workspace. Each request went to one shard (polling
    // ANY, Jina's default), the shards taking turns, and within a shard its replicas.
    let ws = flow.files.dir.path().join("ws");
    let mut per_copy = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&ws).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        per_copy.insert(
            name,
            std::fs::read_to_string(&path).unwrap().lines().count(),
        );
    }
    let names: Vec<&str> = per_copy.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "count-shard-0-rep-0.tsv",
            "count-shard-0-rep-1.tsv",
            "count-shard-1-rep-0.tsv",
            "count-shard-1-rep-1.tsv"
        ]
    );
    let lines: Vec<usize> = per_copy.values().copied().collect();
    assert_eq!(lines[0] + lines[1], 4, "{per_copy:?}");
    assert_eq!(lines[2] + lines[3], 4, "{per_copy:?}");
    assert!(
        lines.iter().all(|&n| n > 0),
        "replicas take turns: {per_copy:?}"
    );
}

#[tokio::test]
async fn its_executor_serves_standalone_and_a_flow_attaches_to_it() {
    let yml = example_dir().join("wordcount.yml");
    let (executor, port) = start_executor(&["--uses", yml.to_str().unwrap()]);
    let flow = start_flow(&format!(
        "  - {{name: count, external: true, host: 127.0.0.1, port_in: {port}}}\n"
    ));
    let (status, answer) = post_http(
        flow.http,
        "/post",
        json!({"execEndpoint": "/index", "data": [{"text": "one two three two"}]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let got = &tags(&answer)[0];
    assert_eq!(got["words"], json!(4));
    assert_eq!(got["indexed_by"], json!("count"));
    drop(flow);
    assert!(
        alive(executor.child.id()),
        "an external executor outlives the Flow"
    );
}

#[test]
fn an_unknown_with_key_names_the_key_and_its_line() {
    let files = Files::new();
    let bad = files.write(
        "bad.yml",
        "jtype: WordCount\nwith:\n  min_len: 3\n  stopword: [the]\n",
    );
    let port = free_port().to_string();
    let (code, out) = run(&[
        "executor",
        "--uses",
        bad.to_str().unwrap(),
        "--port-in",
        &port,
    ]);
    assert_eq!(code, 1, "{out}");
    let expected = format!(
        "error: {}: line 4: with.stopword: WordCount takes no argument `stopword` (it takes: min_len, stopwords, lookup_ms)",
        bad.display()
    );
    assert!(out.lines().any(|l| l == expected), "{out}");

    // The same in a Flow's uses_with: the Flow's own line.
    let flow = files.write(
        "flow.yml",
        "jtype: Flow\nexecutors:\n  - name: count\n    uses: WordCount\n    uses_with:\n      min_length: 3\n",
    );
    let (code, out) = run(&["flow", "--uses", flow.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(":5: executors[0].uses_with: ")
            && out.contains("uses_with.min_length: WordCount takes no argument `min_length`"),
        "{out}"
    );
}

/// Threads of process `pid`, from /proc.
fn threads(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn an_async_handler_waits_without_holding_a_thread() {
    let (executor, port) = start_executor(&[
        "--uses",
        "WordCount",
        "--uses-with",
        r#"{"lookup_ms": 200}"#,
    ]);
    let pid = executor.child.id();
    let channel = channel(port).await;
    // Warm up (the first request starts the runtime's threads), then count.
    let one = |n: usize| {
        let mut client = JinaSingleDataRequestRpcClient::new(channel.clone());
        let docs = DocumentArray::from(vec![Document::from_text(format!("doc {n}"))]);
        async move {
            client
                .process_single_data(request::new_request("/enrich", &docs, &Default::default()))
                .await
                .expect("answer")
                .into_inner()
        }
    };
    one(0).await;
    let before = threads(pid);
    let started = Instant::now();
    let all = futures::future::join_all((0..20).map(one));
    let sample = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        threads(pid)
    };
    let (answers, during) = tokio::join!(all, sample);
    let took = started.elapsed();
    for answer in &answers {
        assert!(!request::is_error(answer), "{answer:?}");
        let docs = request::docs(answer).unwrap();
        assert_eq!(docs[0].tags["enriched_by"], json!("WordCount"));
    }
    // 20 waits of 200 ms one after another would take 4 s; at once, about 200 ms.
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert!(
        during < before + 4,
        "waiting requests hold no thread: {before} threads before, {during} while 20 wait"
    );
}
