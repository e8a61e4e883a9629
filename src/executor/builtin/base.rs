//! `BaseExecutor`: no handlers, so every request passes through unchanged.

use crate::document::DocumentArray;
use crate::executor::{Executor, HandlerError, HandlerSpec, Metas, Request};
use serde_json::{Map, Value};

pub struct BaseExecutor;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {}

pub fn create(with: &Map<String, Value>, _: &Metas) -> Result<Box<dyn Executor>, String> {
    super::parse_with::<Args>(with)?;
    Ok(Box::new(BaseExecutor))
}

impl Executor for BaseExecutor {
    fn handlers(&self) -> Vec<HandlerSpec> {
        vec![]
    }

    fn call(&self, handler: &str, _: Request<'_>) -> Result<Option<DocumentArray>, HandlerError> {
        Err(HandlerError::new(
            "KeyError",
            format!("no handler '{handler}'"),
        ))
    }
}
