//! Executor YAML, as Jina writes it:
//!
//! ```yaml
//! jtype: MyExecutor          # which executor (a built-in name here)
//! with: {bar: 123}           # constructor arguments
//! metas: {name: awesomeness, description: ..., workspace: ..., py_modules: my.py}
//! requests: {/random_work: foo}   # endpoint -> handler name
//! ```
//!
//! A `uses` value may be a registered executor's name, a path to such a YAML file, or the YAML
//! inline. A Flow's `uses_with`, `uses_metas` and `uses_requests` then apply on top
//! ([`Overrides`]). Every error is one line that starts with where the config came from.

use super::{BuildError, Entry, Instance, Registry, UsesText};
use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A config error, shown as `<origin>: <message>` on one line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ConfigError {
    /// The file, or `inline YAML`, or the flag the config came from.
    pub origin: String,
    /// The key of a Flow's entry the error is about (`uses_with`), when the Flow set it.
    pub flow_key: Option<&'static str>,
    pub message: String,
}

impl ConfigError {
    /// An error about the config from `origin`.
    pub fn new(origin: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            origin: origin.into(),
            flow_key: None,
            message: message.into(),
        }
    }
}

/// The `metas` of an executor. Keys we do not use are kept (Python executors read them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metas {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Python files that define the executor's class: their presence makes it a Python executor.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub py_modules: Vec<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => vec![],
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// One executor's YAML.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    pub jtype: String,
    #[serde(default, rename = "with", skip_serializing_if = "Map::is_empty")]
    pub with: Map<String, Value>,
    #[serde(default)]
    pub metas: Metas,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub requests: IndexMap<String, String>,
    /// Jina 3's `dynamic_batching:` (endpoint → settings), over the code's; a Flow's
    /// `uses_dynamic_batching` wins over it.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub dynamic_batching: IndexMap<String, super::DynamicBatching>,
    /// Jina 3 writes `py_modules` at the top; it is `metas.py_modules` (moved there on reading).
    #[serde(default, deserialize_with = "one_or_many", skip_serializing)]
    py_modules: Vec<String>,
    /// Where this config came from, for messages.
    #[serde(skip)]
    pub origin: String,
    /// The folder of the YAML file, against which relative `py_modules` resolve.
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
    /// The line of each `with.KEY` in the YAML text, for messages.
    #[serde(skip)]
    lines: HashMap<String, usize>,
}

/// What a Flow (or `jina executor`'s flags) lays over an executor's own YAML.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Overrides {
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub uses_with: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub uses_metas: Map<String, Value>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub uses_requests: IndexMap<String, String>,
    /// Endpoint → how its small requests are batched (Jina 3's `uses_dynamic_batching`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub uses_dynamic_batching: IndexMap<String, super::DynamicBatching>,
}

impl ExecutorConfig {
    /// The config that names an executor type and nothing else: `jtype: NAME`.
    pub fn named(name: &str) -> ExecutorConfig {
        ExecutorConfig {
            jtype: name.into(),
            with: Map::new(),
            metas: Metas::default(),
            requests: IndexMap::new(),
            dynamic_batching: IndexMap::new(),
            py_modules: vec![],
            origin: format!("uses '{name}'"),
            base_dir: None,
            lines: HashMap::new(),
        }
    }

    /// Resolves a `uses` string: a registered executor's name, inline YAML, or a YAML file.
    pub fn from_uses(uses: &str) -> Result<ExecutorConfig, ConfigError> {
        Self::from_uses_text(&UsesText::parse(uses, None)?)
    }

    /// The config a parsed `uses` names. An image has none here: it runs as a Flow's entry.
    pub fn from_uses_text(uses: &UsesText) -> Result<ExecutorConfig, ConfigError> {
        match uses {
            UsesText::Registered(name) => Ok(Self::named(name)),
            UsesText::InlineYaml(yaml) => Self::from_yaml_str(yaml, "inline YAML", None),
            UsesText::YamlFile(path) => Self::from_file(path),
            UsesText::Image(image) => Err(ConfigError::new(
                format!("uses '{}'", uses.to_arg()),
                format!(
                    "a docker:// image runs as an entry of a Flow (`uses: docker://{image}`); \
                     to serve it alone, `docker run` it"
                ),
            )),
        }
    }

