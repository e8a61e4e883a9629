//! `TransformerEncoder`: sentence embeddings from a BERT model of the sentence-transformers
//! kind (all-MiniLM-L6-v2, say), run on the CPU with candle.
//!
//! The model folder (`model_dir`) holds what sentence-transformers saves: `config.json`,
//! `tokenizer.json` and `model.safetensors`. `new` checks that they are there, so a Flow
//! names a missing file when it checks its YAML; `open` loads them. Each text is tokenized
//! (truncated to `max_length` tokens), run through the model in batches of `batch_size`,
//! mean-pooled over its real tokens and L2-normalised, as sentence-transformers does.
//!
//! Which documents it encodes: those of `traversal_paths` (`@r`, `@c`, `@r,c`, ...; a
//! request's `parameters.traversal_paths` wins) that have text and no embedding yet. Without
//! `traversal_paths` it encodes what the `VectorIndexer` stores and searches: each document's
//! chunks, or the document itself when it has none. `/status` answers a document naming the
//! encoder, so a search page can say which encoder answered.

use super::encoder::status_document;
use crate::document::{Document, NdArray, TraversalPaths};
use crate::executor::{BoxError, Call, Executor, HandlerError, Metas, Requests};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// The files a model folder must hold.
const CONFIG: &str = "config.json";
const TOKENIZER: &str = "tokenizer.json";
const WEIGHTS: &str = "model.safetensors";

/// Embeds text with a sentence-transformers BERT model (all-MiniLM-L6-v2), run by candle.
pub struct TransformerEncoder {
    dir: PathBuf,
    batch_size: usize,
    max_length: usize,
    traversal_paths: TraversalPaths,
    /// Loaded by `open`. One forward pass at a time: each already spreads over every core,
    /// and two at once only make candle's worker threads spin against each other.
    model: Option<Mutex<Model>>,
    /// The embedding size, read from the model's config by `open`.
    dim: usize,
}

/// The encoder's `with:`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The folder with `config.json`, `tokenizer.json` and `model.safetensors`; a relative
    /// path is from the working directory.
    model_dir: PathBuf,
    #[serde(default = "default_batch_size")]
    batch_size: usize,
    /// Longer texts are cut to this many tokens (sentence-transformers' `max_seq_length`).
    #[serde(default = "default_max_length")]
    max_length: usize,
    #[serde(default)]
    traversal_paths: Option<TraversalPaths>,
}

fn default_batch_size() -> usize {
    32
}

fn default_max_length() -> usize {
    256
}

/// What a request may change, per call.
#[derive(serde::Deserialize, Default)]
struct EncodeParameters {
    #[serde(default)]
    traversal_paths: Option<TraversalPaths>,
}

