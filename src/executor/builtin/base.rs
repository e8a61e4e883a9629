//! `BaseExecutor`: no handlers, so every request passes through unchanged; and `Merge`, Jina
//! 2's reserved `_merge`: the shards' copies of each document folded into one.

use crate::document::DocumentArray;
use crate::executor::{BoxError, Call, Executor, HandlerError, Metas, NoArgs, Requests};

/// Jina's `BaseExecutor`: no handler, so every request goes back as it came.
pub struct BaseExecutor;

impl Executor for BaseExecutor {
    const NAME: &'static str = "BaseExecutor";
    const SUMMARY: &'static str = "passes documents on unchanged (what .add() with no uses gives)";
    type Args = NoArgs;

    fn new(_: NoArgs, _: &Metas) -> Result<Self, BoxError> {
        Ok(BaseExecutor)
    }

    fn requests(_: &mut Requests<Self>) {}
}

/// Folds the requests it is handed (the shards' answers, as a `uses_after`) into one, by
/// document id, as Jina 2's `_merge` did; a single request passes on unchanged.
pub struct Merge;

impl Executor for Merge {
    const NAME: &'static str = "Merge";
    const SUMMARY: &'static str =
        "folds the shards' answers into one by document id (a uses_after)";
    type Args = NoArgs;

    fn new(_: NoArgs, _: &Metas) -> Result<Self, BoxError> {
        Ok(Merge)
    }

    fn requests(r: &mut Requests<Self>) {
        r.default(Self::merge);
    }
}

impl Merge {
    fn merge(&self, call: Call<'_>) -> Result<(), HandlerError> {
        if let Some(matrix) = call.docs_matrix {
            *call.docs = DocumentArray::merge_by_id(matrix.iter().cloned());
        }
        Ok(())
    }
}