    /// Reads an executor YAML file.
    pub fn from_file(path: &Path) -> Result<ExecutorConfig, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_string(),
                _ => e.to_string(),
            };
            ConfigError::new(&origin, why)
        })?;
        let dir = path.parent().map(Path::to_path_buf);
        Self::from_yaml_str(&text, &origin, dir)
    }

    /// Parses executor YAML text; `origin` names it in errors.
    fn from_yaml_str(
        text: &str,
        origin: &str,
        base_dir: Option<PathBuf>,
    ) -> Result<ExecutorConfig, ConfigError> {
        use serde_yaml_ng::Value as Yaml;
        let tree: Yaml = serde_yaml_ng::from_str(text)
            .map_err(|e| ConfigError::new(origin, yaml_message(&e)))?;
        let jina1 = tree.get("requests").and_then(|r| r.get("on")).is_some();
        if jina1 {
            return Err(ConfigError::new(
                origin,
                "requests: on: ... with drivers is Jina 1's syntax; today an executor binds endpoints \
                 to its handlers, e.g. `requests: {/index: index, /search: search}` (docs/yaml.md)",
            ));
        }
        check_keys(&tree, text, origin)?;
        let mut config: ExecutorConfig = match tree {
            // `!Sentencizer` (or `!MyPythonClass` with py_modules) names the class as jtype does.
            Yaml::Tagged(tagged) => {
                let mut map = match tagged.value {
                    Yaml::Mapping(m) => m,
                    Yaml::Null => Default::default(),
                    _ => {
                        return Err(ConfigError::new(
                            origin,
                            format!(
                                "!{} must tag a mapping (with:, metas:, requests:)",
                                tagged.tag
                            ),
                        ));
                    }
                };
                let class = tagged.tag.to_string();
                map.entry("jtype".into())
                    .or_insert_with(|| Yaml::String(class.trim_start_matches('!').into()));
                serde_yaml_ng::from_value(Yaml::Mapping(map))
                    .map_err(|e| ConfigError::new(origin, yaml_message(&e)))?
            }
            // Read from the text, so that errors keep their line.
            _ => serde_yaml_ng::from_str(text)
                .map_err(|e| ConfigError::new(origin, yaml_message(&e)))?,
        };
        config.origin = origin.into();
        config.base_dir = base_dir;
        config.lines = child_key_lines(text, "with");
        config.lift_py_modules();
        Ok(config)
    }

    /// Moves a top-level `py_modules` (Jina 3) into `metas`, where Jina 2 keeps it.
    fn lift_py_modules(&mut self) {
        let top = std::mem::take(&mut self.py_modules);
        self.metas.py_modules.extend(top);
    }

    /// An executor config given as a map (the reference's `uses={'jtype': ..., 'with': ...}`).
    pub fn from_map(map: Value, origin: &str) -> Result<ExecutorConfig, ConfigError> {
        let mut config: ExecutorConfig =
            serde_json::from_value(map).map_err(|e| ConfigError::new(origin, e.to_string()))?;
        config.origin = origin.into();
        config.lift_py_modules();
        Ok(config)
    }

    /// True when the executor's class lives in Python (`metas.py_modules` is set).
    pub fn is_python(&self) -> bool {
        !self.metas.py_modules.is_empty()
    }

    /// The metas after `uses_metas` is laid over them.
    fn metas_with(&self, overrides: &Overrides) -> Result<Metas, ConfigError> {
        if overrides.uses_metas.is_empty() {
            return Ok(self.metas.clone());
        }
        let mut merged = match serde_json::to_value(&self.metas) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        merged.extend(overrides.uses_metas.clone());
        serde_json::from_value(Value::Object(merged))
            .map_err(|e| ConfigError::new(&self.origin, format!("uses_metas: {e}")))
    }

    /// Builds the executor this config describes, with its request table, after the overrides.
    pub fn instantiate(&self, overrides: &Overrides) -> Result<Instance, ConfigError> {
        let registry = Registry::current();
        let Some(entry) = registry.find(&self.jtype) else {
            let hint = if self.is_python() {
                " (it is a Python executor: metas.py_modules; `jina executor` and Flows serve it with Python Jina)"
            } else {
                ""
            };
            return Err(ConfigError::new(
                &self.origin,
                format!(
                    "jtype '{}' is not a known executor (known: {}){hint}",
                    self.jtype,
                    registry.names()
                ),
            ));
        };
        self.instantiate_as(entry, overrides)
    }

    /// Builds the executor this config describes as executor type `entry` (which need not be
    /// registered: the Rust Flow API's types), after the overrides.
    pub fn instantiate_as(
        &self,
        entry: &Entry,
        overrides: &Overrides,
    ) -> Result<Instance, ConfigError> {
        let metas = self.metas_with(overrides)?;
        let mut with = self.with.clone();
        with.extend(overrides.uses_with.clone());
        let name = metas.name.clone().unwrap_or_else(|| self.jtype.clone());
        let instance = entry
            .instantiate(name, &with, metas, self.request_layers(overrides))
            .map_err(|e| self.build_error(e, overrides))?;
        self.batched(instance, overrides)
    }

    /// What a host of a Python executor is asked to build for this config, after the
    /// overrides: `name` is the copy's name, `copy` which copy it is.
    pub fn hosted_load(
        &self,
        overrides: &Overrides,
        name: &str,
        copy: super::CopyFlags,
    ) -> Result<super::HostedLoad, ConfigError> {
        let metas = self.metas_with(overrides)?;
        let mut with = self.with.clone();
        with.extend(overrides.uses_with.clone());
        let py_modules = metas
            .py_modules
            .iter()
            .map(|module| match &self.base_dir {
                Some(dir) if module.ends_with(".py") && !Path::new(module).is_absolute() => {
                    dir.join(module).display().to_string()
                }
                _ => module.clone(),
            })
            .collect();
        let workspace = metas.workspace.as_ref().map(|w| match &self.base_dir {
            Some(dir) if Path::new(w).is_relative() => dir.join(w),
            _ => PathBuf::from(w),
        });
        let metas = match serde_json::to_value(&metas) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        Ok(super::HostedLoad {
            jtype: self.jtype.clone(),
            py_modules,
            with,
            metas,
            name: name.to_string(),
            workspace,
            copy,
            origin: self.origin.clone(),
        })
    }

    /// Serves a hosted executor built from this config: its request table is the code's
    /// bindings with this config's `requests` and the overrides laid over them.
    pub fn instantiate_hosted(
        &self,
        executor: std::sync::Arc<dyn super::HostedExecutor>,
        name: String,
        overrides: &Overrides,
    ) -> Result<Instance, ConfigError> {
        let metas = self.metas_with(overrides)?;
        let runner = Box::new(super::hosted::Hosted::new(executor));
        let instance = Instance::new(name, metas, runner, self.request_layers(overrides))
            .map_err(|e| self.build_error(e, overrides))?;
        self.batched(instance, overrides)
    }

    /// The layers of `requests` over an executor's own bindings: its YAML's, then the Flow's.
    fn request_layers<'a>(
        &'a self,
        overrides: &'a Overrides,
    ) -> [(&'static str, &'a IndexMap<String, String>); 2] {
        [
            ("requests", &self.requests),
            ("uses_requests", &overrides.uses_requests),
        ]
    }

    /// `instance` with this config's `dynamic_batching` and the Flow's laid over its code's.
    fn batched(
        &self,
        mut instance: Instance,
        overrides: &Overrides,
    ) -> Result<Instance, ConfigError> {
        instance
            .batch("dynamic_batching", &self.dynamic_batching)
            .map_err(|e| ConfigError {
                origin: self.origin.clone(),
                flow_key: None,
                message: e.to_string(),
            })?;
        instance
            .batch("uses_dynamic_batching", &overrides.uses_dynamic_batching)
            .map_err(|e| ConfigError {
                origin: self.origin.clone(),
                flow_key: Some("uses_dynamic_batching"),
                message: e.to_string(),
            })?;
        Ok(instance)
    }

    /// A build error as one line naming the key and, for a key of this YAML, its line.
    fn build_error(&self, e: BuildError, overrides: &Overrides) -> ConfigError {
        let (flow_key, message) = match &e {
            BuildError::UnknownArgument { key, .. } if overrides.uses_with.contains_key(key) => {
                (Some("uses_with"), format!("uses_with.{e}"))
            }
            BuildError::UnknownArgument { key, .. } => {
                let line = self
                    .lines
                    .get(key)
                    .map(|l| format!("line {l}: "))
                    .unwrap_or_default();
                (None, format!("{line}with.{e}"))
            }
            BuildError::BadArgument(_) | BuildError::Refused { .. } => {
                let key = match overrides.uses_with.is_empty() {
                    true => "with",
                    false => "with (and uses_with)",
                };
                (None, format!("{key}: {e}"))
            }
            BuildError::UnknownHandler(u) => (
                (u.layer == "uses_requests").then_some("uses_requests"),
                e.to_string(),
            ),
        };
        ConfigError {
            origin: self.origin.clone(),
            flow_key,
            message,
        }
    }
}

