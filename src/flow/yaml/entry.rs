//! The keys of an executor entry (`executors: [- name: ..., uses: ...]`), each declared once in
//! [`ENTRY_KEYS`]: its name, how it is read into an [`ExecutorSpec`], and how it is written
//! back. The reader, the writer, "did you mean" and the docs' check all walk that one table.

use super::values::{
    beside, boolean, describe, dynamic_batching, env, integer, json_map, one_or_many, one_port,
    string, uses,
};
use super::{Key, Parsed, not_read};
use crate::flow::Diagnostic;
use crate::flow::spec::{ExecutorSpec, FlowSpec, Idempotent, Polling, RestartPolicy, Uses};
use serde_json::{Value as Json, json};
use serde_yaml_ng::Value;
use std::path::Path;

/// What reading one entry carries from key to key.
pub(super) struct EntryReading {
    /// The Flow's folder, against which files resolve.
    base_dir: Option<std::path::PathBuf>,
}

/// Where an entry stands in its Flow, for writing it.
pub(super) struct EntryPlace {
    /// Its name, given or by position.
    name: String,
    /// Its parents, given or by position: written out, so that the YAML loads back to the
    /// same graph whatever the defaults.
    needs: Vec<String>,
}

type EntryKey = Key<ExecutorSpec, EntryReading, EntryPlace>;

