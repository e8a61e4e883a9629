//! `Ranker`: puts each document's matches in order of a score (`metric`, default `cosine`,
//! highest first), keeps one match per id (its best), and keeps the `top_k` best
//! (`parameters.top_k`, else `with.top_k`, default 10). Used after shards (as a `uses_after` it
//! folds the shards' copies of each document into one, from `docs_matrix`) or after a join.

use crate::document::{Document, DocumentArray};
use crate::executor::{BoxError, Call, Executor, HandlerError, Metas, Requests};
use serde_json::{Map, Value};

/// Orders each document's matches by score and keeps the best.
pub struct Ranker {
    metric: String,
    top_k: usize,
}

/// The ranker's `with:`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(default = "cosine")]
    metric: String,
    #[serde(default = "ten")]
    top_k: usize,
}

fn cosine() -> String {
    "cosine".into()
}

fn ten() -> usize {
    10
}

/// `parameters.top_k` when given as a positive number, else `default`.
pub(super) fn top_k(
    parameters: &Map<String, Value>,
    default: usize,
) -> Result<usize, HandlerError> {
    match parameters.get("top_k") {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|k| *k >= 1.0 && k.fract() == 0.0)
            .map(|k| k as usize)
            .ok_or_else(|| {
                HandlerError::new(
                    "ValueError",
                    format!("parameters.top_k must be a positive integer, not {v}"),
                )
            }),
    }
}

/// Sorts `matches` by `metric` (best first), one per id, and keeps `k`.
pub(super) fn rank(matches: &mut DocumentArray, metric: &str, k: usize) {
    let list = matches.as_mut_vec();
    let score = |d: &Document| d.score(metric).unwrap_or(f64::NEG_INFINITY);
    list.sort_by(|a, b| score(b).total_cmp(&score(a)).then_with(|| a.id.cmp(&b.id)));
    let mut seen = std::collections::HashSet::new();
    list.retain(|d| seen.insert(d.id.clone()));
    list.truncate(k);
}

impl Executor for Ranker {
    const NAME: &'static str = "Ranker";
    const SUMMARY: &'static str = "sorts and truncates matches by score (after shards or a join)";
    type Args = Args;

    fn new(args: Args, _: &Metas) -> Result<Self, BoxError> {
        Ok(Ranker {
            metric: args.metric,
            top_k: args.top_k,
        })
    }

    fn requests(r: &mut Requests<Self>) {
        r.default(Self::rank);
    }
}

impl Ranker {
    fn rank(&self, call: Call<'_>) -> Result<(), HandlerError> {
        let k = top_k(&call.parameters, self.top_k)?;
        // After shards: each shard's copy of a document, folded into one.
        if let Some(matrix) = call.docs_matrix {
            *call.docs = DocumentArray::merge_by_id(matrix.iter().cloned());
        }
        for doc in call.docs.iter_mut() {
            rank(&mut doc.matches, &self.metric, k);
        }
        Ok(())
    }
}
