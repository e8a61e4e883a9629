//! `NgramEncoder`: a text encoder that needs no model download. Each text becomes the sum of
//! hashed features (its words, and its character 3- and 4-grams, lower-cased), folded into
//! `dim` buckets with a sign from the hash (feature hashing), L2-normalised to an f32
//! embedding. Deterministic: the same text gives the same embedding on every machine. It
//! encodes every document with text, and every chunk with text, that has no embedding yet.
//! `/status` adds a document that names the encoder ([`status_document`], which every built-in
//! encoder answers with), so a search page can say which encoder answered.

use crate::document::{Document, NdArray};
use crate::executor::{BoxError, Call, Executor, HandlerError, Metas, Requests};
use serde_json::{Map, Value, json};

/// Embeds text by hashed character n-grams: no model, deterministic, for the search demo.
pub struct NgramEncoder {
    dim: usize,
}

/// The encoder's `with:`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(default = "default_dim")]
    dim: usize,
}

fn default_dim() -> usize {
    256
}

/// FNV-1a, 64 bits: a fixed hash, so embeddings never change between runs or machines.
fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf29ce484222325u64 ^ seed;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The embedding of `text` in `dim` dimensions.
pub(super) fn embed(text: &str, dim: usize) -> Vec<f32> {
    let mut v = vec![0f32; dim];
    let mut add = |feature: &[u8], seed: u64, weight: f32| {
        let h = fnv1a(feature, seed);
        let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
        v[(h % dim as u64) as usize] += sign * weight;
    };
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    for w in &words {
        add(w.as_bytes(), 1, 1.0);
    }
    let padded: Vec<char> = format!(" {} ", words.join(" ")).chars().collect();
    for n in [3usize, 4] {
        for gram in padded.windows(n) {
            let s: String = gram.iter().collect();
            add(s.as_bytes(), n as u64 + 10, 0.5);
        }
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

impl NgramEncoder {
    fn encode_doc(&self, doc: &mut Document) {
        if doc.embedding.is_none()
            && let Some(text) = doc.text.as_deref()
        {
            doc.embedding = Some(NdArray::from_f32(&embed(text, self.dim)));
        }
        for chunk in doc.chunks.iter_mut() {
            self.encode_doc(chunk);
        }
    }
}

impl Executor for NgramEncoder {
    const NAME: &'static str = "NgramEncoder";
    const SUMMARY: &'static str =
        "embeds text (and chunks) by hashed words and character n-grams, no model needed";
    type Args = Args;

    fn new(args: Args, _: &Metas) -> Result<Self, BoxError> {
        if args.dim == 0 {
            return Err("dim: must be at least 1".into());
        }
        Ok(NgramEncoder { dim: args.dim })
    }

    fn requests(r: &mut Requests<Self>) {
        r.on("/status", Self::status).default(Self::encode);
    }
}

/// The document an encoder adds to a `/status` request: its type, its dimensions and any
/// `details`, under an id with the executor's name.
pub(super) fn status_document(
    encoder: &str,
    metas: &Metas,
    dim: usize,
    details: Map<String, Value>,
) -> Document {
    let mut doc = Document::new();
    doc.id = format!("status-{}", metas.name.as_deref().unwrap_or(encoder));
    doc.tags.insert("encoder".into(), json!(encoder));
    doc.tags.insert("dim".into(), json!(dim));
    doc.tags.extend(details);
    doc
}

impl NgramEncoder {
    fn encode(&self, call: Call<'_>) -> Result<(), HandlerError> {
        for doc in call.docs.iter_mut() {
            self.encode_doc(doc);
        }
        Ok(())
    }

    fn status(&self, call: Call<'_>) -> Result<(), HandlerError> {
        let doc = status_document(Self::NAME, call.metas, self.dim, Map::new());
        call.docs.push(doc);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::embed;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn deterministic_normalised_and_typo_tolerant() {
        let a = embed("It is a truth universally acknowledged", 256);
        assert_eq!(a, embed("It is a truth universally acknowledged", 256));
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5);
        let typo = embed("it is a truth univresally acknowledged", 256);
        let other = embed("Mr. Bennet replied that he had not.", 256);
        assert!(cos(&a, &typo) > 0.7, "{}", cos(&a, &typo));
        assert!(cos(&a, &typo) > cos(&a, &other) + 0.3);
    }
}
