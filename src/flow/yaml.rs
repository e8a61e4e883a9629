//! Flow YAML, as Jina writes it:
//!
//! ```yaml
//! jtype: Flow
//! with: {protocol: [grpc, http, websocket], port: [51000, 51001, 51002]}
//! executors:
//!   - name: encoder
//!     uses: encoder.yml
//!     parallel: 2
//! ```
//!
//! Every key is checked on its own, so one run reports every mistake: a wrong type is an
//! error naming key and line, an unknown key a warning naming key and line.

use super::Diagnostic;
use super::spec::{
    ExecutorSpec, FlowSpec, GatewaySpec, Idempotent, Polling, Protocol, RestartPolicy, TlsFiles,
    Uses,
};
use serde_json::{Map, Value as Json};
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const FLOW_KEYS: &[&str] = &[
    "jtype",
    "version",
    "with",
    "executors",
    "pods",
    "deployments",
];
/// The keys that hold the list of executors: Jina 3's, Jina 1 and early Jina 2's, and the
/// Deployments' of Jina 3.
const EXECUTOR_LISTS: &[&str] = &["executors", "pods", "deployments"];
const WITH_KEYS: &[&str] = &[
    "protocol",
    "protocols",
    "port",
    "port_expose",
    "host",
    "prefetch",
    "timeout_ready",
    "timeout_send",
    "env",
    "envs",
    "name",
    "max_request_bytes",
    "cors",
    "ssl_certfile",
    "ssl_keyfile",
    "tls",
    "monitoring",
    "port_monitoring",
    "tracing",
    "traces_exporter_host",
    "traces_exporter_port",
];
const EXECUTOR_KEYS: &[&str] = &[
    "name",
    "uses",
    "uses_with",
    "uses_metas",
    "uses_requests",
    "uses_dynamic_batching",
    "needs",
    "parallel",
    "shards",
    "replicas",
    "polling",
    "uses_before",
    "uses_after",
    "host",
    "port_in",
    "port",
    "external",
    "timeout_ready",
    "timeout_send",
    "retries",
    "idempotent",
    "restart",
    "tls",
    "when",
    "py_modules",
    "env",
    "envs",
    "workspace",
    "volumes",
    "gpus",
    "entrypoint",
    "port_expose",
    "upload_files",
    "monitoring",
    "port_monitoring",
];

/// A key we do not read. Jina's own keys that change nothing here are a warning that says why;
/// any other key is an error: ignoring it could change what runs (a typo of `executors` would
/// start a Flow without executors), so it names the nearest known key.
fn not_read(key: &str, path: &str, line: Option<usize>, known: &[&str], p: &mut Parsed) {
    match harmless(key) {
        Some(why) => p.warnings.push(Diagnostic::new(line, path, why)),
        None => {
            let message = match crate::errors::nearest(key, known) {
                Some(k) => format!("unknown key; did you mean `{k}`?"),
                None => "unknown key (docs/yaml.md lists every key)".to_string(),
            };
            p.errors.push(Diagnostic::new(line, path, message));
        }
    }
}

/// Replaces variables in Flow YAML text, line by line (so lines keep their numbers):
/// `${{ ENV.VAR }}` and `${{ VAR }}` (Jina 3), `${VAR}` and `$VAR` (Jina 1/2). An unset
/// variable in the first three forms is an error naming it and its line; a bare `$word` that
/// is not set is left as written, as Jina 2 did, since `$eq` and the like are DocArray's query
/// operators in `when:` filters.
fn substitute(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<Diagnostic>> {
    static VARIABLE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"\$\{\{\s*(?:ENV\.)?([A-Za-z_][A-Za-z0-9_]*)\s*\}\}|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)",
        )
        .expect("a valid pattern")
    });
    let mut errors = vec![];
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        // Comments are left alone.
        let code_end = line
            .find(" #")
            .filter(|_| !line.trim_start().starts_with('#'));
        let (code, comment) = match (line.trim_start().starts_with('#'), code_end) {
            (true, _) => ("", line),
            (false, Some(at)) => line.split_at(at),
            (false, None) => (line, ""),
        };
        let replaced = VARIABLE.replace_all(code, |c: &regex::Captures| {
            let (name, required) = match (c.get(1), c.get(2), c.get(3)) {
                (Some(n), _, _) | (_, Some(n), _) => (n.as_str(), true),
                (_, _, Some(n)) => (n.as_str(), false),
                _ => unreachable!("one group matches"),
            };
            match env(name) {
                Some(value) => value,
                None if required => {
                    errors.push(Diagnostic::new(
                        Some(i + 1),
                        "",
                        format!("the variable {name} is not set ({})", &c[0]),
                    ));
                    String::new()
                }
                None => c[0].to_string(),
            }
        });
        out.push_str(&replaced);
        out.push_str(comment);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Why a key of Jina's own is ignored here, for the ones that change nothing.
fn harmless(key: &str) -> Option<&'static str> {
    Some(match key {
        "port_out" | "connect_to_predecessor" => {
            "Jina 2's remote-local wiring, not needed here (the gateway connects to every executor itself); ignored"
        }
        "docker_kwargs" => {
            "docker-py's options; a docker:// executor takes volumes, env and gpus here (docs/deploy.md); ignored"
        }
        "quiet" | "quiet_error" | "log_config" | "suppress_root_logging" => {
            "logging is set with JINA_LOG_LEVEL here; ignored"
        }
        "title" | "description" => "the REST face's OpenAPI title is fixed here; ignored",
        "uvicorn_kwargs" => "the REST face is not uvicorn here; ignored",
        "timeout_ctrl" => {
            "Jina 2's control-request timeout, and there are no control requests here; ignored"
        }
        "install_requirements" | "force_update" | "prefer_platform" => {
            "a Hub setting, and there is no Hub here (a jinahub:// uses is refused); ignored"
        }
        _ => return None,
    })
}

