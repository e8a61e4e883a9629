//! Flows: the description of a pipeline of executors, and its checks.
//!
//! This module owns the Flow as data ([`FlowSpec`]: what a Flow YAML or the builder API
//! says), reading Flow YAML (`yaml`), and the graph with its validation (`graph`). It starts
//! nothing and opens no socket: `orchestrate` starts processes, `gateway` routes requests.

mod builder;
mod graph;
mod plot;
mod spec;
mod yaml;

pub use builder::{Exec, Flow, Needs};
pub use graph::{Graph, GraphNode};
pub use spec::{
    CallPolicy, ExecutorSpec, FlowSpec, GATEWAY, GatewaySpec, Idempotent, Polling, Protocol,
    RestartPolicy, TlsFiles, Uses,
};

use crate::executor::Served;
use std::fmt;
use std::path::Path;

/// One finding about a Flow YAML: where (line, key path) and what.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub line: Option<usize>,
    pub path: String,
    pub message: String,
}

impl Diagnostic {
    /// A finding at `line` about the key at `path`.
    pub fn new(line: Option<usize>, path: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            line,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.line {
            write!(f, "line {l}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every error found in a Flow, each on its own line as `<file>:<line>: <key>: <message>`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct FlowErrors {
    pub origin: String,
    pub errors: Vec<Diagnostic>,
    /// Warnings met on the way (unknown keys), as `<file>:<line>: ...`.
    pub warnings: Vec<String>,
}

impl fmt::Display for FlowErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, d) in self.errors.iter().enumerate() {
            if n > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}", self.origin)?;
            if let Some(l) = d.line {
                write!(f, ":{l}")?;
            }
            write!(f, ": ")?;
            if !d.path.is_empty() {
                write!(f, "{}: ", d.path)?;
            }
            f.write_str(&d.message)?;
        }
        Ok(())
    }
}

/// A Flow that passed every check: its spec, its graph, what each executor runs, and the
/// warnings met on the way.
#[derive(Clone, Debug)]
pub struct CheckedFlow {
    pub spec: FlowSpec,
    pub graph: Graph,
    /// What each entry's `uses` resolved to when the Flow was checked, by the entry's index:
    /// orchestration and export use this answer and never resolve again.
    pub served: Vec<ServedEntry>,
    pub warnings: Vec<String>,
}

/// What an executor entry runs, as the Flow's check resolved it.
#[derive(Clone, Debug, PartialEq)]
pub enum ServedEntry {
    /// `external: true`: it runs already, somewhere else.
    External,
    /// Its own copies, and its uses_before and uses_after.
    Copies {
        uses: Served,
        uses_before: Option<Served>,
        uses_after: Option<Served>,
    },
}

impl ServedEntry {
    /// What its copies run: its `uses`, and its uses_before and uses_after.
    fn parts(&self) -> impl Iterator<Item = &Served> {
        let parts = match self {
            ServedEntry::External => [None, None, None],
            ServedEntry::Copies {
                uses,
                uses_before,
                uses_after,
            } => [Some(uses), uses_before.as_ref(), uses_after.as_ref()],
        };
        parts.into_iter().flatten()
    }

    /// The files its copies are made of (see [`Served::files`]).
    pub fn files(&self) -> Vec<std::path::PathBuf> {
        self.parts().flat_map(Served::files).collect()
    }

    /// Whether a copy of it keeps a workspace its own config gives (see
    /// [`Served::keeps_workspace`]).
    pub fn keeps_workspace(&self) -> bool {
        self.parts().any(Served::keeps_workspace)
    }

    /// Whether anything of it runs in a container.
    pub fn in_container(&self) -> bool {
        self.parts().any(Served::is_container)
    }
}

/// A checked Flow's graph and what each entry runs.
pub type Checked = (Graph, Vec<ServedEntry>);

