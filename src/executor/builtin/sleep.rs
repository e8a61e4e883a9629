//! `Sleep`: waits `ms` milliseconds per request, then stamps each document's
//! `tags.<executor name>` with the number of requests this copy has served. Tests and
//! benchmarks use it to see which executors (and how many copies) did work.

use crate::document::DocumentArray;
use crate::executor::{Executor, HandlerError, HandlerSpec, Metas, Request};
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Sleep {
    ms: u64,
    served: AtomicU64,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default)]
    ms: u64,
}

pub fn create(with: &Map<String, Value>, _: &Metas) -> Result<Box<dyn Executor>, String> {
    let args: Args = super::parse_with(with)?;
    Ok(Box::new(Sleep {
        ms: args.ms,
        served: AtomicU64::new(0),
    }))
}

impl Executor for Sleep {
    fn handlers(&self) -> Vec<HandlerSpec> {
        vec![HandlerSpec::default("sleep")]
    }

    fn call(&self, _: &str, req: Request<'_>) -> Result<Option<DocumentArray>, HandlerError> {
        if self.ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(self.ms));
        }
        let served = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        let key = req.metas.name.clone().unwrap_or_else(|| "Sleep".into());
        for doc in req.docs.iter_mut() {
            doc.tags.insert(key.clone(), Value::from(served));
        }
        Ok(None)
    }
}
