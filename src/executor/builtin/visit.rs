//! `Visit`: appends to each document one match whose text names this executor copy (its
//! name, e.g. `enc/shard-1`) and whose `tags.pid` is its process id. Tests and examples use it
//! to see which copies did work: under polling ALL each shard leaves a match, under ANY one.

use crate::document::Document;
use crate::executor::{BoxError, Call, Executor, HandlerError, Metas, NoArgs, Requests};
use serde_json::Value;

/// Adds a match naming the executor to each document: shows which executors a request visited.
pub struct Visit;

impl Executor for Visit {
    const NAME: &'static str = "Visit";
    const SUMMARY: &'static str = "appends a match naming the executor copy that saw the document";
    type Args = NoArgs;

    fn new(_: NoArgs, _: &Metas) -> Result<Self, BoxError> {
        Ok(Visit)
    }

    fn requests(r: &mut Requests<Self>) {
        r.default(Self::visit);
    }
}

impl Visit {
    fn visit(&self, call: Call<'_>) -> Result<(), HandlerError> {
        let name = call.metas.name.as_deref().unwrap_or(Self::NAME);
        for doc in call.docs.iter_mut() {
            let mut visit = Document::from_text(name.to_string());
            visit
                .tags
                .insert("pid".into(), Value::from(std::process::id()));
            doc.matches.push(visit);
        }
        Ok(())
    }
}