/// The result of reading a Flow YAML: the spec (as far as it could be read), its warnings,
/// and its errors.
pub struct Parsed {
    pub spec: FlowSpec,
    pub warnings: Vec<Diagnostic>,
    pub errors: Vec<Diagnostic>,
    pub lines: LineIndex,
}

/// Reads Flow YAML text, with variables looked up by `env`. Syntax errors end reading;
/// everything else is collected.
pub fn parse_with_env(
    text: &str,
    base_dir: Option<PathBuf>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Parsed {
    let lines = LineIndex::new(text);
    let mut p = Parsed {
        spec: FlowSpec {
            base_dir,
            ..Default::default()
        },
        warnings: vec![],
        errors: vec![],
        lines,
    };
    // Variables first, so that `replicas: ${{ ENV.REPLICAS }}` is an integer when checked.
    let text = match substitute(text, env) {
        Ok(text) => text,
        Err(errors) => {
            p.errors = errors;
            return p;
        }
    };
    let root: Value = match serde_yaml_ng::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            let line = e.location().map(|l| l.line());
            p.errors.push(Diagnostic::new(
                line,
                "",
                crate::executor::yaml_error_message(&e),
            ));
            return p;
        }
    };
    // Jina's `!Flow` tag names the class as `jtype: Flow` does.
    let root = match root {
        Value::Tagged(t) if t.tag == "Flow" => t.value,
        other => other,
    };
    let Some(root) = root.as_mapping() else {
        p.errors.push(Diagnostic::new(
            Some(1),
            "",
            "a Flow YAML must be a mapping with `executors:`",
        ));
        return p;
    };
    let lists: Vec<&str> = EXECUTOR_LISTS
        .iter()
        .copied()
        .filter(|k| root.contains_key(*k))
        .collect();
    if let [_, second, ..] = lists[..] {
        p.errors.push(Diagnostic::new(
            p.lines.top_key(second),
            second,
            format!(
                "the executors are listed twice ({}); keep one list",
                lists.join(" and ")
            ),
        ));
    }
    if let Some(list) = lists.first() {
        p.lines.list_key = list.to_string();
    }
    for (k, v) in root {
        let key = k.as_str().unwrap_or_default();
        let line = p.lines.top_key(key);
        match key {
            "jtype" if v.as_str() != Some("Flow") => p.errors.push(Diagnostic::new(
                line,
                "jtype",
                format!("expected `Flow`, found {}", describe(v)),
            )),
            "with" | "gateway" => read_with(key, v, &mut p),
            k if lists.first() == Some(&k) => read_executors(k, v, &mut p),
            k if FLOW_KEYS.contains(&k) => {}
            other => not_read(other, other, line, FLOW_KEYS, &mut p),
        }
    }
    p
}