/// Every key of an executor entry, in the order they are written.
pub(super) const ENTRY_KEYS: &[EntryKey] = &[
    Key {
        name: "name",
        read: |v, e, _| {
            e.name = Some(string(v)?);
            Ok(())
        },
        write: |_, at| Some(json!(at.name)),
    },
    Key {
        name: "uses",
        read: |v, e, _| {
            e.uses = uses(v)?;
            Ok(())
        },
        write: |e, _| Some(uses_json(&e.uses)),
    },
    Key {
        name: "needs",
        read: |v, e, _| {
            e.needs = Some(one_or_many(v, "an executor name")?);
            Ok(())
        },
        write: |_, at| Some(json!(at.needs)),
    },
    Key {
        name: "uses_with",
        read: |v, e, _| {
            e.overrides.uses_with = json_map(v)?;
            Ok(())
        },
        write: |e, _| non_empty(json!(e.overrides.uses_with)),
    },
    Key {
        name: "uses_metas",
        read: |v, e, _| {
            e.overrides.uses_metas = json_map(v)?;
            Ok(())
        },
        write: |e, _| non_empty(json!(e.overrides.uses_metas)),
    },
    Key {
        name: "uses_requests",
        read: |v, e, _| {
            e.overrides.uses_requests = env(v)?.into_iter().collect();
            Ok(())
        },
        write: |e, _| non_empty(json!(e.overrides.uses_requests)),
    },
    Key {
        name: "uses_dynamic_batching",
        read: |v, e, _| {
            e.overrides.uses_dynamic_batching = dynamic_batching(&json_map(v)?)?;
            Ok(())
        },
        write: |e, _| non_empty(json!(e.overrides.uses_dynamic_batching)),
    },
    Key {
        name: "parallel",
        read: |v, e, _| {
            e.shards = integer(v, 1, 1024)? as u32;
            Ok(())
        },
        write: |e, _| (e.shards > 1).then(|| json!(e.shards)),
    },
    Key {
        name: "shards",
        read: |v, e, _| {
            e.shards = integer(v, 1, 1024)? as u32;
            Ok(())
        },
        write: |_, _| None,
    },
    Key {
        name: "replicas",
        read: |v, e, _| {
            e.replicas = integer(v, 1, 1024)? as u32;
            Ok(())
        },
        write: |e, _| (e.replicas > 1).then(|| json!(e.replicas)),
    },
    Key {
        name: "polling",
        read: read_polling,
        write: |e, _| match e.polling_by_endpoint.is_empty() {
            false => {
                let mut map: serde_json::Map<String, Json> = e
                    .polling_by_endpoint
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v.as_str())))
                    .collect();
                map.insert("*".into(), json!(e.polling.as_str()));
                Some(Json::Object(map))
            }
            true => (e.shards > 1 || e.polling != Polling::Any).then(|| json!(e.polling.as_str())),
        },
    },
    Key {
        name: "uses_before",
        read: |v, e, _| {
            e.uses_before = Some(uses(v)?);
            Ok(())
        },
        write: |e, _| e.uses_before.as_ref().map(uses_json),
    },
    Key {
        name: "uses_after",
        read: |v, e, _| {
            e.uses_after = Some(uses(v)?);
            Ok(())
        },
        write: |e, _| e.uses_after.as_ref().map(uses_json),
    },
    Key {
        name: "host",
        read: |v, e, _| {
            e.host = Some(string(v)?);
            Ok(())
        },
        write: |e, _| e.host.as_ref().map(|h| json!(h)),
    },
    Key {
        name: "port_in",
        read: |v, e, _| {
            e.port_in = Some(one_port(v)?);
            Ok(())
        },
        write: |e, _| e.port_in.map(|p| json!(p)),
    },
    Key {
        name: "port",
        read: |v, e, _| {
            e.port_in = Some(one_port(v)?);
            Ok(())
        },
        write: |_, _| None,
    },
    Key {
        name: "external",
        read: |v, e, _| {
            e.external = boolean(v)?;
            Ok(())
        },
        write: |e, _| e.external.then(|| json!(true)),
    },
    Key {
        name: "timeout_ready",
        read: |v, e, _| {
            e.timeout_ready = Some(integer(v, -1, i64::MAX)?);
            Ok(())
        },
        write: |e, _| e.timeout_ready.map(|t| json!(t)),
    },
    Key {
        name: "env",
        read: |v, e, _| {
            e.env.extend(env(v)?);
            Ok(())
        },
        write: |e, _| non_empty(json!(e.env)),
    },
    Key {
        name: "envs",
        read: |v, e, _| {
            e.env.extend(env(v)?);
            Ok(())
        },
        write: |_, _| None,
    },
    Key {
        name: "workspace",
        // Relative to the YAML's folder, as `uses` is.
        read: |v, e, r| {
            e.workspace = Some(beside(string(v)?, r.base_dir.as_deref()));
            Ok(())
        },
        write: |e, _| e.workspace.as_ref().map(|w| json!(w)),
    },
    Key {
        name: "timeout_send",
        read: |v, e, _| {
            e.timeout_send = Some(integer(v, -1, i64::MAX)?);
            Ok(())
        },
        write: |e, _| e.timeout_send.map(|t| json!(t)),
    },
    Key {
        name: "retries",
        // Jina's -1: the default (each other replica once).
        read: |v, e, _| {
            e.retries = usize::try_from(integer(v, -1, 1024)?).ok();
            Ok(())
        },
        write: |e, _| e.retries.map(|r| json!(r)),
    },
    Key {
        name: "idempotent",
        read: |v, e, _| {
            e.idempotent = match v {
                Value::Bool(true) => Idempotent::All,
                Value::Bool(false) => Idempotent::None,
                v => Idempotent::Endpoints(one_or_many(v, "an endpoint, or true for all")?),
            };
            Ok(())
        },
        write: |e, _| match &e.idempotent {
            Idempotent::None => None,
            Idempotent::All => Some(json!(true)),
            Idempotent::Endpoints(list) => Some(json!(list)),
        },
    },
    Key {
        name: "restart",
        read: |v, e, _| {
            let s = string(v)?;
            e.restart = RestartPolicy::parse(&s).ok_or(format!(
                "unknown restart policy '{s}' (always, on-failure, never)"
            ))?;
            Ok(())
        },
        write: |e, _| (e.restart != RestartPolicy::default()).then(|| json!(e.restart.as_str())),
    },
    Key {
        name: "tls",
        read: |v, e, _| {
            e.tls = boolean(v)?;
            Ok(())
        },
        write: |e, _| e.tls.then(|| json!(true)),
    },
    Key {
        name: "py_modules",
        read: |v, e, r| {
            e.py_modules = one_or_many(v, "a Python file")?
                .into_iter()
                .map(|f| beside(f, r.base_dir.as_deref()))
                .collect();
            Ok(())
        },
        write: |e, _| non_empty(json!(e.py_modules)),
    },
    Key {
        name: "python_runtime",
        read: |v, e, _| {
            e.python_runtime = serde_json::to_value(v)
                .and_then(serde_json::from_value)
                .map_err(|_| "auto, jina-rs or jina".to_string())?;
            Ok(())
        },
        write: |e, _| {
            (e.python_runtime != crate::executor::PythonRuntime::Auto)
                .then(|| json!(e.python_runtime.to_string()))
        },
    },
    Key {
        name: "when",
        read: |v, e, _| {
            let query = serde_json::to_value(v).map_err(|e| e.to_string())?;
            e.when = Some(crate::document::Query::parse(&query)?);
            Ok(())
        },
        write: |e, _| e.when.as_ref().map(|q| q.source().clone()),
    },
    Key {
        name: "volumes",
        read: |v, e, r| {
            e.volumes = one_or_many(v, "a bind mount HOST:CONTAINER")?
                .into_iter()
                .map(|m| absolute_volume(&m, r.base_dir.as_deref()))
                .collect();
            Ok(())
        },
        write: |e, _| non_empty(json!(e.volumes)),
    },
    Key {
        name: "gpus",
        read: |v, e, _| {
            e.gpus = Some(match v {
                Value::Number(n) => n.to_string(),
                v => string(v)?,
            });
            Ok(())
        },
        write: |e, _| e.gpus.as_ref().map(|g| json!(g)),
    },
    Key {
        name: "entrypoint",
        read: |v, e, _| match string(v)? {
            c if c.split_whitespace().next().is_some() => {
                e.entrypoint = Some(c);
                Ok(())
            }
            _ => Err("expected a command, found an empty string".into()),
        },
        write: |e, _| e.entrypoint.as_ref().map(|c| json!(c)),
    },
    Key {
        name: "port_expose",
        read: |v, e, _| {
            e.port_expose = Some(one_port(v)?);
            Ok(())
        },
        write: |e, _| e.port_expose.map(|p| json!(p)),
    },
    Key {
        name: "monitoring",
        read: |v, e, _| {
            e.monitoring = Some(boolean(v)?);
            Ok(())
        },
        write: |e, _| e.monitoring.map(|m| json!(m)),
    },
    Key {
        name: "port_monitoring",
        read: |v, e, _| {
            e.port_monitoring = Some(one_port(v)?);
            Ok(())
        },
        write: |e, _| e.port_monitoring.map(|p| json!(p)),
    },
    Key {
        name: "upload_files",
        read: |v, e, _| {
            e.upload_files = one_or_many(v, "a file")?;
            Ok(())
        },
        write: |e, _| non_empty(json!(e.upload_files)),
    },
];

