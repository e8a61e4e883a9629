//! `WordCount`: a keyword tagger, written as a user of jina writes an executor.
//!
//! - `/index` counts each document's words (those of at least `min_len` letters that are not
//!   `stopwords`) into `tags.words`, and adds what it saw to this copy's running total. With a
//!   workspace, each copy also appends `id<TAB>words` to its journal there, a file it opens in
//!   `open` (so building the executor, as a Flow does to check its YAML, touches no file).
//! - `/search` puts the document's `top_k` most frequent words in `tags.keywords`
//!   (`parameters.top_k`, typed, default 3).
//! - `/enrich` asks a (pretend) dictionary service about each document, which answers after
//!   `lookup_ms`: an async handler, so a request that waits holds no thread.
//! - every other endpoint: documents pass through unchanged (no default handler).
//!
//! The reference's Python for the same executor is in docs/executors.md.

use jina::DocumentArray;
use jina::executor::{AsyncCall, BoxError, Call, Executor, Metas, Requests};
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The constructor's arguments: YAML `with:` and a Flow's `uses_with`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Shorter words are not counted.
    #[serde(default = "default_min_len")]
    pub min_len: usize,
    /// Words never counted (compared lower-cased).
    #[serde(default)]
    pub stopwords: Vec<String>,
    /// How long the dictionary service of `/enrich` takes to answer, in milliseconds.
    #[serde(default)]
    pub lookup_ms: u64,
}

fn default_min_len() -> usize {
    1
}

/// The parameters `/search` reads; other keys of the request's parameters are ignored.
#[derive(Debug, Deserialize)]
pub struct SearchParameters {
    #[serde(default = "default_top_k")]
    pub top_k: usize,
}

fn default_top_k() -> usize {
    3
}

/// A handler's own error type: its name is what a client sees as the error's name.
#[derive(Debug, thiserror::Error)]
pub enum WordCountError {
    #[error("document {0} has no text to search by")]
    NoText(String),
    #[error("cannot write the journal: {0}")]
    Journal(#[from] std::io::Error),
}

pub struct WordCount {
    min_len: usize,
    stopwords: Vec<String>,
    lookup: Duration,
    /// Words this copy has indexed, over all requests.
    indexed: AtomicU64,
    /// Which copy this is, for the tags (`count/shard-1/rep-0`).
    name: String,
    workspace: Option<PathBuf>,
    /// Opened by `open` when there is a workspace.
    journal: Option<Mutex<std::fs::File>>,
}

impl Executor for WordCount {
    const NAME: &'static str = "WordCount";
    const SUMMARY: &'static str = "counts words into tags; /search tags the top keywords";
    type Args = Args;

    fn new(args: Args, metas: &Metas) -> Result<Self, BoxError> {
        if args.min_len == 0 {
            return Err("min_len: must be at least 1".into());
        }
        Ok(WordCount {
            min_len: args.min_len,
            stopwords: args.stopwords.iter().map(|w| w.to_lowercase()).collect(),
            lookup: Duration::from_millis(args.lookup_ms),
            indexed: AtomicU64::new(0),
            name: metas.name.clone().unwrap_or_else(|| Self::NAME.into()),
            workspace: metas.workspace.as_ref().map(PathBuf::from),
            journal: None,
        })
    }

    /// Opens this copy's journal in the workspace: `count-shard-0-rep-1.tsv`.
    fn open(&mut self) -> Result<(), BoxError> {
        if let Some(dir) = &self.workspace {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("workspace {}: {e}", dir.display()))?;
            let path = dir.join(format!("{}.tsv", self.name.replace('/', "-")));
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            self.journal = Some(Mutex::new(file));
        }
        Ok(())
    }

    fn requests(r: &mut Requests<Self>) {
        r.on("/index", Self::index)
            .on("/search", Self::search)
            .on_async("/enrich", Self::enrich);
    }
}

impl WordCount {
    /// The counted words of `text`, most frequent first (ties in alphabetical order).
    pub fn counts(&self, text: &str) -> Vec<(String, u64)> {
        let mut counts: HashMap<String, u64> = HashMap::new();
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .map(str::to_lowercase)
            .filter(|w| w.chars().count() >= self.min_len && !self.stopwords.contains(w))
        {
            *counts.entry(word).or_default() += 1;
        }
        let mut sorted: Vec<_> = counts.into_iter().collect();
        sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        sorted
    }

    fn index(&self, call: Call<'_>) -> Result<(), WordCountError> {
        for doc in call.docs.iter_mut() {
            let words: u64 = self
                .counts(doc.text.as_deref().unwrap_or(""))
                .iter()
                .map(|(_, n)| n)
                .sum();
            let total = self.indexed.fetch_add(words, Ordering::Relaxed) + words;
            doc.tags.insert("words".into(), words.into());
            doc.tags
                .insert("indexed_by".into(), self.name.clone().into());
            doc.tags.insert("copy_total".into(), total.into());
            if let Some(journal) = &self.journal {
                let mut file = journal.lock().unwrap_or_else(|e| e.into_inner());
                writeln!(file, "{}\t{words}", doc.id)?;
            }
        }
        Ok(())
    }

    fn search(&self, call: Call<'_, SearchParameters>) -> Result<(), WordCountError> {
        for doc in call.docs.iter_mut() {
            let text = doc
                .text
                .as_deref()
                .ok_or_else(|| WordCountError::NoText(doc.id.clone()))?;
            let keywords: Vec<String> = self
                .counts(text)
                .into_iter()
                .take(call.parameters.top_k)
                .map(|(w, _)| w)
                .collect();
            doc.tags.insert("keywords".into(), keywords.into());
        }
        Ok(())
    }

    /// Waits for the dictionary service without holding a thread, then tags each document.
    async fn enrich(self: Arc<Self>, call: AsyncCall) -> Result<DocumentArray, BoxError> {
        let mut docs = call.docs;
        tokio::time::sleep(self.lookup).await;
        for doc in docs.iter_mut() {
            doc.tags
                .insert("enriched_by".into(), self.name.clone().into());
        }
        Ok(docs)
    }
}
