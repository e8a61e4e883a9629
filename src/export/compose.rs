//! A Flow as a docker-compose file (format 2.4, which docker-compose 1.29 and Compose v2 both
//! read): a service per executor copy and one for the gateway.
//!
//! - Native executors run `jina executor` in the project's image, with the Flow's folder
//!   mounted at [`super::FLOW_DIR`] so that their YAML files and workspaces are where the Flow's
//!   relative paths say; `docker://` ones run their own image, its entrypoint taking the same
//!   flags as when the Flow starts it ([`crate::orchestrate::image_executor_flags`]).
//! - Every executor serves on [`super::EXECUTOR_PORT`] inside its container, reached as
//!   `SERVICE:8081` on the project's network; nothing of theirs is published.
//! - The gateway runs `jina gateway --uses /flow/FLOW.yml` with the copies' addresses, waits
//!   for every executor to be healthy (`jina ping`), and publishes the Flow's ports.

use super::{
    EXECUTOR_PORT, ExportError, copy_container, dns_name, external_address, flow_location,
    gateway_command, gateway_ping, in_container, refuse_tls,
};
use crate::flow::CheckedFlow;
use crate::orchestrate::{Role, copies_of};
use serde_json::{Map, Value, json};
use std::path::Path;

/// Choices the Flow YAML does not make.
#[derive(Clone, Debug)]
pub(crate) struct ComposeOptions {
    /// The project's image, for the gateway and native executors.
    pub image: String,
}

/// The compose file of `flow`, read from `flow_file` (an absolute path).
pub(crate) fn to_compose(
    flow: &CheckedFlow,
    flow_file: &Path,
    options: &ComposeOptions,
) -> Result<String, ExportError> {
    let (folder, file_name) = flow_location(flow_file)?;
    let spec = &flow.spec;
    refuse_tls(spec)?;
    let mount = format!("{}:{}", folder.display(), super::FLOW_DIR);
    let mut services = Map::new();
    let mut volumes = Map::new();
    let mut addresses = Map::new();
    for (i, exec) in spec.executors.iter().enumerate() {
        let name = spec.name_of(i);
        if let Some(address) = external_address(exec, &name)? {
            addresses.insert(name, json!(address));
            continue;
        }
        if exec.gpus.is_some() {
            return Err(ExportError::Unsupported {
                executor: name,
                why: "gpus are not exported to compose files (format 2.4 has no GPU requests); add them to the service by hand".into(),
            });
        }
        let mut shards = vec![vec![]; exec.shards as usize];
        let (mut head, mut tail) = (None, None);
        for copy in copies_of(exec, &name, &flow.served[i]) {
            // The Flow's folder is mounted: a workspace in it is where the Flow says.
            let container = copy_container(spec, exec, &copy, folder, &options.image, |w| {
                in_container(w, folder)
            })?;
            let mut service = json!({"image": container.image});
            if let Some(entrypoint) = container.entrypoint {
                service["entrypoint"] = json!(entrypoint);
            }
            service["command"] = json!(container.args);
            let mut mounts = match container.reads_flow_files {
                true => vec![mount.clone()],
                false => exec.volumes.clone(),
            };
            // A named volume per executor, shared by its copies as their folder is when the
            // Flow runs them: it outlives `down` (not `down --volumes`).
            if container.declared_workspace {
                let volume = format!("{}-workspace", dns_name(&name));
                mounts.push(format!("{volume}:{}", super::WORKSPACE_DIR));
                volumes.insert(volume, json!({}));
            }
            if !mounts.is_empty() {
                service["volumes"] = json!(mounts);
            }
            service["environment"] = json!(container.env);
            service["healthcheck"] =
                healthcheck(&["executor".into(), format!("127.0.0.1:{EXECUTOR_PORT}")]);
            let service_name = dns_name(&copy.label);
            let address = format!("{service_name}:{EXECUTOR_PORT}");
            match copy.role {
                Role::Copy { shard } => shards[shard as usize].push(address),
                Role::Head => head = Some(address),
                Role::Tail => tail = Some(address),
            }
            services.insert(service_name, service);
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
    let (command, ports) = gateway_command(spec, &file_name, addresses);
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
    if let Some(ping) = gateway_ping(spec, &ports) {
        gateway["healthcheck"] = healthcheck(&ping);
    }
    if !depends_on.is_empty() {
        gateway["depends_on"] = Value::Object(depends_on);
    }
    services.insert("gateway".into(), gateway);
    let mut file = json!({"version": "2.4", "services": services});
    if !volumes.is_empty() {
        file["volumes"] = Value::Object(volumes);
    }
    Ok(serde_yaml_ng::to_string(&file).unwrap_or_default())
}

/// A `jina ping ...` health check, every 2 s, given a minute to pass.
fn healthcheck(ping: &[String]) -> Value {
    let mut test = vec!["CMD".to_string(), "jina".into(), "ping".into()];
    test.extend(ping.iter().cloned());
    json!({"test": test, "interval": "2s", "timeout": "5s", "retries": 30, "start_period": "2s"})
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
            [
                "--protocol",
                "grpc",
                "http",
                "--port",
                "9000",
                "9001",
                "--allowed-hosts",
                "gateway",
                "gateway.*"
            ]
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
    fn a_traced_flow_traces_its_executors_too() {
        let c = export(
            "jtype: Flow\nwith: {tracing: true, traces_exporter_host: otel, traces_exporter_port: 4317}\nexecutors:\n  - {name: e, uses: Visit}\n",
        )
        .unwrap();
        let command: Vec<&str> = c["services"]["e"]["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        assert!(
            command.ends_with(&[
                "--tracing",
                "--traces-exporter-host",
                "otel",
                "--traces-exporter-port",
                "4317"
            ]),
            "{command:?}"
        );
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