/// The line (1-based) of each key directly under the top-level `parent:` of a YAML text, or of
/// `parent:` itself for a flow mapping (`with: {a: 1}`).
fn child_key_lines(text: &str, parent: &str) -> HashMap<String, usize> {
    let mut lines = HashMap::new();
    let mut child_indent: Option<Option<usize>> = None; // Some while inside `parent:`
    for (n, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if indent == 0 {
            child_indent = None;
            if let Some(rest) = line.strip_prefix(parent).and_then(|r| r.strip_prefix(':')) {
                let inline = rest.trim().trim_start_matches('{').trim_end_matches('}');
                for (key, _) in inline.split(',').filter_map(|kv| kv.split_once(':')) {
                    lines.insert(key.trim().to_string(), n + 1);
                }
                child_indent = Some(None);
            }
            continue;
        }
        if let Some(child) = &mut child_indent {
            let level = *child.get_or_insert(indent);
            if indent == level
                && let Some((key, _)) = trimmed.split_once(':')
            {
                lines.insert(key.trim().to_string(), n + 1);
            }
        }
    }
    lines
}

/// The keys an executor YAML may have at its top.
const EXECUTOR_YAML_KEYS: &[&str] = &[
    "jtype",
    "with",
    "metas",
    "requests",
    "dynamic_batching",
    "py_modules",
];