/// Reads the gateway's settings from `with:` (Jina 2) or `gateway:` (Jina 3), on top of what
/// the other one set.
fn read_with(section: &str, v: &Value, p: &mut Parsed) {
    let Some(map) = v.as_mapping() else {
        let line = p.lines.top_key(section);
        p.errors.push(Diagnostic::new(
            line,
            section,
            format!("expected a mapping, found {}", describe(v)),
        ));
        return;
    };
    let mut g = p.spec.gateway.clone();
    let mut tls_files: BTreeMap<&str, PathBuf> = BTreeMap::new();
    let mut tls_asked = false;
    let (mut traces, mut traces_host, mut traces_port) = (false, None, None);
    let mut deferred = vec![];
    for (k, v) in map {
        let key = k.as_str().unwrap_or_default();
        let path = format!("{section}.{key}");
        let line = p.lines.with_key(section, key);
        let mut err = |m: String| p.errors.push(Diagnostic::new(line, &path, m));
        match key {
            "protocol" | "protocols" => {
                match one_or_many(v, "a protocol (grpc, http, websocket)") {
                    Ok(list) => {
                        let mut protocols = vec![];
                        for s in list {
                            match Protocol::parse(&s) {
                                Some(pr) => protocols.push(pr),
                                None => {
                                    err(format!("unknown protocol '{s}' (grpc, http, websocket)"))
                                }
                            }
                        }
                        g.protocols = protocols;
                    }
                    Err(m) => err(m),
                }
            }
            "port" | "port_expose" => match ports(v) {
                Ok(ports) => g.ports = ports,
                Err(m) => err(m),
            },
            "host" => match string(v) {
                Ok(s) => g.host = s,
                Err(m) => err(m),
            },
            "name" => match string(v) {
                Ok(s) => g.name = Some(s),
                Err(m) => err(m),
            },
            "prefetch" => match integer(v, 1, u32::MAX as i64) {
                Ok(n) => g.prefetch = n as usize,
                Err(m) => err(m),
            },
            "timeout_ready" => match integer(v, -1, i64::MAX) {
                Ok(n) => g.timeout_ready = n,
                Err(m) => err(m),
            },
            "env" | "envs" => match env(v) {
                Ok(e) => g.env.extend(e),
                Err(m) => err(m),
            },
            "timeout_send" => match integer(v, -1, i64::MAX) {
                Ok(n) => g.timeout_send = u64::try_from(n).ok().map(Duration::from_millis),
                Err(m) => err(m),
            },
            "max_request_bytes" => match integer(v, 1, i64::MAX) {
                Ok(n) => g.max_request_bytes = n as usize,
                Err(m) => err(m),
            },
            "cors" => match v.as_bool() {
                Some(b) => g.cors = b,
                None => err(format!("expected true or false, found {}", describe(v))),
            },
            "ssl_certfile" | "ssl_keyfile" => match string(v) {
                Ok(s) => {
                    *tls_files.entry(key).or_default() = p
                        .spec
                        .base_dir
                        .as_deref()
                        .map_or_else(|| PathBuf::from(&s), |d| d.join(&s))
                }
                Err(m) => err(m),
            },
            "tls" => match v.as_bool() {
                Some(b) => tls_asked = b,
                None => err(format!("expected true or false, found {}", describe(v))),
            },
            "monitoring" => match v.as_bool() {
                Some(b) => g.monitoring = b,
                None => err(format!("expected true or false, found {}", describe(v))),
            },
            "tracing" => match v.as_bool() {
                Some(b) => traces = b,
                None => err(format!("expected true or false, found {}", describe(v))),
            },
            "traces_exporter_host" => match string(v) {
                Ok(h) => traces_host = Some(h),
                Err(m) => err(m),
            },
            "traces_exporter_port" => match ports(v) {
                Ok(ps) if ps.len() == 1 => traces_port = Some(ps[0]),
                Ok(_) => err("expected one port".into()),
                Err(m) => err(m),
            },
            "port_monitoring" => match ports(v) {
                Ok(ps) if ps.len() == 1 => g.port_monitoring = Some(ps[0]),
                Ok(_) => err("expected one port".into()),
                Err(m) => err(m),
            },
            k if WITH_KEYS.contains(&k) => {}
            other => deferred.push((other.to_string(), line)),
        }
    }
    for (key, line) in deferred {
        not_read(&key, &format!("{section}.{key}"), line, WITH_KEYS, p);
    }
    // TLS asked for but not fully given is an error: the Flow must never serve plain text
    // where it was told to encrypt.
    match (
        tls_files.remove("ssl_certfile"),
        tls_files.remove("ssl_keyfile"),
    ) {
        (Some(certfile), Some(keyfile)) => g.tls = Some(TlsFiles { certfile, keyfile }),
        (None, None) if tls_asked => p.errors.push(Diagnostic::new(
            p.lines.with_key(section, "tls"),
            &format!("{section}.tls"),
            "the gateway serves TLS with ssl_certfile and ssl_keyfile; give both",
        )),
        (None, None) => {}
        (Some(_), None) => p.errors.push(Diagnostic::new(
            p.lines.with_key(section, "ssl_certfile"),
            &format!("{section}.ssl_certfile"),
            "needs ssl_keyfile too",
        )),
        (None, Some(_)) => p.errors.push(Diagnostic::new(
            p.lines.with_key(section, "ssl_keyfile"),
            &format!("{section}.ssl_keyfile"),
            "needs ssl_certfile too",
        )),
    }
    // Jina's defaults: the collector on this machine, OTLP's gRPC port.
    if traces {
        g.tracing = Some(crate::telemetry::TraceExport {
            host: traces_host.unwrap_or_else(|| "127.0.0.1".into()),
            port: traces_port.unwrap_or(crate::telemetry::DEFAULT_OTLP_PORT),
        });
    } else if traces_host.is_some() || traces_port.is_some() {
        p.warnings.push(Diagnostic::new(
            p.lines.with_key(section, "traces_exporter_host"),
            &format!("{section}.traces_exporter_host"),
            "the exporter is used with tracing: true only; ignored",
        ));
    }
    p.spec.gateway = g;
}

