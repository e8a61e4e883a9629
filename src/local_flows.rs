//! The Flows running on this machine, so that `jina client post /index` finds one without an
//! address, as `docker` finds its daemon.
//!
//! A serving Flow (`jina flow`, `jina hello`, `jina gateway`) records itself as `<pid>.json` in
//! the per-user runtime folder ([`runtime_dir`]): its name, pid, addresses, YAML and start
//! time. `jina flow` records itself while it starts too (waiting for an external executor,
//! say), as [`FlowState::Starting`], and a client is told it is starting rather than that no
//! Flow runs. The file is written atomically (a temporary file renamed into place) and removed when
//! the Flow stops ([`Registration`] on drop). A Flow killed with SIGKILL cannot remove its
//! file: whoever reads the folder ([`running`]) skips and deletes an entry whose process is
//! gone, or whose pid now belongs to a later process.
//!
//! This module decides which Flow a command without an address talks to ([`pick`]). It does
//! not connect to anything and knows nothing of requests.

use crate::flow::Protocol;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One running Flow, as it recorded itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct FlowRecord {
    pub name: String,
    pub pid: u32,
    /// The process's start time (clock ticks after boot): a later process that reuses the pid
    /// is not this Flow.
    pub start_ticks: u64,
    /// The address the gateway listens on (`0.0.0.0` for every interface).
    pub host: String,
    pub ports: Vec<RecordedPort>,
    /// The Flow YAML, when it came from one.
    pub yaml: Option<PathBuf>,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    pub executors: usize,
    /// The gateway's certificate, when it serves TLS: a client on this machine trusts it.
    pub certfile: Option<PathBuf>,
    /// Whether it serves yet (a record without it is of a Flow that serves).
    #[serde(default)]
    pub state: FlowState,
}

/// Whether a recorded Flow serves yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FlowState {
    /// Its executors are starting; its gateway does not answer yet.
    Starting,
    #[default]
    Ready,
}

/// One protocol of a recorded Flow and its port.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RecordedPort {
    pub protocol: String,
    pub port: u16,
}

impl FlowRecord {
    /// The record of this process serving `ports` on `host`.
    pub(crate) fn of_this_process(
        name: String,
        host: &str,
        ports: &[(Protocol, u16)],
        yaml: Option<&Path>,
        executors: usize,
        certfile: Option<&Path>,
    ) -> FlowRecord {
        let pid = std::process::id();
        FlowRecord {
            name,
            pid,
            start_ticks: crate::procs::start_ticks(pid).unwrap_or_default(),
            host: host.to_string(),
            ports: ports
                .iter()
                .map(|(protocol, port)| RecordedPort {
                    protocol: protocol.as_str().to_string(),
                    port: *port,
                })
                .collect(),
            yaml: yaml.map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())),
            started_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            executors,
            certfile: certfile.map(Path::to_path_buf),
            state: FlowState::Ready,
        }
    }

    /// The record of this process while its executors start: no addresses yet.
    pub(crate) fn starting(name: String, yaml: Option<&Path>, executors: usize) -> FlowRecord {
        FlowRecord {
            state: FlowState::Starting,
            ..FlowRecord::of_this_process(name, "", &[], yaml, executors, None)
        }
    }

    /// The address a client on this machine dials: loopback for a gateway on every interface.
    pub(crate) fn dial_host(&self) -> &str {
        match self.host.as_str() {
            "0.0.0.0" | "::" | "[::]" | "" => "127.0.0.1",
            host => host,
        }
    }

    /// The port of `protocol`, if the Flow serves it.
    fn port_of(&self, protocol: Protocol) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.protocol == protocol.as_str())
            .map(|p| p.port)
    }

    /// `grpc 127.0.0.1:51234, http 127.0.0.1:51235`.
    pub(crate) fn addresses(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("{} {}:{}", p.protocol, self.dial_host(), p.port))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// How long it has served.
    pub(crate) fn uptime(&self) -> Duration {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Duration::from_secs(now.saturating_sub(self.started_at))
    }

    /// Whether the process that wrote this record still runs.
    fn is_alive(&self) -> bool {
        crate::procs::start_ticks(self.pid) == Some(self.start_ticks)
    }
}

