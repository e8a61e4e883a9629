//! Built-in executors, registered by name so that `jtype: NAME` and `uses: NAME` find them.
//!
//! Each entry has a constructor that reads its `with` arguments strictly: an unknown or
//! mistyped argument is an error naming it, as Python's `__init__` would refuse it.

mod base;
mod encoder;
mod fail;
mod indexer;
mod ranker;
mod sentencizer;
mod sleep;
mod visit;

use super::{Executor, Metas};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Makes an executor from its `with` arguments and metas; the error is one line.
pub type Constructor = fn(&Map<String, Value>, &Metas) -> Result<Box<dyn Executor>, String>;

/// One built-in executor.
pub struct Builtin {
    pub name: &'static str,
    pub summary: &'static str,
    pub create: Constructor,
}

/// Every built-in, by name.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "BaseExecutor",
        summary: "passes documents on unchanged (what .add() with no uses gives)",
        create: base::create,
    },
    // Jina 2's reserved names, with their meaning: the documents pass on, and when several
    // requests arrive (a join, the shards before a uses_after) they are merged by id, chunks
    // and matches joined, which is what every executor here does with `process_data`.
    Builtin {
        name: "_pass",
        summary: "Jina 2's reserved _pass: documents pass on unchanged",
        create: base::create,
    },
    Builtin {
        name: "_forward",
        summary: "Jina 2's reserved _forward: documents pass on unchanged",
        create: base::create,
    },
    Builtin {
        name: "_merge",
        summary: "Jina 2's reserved _merge: the requests of a join or of shards merged by document id",
        create: base::create,
    },
    Builtin {
        name: "_merge_chunks",
        summary: "Jina 2's reserved _merge_chunks: merged by document id, chunks of every copy joined",
        create: base::create,
    },
    Builtin {
        name: "Sleep",
        summary: "sleeps `ms` milliseconds per request, counting requests in tags",
        create: sleep::create,
    },
    Builtin {
        name: "Fail",
        summary: "fails every `every`-th request, or every request on endpoint `on`",
        create: fail::create,
    },
    Builtin {
        name: "Sentencizer",
        summary: "splits text into sentence chunks (on /index and /update)",
        create: sentencizer::create,
    },
    Builtin {
        name: "NgramEncoder",
        summary: "embeds text (and chunks) by hashed words and character n-grams, no model needed",
        create: encoder::create,
    },
    Builtin {
        name: "VectorIndexer",
        summary: "stores embeddings in redb; /index /search /update /delete /clear /status",
        create: indexer::create,
    },
    Builtin {
        name: "Ranker",
        summary: "sorts and truncates matches by score (after shards or a join)",
        create: ranker::create,
    },
    Builtin {
        name: "Visit",
        summary: "appends a match naming the executor copy that saw the document",
        create: visit::create,
    },
];

/// The built-in with this name.
pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// The names of all built-ins, for messages.
pub fn names() -> Vec<&'static str> {
    BUILTINS.iter().map(|b| b.name).collect()
}

/// Reads `with` into an executor's argument struct; unknown keys are refused.
fn parse_with<T: DeserializeOwned>(with: &Map<String, Value>) -> Result<T, String> {
    serde_json::from_value(Value::Object(with.clone())).map_err(|e| e.to_string())
}
