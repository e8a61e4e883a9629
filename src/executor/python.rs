//! Which runtime serves a Python executor, and the command line that starts it: the one
//! place that decides it, for `jina executor` and for a Flow's copies.
//!
//! The rule (docs/executors.md): with `python_runtime: auto` (the default), our host
//! (`python -m jina_rs.executor`, from the `jina-rs` Python package) when the executor's Python
//! can import `jina_rs`; else Python Jina's `jina executor` when it can import `jina`; else an
//! error naming the `pip install` line. `python_runtime: jina-rs` or `jina` asks for one, and
//! it is an error when that one is missing. The executor's Python is `JINA_PYTHON`, else
//! `python3`. It must not know how either runtime serves; only how each is started.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Which runtime a user asks for.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum PythonRuntime {
    /// Ours when the executor's Python has it, else Python Jina's.
    #[default]
    Auto,
    /// Ours: the `jina-rs` package's host.
    JinaRs,
    /// Python Jina's own executor runtime.
    Jina,
}

impl std::fmt::Display for PythonRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PythonRuntime::Auto => "auto",
            PythonRuntime::JinaRs => "jina-rs",
            PythonRuntime::Jina => "jina",
        })
    }
}

/// The runtime chosen for one copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chosen {
    /// Our host, in-process with the executor's Python.
    JinaRs,
    /// Python Jina's `jina executor`.
    PythonJina,
}

/// Why no runtime can serve a Python executor.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NoPythonRuntime {
    #[error(
        "a Python executor needs a runtime, and {python} has neither ours nor Python Jina's: `{python} -m pip install jina-rs` (ours, docs/executors.md) or `{python} -m pip install jina` (Python Jina's)"
    )]
    Neither { python: String },
    #[error(
        "python_runtime: jina-rs, but {python} cannot import jina_rs: `{python} -m pip install jina-rs`"
    )]
    OursMissing { python: String },
    #[error(
        "python_runtime: jina, but {python} cannot import Python Jina: `{python} -m pip install jina`"
    )]
    JinaMissing { python: String },
    #[error("{python} cannot be run: {error}")]
    CannotRun { python: String, error: String },
}

/// The Python that runs Python executors: `JINA_PYTHON`, else `python3`.
pub fn interpreter() -> String {
    std::env::var("JINA_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Which of the two runtimes `python` can import, asked once per interpreter and process.
fn available(python: &str) -> Result<(bool, bool), NoPythonRuntime> {
    static SEEN: OnceLock<Mutex<HashMap<String, (bool, bool)>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Mutex::default);
    if let Some(found) = seen.lock().ok().and_then(|s| s.get(python).copied()) {
        return Ok(found);
    }
    // find_spec imports nothing: the probe costs the interpreter's start only.
    let probe = "import importlib.util as u; print(u.find_spec('jina_rs') is not None, u.find_spec('jina') is not None)";
    let out = std::process::Command::new(python)
        .args(["-c", probe])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| NoPythonRuntime::CannotRun {
            python: python.into(),
            error: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    let found = (words.next() == Some("True"), words.next() == Some("True"));
    if let Ok(mut s) = seen.lock() {
        s.insert(python.to_string(), found);
    }
    Ok(found)
}

/// Applies the rule for `requested` with the executor's Python.
pub fn choose(requested: PythonRuntime, python: &str) -> Result<Chosen, NoPythonRuntime> {
    let (ours, jina) = available(python)?;
    let python = python.to_string();
    match requested {
        PythonRuntime::JinaRs if ours => Ok(Chosen::JinaRs),
        PythonRuntime::JinaRs => Err(NoPythonRuntime::OursMissing { python }),
        PythonRuntime::Jina if jina => Ok(Chosen::PythonJina),
        PythonRuntime::Jina => Err(NoPythonRuntime::JinaMissing { python }),
        PythonRuntime::Auto if ours => Ok(Chosen::JinaRs),
        PythonRuntime::Auto if jina => Ok(Chosen::PythonJina),
        PythonRuntime::Auto => Err(NoPythonRuntime::Neither { python }),
    }
}

/// `python -m jina_rs.executor FLAGS`: our host, which reads `jina executor`'s own flags.
pub fn host_command(python: &str, flags: &super::ExecutorFlags) -> Vec<String> {
    [python, "-m", "jina_rs.executor"]
        .into_iter()
        .map(str::to_string)
        .chain(flags.to_args())
        .collect()
}