/// Jina's polling: one for every endpoint, or (Jina 3) a map of endpoint to polling with `*`
/// for the others.
fn read_polling(v: &Value, e: &mut ExecutorSpec, _: &mut EntryReading) -> Result<(), String> {
    let one = |v: &Value| {
        let s = string(v)?;
        Polling::parse(&s).ok_or(format!("unknown polling '{s}' (ANY, ALL, ALL_ASYNC)"))
    };
    // Jina's flag also takes the map as a JSON string: `'{"/search": "ALL", "*": "ANY"}'`.
    let parsed;
    let v = match v {
        Value::String(s) if s.trim_start().starts_with('{') => {
            parsed = serde_yaml_ng::from_str::<Value>(s)
                .map_err(|err| format!("polling: not a map of endpoint to polling: {err}"))?;
            &parsed
        }
        v => v,
    };
    match v {
        Value::Mapping(map) => {
            for (endpoint, polling) in map {
                let polling = one(polling)?;
                match endpoint.as_str() {
                    Some("*") => e.polling = polling,
                    Some(endpoint) => {
                        e.polling_by_endpoint.insert(endpoint.into(), polling);
                    }
                    None => return Err("polling: endpoints are strings".into()),
                }
            }
        }
        v => e.polling = one(v)?,
    }
    Ok(())
}

/// A value worth writing: not an empty map or list.
fn non_empty(value: Json) -> Option<Json> {
    match &value {
        Json::Object(m) if m.is_empty() => None,
        Json::Array(a) if a.is_empty() => None,
        _ => Some(value),
    }
}

