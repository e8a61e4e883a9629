//! What a spawn request may ask for, checked before anything is written or started. The
//! caller holds the token, yet is confined: it names what runs (a registered executor, inline
//! YAML, a YAML file it uploaded, or an image by Docker's grammar) and its overrides; the
//! daemon decides the workspace, the environment that steers loaders and runtimes, volumes,
//! user, network and devices. Every refusal names the field and says why.

use super::SpawnRequest;
use crate::executor::{ExecutorConfig, UsesText};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// The longest lease a copy may ask for.
pub(crate) const MAX_LEASE: Duration = Duration::from_secs(24 * 3600);
/// The most files one spawn may upload.
const MAX_FILES: usize = 1000;
/// The most environment variables one spawn may set.
const MAX_ENV: usize = 256;
/// The longest executor name (a copy's label: `enc/shard-1/rep-0`).
const MAX_NAME: usize = 128;

/// Environment variables a caller may not set: each steers a loader, an interpreter or our own
/// runtime, which would run code of the caller's outside the executor it asked for.
const REFUSED_ENV: &[&str] = &[
    "PATH",
    "JINA_PYTHON",
    "JINA_BIN",
    "BASH_ENV",
    "ENV",
    "IFS",
    "GCONV_PATH",
    "OPENSSL_CONF",
    "OPENSSL_ENGINES",
    "NODE_OPTIONS",
    "PERL5LIB",
    "PERL5OPT",
    "RUBYOPT",
    "RUBYLIB",
    "HOSTALIASES",
    "GLIBC_TUNABLES",
];
const REFUSED_ENV_PREFIXES: &[&str] = &["LD_", "DYLD_", "PYTHON", "MALLOC_"];

/// A request the daemon will not carry out, and why.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {why}")]
pub(crate) struct Refused {
    pub field: String,
    pub why: String,
}

fn refused(field: impl Into<String>, why: impl Into<String>) -> Refused {
    Refused {
        field: field.into(),
        why: why.into(),
    }
}

/// What the request runs, checked.
#[derive(Debug)]
pub(crate) enum Runs {
    /// `jina executor --uses <this>` (a registered name, inline YAML, or an uploaded file's
    /// path inside the workspace).
    Executor(String),
    /// An image, run as a Flow runs it.
    Image(crate::executor::ImageRef),
}

/// Checks everything of the request that does not need its files written.
pub(crate) fn check(request: &SpawnRequest) -> Result<(), Refused> {
    check_name(&request.name)?;
    if request.owner.len() < 16 {
        return Err(refused(
            "owner",
            "a secret of the Flow that asks (16 characters or more), which it sends again to see, renew or stop the executor",
        ));
    }
    let lease = request.lease_seconds.unwrap_or(0);
    if lease > MAX_LEASE.as_secs() {
        return Err(refused(
            "lease_seconds",
            format!("at most {} (a day); renew it instead", MAX_LEASE.as_secs()),
        ));
    }
    if request.files.len() > MAX_FILES {
        return Err(refused("files", format!("at most {MAX_FILES} files")));
    }
    for name in request.files.keys() {
        relative_inside(name)
            .map_err(|why| refused(format!("files: '{}'", printable(name)), why))?;
    }
    check_env(request)?;
    if request.uses_metas.contains_key("workspace") {
        return Err(refused(
            "uses_metas.workspace",
            "the daemon gives each executor its own workspace; a caller does not choose where it writes",
        ));
    }
    if request.port == Some(0) {
        return Err(refused("port", "1 to 65535, or none for a free one"));
    }
    Ok(())
}

/// A name for logs: plain characters only, so that it cannot forge or garble log lines.
fn check_name(name: &str) -> Result<(), Refused> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._/-".contains(c);
    if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(plain) {
        return Err(refused(
            "name",
            format!(
                "1 to {MAX_NAME} letters, digits and . _ / - (not '{}')",
                printable(name)
            ),
        ));
    }
    Ok(())
}

fn check_env(request: &SpawnRequest) -> Result<(), Refused> {
    if request.env.len() > MAX_ENV {
        return Err(refused("env", format!("at most {MAX_ENV} variables")));
    }
    for (key, value) in &request.env {
        let well_formed = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !well_formed {
            return Err(refused(
                format!("env: '{}'", printable(key)),
                "not a variable name (letters, digits and _)",
            ));
        }
        let steers = REFUSED_ENV.contains(&key.as_str())
            || REFUSED_ENV_PREFIXES.iter().any(|p| key.starts_with(p));
        if steers {
            return Err(refused(
                format!("env: '{key}'"),
                "it steers a loader, an interpreter or the runtime, so it would run code outside the executor asked for; refused",
            ));
        }
        if value.contains('\0') {
            return Err(refused(format!("env: '{key}'"), "a value holds a NUL byte"));
        }
    }
    Ok(())
}

