//! The gateway's keys (`with:` in Jina 2, `gateway:` in Jina 3), each declared once in
//! [`GATEWAY_KEYS`]: its name, how it is read into a [`GatewaySpec`], and how it is written
//! back. Keys that only mean something together (`ssl_certfile` and `ssl_keyfile`, `tracing`
//! and its exporter) are gathered while reading and checked together at the end.

use super::values::{
    beside, boolean, describe, env, integer, one_or_many, one_port, ports, string,
};
use super::{Key, Parsed, not_read};
use crate::flow::Diagnostic;
use crate::flow::spec::{GatewaySpec, Protocol, TlsFiles};
use serde_json::{Value as Json, json};
use serde_yaml_ng::Value;
use std::path::PathBuf;
use std::time::Duration;

/// What reading a section carries from key to key: the keys checked together at the end.
#[derive(Default)]
pub(super) struct GatewayReading {
    base_dir: Option<PathBuf>,
    certfile: Option<PathBuf>,
    keyfile: Option<PathBuf>,
    tls_asked: bool,
    tracing: bool,
    traces_host: Option<String>,
    traces_port: Option<u16>,
}

type GatewayKey = Key<GatewaySpec, GatewayReading, GatewaySpec>;

/// Every key of the gateway's section, in the order they are written. A key is written when
/// its value differs from the default's (the writer's `W` is the default).
pub(super) const GATEWAY_KEYS: &[GatewayKey] = &[
    Key {
        name: "protocol",
        read: read_protocols,
        write: |g, _| {
            Some(json!(
                g.protocols.iter().map(|p| p.as_str()).collect::<Vec<_>>()
            ))
        },
    },
    Key {
        name: "protocols",
        read: read_protocols,
        write: |_, _| None,
    },
    Key {
        name: "port",
        read: |v, g, _| {
            g.ports = ports(v)?;
            Ok(())
        },
        write: |g, _| (!g.ports.is_empty()).then(|| json!(g.ports)),
    },
    Key {
        name: "restful",
        read: read_restful,
        write: |_, _| None,
    },
    Key {
        name: "rest_api",
        read: read_restful,
        write: |_, _| None,
    },
    Key {
        name: "port_expose",
        read: |v, g, _| {
            g.ports = ports(v)?;
            Ok(())
        },
        write: |_, _| None,
    },
    Key {
        name: "host",
        read: |v, g, _| {
            g.host = string(v)?;
            Ok(())
        },
        write: |g, default| (g.host != default.host).then(|| json!(g.host)),
    },
    Key {
        name: "name",
        read: |v, g, _| {
            g.name = Some(string(v)?);
            Ok(())
        },
        write: |g, _| g.name.as_ref().map(|n| json!(n)),
    },
    Key {
        name: "prefetch",
        read: |v, g, _| {
            g.prefetch = integer(v, 1, u32::MAX as i64)? as usize;
            Ok(())
        },
        write: |g, default| (g.prefetch != default.prefetch).then(|| json!(g.prefetch)),
    },
    Key {
        name: "timeout_ready",
        read: |v, g, _| {
            g.timeout_ready = integer(v, -1, i64::MAX)?;
            Ok(())
        },
        write: |g, default| {
            (g.timeout_ready != default.timeout_ready).then(|| json!(g.timeout_ready))
        },
    },
    Key {
        name: "env",
        read: |v, g, _| {
            g.env.extend(env(v)?);
            Ok(())
        },
        write: |g, _| (!g.env.is_empty()).then(|| json!(g.env)),
    },
    Key {
        name: "envs",
        read: |v, g, _| {
            g.env.extend(env(v)?);
            Ok(())
        },
        write: |_, _| None,
    },
    Key {
        name: "timeout_send",
        read: |v, g, _| {
            g.timeout_send = u64::try_from(integer(v, -1, i64::MAX)?)
                .ok()
                .map(Duration::from_millis);
            Ok(())
        },
        write: |g, _| g.timeout_send.map(|t| json!(t.as_millis() as u64)),
    },
    Key {
        name: "max_request_bytes",
        read: |v, g, _| {
            g.max_request_bytes = integer(v, 1, i64::MAX)? as usize;
            Ok(())
        },
        write: |g, default| {
            (g.max_request_bytes != default.max_request_bytes).then(|| json!(g.max_request_bytes))
        },
    },
    Key {
        name: "max_request_docs",
        read: |v, g, _| {
            g.max_request_docs = integer(v, 0, i64::MAX)? as usize;
            Ok(())
        },
        write: |g, default| {
            (g.max_request_docs != default.max_request_docs).then(|| json!(g.max_request_docs))
        },
    },
    Key {
        name: "max_in_flight_bytes",
        read: |v, g, _| {
            g.max_in_flight_bytes = integer(v, 0, i64::MAX)? as usize;
            Ok(())
        },
        write: |g, default| {
            (g.max_in_flight_bytes != default.max_in_flight_bytes)
                .then(|| json!(g.max_in_flight_bytes))
        },
    },
    Key {
        name: "cors",
        read: |v, g, _| {
            g.cors = boolean(v)?;
            Ok(())
        },
        write: |g, _| g.cors.then(|| json!(true)),
    },
    Key {
        name: "allowed_hosts",
        read: |v, g, _| {
            let names = one_or_many(v, "a host name")?;
            for n in &names {
                crate::gateway::check_host_pattern(n)?;
            }
            g.allowed_hosts = names;
            Ok(())
        },
        write: |g, _| (!g.allowed_hosts.is_empty()).then(|| json!(g.allowed_hosts)),
    },
    Key {
        name: "monitoring",
        read: |v, g, _| {
            g.monitoring = boolean(v)?;
            Ok(())
        },
        write: |g, _| g.monitoring.then(|| json!(true)),
    },
    Key {
        name: "port_monitoring",
        read: |v, g, _| {
            g.port_monitoring = Some(one_port(v)?);
            Ok(())
        },
        write: |g, _| g.port_monitoring.map(|p| json!(p)),
    },
    Key {
        name: "tracing",
        read: |v, _, r| {
            r.tracing = boolean(v)?;
            Ok(())
        },
        write: |g, _| g.tracing.as_ref().map(|_| json!(true)),
    },
    Key {
        name: "traces_exporter_host",
        read: |v, _, r| {
            r.traces_host = Some(string(v)?);
            Ok(())
        },
        write: |g, _| g.tracing.as_ref().map(|t| json!(t.host)),
    },
    Key {
        name: "traces_exporter_port",
        read: |v, _, r| {
            r.traces_port = Some(one_port(v)?);
            Ok(())
        },
        write: |g, _| g.tracing.as_ref().map(|t| json!(t.port)),
    },
    Key {
        name: "ssl_certfile",
        read: |v, _, r| {
            r.certfile = Some(PathBuf::from(beside(string(v)?, r.base_dir.as_deref())));
            Ok(())
        },
        write: |g, _| g.tls.as_ref().map(|t| json!(t.certfile)),
    },
    Key {
        name: "ssl_keyfile",
        read: |v, _, r| {
            r.keyfile = Some(PathBuf::from(beside(string(v)?, r.base_dir.as_deref())));
            Ok(())
        },
        write: |g, _| g.tls.as_ref().map(|t| json!(t.keyfile)),
    },
    Key {
        name: "tls",
        read: |v, _, r| {
            r.tls_asked = boolean(v)?;
            Ok(())
        },
        write: |_, _| None,
    },
    Key {
        name: "workspace",
        // Relative to the YAML's folder, as an entry's is.
        read: |v, g, r| {
            g.workspace = Some(beside(string(v)?, r.base_dir.as_deref()));
            Ok(())
        },
        write: |g, _| g.workspace.as_ref().map(|w| json!(w)),
    },
    // Jina 3's custom gateways: a class of the user's that replaces the gateway.
    Key {
        name: "uses",
        read: custom_gateway,
        write: |_, _| None,
    },
    Key {
        name: "py_modules",
        read: custom_gateway,
        write: |_, _| None,
    },
    Key {
        name: "uses_with",
        read: custom_gateway,
        write: |_, _| None,
    },
];