/// Every unknown top-level key of an executor YAML at once, each with its line and the key it
/// was likely meant to be, as the Flow YAML reports them.
fn check_keys(tree: &serde_yaml_ng::Value, text: &str, origin: &str) -> Result<(), ConfigError> {
    let map = match tree {
        serde_yaml_ng::Value::Tagged(t) => t.value.as_mapping(),
        other => other.as_mapping(),
    };
    let Some(map) = map else { return Ok(()) };
    let unknown: Vec<String> = map
        .keys()
        .filter_map(|k| k.as_str())
        .filter(|k| !EXECUTOR_YAML_KEYS.contains(k))
        .map(|k| {
            let line = text
                .lines()
                .position(|l| l.strip_prefix(k).is_some_and(|r| r.starts_with(':')))
                .map(|i| format!("line {}: ", i + 1))
                .unwrap_or_default();
            let hint = match crate::errors::nearest(k, EXECUTOR_YAML_KEYS) {
                Some(n) => format!("; did you mean `{n}`?"),
                None => format!(" (an executor YAML has {})", EXECUTOR_YAML_KEYS.join(", ")),
            };
            format!("{line}{k}: unknown key{hint}")
        })
        .collect();
    match unknown.is_empty() {
        true => Ok(()),
        false => Err(ConfigError::new(origin, unknown.join("; "))),
    }
}

