//! Reading YAML values into our types, each with an error that says what was expected and
//! what was found (`expected an integer, found 'abc'`). Shared by every section's keys.

use crate::flow::spec::Uses;
use serde_json::{Map, Value as Json};
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::path::Path;

pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("`{n}`"),
        Value::String(s) => format!("'{s}'"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

pub(super) fn string(v: &Value) -> Result<String, String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("expected a string, found {}", describe(v)))
}

pub(super) fn integer(v: &Value, min: i64, max: i64) -> Result<i64, String> {
    // Quoted numbers (`replicas: '2'`, `timeout_ready: '-1'`) are numbers, as Jina reads them.
    let quoted = v.as_str().and_then(|s| s.trim().parse::<i64>().ok());
    match v.as_i64().or(quoted) {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        Some(n) => Err(format!("{n} is out of range {min}..={max}")),
        None => Err(format!("expected an integer, found {}", describe(v))),
    }
}

pub(super) fn ports(v: &Value) -> Result<Vec<u16>, String> {
    let one = |v: &Value| integer(v, 1, 65535).map(|n| n as u16);
    let ports: Vec<u16> = match v {
        Value::Sequence(items) => items.iter().map(one).collect::<Result<_, _>>()?,
        v => vec![one(v)?],
    };
    match ports
        .iter()
        .enumerate()
        .find(|(i, p)| ports[..*i].contains(p))
    {
        Some((_, twice)) => Err(format!(
            "port {twice} is given twice; give each protocol its own port"
        )),
        None => Ok(ports),
    }
}

pub(super) fn one_or_many(v: &Value, what: &str) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Sequence(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("expected {what}, found {}", describe(i)))
            })
            .collect(),
        other => Err(format!(
            "expected {what} or a list of them, found {}",
            describe(other)
        )),
    }
}

pub(super) fn uses(v: &Value) -> Result<Uses, String> {
    match v {
        Value::String(s) => Ok(Uses::Named(s.clone())),
        Value::Mapping(_) => serde_json::to_value(v)
            .map(Uses::Map)
            .map_err(|e| format!("cannot read this mapping: {e}")),
        // Jina's inline `!MyExecutor {with: ..., metas: ...}`: the tag is its `jtype`.
        Value::Tagged(t) if matches!(t.value, Value::Mapping(_) | Value::Null) => {
            let mut map = match serde_json::to_value(&t.value) {
                Ok(Json::Object(m)) => m,
                Ok(_) => Map::new(),
                Err(e) => return Err(format!("cannot read this mapping: {e}")),
            };
            let name = t.tag.to_string();
            let name = name.trim_start_matches('!').to_string();
            map.entry("jtype").or_insert(Json::String(name));
            Ok(Uses::Map(Json::Object(map)))
        }
        other => Err(format!(
            "expected a name, a YAML path or a mapping, found {}",
            describe(other)
        )),
    }
}

pub(super) fn json_map(v: &Value) -> Result<Map<String, Json>, String> {
    match serde_json::to_value(v) {
        Ok(Json::Object(m)) => Ok(m),
        Ok(Json::Null) => Ok(Map::new()),
        _ => Err(format!("expected a mapping, found {}", describe(v))),
    }
}

/// `uses_dynamic_batching`: endpoint → `{preferred_batch_size, timeout}`.
pub(super) fn dynamic_batching(
    m: &Map<String, Json>,
) -> Result<indexmap::IndexMap<String, crate::executor::DynamicBatching>, String> {
    m.iter()
        .map(|(endpoint, settings)| {
            let settings: crate::executor::DynamicBatching =
                serde_json::from_value(settings.clone()).map_err(|e| format!("{endpoint}: {e}"))?;
            settings.check().map_err(|e| format!("{endpoint}.{e}"))?;
            Ok((endpoint.clone(), settings))
        })
        .collect()
}

pub(super) fn env(v: &Value) -> Result<BTreeMap<String, String>, String> {
    let map = v
        .as_mapping()
        .ok_or_else(|| format!("expected a mapping, found {}", describe(v)))?;
    map.iter()
        .map(|(k, v)| {
            let key = k.as_str().ok_or("keys must be strings")?.to_string();
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    return Err(format!(
                        "{key}: expected a scalar, found {}",
                        describe(other)
                    ));
                }
            };
            Ok((key, value))
        })
        .collect()
}

/// Exactly one port.
pub(super) fn one_port(v: &Value) -> Result<u16, String> {
    match ports(v)?[..] {
        [port] => Ok(port),
        _ => Err("expected one port".into()),
    }
}

/// `true` or `false`.
pub(super) fn boolean(v: &Value) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| format!("expected true or false, found {}", describe(v)))
}

/// A path made absolute against the YAML's folder, as Jina resolves a file it names.
pub(super) fn beside(path: String, base_dir: Option<&Path>) -> String {
    match base_dir {
        Some(dir) if Path::new(&path).is_relative() => dir.join(&path).display().to_string(),
        _ => path,
    }
}
