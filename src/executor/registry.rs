//! The registry: executor types by name, so that `jtype: NAME` and `uses: NAME` find them.
//!
//! The built-ins are always there; a user's crate adds its own types and makes its own
//! `jina`-compatible binary: `jina::cli::main_with(jina::registry![WordCount])`. That binary
//! installs its registry once, at start, and a Flow it runs starts its executor children from
//! the same binary, so they find the same types.
//!
//! This module must not know how an executor is configured (that is `config`) or served.

use super::instance::{self, BuildError, Instance, Runner};
use super::{Executor, Metas};
use indexmap::IndexMap;
use serde_json::{Map, Value};
use std::fmt;
use std::sync::OnceLock;

type Build = fn(&Map<String, Value>, &Metas) -> Result<Box<dyn Runner>, BuildError>;

/// One executor type, by name: what `jtype:` names and the Rust Flow API's `uses_type` takes.
#[derive(Clone, Copy)]
pub struct Entry {
    pub name: &'static str,
    pub summary: &'static str,
    /// [`Executor::KEEPS_WORKSPACE`].
    pub keeps_workspace: bool,
    build: Build,
}

impl Entry {
    /// The entry of executor type `E`, under its own name.
    pub fn of<E: Executor>() -> Entry {
        Entry {
            name: E::NAME,
            summary: E::SUMMARY,
            keeps_workspace: E::KEEPS_WORKSPACE,
            build: instance::build::<E>,
        }
    }

    /// Type `E` under another name (Jina 2's reserved `_pass` is a `BaseExecutor`).
    pub fn alias<E: Executor>(name: &'static str, summary: &'static str) -> Entry {
        Entry {
            name,
            summary,
            keeps_workspace: E::KEEPS_WORKSPACE,
            build: instance::build::<E>,
        }
    }

    /// Builds an executor named `name` from its `with` arguments and metas, its request table
    /// laid from the code's bindings and then each layer of overrides.
    pub fn instantiate<'a>(
        &self,
        name: String,
        with: &Map<String, Value>,
        metas: Metas,
        layers: impl IntoIterator<Item = (&'static str, &'a IndexMap<String, String>)>,
    ) -> Result<Instance, BuildError> {
        let runner = (self.build)(with, &metas)?;
        Instance::new(name, metas, runner, layers)
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Entry({})", self.name)
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// Executor types by name.
#[derive(Clone, Debug)]
pub struct Registry {
    entries: Vec<Entry>,
}

impl Registry {
    /// The built-in executors.
    pub fn builtins() -> Registry {
        Registry {
            entries: super::builtin::entries(),
        }
    }

    /// Adds executor type `E`. A type with a built-in's name takes its place.
    pub fn with<E: Executor>(mut self) -> Registry {
        self.entries.retain(|e| e.name != E::NAME);
        self.entries.push(Entry::of::<E>());
        self
    }

    /// The type with this name.
    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The registered name nearest to `name`, when it is near enough to be a typo.
    pub fn nearest(&self, name: &str) -> Option<&'static str> {
        let names: Vec<&'static str> = self.entries.iter().map(|e| e.name).collect();
        crate::errors::nearest(name, &names)
    }

    /// The names, for messages.
    pub fn names(&self) -> String {
        self.entries
            .iter()
            .map(|e| e.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The built-ins plus the given executor types: `registry![WordCount, MyRanker]`.
#[macro_export]
macro_rules! registry {
    ($($executor:ty),* $(,)?) => {
        $crate::executor::Registry::builtins()$(.with::<$executor>())*
    };
}

static INSTALLED: OnceLock<Registry> = OnceLock::new();
static BUILTINS: OnceLock<Registry> = OnceLock::new();

/// A registry was installed already in this process.
#[derive(Debug, thiserror::Error)]
#[error("an executor registry is installed already in this process")]
pub struct AlreadyInstalled;

impl Registry {
    /// Makes this the process's registry: the command line does this once, at start. A process
    /// that installed one serves its executors from its own binary.
    pub fn install(self) -> Result<(), AlreadyInstalled> {
        INSTALLED.set(self).map_err(|_| AlreadyInstalled)
    }

    /// The process's registry: the installed one, else the built-ins.
    pub fn current() -> &'static Registry {
        INSTALLED
            .get()
            .unwrap_or_else(|| BUILTINS.get_or_init(Registry::builtins))
    }

    /// Whether this process runs jina's command line (it installed a registry), so its own
    /// binary can serve every type the registry has.
    pub fn is_installed() -> bool {
        INSTALLED.get().is_some()
    }
}
