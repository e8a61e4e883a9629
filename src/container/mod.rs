//! Executors in containers (`uses: docker://IMAGE[:TAG]`), through the Docker CLI.
//!
//! It owns what a container of ours is: its `docker run` command line, its name and labels,
//! and how containers are removed: by name when a copy stops or restarts (the guard does it),
//! by owner when a Flow stops, and, when a Flow starts, those that a killed Flow left behind.
//! It does not choose ports or supervise anything (orchestrate does, with the guard between it
//! and the CLI), and it knows nothing of requests.
//!
//! Why the CLI rather than the Engine API (bollard): `docker run` in the foreground prints the
//! container's output on its own stdout and stderr and forwards our SIGTERM to it, so a
//! container is supervised, relayed under its executor's name and stopped exactly as a child
//! process is; the CLI honours the user's `DOCKER_HOST` and contexts; and there is no client
//! library to keep in step with the daemon's API version.

use crate::executor::ImageRef;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};

/// Label: the Flow process that started the container, as `PID:START` (its start time in
/// clock ticks since boot, so a reused pid is not taken for the Flow).
pub(crate) const OWNER_LABEL: &str = "ai.jina-rs.owner";
/// Label: the machine of that Flow (a daemon may serve several machines).
pub(crate) const HOST_LABEL: &str = "ai.jina-rs.host";
/// Label: the executor copy the container serves (`enc/rep-1`).
pub(crate) const EXECUTOR_LABEL: &str = "ai.jina-rs.executor";

/// The name under which a container of ours reaches the machine that runs Docker.
pub(crate) const DOCKER_HOST_NAME: &str = "host.docker.internal";

/// Why containers could not be managed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("docker:// executors need the docker command, and it is not on PATH: {error}")]
    NoDocker { error: std::io::Error },
    #[error("`docker {command}` failed: {stderr}")]
    Docker { command: String, stderr: String },
}

/// One executor copy to run in a container.
#[derive(Debug)]
pub(crate) struct ContainerCopy<'a> {
    pub image: &'a ImageRef,
    /// The copy's name in logs (`enc/rep-1`).
    pub label: &'a str,
    /// Served inside the container and published under the same number on `publish_host`.
    pub port: u16,
    /// The host address the port is published on: loopback for a Flow's own containers, the
    /// daemon's address for those a `jina daemon` starts.
    pub publish_host: &'a str,
    /// Its `/metrics` port (`--port-monitoring` among its flags), published the same way.
    pub monitoring_port: Option<u16>,
    pub env: &'a BTreeMap<String, String>,
    pub volumes: &'a [String],
    pub gpus: Option<&'a str>,
    /// Jina 3's `entrypoint`: replaces the image's own (split on whitespace).
    pub entrypoint: Option<&'a str>,
    /// The executor's flags (`--port`, `--name`, `--uses-with`, ...), after the entrypoint.
    pub executor_args: Vec<String>,
}

impl ContainerCopy<'_> {
    /// The container's name: the copy's label and the Flow's pid, as Docker allows names.
    pub(crate) fn name(&self) -> String {
        let label: String = self
            .label
            .chars()
            .map(
                |c| match c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                    true => c,
                    false => '-',
                },
            )
            .collect();
        format!("jina-{label}-{}", std::process::id())
    }

    /// `docker run ...` (without `docker`): in the foreground, so that its output and our
    /// signals go through the CLI; removed when it stops.
    pub(crate) fn run_args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["run", "--rm", "--name"]
            .into_iter()
            .map(str::to_string)
            .collect();
        args.push(self.name());
        for (key, value) in [
            (OWNER_LABEL, owner()),
            (HOST_LABEL, hostname()),
            (EXECUTOR_LABEL, self.label.to_string()),
        ] {
            args.push("--label".into());
            args.push(format!("{key}={value}"));
        }
        // The Docker host under the name Docker Desktop gives it, on Linux too: where a
        // container reaches a collector of this machine (TraceExport::seen_from_container).
        args.push("--add-host".into());
        args.push(format!("{DOCKER_HOST_NAME}:host-gateway"));
        for port in std::iter::once(self.port).chain(self.monitoring_port) {
            args.push("--publish".into());
            args.push(format!("{0}:{1}:{1}", self.publish_host, port));
        }
        let mut env = self.env.clone();
        env.insert("JINA_PORT".into(), self.port.to_string());
        if let Ok(level) = std::env::var("JINA_LOG_LEVEL") {
            env.entry("JINA_LOG_LEVEL".into()).or_insert(level);
        }
        for (key, value) in env {
            args.push("--env".into());
            args.push(format!("{key}={value}"));
        }
        for volume in self.volumes {
            args.push("--volume".into());
            args.push(volume.clone());
        }
        if let Some(gpus) = self.gpus {
            args.push("--gpus".into());
            args.push(gpus.into());
        }
        let mut entrypoint = self
            .entrypoint
            .map(|e| e.split_whitespace())
            .into_iter()
            .flatten();
        if let Some(program) = entrypoint.next() {
            // One argument, so that no entrypoint is ever read as a flag of `docker run`.
            args.push(format!("--entrypoint={program}"));
        }
        args.push(self.image.to_string());
        args.extend(entrypoint.map(str::to_string));
        args.extend(self.executor_args.iter().cloned());
        args
    }
}

