//! Built-in executors, written on the same [`Executor`](super::Executor) API as a user's and
//! registered by name so that `jtype: NAME` and `uses: NAME` find them.
//!
//! Each reads its `with` arguments strictly: an unknown or mistyped argument is an error
//! naming it, as Python's `__init__` would refuse it.

mod base;
mod encoder;
mod fail;
mod indexer;
mod ranker;
mod sentencizer;
mod sleep;
mod tokenizer;
#[cfg(feature = "transformer")]
mod transformer;
mod visit;

pub use base::{BaseExecutor, Merge};
pub use encoder::NgramEncoder;
pub use fail::Fail;
pub use indexer::VectorIndexer;
pub use ranker::Ranker;
pub use sentencizer::Sentencizer;
pub use sleep::Sleep;
pub use tokenizer::Tokenizer;
#[cfg(feature = "transformer")]
pub use transformer::{ModelError, TransformerEncoder};
pub use visit::Visit;

use super::Entry;

/// Every built-in, by name.
pub(crate) fn entries() -> Vec<Entry> {
    vec![
        Entry::of::<BaseExecutor>(),
        // Jina 2's reserved names, with their meaning: the documents pass on; `_merge` and
        // `_merge_chunks`, as a uses_after, fold the shards' answers into one by id, chunks
        // and matches joined (a join's parents are merged by id before any executor sees them).
        Entry::alias::<BaseExecutor>(
            "_pass",
            "Jina 2's reserved _pass: documents pass on unchanged",
        ),
        Entry::alias::<BaseExecutor>(
            "_forward",
            "Jina 2's reserved _forward: documents pass on unchanged",
        ),
        Entry::of::<Merge>(),
        Entry::alias::<Merge>(
            "_merge",
            "Jina 2's reserved _merge: the requests of a join or of shards merged by document id",
        ),
        Entry::alias::<Merge>(
            "_merge_chunks",
            "Jina 2's reserved _merge_chunks: merged by document id, chunks of every copy joined",
        ),
        Entry::of::<Sleep>(),
        Entry::of::<Fail>(),
        Entry::of::<Sentencizer>(),
        Entry::of::<Tokenizer>(),
        Entry::of::<NgramEncoder>(),
        #[cfg(feature = "transformer")]
        Entry::of::<TransformerEncoder>(),
        Entry::of::<VectorIndexer>(),
        Entry::of::<Ranker>(),
        Entry::of::<Visit>(),
    ]
}