/// The per-user folder where running Flows record themselves: `$JINA_RUNTIME_DIR`, else
/// `$XDG_RUNTIME_DIR/jina`, else `~/.jina/run`, else `<temp>/jina-<uid>`.
pub(crate) fn runtime_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("JINA_RUNTIME_DIR") {
        return dir.into();
    }
    if let Some(dir) = var("XDG_RUNTIME_DIR") {
        return PathBuf::from(dir).join("jina");
    }
    if let Some(home) = var("HOME") {
        return PathBuf::from(home).join(".jina").join("run");
    }
    // SAFETY: getuid cannot fail.
    std::env::temp_dir().join(format!("jina-{}", unsafe { libc::getuid() }))
}

/// A Flow's record in the runtime folder; dropping it removes the record.
#[derive(Debug)]
pub(crate) struct Registration {
    path: PathBuf,
}

impl Registration {
    /// Replaces the record (a starting Flow that now serves), in place.
    pub(crate) fn update(&self, record: &FlowRecord) {
        if let Err(e) = write_file(record) {
            tracing::warn!(
                "cannot update this Flow's record in {}: {e}",
                runtime_dir().display()
            );
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Records `record` in the runtime folder until the returned value is dropped. A Flow serves
/// whether or not it could be recorded: a failure is a warning (clients then need its port).
pub(crate) fn register(record: &FlowRecord) -> Option<Registration> {
    write_record(record)
        .inspect_err(|e| {
            tracing::warn!(
                "cannot record this Flow in {} ({e}): clients need its --port",
                runtime_dir().display()
            )
        })
        .ok()
}

fn write_record(record: &FlowRecord) -> std::io::Result<Registration> {
    write_file(record).map(|path| Registration { path })
}

/// Writes `record` as `<pid>.json`, atomically; returns its path.
fn write_file(record: &FlowRecord) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = runtime_dir();
    // Only this user reads it: it names processes and ports.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let path = dir.join(format!("{}.json", record.pid));
    let partial = dir.join(format!(".{}.json.partial", record.pid));
    let text = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, &path)?;
    Ok(path)
}

/// The Flows running on this machine, oldest first. Records of processes that are gone are
/// removed on the way; unreadable files are skipped.
pub(crate) fn running() -> Vec<FlowRecord> {
    let Ok(entries) = std::fs::read_dir(runtime_dir()) else {
        return vec![];
    };
    let mut flows = vec![];
    for path in entries.filter_map(|e| Some(e.ok()?.path())) {
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Some(record) = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<FlowRecord>(&bytes).ok())
        else {
            continue;
        };
        if record.is_alive() {
            flows.push(record);
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
    flows.sort_by_key(|f| (f.started_at, f.pid));
    flows
}

/// Why no single Flow could be picked.
#[derive(Debug, PartialEq, thiserror::Error)]
pub(crate) enum PickError {
    #[error(
        "no Flow runs on this machine (none recorded in {}): start one with `jina flow --uses flow.yml`, or give the gateway's address with --host and --port",
        dir.display()
    )]
    NoneRunning { dir: PathBuf },
    #[error("{} Flows run on this machine: {}; pick one with --flow NAME, or give --port", list.len(), describe(list))]
    Several { list: Vec<FlowRecord> },
    #[error(
        "no Flow named '{name}' runs on this machine (running: {})",
        describe_or_none(running)
    )]
    NoSuchFlow {
        name: String,
        running: Vec<FlowRecord>,
    },
    #[error(
        "the Flow '{name}' (pid {pid}) is starting: its executors are not all ready yet; try again when `jina flows` shows its addresses"
    )]
    Starting { name: String, pid: u32 },
    #[error(
        "the Flow '{flow}' does not serve {protocol} (it serves {serves}); pick another --protocol"
    )]
    NoSuchProtocol {
        flow: String,
        protocol: &'static str,
        serves: String,
    },
}