/// Why a model folder could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model_dir: {dir} is not a folder")]
    NotAFolder { dir: PathBuf },
    #[error(
        "model_dir: {dir} has no {file} (a sentence-transformers model folder holds {CONFIG}, {TOKENIZER} and {WEIGHTS})"
    )]
    MissingFile { dir: PathBuf, file: &'static str },
    #[error("{path}: {message}")]
    Unreadable { path: PathBuf, message: String },
    #[error("the model failed: {0}")]
    Inference(#[from] candle_core::Error),
    #[error("the tokenizer failed: {0}")]
    Tokenizer(String),
}

/// A loaded model and its tokenizer.
struct Model {
    bert: BertModel,
    tokenizer: Tokenizer,
    dim: usize,
}

impl Model {
    fn load(dir: &Path, max_length: usize) -> Result<Model, ModelError> {
        let unreadable = |file: &str, e: &dyn std::fmt::Display| ModelError::Unreadable {
            path: dir.join(file),
            message: e.to_string(),
        };
        let text = std::fs::read_to_string(dir.join(CONFIG)).map_err(|e| unreadable(CONFIG, &e))?;
        let config: Config = serde_json::from_str(&text).map_err(|e| unreadable(CONFIG, &e))?;
        let mut tokenizer =
            Tokenizer::from_file(dir.join(TOKENIZER)).map_err(|e| unreadable(TOKENIZER, &e))?;
        // The file pads every text to a fixed length; padding to the longest of a batch gives
        // the same embeddings (padding is masked out) for less work.
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                ..Default::default()
            }))
            .map_err(|e| unreadable(TOKENIZER, &e))?;
        let weights = std::fs::read(dir.join(WEIGHTS)).map_err(|e| unreadable(WEIGHTS, &e))?;
        let vars = VarBuilder::from_buffered_safetensors(weights, DTYPE, &Device::Cpu)
            .map_err(|e| unreadable(WEIGHTS, &e))?;
        let bert = BertModel::load(vars, &config).map_err(|e| unreadable(WEIGHTS, &e))?;
        Ok(Model {
            bert,
            tokenizer,
            dim: config.hidden_size,
        })
    }

    /// The tokens of `texts`, padded to the longest of them.
    fn tokenize(&self, texts: &[&str]) -> Result<Vec<tokenizers::Encoding>, ModelError> {
        self.tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))
    }

    /// The normalised mean-pooled embeddings of tokenized texts, one per text, in one forward
    /// pass over their first `len` tokens (the padding after the longest of them is left out).
    fn embed(
        &self,
        encodings: &[&tokenizers::Encoding],
        len: usize,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let rows = encodings.len();
        let flat = |f: fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            encodings
                .iter()
                .flat_map(|e| f(e)[..len].iter().copied())
                .collect()
        };
        let device = &Device::Cpu;
        let ids = Tensor::from_vec(flat(|e| e.get_ids()), (rows, len), device)?;
        let types = Tensor::from_vec(flat(|e| e.get_type_ids()), (rows, len), device)?;
        let mask = Tensor::from_vec(flat(|e| e.get_attention_mask()), (rows, len), device)?;
        let hidden = self.bert.forward(&ids, &types, Some(&mask))?;
        // Mean over the real tokens, then unit length (sentence-transformers' Pooling and
        // Normalize modules).
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        Ok(mean.broadcast_div(&norms)?.to_vec2::<f32>()?)
    }
}

/// Cuts token counts, sorted shortest first, into groups of at most `batch_size` whose
/// longest is at most a fifth (plus four tokens) longer than their shortest: padding to the
/// longest then wastes little. The sizes of the groups, in order.
fn similar_lengths(sorted: &[usize], batch_size: usize) -> Vec<usize> {
    let mut sizes = vec![];
    let mut first = 0;
    for (i, &len) in sorted.iter().enumerate() {
        let full = i - first == batch_size.max(1);
        let too_long = len * 5 > sorted[first] * 6 + 20;
        if i > first && (full || too_long) {
            sizes.push(i - first);
            first = i;
        }
    }
    if first < sorted.len() {
        sizes.push(sorted.len() - first);
    }
    sizes
}

