//! What a `uses` means: the one place that decides it.
//!
//! A Flow's entry says `uses:` as a registered executor's name, a YAML file (relative to the
//! Flow's folder), inline YAML, an image (`docker://IMAGE[:TAG]`), a map (`{jtype: ...,
//! with: ...}`), or (the Rust Flow API) an executor type. [`UsesText::parse`] is the only code
//! that reads a `uses` string; [`resolve`] checks what it names without starting anything (the
//! file exists and parses, its jtype is known, its `with` and `requests` make sense) and says
//! how it is served: by a jina binary, by Python Jina, in a container, or inside the Flow's own
//! process. A Flow resolves each `uses` once, when it is checked (`flow::CheckedFlow`), and
//! everything after (orchestration, export, the daemon's client) works from that answer.

use super::{ConfigError, Entry, ExecutorConfig, Overrides, Registry};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What an executor runs, as a Flow's entry says it: a `uses` string; a config as a map; or a
/// Rust executor type of the library's user (served inside the Flow's process).
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

impl Uses {
    /// Whether it names an image (`docker://IMAGE`), as [`UsesText::parse`] reads it.
    pub fn is_image(&self) -> bool {
        match self {
            Uses::Named(text) => matches!(UsesText::parse(text, None), Ok(UsesText::Image(_))),
            Uses::Map(_) | Uses::Native(_) => false,
        }
    }
}

impl From<&str> for Uses {
    fn from(s: &str) -> Self {
        Uses::Named(s.into())
    }
}

/// The scheme that marks a `uses` as an image.
const IMAGE_SCHEME: &str = "docker";

/// What the text of a `uses` names.
#[derive(Clone, Debug, PartialEq)]
pub enum UsesText {
    /// `docker://IMAGE[:TAG]`: an image whose entrypoint serves an executor.
    Image(ImageRef),
    /// A type in this binary's registry (a built-in, or one of the user's).
    Registered(String),
    /// Executor YAML written inline (several lines, or `jtype: ...`).
    InlineYaml(String),
    /// An executor YAML file (made relative to the Flow's folder when the Flow has one).
    YamlFile(PathBuf),
}

impl UsesText {
    /// Reads a `uses` string. A relative file name is looked up in `base_dir` (the Flow's
    /// folder) unless it exists as given. Only the image grammar and the scheme are errors
    /// here; whether a file exists is [`ExecutorConfig::from_uses_text`]'s to say.
    pub fn parse(text: &str, base_dir: Option<&Path>) -> Result<UsesText, ConfigError> {
        let trimmed = text.trim();
        let origin = || format!("uses '{trimmed}'");
        if trimmed.contains('\n') || trimmed.starts_with("jtype:") {
            return Ok(UsesText::InlineYaml(text.to_string()));
        }
        if let Some((scheme, rest)) = trimmed.split_once("://") {
            let why = match scheme {
                IMAGE_SCHEME => {
                    return ImageRef::parse(rest)
                        .map(UsesText::Image)
                        .map_err(|why| ConfigError::new(origin(), why));
                }
                "jinahub" | "jinahub+docker" | "jinahub+sandbox" => {
                    "no Executor Hub is reachable from here: build the executor's image yourself \
                     (`docker build -t NAME .` in its folder) and use `uses: docker://NAME` \
                     (docs/deploy.md)"
                        .to_string()
                }
                other => format!(
                    "unknown scheme {other}:// (a Flow takes docker://IMAGE; otherwise a \
                     registered executor, a YAML file or inline YAML)"
                ),
            };
            return Err(ConfigError::new(origin(), why));
        }
        if Registry::current().find(trimmed).is_some() {
            return Ok(UsesText::Registered(trimmed.to_string()));
        }
        let given = Path::new(trimmed);
        let path = match base_dir {
            Some(dir) if given.is_relative() && !given.exists() => dir.join(given),
            _ => given.to_path_buf(),
        };
        let yaml_name = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"));
        if yaml_name || path.is_file() {
            return Ok(UsesText::YamlFile(path));
        }
        let registry = Registry::current();
        let why = match registry.nearest(trimmed) {
            Some(meant) => format!("not a known executor; did you mean `{meant}`?"),
            None => format!(
                "not a known executor ({}) and not a YAML file",
                registry.names()
            ),
        };
        Err(ConfigError::new(origin(), why))
    }

    /// The text that names the same thing to `jina executor --uses` (and to the parser again).
    pub fn to_arg(&self) -> String {
        match self {
            UsesText::Image(image) => format!("{IMAGE_SCHEME}://{image}"),
            UsesText::Registered(name) => name.clone(),
            UsesText::InlineYaml(yaml) => yaml.clone(),
            UsesText::YamlFile(path) => path.display().to_string(),
        }
    }
}

/// An image reference as Docker's grammar has it: `[HOST[:PORT]/]PATH[:TAG][@DIGEST]`.
/// Nothing else passes: no leading `-` (it would be read as a flag), no spaces, no empty
/// component, so the string is only ever an image to `docker run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef(String);

