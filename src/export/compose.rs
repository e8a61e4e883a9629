//! A Flow as a docker-compose file (format 2.4, which docker-compose 1.29 and Compose v2 both
//! read): a service per executor copy and one for the gateway.
//!
//! - Native executors run `jina executor` in the project's image, with the Flow's folder
//!   mounted at [`FLOW_DIR`] so that their YAML files and workspaces are where the Flow's
//!   relative paths say; `docker://` ones run their own image, its entrypoint taking the same
//!   flags as when the Flow starts it ([`crate::orchestrate::image_executor_flags`]).
//! - Every executor serves on [`EXECUTOR_PORT`] inside its container, reached as
//!   `SERVICE:8081` on the project's network; nothing of theirs is published.
//! - The gateway runs `jina gateway --uses /flow/FLOW.yml` with the copies' addresses, waits
//!   for every executor to be healthy (`jina ping`), and publishes the Flow's ports.

use super::ExportError;
use crate::executor::{Served, resolve_uses};
use crate::flow::{CheckedFlow, Protocol};
use crate::orchestrate::{Role, copies_of, image_executor_flags};
use serde_json::{Map, Value, json};
use std::path::Path;

/// Where the Flow's folder is mounted in the gateway's and native executors' containers.
pub const FLOW_DIR: &str = "/flow";
/// The port every executor serves on inside its container.
pub const EXECUTOR_PORT: u16 = 8081;
/// The gateway's first port when the Flow gives none (Jina's default for exported Flows).
const DEFAULT_GATEWAY_PORT: u16 = 8080;

/// Choices the Flow YAML does not make.
#[derive(Clone, Debug)]
pub struct ComposeOptions {
    /// The project's image, for the gateway and native executors.
    pub image: String,
}

