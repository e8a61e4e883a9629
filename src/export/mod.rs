//! `jina export`: a Flow written down for another orchestrator to run (Jina 3's commands):
//! `jina export docker-compose flow.yml docker-compose.yml`, `jina export kubernetes flow.yml
//! out/`.
//!
//! It owns the translation of a checked Flow into those tools' files: what each executor copy
//! runs as a container (here, shared by both), named as the Flow names its copies
//! ([`crate::orchestrate::copies_of`]), and a gateway that reaches them by name (`jina gateway
//! --uses flow.yml`). It starts and stops nothing.

mod compose;
mod kubernetes;

pub(crate) use compose::{ComposeOptions, to_compose};
pub(crate) use kubernetes::{KubernetesOptions, to_kubernetes};

use crate::executor::ExecutorFlags;
use crate::executor::Served;
use crate::flow::{ExecutorSpec, FlowSpec};
use crate::orchestrate::CopySpec;
use std::collections::BTreeMap;
use std::path::Path;

/// Where the Flow's folder (its YAML files) is found inside the gateway's and native
/// executors' containers.
pub(crate) const FLOW_DIR: &str = "/flow";
/// The port every executor serves on inside its container.
pub(crate) const EXECUTOR_PORT: u16 = 8081;
/// The gateway's first port when the Flow gives none (Jina's default for exported Flows).
const DEFAULT_GATEWAY_PORT: u16 = 8080;

/// What cannot be exported, and why. Each names the executor or setting.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExportError {
    #[error("{executor}: {why}")]
    Unsupported { executor: String, why: String },
    #[error("{path}: the Flow file must be inside a folder that can be mounted")]
    NoFolder { path: String },
}

/// One executor copy as a container: what either orchestrator runs for it.
struct CopyContainer {
    image: String,
    /// Replaces the image's entrypoint (Jina 3's `entrypoint`), split into words.
    entrypoint: Option<Vec<String>>,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    /// Whether it reads the Flow's files at [`FLOW_DIR`] (a native executor).
    reads_flow_files: bool,
    /// Where its workspace is inside the container, if it has one.
    workspace: Option<String>,
    /// Whether that workspace is the export's own [`WORKSPACE_DIR`], on a volume the export
    /// declares (one the Flow left to its default, which would be inside the container and
    /// lost with it).
    declared_workspace: bool,
}

/// Where a native executor keeps its workspace inside its container when the Flow gives it
/// none: a volume the export declares is mounted there, so that an index outlives the
/// container (`down` / `up`, a rollout). The image makes it, owned by its user.
pub(crate) const WORKSPACE_DIR: &str = "/workspace";

/// The address of an external executor as another container reaches it, or None for one of
/// the Flow's own.
fn external_address(exec: &ExecutorSpec, name: &str) -> Result<Option<String>, ExportError> {
    if !exec.external {
        return Ok(None);
    }
    let unsupported = |why: &str| ExportError::Unsupported {
        executor: name.into(),
        why: why.into(),
    };
    let host = exec.host.as_deref().unwrap_or("127.0.0.1");
    if ["127.0.0.1", "localhost", "::1", "0.0.0.0"].contains(&host) {
        return Err(unsupported(
            "an external executor on this machine's loopback cannot be reached from a container; give its address on the network as host",
        ));
    }
    let port = exec
        .port_in
        .ok_or_else(|| unsupported("an external executor needs port_in"))?;
    Ok(Some(format!("{host}:{port}")))
}

