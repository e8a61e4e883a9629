//! `jina hello` and the search pipeline: the real binary indexes the shipped book into redb,
//! answers queries over REST, keeps its index across a restart, serves a search page that works
//! in headless Chromium, and gives the same top 10 from two shards as from one.

mod common;

use common::*;
use jina::client::{Client, Inputs, PostOptions};
use jina::flow::Protocol;
use serde_json::json;
use std::time::Duration;

const SENTENCE: &str = "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.";

async fn search(http: u16, query: &str) -> Vec<(String, f64)> {
    let (code, answer) = post_http(
        http,
        "/search",
        json!({"data": [{"text": query}], "parameters": {"top_k": 10}}),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["header"]["status"]["code"], "SUCCESS", "{answer}");
    answer["data"][0]["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["text"].as_str().unwrap().to_string(),
                m["scores"]["cosine"]["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn start_hello(workspace: &std::path::Path, http: u16) -> Proc {
    let http = http.to_string();
    let mut hello = Proc::start(&[
        "hello",
        "--port",
        &http,
        "--workspace",
        workspace.to_str().unwrap(),
    ]);
    hello.wait_for("Search page: http://localhost:", Duration::from_secs(120));
    hello
}

#[tokio::test]
async fn hello_indexes_the_book_answers_and_survives_a_restart() {
    let files = Files::new();
    let workspace = files.dir.path().join("ws");
    let http = free_port();
    let mut hello = start_hello(&workspace, http);
    let out = hello.output();
    assert!(out.contains("Indexing Pride and Prejudice"), "{out}");
    assert!(
        out.contains("🔎 a single man in possession"),
        "the sample queries print their matches: {out}"
    );

    let exact = search(http, SENTENCE).await;
    assert_eq!(exact[0].0, SENTENCE, "{exact:?}");
    assert!((exact[0].1 - 1.0).abs() < 1e-3, "score ≈ 1: {exact:?}");
    let paraphrase = search(
        http,
        "it is universaly acknowledged that a single man with a good fortune must want a wife",
    )
    .await;
    assert!(
        paraphrase.iter().take(3).any(|(t, _)| t == SENTENCE),
        "{paraphrase:?}"
    );

    hello.signal(libc::SIGINT);
    assert!(
        hello
            .wait_exit(Duration::from_secs(15))
            .is_some_and(|s| s.success()),
        "{}",
        hello.output()
    );
    drop(hello);

    let restarted = start_hello(&workspace, http);
    let out = restarted.output();
    assert!(
        out.contains("already holds") && !out.contains("Indexing Pride"),
        "the index was kept: {out}"
    );
    assert_eq!(search(http, SENTENCE).await[0].0, SENTENCE);

    // The search page, in a real browser: it runs the query from ?q= and lists the matches.
    let url = format!("http://127.0.0.1:{http}/?q=a%20truth%20universally%20acknowledged");
    let chrome = |extra: &[&str]| chromium(&url, extra);
    let dom = String::from_utf8_lossy(&chrome(&["--dump-dom"]).stdout).to_string();
    assert!(
        dom.contains("10 matches") && dom.contains("universally acknowledged"),
        "the page shows the matches:\n{dom}"
    );
    assert!(
        dom.contains("Encoder: NgramEncoder (256 dimensions)"),
        "the page says which encoder answers:\n{dom}"
    );
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("search-page.png");
    let _ = std::fs::remove_file(&png);
    chrome(&[&format!("--screenshot={}", png.display())]);
    let bytes = std::fs::read(&png).expect("a screenshot");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{} bytes",
        bytes.len()
    );
}

/// Indexes the same paragraphs into `flow` and returns the top 10 ids for each query.
async fn top10(grpc: u16, paragraphs: &[String], queries: &[&str]) -> Vec<Vec<String>> {
    let client = Client::connect(Protocol::Grpc, "127.0.0.1", grpc)
        .await
        .unwrap();
    let docs: Vec<_> = paragraphs
        .iter()
        .enumerate()
        .map(|(n, p)| {
            let mut d = jina::Document::from_text(p.clone());
            d.id = format!("p{n}");
            d
        })
        .collect();
    client
        .index(
            docs,
            PostOptions {
                request_size: 25,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut tops = vec![];
    for q in queries {
        let options = PostOptions {
            return_results: true,
            parameters: json!({"top_k": 10}).as_object().unwrap().clone(),
            ..Default::default()
        };
        let answer = client
            .search(jina::Document::from_text(*q), options)
            .await
            .unwrap();
        let docs = answer.results[0].docs().unwrap();
        tops.push(
            docs.iter()
                .next()
                .unwrap()
                .matches
                .iter()
                .map(|m| m.id.clone())
                .collect(),
        );
    }
    tops
}

/// What `/status` says each indexer shard holds.
async fn index_counts(grpc: u16) -> Vec<f64> {
    let client = Client::connect(Protocol::Grpc, "127.0.0.1", grpc)
        .await
        .unwrap();
    let options = PostOptions {
        return_results: true,
        ..Default::default()
    };
    let status = client
        .post("/status", Inputs::Nothing, options)
        .await
        .unwrap();
    status.results[0]
        .docs()
        .unwrap()
        .iter()
        // The encoder adds a status document of its own, without a count.
        .filter_map(|d| d.tags.get("count").and_then(|c| c.as_f64()))
        .collect()
}

#[tokio::test]
async fn two_shards_give_the_same_top_10_as_one() {
    let book = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/pride-and-prejudice.txt"
    ))
    .unwrap();
    let paragraphs: Vec<String> = book
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| p.len() > 1)
        .take(400)
        .collect();
    let queries = [
        "a single man in possession of a good fortune",
        "Mr. Darcy danced only once",
        "Jane was very much admired",
        "the assembly room was crowded",
        "Elizabeth laughed",
    ];
    let single = start_flow(
        "  - {name: seg, uses: Sentencizer}\n  - {name: enc, uses: NgramEncoder}\n  - {name: idx, uses: VectorIndexer, workspace: ws1}\n",
    );
    let sharded = start_flow(
        "  - {name: seg, uses: Sentencizer}\n  - {name: enc, uses: NgramEncoder}\n  - {name: idx, uses: VectorIndexer, workspace: ws2, parallel: 2, polling: ALL, uses_after: Ranker}\n",
    );
    let one = top10(single.grpc, &paragraphs, &queries).await;
    let two = top10(sharded.grpc, &paragraphs, &queries).await;
    assert!(one.iter().all(|t| t.len() == 10), "{one:?}");
    assert_eq!(one, two);

    // Each shard holds part of the data, and together all of it.
    let counts = index_counts(sharded.grpc).await;
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert!(counts.iter().all(|&c| c > 0.0), "{counts:?}");
    assert_eq!(
        counts.iter().sum::<f64>(),
        index_counts(single.grpc).await.iter().sum::<f64>()
    );
}