/// The compose file of `flow`, read from `flow_file` (an absolute path).
pub fn to_compose(
    flow: &CheckedFlow,
    flow_file: &Path,
    options: &ComposeOptions,
) -> Result<String, ExportError> {
    let no_folder = || ExportError::NoFolder {
        path: flow_file.display().to_string(),
    };
    let folder = flow_file.parent().ok_or_else(no_folder)?;
    let file_name = flow_file
        .file_name()
        .ok_or_else(no_folder)?
        .to_string_lossy();
    let spec = &flow.spec;
    if spec.gateway.tls.is_some() {
        return Err(ExportError::Unsupported {
            executor: "gateway".into(),
            why:
                "TLS files are not exported; serve TLS at the proxy in front of the compose project"
                    .into(),
        });
    }
    let mount = format!("{}:{FLOW_DIR}", folder.display());
    let mut services = Map::new();
    let mut addresses = Map::new();
    for (i, exec) in spec.executors.iter().enumerate() {
        let name = spec.name_of(i);
        let unsupported = |why: &str| ExportError::Unsupported {
            executor: name.clone(),
            why: why.into(),
        };
        if exec.external {
            let host = exec.host.as_deref().unwrap_or("127.0.0.1");
            if ["127.0.0.1", "localhost", "::1", "0.0.0.0"].contains(&host) {
                return Err(unsupported(
                    "an external executor on this machine's loopback cannot be reached from a container; give its address on the network as host",
                ));
            }
            let port = exec
                .port_in
                .ok_or_else(|| unsupported("an external executor needs port_in"))?;
            addresses.insert(name.clone(), json!(format!("{host}:{port}")));
            continue;
        }
        if exec.gpus.is_some() {
            return Err(unsupported(
                "gpus are not exported to compose files (format 2.4 has no GPU requests); add them to the service by hand",
            ));
        }
        let mut env = spec.gateway.env.clone();
        env.extend(exec.env.clone());
        env.insert("JINA_PORT".into(), EXECUTOR_PORT.to_string());
        let mut shards = vec![vec![]; exec.shards as usize];
        let (mut head, mut tail) = (None, None);
        for copy in copies_of(exec, &name) {
            let served = resolve_uses(
                copy.uses,
                spec.base_dir.as_deref(),
                &copy.overrides,
                copy.py_modules,
            )
            .map_err(|error| ExportError::Config {
                executor: copy.label.clone(),
                error,
            })?;
            let flags = image_executor_flags(EXECUTOR_PORT, &copy.label, &copy.overrides);
            let mut service = Map::new();
            match served {
                Served::ByJina(uses) => {
                    let uses = in_container(&uses, folder).ok_or_else(|| {
                        unsupported("its YAML lies outside the Flow's folder, which is what the services mount")
                    })?;
                    let command: Vec<String> = ["executor", "--uses", &uses]
                        .into_iter()
                        .map(str::to_string)
                        .chain(flags)
                        .collect();
                    service.insert("image".into(), json!(options.image));
                    service.insert("command".into(), json!(command));
                    service.insert("volumes".into(), json!([mount]));
                }
                Served::InContainer { image } => {
                    service.insert("image".into(), json!(image));
                    if let Some(entrypoint) = copy.entrypoint {
                        let words: Vec<&str> = entrypoint.split_whitespace().collect();
                        service.insert("entrypoint".into(), json!(words));
                    }
                    service.insert("command".into(), json!(flags));
                    if !exec.volumes.is_empty() {
                        service.insert("volumes".into(), json!(exec.volumes));
                    }
                }
                Served::ByPython { .. } => {
                    return Err(unsupported(
                        "a Python executor needs an image of its own: build one whose entrypoint is `jina executor --uses config.yml` and use docker://IMAGE (docs/deploy.md)",
                    ));
                }
                Served::InProcess(_) => {
                    return Err(unsupported(
                        "a Rust type given to the Flow API runs inside the Flow's process; register it in a binary of your own and name it by jtype",
                    ));
                }
            }
            service.insert("environment".into(), json!(env));
            service.insert(
                "healthcheck".into(),
                healthcheck(&["executor", &format!("127.0.0.1:{EXECUTOR_PORT}")]),
            );
            let service_name = service_name(&copy.label);
            let address = format!("{service_name}:{EXECUTOR_PORT}");
            match copy.role {
                Role::Copy { shard } => shards[shard as usize].push(address),
                Role::Head => head = Some(address),
                Role::Tail => tail = Some(address),
            }
            services.insert(service_name, Value::Object(service));
        }
        let mut at = json!({"shards": shards});
        if let Some(h) = head {
            at["head"] = json!(h);
        }
        if let Some(t) = tail {
            at["tail"] = json!(t);
        }
        addresses.insert(name, at);
    }
    let protocols = &spec.gateway.protocols;
    let ports: Vec<u16> = (0..protocols.len())
        .map(|i| {
            spec.gateway
                .ports
                .get(i)
                .copied()
                .unwrap_or(DEFAULT_GATEWAY_PORT + i as u16)
        })
        .collect();
    let mut command: Vec<String> = [
        "gateway",
        "--uses",
        &format!("{FLOW_DIR}/{file_name}"),
        "--deployments-addresses",
        &Value::Object(addresses).to_string(),
        "--protocol",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    command.extend(protocols.iter().map(|p| p.as_str().to_string()));
    command.push("--port".into());
    command.extend(ports.iter().map(u16::to_string));
    let depends_on: Map<String, Value> = services
        .keys()
        .map(|s| (s.clone(), json!({"condition": "service_healthy"})))
        .collect();
    let mut gateway = json!({
        "image": options.image,
        "command": command,
        "volumes": [format!("{mount}:ro")],
        "environment": {"JINA_PORT": ports[0].to_string()},
        "ports": ports.iter().map(|p| format!("{p}:{p}")).collect::<Vec<_>>(),
    });
    // gRPC's health check, else GET /dry_run on the REST face.
    let probe = protocols
        .iter()
        .zip(&ports)
        .find(|(p, _)| matches!(p, Protocol::Grpc | Protocol::Http));
    if let Some((protocol, port)) = probe {
        gateway["healthcheck"] = healthcheck(&[
            "gateway",
            &format!("127.0.0.1:{port}"),
            "--protocol",
            protocol.as_str(),
        ]);
    }
    if !depends_on.is_empty() {
        gateway["depends_on"] = Value::Object(depends_on);
    }
    services.insert("gateway".into(), gateway);
    let file = json!({"version": "2.4", "services": services});
    Ok(serde_yaml_ng::to_string(&file).unwrap_or_default())
}

/// A `jina ping ...` health check, every 2 s, given a minute to pass.
fn healthcheck(ping: &[&str]) -> Value {
    let test: Vec<&str> = ["CMD", "jina", "ping"]
        .into_iter()
        .chain(ping.iter().copied())
        .collect();
    json!({"test": test, "interval": "2s", "timeout": "5s", "retries": 30, "start_period": "2s"})
}

/// A copy's label as a service name: `enc/shard-1/rep-0` → `enc-shard-1-rep-0`.
fn service_name(label: &str) -> String {
    label
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() || c == '_' {
            true => c.to_ascii_lowercase(),
            false => '-',
        })
        .collect()
}

