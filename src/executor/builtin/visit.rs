//! `Visit`: appends to each document one match whose text names this executor copy (its
//! name, e.g. `enc/shard-1`) and whose `tags.pid` is its process id. Tests and examples use it
//! to see which copies did work: under polling ALL each shard leaves a match, under ANY one.

use crate::document::{Document, DocumentArray};
use crate::executor::{Executor, HandlerError, HandlerSpec, Metas, Request};
use serde_json::{Map, Value};

pub struct Visit;

pub fn create(with: &Map<String, Value>, _: &Metas) -> Result<Box<dyn Executor>, String> {
    super::parse_with::<std::collections::BTreeMap<String, Value>>(with).and_then(|args| match args
        .keys()
        .next()
    {
        Some(k) => Err(format!("unknown argument `{k}` (Visit takes none)")),
        None => Ok(Box::new(Visit) as Box<dyn Executor>),
    })
}

impl Executor for Visit {
    fn handlers(&self) -> Vec<HandlerSpec> {
        vec![HandlerSpec::default("visit")]
    }

    fn call(&self, _: &str, req: Request<'_>) -> Result<Option<DocumentArray>, HandlerError> {
        let name = req.metas.name.clone().unwrap_or_else(|| "Visit".into());
        for doc in req.docs.iter_mut() {
            let mut visit = Document::from_text(name.clone());
            visit
                .tags
                .insert("pid".into(), Value::from(std::process::id()));
            doc.matches.push(visit);
        }
        Ok(None)
    }
}
