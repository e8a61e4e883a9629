//! Copies on a remote host, started through the `jina daemon` there (`daemon::client`): the
//! same copies a Flow would start here ([`copies_of`]), each with its YAML file and the
//! entry's `upload_files`.

use super::copies::copies_of;
use super::{StartError, deployment_of};
use crate::daemon::client::RemoteCopy;
use crate::executor::{Served, UsesText};
use crate::flow::{ExecutorSpec, FlowSpec, ServedEntry};
use crate::topology::{CopyAddress, DeploymentAddresses};
use std::collections::BTreeMap;
use std::path::Path;

/// Starts every copy of an executor on its remote host and says where each serves. What it
/// started is in `started` even when a later copy fails, for the caller to stop.
pub(super) async fn start_remote(
    spec: &FlowSpec,
    exec: &ExecutorSpec,
    served: &ServedEntry,
    name: &str,
    started: &mut Vec<RemoteCopy>,
    client_tls: Option<&crate::tls::ClientTls>,
) -> Result<DeploymentAddresses, StartError> {
    // `tls: true`: the daemon's API and the copies it starts are reached over TLS.
    let tls = client_tls.filter(|_| exec.tls);
    let host = exec.host.clone().unwrap_or_default();
    let daemon_port = exec
        .port_expose
        .unwrap_or(crate::daemon::client::DEFAULT_DAEMON_PORT);
    let files = Uploads {
        name,
        base: spec.base_dir.clone().unwrap_or_default(),
    };
    let mut env = spec.gateway.env.clone();
    env.extend(exec.env.clone());
    let mut uploads = BTreeMap::new();
    for file in &exec.upload_files {
        let path = files.base.join(file);
        uploads.insert(files.key(&path), files.encode(&path)?);
    }
    let mut placed = vec![];
    for copy in copies_of(exec, name, served) {
        let mut copy_files = uploads.clone();
        let (uses, entrypoint) = match copy.served {
            Served::ByJina(UsesText::YamlFile(path)) => {
                copy_files.insert(files.key(path), files.encode(path)?);
                (files.key(path), None)
            }
            Served::ByJina(uses) => (uses.to_arg(), None),
            Served::InContainer { image } => (
                UsesText::Image(image.clone()).to_arg(),
                copy.entrypoint.map(str::to_string),
            ),
            Served::ByPython { .. } | Served::InProcess(_) => {
                return Err(StartError::Remote {
                    executor: copy.label.clone(),
                    why: "only our own executors and docker:// images start through a jina daemon; start a Python one there and use external: true".into(),
                });
            }
        };
        let mut overrides = copy.overrides.clone();
        // A workspace is the daemon's to give, on its own machine.
        overrides.uses_metas.remove("workspace");
        let request = crate::daemon::SpawnRequest {
            name: copy.label.clone(),
            uses,
            files: copy_files,
            uses_with: overrides.uses_with,
            uses_metas: overrides.uses_metas,
            uses_requests: overrides.uses_requests,
            uses_dynamic_batching: overrides.uses_dynamic_batching,
            port: copy.port,
            lease_seconds: Some(crate::daemon::client::LEASE.as_secs()),
            entrypoint,
            env: env.clone(),
            // Laid in by the daemon's client: this Flow's.
            owner: String::new(),
        };
        let remote = RemoteCopy::start(&host, daemon_port, request, tls)
            .await
            .map_err(|error| StartError::Daemon {
                executor: copy.label.clone(),
                error,
            })?;
        tracing::info!(
            "{} started on {} by its daemon",
            copy.label,
            remote.address()
        );
        placed.push((copy.role, CopyAddress::external(remote.address())));
        started.push(remote);
    }
    let mut deployment = deployment_of(exec, name, placed);
    deployment.tls = tls.is_some();
    Ok(deployment)
}

/// Stops copies started through daemons.
pub(crate) async fn stop_remote(remote: Vec<RemoteCopy>) {
    futures::future::join_all(remote.into_iter().map(RemoteCopy::stop)).await;
}

/// The files that go to a daemon with an executor's copies.
struct Uploads<'a> {
    /// The executor, for errors.
    name: &'a str,
    /// The Flow's folder.
    base: std::path::PathBuf,
}

impl Uploads<'_> {
    /// A file's content, base64 as the daemon's API takes it.
    fn encode(&self, path: &Path) -> Result<String, StartError> {
        use base64::Engine as _;
        std::fs::read(path)
            .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes))
            .map_err(|error| StartError::Remote {
                executor: self.name.into(),
                why: format!("cannot read {}: {error}", path.display()),
            })
    }

    /// A file's name on the other side: its path in the Flow's folder, else its own name.
    fn key(&self, path: &Path) -> String {
        path.strip_prefix(&self.base)
            .ok()
            .or_else(|| path.file_name().map(Path::new))
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }
}