impl ImageRef {
    /// Checks `text` against the grammar; the error says what is wrong.
    pub fn parse(text: &str) -> Result<ImageRef, String> {
        const WHAT: &str = "docker://IMAGE[:TAG] names an image, as `docker run` takes it";
        let text = text.trim();
        if text.is_empty() {
            return Err(format!("no image named ({WHAT})"));
        }
        if text.len() > 255 {
            return Err(format!("an image name is at most 255 characters ({WHAT})"));
        }
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (text, None),
        };
        let bad = |c: char| !(c.is_ascii_alphanumeric() || "._-/:".contains(c));
        if let Some(c) = name.chars().find(|c| bad(*c)) {
            return Err(format!("'{c}' cannot stand in an image name ({WHAT})"));
        }
        // A tag follows the last ':' after the last '/' (a ':' before it is a registry's port).
        let (path, tag) = match name.rsplit_once(':') {
            Some((path, tag)) if !tag.contains('/') => (path, Some(tag)),
            _ => (name, None),
        };
        for component in path.split('/') {
            let starts_well = component
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric());
            if !starts_well {
                return Err(format!(
                    "each part of an image's path starts with a letter or digit, not '{component}' ({WHAT})"
                ));
            }
        }
        if let Some(tag) = tag {
            let tag_ok = tag.len() <= 128
                && tag
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !tag_ok {
                return Err(format!("'{tag}' is not an image tag ({WHAT})"));
            }
        }
        if let Some(digest) = digest {
            let digest_ok = digest.split_once(':').is_some_and(|(algorithm, hex)| {
                !algorithm.is_empty()
                    && algorithm.chars().all(|c| c.is_ascii_alphanumeric())
                    && hex.len() >= 32
                    && hex.chars().all(|c| c.is_ascii_hexdigit())
            });
            if !digest_ok {
                return Err(format!("'{digest}' is not an image digest ({WHAT})"));
            }
        }
        Ok(ImageRef(text.to_string()))
    }

    /// The reference as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a checked `uses` is served.
#[derive(Clone, Debug, PartialEq)]
pub enum Served {
    /// By a jina binary: `jina executor --uses <it>`, a registered name, a YAML file or
    /// inline YAML (never an image).
    ByJina(UsesText),
    /// By Python Jina: `python -m jina executor --uses <uses> [--py-modules ...]`, an executor
    /// whose class lives in Python: a YAML file with `py_modules`, or a class name with the
    /// Flow entry's `py_modules` (Jina 3).
    ByPython {
        uses: String,
        py_modules: Vec<String>,
    },
    /// Inside the Flow's process: a Rust type given to the Flow API.
    InProcess(Entry),
    /// In a container of this image, whose entrypoint serves an executor (ours or Python
    /// Jina's) and takes the executor's flags.
    InContainer { image: ImageRef },
}

impl Served {
    /// Whether it runs in a container.
    pub fn is_container(&self) -> bool {
        matches!(self, Served::InContainer { .. })
    }

    /// The files it is made of: its executor YAML and the Python files of its `py_modules`
    /// (the YAML's own `metas.py_modules` too). A reload watches them: an edit to one of them
    /// changes this executor.
    pub fn files(&self) -> Vec<PathBuf> {
        let yaml_and_modules = |path: &Path| -> Vec<PathBuf> {
            let modules = match ExecutorConfig::from_file(path) {
                Ok(config) => python_files(&config.metas.py_modules, config.base_dir.as_deref()),
                Err(_) => vec![],
            };
            std::iter::once(path.to_path_buf()).chain(modules).collect()
        };
        match self {
            Served::ByJina(UsesText::YamlFile(path)) => yaml_and_modules(path),
            Served::ByPython { uses, py_modules } => {
                let mut files = python_files(py_modules, None);
                let path = Path::new(uses);
                if path.is_file() {
                    files.extend(yaml_and_modules(path));
                }
                files
            }
            _ => vec![],
        }
    }

    /// Whether its own config gives it a workspace (`metas.workspace` in its YAML): what its
    /// copies keep there one process opens at a time, so a reload hands it over.
    pub fn keeps_workspace(&self) -> bool {
        let config = match self {
            Served::ByJina(uses) => ExecutorConfig::from_uses_text(uses).ok(),
            Served::ByPython { uses, .. } => Some(Path::new(uses))
                .filter(|path| path.is_file())
                .and_then(|path| ExecutorConfig::from_file(path).ok()),
            Served::InProcess(_) | Served::InContainer { .. } => None,
        };
        config.is_some_and(|c| c.metas.workspace.is_some())
    }
}

/// The Python files of a `py_modules` list, found as [`check_py_modules`] finds them.
fn python_files(files: &[String], base_dir: Option<&Path>) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|f| f.ends_with(".py"))
        .map(|f| py_module_path(f, base_dir))
        .collect()
}