/// A custom gateway class (Jina 3's `gateway: {uses: MyGateway, py_modules: ...}`) cannot run
/// here, and ignoring it would serve another gateway than the one asked for.
fn custom_gateway(_: &Value, _: &mut GatewaySpec, _: &mut GatewayReading) -> Result<(), String> {
    Err(
        "custom gateway classes are not supported: the gateway is built in (gRPC, HTTP and \
         WebSocket at once, docs/yaml.md); put the logic in an executor at the start of the \
         Flow, or keep this Flow on Python Jina"
            .into(),
    )
}

/// Jina 2's `restful: true` (`rest_api`): the gateway serves HTTP (besides what else it serves).
fn read_restful(v: &Value, g: &mut GatewaySpec, _: &mut GatewayReading) -> Result<(), String> {
    if boolean(v)? && !g.protocols.contains(&Protocol::Http) {
        g.protocols.push(Protocol::Http);
    }
    Ok(())
}

fn read_protocols(v: &Value, g: &mut GatewaySpec, _: &mut GatewayReading) -> Result<(), String> {
    g.protocols = one_or_many(v, "a protocol (grpc, http, websocket)")?
        .iter()
        .map(|s| {
            Protocol::parse(s).ok_or(format!("unknown protocol '{s}' (grpc, http, websocket)"))
        })
        .collect::<Result<_, _>>()?;
    Ok(())
}