fn read_executors(list: &str, v: &Value, p: &mut Parsed) {
    let Some(items) = v.as_sequence() else {
        let line = p.lines.top_key(list);
        p.errors.push(Diagnostic::new(
            line,
            list,
            format!("expected a list, found {}", describe(v)),
        ));
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let mut e = ExecutorSpec::new();
        let Some(map) = item.as_mapping() else {
            let line = p.lines.item(i);
            p.errors.push(Diagnostic::new(
                line,
                &format!("executors[{i}]"),
                format!("expected a mapping, found {}", describe(item)),
            ));
            p.spec.executors.push(e);
            continue;
        };
        // Jina 3's `jtype: Deployment` entry keeps its keys under `with:`; so does a Deployment
        // YAML file named by `uses` (the entry's own keys win over the file's).
        let flattened;
        let deployment_file = deployment_yaml(map, p.spec.base_dir.as_deref());
        let map = match (map.get("jtype").and_then(Value::as_str), deployment_file) {
            (Some("Deployment"), _) => {
                let mut keys = map.clone();
                keys.remove("jtype");
                if let Some(Value::Mapping(with)) = keys.remove("with") {
                    keys.extend(with);
                }
                flattened = keys;
                &flattened
            }
            (_, Some(with)) => {
                let mut keys = with;
                let mut own = map.clone();
                own.remove("uses");
                keys.extend(own);
                flattened = keys;
                &flattened
            }
            _ => map,
        };
        let mut parallel_given = false;
        let mut deferred = vec![];
        let mut polling_given = false;
        for (k, v) in map {
            let key = k.as_str().unwrap_or_default();
            let path = format!("executors[{i}].{key}");
            let line = p.lines.item_key(i, key);
            let mut err = |m: String| p.errors.push(Diagnostic::new(line, &path, m));
            match key {
                "name" => match string(v) {
                    Ok(s) => e.name = Some(s),
                    Err(m) => err(m),
                },
                "uses" => match uses(v) {
                    Ok(u) => e.uses = u,
                    Err(m) => err(m),
                },
                "uses_before" | "uses_after" => match uses(v) {
                    Ok(u) if key == "uses_before" => e.uses_before = Some(u),
                    Ok(u) => e.uses_after = Some(u),
                    Err(m) => err(m),
                },
                "uses_with" => match json_map(v) {
                    Ok(m) => e.overrides.uses_with = m,
                    Err(m) => err(m),
                },
                "uses_metas" => match json_map(v) {
                    Ok(m) => e.overrides.uses_metas = m,
                    Err(m) => err(m),
                },
                "uses_requests" => match env(v) {
                    Ok(m) => e.overrides.uses_requests = m.into_iter().collect(),
                    Err(m) => err(m),
                },
                "uses_dynamic_batching" => match json_map(v).and_then(|m| dynamic_batching(&m)) {
                    Ok(b) => e.overrides.uses_dynamic_batching = b,
                    Err(m) => err(m),
                },
                "needs" => match one_or_many(v, "an executor name") {
                    Ok(n) => e.needs = Some(n),
                    Err(m) => err(m),
                },
                "parallel" | "shards" => match integer(v, 1, 1024) {
                    Ok(n) => {
                        e.shards = n as u32;
                        parallel_given = key == "shards" || parallel_given;
                    }
                    Err(m) => err(m),
                },
                "replicas" => match integer(v, 1, 1024) {
                    Ok(n) => e.replicas = n as u32,
                    Err(m) => err(m),
                },
                "polling" => {
                    let one = |v: &Value| {
                        string(v).and_then(|s| {
                            Polling::parse(&s)
                                .ok_or(format!("unknown polling '{s}' (ANY, ALL, ALL_ASYNC)"))
                        })
                    };
                    match v {
                        // Jina 3: per endpoint, `*` for the others.
                        Value::Mapping(map) => {
                            for (endpoint, pl) in map {
                                match (endpoint.as_str(), one(pl)) {
                                    (Some("*"), Ok(pl)) => e.polling = pl,
                                    (Some(endpoint), Ok(pl)) => {
                                        e.polling_by_endpoint.insert(endpoint.into(), pl);
                                    }
                                    (None, _) => err("polling: endpoints are strings".into()),
                                    (_, Err(m)) => err(m),
                                }
                            }
                            polling_given = true;
                        }
                        v => match one(v) {
                            Ok(pl) => {
                                e.polling = pl;
                                polling_given = true;
                            }
                            Err(m) => err(m),
                        },
                    }
                }
                "host" => match string(v) {
                    Ok(s) => e.host = Some(s),
                    Err(m) => err(m),
                },
                "port_in" | "port" => match ports(v) {
                    Ok(ps) if ps.len() == 1 => e.port_in = Some(ps[0]),
                    Ok(_) => err("expected one port".into()),
                    Err(m) => err(m),
                },
                "external" => match v.as_bool() {
                    Some(b) => e.external = b,
                    None => err(format!("expected true or false, found {}", describe(v))),
                },
                "timeout_ready" => match integer(v, -1, i64::MAX) {
                    Ok(n) => e.timeout_ready = Some(n),
                    Err(m) => err(m),
                },
                "env" | "envs" => match env(v) {
                    Ok(m) => e.env.extend(m),
                    Err(m) => err(m),
                },
                "workspace" => match string(v) {
                    // Relative to the YAML's folder, as `uses` is.
                    Ok(s) => {
                        e.workspace = Some(match &p.spec.base_dir {
                            Some(dir) if Path::new(&s).is_relative() => {
                                dir.join(&s).display().to_string()
                            }
                            _ => s,
                        })
                    }
                    Err(m) => err(m),
                },
                "timeout_send" => match integer(v, -1, i64::MAX) {
                    Ok(n) => e.timeout_send = Some(n),
                    Err(m) => err(m),
                },
                "retries" => match integer(v, -1, 1024) {
                    // Jina's -1: the default (each other replica once).
                    Ok(n) => e.retries = usize::try_from(n).ok(),
                    Err(m) => err(m),
                },
                "idempotent" => match v {
                    Value::Bool(true) => e.idempotent = Idempotent::All,
                    Value::Bool(false) => e.idempotent = Idempotent::None,
                    v => match one_or_many(v, "an endpoint, or true for all") {
                        Ok(list) => e.idempotent = Idempotent::Endpoints(list),
                        Err(m) => err(m),
                    },
                },
                "restart" => match string(v).and_then(|s| {
                    RestartPolicy::parse(&s).ok_or(format!(
                        "unknown restart policy '{s}' (always, on-failure, never)"
                    ))
                }) {
                    Ok(r) => e.restart = r,
                    Err(m) => err(m),
                },
                "tls" => match v.as_bool() {
                    Some(b) => e.tls = b,
                    None => err(format!("expected true or false, found {}", describe(v))),
                },
                "py_modules" => match one_or_many(v, "a Python file") {
                    Ok(files) => {
                        e.py_modules = files
                            .into_iter()
                            .map(|f| match &p.spec.base_dir {
                                Some(dir) if Path::new(&f).is_relative() => {
                                    dir.join(f).display().to_string()
                                }
                                _ => f,
                            })
                            .collect()
                    }
                    Err(m) => err(m),
                },
                "volumes" => match one_or_many(v, "a bind mount HOST:CONTAINER") {
                    Ok(mounts) => {
                        e.volumes = mounts
                            .into_iter()
                            .map(|m| {
                                absolute_volume(&m, p.spec.base_dir.as_deref())
                            })
                            .collect()
                    }
                    Err(m) => err(m),
                },
                "monitoring" => match v.as_bool() {
                    Some(b) => e.monitoring = Some(b),
                    None => err(format!("expected true or false, found {}", describe(v))),
                },
                "port_monitoring" => match ports(v) {
                    Ok(ps) if ps.len() == 1 => e.port_monitoring = Some(ps[0]),
                    Ok(_) => err("expected one port".into()),
                    Err(m) => err(m),
                },
                "port_expose" => match ports(v) {
                    Ok(ps) if ps.len() == 1 => e.port_expose = Some(ps[0]),
                    Ok(_) => err("expected one port".into()),
                    Err(m) => err(m),
                },
                "upload_files" => match one_or_many(v, "a file") {
                    Ok(files) => e.upload_files = files,
                    Err(m) => err(m),
                },
                "entrypoint" => match string(v) {
                    Ok(c) if c.split_whitespace().next().is_some() => e.entrypoint = Some(c),
                    Ok(_) => err("expected a command, found an empty string".into()),
                    Err(m) => err(m),
                },
                "gpus" => match v {
                    Value::Number(n) => e.gpus = Some(n.to_string()),
                    v => match string(v) {
                        Ok(g) => e.gpus = Some(g),
                        Err(m) => err(m),
                    },
                },
                "when" => match serde_json::to_value(v)
                    .map_err(|e| e.to_string())
                    .and_then(|q| crate::document::Query::parse(&q))
                {
                    Ok(q) => e.when = Some(q),
                    Err(m) => err(m),
                },
                k if EXECUTOR_KEYS.contains(&k) => {}
                other => deferred.push((other.to_string(), line)),
            }
        }
        let in_container = e.uses.is_image();
        for (key, line) in deferred {
            if in_container && key == "docker_kwargs" {
                p.errors.push(Diagnostic::new(
                    line,
                    &format!("executors[{i}].docker_kwargs"),
                    "docker-py's options are not taken: a docker:// executor takes volumes, env and gpus (docs/deploy.md)",
                ));
                continue;
            }
            not_read(
                &key,
                &format!("executors[{i}].{key}"),
                line,
                EXECUTOR_KEYS,
                p,
            );
        }
        if !in_container && (!e.volumes.is_empty() || e.gpus.is_some() || e.entrypoint.is_some()) {
            let key = match (e.volumes.is_empty(), e.gpus.is_some()) {
                (false, _) => "volumes",
                (true, true) => "gpus",
                (true, false) => "entrypoint",
            };
            p.warnings.push(Diagnostic::new(
                p.lines.item_key(i, key),
                &format!("executors[{i}].{key}"),
                "a container setting, and this executor runs as a process (only a docker:// executor takes it); ignored",
            ));
        }
        if !e.is_remote() && (e.port_expose.is_some() || !e.upload_files.is_empty()) {
            let key = match e.port_expose {
                Some(_) => "port_expose",
                None => "upload_files",
            };
            p.warnings.push(Diagnostic::new(
                p.lines.item_key(i, key),
                &format!("executors[{i}].{key}"),
                "for the jina daemon of a remote host, and this executor runs on this machine (no host, or external: true); ignored",
            ));
        }
        if e.tls && !e.external {
            p.errors.push(Diagnostic::new(
                p.lines.item_key(i, "tls"),
                &format!("executors[{i}].tls"),
                "only an external executor is reached over TLS (the Flow's own run on loopback); add external: true with its host and port",
            ));
        }
        // Jina 3's `shards` receive every request unless polling says otherwise.
        if parallel_given && !polling_given {
            e.polling = Polling::All;
        }
        p.spec.executors.push(e);
    }
}

