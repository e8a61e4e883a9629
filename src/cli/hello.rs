//! `jina hello`: the main job on an embedded default. Starts flows/hello.yml (a sentence
//! splitter, an n-gram encoder and a redb-backed indexer), indexes the book shipped in the
//! binary (data/pride-and-prejudice.txt) with a progress bar, runs three sample queries, and
//! serves a search page until Ctrl-C. A second run finds the index on disk and skips indexing.
//! With `--model DIR` it runs flows/hello-transformer.yml instead: the same pipeline with a
//! sentence-transformers model as the encoder, and an index of its own.

use crate::client::{Inputs, PostOptions};
use crate::document::Document;
use crate::flow::Flow;
use anyhow::{Context, anyhow};
use clap::Args;
use std::path::PathBuf;

const HELLO_YAML: &str = include_str!("../../flows/hello.yml");
const HELLO_TRANSFORMER_YAML: &str = include_str!("../../flows/hello-transformer.yml");
/// The variable flows/hello-transformer.yml reads the model folder from.
const MODEL_DIR_VARIABLE: &str = "JINA_MODEL_DIR";
const BOOK: &str = include_str!("../../data/pride-and-prejudice.txt");
const SAMPLE_QUERIES: &[&str] = &[
    "a single man in possession of a good fortune must be in want of a wife",
    "she was not handsome enough to tempt him",
    "a letter from Jane arrived in the morning",
];

#[derive(Args, Debug)]
pub(super) struct HelloArgs {
    /// The HTTP port of the search page and REST API
    #[arg(long, default_value_t = 12345)]
    pub port: u16,
    /// The gRPC port (default: a free one)
    #[arg(long)]
    pub grpc_port: Option<u16>,
    /// Where the index lives (default: jina-hello-workspace, or
    /// jina-hello-transformer-workspace with --model)
    #[arg(long)]
    pub workspace: Option<PathBuf>,
    /// Encode with this sentence-transformers model folder (config.json, tokenizer.json,
    /// model.safetensors; e.g. all-MiniLM-L6-v2) instead of the n-gram encoder
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Index the book again even if the index already holds it
    #[arg(long)]
    pub reindex: bool,
    /// Stop after the sample queries instead of serving the search page
    #[arg(long)]
    pub no_serve: bool,
}

/// The book's paragraphs as documents with stable ids (`p0`, `p1`, ...), so that indexing
/// twice overwrites instead of duplicating.
fn paragraphs() -> impl Iterator<Item = Document> + Send + 'static {
    BOOK.split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| p.len() > 1)
        .enumerate()
        .map(|(n, text)| {
            let mut d = Document::from_text(text);
            d.id = format!("p{n}");
            d
        })
}

pub(super) async fn run(args: HelloArgs) -> anyhow::Result<()> {
    crate::logging::init("hello");
    let checked = match &args.model {
        None => crate::flow::from_yaml(HELLO_YAML, "hello.yml", None),
        Some(dir) => {
            let dir = std::path::absolute(dir).context("--model")?;
            let env = |name: &str| match name {
                MODEL_DIR_VARIABLE => Some(dir.display().to_string()),
                _ => std::env::var(name).ok(),
            };
            crate::flow::from_yaml_with_env(
                HELLO_TRANSFORMER_YAML,
                "hello-transformer.yml",
                None,
                &env,
            )
        }
    }
    .map_err(|e| anyhow!("{e}"))?;
    let mut spec = checked.spec;
    let grpc_port = match args.grpc_port {
        Some(p) => p,
        None => crate::net::free_port().map_err(|e| anyhow!(e))?,
    };
    spec.gateway.ports = vec![grpc_port, args.port];
    let workspace = args.workspace.clone().unwrap_or_else(|| match args.model {
        None => "jina-hello-workspace".into(),
        Some(_) => "jina-hello-transformer-workspace".into(),
    });
    let workspace = std::path::absolute(workspace).context("--workspace")?;
    for e in spec.executors.iter_mut().filter(|e| e.workspace.is_some()) {
        e.workspace = Some(workspace.display().to_string());
    }
    let executors = spec.executors.len();
    let flow = Flow::from_spec(spec).start().await?;
    let _registration = crate::local_flows::register(&flow.record("hello".into(), None, executors));

    let status = flow
        .post(
            "/status",
            Inputs::Nothing,
            PostOptions {
                return_results: true,
                ..Default::default()
            },
        )
        .await?;
    let indexed: u64 = status
        .results
        .iter()
        .flat_map(|r| r.docs().map(|d| d.into_vec()).unwrap_or_default())
        .filter_map(|d| d.tags.get("count").and_then(|c| c.as_f64()))
        .sum::<f64>() as u64;
    if indexed > 0 && !args.reindex {
        super::say(format_args!(
            "The index in {} already holds {indexed} sentences; skipping indexing (--reindex to redo it).",
            workspace.display()
        ));
    } else {
        super::say(format_args!(
            "Indexing Pride and Prejudice ({} paragraphs) into {} ...",
            paragraphs().count(),
            workspace.display()
        ));
        flow.index(
            Inputs::iter(paragraphs()),
            PostOptions {
                request_size: 50,
                show_progress: true,
                total_docs: Some(paragraphs().count() as u64),
                ..Default::default()
            },
        )
        .await?;
    }

    for query in SAMPLE_QUERIES {
        let options = PostOptions {
            return_results: true,
            parameters: serde_json::json!({"top_k": 3}).as_object().unwrap().clone(),
            ..Default::default()
        };
        let answer = flow.search(Document::from_text(*query), options).await?;
        super::say(format_args!("\n🔎 {query}"));
        for r in &answer.results {
            for doc in r.docs()?.iter() {
                for m in doc.matches.iter() {
                    super::say(format_args!(
                        "   {:.3}  {}",
                        m.score("cosine").unwrap_or(0.0),
                        m.text.as_deref().unwrap_or(&m.id)
                    ));
                }
            }
        }
    }
    if args.no_serve {
        return flow.stop().await.map_err(|e| anyhow!(e));
    }
    super::say(format_args!(
        "\n🌐 Search page: http://localhost:{}/   (REST: POST /search; gRPC on port {grpc_port}; Ctrl-C to stop)",
        args.port
    ));
    tracing::info!(target: "success", "serving the search page");
    flow.block().await;
    flow.stop().await.map_err(|e| anyhow!(e))
}