/// Reads the gateway's settings from `with:` (Jina 2) or `gateway:` (Jina 3), on top of what
/// the other one set.
pub(super) fn read_gateway(section: &str, v: &Value, p: &mut Parsed) {
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
    let mut reading = GatewayReading {
        base_dir: p.spec.base_dir.clone(),
        ..Default::default()
    };
    let names: Vec<&str> = GATEWAY_KEYS.iter().map(|k| k.name).collect();
    for (k, v) in map {
        let key = k.as_str().unwrap_or_default();
        let path = format!("{section}.{key}");
        let line = p.lines.with_key(section, key);
        match GATEWAY_KEYS.iter().find(|k| k.name == key) {
            Some(k) => {
                if let Err(m) = (k.read)(v, &mut g, &mut reading) {
                    p.errors.push(Diagnostic::new(line, &path, m));
                }
            }
            None => not_read(key, &path, line, &names, p),
        }
    }
    finish(section, reading, &mut g, p);
    p.spec.gateway = g;
}

/// The keys that mean something together, checked together.
fn finish(section: &str, r: GatewayReading, g: &mut GatewaySpec, p: &mut Parsed) {
    let mut error = |key: &str, why: &str| {
        p.errors.push(Diagnostic::new(
            p.lines.with_key(section, key),
            &format!("{section}.{key}"),
            why,
        ))
    };
    // TLS asked for but not fully given is an error: the Flow must never serve plain text
    // where it was told to encrypt.
    match (r.certfile, r.keyfile) {
        (Some(certfile), Some(keyfile)) => g.tls = Some(TlsFiles { certfile, keyfile }),
        (None, None) if r.tls_asked => error(
            "tls",
            "the gateway serves TLS with ssl_certfile and ssl_keyfile; give both",
        ),
        (None, None) => {}
        (Some(_), None) => error("ssl_certfile", "needs ssl_keyfile too"),
        (None, Some(_)) => error("ssl_keyfile", "needs ssl_certfile too"),
    }
    // Jina's defaults: the collector on this machine, OTLP's gRPC port.
    if r.tracing {
        g.tracing = Some(crate::telemetry::TraceExport {
            host: r.traces_host.unwrap_or_else(|| "127.0.0.1".into()),
            port: r.traces_port.unwrap_or(crate::telemetry::DEFAULT_OTLP_PORT),
        });
    } else if r.traces_host.is_some() || r.traces_port.is_some() {
        p.warnings.push(Diagnostic::new(
            p.lines.with_key(section, "traces_exporter_host"),
            &format!("{section}.traces_exporter_host"),
            "the exporter is used with tracing: true only; ignored",
        ));
    }
}

/// Writes the gateway's section: the keys whose values are not the defaults.
pub(super) fn write_gateway(g: &GatewaySpec) -> Json {
    let default = GatewaySpec::default();
    let with: serde_json::Map<String, Json> = GATEWAY_KEYS
        .iter()
        .filter_map(|k| (k.write)(g, &default).map(|v| (k.name.to_string(), v)))
        .collect();
    Json::Object(with)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_is_declared_once() {
        let mut names: Vec<&str> = GATEWAY_KEYS.iter().map(|k| k.name).collect();
        names.sort();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count);
    }
}