/// A bind mount with its host path made absolute against the YAML's folder.
fn absolute_volume(mount: &str, base_dir: Option<&Path>) -> String {
    match (mount.split_once(':'), base_dir) {
        (Some((host, rest)), Some(dir)) if Path::new(host).is_relative() => {
            format!("{}:{rest}", dir.join(host).display())
        }
        _ => mount.to_string(),
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

fn describe(v: &Value) -> String {
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

fn string(v: &Value) -> Result<String, String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("expected a string, found {}", describe(v)))
}

fn integer(v: &Value, min: i64, max: i64) -> Result<i64, String> {
    // Quoted numbers (`replicas: '2'`, `timeout_ready: '-1'`) are numbers, as Jina reads them.
    let quoted = v.as_str().and_then(|s| s.trim().parse::<i64>().ok());
    match v.as_i64().or(quoted) {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        Some(n) => Err(format!("{n} is out of range {min}..={max}")),
        None => Err(format!("expected an integer, found {}", describe(v))),
    }
}

fn ports(v: &Value) -> Result<Vec<u16>, String> {
    let one = |v: &Value| integer(v, 1, 65535).map(|n| n as u16);
    match v {
        Value::Sequence(items) => items.iter().map(one).collect(),
        v => one(v).map(|p| vec![p]),
    }
}

fn one_or_many(v: &Value, what: &str) -> Result<Vec<String>, String> {
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

fn uses(v: &Value) -> Result<Uses, String> {
    match v {
        Value::String(s) => Ok(Uses::Named(s.clone())),
        Value::Mapping(_) => serde_json::to_value(v)
            .map(Uses::Map)
            .map_err(|e| format!("cannot read this mapping: {e}")),
        other => Err(format!(
            "expected a name, a YAML path or a mapping, found {}",
            describe(other)
        )),
    }
}

fn json_map(v: &Value) -> Result<Map<String, Json>, String> {
    match serde_json::to_value(v) {
        Ok(Json::Object(m)) => Ok(m),
        Ok(Json::Null) => Ok(Map::new()),
        _ => Err(format!("expected a mapping, found {}", describe(v))),
    }
}

/// `uses_dynamic_batching`: endpoint → `{preferred_batch_size, timeout}`.
fn dynamic_batching(
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

fn env(v: &Value) -> Result<BTreeMap<String, String>, String> {
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

/// Finds the line of a key in block-style Flow YAML, for messages. serde_yaml gives no
/// positions for values, so this scans the text: good for the block style Jina writes, and
/// for anything else it simply finds no line.
pub struct LineIndex {
    lines: Vec<(usize, String)>, // (indent, content after indent) per line, 1-based by position
    /// The top-level key that lists the executors (`executors`, or `pods` / `deployments`).
    list_key: String,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        LineIndex {
            lines: text
                .lines()
                .map(|l| {
                    let content = l.trim_start();
                    (l.len() - content.len(), content.to_string())
                })
                .collect(),
            list_key: "executors".into(),
        }
    }

    fn starts_key(content: &str, key: &str) -> bool {
        content
            .strip_prefix(key)
            .is_some_and(|r| r.starts_with(':'))
    }

    /// Line of a top-level key.
    pub fn top_key(&self, key: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|(indent, c)| *indent == 0 && Self::starts_key(c, key))
            .map(|i| i + 1)
    }

    /// The range of lines (0-based, exclusive end) under a top-level key.
    fn block(&self, key: &str) -> Option<(usize, usize)> {
        let start = self.top_key(key)?; // 1-based line of key == 0-based index of next line
        let end = (start..self.lines.len())
            .find(|&i| {
                self.lines[i].0 == 0
                    && !self.lines[i].1.is_empty()
                    && !self.lines[i].1.starts_with('#')
                    && !self.lines[i].1.starts_with('-')
            })
            .unwrap_or(self.lines.len());
        Some((start, end))
    }

    fn find_key(&self, range: (usize, usize), key: &str) -> Option<usize> {
        (range.0..range.1)
            .filter(|&i| {
                let c = self.lines[i].1.trim_start_matches("- ");
                Self::starts_key(c.trim_start(), key)
            })
            .min_by_key(|&i| self.lines[i].0)
            .map(|i| i + 1)
    }

    /// Line of a key under a top-level section (`with:`, `gateway:`).
    pub fn with_key(&self, section: &str, key: &str) -> Option<usize> {
        self.find_key(self.block(section)?, key)
    }

    /// The line range of item `i` of `executors:`.
    fn item_range(&self, i: usize) -> Option<(usize, usize)> {
        let (start, end) = self.block(&self.list_key)?;
        let dash_indent = (start..end)
            .find(|&j| self.lines[j].1.starts_with("- "))
            .map(|j| self.lines[j].0)?;
        let starts: Vec<usize> = (start..end)
            .filter(|&j| self.lines[j].0 == dash_indent && self.lines[j].1.starts_with('-'))
            .collect();
        let s = *starts.get(i)?;
        let e = starts.get(i + 1).copied().unwrap_or(end);
        Some((s, e))
    }

    /// Line where item `i` of `executors:` starts.
    pub fn item(&self, i: usize) -> Option<usize> {
        self.item_range(i).map(|(s, _)| s + 1)
    }

    /// Line of a key of item `i` of `executors:` (the item's line when the key is absent).
    pub fn item_key(&self, i: usize, key: &str) -> Option<usize> {
        let range = self.item_range(i)?;
        self.find_key(range, key).or(Some(range.0 + 1))
    }
}

/// Writes a spec as Flow YAML. Every executor gets its name and explicit `needs`, so the YAML
/// loads back to the same graph whatever the defaults. A Rust executor (served in-process) is
/// written as its type name, which only loads back where that name means something.
pub fn write(spec: &FlowSpec) -> String {
    use serde_json::json;
    let defaults = GatewaySpec::default();
    let g = &spec.gateway;
    let mut with = Map::new();
    with.insert(
        "protocol".into(),
        json!(g.protocols.iter().map(|p| p.as_str()).collect::<Vec<_>>()),
    );
    if !g.ports.is_empty() {
        with.insert("port".into(), json!(g.ports));
    }
    if g.host != defaults.host {
        with.insert("host".into(), json!(g.host));
    }
    if let Some(name) = &g.name {
        with.insert("name".into(), json!(name));
    }
    if g.prefetch != defaults.prefetch {
        with.insert("prefetch".into(), json!(g.prefetch));
    }
    if g.timeout_ready != defaults.timeout_ready {
        with.insert("timeout_ready".into(), json!(g.timeout_ready));
    }
    if !g.env.is_empty() {
        with.insert("env".into(), json!(g.env));
    }
    if let Some(t) = g.timeout_send {
        with.insert("timeout_send".into(), json!(t.as_millis() as u64));
    }
    if g.max_request_bytes != defaults.max_request_bytes {
        with.insert("max_request_bytes".into(), json!(g.max_request_bytes));
    }
    if g.cors {
        with.insert("cors".into(), json!(true));
    }
    if g.monitoring {
        with.insert("monitoring".into(), json!(true));
    }
    if let Some(p) = g.port_monitoring {
        with.insert("port_monitoring".into(), json!(p));
    }
    if let Some(t) = &g.tracing {
        with.insert("tracing".into(), json!(true));
        with.insert("traces_exporter_host".into(), json!(t.host));
        with.insert("traces_exporter_port".into(), json!(t.port));
    }
    if let Some(tls) = &g.tls {
        with.insert("ssl_certfile".into(), json!(tls.certfile));
        with.insert("ssl_keyfile".into(), json!(tls.keyfile));
    }
    let uses_json = |u: &Uses| match u {
        Uses::Named(s) => json!(s),
        Uses::Map(m) => m.clone(),
        Uses::Native(n) => json!(n.name),
    };
    let executors: Vec<Json> = spec
        .executors
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut x = Map::new();
            x.insert("name".into(), json!(spec.name_of(i)));
            x.insert("uses".into(), uses_json(&e.uses));
            let needs = match &e.needs {
                Some(n) => n.clone(),
                None if i == 0 => vec![super::GATEWAY.to_string()],
                None => vec![spec.name_of(i - 1)],
            };
            x.insert("needs".into(), json!(needs));
            let o = &e.overrides;
            if !o.uses_with.is_empty() {
                x.insert("uses_with".into(), Json::Object(o.uses_with.clone()));
            }
            if !o.uses_metas.is_empty() {
                x.insert("uses_metas".into(), Json::Object(o.uses_metas.clone()));
            }
            if !o.uses_requests.is_empty() {
                x.insert("uses_requests".into(), json!(o.uses_requests));
            }
            if !o.uses_dynamic_batching.is_empty() {
                x.insert(
                    "uses_dynamic_batching".into(),
                    json!(o.uses_dynamic_batching),
                );
            }
            if e.shards > 1 {
                x.insert("parallel".into(), json!(e.shards));
            }
            if e.replicas > 1 {
                x.insert("replicas".into(), json!(e.replicas));
            }
            if !e.polling_by_endpoint.is_empty() {
                let mut map: Map<String, Json> = e
                    .polling_by_endpoint
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v.as_str())))
                    .collect();
                map.insert("*".into(), json!(e.polling.as_str()));
                x.insert("polling".into(), Json::Object(map));
            } else if e.shards > 1 || e.polling != Polling::Any {
                x.insert("polling".into(), json!(e.polling.as_str()));
            }
            for (key, u) in [
                ("uses_before", &e.uses_before),
                ("uses_after", &e.uses_after),
            ] {
                if let Some(u) = u {
                    x.insert(key.into(), uses_json(u));
                }
            }
            if let Some(h) = &e.host {
                x.insert("host".into(), json!(h));
            }
            if let Some(p) = e.port_in {
                x.insert("port_in".into(), json!(p));
            }
            if e.external {
                x.insert("external".into(), json!(true));
            }
            if let Some(t) = e.timeout_ready {
                x.insert("timeout_ready".into(), json!(t));
            }
            if !e.env.is_empty() {
                x.insert("env".into(), json!(e.env));
            }
            if let Some(w) = &e.workspace {
                x.insert("workspace".into(), json!(w));
            }
            if let Some(t) = e.timeout_send {
                x.insert("timeout_send".into(), json!(t));
            }
            if let Some(r) = e.retries {
                x.insert("retries".into(), json!(r));
            }
            match &e.idempotent {
                Idempotent::None => {}
                Idempotent::All => {
                    x.insert("idempotent".into(), json!(true));
                }
                Idempotent::Endpoints(list) => {
                    x.insert("idempotent".into(), json!(list));
                }
            }
            if e.restart != RestartPolicy::default() {
                x.insert("restart".into(), json!(e.restart.as_str()));
            }
            if e.tls {
                x.insert("tls".into(), json!(true));
            }
            if !e.py_modules.is_empty() {
                x.insert("py_modules".into(), json!(e.py_modules));
            }
            if let Some(q) = &e.when {
                x.insert("when".into(), q.source().clone());
            }
            if !e.volumes.is_empty() {
                x.insert("volumes".into(), json!(e.volumes));
            }
            if let Some(g) = &e.gpus {
                x.insert("gpus".into(), json!(g));
            }
            if let Some(c) = &e.entrypoint {
                x.insert("entrypoint".into(), json!(c));
            }
            if let Some(p) = e.port_expose {
                x.insert("port_expose".into(), json!(p));
            }
            if let Some(m) = e.monitoring {
                x.insert("monitoring".into(), json!(m));
            }
            if let Some(p) = e.port_monitoring {
                x.insert("port_monitoring".into(), json!(p));
            }
            if !e.upload_files.is_empty() {
                x.insert("upload_files".into(), json!(e.upload_files));
            }
            Json::Object(x)
        })
        .collect();
    let doc = json!({"jtype": "Flow", "with": with, "executors": executors});
    serde_yaml_ng::to_string(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_volumes_resolve_against_the_yaml_folder() {
        let dir = Path::new("/flows");
        assert_eq!(absolute_volume("data:/data", Some(dir)), "/flows/data:/data");
        assert_eq!(absolute_volume("/abs:/data", Some(dir)), "/abs:/data");
    }

    /// Reads with the process environment, as `jina flow` does.
    fn parse(text: &str, base_dir: Option<PathBuf>) -> Parsed {
        parse_with_env(text, base_dir, &|name| std::env::var(name).ok())
    }

    const FLOW: &str = "jtype: Flow
with:
  protocol: [grpc, http]
  port: 12345
  colour: blue
executors:
  - name: p1
    needs: gateway
    parallel: three
  - name: p2
    shards: 2
    replicas: 2
  - uses: Sleep
    polling: SOMETIMES
";

    #[test]
    fn collects_every_error_and_warning_with_lines() {
        let p = parse(FLOW, None);
        let errors: Vec<String> = p.errors.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            errors,
            vec![
                "line 5: with.colour: unknown key (docs/yaml.md lists every key)",
                "line 9: executors[0].parallel: expected an integer, found 'three'",
                "line 14: executors[2].polling: unknown polling 'SOMETIMES' (ANY, ALL, ALL_ASYNC)",
            ]
        );
        assert!(p.warnings.is_empty());
        assert_eq!(
            p.spec.gateway.protocols,
            vec![Protocol::Grpc, Protocol::Http]
        );
        assert_eq!(p.spec.executors[1].shards, 2);
        assert_eq!(p.spec.executors[1].replicas, 2);
        assert_eq!(
            p.spec.executors[1].polling,
            Polling::All,
            "shards default to ALL"
        );
        assert_eq!(p.spec.executors[0].needs, Some(vec!["gateway".to_string()]));
    }

    #[test]
    fn jinas_own_keys_that_mean_nothing_here_say_why() {
        let p = parse(
            "executors:\n  - name: remote\n    port_out: 5555\n    upload_files: [x.py]\n",
            None,
        );
        assert!(p.errors.is_empty());
        let warnings: Vec<String> = p.warnings.iter().map(|d| d.to_string()).collect();
        assert!(
            warnings[0].starts_with("line 3: executors[0].port_out: Jina 2's remote-local wiring"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].starts_with(
                "line 4: executors[0].upload_files: for the jina daemon of a remote host"
            ),
            "{warnings:?}"
        );
    }

    #[test]
    fn container_keys_apply_to_docker_entries_and_warn_elsewhere() {
        let p = parse(
            "executors:\n  - name: enc\n    uses: docker://enc:1\n    volumes: [data:/data]\n    gpus: 1\n    entrypoint: jina executor --uses X\n  - name: native\n    volumes: /a:/b\n  - name: kw\n    uses: docker://enc:1\n    docker_kwargs: {privileged: true}\n",
            Some(PathBuf::from("/flows")),
        );
        let e = &p.spec.executors[0];
        assert_eq!(e.volumes, ["/flows/data:/data"]);
        assert_eq!(e.gpus.as_deref(), Some("1"));
        assert_eq!(e.entrypoint.as_deref(), Some("jina executor --uses X"));
        let warnings: Vec<String> = p.warnings.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            warnings,
            [
                "line 8: executors[1].volumes: a container setting, and this executor runs as a process (only a docker:// executor takes it); ignored"
            ]
        );
        let errors: Vec<String> = p.errors.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            errors,
            [
                "line 11: executors[2].docker_kwargs: docker-py's options are not taken: a docker:// executor takes volumes, env and gpus (docs/deploy.md)"
            ]
        );
    }

    #[test]
    fn a_typo_is_an_error_that_names_the_key_meant() {
        let p = parse("executorz:\n  - name: a\n", None);
        let errors: Vec<String> = p.errors.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            errors,
            ["line 1: executorz: unknown key; did you mean `executors`?"]
        );
        let p = parse("executors:\n  - name: a\n    replica: 2\n", None);
        assert_eq!(
            p.errors[0].to_string(),
            "line 3: executors[0].replica: unknown key; did you mean `replicas`?"
        );
    }

    #[test]
    fn pods_and_deployments_list_the_executors_as_in_jina_1_and_3() {
        for list in ["pods", "deployments"] {
            let p = parse(
                &format!("{list}:\n  - name: a\n  - name: b\n    needs: a\n"),
                None,
            );
            assert!(p.errors.is_empty(), "{list}: {:?}", p.errors);
            assert_eq!(p.spec.executors.len(), 2);
            assert_eq!(p.lines.item_key(1, "needs"), Some(4));
        }
        let p = parse("executors: []\npods: []\n", None);
        assert!(
            p.errors[0].to_string().contains("listed twice"),
            "{:?}",
            p.errors
        );
    }

    #[test]
    fn variables_are_replaced_before_types_are_checked() {
        let env = |name: &str| match name {
            "REPLICAS" => Some("2".to_string()),
            "NAME" => Some("enc".to_string()),
            _ => None,
        };
        let text = "executors:\n  - name: ${{ ENV.NAME }}\n    replicas: ${{ REPLICAS }}\n  - name: ${NAME}2\n    shards: '3'\n    needs: $NAME\n    uses_with: {q: {text: {$eq: hi}}}  # $HOME stays\n";
        let p = parse_with_env(text, None, &env);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.spec.executors[0].name.as_deref(), Some("enc"));
        assert_eq!(p.spec.executors[0].replicas, 2);
        assert_eq!(p.spec.executors[1].name.as_deref(), Some("enc2"));
        assert_eq!(p.spec.executors[1].shards, 3);
        assert_eq!(p.spec.executors[1].needs, Some(vec!["enc".to_string()]));
        assert_eq!(
            p.spec.executors[1].overrides.uses_with["q"]["text"]["$eq"], "hi",
            "a query operator is no variable"
        );
        let p = parse_with_env("executors:\n  - replicas: ${{ ENV.MISSING }}\n", None, &env);
        assert_eq!(
            p.errors[0].to_string(),
            "line 2: the variable MISSING is not set (${{ ENV.MISSING }})"
        );
    }

    #[test]
    fn the_flow_tag_and_jina_3s_gateway_section() {
        let p = parse(
            "!Flow\nwith: {prefetch: 7}\ngateway:\n  protocol: [http]\n  port: 8080\n  cors: true\n  colour: red\nexecutors: []\n",
            None,
        );
        assert_eq!(p.spec.gateway.prefetch, 7, "with: and gateway: both apply");
        assert_eq!(p.spec.gateway.protocols, vec![Protocol::Http]);
        assert_eq!(p.spec.gateway.ports, vec![8080]);
        assert!(p.spec.gateway.cors);
        assert_eq!(
            p.errors[0].to_string(),
            "line 7: gateway.colour: unknown key (docs/yaml.md lists every key)"
        );
    }

    #[test]
    fn a_deployment_entry_keeps_its_keys_under_with() {
        let p = parse(
            "deployments:\n  - jtype: Deployment\n    with:\n      name: enc\n      uses: Visit\n      replicas: 2\n",
            None,
        );
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.spec.executors[0].name.as_deref(), Some("enc"));
        assert_eq!(p.spec.executors[0].replicas, 2);
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let p = parse("executors:\n  - name: [a\n", None);
        assert_eq!(p.errors.len(), 1);
        assert!(p.errors[0].line.is_some(), "{}", p.errors[0]);
    }
}