/// A `uses` argument as the container sees it: a path under the Flow's folder moves under
/// [`FLOW_DIR`]; a name or inline YAML stays; another absolute path is not in the container.
fn in_container(uses: &str, folder: &Path) -> Option<String> {
    let path = Path::new(uses);
    if uses.contains('\n') || !path.is_absolute() {
        return Some(uses.to_string());
    }
    path.strip_prefix(folder)
        .ok()
        .map(|rest| format!("{FLOW_DIR}/{}", rest.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(yaml: &str) -> Result<Value, ExportError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flow.yml");
        std::fs::write(&path, yaml).unwrap();
        let flow = crate::flow::load(&path).unwrap();
        let text = to_compose(
            &flow,
            &path,
            &ComposeOptions {
                image: "jina-rs:latest".into(),
            },
        )?;
        Ok(serde_yaml_ng::from_str(&text).unwrap())
    }

    #[test]
    fn a_service_per_copy_and_a_gateway_that_waits_for_them() {
        let c = export(
            "jtype: Flow\nwith: {protocol: [grpc, http], port: [9000, 9001]}\nexecutors:\n  - {name: enc, uses: Visit, replicas: 2, env: {A: '1'}}\n  - {name: idx, uses: Visit, shards: 2, uses_after: Visit}\n",
        )
        .unwrap();
        let services = c["services"].as_object().unwrap();
        let names: Vec<&String> = services.keys().collect();
        assert_eq!(
            names,
            [
                "enc-rep-0",
                "enc-rep-1",
                "idx-shard-0",
                "idx-shard-1",
                "idx-tail",
                "gateway"
            ]
        );
        let command = |service: &str| -> String {
            let words = services[service]["command"].as_array().unwrap();
            let words: Vec<&str> = words.iter().map(|w| w.as_str().unwrap()).collect();
            words.join(" ")
        };
        assert_eq!(
            command("enc-rep-1"),
            "executor --uses Visit --port 8081 --name enc/rep-1"
        );
        assert_eq!(services["enc-rep-0"]["environment"]["A"], "1");
        assert_eq!(
            command("idx-shard-1"),
            r#"executor --uses Visit --port 8081 --name idx/shard-1 --uses-metas {"shard_id":1,"shards":2}"#
        );
        let gateway = &services["gateway"];
        assert_eq!(gateway["ports"], json!(["9000:9000", "9001:9001"]));
        assert_eq!(
            gateway["depends_on"]["idx-tail"]["condition"],
            "service_healthy"
        );
        let command: Vec<&str> = gateway["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(command[..3], ["gateway", "--uses", "/flow/flow.yml"]);
        let addresses: Value = serde_json::from_str(command[4]).unwrap();
        assert_eq!(
            addresses,
            json!({
                "enc": {"shards": [["enc-rep-0:8081", "enc-rep-1:8081"]]},
                "idx": {"shards": [["idx-shard-0:8081"], ["idx-shard-1:8081"]], "tail": "idx-tail:8081"},
            })
        );
        assert_eq!(
            command[5..],
            ["--protocol", "grpc", "http", "--port", "9000", "9001"]
        );
    }

    #[test]
    fn docker_executors_keep_their_image_entrypoint_and_volumes() {
        let c = export(
            "jtype: Flow\nexecutors:\n  - name: py\n    uses: docker://tagger:1\n    entrypoint: jina executor --uses t.yml\n    uses_with: {label: x}\n    volumes: [data:/data]\n",
        )
        .unwrap();
        let py = &c["services"]["py"];
        assert_eq!(py["image"], "tagger:1");
        assert_eq!(
            py["entrypoint"],
            json!(["jina", "executor", "--uses", "t.yml"])
        );
        assert_eq!(
            py["command"],
            json!([
                "--port",
                "8081",
                "--name",
                "py",
                "--uses-with",
                "{\"label\":\"x\"}"
            ])
        );
        assert!(py["volumes"][0].as_str().unwrap().ends_with("/data:/data"));
    }

    #[test]
    fn what_cannot_run_in_compose_is_an_error_naming_the_executor() {
        let e = export("jtype: Flow\nexecutors:\n  - {name: ext, external: true, port_in: 5000}\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("ext: an external executor on this machine's loopback"),
            "{e}"
        );
        let e = export("jtype: Flow\nexecutors:\n  - {name: g, uses: docker://x, gpus: all}\n")
            .unwrap_err();
        assert!(e.to_string().starts_with("g: gpus are not exported"), "{e}");
    }
}