fn describe(list: &[FlowRecord]) -> String {
    list.iter()
        .map(|f| format!("'{}' (pid {}, {})", f.name, f.pid, f.addresses()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_or_none(list: &[FlowRecord]) -> String {
    match list.is_empty() {
        true => "none".into(),
        false => describe(list),
    }
}

/// The Flow a command without an address means: the one named `name`, else the only one
/// running; one that is still starting is an error.
pub(crate) fn pick_flow(name: Option<&str>) -> Result<FlowRecord, PickError> {
    let mut flows = running();
    let flow = match name {
        Some(name) => match flows.iter().position(|f| f.name == name) {
            Some(i) => flows.swap_remove(i),
            None => {
                return Err(PickError::NoSuchFlow {
                    name: name.into(),
                    running: flows,
                });
            }
        },
        None => match flows.len() {
            0 => return Err(PickError::NoneRunning { dir: runtime_dir() }),
            1 => flows.remove(0),
            _ => return Err(PickError::Several { list: flows }),
        },
    };
    if flow.state == FlowState::Starting {
        return Err(PickError::Starting {
            name: flow.name,
            pid: flow.pid,
        });
    }
    Ok(flow)
}

/// The Flow a command without an address talks to: the one named `name`, else the only one
/// running; and the protocol to use: `protocol` if given (it must serve it), else gRPC if it
/// serves it, else its first.
pub(crate) fn pick(
    name: Option<&str>,
    protocol: Option<Protocol>,
) -> Result<(FlowRecord, Protocol, u16), PickError> {
    let flow = pick_flow(name)?;
    let chosen = match protocol {
        Some(p) => flow.port_of(p).map(|port| (p, port)),
        None => flow
            .port_of(Protocol::Grpc)
            .map(|port| (Protocol::Grpc, port))
            .or_else(|| {
                let first = flow.ports.first()?;
                Some((Protocol::parse(&first.protocol)?, first.port))
            }),
    };
    match chosen {
        Some((protocol, port)) => Ok((flow, protocol, port)),
        None => Err(PickError::NoSuchProtocol {
            protocol: protocol.unwrap_or(Protocol::Grpc).as_str(),
            serves: flow
                .ports
                .iter()
                .map(|p| p.protocol.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            flow: flow.name,
        }),
    }
}

impl fmt::Display for FlowRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' (pid {})", self.name, self.pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, pid: u32, start_ticks: u64) -> FlowRecord {
        FlowRecord {
            name: name.into(),
            pid,
            start_ticks,
            host: "0.0.0.0".into(),
            ports: vec![
                RecordedPort {
                    protocol: "http".into(),
                    port: 2,
                },
                RecordedPort {
                    protocol: "grpc".into(),
                    port: 1,
                },
            ],
            yaml: None,
            started_at: 0,
            executors: 1,
            state: FlowState::Ready,
            certfile: None,
        }
    }

    #[test]
    fn dials_loopback_for_every_interface_and_prefers_grpc() {
        let r = record("a", 1, 0);
        assert_eq!(r.dial_host(), "127.0.0.1");
        assert_eq!(r.port_of(Protocol::Grpc), Some(1));
        assert_eq!(r.port_of(Protocol::Websocket), None);
        assert_eq!(r.addresses(), "http 127.0.0.1:2, grpc 127.0.0.1:1");
    }

    #[test]
    fn a_record_of_a_pid_reused_by_another_process_is_not_alive() {
        let me = std::process::id();
        let ticks = crate::procs::start_ticks(me).unwrap();
        assert!(record("me", me, ticks).is_alive());
        assert!(!record("me", me, ticks + 1).is_alive());
    }
}
