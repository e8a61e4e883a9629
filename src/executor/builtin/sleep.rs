//! `Sleep`: waits `ms` milliseconds per request, then stamps each document's
//! `tags.<executor name>` with the number of requests this copy has served. Tests and
//! benchmarks use it to see which executors (and how many copies) did work.

use crate::executor::{BoxError, Call, Executor, HandlerError, Metas, Requests};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};

/// Sleeps on each request and counts them in tags, for tests of timing and load.
pub struct Sleep {
    ms: u64,
    served: AtomicU64,
}

/// Its `with:`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(default)]
    ms: u64,
}

impl Executor for Sleep {
    const NAME: &'static str = "Sleep";
    const SUMMARY: &'static str = "sleeps `ms` milliseconds per request, counting requests in tags";
    type Args = Args;

    fn new(args: Args, _: &Metas) -> Result<Self, BoxError> {
        Ok(Sleep {
            ms: args.ms,
            served: AtomicU64::new(0),
        })
    }

    fn requests(r: &mut Requests<Self>) {
        r.default(Self::sleep);
    }
}

impl Sleep {
    fn sleep(&self, call: Call<'_>) -> Result<(), HandlerError> {
        if self.ms > 0 {
            // What a test waits for to know a request is in flight.
            tracing::debug!("sleeping {} ms", self.ms);
            std::thread::sleep(std::time::Duration::from_millis(self.ms));
        }
        let served = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        let key = call.metas.name.as_deref().unwrap_or(Self::NAME);
        for doc in call.docs.iter_mut() {
            doc.tags.insert(key.to_string(), Value::from(served));
        }
        Ok(())
    }
}