/// Reads and checks a Flow YAML file.
pub fn load(path: &Path) -> Result<CheckedFlow, FlowErrors> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| FlowErrors {
        origin: origin.clone(),
        errors: vec![Diagnostic::new(
            None,
            "",
            match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_string(),
                _ => e.to_string(),
            },
        )],
        warnings: vec![],
    })?;
    from_yaml(&text, &origin, path.parent().map(Path::to_path_buf))
}

/// Reads and checks Flow YAML text; `origin` names it in messages.
pub fn from_yaml(
    text: &str,
    origin: &str,
    base_dir: Option<std::path::PathBuf>,
) -> Result<CheckedFlow, FlowErrors> {
    from_yaml_with_env(text, origin, base_dir, &|name| std::env::var(name).ok())
}

/// [`from_yaml`], with `${{ ENV.VAR }}` looked up by `env` instead of the process environment.
pub fn from_yaml_with_env(
    text: &str,
    origin: &str,
    base_dir: Option<std::path::PathBuf>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<CheckedFlow, FlowErrors> {
    let parsed = yaml::parse_with_env(text, base_dir, env);
    let mut errors = parsed.errors;
    let syntax_failed = errors.iter().any(|d| d.path.is_empty());
    let graph = if syntax_failed {
        None
    } else {
        match check(&parsed.spec) {
            Ok(checked) => Some(checked),
            Err(problems) => {
                for (i, key, message) in problems {
                    errors.push(Diagnostic::new(
                        parsed.lines.item_key(i, key),
                        &format!("executors[{i}].{key}"),
                        message,
                    ));
                }
                None
            }
        }
    };
    let warnings = parsed
        .warnings
        .iter()
        .map(|w| format!("{origin}:{}", w.to_string().trim_start_matches("line ")))
        .collect();
    match graph {
        Some((graph, served)) if errors.is_empty() => Ok(CheckedFlow {
            spec: parsed.spec,
            graph,
            served,
            warnings,
        }),
        _ => {
            errors.sort_by_key(|d| d.line.unwrap_or(0));
            Err(FlowErrors {
                origin: origin.into(),
                errors,
                warnings,
            })
        }
    }
}

/// Checks a spec (however it was made) as a whole: the graph, and each executor's `uses`,
/// resolved once here for everything that follows.
pub fn check(spec: &FlowSpec) -> Result<Checked, Vec<graph::Problem>> {
    let (graph, mut problems) = match Graph::build(spec) {
        Ok(g) => (Some(g), vec![]),
        Err(p) => (None, p),
    };
    let mut served = vec![];
    for (i, e) in spec.executors.iter().enumerate() {
        if e.external {
            served.push(ServedEntry::External);
            continue;
        }
        let base_dir = spec.base_dir.as_deref();
        let plain = crate::executor::Overrides::default();
        let mut resolve = |key: &'static str, uses: &Uses, overrides, py_modules| {
            crate::executor::resolve_uses(uses, base_dir, overrides, py_modules)
                // A mistake in the entry's own `uses_with` (...) points at that key's line.
                .map_err(|e| problems.push((i, e.flow_key.unwrap_or(key), e.to_string())))
        };
        let uses = resolve("uses", &e.uses, &e.overrides, &e.py_modules[..]);
        let uses_before = (e.uses_before.as_ref())
            .map(|u| resolve("uses_before", u, &plain, &[]))
            .transpose();
        let uses_after = (e.uses_after.as_ref())
            .map(|u| resolve("uses_after", u, &plain, &[]))
            .transpose();
        // Each problem is recorded once, above; a Flow with one is not served.
        if let (Ok(uses), Ok(uses_before), Ok(uses_after)) = (uses, uses_before, uses_after) {
            served.push(ServedEntry::Copies {
                uses,
                uses_before,
                uses_after,
            });
        }
    }
    match graph {
        Some(graph) if problems.is_empty() => Ok((graph, served)),
        _ => {
            problems.sort_by_key(|p| p.0);
            Err(problems)
        }
    }
}
