//! `Fail`: fails on purpose, to test how errors travel. With `on: /endpoint` it fails every
//! request to that endpoint; otherwise every `every`-th request (default 1: all of them).
//! Requests it lets through pass unchanged.

use crate::document::DocumentArray;
use crate::executor::{Executor, HandlerError, HandlerSpec, Metas, Request};
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Fail {
    every: u64,
    on: Option<String>,
    message: String,
    seen: AtomicU64,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default = "one")]
    every: u64,
    #[serde(default)]
    on: Option<String>,
    #[serde(default = "default_message")]
    message: String,
}

fn one() -> u64 {
    1
}

fn default_message() -> String {
    "failed on purpose".into()
}

pub fn create(with: &Map<String, Value>, _: &Metas) -> Result<Box<dyn Executor>, String> {
    let args: Args = super::parse_with(with)?;
    if args.every == 0 {
        return Err("every: must be at least 1".into());
    }
    Ok(Box::new(Fail {
        every: args.every,
        on: args.on,
        message: args.message,
        seen: AtomicU64::new(0),
    }))
}

impl Executor for Fail {
    fn handlers(&self) -> Vec<HandlerSpec> {
        vec![HandlerSpec::default("fail")]
    }

    fn call(&self, _: &str, req: Request<'_>) -> Result<Option<DocumentArray>, HandlerError> {
        let fails = match &self.on {
            Some(on) => on == req.endpoint,
            None => (self.seen.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(self.every),
        };
        if fails {
            Err(HandlerError::new("RuntimeError", self.message.clone()))
        } else {
            Ok(None)
        }
    }
}