fn uses_json(u: &Uses) -> Json {
    match u {
        Uses::Named(s) => json!(s),
        Uses::Map(m) => m.clone(),
        Uses::Native(n) => json!(n.name),
    }
}

/// A bind mount with its host path made absolute against the YAML's folder.
fn absolute_volume(mount: &str, base_dir: Option<&Path>) -> String {
    match mount.split_once(':') {
        Some((host, rest)) => format!("{}:{rest}", beside(host.to_string(), base_dir)),
        None => mount.to_string(),
    }
}

/// Reads the list of executors (`executors:`, or `pods:` / `deployments:`).
/// Reads the executors: a list of entries, each a mapping or (Jina 3) the path of a Deployment
/// YAML; or Jina 1's map of name to settings, whose order is the chain's.
pub(super) fn read_entries(list: &str, v: &Value, p: &mut Parsed) {
    let items: Vec<Value> = match v {
        Value::Sequence(items) => items.clone(),
        Value::Mapping(pods) => pods
            .iter()
            .map(|(name, settings)| {
                let mut entry = match settings {
                    Value::Mapping(m) => m.clone(),
                    _ => serde_yaml_ng::Mapping::new(),
                };
                if !entry.contains_key("name") {
                    entry.insert("name".into(), name.clone());
                }
                match settings {
                    Value::Mapping(_) | Value::Null => Value::Mapping(entry),
                    other => other.clone(), // reported below, as a list's item would be
                }
            })
            .collect(),
        _ => {
            let line = p.lines.top_key(list);
            p.errors.push(Diagnostic::new(
                line,
                list,
                format!(
                    "expected a list (or a map of name to settings), found {}",
                    describe(v)
                ),
            ));
            return;
        }
    };
    for (i, item) in items.iter().enumerate() {
        let map = match item {
            Value::Mapping(map) => map.clone(),
            // `- dep.yml`: an entry that is a Deployment YAML (or an executor's) by its path.
            Value::String(path) => [(Value::from("uses"), Value::from(path.as_str()))]
                .into_iter()
                .collect(),
            _ => {
                let line = p.lines.item(i);
                p.errors.push(Diagnostic::new(
                    line,
                    &format!("executors[{i}]"),
                    format!("expected a mapping, found {}", describe(item)),
                ));
                p.spec.executors.push(ExecutorSpec::new());
                continue;
            }
        };
        let map = entry_keys(&map, p.spec.base_dir.as_deref());
        let entry = read_entry(i, &map, p);
        p.spec.executors.push(entry);
    }
}

/// An entry's keys: Jina 3's `jtype: Deployment` entry keeps them under `with:`; so does a
/// Deployment YAML file named by `uses` (the entry's own keys win over the file's).
fn entry_keys(map: &serde_yaml_ng::Mapping, base_dir: Option<&Path>) -> serde_yaml_ng::Mapping {
    if map.get("jtype").and_then(Value::as_str) == Some("Deployment") {
        let mut keys = map.clone();
        keys.remove("jtype");
        if let Some(Value::Mapping(with)) = keys.remove("with") {
            keys.extend(with);
        }
        return keys;
    }
    match deployment_yaml(map, base_dir) {
        Some(mut keys) => {
            let mut own = map.clone();
            own.remove("uses");
            keys.extend(own);
            keys
        }
        None => map.clone(),
    }
}

/// Reads one entry: each key by its declaration, then the checks across keys.
fn read_entry(i: usize, map: &serde_yaml_ng::Mapping, p: &mut Parsed) -> ExecutorSpec {
    let mut e = ExecutorSpec::new();
    let mut reading = EntryReading {
        base_dir: p.spec.base_dir.clone(),
    };
    let mut unknown = vec![];
    for (k, v) in map {
        let key = k.as_str().unwrap_or_default();
        let line = p.lines.item_key(i, key);
        match ENTRY_KEYS.iter().find(|k| k.name == key) {
            Some(k) => {
                if let Err(m) = (k.read)(v, &mut e, &mut reading) {
                    let path = format!("executors[{i}].{key}");
                    p.errors.push(Diagnostic::new(line, &path, m));
                }
            }
            None => unknown.push((key.to_string(), line)),
        }
    }
    check_entry(i, &e, unknown, p);
    e
}