impl ContainerCopy<'_> {
    /// The arguments of `jina` that run it: `guard --container NAME -- docker run ...`. The
    /// guard removes the container by name before each start (one left by a killed CLI would
    /// hold the name and the port) and after it ends, and stops it when its parent dies.
    pub(crate) fn guarded_args(&self) -> Vec<String> {
        ["guard", "--container", &self.name(), "--", "docker"]
            .into_iter()
            .map(str::to_string)
            .chain(self.run_args())
            .collect()
    }
}

/// This process as an owner: `PID:START`.
pub(crate) fn owner() -> String {
    let pid = std::process::id();
    format!("{pid}:{}", start_time(pid).unwrap_or_default())
}

/// A process's start time (clock ticks since boot), from /proc.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are plain.
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(19)?.parse().ok()
}

/// Whether the process an owner label names still runs.
fn owner_alive(owner: &str) -> bool {
    let Some((pid, start)) = owner.split_once(':') else {
        return false;
    };
    match (pid.parse::<u32>(), start.parse::<u64>()) {
        (Ok(pid), Ok(start)) => start_time(pid) == Some(start),
        _ => false,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Runs `docker ARGS` and returns its stdout.
fn docker(args: &[&str]) -> Result<String, ContainerError> {
    let output = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| ContainerError::NoDocker { error })?;
    if !output.status.success() {
        return Err(ContainerError::Docker {
            command: args.join(" "),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Removes containers by name or id, running or not; one already gone is no error.
pub(crate) fn remove(names: &[String]) {
    if names.is_empty() {
        return;
    }
    let mut args = vec!["rm", "--force", "--volumes"];
    args.extend(names.iter().map(String::as_str));
    if let Err(e) = docker(&args)
        && !e.to_string().contains("No such container")
    {
        tracing::warn!("{e}");
    }
}

/// Our containers on this machine, as (id, owner).
fn ours_here() -> Result<Vec<(String, String)>, ContainerError> {
    let format = format!("{{{{.ID}}}} {{{{.Label \"{OWNER_LABEL}\"}}}}");
    let host = format!("label={HOST_LABEL}={}", hostname());
    let listed = docker(&["ps", "--all", "--filter", &host, "--format", &format])?;
    Ok(listed
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(id, owner)| (id.to_string(), owner.to_string()))
        .collect())
}

/// Removes the containers left by Flows of this machine that are no longer running (killed
/// before they could remove them) and returns how many. It is also the check that Docker
/// answers, so a Flow with `docker://` executors fails early and clearly without it.
pub(crate) async fn remove_leftovers() -> Result<usize, ContainerError> {
    tokio::task::spawn_blocking(|| {
        let dead: Vec<String> = ours_here()?
            .into_iter()
            .filter(|(_, owner)| !owner_alive(owner))
            .map(|(id, _)| id)
            .collect();
        if !dead.is_empty() {
            tracing::info!(
                "removing {} container(s) left by a Flow that is gone",
                dead.len()
            );
            remove(&dead);
        }
        Ok(dead.len())
    })
    .await
    .unwrap_or(Ok(0))
}

/// Removes every container this process started that is still there.
pub(crate) async fn remove_own() {
    let _ = tokio::task::spawn_blocking(|| {
        let me = owner();
        match ours_here() {
            Ok(list) => remove(
                &list
                    .into_iter()
                    .filter(|(_, owner)| *owner == me)
                    .map(|(id, _)| id)
                    .collect::<Vec<_>>(),
            ),
            Err(e) => tracing::warn!("{e}"),
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_args_publish_on_loopback_label_and_append_the_executor_flags() {
        let env = BTreeMap::from([("A".to_string(), "1".to_string())]);
        let copy = ContainerCopy {
            image: &ImageRef::parse("enc:1").unwrap(),
            label: "enc/rep-1",
            port: 41000,
            publish_host: "127.0.0.1",
            monitoring_port: None,
            env: &env,
            volumes: &["/data:/data:ro".to_string()],
            gpus: Some("all"),
            entrypoint: Some("jina executor --uses Sentencizer"),
            executor_args: vec!["--port".into(), "41000".into()],
        };
        let args = copy.run_args().join(" ");
        assert!(args.starts_with(&format!(
            "run --rm --name jina-enc-rep-1-{}",
            std::process::id()
        )));
        assert!(args.contains(&format!("--label {OWNER_LABEL}={}", owner())));
        assert!(args.contains("--label ai.jina-rs.executor=enc/rep-1"));
        assert!(args.contains(
            "--add-host host.docker.internal:host-gateway --publish 127.0.0.1:41000:41000"
        ));
        assert!(args.contains("--env A=1 --env JINA_PORT=41000"));
        assert!(args.contains("--volume /data:/data:ro --gpus all"));
        assert!(
            args.ends_with("--entrypoint=jina enc:1 executor --uses Sentencizer --port 41000"),
            "{args}"
        );
    }

    #[test]
    fn an_owner_is_alive_only_with_its_own_start_time() {
        assert!(owner_alive(&owner()));
        let pid = std::process::id();
        assert!(!owner_alive(&format!("{pid}:1")));
        assert!(!owner_alive("garbage"));
    }
}