/// What one copy runs: the project's image serving a native `uses` from the Flow's files, or
/// a `docker://` image with its own entrypoint; both with the flags a Flow gives an image.
/// `workspace_at` says where a workspace (a path on this machine) is inside the container.
fn copy_container(
    spec: &FlowSpec,
    exec: &ExecutorSpec,
    copy: &CopySpec,
    folder: &Path,
    project_image: &str,
    workspace_at: impl Fn(&str) -> Option<String>,
) -> Result<CopyContainer, ExportError> {
    let unsupported = |why: &str| ExportError::Unsupported {
        executor: copy.label.clone(),
        why: why.into(),
    };
    let mut overrides = copy.overrides.clone();
    // A native executor that keeps an index: `jina executor`'s default workspace would be in
    // its container, and gone with it.
    let keeps_workspace = match copy.served {
        Served::ByJina(uses) => crate::executor::ExecutorConfig::from_uses_text(uses)
            .ok()
            .and_then(|c| crate::executor::Registry::current().find(&c.jtype).copied())
            .is_some_and(|entry| entry.keeps_workspace),
        _ => false,
    };
    let (workspace, declared_workspace) = match overrides
        .uses_metas
        .get("workspace")
        .and_then(|w| w.as_str())
    {
        Some(host) => (
            Some(workspace_at(host).ok_or_else(|| {
                unsupported(
                    "its workspace lies outside the Flow's folder, which is what the services mount",
                )
            })?),
            false,
        ),
        None if keeps_workspace => (Some(WORKSPACE_DIR.to_string()), true),
        None => (None, false),
    };
    if let Some(w) = &workspace {
        overrides
            .uses_metas
            .insert("workspace".into(), w.clone().into());
    }
    let flags = ExecutorFlags {
        name: Some(copy.label.clone()),
        // Traced Flows trace their executors too: our `jina executor` and Python Jina's take these.
        tracing: crate::telemetry::TracingFlags::from(spec.gateway.tracing.as_ref()),
        ..ExecutorFlags::new("", EXECUTOR_PORT).with_overrides(&overrides)
    }
    .portable_args();
    let mut env = spec.gateway.env.clone();
    env.extend(exec.env.clone());
    env.insert("JINA_PORT".into(), EXECUTOR_PORT.to_string());
    let (image, entrypoint, args, reads_flow_files) = match copy.served {
        Served::ByJina(uses) => {
            let uses = in_container(&uses.to_arg(), folder).ok_or_else(|| {
                unsupported(
                    "its YAML lies outside the Flow's folder, which is what the services mount",
                )
            })?;
            let args = ["executor", "--uses", &uses]
                .into_iter()
                .map(str::to_string)
                .chain(flags)
                .collect();
            (project_image.to_string(), None, args, true)
        }
        Served::InContainer { image } => {
            let entrypoint = copy
                .entrypoint
                .map(|e| e.split_whitespace().map(str::to_string).collect());
            (image.to_string(), entrypoint, flags, false)
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
    };
    Ok(CopyContainer {
        image,
        entrypoint,
        args,
        env,
        reads_flow_files,
        workspace,
        declared_workspace,
    })
}

/// A `uses` argument (or a workspace) as the container sees it: a path under the Flow's
/// folder moves under [`FLOW_DIR`]; a name or inline YAML stays; another absolute path is not
/// in the container.
fn in_container(uses: &str, folder: &Path) -> Option<String> {
    let path = Path::new(uses);
    if uses.contains('\n') || !path.is_absolute() {
        return Some(uses.to_string());
    }
    path.strip_prefix(folder)
        .ok()
        .map(|rest| format!("{FLOW_DIR}/{}", rest.display()))
}

/// The gateway's command line and ports: `jina gateway --uses FLOW_DIR/FILE` with every
/// executor's addresses, the Flow's protocols, and its ports (from 8080 where it gives none).
fn gateway_command(
    spec: &FlowSpec,
    file_name: &str,
    addresses: serde_json::Map<String, serde_json::Value>,
) -> (Vec<String>, Vec<u16>) {
    let protocols = &spec.gateway.protocols;
    let ports: Vec<u16> = (0..protocols.len())
        .map(|i| {
            let fallback = DEFAULT_GATEWAY_PORT + i as u16;
            spec.gateway.ports.get(i).copied().unwrap_or(fallback)
        })
        .collect();
    let mut command: Vec<String> = [
        "gateway",
        "--uses",
        &format!("{FLOW_DIR}/{file_name}"),
        "--deployments-addresses",
        &serde_json::Value::Object(addresses).to_string(),
        "--protocol",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    command.extend(protocols.iter().map(|p| p.as_str().to_string()));
    command.push("--port".into());
    command.extend(ports.iter().map(u16::to_string));
    // Clients in the deployment reach the gateway by its service name (compose's `gateway`,
    // Kubernetes' `gateway.NAMESPACE.svc...`): names its Host guard must answer to.
    command.extend(["--allowed-hosts", "gateway", "gateway.*"].map(String::from));
    (command, ports)
}

/// The `jina ping` arguments that check the gateway: gRPC's health check, else GET
/// /dry_run on the REST face; None for a WebSocket-only gateway.
fn gateway_ping(spec: &FlowSpec, ports: &[u16]) -> Option<Vec<String>> {
    use crate::flow::Protocol;
    let (protocol, port) = spec
        .gateway
        .protocols
        .iter()
        .zip(ports)
        .find(|(p, _)| matches!(p, Protocol::Grpc | Protocol::Http))?;
    Some(vec![
        "gateway".into(),
        format!("127.0.0.1:{port}"),
        "--protocol".into(),
        protocol.as_str().into(),
    ])
}

/// A copy's label as a name both tools take (DNS-1123: `enc/shard-1/rep-0` →
/// `enc-shard-1-rep-0`).
fn dns_name(label: &str) -> String {
    let name: String = label
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() {
            true => c.to_ascii_lowercase(),
            false => '-',
        })
        .collect();
    name.trim_matches('-').to_string()
}

/// The Flow's folder and its file's name: what the containers mount and read.
fn flow_location(flow_file: &Path) -> Result<(&Path, String), ExportError> {
    let no_folder = || ExportError::NoFolder {
        path: flow_file.display().to_string(),
    };
    let folder = flow_file.parent().ok_or_else(no_folder)?;
    let name = flow_file.file_name().ok_or_else(no_folder)?;
    Ok((folder, name.to_string_lossy().into_owned()))
}

/// A gateway with TLS files cannot be exported (the files are this machine's).
fn refuse_tls(spec: &FlowSpec) -> Result<(), ExportError> {
    match spec.gateway.tls {
        Some(_) => Err(ExportError::Unsupported {
            executor: "gateway".into(),
            why: "TLS files are not exported; terminate TLS in front of the gateway".into(),
        }),
        None => Ok(()),
    }
}
