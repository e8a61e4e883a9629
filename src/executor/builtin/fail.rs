//! `Fail`: fails on purpose, to test how errors travel. With `on: /endpoint` it fails every
//! request to that endpoint; with `reject: TEXT`, every call holding a document with that
//! text (what a batch with one bad document meets); otherwise every `every`-th request
//! (default 1: all of them). Requests it lets through pass unchanged.

use crate::executor::{BoxError, Call, Executor, HandlerError, Metas, Requests};
use std::sync::atomic::{AtomicU64, Ordering};

/// Fails every request (or some), for tests of how errors travel.
pub struct Fail {
    every: u64,
    on: Option<String>,
    reject: Option<String>,
    message: String,
    seen: AtomicU64,
}

/// Its `with:`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(default = "one")]
    every: u64,
    #[serde(default)]
    on: Option<String>,
    #[serde(default)]
    reject: Option<String>,
    #[serde(default = "default_message")]
    message: String,
}

fn one() -> u64 {
    1
}

fn default_message() -> String {
    "failed on purpose".into()
}

impl Executor for Fail {
    const NAME: &'static str = "Fail";
    const SUMMARY: &'static str =
        "fails every `every`-th request, or every request on endpoint `on`";
    type Args = Args;

    fn new(args: Args, _: &Metas) -> Result<Self, BoxError> {
        if args.every == 0 {
            return Err("every: must be at least 1".into());
        }
        Ok(Fail {
            every: args.every,
            on: args.on,
            reject: args.reject,
            message: args.message,
            seen: AtomicU64::new(0),
        })
    }

    fn requests(r: &mut Requests<Self>) {
        r.default(Self::fail);
    }
}

impl Fail {
    fn fail(&self, call: Call<'_>) -> Result<(), HandlerError> {
        let fails = match (&self.on, &self.reject) {
            (Some(on), _) => on == call.endpoint,
            (None, Some(text)) => call.docs.iter().any(|d| d.text.as_ref() == Some(text)),
            (None, None) => {
                (self.seen.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(self.every)
            }
        };
        match fails {
            true => Err(HandlerError::new("RuntimeError", self.message.clone())),
            false => Ok(()),
        }
    }
}