impl TransformerEncoder {
    fn model(&self) -> Result<MutexGuard<'_, Model>, HandlerError> {
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| HandlerError::new("ModelError", "the model is not loaded (open)"))?;
        // A panic inside candle leaves the weights as they were: the model stays usable.
        Ok(model.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Embeddings for `texts`, in the order given. They are tokenized once, sorted by their
    /// number of tokens and run in groups of similar length (see [`similar_lengths`]) of at
    /// most `batch_size`, so that a batch of short and long texts is not padded to its longest.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, HandlerError> {
        let model = self.model()?;
        let failed = |e: ModelError| HandlerError::new("ModelError", e.to_string());
        let encodings = model.tokenize(texts).map_err(failed)?;
        let tokens: Vec<usize> = encodings
            .iter()
            .map(|e| e.get_attention_mask().iter().filter(|&&m| m == 1).count())
            .collect();
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| tokens[i]);
        let sorted: Vec<usize> = order.iter().map(|&i| tokens[i]).collect();
        let mut out = vec![vec![]; texts.len()];
        let mut start = 0;
        for size in similar_lengths(&sorted, self.batch_size) {
            let group = &order[start..start + size];
            start += size;
            let len = group.iter().map(|&i| tokens[i]).max().unwrap_or(0);
            let batch: Vec<&tokenizers::Encoding> = group.iter().map(|&i| &encodings[i]).collect();
            let vectors = model.embed(&batch, len).map_err(failed)?;
            for (&i, v) in group.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn encode(&self, call: Call<'_, EncodeParameters>) -> Result<(), HandlerError> {
        let paths = call
            .parameters
            .traversal_paths
            .as_ref()
            .unwrap_or(&self.traversal_paths);
        let needs = |d: &Document| d.embedding.is_none() && d.text.is_some();
        let texts: Vec<String> = paths
            .select(call.docs)
            .into_iter()
            .filter(|d| needs(d))
            .filter_map(|d| d.text.clone())
            .collect();
        if texts.is_empty() {
            return Ok(());
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut vectors = self.embed(&refs)?.into_iter();
        // The same traversal, in the same order, meets the same documents.
        paths.visit_mut(call.docs, &mut |d| {
            if needs(d) {
                d.embedding = vectors.next().map(|v| NdArray::from_f32(&v));
            }
        });
        Ok(())
    }

    fn status(&self, call: Call<'_>) -> Result<(), HandlerError> {
        let mut details = Map::new();
        details.insert(
            "model_dir".into(),
            Value::from(self.dir.display().to_string()),
        );
        let doc = status_document(Self::NAME, call.metas, self.dim, details);
        call.docs.push(doc);
        Ok(())
    }
}

/// The model folder, checked: it must hold the three files.
fn check_model_dir(dir: &Path) -> Result<(), ModelError> {
    if !dir.is_dir() {
        return Err(ModelError::NotAFolder {
            dir: dir.to_path_buf(),
        });
    }
    for file in [CONFIG, TOKENIZER, WEIGHTS] {
        if !dir.join(file).is_file() {
            return Err(ModelError::MissingFile {
                dir: dir.to_path_buf(),
                file,
            });
        }
    }
    Ok(())
}

impl Executor for TransformerEncoder {
    const NAME: &'static str = "TransformerEncoder";
    const SUMMARY: &'static str =
        "embeds text with a sentence-transformers BERT model (model_dir), on the CPU";
    type Args = Args;

    fn new(args: Args, _: &Metas) -> Result<Self, BoxError> {
        if args.batch_size == 0 {
            return Err("batch_size: must be at least 1".into());
        }
        if args.max_length < 2 {
            return Err("max_length: must be at least 2 (the tokens [CLS] and [SEP])".into());
        }
        let dir = std::path::absolute(&args.model_dir).unwrap_or(args.model_dir);
        check_model_dir(&dir)?;
        Ok(TransformerEncoder {
            dir,
            batch_size: args.batch_size,
            max_length: args.max_length,
            traversal_paths: args.traversal_paths.unwrap_or(TraversalPaths::Leaves),
            model: None,
            dim: 0,
        })
    }

    fn open(&mut self) -> Result<(), BoxError> {
        let model = Model::load(&self.dir, self.max_length)?;
        self.dim = model.dim;
        self.model = Some(Mutex::new(model));
        Ok(())
    }

    fn requests(r: &mut Requests<Self>) {
        r.on("/status", Self::status).default(Self::encode);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_of_similar_length_share_a_batch() {
        // Short ones together, long ones together; a batch never over batch_size.
        assert_eq!(
            similar_lengths(&[5, 5, 6, 7, 30, 31, 33, 80], 32),
            [4, 3, 1]
        );
        assert_eq!(similar_lengths(&[10; 70], 32), [32, 32, 6]);
        assert_eq!(similar_lengths(&[], 32), Vec::<usize>::new());
        assert_eq!(similar_lengths(&[3], 32), [1]);
    }

    #[test]
    fn a_missing_model_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_model_dir(&dir.path().join("nope")).unwrap_err();
        assert!(e.to_string().contains("is not a folder"), "{e}");
        std::fs::write(dir.path().join(CONFIG), "{}").unwrap();
        std::fs::write(dir.path().join(TOKENIZER), "{}").unwrap();
        let e = check_model_dir(dir.path()).unwrap_err();
        assert!(
            matches!(e, ModelError::MissingFile { file: WEIGHTS, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("has no model.safetensors"), "{e}");
    }
}
