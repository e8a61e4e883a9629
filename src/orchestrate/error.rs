//! What can go wrong while a Flow's executors start, as a library user can match on it.

use crate::executor::{ConfigError, OpenError};
use crate::net::ListenError;
use std::path::PathBuf;
use std::time::Duration;

/// Why a Flow's executors did not start. Each names the executor (or its copy: `enc/rep-1`).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Its `uses` (or `uses_with`, ...) is wrong.
    #[error("{executor}: {error}")]
    Config {
        executor: String,
        error: ConfigError,
    },
    /// A Python executor, and no runtime to serve it.
    #[error("{executor}: {error}")]
    NoPythonRuntime {
        executor: String,
        error: crate::executor::python::NoPythonRuntime,
    },
    #[error("{executor}: {error}")]
    Listen {
        executor: String,
        error: ListenError,
    },
    #[error("{executor}: cannot start {}: {error}", program.display())]
    Spawn {
        executor: String,
        program: PathBuf,
        error: std::io::Error,
    },
    /// The child exited before it served; its last lines of output say why.
    #[error("{executor} exited ({status}) before it was ready; its last output: {}", last_lines.join(" | "))]
    ChildExited {
        executor: String,
        status: std::process::ExitStatus,
        last_lines: Vec<String>,
    },
    #[error("{executor} was not ready within {waited:?} (timeout_ready)")]
    NotReady { executor: String, waited: Duration },
    #[error(
        "{executor}: the external executor at {address} did not answer within {waited:?} (timeout_ready): {why}"
    )]
    ExternalNotReady {
        executor: String,
        address: String,
        waited: Duration,
        why: String,
    },
    #[error("{executor}: an external executor needs port_in")]
    NoPortIn { executor: String },
    #[error("{executor}: {why}")]
    BadAddress { executor: String, why: String },
    #[error(
        "cannot find the jina binary to run executors: set JINA_BIN, or build it (cargo build)"
    )]
    NoBinary,
    /// Docker is missing or does not answer, for a Flow with `docker://` executors.
    #[error(transparent)]
    Container(#[from] crate::container::ContainerError),
    /// A remote host's daemon could not start it.
    #[error("{executor}: {error}")]
    Daemon {
        executor: String,
        error: crate::daemon::client::DaemonError,
    },
    /// It cannot be started on a remote host.
    #[error("{executor}: {why}")]
    Remote { executor: String, why: String },
    /// An in-process executor could not take its resources.
    #[error(transparent)]
    Open(#[from] OpenError),
}