/// What `uses` runs, once the files are in `workspace`. A file must be one that came with the
/// request: the daemon reads no file of its host on a caller's word (nor answers with one).
/// A Python executor is refused: it would run the caller's code outside any container, with
/// the workspace first on Python's import path.
pub(crate) fn runs(request: &SpawnRequest, workspace: &Path) -> Result<Runs, Refused> {
    let uploaded = request.files.contains_key(&request.uses);
    let uses = match uploaded {
        true => workspace.join(&request.uses).display().to_string(),
        false => request.uses.clone(),
    };
    let parsed = UsesText::parse(&uses, None).map_err(|e| refused("uses", e.message))?;
    let config = match &parsed {
        UsesText::Image(image) => return Ok(Runs::Image(image.clone())),
        UsesText::YamlFile(_) if !uploaded => {
            return Err(refused(
                "uses",
                "a YAML file must be one of `files`, uploaded with the request: the daemon reads no file of its host",
            ));
        }
        _ => ExecutorConfig::from_uses_text(&parsed).map_err(|e| refused("uses", e.message))?,
    };
    if config.is_python() {
        return Err(refused(
            "uses",
            "a Python executor is not started by a daemon (it would run outside any container): build an image for it and use docker://IMAGE, or start it by hand and use external: true",
        ));
    }
    Ok(Runs::Executor(uses))
}

/// A relative path of plain names (no '/' at the start, no '..').
fn relative_inside(name: &str) -> Result<PathBuf, &'static str> {
    let path = Path::new(name);
    let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
    match !name.is_empty() && plain {
        true => Ok(path.to_path_buf()),
        false => Err("must be a relative path inside the workspace (no '/' at the start, no '..')"),
    }
}

/// Where an uploaded file goes: inside the workspace.
pub(crate) fn inside(workspace: &Path, name: &str) -> Result<PathBuf, Refused> {
    relative_inside(name)
        .map(|p| workspace.join(p))
        .map_err(|why| refused(format!("files: '{}'", printable(name)), why))
}

/// A caller's text as it may be shown in an answer or a log: control characters escaped,
/// at most 80 characters.
pub(crate) fn printable(text: &str) -> String {
    let shown: String = text
        .chars()
        .take(80)
        .flat_map(char::escape_default)
        .collect();
    match text.chars().count() > 80 {
        true => format!("{shown}..."),
        false => shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> SpawnRequest {
        SpawnRequest {
            name: "enc/rep-0".into(),
            uses: "Visit".into(),
            owner: "0123456789abcdef".into(),
            ..Default::default()
        }
    }

    #[test]
    fn uploads_stay_inside_their_workspace() {
        let ws = Path::new("/srv/ws");
        assert_eq!(inside(ws, "enc.yml").unwrap(), ws.join("enc.yml"));
        assert_eq!(inside(ws, "models/a.bin").unwrap(), ws.join("models/a.bin"));
        for bad in ["/etc/passwd", "../x", "a/../../x", "", "./a"] {
            assert!(inside(ws, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_steers_loaders_or_the_runtime_is_refused() {
        for key in [
            "LD_PRELOAD",
            "JINA_PYTHON",
            "PYTHONPATH",
            "PATH",
            "DYLD_INSERT_LIBRARIES",
        ] {
            let mut r = request();
            r.env.insert(key.into(), "x".into());
            let e = check(&r).unwrap_err();
            assert_eq!(e.field, format!("env: '{key}'"));
        }
        let mut r = request();
        r.env.insert("MY_SETTING".into(), "x".into());
        check(&r).unwrap();
    }

    #[test]
    fn names_leases_and_workspaces_are_bounded() {
        for name in ["", "a\u{1b}[31mred", "line\nforged", &"x".repeat(200)] {
            let mut r = request();
            r.name = name.into();
            assert_eq!(check(&r).unwrap_err().field, "name", "{name:?}");
        }
        let mut r = request();
        r.lease_seconds = Some(u64::MAX);
        assert_eq!(check(&r).unwrap_err().field, "lease_seconds");
        let mut r = request();
        r.uses_metas.insert("workspace".into(), "/tmp".into());
        assert_eq!(check(&r).unwrap_err().field, "uses_metas.workspace");
    }

    #[test]
    fn only_uploaded_files_and_images_by_grammar_are_run() {
        let ws = Path::new("/srv/ws");
        let mut r = request();
        r.uses = "/etc/shadow".into();
        let e = runs(&r, ws).unwrap_err();
        assert!(e.why.contains("reads no file of its host"), "{e}");
        r.uses = "docker://--volume=/:/host".into();
        assert_eq!(runs(&r, ws).unwrap_err().field, "uses");
        r.uses = "docker://jina-rs:latest".into();
        assert!(matches!(runs(&r, ws).unwrap(), Runs::Image(_)));
        r.uses = "jtype: Visit\nmetas: {py_modules: [evil.py]}\n".into();
        assert!(runs(&r, ws).unwrap_err().why.contains("Python"));
    }

    #[test]
    fn what_is_shown_of_a_callers_text_is_printable() {
        assert_eq!(printable("a\nb\u{1b}"), "a\\nb\\u{1b}");
        assert_eq!(printable(&"y".repeat(100)).len(), 83);
    }
}
