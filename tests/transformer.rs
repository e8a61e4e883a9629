//! The transformer encoder: its embeddings agree with the model's own implementation
//! (sentence-transformers on PyTorch, committed as tests/transformer/reference.json by
//! make-reference.py), and through the real binary it finds sentences by meaning where the
//! n-gram encoder finds them by spelling.

mod common;

use common::*;
use jina::executor::builtin::TransformerEncoder;
use jina::executor::{Executor, Metas};
use serde_json::{Value, json};
use std::time::Duration;

const REFERENCE: &str = include_str!("transformer/reference.json");
const TOLERABLE: &str = "tolerable, but not handsome enough to tempt";

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn embeddings_agree_with_sentence_transformers() {
    let reference: Value = serde_json::from_str(REFERENCE).unwrap();
    let sentences: Vec<&str> = reference["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let expected: Vec<Vec<f32>> = serde_json::from_value(reference["embeddings"].clone()).unwrap();
    assert_eq!(sentences.len(), 20);

    let args = serde_json::from_value(json!({
        "model_dir": minilm_model(),
        "batch_size": 8,
        "max_length": reference["max_seq_length"],
    }))
    .unwrap();
    let mut encoder = TransformerEncoder::new(args, &Metas::default()).unwrap();
    encoder.open().unwrap();
    let ours = encoder.embed(&sentences).unwrap();

    for ((sentence, ours), theirs) in sentences.iter().zip(&ours).zip(&expected) {
        assert_eq!(ours.len(), 384);
        let norm: f32 = ours.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "unit length: {norm}");
        let c = cosine(ours, theirs);
        assert!(c >= 0.999, "cosine {c} for {sentence:?}");
    }
    // Batching is invisible: one sentence alone gives the same vector as in a batch.
    let alone = encoder.embed(&sentences[1..2]).unwrap();
    assert!(cosine(&alone[0], &ours[1]) > 0.99999);
}

#[test]
fn an_incomplete_model_folder_is_named_when_the_flow_is_checked() {
    let files = Files::new();
    files.write("model/config.json", "{}");
    files.write("model/tokenizer.json", "{}");
    let flow = files.write(
        "flow.yml",
        "executors:\n  - name: encoder\n    uses: TransformerEncoder\n    uses_with: {model_dir: model}\n",
    );
    let out = std::process::Command::new(JINA)
        .args(["flow", "--uses", flow.to_str().unwrap()])
        .current_dir(files.dir.path())
        .output()
        .unwrap();
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("flow.yml:3: executors[0].uses") && text.contains("has no model.safetensors"),
        "{text}"
    );
}

/// The book's first paragraphs (chapters 1 to 5, about 280 sentences), as `jina hello` cuts
/// them.
fn opening_paragraphs() -> Vec<Value> {
    let book = include_str!("../data/pride-and-prejudice.txt");
    book.split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| p.len() > 1)
        .take(110)
        .enumerate()
        .map(|(n, text)| json!({"id": format!("p{n}"), "text": text}))
        .collect()
}

#[tokio::test]
async fn the_transformer_flow_finds_a_paraphrase() {
    let files = Files::new();
    let flow = files.write(
        "hello-transformer.yml",
        include_str!("../flows/hello-transformer.yml"),
    );
    let model = minilm_model();
    let mut proc = Proc::start_in(
        &["flow", "--uses", flow.to_str().unwrap()],
        Some(files.dir.path()),
        &[("JINA_MODEL_DIR", model.as_os_str())],
    );
    let ports = proc.wait_for_gateway(Duration::from_secs(60));
    let http = ports["HTTP"];

    for batch in opening_paragraphs().chunks(20) {
        let (code, answer) = post_http(http, "/index", json!({"data": batch})).await;
        assert_eq!(code, 200, "{answer}");
        assert_eq!(answer["header"]["status"]["code"], "SUCCESS", "{answer}");
    }
    let (_, status) = post_http(
        http,
        "/post",
        json!({"execEndpoint": "/status", "data": []}),
    )
    .await;
    let tags: Vec<&Value> = status["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["tags"])
        .collect();
    let count = tags.iter().find_map(|t| t["count"].as_f64()).unwrap();
    assert!(count > 250.0, "a few hundred sentences indexed: {tags:?}");
    assert!(
        tags.iter()
            .any(|t| t["encoder"] == "TransformerEncoder" && t["dim"] == 384),
        "{tags:?}"
    );

    let (code, answer) = post_http(
        http,
        "/search",
        json!({"data": [{"text": "she was not handsome enough to tempt him"}], "parameters": {"top_k": 3}}),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    let top: Vec<&str> = answer["data"][0]["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert!(top.iter().any(|t| t.contains(TOLERABLE)), "{top:#?}");

    // The search page says which encoder answered.
    let url = format!("http://127.0.0.1:{http}/?q=not%20handsome%20enough%20to%20tempt%20him");
    let dom = String::from_utf8_lossy(&chromium(&url, &["--dump-dom"]).stdout).to_string();
    assert!(
        dom.contains("Encoder: TransformerEncoder (384 dimensions, model all-MiniLM-L6-v2)")
            && dom.contains("tolerable"),
        "{dom}"
    );
}
