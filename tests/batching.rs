//! Dynamic batching (`uses_dynamic_batching`) through the real binary: many small requests
//! become a few handler calls, each request gets its own documents back, and a request that
//! the handler rejects fails alone.

mod common;

use common::*;
use jina::proto::jina::DataRequestProto;
use jina::request;

/// One 1-document request to /index per text; the document's id is the text.
fn one_doc_requests(texts: &[String]) -> Vec<DataRequestProto> {
    texts
        .iter()
        .map(|t| request("/index", vec![doc_with_id(t, t)]))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sixty_four_small_requests_take_a_few_handler_calls_and_get_their_own_documents() {
    sixty_four_requests_in_batches_of_16(
        "  - name: model\n    uses: Sleep\n    uses_with: {ms: 20}\n    uses_dynamic_batching: {/index: {preferred_batch_size: 16, timeout: 500}}\n",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_executor_yamls_own_dynamic_batching_batches() {
    // Jina 3's `dynamic_batching:` at the top of the executor's YAML.
    sixty_four_requests_in_batches_of_16(
        "  - name: model\n    uses:\n      jtype: Sleep\n      with: {ms: 20}\n      dynamic_batching: {/index: {preferred_batch_size: 16, timeout: 500}}\n",
    )
    .await;
}

/// Posts 64 one-document requests to a Flow of `entries` (one batching `model`) and checks
/// that each got its own document back and that a few handler calls took them all.
async fn sixty_four_requests_in_batches_of_16(entries: &str) {
    // Sleep stamps each document with the number of calls its handler has had.
    let flow = start_flow(entries);
    let texts: Vec<String> = (0..64).map(|i| format!("doc-{i}")).collect();
    let answers = post_grpc(flow.grpc, one_doc_requests(&texts)).await;
    assert_eq!(answers.len(), 64);
    let mut calls = 0;
    let mut seen = vec![];
    for answer in &answers {
        assert!(!request::is_error(answer), "{answer:?}");
        let docs = request::docs(answer).unwrap();
        assert_eq!(docs.len(), 1, "each request gets its own document back");
        let doc = &docs[0];
        assert_eq!(doc.text.as_deref(), Some(doc.id.as_str()));
        calls = calls.max(doc.tags["model"].as_u64().unwrap());
        seen.push(doc.id.clone());
    }
    seen.sort();
    let mut sent = texts.clone();
    sent.sort();
    assert_eq!(seen, sent);
    assert!(
        (4..=8).contains(&calls),
        "64 requests in batches of 16 took {calls} handler calls"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_the_handler_rejects_fails_alone_in_its_batch() {
    let flow = start_flow(
        "  - name: picky\n    uses: Fail\n    uses_with: {reject: bad}\n    uses_dynamic_batching: {/index: {preferred_batch_size: 8, timeout: 500}}\n",
    );
    let texts: Vec<String> = (0..8)
        .map(|i| match i {
            3 => "bad".to_string(),
            i => format!("good-{i}"),
        })
        .collect();
    let answers = post_grpc(flow.grpc, one_doc_requests(&texts)).await;
    assert_eq!(answers.len(), 8);
    for answer in &answers {
        let docs = request::docs(answer).unwrap();
        let id = docs[0].id.clone();
        assert_eq!(request::is_error(answer), id == "bad", "{id}: {answer:?}");
    }
}

#[test]
fn bad_dynamic_batching_is_named_with_its_line() {
    let files = Files::new();
    let flow = files.write(
        "flow.yml",
        "executors:\n  - name: model\n    uses: Sleep\n    uses_dynamic_batching: {/index: {preferred_batch_size: 0}}\n",
    );
    let (code, out) = run(&["flow", "--uses", flow.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("flow.yml:4") && out.contains("preferred_batch_size: must be at least 1"),
        "{out}"
    );
}