/// The checks across an entry's keys, and its unknown keys.
fn check_entry(i: usize, e: &ExecutorSpec, unknown: Vec<(String, Option<usize>)>, p: &mut Parsed) {
    let in_container = e.uses.is_image();
    let names: Vec<&str> = ENTRY_KEYS.iter().map(|k| k.name).collect();
    for (key, line) in unknown {
        let path = format!("executors[{i}].{key}");
        match (in_container, key.as_str()) {
            (true, "docker_kwargs") => p.errors.push(Diagnostic::new(
                line,
                &path,
                "docker-py's options are not taken: a docker:// executor takes volumes, env and gpus (docs/deploy.md)",
            )),
            _ => not_read(&key, &path, line, &names, p),
        }
    }
    let mut warn = |key: &str, why: &str| {
        let line = p.lines.item_key(i, key);
        p.warnings
            .push(Diagnostic::new(line, &format!("executors[{i}].{key}"), why));
    };
    if !in_container && (!e.volumes.is_empty() || e.gpus.is_some() || e.entrypoint.is_some()) {
        let key = match (e.volumes.is_empty(), e.gpus.is_some()) {
            (false, _) => "volumes",
            (true, true) => "gpus",
            (true, false) => "entrypoint",
        };
        warn(
            key,
            "a container setting, and this executor runs as a process (only a docker:// executor takes it); ignored",
        );
    }
    if !e.is_remote() && (e.port_expose.is_some() || !e.upload_files.is_empty()) {
        let key = match e.port_expose {
            Some(_) => "port_expose",
            None => "upload_files",
        };
        warn(
            key,
            "for the jina daemon of a remote host, and this executor runs on this machine (no host, or external: true); ignored",
        );
    }
    if e.tls && !e.external && !e.is_remote() {
        p.errors.push(Diagnostic::new(
            p.lines.item_key(i, "tls"),
            &format!("executors[{i}].tls"),
            "only an external executor, or one a remote host's daemon starts, is reached over TLS (the Flow's own run on loopback); add external: true with its host and port, or the remote host",
        ));
    }
}

/// The `with:` of a Deployment YAML file that an entry's `uses` names (Jina 3), if it is one.
fn deployment_yaml(
    entry: &serde_yaml_ng::Mapping,
    base_dir: Option<&Path>,
) -> Option<serde_yaml_ng::Mapping> {
    let uses = entry.get("uses")?.as_str()?;
    let crate::executor::UsesText::YamlFile(path) =
        crate::executor::UsesText::parse(uses, base_dir).ok()?
    else {
        return None;
    };
    let file: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    if file.get("jtype")?.as_str()? != "Deployment" {
        return None;
    }
    match file.get("with") {
        Some(Value::Mapping(with)) => Some(with.clone()),
        _ => Some(Default::default()),
    }
}

/// Writes one entry, every key as its declaration writes it.
pub(super) fn write_entry(spec: &FlowSpec, index: usize) -> Json {
    let e = &spec.executors[index];
    let at = EntryPlace {
        name: spec.name_of(index),
        needs: match (&e.needs, index) {
            (Some(needs), _) => needs.clone(),
            (None, 0) => vec![crate::flow::GATEWAY.to_string()],
            (None, i) => vec![spec.name_of(i - 1)],
        },
    };
    let entry: serde_json::Map<String, Json> = ENTRY_KEYS
        .iter()
        .filter_map(|k| (k.write)(e, &at).map(|v| (k.name.to_string(), v)))
        .collect();
    Json::Object(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_volumes_resolve_against_the_yaml_folder() {
        let dir = Path::new("/flows");
        assert_eq!(
            absolute_volume("data:/data", Some(dir)),
            "/flows/data:/data"
        );
        assert_eq!(absolute_volume("/abs:/data", Some(dir)), "/abs:/data");
    }

    #[test]
    fn each_key_is_declared_once() {
        let mut names: Vec<&str> = ENTRY_KEYS.iter().map(|k| k.name).collect();
        names.sort();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count);
    }
}
