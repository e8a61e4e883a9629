//! What a `uses` means: the one place that decides it.
//!
//! A Flow's entry says `uses:` as a registered executor's name, a YAML file (relative to the
//! Flow's folder), inline YAML, a map (`{jtype: ..., with: ...}`), or (the Rust Flow API) an
//! executor type. [`resolve`] checks it without starting anything (the file exists and parses,
//! its jtype is known, its `with` and `requests` make sense) and says how it is served: by a
//! jina binary, by Python Jina, or inside the Flow's own process.

use super::{ConfigError, Entry, ExecutorConfig, Overrides, Registry};
use serde_json::Value;
use std::path::Path;

/// What an executor runs: a registered name, a YAML path or inline YAML; a config as a map;
/// or a Rust executor type of the library's user (served inside the Flow's process).
#[derive(Clone, Debug, PartialEq)]
pub enum Uses {
    Named(String),
    Map(Value),
    Native(Entry),
}

impl Default for Uses {
    fn default() -> Self {
        Uses::Named("BaseExecutor".into())
    }
}

impl From<&str> for Uses {
    fn from(s: &str) -> Self {
        Uses::Named(s.into())
    }
}

/// How a checked `uses` is served.
#[derive(Clone, Debug, PartialEq)]
pub enum Served {
    /// By a jina binary: `jina executor --uses <arg>`, the arg a registered name, a YAML path
    /// or inline YAML.
    ByJina(String),
    /// By Python Jina: `python -m jina executor --uses <uses> [--py-modules ...]`, an executor
    /// whose class lives in Python: a YAML file with `py_modules`, or a class name with the
    /// Flow entry's `py_modules` (Jina 3).
    ByPython {
        uses: String,
        py_modules: Vec<String>,
    },
    /// Inside the Flow's process: a Rust type given to the Flow API.
    InProcess(Entry),
    /// In a container of this image (`docker://IMAGE[:TAG]`), whose entrypoint serves an
    /// executor (ours or Python Jina's) and takes the executor's flags.
    InContainer { image: String },
}

/// Resolves a `uses` against the Flow's folder and checks it, without starting anything.
pub fn resolve(
    uses: &Uses,
    base_dir: Option<&Path>,
    overrides: &Overrides,
    py_modules: &[String],
) -> Result<Served, ConfigError> {
    // Jina 3's `py_modules` on a Flow's entry: the class (or YAML) is Python's to find.
    if let (Uses::Named(text), false) = (uses, py_modules.is_empty()) {
        let trimmed = text.trim();
        let uses = match base_dir {
            Some(dir) if trimmed.ends_with(".yml") || trimmed.ends_with(".yaml") => {
                dir.join(trimmed).display().to_string()
            }
            _ => trimmed.to_string(),
        };
        return Ok(Served::ByPython {
            uses,
            py_modules: py_modules.to_vec(),
        });
    }
    let (config, served) = match uses {
        // Built when the Flow starts: building it now could be costly (a model to load).
        Uses::Native(entry) => return Ok(Served::InProcess(*entry)),
        Uses::Map(map) => {
            let config = ExecutorConfig::from_map(map.clone(), "uses (map)")?;
            let yaml = serde_yaml_ng::to_string(map)
                .map_err(|e| ConfigError::new("uses (map)", e.to_string()))?;
            (config, Served::ByJina(yaml))
        }
        Uses::Named(text) if crate::container::image_of(text).is_some() => {
            let image = crate::container::image_of(text).unwrap_or_default().trim();
            if image.is_empty() {
                return Err(ConfigError::new(
                    format!("uses '{}'", text.trim()),
                    "docker:// names no image (docker://IMAGE[:TAG])",
                ));
            }
            return Ok(Served::InContainer {
                image: image.to_string(),
            });
        }
        Uses::Named(text) => {
            let trimmed = text.trim();
            let is_file = !trimmed.contains('\n')
                && !trimmed.starts_with("jtype:")
                && !trimmed.contains("://")
                && Registry::current().find(trimmed).is_none();
            let arg = match (is_file, base_dir) {
                (true, Some(dir))
                    if Path::new(trimmed).is_relative() && !Path::new(trimmed).exists() =>
                {
                    dir.join(trimmed).display().to_string()
                }
                _ => text.clone(),
            };
            let config = ExecutorConfig::from_uses(&arg)?;
            let served = match config.is_python() {
                true => Served::ByPython {
                    uses: arg,
                    py_modules: vec![],
                },
                false => Served::ByJina(arg),
            };
            (config, served)
        }
    };
    if !config.is_python() {
        config.instantiate(overrides)?;
    }
    Ok(served)
}
