//! `BaseExecutor`: no handlers, so every request passes through unchanged.

use crate::executor::{BoxError, Executor, Metas, NoArgs, Requests};

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
