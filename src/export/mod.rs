//! `jina export`: a Flow written down for another orchestrator to run (Jina 3's command):
//! `jina export docker-compose flow.yml docker-compose.yml`.
//!
//! It owns the translation of a checked Flow into that tool's file: one service per executor
//! copy, named as the Flow names its copies ([`crate::orchestrate::copies_of`]), and a
//! gateway that reaches them by service name (`jina gateway --uses flow.yml`). It starts and
//! stops nothing.

mod compose;

pub use compose::{ComposeOptions, to_compose};

/// What cannot be exported, and why. Each names the executor or setting.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{executor}: {why}")]
    Unsupported { executor: String, why: String },
    #[error("{executor}: {error}")]
    Config {
        executor: String,
        error: crate::executor::ConfigError,
    },
    #[error("{path}: the Flow file must be inside a folder that can be mounted")]
    NoFolder { path: String },
}