/// Where a `py_modules` file is: relative to `base_dir` (the YAML's folder) unless it
/// exists as given.
fn py_module_path(file: &str, base_dir: Option<&Path>) -> PathBuf {
    let given = Path::new(file);
    match base_dir {
        Some(dir) if given.is_relative() && !given.is_file() => dir.join(given),
        _ => given.to_path_buf(),
    }
}

/// Resolves a `uses` against the Flow's folder and checks it, without starting anything.
pub fn resolve(
    uses: &Uses,
    base_dir: Option<&Path>,
    overrides: &Overrides,
    py_modules: &[String],
) -> Result<Served, ConfigError> {
    let text = match uses {
        // Built when the Flow starts: building it now could be costly (a model to load).
        Uses::Native(entry) => return Ok(Served::InProcess(*entry)),
        Uses::Map(map) => {
            let config = ExecutorConfig::from_map(map.clone(), "uses (map)")?;
            let yaml = serde_yaml_ng::to_string(map)
                .map_err(|e| ConfigError::new("uses (map)", e.to_string()))?;
            if !config.is_python() {
                config.instantiate(overrides)?;
            }
            return Ok(Served::ByJina(UsesText::InlineYaml(yaml)));
        }
        Uses::Named(text) => text,
    };
    // Jina 3's `py_modules` on a Flow's entry: the class (or YAML) is Python's to find.
    if !py_modules.is_empty() {
        check_py_modules(py_modules, None, "py_modules of the Flow's entry").map_err(|e| {
            ConfigError {
                flow_key: Some("py_modules"),
                ..e
            }
        })?;
        let uses = match UsesText::parse(text, base_dir) {
            Ok(UsesText::YamlFile(path)) => path.display().to_string(),
            _ => text.trim().to_string(),
        };
        return Ok(Served::ByPython {
            uses,
            py_modules: py_modules.to_vec(),
        });
    }
    let parsed = UsesText::parse(text, base_dir)?;
    if let UsesText::Image(image) = parsed {
        return Ok(Served::InContainer { image });
    }
    let config = ExecutorConfig::from_uses_text(&parsed)?;
    if config.is_python() {
        let origin = format!("metas.py_modules of {}", config.origin);
        check_py_modules(
            &config.metas.py_modules,
            config.base_dir.as_deref(),
            &origin,
        )?;
        return Ok(Served::ByPython {
            uses: parsed.to_arg(),
            py_modules: vec![],
        });
    }
    config.instantiate(overrides)?;
    Ok(Served::ByJina(parsed))
}

/// Each Python file of `py_modules` exists (relative ones in `base_dir`, the YAML's folder, or
/// as given): a missing one is found when the Flow is checked, not when its copy starts. A
/// name that is not a `.py` file (a package, a module) is Python's to find. `whose` says whose
/// list it is.
fn check_py_modules(
    files: &[String],
    base_dir: Option<&Path>,
    whose: &str,
) -> Result<(), ConfigError> {
    for path in python_files(files, base_dir) {
        if !path.is_file() {
            return Err(ConfigError::new(
                path.display().to_string(),
                format!("no such file ({whose})"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uses_string_is_read_by_one_rule() {
        let dir = Path::new("/flows");
        let parse = |s: &str| UsesText::parse(s, Some(dir));
        assert_eq!(
            parse("docker://enc:1").unwrap(),
            UsesText::Image(ImageRef("enc:1".into()))
        );
        assert_eq!(
            parse(" Sentencizer ").unwrap(),
            UsesText::Registered("Sentencizer".into())
        );
        assert_eq!(
            parse("jtype: Visit").unwrap(),
            UsesText::InlineYaml("jtype: Visit".into())
        );
        // Upper case extensions are YAML files too, resolved against the Flow's folder.
        for name in ["x.yml", "x.YML", "x.yaml", "x.Yaml"] {
            assert_eq!(parse(name).unwrap(), UsesText::YamlFile(dir.join(name)));
        }
        assert!(parse("NoSuchExecutor").is_err());
        assert!(
            parse("Sentencizr")
                .unwrap_err()
                .message
                .contains("did you mean `Sentencizer`?")
        );
        assert!(
            parse("jinahub://X")
                .unwrap_err()
                .message
                .contains("no Executor Hub")
        );
        assert!(
            parse("ftp://x")
                .unwrap_err()
                .message
                .contains("unknown scheme")
        );
    }

    #[test]
    fn an_image_is_read_by_docker_grammar_and_nothing_else_passes() {
        for ok in [
            "jina-rs:latest",
            "enc",
            "registry.local:5000/team/enc:1.2",
            "enc@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "a_b/c.d-e",
        ] {
            assert_eq!(ImageRef::parse(ok).unwrap().as_str(), ok, "{ok}");
        }
        for bad in [
            "",
            "--volume=/:/host",
            "-v",
            "enc --privileged",
            "enc;id",
            "enc:--x",
            "a//b",
            "/abs",
            "enc@nope",
            "enc:$(id)",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad} passed");
        }
    }
}