/// serde_yaml's message, on one line (it already names line and column).
pub fn yaml_message(e: &serde_yaml_ng::Error) -> String {
    e.to_string().replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_reference_yaml_shape() {
        let c = ExecutorConfig::from_uses(
            "jtype: Sleep\nwith:\n  ms: 0\nmetas:\n  name: awesomeness\n  py_modules: x.py\nrequests:\n  /random_work: sleep\n",
        )
        .unwrap();
        assert_eq!(c.jtype, "Sleep");
        assert_eq!(c.metas.name.as_deref(), Some("awesomeness"));
        assert_eq!(c.metas.py_modules, vec!["x.py"]);
        assert_eq!(c.requests["/random_work"], "sleep");
    }

    #[test]
    fn overrides_apply_on_top() {
        let c = ExecutorConfig::from_uses("jtype: Sleep\nwith: {ms: 5}\nmetas: {name: a}").unwrap();
        let o = Overrides {
            uses_with: serde_json::from_str(r#"{"ms": 0}"#).unwrap(),
            uses_metas: serde_json::from_str(r#"{"workspace": "ws"}"#).unwrap(),
            uses_requests: [("/index".to_string(), "sleep".to_string())].into(),
            ..Default::default()
        };
        let i = c.instantiate(&o).unwrap();
        assert_eq!(i.name, "a");
        assert_eq!(i.metas.workspace.as_deref(), Some("ws"));
        assert_eq!(i.table.resolve("/index"), Some(0));
    }

    #[test]
    fn a_class_tag_names_the_executor_and_jina_1_drivers_say_what_to_write() {
        let c = ExecutorConfig::from_yaml_str("!Sentencizer\nwith: {min_chars: 3}\n", "t", None)
            .unwrap();
        assert_eq!(c.jtype, "Sentencizer");
        assert_eq!(c.with["min_chars"], 3);
        let py = ExecutorConfig::from_yaml_str(
            "!MyEncoder\nmetas:\n  py_modules: [enc.py]\n",
            "t",
            None,
        )
        .unwrap();
        assert_eq!(py.jtype, "MyEncoder");
        assert!(py.is_python());
        let e = ExecutorConfig::from_yaml_str(
            "!BaseExecutor\nrequests:\n  on:\n    IndexRequest:\n      - !KVIndexDriver {}\n",
            "old.yml",
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("Jina 1's syntax"), "{e}");
    }

    #[test]
    fn every_unknown_key_is_reported_at_once_with_the_key_meant() {
        let e = ExecutorConfig::from_yaml_str(
            "jtype: Sleep\nwiht: {ms: 1}\nmetaz: {name: a}\n",
            "x.yml",
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.yml: line 2: wiht: unknown key; did you mean `with`?; line 3: metaz: unknown key; did you mean `metas`?"
        );
    }

    #[test]
    fn an_unknown_argument_names_its_key_and_line() {
        let c = ExecutorConfig::from_yaml_str(
            "jtype: Sleep\nwith:\n  ms: 1\n  msx: 2\nmetas: {name: a}\n",
            "s.yml",
            None,
        )
        .unwrap();
        let e = c.instantiate(&Overrides::default()).err().unwrap();
        assert_eq!(
            e.to_string(),
            "s.yml: line 4: with.msx: Sleep takes no argument `msx` (it takes: ms)"
        );
        let o = Overrides {
            uses_with: serde_json::from_str(r#"{"sleepy": 1}"#).unwrap(),
            ..Default::default()
        };
        let clean = ExecutorConfig::from_uses("Sleep").unwrap();
        let e = clean.instantiate(&o).err().unwrap();
        assert_eq!(e.flow_key, Some("uses_with"));
        assert!(
            e.message.starts_with("uses_with.sleepy: Sleep takes no"),
            "{e}"
        );
        let inline =
            ExecutorConfig::from_yaml_str("jtype: Visit\nwith: {x: 1}\n", "v.yml", None).unwrap();
        let e = inline.instantiate(&Overrides::default()).err().unwrap();
        assert_eq!(
            e.to_string(),
            "v.yml: line 2: with.x: Visit takes no argument `x` (it takes none)"
        );
    }

    #[test]
    fn py_modules_at_the_top_as_jina_3_writes_it() {
        let c = ExecutorConfig::from_yaml_str("jtype: MyExec\npy_modules: [my.py]\n", "t", None)
            .unwrap();
        assert_eq!(c.metas.py_modules, ["my.py"]);
        assert!(c.is_python());
    }

    #[test]
    fn errors_name_their_origin() {
        let e = ExecutorConfig::from_uses("nope.yml").unwrap_err();
        assert_eq!(e.to_string(), "nope.yml: no such file");
        let e = ExecutorConfig::from_uses("NoSuchThing").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("uses 'NoSuchThing': not a known executor"),
            "{e}"
        );
        let e = ExecutorConfig::from_uses("jtype: [\n").unwrap_err();
        assert!(e.to_string().starts_with("inline YAML: "), "{e}");
        let e = ExecutorConfig::from_uses("jtype: X\nwiht: {}\n").unwrap_err();
        assert!(e.to_string().contains("wiht"), "{e}");
        let e = ExecutorConfig::from_uses("jinahub+docker://Encoder").unwrap_err();
        assert!(
            e.to_string().starts_with(
                "uses 'jinahub+docker://Encoder': no Executor Hub is reachable from here"
            ),
            "{e}"
        );
        assert!(e.to_string().contains("uses: docker://NAME"), "{e}");
    }
}

#[cfg(test)]
mod shipped_examples {
    use super::*;

    #[test]
    fn every_yaml_in_executors_loads_and_builds() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("executors");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yml") {
                let config = ExecutorConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
                config
                    .instantiate(&Overrides::default())
                    .unwrap_or_else(|e| panic!("{e}"));
                seen += 1;
            }
        }
        assert!(seen >= 6, "{seen} examples");
    }
}
